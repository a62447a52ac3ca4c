//! `POST /api/v1/hosts/{id}/evacuate`: move every VM off a host for maintenance — running
//! ones live, shut-off ones offline — one after the other, each to the target with the
//! most free memory (less what this evacuation already sent there) that passes the checks.
//! One task; its result lists every VM's outcome. Cancelling aborts the migration under
//! way (that VM stays on the source) and moves no further VM.
//!
//! One at a time: on the hosts uvmm targets (a few cores, one migration network) parallel
//! migrations of dirtying guests converge worse, and a failure stays easy to read.

use crate::cache::{Cache, HostEntry, VmEntry};
use crate::config::PeerUris;
use crate::error::Error;
use crate::jobs::tasks::Long;
use crate::jobs::{At, Job, JobCtx};
use crate::vm::migrate::{CheckMigration, MigrateVm};
use crate::vm::VmError;
use std::collections::BTreeMap;
use uvmm_api::{
    CancelMode, EvacuateRequest, EvacuateResult, EvacuatedVm, MigrateRequest, TaskKind,
};
use uvmm_model::uuid::Uuid;
use uvmm_model::VmState;

/// One VM to move, as the cache had it when the evacuation started.
#[derive(Debug, Clone)]
struct Leaving {
    uuid: String,
    name: String,
    state: VmState,
    memory_kib: u64,
}

pub struct Evacuate {
    req: EvacuateRequest,
    peers: PeerUris,
    /// Candidate targets (URI) with their free memory (KiB), from `prepare`.
    targets: Vec<(String, u64)>,
    vms: Vec<Leaving>,
    /// The evacuated host's id, for the task.
    source: String,
}

impl Evacuate {
    pub fn new(req: EvacuateRequest, peers: PeerUris) -> Evacuate {
        Evacuate {
            req,
            peers,
            targets: vec![],
            vms: vec![],
            source: String::new(),
        }
    }

    fn request_for(&self, to: &str) -> MigrateRequest {
        MigrateRequest {
            to: to.to_string(),
            offline: false,
            copy_storage: self.req.copy_storage,
            bandwidth_mib_s: self.req.bandwidth_mib_s,
            auto_converge: self.req.auto_converge,
            post_copy_after_secs: None,
            timeout_secs: self.req.timeout_secs,
        }
    }
}

fn outcome(v: &Leaving, outcome: &str, to: Option<String>, message: Option<String>) -> EvacuatedVm {
    EvacuatedVm {
        uuid: v.uuid.clone(),
        name: v.name.clone(),
        outcome: outcome.to_string(),
        to,
        live: v.state == VmState::Running,
        message,
        duration_ms: None,
    }
}

impl Job for Evacuate {
    type Output = EvacuateResult;
    type Error = Error;

    fn prepare(&mut self, cache: &Cache, h: &HostEntry, _: Option<&VmEntry>) -> Result<(), Error> {
        let mut targets = Vec::new();
        if self.req.to.is_empty() {
            targets.extend(cache.hosts().filter(|t| t.uri != h.uri && t.available()));
        } else {
            for id in &self.req.to {
                let t = cache.resolve_host(id)?;
                if t.uri == h.uri {
                    return Err(VmError::Conflict {
                        why: format!("{id} is the host being evacuated"),
                    }
                    .into());
                }
                t.ensure_available()?;
                targets.push(t);
            }
        }
        if targets.is_empty() {
            return Err(VmError::Conflict {
                why: "no other connected host to evacuate to".into(),
            }
            .into());
        }
        self.targets = targets
            .iter()
            .map(|t| (t.uri.clone(), t.free_memory_kib.unwrap_or(0)))
            .collect();
        self.vms = h
            .vms()
            .values()
            .map(|v| Leaving {
                uuid: v.uuid.clone(),
                name: v.name.clone(),
                state: v.state,
                memory_kib: v.memory_kib,
            })
            .collect();
        self.source = h.id.clone();
        // The big ones first, while the targets have the most room.
        self.vms.sort_by_key(|v| std::cmp::Reverse(v.memory_kib));
        Ok(())
    }

    fn long(&self) -> Option<Long> {
        Some(Long {
            kind: TaskKind::HostEvacuate,
            cancel: CancelMode::Abort,
            target: Some(format!("evacuate {}", self.source)),
        })
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<EvacuateResult, Error> {
        let mut sent: BTreeMap<String, u64> = BTreeMap::new();
        let mut out = Vec::new();
        for v in &self.vms {
            if ctx.cancelled() {
                out.push(outcome(v, "cancelled", None, None));
                continue;
            }
            if !matches!(v.state, VmState::Running | VmState::Shutoff) {
                let why = format!("{:?}: only running and shut-off VMs move", v.state);
                out.push(outcome(v, "skipped", None, Some(why.to_lowercase())));
                continue;
            }
            let room =
                |uri: &String, free: u64| free.saturating_sub(sent.get(uri).copied().unwrap_or(0));
            let mut order = self.targets.clone();
            order.sort_by_key(|t| std::cmp::Reverse(room(&t.0, t.1)));
            let mut done = None;
            let mut refusals = Vec::new();
            for (to, _) in &order {
                match self.move_one(ctx, v, to) {
                    Ok(r) => {
                        *sent.entry(to.clone()).or_default() += v.memory_kib;
                        done = Some(r);
                        break;
                    }
                    // Refused by the checks: nothing moved, the next target may do.
                    Err((true, e)) => refusals.push(format!("{to}: {e}")),
                    Err((false, e)) => {
                        let state = if ctx.cancelled() {
                            "cancelled"
                        } else {
                            "failed"
                        };
                        done = Some(outcome(v, state, Some(to.clone()), Some(e)));
                        break;
                    }
                }
            }
            out.push(done.unwrap_or_else(|| outcome(v, "failed", None, Some(refusals.join("; ")))));
        }
        let count = |o: &str| out.iter().filter(|v| v.outcome == o).count();
        Ok(EvacuateResult {
            host: ctx.uri().to_string(),
            moved: count("moved"),
            failed: count("failed"),
            vms: out,
        })
    }
}

impl Evacuate {
    /// Move one VM to `to`; `Err((refused, message))`: refused by the checks (nothing
    /// moved) or failed on the way.
    fn move_one(
        &self,
        ctx: &JobCtx<'_>,
        v: &Leaving,
        to: &str,
    ) -> Result<EvacuatedVm, (bool, String)> {
        let mut job = MigrateVm::new(self.request_for(to), self.peers.clone());
        {
            let cache = ctx.cache();
            let h = cache
                .host(ctx.uri())
                .ok_or((true, "the host is gone".to_string()))?;
            let Some(entry) = h.vms().get(&v.uuid) else {
                return Err((true, "the VM is no longer on this host".into()));
            };
            job.prepare(&cache, h, Some(entry))
                .map_err(|e| (true, e.to_string()))?;
        }
        let uuid = Uuid::parse(&v.uuid).map_err(|e| (true, e.to_string()))?;
        let at = At {
            uuid: Some(uuid),
            ..ctx.at.clone()
        };
        let vctx = JobCtx {
            hv: ctx.hv,
            caller: ctx.caller,
            at: &at,
            shared: ctx.shared,
            host: ctx.host,
            task: ctx.task,
        };
        CheckMigration(job.clone())
            .run(&vctx)
            .map_err(|e| (true, e.to_string()))?;
        let r = job.run(&vctx).map_err(|e| (false, e.to_string()))?;
        Ok(EvacuatedVm {
            duration_ms: Some(r.duration_ms),
            ..outcome(v, "moved", Some(to.to_string()), None)
        })
    }
}
