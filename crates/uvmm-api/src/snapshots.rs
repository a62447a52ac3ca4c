//! Snapshots of a VM (`/api/v1/vms/{uuid}/snapshots`) and renaming a VM.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Internal (inside the qcow2 images) or external (new overlay images).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKindName {
    #[default]
    Internal,
    External,
}

/// `POST /api/v1/vms/{uuid}/snapshots`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshotRequest {
    /// 1-64 characters: letters, digits, `.`, `_`, `-`.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub name: String,
    pub description: Option<String>,
    /// `internal` (default; every disk must be qcow2) or `external` (overlays; works for
    /// raw images too).
    #[serde(default)]
    pub kind: SnapshotKindName,
    /// Capture the running VM's memory (internal snapshots of a running VM always do;
    /// external ones write it next to the VM's first disk image as
    /// `<image>.<snapshot>.mem` — uvmmd picks the path, clients cannot).
    #[serde(default)]
    pub memory: bool,
}

/// One snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Snapshot {
    pub name: String,
    pub parent: Option<String>,
    /// The VM's current state descends from this one.
    pub current: bool,
    pub kind: SnapshotKindName,
    /// The VM's state when it was taken (`running`, `shutoff`, `disk-snapshot`, …).
    pub state: String,
    pub description: Option<String>,
    /// RFC 3339.
    pub created: String,
    pub memory: bool,
    /// Depth in the tree (0: a root); the list is in tree order (parents first).
    pub depth: u32,
}

/// How deleting a snapshot ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotDeleted {
    pub name: String,
    /// `deleted` (internal), `merged` (external: overlays committed into their backing
    /// images; no data of another snapshot or of the current state is lost).
    pub how: String,
    /// Overlay files removed (by libvirt) or left unused on disk (by uvmm's merge).
    pub overlays: Vec<String>,
    /// A memory file libvirt leaves behind.
    pub memory_file: Option<String>,
}

/// `POST /api/v1/vms/{uuid}/rename`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub name: String,
}

/// How a clone gets its disks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloneModeName {
    /// A full copy of every writable disk (a task with progress).
    #[default]
    Copy,
    /// A new qcow2 image per disk backed by the source's image (instant; the source must
    /// stay shut off and unchanged, every linked clone reads its images).
    Linked,
}

/// `POST /api/v1/vms/{uuid}/clone`: a copy of a shut-off VM, with a new name, a new UUID
/// and (unless `keep_macs`) new MAC addresses, on the same host or (`target_host`, full
/// copies only) on another managed host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneRequest {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub name: String,
    #[serde(default)]
    pub mode: CloneModeName,
    /// Keep the source's MAC addresses (for a clone that replaces its source).
    #[serde(default)]
    pub keep_macs: bool,
    /// Host id or URI to put the clone on (default: the source's host). The clone is made
    /// on the source's host and moved there offline with its disks (not copied where the
    /// pool is shared); its images on the source's host are then deleted. Needs the
    /// `hosts` permission (it moves a VM) besides `create`. Refused for linked clones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_host: Option<String>,
}
