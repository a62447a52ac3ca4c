//! Request and response types of the uvmm JSON API (`/api/v1`), shared by the daemon, the
//! CLI and the web UI. The OpenAPI document is generated from these types, so a field
//! documented here is documented everywhere.
//!
//! Field names are part of the interface: `name`, `uuid`, `host` (the libvirt URI),
//! `state`, `suspended`, `available`, `memory_kib`, `vcpus`, `cpu_usage`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
pub use uvmm_model::caps::GuestCaps;
pub use uvmm_model::domain::{Disk, Graphics, Nic};
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
    /// Case-insensitive glob on name and description (`*web*`); plain text matches as a
    /// substring.
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
