//! Request and response types of the uvmm JSON API (`/api/v1`), shared by the daemon, the
//! CLI and the web UI. The OpenAPI document is generated from these types, so a field
//! documented here is documented everywhere.
//!
//! Field names are part of the interface: `name`, `uuid`, `host` (the libvirt URI),
//! `state`, `suspended`, `available`, `memory_kib`, `vcpus`, `cpu_usage`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod auth;
mod events;
mod migrate;
mod snapshots;
mod tasks;

pub use auth::{GrantInfo, LoginRequest, NewTokenResponse, TokenCreateRequest, TokenInfo, WhoAmI};

pub use events::{Change, Event, EventKind, EventWire, ResyncNotice};
pub use migrate::{
    CopyStorageMode, EvacuateRequest, EvacuateResult, EvacuatedVm, FailoverRequest, FailoverResult,
    MigrateRequest, MigrateResult,
};
pub use snapshots::{
    CloneModeName, CloneRequest, CreateSnapshotRequest, RenameRequest, Snapshot, SnapshotDeleted,
    SnapshotKindName,
};
pub use tasks::{CancelMode, MigrationProgress, Task, TaskKind, TaskState};
pub use uvmm_model::caps::GuestCaps;
pub use uvmm_model::domain::{Disk, Features, Graphics, Nic};
pub use uvmm_model::monitor::Level;
pub use uvmm_model::pending::Pending;
pub use uvmm_model::profile::Profile;
pub use uvmm_model::storage::NewPool;
pub use uvmm_model::{Action, VmState};

/// The patterns of the OpenAPI document, as the server checks them (the schema attributes
/// below repeat them: utoipa takes literals only; a test compares).
pub mod patterns {
    /// VM names (`uvmm_model::validate::vm_name`).
    pub const VM_NAME: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";
    /// Volume names (`validate::volume_name`): no `/`, no `..`, not starting with `.`.
    pub const VOLUME_NAME: &str = "^[A-Za-z0-9_+@:-](\\.?[A-Za-z0-9_+@:-])*\\.?$";
    /// Pool and network names (`validate::object_name`).
    pub const OBJECT_NAME: &str = "^[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}$";
    /// An image: an absolute path without `..` segments, or `POOL/VOLUME`.
    pub const IMAGE: &str = "^((/([^/\\x00-\\x1F\\x7F-\\x9F]*[^/.\\x00-\\x1F\\x7F-\\x9F][^/\\x00-\\x1F\\x7F-\\x9F]*|\\.?|\\.{3,}))+|[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}/[A-Za-z0-9_+@:-](\\.?[A-Za-z0-9_+@:-])*\\.?)$";
    /// An absolute path without `..` segments (`validate::host_path`).
    pub const PATH: &str = "^(/([^/\\x00-\\x1F\\x7F-\\x9F]*[^/.\\x00-\\x1F\\x7F-\\x9F][^/\\x00-\\x1F\\x7F-\\x9F]*|\\.?|\\.{3,}))+$";
    /// A libvirt URI (`uvmm_model::hosts::HostUri::parse`): known driver and transport,
    /// printable ASCII, a host part of letters, digits, `.`, `-`, `_` (or `[IPv6]`).
    pub const HOST_URI: &str = "^(qemu|test|xen|libxl|lxc|bhyve|vz|ch)(\\+(unix|tcp|tls|ssh|libssh|libssh2|ext))?://([!-.0->@-~]*@)?(\\[[A-Za-z0-9._:-]*\\][!-.0->A-~]*|[A-Za-z0-9._-]*(:[!-.0->A-~]*)?)(/[!->@-~]*)?(\\?[!-~]*)?$";
    /// A unicast MAC address (`validate::mac`: the lowest bit of the first octet is 0).
    pub const MAC: &str = "^[0-9A-Fa-f][02468AaCcEe](:[0-9A-Fa-f]{2}){5}$";
    /// Free text: no control characters but newline and tab.
    pub const NOTE: &str = "^[^\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F]*$";
}

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
    /// A host entry of the LDAP directory (directory mode, `-b ldap://…`).
    Directory,
}

/// `GET /api/v1/directory`: standalone, or the state of the directory connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DirectoryStatus {
    /// `standalone` (`-b ""`: no directory) or `directory`.
    pub mode: String,
    /// The directory's URI (no credentials are ever part of it).
    pub uri: Option<String>,
    /// The last refresh reached the directory.
    pub online: bool,
    /// Directory mode and not online: serving hosts, profiles and notes from the cache.
    pub degraded: bool,
    /// Why the directory cannot be reached.
    pub degraded_reason: Option<String>,
    /// Unix seconds since when it is degraded.
    pub degraded_since: Option<i64>,
    /// The state in use came from the disk cache (since the start).
    pub from_cache: bool,
    /// Unix seconds of the directory state in use.
    pub state_time: Option<i64>,
    /// Note edits queued while the directory is down (replayed when it is back).
    pub pending_writes: usize,
    /// How changes are followed: `sync` (RFC 4533 refresh) or `poll`.
    pub method: Option<String>,
    /// Seconds between refreshes.
    pub refresh_interval_secs: Option<u64>,
    /// Hosts and profiles the directory names now.
    pub hosts: usize,
    pub profiles: usize,
    /// Host entries uvmmd does not connect to, with the reason: their URI fails the
    /// runtime host policy (`[directory] trust_host_uris` lifts it).
    #[serde(default)]
    pub refused_hosts: Vec<RefusedHost>,
}

/// A host the directory names that uvmmd refuses to connect to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefusedHost {
    pub uri: String,
    pub reason: String,
}

impl DirectoryStatus {
    pub fn standalone() -> DirectoryStatus {
        DirectoryStatus {
            mode: "standalone".into(),
            uri: None,
            online: false,
            degraded: false,
            degraded_reason: None,
            degraded_since: None,
            from_cache: false,
            state_time: None,
            pending_writes: 0,
            method: None,
            refresh_interval_secs: None,
            hosts: 0,
            profiles: 0,
            refused_hosts: Vec::new(),
        }
    }
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
    /// libvirt URI, e.g. `qemu+ssh://kvm1.example.com/system`: a known driver and
    /// transport, printable ASCII, at most 1024 characters. Hosts added here may not use the
    /// `ext` transport, URI parameters that name local programs, sockets or files, or
    /// `test:///` files outside the configured directories (403).
    #[schema(
        max_length = 1024,
        pattern = "^(qemu|test|xen|libxl|lxc|bhyve|vz|ch)(\\+(unix|tcp|tls|ssh|libssh|libssh2|ext))?://([!-.0->@-~]*@)?(\\[[A-Za-z0-9._:-]*\\][!-.0->A-~]*|[A-Za-z0-9._-]*(:[!-.0->A-~]*)?)(/[!->@-~]*)?(\\?[!-~]*)?$"
    )]
    pub uri: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VmSummary {
    pub name: String,
    #[schema(format = "uuid")]
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
    /// An active storage pool of the host.
    #[schema(pattern = "^[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}$")]
    pub pool: String,
    /// Capacity in bytes.
    #[schema(minimum = 1)]
    pub size_bytes: u64,
    /// `raw` or `qcow2` (default: the profile's, or qcow2).
    #[schema(value_type = Option<VolumeFormat>)]
    pub format: Option<String>,
    /// Volume name (default: derived from the VM name); no `..`.
    #[schema(
        max_length = 255,
        pattern = "^[A-Za-z0-9_+@:-](\\.?[A-Za-z0-9_+@:-])*\\.?$"
    )]
    pub name: Option<String>,
    /// Allocate the full size now instead of growing on demand (sparse, the default).
    #[serde(default)]
    pub preallocate: bool,
}

/// `POST /api/v1/vms`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVmRequest {
    /// Host id or URI (404 when no such host is managed).
    #[schema(min_length = 1)]
    pub host: String,
    /// Profile name (`GET /api/v1/profiles`; 404 when there is none).
    #[schema(min_length = 1)]
    pub profile: String,
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub name: String,
    /// Memory in KiB (default: the profile's): at least 16 MiB; more than the host has is
    /// refused with 409.
    #[schema(minimum = 16384, maximum = 9007199254740991u64)]
    pub memory_kib: Option<u64>,
    /// At least 1; more than four per host CPU is refused with 409.
    #[schema(minimum = 1)]
    pub vcpus: Option<u32>,
    /// Disks to create; absent: one disk of the profile's size in pool `default`.
    pub disks: Option<Vec<NewVolume>>,
    /// Installation medium: a path on the host or `POOL/VOLUME`.
    #[schema(
        max_length = 4096,
        pattern = "^((/([^/\\x00-\\x1F\\x7F-\\x9F]*[^/.\\x00-\\x1F\\x7F-\\x9F][^/\\x00-\\x1F\\x7F-\\x9F]*|\\.?|\\.{3,}))+|[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}/[A-Za-z0-9_+@:-](\\.?[A-Za-z0-9_+@:-])*\\.?)$"
    )]
    pub cdrom: Option<String>,
    /// `network=NAME` or `bridge=NAME` per interface; absent: the profile's network;
    /// empty: no network interface. The network or bridge must exist (404 otherwise).
    #[schema(inline, value_type = Option<Vec<NetworkSpec>>)]
    pub networks: Option<Vec<String>>,
    /// Force a domain type (e.g. `qemu` for emulation even where KVM exists); the host
    /// must offer it for the profile's guest type (409 otherwise).
    #[schema(value_type = Option<DomainType>)]
    pub domain_type: Option<String>,
    /// At most 4096 characters, no control characters but newline and tab.
    #[schema(max_length = 4096, pattern = "^[^\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F]*$")]
    pub description: Option<String>,
    /// Like `description`.
    #[schema(max_length = 4096, pattern = "^[^\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F]*$")]
    pub contact: Option<String>,
    /// Like `description`.
    #[schema(max_length = 4096, pattern = "^[^\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F]*$")]
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
    /// Memory in KiB: at least 16 MiB; more than the host has is refused with 409.
    #[schema(minimum = 16384, maximum = 9007199254740991u64)]
    pub memory_kib: Option<u64>,
    /// At least 1; more than four per host CPU is refused with 409.
    #[schema(minimum = 1)]
    pub vcpus: Option<u32>,
    /// At most 4096 characters, no control characters but newline and tab; empty clears.
    #[schema(max_length = 4096, pattern = "^[^\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F]*$")]
    pub description: Option<String>,
    /// Like `description`.
    #[schema(max_length = 4096, pattern = "^[^\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F]*$")]
    pub contact: Option<String>,
    /// Like `description`.
    #[schema(max_length = 4096, pattern = "^[^\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F]*$")]
    pub os: Option<String>,
    pub autostart: Option<bool>,
    /// `utc` or `localtime`.
    #[schema(value_type = Option<Rtc>)]
    pub rtc: Option<String>,
    /// `host-model`, `host-passthrough`, a model name, or empty for the default.
    #[schema(pattern = "^[A-Za-z0-9._-]{0,64}$")]
    pub cpu_model: Option<String>,
    /// HVM boot order: `hd`, `cdrom`, `network`, `fd` (replaces per-device orders). Xen PV
    /// VMs boot from their first disk: a boot order for them is refused with 409.
    #[schema(inline, value_type = Option<Vec<BootDevice>>)]
    pub boot: Option<Vec<String>>,
    /// Turn the VNC console on or off.
    pub vnc: Option<bool>,
    /// e.g. `de`, `en-us`; empty for the default. The VNC settings need a VNC console (409
    /// otherwise).
    #[schema(pattern = "^([a-z-]{2,8})?$")]
    pub vnc_keymap: Option<String>,
    /// An IP address (IPv4 or IPv6), or empty for the default.
    pub vnc_listen: Option<String>,
    /// VNC password: at most 64 characters, no control characters; empty removes it. Needs
    /// a VNC console (409 otherwise).
    #[schema(max_length = 64, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$")]
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
        #[schema(pattern = "^[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}$")]
        pool: String,
        #[schema(minimum = 1)]
        size_bytes: u64,
        #[schema(value_type = Option<VolumeFormat>)]
        format: Option<String>,
        #[schema(
            max_length = 255,
            pattern = "^[A-Za-z0-9_+@:-](\\.?[A-Za-z0-9_+@:-])*\\.?$"
        )]
        name: Option<String>,
        #[serde(default)]
        preallocate: bool,
    },
    /// An existing volume: `POOL/VOLUME`, or an image path below a storage pool or a
    /// directory the configuration allows (403 otherwise).
    Volume {
        #[schema(
            max_length = 4096,
            pattern = "^((/([^/\\x00-\\x1F\\x7F-\\x9F]*[^/.\\x00-\\x1F\\x7F-\\x9F][^/\\x00-\\x1F\\x7F-\\x9F]*|\\.?|\\.{3,}))+|[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}/[A-Za-z0-9_+@:-](\\.?[A-Za-z0-9_+@:-])*\\.?)$"
        )]
        volume: String,
    },
    /// A block device of the host, e.g. `/dev/vg0/data` (below a permitted directory: 403
    /// otherwise).
    Block {
        #[schema(
            max_length = 4096,
            pattern = "^(/([^/\\x00-\\x1F\\x7F-\\x9F]*[^/.\\x00-\\x1F\\x7F-\\x9F][^/\\x00-\\x1F\\x7F-\\x9F]*|\\.?|\\.{3,}))+$"
        )]
        path: String,
    },
    /// A CD-ROM drive, empty or with an image (path or `POOL/VOLUME`).
    Cdrom {
        #[schema(
            max_length = 4096,
            pattern = "^((/([^/\\x00-\\x1F\\x7F-\\x9F]*[^/.\\x00-\\x1F\\x7F-\\x9F][^/\\x00-\\x1F\\x7F-\\x9F]*|\\.?|\\.{3,}))+|[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}/[A-Za-z0-9_+@:-](\\.?[A-Za-z0-9_+@:-])*\\.?)$"
        )]
        source: Option<String>,
    },
}

/// `POST /api/v1/vms/{uuid}/disks`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskAddRequest {
    pub source: DiskSource,
    /// `virtio`, `sata`, `ide`, `scsi`, `xen` (default: like the VM's other disks). Xen PV
    /// VMs take `xen` only (409 otherwise).
    #[schema(value_type = Option<DiskBus>)]
    pub bus: Option<String>,
    /// Also attach it to the running VM now (hot-plug; QEMU VMs). Default: a running VM
    /// gets it at its next start.
    #[serde(default)]
    pub live: bool,
}

/// `PUT /api/v1/vms/{uuid}/disks/{target}/media`: insert (`source`) or eject (`null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaRequest {
    /// An image path or `POOL/VOLUME`; `null` ejects.
    #[schema(
        max_length = 4096,
        pattern = "^((/([^/\\x00-\\x1F\\x7F-\\x9F]*[^/.\\x00-\\x1F\\x7F-\\x9F][^/\\x00-\\x1F\\x7F-\\x9F]*|\\.?|\\.{3,}))+|[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}/[A-Za-z0-9_+@:-](\\.?[A-Za-z0-9_+@:-])*\\.?)$"
    )]
    pub source: Option<String>,
}

/// `POST /api/v1/vms/{uuid}/nics`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NicAddRequest {
    /// `network=NAME`, `bridge=NAME` or `direct=DEV`; it must exist on the host (404).
    #[schema(pattern = "^(network|bridge|direct)=[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}$")]
    pub source: String,
    /// The device model (default: like the VM's other NICs).
    #[schema(value_type = Option<NicModel>)]
    pub model: Option<String>,
    /// Unicast MAC address (default: a random one).
    #[schema(pattern = "^[0-9A-Fa-f][02468AaCcEe](:[0-9A-Fa-f]{2}){5}$")]
    pub mac: Option<String>,
    /// Also attach it to the running VM now (hot-plug; QEMU VMs). Default: a running VM
    /// gets it at its next start.
    #[serde(default)]
    pub live: bool,
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
    #[schema(format = "uuid")]
    pub uuid: String,
    pub deleted: Vec<String>,
    pub kept: Vec<KeptVolume>,
    /// What the user should know (e.g. the change applies at the next boot, the backup of
    /// the change failed).
    #[serde(default)]
    pub warnings: Vec<String>,
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
    /// Only VMs in this state (other capitalisations are accepted too).
    #[param(value_type = Option<VmState>)]
    pub state: Option<String>,
    /// Case-insensitive glob on name, description and contact (`*web*`); plain text
    /// matches as a substring.
    pub q: Option<String>,
    /// Exact name (case-sensitive).
    pub name: Option<String>,
    /// Sort key: `name`, `host`, `state`, `memory`, `vcpus`, `cpu`; prefix `-` for
    /// descending. Default `name`.
    #[param(pattern = "^-?(name|host|state|memory|vcpus|cpu)$")]
    pub sort: Option<String>,
    /// Rows to skip.
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

/// The codes of `ErrorInfo.code` (the field stays a string, so that a client built today
/// reads a code added tomorrow; the document lists them all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    Ambiguous,
    InvalidTransition,
    Conflict,
    TooLarge,
    UnsupportedMediaType,
    Internal,
    NotSupported,
    LibvirtError,
    HostUnavailable,
    TooManyConnections,
    Timeout,
    /// Too many failed logins: wait `Retry-After` seconds.
    TooManyRequests,
    /// A service uvmmd needs for this is not available (PAM not set up).
    Unavailable,
    MigrationRefused,
    MigrationFailed,
}

/// Body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorInfo {
    /// Stable machine-readable code (see `ErrorCode` and docs/api.md).
    #[schema(value_type = ErrorCode)]
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
    /// The snapshot this version records (taken or deleted); a snapshot taken has its
    /// definition (`virDomainSnapshotGetXMLDesc`) kept with the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotRecord>,
}

/// A snapshot recorded in a backup version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRecord {
    pub name: String,
    /// `created` or `deleted`.
    pub event: String,
    /// Length of the snapshot's definition file (a snapshot taken), to notice damage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xml_bytes: Option<u64>,
}

/// One VM's backups at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BackupSummary {
    #[schema(format = "uuid")]
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
    #[schema(format = "uuid")]
    pub uuid: String,
    pub meta: VersionMeta,
    pub xml: String,
    /// The definition of the snapshot this version records as taken, without secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_xml: Option<String>,
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
    #[schema(minimum = 1)]
    pub version: Option<u32>,
    /// A definition to restore instead of one from the store.
    pub xml: Option<String>,
    /// Target host id or URI (default: the host the backup came from).
    pub host: Option<String>,
    /// Redefine when the VM exists under the same name (same UUID).
    #[serde(default)]
    pub force: bool,
    /// Also when a *different* VM (another UUID) has the name: undefine it (its images
    /// are kept) and restore this one in its place. Without it such a restore is refused.
    #[serde(default)]
    pub replace: bool,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RestoreReport {
    pub name: String,
    #[schema(format = "uuid")]
    pub uuid: String,
    /// An existing VM with this name was redefined or replaced (`force`).
    pub forced: bool,
    /// UUID of a different VM with the same name that was undefined to make room (its
    /// images were kept).
    #[schema(format = "uuid")]
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
    /// When libvirt last re-read the pool's storage for these figures (RFC 3339; absent
    /// for inactive pools and pools never refreshed). libvirt reports a pool's allocation
    /// as of its last refresh, so this is how current the figures are.
    #[serde(default)]
    pub refreshed: Option<String>,
    /// Seconds since `refreshed`, when the answer was made.
    #[serde(default)]
    pub age_secs: Option<u64>,
    /// The daemon refreshes active pools before their figures are this old
    /// (`pool_interval_secs`).
    #[serde(default)]
    pub max_age_secs: u64,
    /// The figures are older than `max_age_secs` (or were never refreshed): the refresh
    /// fails (`refresh_error`) or the host is unreachable. Do not judge the pool by them.
    #[serde(default)]
    pub stale: bool,
    /// Why the last refresh failed.
    #[serde(default)]
    pub refresh_error: Option<String>,
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

/// Answer of `POST /api/v1/hosts/{id}/pools`: the new pool, and what the user should know
/// (e.g. it is defined but not started).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PoolCreated {
    #[serde(flatten)]
    pub pool: PoolDetail,
    #[serde(default)]
    pub warnings: Vec<String>,
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

/// What `POST /api/v1/hosts/{id}/pools/{pool}/{action}` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PoolCommand {
    Start,
    /// Refused while running VMs use its volumes.
    Stop,
    /// Re-read the pool's volumes and figures from the storage.
    Refresh,
}

impl PoolCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolCommand::Start => "start",
            PoolCommand::Stop => "stop",
            PoolCommand::Refresh => "refresh",
        }
    }
}

impl std::str::FromStr for PoolCommand {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "start" => Ok(PoolCommand::Start),
            "stop" => Ok(PoolCommand::Stop),
            "refresh" => Ok(PoolCommand::Refresh),
            other => Err(format!(
                "unknown pool action '{other}' (expected start, stop or refresh)"
            )),
        }
    }
}

/// `POST /api/v1/hosts/{id}/pools/{pool}/volumes`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVolumeRequest {
    /// No `..`.
    #[schema(
        max_length = 255,
        pattern = "^[A-Za-z0-9_+@:-](\\.?[A-Za-z0-9_+@:-])*\\.?$"
    )]
    pub name: String,
    #[schema(minimum = 1)]
    pub size_bytes: u64,
    /// `raw` or `qcow2` (default: what the name ends in, `.qcow2` → qcow2, else raw; a raw
    /// volume named `.qcow2` is refused).
    #[schema(value_type = Option<VolumeFormat>)]
    pub format: Option<String>,
    /// Allocate the full size now (default: sparse, allocation 0).
    #[serde(default)]
    pub preallocate: bool,
}

/// `POST /api/v1/hosts/{id}/pools/{pool}/volumes/{vol}/clone`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneVolumeRequest {
    /// The new volume's name; no `..`.
    #[schema(
        max_length = 255,
        pattern = "^[A-Za-z0-9_+@:-](\\.?[A-Za-z0-9_+@:-])*\\.?$"
    )]
    pub name: String,
}

/// `POST /api/v1/hosts/{id}/pools/{pool}/volumes/{vol}/resize`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeVolumeRequest {
    /// New capacity in bytes; volumes only grow (409 when it is not more than now).
    #[schema(minimum = 1)]
    pub size_bytes: u64,
}

// ----- value sets the schema documents (the fields stay strings) -----

/// Image formats uvmm creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VolumeFormat {
    Raw,
    Qcow2,
}

/// Domain types a VM can be created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DomainType {
    Kvm,
    Qemu,
    Xen,
}

/// Real-time clock of a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Rtc {
    Utc,
    Localtime,
}

/// Boot devices of an HVM boot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BootDevice {
    Hd,
    Cdrom,
    Network,
    Fd,
}

/// Buses a new drive can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiskBus {
    Virtio,
    Sata,
    Ide,
    Scsi,
    Xen,
}

/// Network interface models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NicModel {
    Virtio,
    E1000,
    E1000e,
    Rtl8139,
    Netfront,
    Ne2kPci,
    Pcnet,
}

/// `network=NAME` or `bridge=NAME`.
#[derive(ToSchema)]
#[schema(pattern = "^(network|bridge)=[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}$")]
pub struct NetworkSpec(pub String);

#[cfg(test)]
mod tests {
    use super::patterns::*;
    use regex::Regex;
    use utoipa::PartialSchema;
    use uvmm_model::validate;

    /// A fixed pseudo-random sequence (no dependency, same strings every run).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        /// A string of up to `max` characters drawn mostly from `alphabet`.
        fn string(&mut self, alphabet: &[char], max: u64) -> String {
            let len = self.next() % (max + 1);
            (0..len)
                .map(|_| {
                    if self.next() % 20 == 0 {
                        let odd = ['\n', '\u{85}', 'é', ' ', '\u{7f}'];
                        odd[usize::try_from(self.next() % 5).unwrap_or(0)]
                    } else {
                        let n = alphabet.len();
                        alphabet[usize::try_from(self.next()).unwrap_or(0) % n]
                    }
                })
                .collect()
        }
    }

    /// The document's patterns say exactly what the server's checks say: for every string
    /// of a large generated set, the pattern matches iff the check accepts.
    #[test]
    fn patterns_agree_with_the_server_checks() {
        let names: Vec<char> = "aZ09._-+@:/%".chars().collect();
        let paths: Vec<char> = "/a.b-".chars().collect();
        let uris: Vec<char> = "qemu+ssh:/test[]@?=x.1-_ %".chars().collect();
        type Check = fn(&str) -> bool;
        let table: Vec<(&str, Check, &[char], u64)> = vec![
            (VM_NAME, |s| validate::vm_name(s).is_ok(), &names, 70),
            (
                VOLUME_NAME,
                |s| validate::volume_name(s).is_ok() && s.len() <= 255,
                &names,
                20,
            ),
            (
                OBJECT_NAME,
                |s| validate::object_name("pool", s).is_ok(),
                &names,
                20,
            ),
            (PATH, |s| validate::host_path(s).is_ok(), &paths, 12),
            (
                HOST_URI,
                |s| uvmm_model::hosts::HostUri::parse(s).is_ok(),
                &uris,
                30,
            ),
        ];
        let mut rng = Lcg(7);
        for (pattern, check, alphabet, max) in table {
            let re = Regex::new(pattern).unwrap();
            for i in 0..20_000 {
                let mut s = rng.string(alphabet, max);
                if pattern == HOST_URI && i % 2 == 0 {
                    s = format!("qemu+ssh://{s}");
                }
                assert_eq!(
                    re.is_match(&s),
                    check(&s),
                    "pattern {pattern} and the server disagree on {s:?}"
                );
            }
        }
        let mac = Regex::new(MAC).unwrap();
        for s in [
            "52:54:00:12:34:56",
            "53:54:00:12:34:56",
            "01:00:5e:00:00:01",
            "FE:ff:00:00:00:0a",
            "52:54:00:12:34",
            "52-54-00-12-34-56",
            "52:54:00:12:34:5g",
            "52:54:00:12:34:56:78",
        ] {
            assert_eq!(mac.is_match(s), validate::mac(s).is_ok(), "{s}");
        }
    }

    /// The schema attributes repeat the patterns as literals (utoipa takes no constants).
    #[test]
    fn schema_attributes_use_the_patterns() {
        let schema = |s: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>| {
            serde_json::to_value(s).unwrap()
        };
        let host = schema(super::AddHostRequest::schema());
        assert_eq!(host["properties"]["uri"]["pattern"], HOST_URI);
        let vm = schema(super::CreateVmRequest::schema());
        assert_eq!(vm["properties"]["name"]["pattern"], VM_NAME);
        assert_eq!(vm["properties"]["cdrom"]["pattern"], IMAGE);
        let vol = schema(super::CreateVolumeRequest::schema());
        assert_eq!(vol["properties"]["name"]["pattern"], VOLUME_NAME);
        let clone = schema(super::CloneVolumeRequest::schema());
        assert_eq!(clone["properties"]["name"]["pattern"], VOLUME_NAME);
        let nic = schema(super::NicAddRequest::schema());
        assert_eq!(nic["properties"]["mac"]["pattern"], MAC);
        let patch = schema(super::VmPatch::schema());
        assert_eq!(patch["properties"]["description"]["pattern"], NOTE);
        let pool = schema(uvmm_model::storage::NewPool::schema());
        assert_eq!(pool["properties"]["name"]["pattern"], OBJECT_NAME);
        assert_eq!(pool["properties"]["target_path"]["pattern"], PATH);
    }
}
