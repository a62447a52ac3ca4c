//! Request and response types of the uvmm JSON API (`/api/v1`), shared by the daemon, the
//! CLI and the web UI. The OpenAPI document is generated from these types, so a field
//! documented here is documented everywhere.
//!
//! Field names are part of the interface: `name`, `uuid`, `host` (the libvirt URI),
//! `state`, `suspended`, `available`, `memory_kib`, `vcpus`, `cpu_usage`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
pub use uvmm_model::caps::GuestCaps;
pub use uvmm_model::domain::{Disk, Features, Graphics, Nic};
pub use uvmm_model::monitor::Level;
pub use uvmm_model::pending::Pending;
pub use uvmm_model::profile::Profile;
pub use uvmm_model::storage::NewPool;
pub use uvmm_model::{Action, VmState};

/// API version prefix.
pub const API_PREFIX: &str = "/api/v1";
/// Default TCP port of the API listener (the original UVMM's port).
pub const DEFAULT_TCP_PORT: u16 = 2106;
/// Default UNIX socket of the daemon.
pub const DEFAULT_SOCKET: &str = "/run/uvmm/uvmm.sock";

/// Connection status of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    /// First connection attempt still running.
    Connecting,
    Connected,
    /// Not reachable; the daemon retries with exponential back-off.
    Unavailable,
}

/// Where a managed host comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HostOrigin {
    /// Command line of uvmmd.
    Cmdline,
    /// The configuration file.
    Config,
    /// Added at runtime through the API (persisted in the state directory).
    Runtime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostSummary {
    /// Short id used in URLs (`/api/v1/hosts/{id}`); the URI is accepted as well.
    pub id: String,
    /// libvirt connection URI.
    pub uri: String,
    pub status: HostStatus,
    /// True while the host is connected.
    pub available: bool,
    pub origin: HostOrigin,
    pub hostname: Option<String>,
    /// Hypervisor driver as libvirt names it (`QEMU`, `Xen`, `TEST`).
    pub driver: Option<String>,
    pub libvirt_version: Option<String>,
    pub hypervisor_version: Option<String>,
    pub cpus: Option<u32>,
    pub memory_kib: Option<u64>,
    pub free_memory_kib: Option<u64>,
    pub vm_count: usize,
    pub running_count: usize,
    /// vCPUs of the running VMs (compare with `cpus` for overcommit).
    #[serde(default)]
    pub running_vcpus: u64,
    /// Memory of the running VMs in KiB (the memory bar where `free_memory_kib` is unknown).
    #[serde(default)]
    pub running_memory_kib: u64,
    /// CPU use by the VMs in percent of the host's CPUs (each VM's `cpu_usage` weighted by
    /// its vCPUs); absent while the host's CPU count is unknown.
    #[serde(default)]
    pub cpu_usage: Option<f64>,
    /// Why the host is unavailable, when it is.
    pub last_error: Option<String>,
    /// When the status last changed (RFC 3339).
    pub since: String,
    /// Seconds until the next reconnection attempt, while unavailable.
    pub retry_in_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostDetail {
    #[serde(flatten)]
    pub summary: HostSummary,
    pub cpu_model: Option<String>,
    pub cpu_mhz: Option<u32>,
    /// Guest types the host can run (OS type, architecture, domain and machine types).
    pub capabilities: Vec<GuestCaps>,
}

/// `POST /api/v1/hosts`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddHostRequest {
    /// libvirt URI, e.g. `qemu+ssh://kvm1.example.com/system`.
    pub uri: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VmSummary {
    pub name: String,
    pub uuid: String,
    /// URI of the host the VM is defined on.
    pub host: String,
    /// Short id of that host.
    pub host_id: String,
    pub state: VmState,
    /// libvirt's reason for the state (`booted`, `destroyed`, `user`, ...).
    pub reason: String,
    /// A managed-save image exists: `start` resumes where `suspend` left off.
    pub suspended: bool,
    /// False while the VM's host is unreachable; the other fields are then the last known.
    pub available: bool,
    pub persistent: bool,
    pub autostart: bool,
    /// Current memory in KiB.
    pub memory_kib: u64,
    pub max_memory_kib: u64,
    pub vcpus: u32,
    /// CPU usage in percent of the VM's vCPUs (0-100), smoothed.
    pub cpu_usage: f64,
    pub vnc_port: Option<u16>,
    pub description: Option<String>,
    /// `hvm` or the Xen PV types `xen`/`linux`.
    pub os_type: String,
    /// `kvm`, `qemu`, `xen`, `test`.
    pub domain_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VmDetail {
    #[serde(flatten)]
    pub summary: VmSummary,
    pub title: Option<String>,
    pub contact: Option<String>,
    /// Operating system note.
    pub os: Option<String>,
    pub arch: Option<String>,
    pub machine: Option<String>,
    /// Boot loader of PV guests (`pygrub`).
    pub bootloader: Option<String>,
    /// Boot order: target devices (`vda`, `hdc`), or `hd`/`cdrom`/`network` entries.
    pub boot_order: Vec<String>,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    pub graphics: Vec<Graphics>,
    pub rtc: Option<String>,
    pub cpu_model: Option<String>,
    pub features: Features,
    /// Version of this representation; send it as `If-Match` with changes to make sure
    /// nobody changed the VM in between (409 otherwise). Changes stored for the next start
    /// of a running VM change it too.
    pub etag: String,
    /// Changes stored for the next start of a running VM: the next-boot values where they
    /// differ from the live ones above (which stay what runs now). Absent when there are
    /// none, and for VMs that are not running.
    #[serde(default)]
    pub pending: Option<Pending>,
}

/// A disk to create in a storage pool for a new VM or drive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVolume {
    pub pool: String,
    /// Capacity in bytes.
    pub size_bytes: u64,
    /// `raw` or `qcow2` (default: the profile's, or qcow2).
    pub format: Option<String>,
    /// Volume name (default: derived from the VM name).
    pub name: Option<String>,
    /// Allocate the full size now instead of growing on demand (sparse, the default).
    #[serde(default)]
    pub preallocate: bool,
}

/// `POST /api/v1/vms`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVmRequest {
    /// Host id or URI.
    pub host: String,
    /// Profile name (`GET /api/v1/profiles`).
    pub profile: String,
    pub name: String,
    /// Memory in KiB (default: the profile's).
    pub memory_kib: Option<u64>,
    pub vcpus: Option<u32>,
    /// Disks to create; absent: one disk of the profile's size in pool `default`.
    pub disks: Option<Vec<NewVolume>>,
    /// Installation medium: a path on the host or `POOL/VOLUME`.
    pub cdrom: Option<String>,
    /// `network=NAME` or `bridge=NAME` per interface; absent: the profile's network;
    /// empty: no network interface.
    pub networks: Option<Vec<String>>,
    /// Force a domain type (e.g. `qemu` for emulation even where KVM exists).
    pub domain_type: Option<String>,
    pub description: Option<String>,
    pub contact: Option<String>,
    pub os: Option<String>,
    #[serde(default)]
    pub autostart: bool,
    /// Start the VM right away.
    #[serde(default)]
    pub start: bool,
}

/// `PATCH /api/v1/vms/{uuid}`: only the fields given change. Empty strings clear notes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VmPatch {
    pub memory_kib: Option<u64>,
    pub vcpus: Option<u32>,
    pub description: Option<String>,
    pub contact: Option<String>,
    pub os: Option<String>,
    pub autostart: Option<bool>,
    /// `utc` or `localtime`.
    pub rtc: Option<String>,
    /// `host-model`, `host-passthrough`, a model name, or empty for the default.
    pub cpu_model: Option<String>,
    /// HVM boot order: `hd`, `cdrom`, `network`, `fd` (replaces per-device orders).
    pub boot: Option<Vec<String>>,
    /// Turn the VNC console on or off.
    pub vnc: Option<bool>,
    pub vnc_keymap: Option<String>,
    pub vnc_listen: Option<String>,
    /// VNC password; empty removes it.
    pub vnc_password: Option<String>,
    /// Domain type: `qemu` (emulation, TCG) or `kvm`, as the host offers; only while the
    /// VM is shut off. Switches a VM whose host advertises a KVM that does not work.
    pub domain_type: Option<String>,
}

/// What a new drive is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DiskSource {
    /// Create a new volume (sparse unless `preallocate`).
    New {
        pool: String,
        size_bytes: u64,
        format: Option<String>,
        name: Option<String>,
        #[serde(default)]
        preallocate: bool,
    },
    /// An existing volume: `POOL/VOLUME`.
    Volume { volume: String },
    /// A block device of the host, e.g. `/dev/vg0/data`.
    Block { path: String },
    /// A CD-ROM drive, empty or with an image (path or `POOL/VOLUME`).
    Cdrom { source: Option<String> },
}

/// `POST /api/v1/vms/{uuid}/disks`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskAddRequest {
    pub source: DiskSource,
    /// `virtio`, `sata`, `ide`, `scsi`, `xen` (default: like the VM's other disks).
    pub bus: Option<String>,
}

/// `PUT /api/v1/vms/{uuid}/disks/{target}/media`: insert (`source`) or eject (`null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaRequest {
    pub source: Option<String>,
}

/// `POST /api/v1/vms/{uuid}/nics`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NicAddRequest {
    /// `network=NAME`, `bridge=NAME` or `direct=DEV`.
    pub source: String,
    /// `virtio`, `e1000`, `rtl8139`, `netfront` (default: like the VM's other NICs).
    pub model: Option<String>,
    pub mac: Option<String>,
}

/// Answer of create, edit and drive/NIC changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VmChangeResponse {
    pub vm: VmDetail,
    /// How the request was adapted to the host (e.g. KVM fell back to QEMU).
    pub notes: Vec<String>,
    /// What the user should know (e.g. a change applies at the next boot).
    pub warnings: Vec<String>,
}

/// A volume that was kept, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeptVolume {
    pub path: String,
    pub reason: String,
}

/// Answer of `DELETE /api/v1/vms/{uuid}` and of removing a drive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeleteResponse {
    pub name: String,
    pub uuid: String,
    pub deleted: Vec<String>,
    pub kept: Vec<KeptVolume>,
}

/// A page of `GET /api/v1/vms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VmPage {
    /// Number of VMs matching the filters (before offset/limit).
    pub total: usize,
    pub offset: usize,
    pub limit: Option<usize>,
    pub items: Vec<VmSummary>,
}

/// Query of `GET /api/v1/vms`.
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, utoipa::IntoParams,
)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VmQuery {
    /// Only VMs of this host (id or URI).
    pub host: Option<String>,
    /// Only VMs in this state (`running`, `shutoff`, ...).
    pub state: Option<String>,
    /// Case-insensitive glob on name, description and contact (`*web*`); plain text
    /// matches as a substring.
    pub q: Option<String>,
    /// Exact name (case-sensitive).
    pub name: Option<String>,
    /// Sort key: `name`, `host`, `state`, `memory`, `vcpus`, `cpu`; prefix `-` for
    /// descending. Default `name`.
    pub sort: Option<String>,
    pub offset: Option<usize>,
    /// Maximum rows; all when absent.
    pub limit: Option<usize>,
}

/// Answer of `POST /api/v1/vms/{uuid}/{action}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActionResponse {
    pub action: Action,
    /// The VM after the action; absent when it no longer exists (a transient VM that was
    /// stopped).
    pub vm: Option<VmSummary>,
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    HostAdded,
    HostRemoved,
    HostConnected,
    HostUnavailable,
    VmAdded,
    VmRemoved,
    /// State (or managed-save flag) changed.
    VmState,
    /// Definition or availability changed, state did not.
    VmChanged,
    /// A storage pool crossed a monitoring threshold (up or down): `level`, `message`.
    PoolAlert,
    /// A pool was added, removed, started or stopped.
    PoolChanged,
    /// The client missed events (it was too slow); reload the full state.
    Resync,
}

/// One item of the `GET /api/v1/events` stream (Server-Sent Events, `data:` is this JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Increases by one per event; gaps mean missed events.
    pub seq: u64,
    /// RFC 3339 time the daemon saw the change.
    pub time: String,
    pub kind: EventKind,
    /// Host URI.
    pub host: String,
    pub host_id: String,
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub state: Option<VmState>,
    pub previous_state: Option<VmState>,
    pub available: Option<bool>,
    pub message: Option<String>,
    /// The VM after the change (VM events except removal).
    pub vm: Option<VmSummary>,
    /// Pool events: the pool's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Pool alerts: the new level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
}

/// Body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorInfo {
    /// Stable machine-readable code: `not_found`, `ambiguous`, `invalid_transition`,
    /// `bad_request`, `conflict`, `host_unavailable`, `timeout`, `libvirt_error`, `internal`.
    pub code: String,
    pub message: String,
    /// Extra data, e.g. the candidates of an ambiguous name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// `GET /api/v1/version`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VersionInfo {
    pub version: String,
    pub api: String,
}

// ----- backups and restore -----

/// The record of one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionMeta {
    pub version: u32,
    /// RFC 3339.
    pub time: String,
    pub host: String,
    pub name: String,
    pub hypervisor: String,
    pub os_type: String,
    pub cause: String,
    pub user: Option<String>,
    #[serde(default)]
    pub deleted: bool,
    /// Length of the XML file, to notice a damaged version.
    pub xml_bytes: u64,
}

/// One VM's backups at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BackupSummary {
    pub uuid: String,
    pub name: String,
    pub host: String,
    pub hypervisor: String,
    pub os_type: String,
    /// Number of versions kept.
    pub version_count: u32,
    pub latest: u32,
    pub last_change: String,
    pub last_cause: String,
    /// The VM was deleted (its latest version is the definition it had then).
    pub deleted: bool,
    /// Read from the original UVMM's layout.
    pub old_layout: bool,
}

/// `GET /api/v1/backups/{vm}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BackupDetail {
    #[serde(flatten)]
    pub summary: BackupSummary,
    pub versions: Vec<VersionMeta>,
}

/// `GET /api/v1/backups/{vm}/versions/{n}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BackupVersion {
    pub uuid: String,
    pub meta: VersionMeta,
    pub xml: String,
}

/// `POST /api/v1/backups/prune`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PruneResponse {
    pub removed: usize,
}

/// `POST /api/v1/restore`: a backup of the daemon's store (`backup` + `version`) or a
/// definition brought along (`xml`, e.g. from the original UVMM's directory).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// Name or UUID of a backed-up VM.
    pub backup: Option<String>,
    /// Version to restore (default: the latest).
    pub version: Option<u32>,
    /// A definition to restore instead of one from the store.
    pub xml: Option<String>,
    /// Target host id or URI (default: the host the backup came from).
    pub host: Option<String>,
    /// Redefine when a VM with the same name exists.
    #[serde(default)]
    pub force: bool,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RestoreReport {
    pub name: String,
    pub uuid: String,
    /// An existing VM with this name was redefined or replaced (`force`).
    pub forced: bool,
    /// UUID of a different VM with the same name that was undefined to make room (its
    /// images were kept).
    pub replaced: Option<String>,
    pub warnings: Vec<String>,
    /// The host URI it was restored on.
    pub host: String,
}

// ----- storage -----

/// A storage pool of a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PoolSummary {
    pub name: String,
    /// Host URI and id.
    pub host: String,
    pub host_id: String,
    /// `dir`, `fs`, `netfs`, `logical`, `iscsi`, `iscsi-direct`, ...
    pub kind: String,
    pub active: bool,
    pub autostart: bool,
    pub persistent: bool,
    pub target_path: Option<String>,
    pub source: Option<String>,
    pub capacity: u64,
    pub allocation: u64,
    pub available: u64,
    /// Sum of the capacities of its volumes: what sparse volumes can grow to.
    pub provisioned: u64,
    pub volume_count: usize,
    /// Monitoring verdict with the daemon's thresholds.
    pub level: Level,
    /// Why the level is not ok.
    pub alerts: Vec<String>,
    /// False while the host is unreachable (figures are the last known).
    pub available_host: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VolumeSummary {
    pub name: String,
    pub pool: String,
    pub path: Option<String>,
    pub kind: String,
    pub format: Option<String>,
    /// Size the guest sees, in bytes.
    pub capacity: u64,
    /// Bytes actually used on disk (small for sparse volumes).
    pub allocation: u64,
    /// VMs using it, as `name@host-id`.
    pub used_by: Vec<String>,
    /// Whether uvmm would delete it (same rule as for deleting VMs).
    pub deletable: bool,
    /// Why not, when it is not deletable.
    pub keep_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PoolDetail {
    #[serde(flatten)]
    pub summary: PoolSummary,
    pub volumes: Vec<VolumeSummary>,
}

/// `POST /api/v1/hosts/{id}/pools`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePoolRequest {
    #[serde(flatten)]
    pub pool: NewPool,
    /// Create the storage (directory, file system, volume group); never overwrites data.
    #[serde(default = "yes")]
    pub build: bool,
    #[serde(default = "yes")]
    pub start: bool,
    #[serde(default = "yes")]
    pub autostart: bool,
}

fn yes() -> bool {
    true
}

/// `POST /api/v1/hosts/{id}/pools/{pool}/volumes`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVolumeRequest {
    pub name: String,
    pub size_bytes: u64,
    /// `raw` or `qcow2` (default raw).
    pub format: Option<String>,
    /// Allocate the full size now (default: sparse, allocation 0).
    #[serde(default)]
    pub preallocate: bool,
}

/// `POST /api/v1/hosts/{id}/pools/{pool}/volumes/{vol}/clone`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneVolumeRequest {
    pub name: String,
}

/// `POST /api/v1/hosts/{id}/pools/{pool}/volumes/{vol}/resize`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeVolumeRequest {
    /// New capacity in bytes; volumes only grow.
    pub size_bytes: u64,
}
