//! `POST /api/v1/vms/{uuid}/migrate`: move a VM to another managed host, live (running) or
//! offline (shut off), as a task with progress and cancel (libvirt's abort: the VM keeps
//! running on the source). The libvirt half (`uvmm_libvirt::migrate`) checks, moves and
//! says where the VM ended up; this job adds what the daemon owns: the target and peer URI
//! from the cache and the configuration, the cache's view while the VM moves (on exactly
//! one host, `cache/moving.rs`), and the backup version that records the move.

use crate::backup::record::{record_definition, Record};
use crate::cache::{Cache, HostEntry, VmEntry};
use crate::config::PeerUris;
use crate::error::Error;
use crate::jobs::tasks::{Long, Watch};
use crate::jobs::{Job, JobCtx};
use crate::vm::VmError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uvmm_api::TaskKind;
use uvmm_api::{CancelMode, CopyStorageMode, MigrateRequest, MigrateResult, MigrationProgress};
use uvmm_backup::Cause;
use uvmm_libvirt::migrate::{
    check_migration, migrate_live, migrate_offline, CopyStorage, JobProgress, MigrateOptions,
    MigrationError, MigrationEvent, PostCopy,
};
use uvmm_libvirt::Hypervisor;
use uvmm_model::hosts::HostUri;
use uvmm_model::VmState;

/// Why a migration did not happen or did not complete.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The checks found reasons not to start (every reason listed); nothing moved.
    #[error("{0}")]
    Refused(String),
    /// It started and failed; the message says where the VM is now.
    #[error("{0}")]
    Failed(String),
}

/// The job. `check_only`: the checks only (run on the source's worker before the task
/// starts, so a refusal is the request's answer, not a failed task).
#[derive(Debug, Clone)]
pub struct MigrateVm {
    req: MigrateRequest,
    peers: PeerUris,
    /// Resolved in `prepare`.
    target: Option<HostUri>,
    peer_uri: Option<String>,
    live: bool,
    name: String,
}

impl MigrateVm {
    pub fn new(req: MigrateRequest, peers: PeerUris) -> MigrateVm {
        MigrateVm {
            req,
            peers,
            target: None,
            peer_uri: None,
            live: false,
            name: String::new(),
        }
    }

    fn target(&self) -> Result<&HostUri, VmError> {
        self.target
            .as_ref()
            .ok_or_else(|| VmError::internal("migration target not resolved"))
    }

    fn copy(&self) -> CopyStorage {
        match self.req.copy_storage {
            CopyStorageMode::Auto => CopyStorage::Auto,
            CopyStorageMode::Never => CopyStorage::Never,
            CopyStorageMode::All => CopyStorage::All,
        }
    }

    fn connect(ctx: &JobCtx<'_>, uri: &str) -> Result<Arc<dyn Hypervisor>, Error> {
        let ignore: uvmm_libvirt::EventSink = Arc::new(|_| {});
        ctx.shared.connector.connect(uri, ignore).map_err(|e| {
            MigrateError::Refused(format!(
                "cannot connect to {uri}: {}",
                crate::error::client_safe(&e.message)
            ))
            .into()
        })
    }
}

fn conflict(why: String) -> Error {
    VmError::Conflict { why }.into()
}

impl Job for MigrateVm {
    type Output = MigrateResult;
    type Error = Error;

    fn prepare(&mut self, cache: &Cache, h: &HostEntry, vm: Option<&VmEntry>) -> Result<(), Error> {
        let Some(vm) = vm else { return Ok(()) };
        let t = cache.resolve_host(&self.req.to)?;
        if t.uri == h.uri {
            return Err(conflict(format!("{} is already on {}", vm.name, t.id)));
        }
        t.ensure_available()?;
        if cache.moving_at(&vm.uuid, &h.uri) {
            return Err(conflict(format!("{} is being migrated already", vm.name)));
        }
        self.live = match (vm.state, self.req.offline) {
            (VmState::Running, false) => true,
            (VmState::Shutoff, _) if vm.persistent => false,
            (VmState::Running, true) => {
                return Err(conflict(format!(
                    "{} is running: an offline migration needs it shut off",
                    vm.name
                )))
            }
            (s, _) => {
                return Err(conflict(format!(
                    "{} is {s:?}: only a running VM (live) or a shut-off persistent one \
                     (offline) can be migrated",
                    vm.name
                )))
            }
        };
        let target = HostUri::parse(&t.uri).map_err(|e| Error::internal(e.to_string()))?;
        if self.live {
            let peer = self.peers.of(&target).ok_or_else(|| {
                MigrateError::Refused(format!(
                    "the libvirtd of {} cannot be reached by another host under the URI uvmmd \
                     uses ({}); set [migration] peer_uris for it in uvmmd.toml",
                    t.id, t.uri
                ))
            })?;
            self.peer_uri = Some(peer);
        }
        self.target = Some(target);
        self.name = vm.name.clone();
        Ok(())
    }

    fn long(&self) -> Option<Long> {
        let to = self
            .target
            .as_ref()
            .map_or(self.req.to.as_str(), |t| &t.uri);
        Some(Long {
            kind: TaskKind::VmMigrate,
            cancel: CancelMode::Abort,
            target: Some(format!("{} -> {to}", self.name)),
        })
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<MigrateResult, Error> {
        let uuid = ctx.at.vm().to_string();
        let target = Self::connect(ctx, &self.target()?.uri)?;
        let (from, to) = (ctx.uri().to_string(), self.target()?.uri.clone());
        let began = ctx
            .shared
            .update(|c| (c.begin_move(&uuid, &from, &to), vec![]));
        if !began {
            return Err(conflict(format!("{} is being migrated already", self.name)));
        }
        let outcome = self.run_move(ctx, target.as_ref(), &uuid);
        // Both hosts as libvirt has them now, swapped in one cache update.
        let read = |hv: &dyn Hypervisor| hv.domain(&uuid).ok();
        let (src, dst) = (read(ctx.hv), read(target.as_ref()));
        ctx.shared.update(|c| ((), c.end_move(&uuid, src, dst)));
        let mut done = outcome?;
        let rec = Record {
            persistent: Some(true),
            user: Some(ctx.caller.user()),
            ..Record::seen(&uuid, Cause::Migrate)
        };
        match record_definition(ctx.shared, &to, target.as_ref(), rec) {
            Ok(r) if r.new_version => {
                done.backup_version = ctx
                    .shared
                    .backups
                    .as_ref()
                    .and_then(|b| b.versions(&uuid).ok()?.last().map(|v| v.version));
            }
            Ok(_) => {}
            Err(e) => done
                .warnings
                .push(format!("the backup of the moved definition failed: {e}")),
        }
        tracing::info!(%uuid, %from, %to, live = done.live, ms = done.duration_ms,
            user = ctx.caller.user(), "VM migrated");
        Ok(done)
    }
}

/// What a migration reports while it runs, for the task.
fn figures(phase: &str, p: &JobProgress) -> MigrationProgress {
    MigrationProgress {
        phase: phase.to_string(),
        time_elapsed_ms: p.time_elapsed_ms,
        data_total: p.data_total,
        data_processed: p.data_processed,
        data_remaining: p.data_remaining,
        memory_remaining: p.mem_remaining,
        disk_remaining: p.disk_remaining,
        memory_bps: p.mem_bps,
        dirty_rate: p.mem_dirty_rate,
        iteration: p.mem_iteration,
        throttle_percent: p.auto_converge_throttle,
    }
}

fn phase_only(phase: &str) -> MigrationProgress {
    MigrationProgress {
        phase: phase.to_string(),
        ..MigrationProgress::default()
    }
}

impl MigrateVm {
    /// The move itself, between the cache's begin and end of the move.
    fn run_move(
        &self,
        ctx: &JobCtx<'_>,
        target: &dyn Hypervisor,
        uuid: &str,
    ) -> Result<MigrateResult, Error> {
        let cancel = AtomicBool::new(false);
        let timed_out = AtomicBool::new(false);
        let started = Instant::now();
        let timeout = self.req.timeout_secs.map(Duration::from_secs);
        let mut phase = "migrating";
        let mut events = |e: MigrationEvent| match e {
            MigrationEvent::Planned(_) | MigrationEvent::VolumeCreated(..) => {
                ctx.report(0, 0, Some(phase_only(phase)));
            }
            MigrationEvent::Progress(p) => {
                if timeout.is_some_and(|t| started.elapsed() >= t) {
                    timed_out.store(true, Ordering::SeqCst);
                    cancel.store(true, Ordering::SeqCst);
                }
                let done = p.data_processed.unwrap_or(0);
                ctx.report(done, p.data_total.unwrap_or(0), Some(figures(phase, &p)));
            }
            MigrationEvent::CopyProgress(_, done, total) => {
                ctx.report(done, total, Some(phase_only("copying")));
            }
            MigrationEvent::PostCopyStarted => phase = "post_copy",
            MigrationEvent::AbortRequested => {
                ctx.report(0, 0, Some(phase_only("aborting")));
            }
        };
        let abort = || cancel.store(true, Ordering::SeqCst);
        let watch = || Watch {
            poll: &|| None,
            abort: Some(&abort),
        };
        let (from, to) = (ctx.uri().to_string(), self.target()?.uri.clone());
        let mut result = MigrateResult {
            uuid: uuid.to_string(),
            name: self.name.clone(),
            from,
            to,
            live: self.live,
            duration_ms: 0,
            downtime_ms: None,
            data_transferred: None,
            copied_disks: vec![],
            source_volumes_kept: vec![],
            backup_version: None,
            notes: vec![],
            warnings: vec![],
        };
        let outcome = if self.live {
            let monitor = Self::connect(ctx, ctx.uri())?;
            let mut opts = MigrateOptions::new(self.peer_uri.clone().unwrap_or_default());
            opts.bandwidth_mib_s = self.req.bandwidth_mib_s;
            opts.auto_converge = self.req.auto_converge;
            opts.copy_storage = self.copy();
            opts.post_copy = self
                .req
                .post_copy_after_secs
                .map_or(PostCopy::Off, |s| PostCopy::After(Duration::from_secs(s)));
            // Only disks a probe volume proved shared (seen on both hosts) get
            // libvirt's "unsafe" flag; libvirt knows NFS and cluster file systems itself.
            opts.trust_proven_shared_storage = true;
            let (src, mon) = (ctx.hv, monitor.as_ref());
            ctx.watch(watch(), || {
                migrate_live(src, mon, target, uuid, &opts, &mut events, &cancel)
            })
            .map(|r| {
                result.duration_ms = millis(r.duration);
                let done = r.completed.as_ref();
                result.downtime_ms = done.and_then(|c| c.downtime_ms);
                result.data_transferred = done
                    .and_then(|c| c.data_processed)
                    .or_else(|| r.last_progress.as_ref().and_then(|p| p.data_processed));
                result.copied_disks = r.plan.copied().map(|d| d.target.clone()).collect();
                result.notes = r.plan.notes.clone();
            })
        } else {
            let copy = self.copy();
            ctx.watch(watch(), || {
                migrate_offline(ctx.hv, target, uuid, copy, &mut events, &cancel)
            })
            .map(|r| {
                result.duration_ms = millis(started.elapsed());
                result.copied_disks = r.plan.copied().map(|d| d.target.clone()).collect();
                result.source_volumes_kept = r
                    .source_volumes_kept
                    .iter()
                    .map(|(p, v)| format!("{p}/{v}"))
                    .collect();
                result.notes = r.plan.notes.clone();
                if r.snapshots > 0 {
                    result
                        .notes
                        .push(format!("{} snapshot definitions moved along", r.snapshots));
                }
            })
        };
        match outcome {
            Ok(()) => {
                if !result.source_volumes_kept.is_empty() {
                    result.warnings.push(
                        "the copied images are still on the source host; delete them there \
                         once the VM runs well on its new host"
                            .into(),
                    );
                }
                Ok(result)
            }
            Err(MigrationError::Refused(r)) => {
                Err(MigrateError::Refused(MigrationError::Refused(r).to_string()).into())
            }
            Err(e) if timed_out.load(Ordering::SeqCst) => Err(MigrateError::Failed(format!(
                "not completed within {} s and aborted: {}",
                self.req.timeout_secs.unwrap_or_default(),
                crate::error::client_safe(&e.to_string())
            ))
            .into()),
            Err(e) => Err(MigrateError::Failed(crate::error::client_safe(&e.to_string())).into()),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The checks alone, on the source's worker before the task starts: a refusal is then the
/// request's answer (409 with every reason), not a failed task. Reads only, plus libvirt's
/// probe volume for shared storage.
pub struct CheckMigration(pub MigrateVm);

impl Job for CheckMigration {
    type Output = ();
    type Error = Error;

    fn prepare(&mut self, cache: &Cache, h: &HostEntry, vm: Option<&VmEntry>) -> Result<(), Error> {
        self.0.prepare(cache, h, vm)
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<(), Error> {
        let m = self.0;
        let target = MigrateVm::connect(ctx, &m.target()?.uri)?;
        check_migration(ctx.hv, target.as_ref(), ctx.at.vm(), m.live, m.copy())
            .map(|_| ())
            .map_err(|e| match e {
                MigrationError::Refused(_) => MigrateError::Refused(e.to_string()).into(),
                e => MigrateError::Failed(crate::error::client_safe(&e.to_string())).into(),
            })
    }
}
