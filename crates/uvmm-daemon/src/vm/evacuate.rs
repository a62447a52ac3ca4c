//! `POST /api/v1/hosts/{id}/evacuate`: move every VM off a host for maintenance — running
//! ones live, shut-off ones offline — at most `max_parallel` at a time (default 2), each
//! to the target with the most free memory (re-read from the cache for each VM, less
//! what this evacuation has sent or is sending there) that passes the checks.
//!
//! One task, with a child task per VM it tries (a `vm_migrate` task with its own progress
//! and `parent` set); its result is the report: per VM moved to X, failed why, skipped.
//! Cancelling it cancels the running children (libvirt aborts them: those VMs stay on the
//! source) and skips the VMs not started; it then ends `cancelled`, with its report.
//!
//! Two at a time by default: on the hosts uvmm targets (a few cores, one migration
//! network) more parallel migrations of dirtying guests converge worse.

use crate::cache::{Cache, HostEntry, VmEntry};
use crate::caller::Caller;
use crate::config::PeerUris;
use crate::error::{Error, RequestError};
use crate::hosts::shared::Shared;
use crate::jobs::tasks::{Long, TaskLink};
use crate::jobs::{At, HostLink, Job, JobCtx, Work};
use crate::vm::migrate::{CheckMigration, MigrateError, MigrateVm};
use crate::vm::VmError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uvmm_api::{
    CancelMode, EvacuateRequest, EvacuateResult, EvacuatedVm, MigrateRequest, MigrateResult,
    TaskKind,
};
use uvmm_libvirt::Hypervisor;
use uvmm_model::uuid::Uuid;
use uvmm_model::VmState;

/// How many VMs move at the same time unless the request says.
pub const DEFAULT_PARALLEL: u32 = 2;
/// The most a request may ask for.
pub const MAX_PARALLEL: u32 = 16;
/// Why a VM was skipped after a cancel.
const NOT_TRIED: &str = "the evacuation was cancelled before it was tried";

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
    parallel: u32,
}

impl Evacuate {
    pub fn new(req: EvacuateRequest, peers: PeerUris) -> Evacuate {
        Evacuate {
            req,
            peers,
            targets: vec![],
            vms: vec![],
            source: String::new(),
            parallel: DEFAULT_PARALLEL,
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
        task: None,
        to,
        live: v.state == VmState::Running,
        message,
        duration_ms: None,
    }
}

/// Run `work` for the items `0..count`, at most `max` at the same time (each on a scoped
/// thread of its own); the results in item order.
pub fn bounded<T: Send>(count: usize, max: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..count).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..max.clamp(1, count.max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= count {
                    break;
                }
                let r = work(i);
                if let Some(slot) = results.lock().unwrap_or_else(|p| p.into_inner()).get_mut(i) {
                    *slot = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// What a job context is made of, without the worker itself (not `Sync`): each parallel
/// move makes its own context from it.
#[derive(Clone, Copy)]
struct Parts<'a> {
    hv: &'a dyn Hypervisor,
    caller: &'a Caller,
    at: &'a At,
    shared: &'a Shared,
    queue: &'a (dyn Fn(Work) -> bool + Sync),
    task: Option<&'a TaskLink>,
}

impl<'a> Parts<'a> {
    fn ctx(self) -> JobCtx<'a> {
        JobCtx {
            hv: self.hv,
            caller: self.caller,
            at: self.at,
            shared: self.shared,
            host: HostLink::Queue(self.queue),
            task: self.task,
        }
    }
}

/// What the evacuation shares between its parallel moves.
struct Flight {
    /// Memory (KiB) sent or being sent per target.
    sent: Mutex<BTreeMap<String, u64>>,
    /// The child tasks running now (cancelled with the parent).
    running: Mutex<Vec<Arc<TaskLink>>>,
}

impl Flight {
    fn add(&self, to: &str, kib: i128) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let e = sent.entry(to.to_string()).or_default();
        *e = u64::try_from((i128::from(*e) + kib).max(0)).unwrap_or(u64::MAX);
    }
}

impl Job for Evacuate {
    type Output = EvacuateResult;
    type Error = Error;

    fn prepare(&mut self, cache: &Cache, h: &HostEntry, _: Option<&VmEntry>) -> Result<(), Error> {
        self.parallel = self.req.max_parallel.unwrap_or(DEFAULT_PARALLEL);
        if !(1..=MAX_PARALLEL).contains(&self.parallel) {
            return Err(RequestError::Malformed(format!(
                "max_parallel must be 1 to {MAX_PARALLEL}, not {}",
                self.parallel
            ))
            .into());
        }
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
        // The parallel moves reach the worker through its queue (a task always does).
        let HostLink::Queue(queue) = ctx.host else {
            return Err(Error::internal("an evacuation runs as a task"));
        };
        let parts = Parts {
            hv: ctx.hv,
            caller: ctx.caller,
            at: ctx.at,
            shared: ctx.shared,
            queue,
            task: ctx.task,
        };
        let flight = Flight {
            sent: Mutex::default(),
            running: Mutex::default(),
        };
        let finished = AtomicBool::new(false);
        let out = std::thread::scope(|s| {
            // Passes the parent's cancel on to the children running at that moment.
            s.spawn(|| {
                while !finished.load(Ordering::SeqCst) {
                    if parts.task.is_some_and(TaskLink::cancelled) {
                        let running = flight.running.lock().unwrap_or_else(|p| p.into_inner());
                        for child in running.iter().filter(|c| !c.cancelled()) {
                            let _ = child.request_cancel();
                        }
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
            let parallel = usize::try_from(self.parallel).unwrap_or(1);
            let out = bounded(self.vms.len(), parallel, |i| {
                self.evacuate_one(&parts.ctx(), &self.vms[i], &flight)
            });
            finished.store(true, Ordering::SeqCst);
            out
        });
        // A cancel that came after the last move changed nothing: that is a success.
        if out
            .iter()
            .any(|v| v.outcome == "cancelled" || v.message.as_deref() == Some(NOT_TRIED))
        {
            ctx.stopped_early();
        }
        let count = |o: &str| out.iter().filter(|v| v.outcome == o).count();
        Ok(EvacuateResult {
            host: ctx.uri().to_string(),
            moved: count("moved"),
            failed: count("failed"),
            skipped: count("skipped"),
            max_parallel: self.parallel,
            vms: out,
        })
    }
}

impl Evacuate {
    /// The targets for `v`, most room first: the free memory the cache has now (never
    /// more than at the start: the cache learns of what arrived only with the next
    /// statistics round) less what this evacuation sent or is sending there.
    fn targets_for(&self, ctx: &JobCtx<'_>, flight: &Flight) -> Vec<String> {
        let sent = flight
            .sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let cache = ctx.cache();
        let mut order: Vec<(String, u64)> = self
            .targets
            .iter()
            .filter_map(|(uri, at_start)| {
                let h = cache.host(uri)?;
                let now = h.free_memory_kib.unwrap_or(0).min(*at_start);
                h.available().then(|| {
                    (
                        uri.clone(),
                        now.saturating_sub(sent.get(uri).copied().unwrap_or(0)),
                    )
                })
            })
            .collect();
        order.sort_by_key(|t| std::cmp::Reverse(t.1));
        order.into_iter().map(|t| t.0).collect()
    }

    /// Move one VM (a child task), trying the targets in order of room until one takes it.
    fn evacuate_one(&self, ctx: &JobCtx<'_>, v: &Leaving, flight: &Flight) -> EvacuatedVm {
        if ctx.cancelled() {
            return outcome(v, "skipped", None, Some(NOT_TRIED.into()));
        }
        if !matches!(v.state, VmState::Running | VmState::Shutoff) {
            let why = format!("{:?}: only running and shut-off VMs move", v.state);
            return outcome(v, "skipped", None, Some(why.to_lowercase()));
        }
        let long = Long {
            kind: TaskKind::VmMigrate,
            cancel: CancelMode::Abort,
            target: Some(format!("{} (evacuating {})", v.name, self.source)),
        };
        let child = ctx.task.map(|t| t.child(&long, Some(v.uuid.clone())));
        if let Some(c) = &child {
            lock_push(&flight.running, c.clone());
        }
        let kib = i128::from(v.memory_kib);
        let mut refusals = Vec::new();
        let mut result: Result<(String, MigrateResult), (Option<String>, Error)> = Err((
            None,
            MigrateError::Refused("no target host is available".into()).into(),
        ));
        for to in self.targets_for(ctx, flight) {
            flight.add(&to, kib);
            match self.move_one(ctx, child.as_deref(), v, &to) {
                Ok(r) => {
                    result = Ok((to, r));
                    break;
                }
                // Refused by the checks: nothing moved, the next target may do.
                Err((true, e)) => {
                    flight.add(&to, -kib);
                    refusals.push(format!("{to}: {e}"));
                    result = Err((None, MigrateError::Refused(refusals.join("; ")).into()));
                }
                Err((false, e)) => {
                    flight.add(&to, -kib);
                    result = Err((Some(to), e));
                    break;
                }
            }
        }
        let task = child.as_ref().map(|c| c.snapshot().id);
        let report = match &result {
            Ok((to, r)) => EvacuatedVm {
                duration_ms: Some(r.duration_ms),
                ..outcome(v, "moved", Some(to.clone()), None)
            },
            Err((to, e)) => {
                let cancelled = child.as_ref().is_some_and(|c| c.cancelled());
                let state = if cancelled { "cancelled" } else { "failed" };
                outcome(v, state, to.clone(), Some(e.to_string()))
            }
        };
        if let Some(c) = &child {
            c.end(&result.map(|(_, r)| r).map_err(|(_, e)| e));
            let mut running = flight.running.lock().unwrap_or_else(|p| p.into_inner());
            running.retain(|r| !Arc::ptr_eq(r, c));
        }
        EvacuatedVm { task, ..report }
    }

    /// Move one VM to `to` with `child` as its task; `Err((refused, error))`: refused by
    /// the checks (nothing moved) or failed on the way.
    fn move_one(
        &self,
        ctx: &JobCtx<'_>,
        child: Option<&TaskLink>,
        v: &Leaving,
        to: &str,
    ) -> Result<MigrateResult, (bool, Error)> {
        let refused = |e: Error| (true, e);
        let mut job = MigrateVm::new(self.request_for(to), self.peers.clone());
        {
            let cache = ctx.cache();
            let gone = |what: &str| refused(VmError::Conflict { why: what.into() }.into());
            let h = cache
                .host(ctx.uri())
                .ok_or_else(|| gone("the host is gone"))?;
            let entry = h
                .vms()
                .get(&v.uuid)
                .ok_or_else(|| gone("the VM is no longer on this host"))?;
            job.prepare(&cache, h, Some(entry)).map_err(refused)?;
        }
        let uuid = Uuid::parse(&v.uuid).map_err(|e| refused(Error::internal(e.to_string())))?;
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
            task: child.or(ctx.task),
        };
        CheckMigration(job.clone()).run(&vctx).map_err(refused)?;
        job.run(&vctx).map_err(|e| (false, e))
    }
}

fn lock_push(m: &Mutex<Vec<Arc<TaskLink>>>, link: Arc<TaskLink>) {
    m.lock().unwrap_or_else(|p| p.into_inner()).push(link);
}

#[cfg(test)]
mod tests {
    use super::bounded;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    /// However many items and threads, no more than `max` run at once, `max` do when
    /// there is enough work (each item waits until `max` are in, or a short while), and
    /// the results come in item order.
    #[test]
    fn at_most_max_at_a_time_and_in_order() {
        for (count, max) in [(0, 2), (1, 2), (3, 1), (5, 2), (7, 3), (2, 8)] {
            let now = AtomicUsize::new(0);
            let peak = AtomicUsize::new(0);
            let gate = (Mutex::new(()), Condvar::new());
            let want = max.min(count);
            let out = bounded(count, max, |i| {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                gate.1.notify_all();
                let g = gate.0.lock().unwrap();
                let _ = gate
                    .1
                    .wait_timeout_while(g, Duration::from_millis(300), |_| {
                        peak.load(Ordering::SeqCst) < want
                    })
                    .unwrap();
                now.fetch_sub(1, Ordering::SeqCst);
                i * 10
            });
            assert_eq!(out, (0..count).map(|i| i * 10).collect::<Vec<_>>());
            assert_eq!(
                peak.load(Ordering::SeqCst),
                want,
                "count {count}, max {max}"
            );
        }
    }
}
