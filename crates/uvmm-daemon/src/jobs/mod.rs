//! Jobs: work for a host's worker, and what a job may use while it runs.

use crate::cache::Cache;
use crate::hosts::worker::Worker;
use uvmm_libvirt::Hypervisor;

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
}

/// A piece of work for a host's worker: called with the live connection, or with `None`
/// when the host is unavailable (the job then answers with an error itself).
pub type Job = Box<dyn FnOnce(Option<&JobCtx<'_>>) + Send>;

/// What a job may use: the connection, and a way to bring the cache up to date at once.
pub struct JobCtx<'a> {
    pub hv: &'a dyn Hypervisor,
    pub(crate) worker: &'a Worker,
}

impl JobCtx<'_> {
    /// Re-read a domain into the cache (or drop it when it is gone); errors are logged,
    /// the next event or statistics round heals the cache anyway.
    pub fn refresh(&self, uuid: &str) {
        if let Err(e) = self.worker.refresh(self.hv, uuid) {
            tracing::warn!(uri = %self.worker.uri, %uuid, "refresh after change failed: {e}");
        }
    }

    pub fn uri(&self) -> &str {
        &self.worker.uri
    }

    /// Refresh and re-read the host's pools after a storage change.
    pub fn refresh_pools(&self) {
        if let Err(e) = self.worker.refresh_pools(self.hv) {
            tracing::warn!(uri = %self.worker.uri, "refreshing pools failed: {e}");
        }
    }

    /// Record the domain's definition in the backup store (when it changed); a failure is
    /// returned as a warning for the answer: the change itself has happened.
    pub fn backup(&self, uuid: &str, cause: &str) -> Option<String> {
        // Jobs only define persistent VMs.
        self.worker
            .record(self.hv, uuid, cause, false, Some(true))
            .err()
            .map(|e| format!("the backup of this change failed: {e}"))
    }

    /// Record the definition a VM has right before it is deleted.
    pub fn backup_deleted(&self, uuid: &str) -> Option<String> {
        self.worker
            .record(self.hv, uuid, "delete", true, Some(true))
            .err()
            .map(|e| format!("the backup of the deleted definition failed: {e}"))
    }

    /// Before a change through uvmm: catch a change made without an event (`virsh ...
    /// --config`) since the last look, so it is recorded as `external` and the cache is
    /// right, instead of the coming change's version claiming it.
    pub fn check_definition(&self, uuid: &str) {
        if let Err(e) = self.worker.check_definition(self.hv, uuid) {
            tracing::debug!(uri = %self.worker.uri, %uuid, "definition check failed: {e}");
        }
    }

    /// The reason the host is unavailable, for jobs that were not run.
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
