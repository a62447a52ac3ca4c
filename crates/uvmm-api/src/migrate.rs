//! Moving a VM to another host (`POST /api/v1/vms/{uuid}/migrate`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How the disks get to the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CopyStorageMode {
    /// Copy exactly the disks the target does not share (the check decides per disk).
    #[default]
    Auto,
    /// Copy nothing: every disk must be on shared storage, or the migration is refused.
    Never,
    /// Copy every writable disk in full.
    All,
}

/// `POST /api/v1/vms/{uuid}/migrate`: where to and how. A running VM moves live, a
/// shut-off one offline (its definition, and its disks unless shared).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    /// The target host (id or URI); a managed, connected host other than the VM's.
    pub to: String,
    /// Refuse unless the VM is shut off (an offline move); without it the VM's state
    /// decides: running → live, shut off → offline.
    #[serde(default)]
    pub offline: bool,
    #[serde(default)]
    pub copy_storage: CopyStorageMode,
    /// Bandwidth limit in MiB/s (live).
    pub bandwidth_mib_s: Option<u64>,
    /// Slow the guest's vCPUs down when it dirties memory faster than it is sent (live).
    #[serde(default)]
    pub auto_converge: bool,
    /// Switch to post-copy this many seconds after the start (live). From the switch on
    /// a failure of either host loses the running guest (its memory is split between the
    /// hosts): off unless asked for.
    pub post_copy_after_secs: Option<u64>,
    /// Abort the migration when it has not completed after this many seconds (live); the
    /// VM keeps running on the source.
    pub timeout_secs: Option<u64>,
}

/// What a migration did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MigrateResult {
    #[schema(format = "uuid")]
    pub uuid: String,
    pub name: String,
    /// Source and target host URIs.
    pub from: String,
    pub to: String,
    pub live: bool,
    pub duration_ms: u64,
    /// How long the guest was stopped for the switch-over (live; where libvirt reported it).
    pub downtime_ms: Option<u64>,
    /// Bytes libvirt transferred (live), or copied through streams (offline).
    pub data_transferred: Option<u64>,
    /// Disk targets (`vda`) that were copied; the others were on shared storage.
    pub copied_disks: Vec<String>,
    /// Copied images still on the source (uvmm never deletes them on its own).
    pub source_volumes_kept: Vec<String>,
    /// The backup version recording the move (cause `migrate`, host = the target).
    pub backup_version: Option<u32>,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

/// `POST /api/v1/hosts/{id}/evacuate`: move every VM off a host (for maintenance).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvacuateRequest {
    /// Target hosts (ids or URIs); empty: every other connected host. Each VM goes to the
    /// one with the most free memory (less what this evacuation already sent there) that
    /// passes the checks.
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub copy_storage: CopyStorageMode,
    /// Bandwidth limit per live migration, MiB/s.
    pub bandwidth_mib_s: Option<u64>,
    #[serde(default)]
    pub auto_converge: bool,
    /// Abort a VM's live migration after this many seconds (it stays on the source and
    /// the evacuation goes on with the next VM).
    pub timeout_secs: Option<u64>,
    /// How many VMs move at the same time (1-16; default 2).
    #[schema(minimum = 1, maximum = 16)]
    pub max_parallel: Option<u32>,
}

/// What happened to one VM of an evacuation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EvacuatedVm {
    #[schema(format = "uuid")]
    pub uuid: String,
    pub name: String,
    /// `moved`, `failed`, `skipped` (a state that cannot move, e.g. paused) or
    /// `cancelled` (the evacuation was cancelled before or while it moved).
    pub outcome: String,
    /// Its migration's child task (none for a VM that was not tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uuid")]
    pub task: Option<String>,
    /// The host it went to (or was tried on last).
    pub to: Option<String>,
    pub live: bool,
    pub message: Option<String>,
    pub duration_ms: Option<u64>,
}

/// What an evacuation did (the task's result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EvacuateResult {
    /// The evacuated host's URI.
    pub host: String,
    pub moved: usize,
    pub failed: usize,
    /// VMs not tried: a state that cannot move, or the evacuation was cancelled first.
    #[serde(default)]
    pub skipped: usize,
    /// At most this many moved at the same time.
    #[serde(default)]
    pub max_parallel: u32,
    pub vms: Vec<EvacuatedVm>,
}

/// `POST /api/v1/vms/{uuid}/failover`: define a VM of an unreachable host on another host
/// from its last backed-up definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailoverRequest {
    /// The host to define it on (id or URI).
    pub to: String,
    /// Must be `true`: the caller confirms that the VM's host really is down. If it is
    /// not, both hosts may run the VM on the same images (split brain), which destroys
    /// its file systems.
    #[serde(default)]
    pub force: bool,
}

/// What a failover did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FailoverResult {
    #[schema(format = "uuid")]
    pub uuid: String,
    pub name: String,
    /// The unreachable host it was on, and the host it is now defined on (shut off).
    pub from: String,
    pub to: String,
    /// The backup version the definition came from, and the one recording the failover.
    pub from_version: u32,
    pub backup_version: Option<u32>,
    /// Disk images found on the target (shared storage).
    pub disks: Vec<String>,
    pub warnings: Vec<String>,
}
