//! Tasks: long operations (a volume clone, a managed save) that run in the background.
//! They get an id at once, report progress and their end on the event stream
//! (`task_progress`, `task_done`), and keep their result for a while
//! (`GET /api/v1/tasks/{id}`).

use crate::ErrorInfo;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which long operation a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// `POST .../volumes/{volume}/clone`.
    VolumeClone,
    /// `POST /api/v1/vms/{uuid}/suspend` (managed save).
    VmSuspend,
    /// `POST /api/v1/vms/{uuid}/migrate`.
    VmMigrate,
    /// `POST /api/v1/hosts/{id}/evacuate`.
    HostEvacuate,
    /// `POST /api/v1/vms/{uuid}/snapshots` with memory.
    SnapshotCreate,
    /// `POST /api/v1/vms/{uuid}/clone`.
    VmClone,
    /// `POST /api/v1/vms/{uuid}/snapshots/{name}/revert`.
    SnapshotRevert,
    /// `DELETE /api/v1/vms/{uuid}/snapshots/{name}` (an external one is merged).
    SnapshotDelete,
}

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Running,
    /// Asked to stop; it stops as soon as libvirt lets it (see `cancel`).
    Cancelling,
    Succeeded,
    Failed,
    Cancelled,
}

impl TaskState {
    pub fn ended(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
        )
    }
}

/// What cancelling a task (`DELETE /api/v1/tasks/{id}`) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelMode {
    /// libvirt aborts the job (`virDomainAbortJob`): a managed save stops and the VM
    /// keeps running.
    Abort,
    /// libvirt cannot interrupt the work (a volume copy): it runs to its end, then what
    /// it made is removed (the half-made copy is deleted).
    Undo,
    /// libvirt can neither interrupt nor undo it (a snapshot revert, a snapshot delete
    /// that libvirt merges itself): a cancel request is refused with 409 and the task
    /// runs to its end.
    None,
}

/// A long operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    /// Its id (`/api/v1/tasks/{id}`).
    #[schema(format = "uuid")]
    pub id: String,
    pub kind: TaskKind,
    pub state: TaskState,
    /// The host's URI and id.
    pub host: String,
    pub host_id: String,
    /// What it acts on, for people: `POOL/VOLUME -> NAME` for a clone, the VM's UUID.
    pub target: String,
    /// The VM of a VM task.
    #[schema(format = "uuid")]
    pub uuid: Option<String>,
    /// Who started it (as recorded for changes: `root`, `uid:N`, `token:api`).
    pub user: String,
    /// RFC 3339.
    pub started: String,
    pub ended: Option<String>,
    /// How far it has come, when known (0-100).
    pub percent: Option<f64>,
    /// Bytes done and to do, when known.
    pub bytes_done: Option<u64>,
    pub bytes_total: Option<u64>,
    pub cancel: CancelMode,
    /// What the operation answers when it is waited for (e.g. the new volume), once it
    /// has succeeded.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// Why it failed (the error the operation answers with when it is waited for).
    pub error: Option<ErrorInfo>,
    /// A migration's figures as libvirt reports them while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationProgress>,
    /// The task this one is part of (an evacuation's migration of one VM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uuid")]
    pub parent: Option<String>,
}

/// A migration's progress (libvirt's job statistics), in bytes and milliseconds; absent
/// where libvirt did not report a figure in this phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MigrationProgress {
    /// `check`, `copying` (offline: disks), `migrating` (live: memory and disks),
    /// `post_copy`, `aborting`.
    pub phase: String,
    pub time_elapsed_ms: Option<u64>,
    pub data_total: Option<u64>,
    pub data_processed: Option<u64>,
    pub data_remaining: Option<u64>,
    pub memory_remaining: Option<u64>,
    pub disk_remaining: Option<u64>,
    /// Memory transfer rate, bytes per second.
    pub memory_bps: Option<u64>,
    /// Pages the guest dirties per second.
    pub dirty_rate: Option<u64>,
    /// Passes over the guest's memory so far.
    pub iteration: Option<u64>,
    /// vCPU throttle of auto-converge, percent.
    pub throttle_percent: Option<i32>,
}
