//! The one job seam. Every operation that talks to a host is a type that implements
//! [`Job`]: what it acts on (a VM or a host), what it checks against the cache first,
//! and its work with a libvirt connection. [`crate::ops::Ops::run`] runs any job the same
//! way: resolve the target in the cache (404, 409, 503 before anything is queued), queue
//! a definition check for a VM, send the work to the host's worker and wait for it (504
//! after `call_timeout`). Adding an operation is a job type and one route.
//!
//! Jobs run one after the other on their host's worker (an actor that never runs on two
//! threads at once, see `hosts::worker`), so a job's check and change never interleave
//! with another change of that host. Long jobs (a volume clone, a managed save) run as
//! tasks instead (`tasks`): on a thread of their own with their own connection, so the
//! worker keeps serving events and requests.

pub mod tasks;

use crate::backup::record::Record;
use crate::cache::{vm_detail, Cache, HostEntry, VmEntry};
use crate::caller::Caller;
use crate::error::Error;
use crate::hosts::facts::HostFacts;
use crate::hosts::shared::Shared;
use crate::hosts::worker::Worker;
use crate::vm::VmError;
use uvmm_api::VmChangeResponse;
use uvmm_backup::{Cause, SnapshotNote};
use uvmm_libvirt::Hypervisor;
use uvmm_model::hosts::HostUri;
use uvmm_model::uuid::Uuid;

/// What running a job on a host can fail with, before or around the job's own work.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("host {host} is unavailable: {reason}")]
    HostUnavailable { host: String, reason: String },
    #[error("host {host} did not answer within {secs} s")]
    Timeout { host: String, secs: u64 },
    /// No worker for the host (it was removed meanwhile).
    #[error("no host '{host}'")]
    NoWorker { host: String },
    /// The worker ended without answering (it stopped while the job waited).
    #[error("the worker of host {host} has stopped")]
    WorkerStopped { host: String },
    /// The task was cancelled (see `tasks`).
    #[error("the task was cancelled")]
    Cancelled,
}

/// A VM a request names: its UUID and, when the UUID exists on several hosts, which host.
#[derive(Debug, Clone)]
pub struct VmRef {
    pub uuid: String,
    pub host: Option<String>,
}

/// What a job acts on, as the request names it.
#[derive(Debug, Clone)]
pub enum Target {
    Vm(VmRef),
    /// A host by id or URI.
    Host(String),
}

impl From<VmRef> for Target {
    fn from(vm: VmRef) -> Target {
        Target::Vm(vm)
    }
}

/// The target found in the cache: its host (connected) and, for a VM, the VM.
#[derive(Debug, Clone)]
pub struct At {
    pub host: HostUri,
    pub host_id: String,
    /// The VM (for VM targets).
    pub uuid: Option<Uuid>,
    pub facts: HostFacts,
}

impl At {
    /// The host's URI.
    pub fn uri(&self) -> &str {
        &self.host.uri
    }

    /// The VM's UUID; a job with a `Target::Vm` always has one.
    pub fn vm(&self) -> &str {
        self.uuid.as_deref().unwrap_or_default()
    }
}

/// One operation on a host.
pub trait Job: Send + Sized + 'static {
    /// What the caller gets.
    type Output: serde::Serialize + Send + 'static;
    /// What the job's own work fails with (its resource's error).
    type Error: Into<Error> + Send + 'static;

    /// Checks against the cache before anything is queued (the cache is locked for
    /// reading; `vm` is the VM of a `Target::Vm`). A job also takes what it needs from
    /// the cache here.
    fn prepare(
        &mut self,
        _cache: &Cache,
        _host: &HostEntry,
        _vm: Option<&VmEntry>,
    ) -> Result<(), Error> {
        Ok(())
    }

    /// Whether the job is long and runs as a task (see `tasks`): on a thread and a
    /// connection of its own, with an id at once.
    fn long(&self) -> Option<tasks::Long> {
        None
    }

    /// The work, with a connection to the host.
    fn run(self, ctx: &JobCtx<'_>) -> Result<Self::Output, Self::Error>;
}

/// Work for a host's worker, as the worker's queue carries it: called with the worker and
/// its live connection, or with `None` when the host is unavailable (the work then
/// answers with an error itself).
pub type Work = Box<dyn FnOnce(Option<(&Worker, &dyn Hypervisor)>) + Send>;

/// How a job reaches its host's worker for what only the worker does (the cache of its
/// host, the definition watch, backup versions).
#[derive(Clone, Copy)]
pub(crate) enum HostLink<'a> {
    /// The job runs on the worker itself.
    Worker(&'a Worker),
    /// The job runs as a task on a thread of its own; it asks the worker through its
    /// queue and waits for the answer.
    Queue(&'a (dyn Fn(Work) -> bool + Sync)),
}

/// What a job may use while it runs.
pub struct JobCtx<'a> {
    pub hv: &'a dyn Hypervisor,
    pub caller: &'a Caller,
    pub at: &'a At,
    pub(crate) shared: &'a Shared,
    pub(crate) host: HostLink<'a>,
    /// The task, when the job runs as one.
    pub(crate) task: Option<&'a tasks::TaskLink>,
}

impl JobCtx<'_> {
    pub fn facts(&self) -> &HostFacts {
        &self.at.facts
    }

    pub fn uri(&self) -> &str {
        self.at.uri()
    }

    /// Run `f` on the worker with its connection: at once when the job runs there, else
    /// through the worker's queue (waiting for it). `None` when the worker is gone or
    /// its host unavailable.
    fn on_worker<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Worker, &dyn Hypervisor) -> R + Send + 'static,
    ) -> Option<R> {
        match &self.host {
            HostLink::Worker(w) => Some(f(w, self.hv)),
            HostLink::Queue(send) => {
                let (tx, rx) = std::sync::mpsc::channel();
                let work: Work = Box::new(move |worker| {
                    if let Some((w, hv)) = worker {
                        let _ = tx.send(f(w, hv));
                    }
                });
                if !send(work) {
                    return None;
                }
                // No answer: the host became unavailable meanwhile.
                rx.recv().ok()
            }
        }
    }

    /// Re-read a domain into the cache (or drop it when it is gone); errors are logged,
    /// the next event or statistics round heals the cache anyway.
    pub fn refresh(&self, uuid: &str) {
        let uuid = uuid.to_string();
        self.on_worker(move |w, hv| {
            if let Err(e) = w.refresh(hv, &uuid) {
                tracing::warn!(uri = %w.uri, %uuid, "refresh after change failed: {e}");
            }
        });
    }

    /// Refresh and re-read the host's pools after a storage change.
    pub fn refresh_pools(&self) {
        self.on_worker(|w, hv| {
            if let Err(e) = w.refresh_pools(hv) {
                tracing::warn!(uri = %w.uri, "refreshing pools failed: {e}");
            }
        });
    }

    /// Record the domain's definition in the backup store (when it changed), with the
    /// caller as its user; a failure is returned as a warning for the answer: the change
    /// itself has happened.
    pub fn backup(&self, uuid: &str, cause: Cause) -> Option<String> {
        self.record(uuid, cause, false, None)
            .map(|e| format!("the backup of this change failed: {e}"))
    }

    /// Record a snapshot taken (with its definition) or deleted as a version of its own,
    /// with the domain's definition as it is now.
    pub fn backup_snapshot(&self, uuid: &str, note: SnapshotNote) -> Option<String> {
        self.record(uuid, Cause::Edit, false, Some(note))
            .map(|e| format!("the backup of this snapshot failed: {e}"))
    }

    /// Record the definition a VM has right before it is deleted.
    pub fn backup_deleted(&self, uuid: &str) -> Option<String> {
        self.record(uuid, Cause::Delete, true, None)
            .map(|e| format!("the backup of the deleted definition failed: {e}"))
    }

    fn record(
        &self,
        uuid: &str,
        cause: Cause,
        deleting: bool,
        snapshot: Option<SnapshotNote>,
    ) -> Option<String> {
        let (uuid, user) = (uuid.to_string(), self.caller.user().to_string());
        self.on_worker(move |w, hv| {
            // Jobs only define persistent VMs.
            w.record(
                hv,
                Record {
                    uuid: &uuid,
                    cause,
                    user: Some(&user),
                    deleting,
                    persistent: Some(true),
                    snapshot: snapshot.as_ref(),
                },
            )
        })
        .unwrap_or_else(|| Err("the host's worker is gone".into()))
        .err()
    }

    /// The answer of a VM change: the VM as the cache has it now (the job refreshed it),
    /// with what the change adapted (`notes`) and what the user should know (`warnings`).
    pub fn changed(
        &self,
        uuid: &str,
        notes: Vec<String>,
        warnings: Vec<String>,
    ) -> Result<VmChangeResponse, VmError> {
        self.changed_on(self.uri(), uuid, notes, warnings)
    }

    /// As `changed`, for a VM the job put on another host (`uri`).
    pub fn changed_on(
        &self,
        uri: &str,
        uuid: &str,
        notes: Vec<String>,
        warnings: Vec<String>,
    ) -> Result<VmChangeResponse, VmError> {
        let cache = self.shared.read();
        let vm = cache
            .host(uri)
            .and_then(|h| h.vms().get(uuid).map(|v| vm_detail(h, v)))
            .ok_or_else(|| {
                VmError::internal(format!("VM {uuid} is not in the cache after the change"))
            })?;
        Ok(VmChangeResponse {
            vm,
            notes,
            warnings,
        })
    }

    /// The cache, for answers made from it after the job's change.
    pub fn cache(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.shared.read()
    }

    /// Run `work` (a blocking libvirt call) watched when the job is a task (its progress
    /// read, a cancel request passed on; see `tasks::TaskLink::watch`); otherwise `work`
    /// just runs.
    pub fn watch<T>(&self, how: tasks::Watch<'_>, work: impl FnOnce() -> T) -> T {
        match self.task {
            Some(t) => t.watch(how, work),
            None => work(),
        }
    }

    /// Report progress of work that is not watched through `watch` (bytes done of a
    /// total, and a migration's figures); nothing for a job that is not a task.
    pub fn report(&self, done: u64, total: u64, m: Option<uvmm_api::MigrationProgress>) {
        if let Some(t) = self.task {
            if let Some(m) = m {
                t.migration(m);
            }
            t.progress(done, total);
        }
    }

    /// The work honoured a cancel request part-way and returns what it did (an
    /// evacuation's report): the task ends `cancelled` with that result.
    pub fn stopped_early(&self) {
        if let Some(t) = self.task {
            t.stopped_early();
        }
    }

    /// Whether the task was asked to stop (never for a job that is not a task).
    pub fn cancelled(&self) -> bool {
        self.task.is_some_and(|t| t.cancelled())
    }

    /// The reason the host is unavailable, for work that was not run.
    pub fn unavailable(worker_uri: &str, cache: &Cache) -> JobError {
        JobError::HostUnavailable {
            host: worker_uri.to_string(),
            reason: cache
                .host(worker_uri)
                .and_then(|h| h.last_error.clone())
                .unwrap_or_else(|| "not connected".into()),
        }
    }
}
