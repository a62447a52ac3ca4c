//! The only code in uvmm that touches libvirt.
//!
//! Everything above this crate talks to a host through the [`Hypervisor`] trait and opens
//! hosts through a [`Connector`]. The real implementation ([`LibvirtConnector`]) uses the
//! `virt` crate. For tests, [`intercept`] wraps any connector to inject faults (a refused
//! or dropped connection, a call that hangs or fails, lost events) around the real libvirt
//! test driver, and the `fake` feature brings an in-memory hypervisor ([`fake`]) for fast
//! tests of the daemon's jobs without libvirt.
//!
//! Calls are blocking, as libvirt's are. The daemon runs each host on its own thread, so a
//! slow or hung host only ever blocks itself.

pub mod devices;
mod error;
mod eventloop;
mod events;
#[cfg(feature = "fake")]
pub mod fake;
#[cfg(feature = "fake")]
pub mod intercept;
pub mod migrate;
mod real;
mod real_ext;
pub mod snapshot;
mod stats;

pub use devices::{CpuCompatibility, DetachOutcome};
pub use error::{ErrorKind, LibvirtError};
pub use migrate::{JobProgress, MigrateParams};
pub use real::LibvirtConnector;
pub use snapshot::{SnapshotDeleteOutcome, SnapshotInfo, SnapshotSpec};

use std::sync::Arc;
use uvmm_model::caps::HostCaps;
use uvmm_model::storage::{PoolDef, VolumeDef};
use uvmm_model::{Action, VmState};

/// Static facts about a host, read once per connection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostInfo {
    pub hostname: String,
    /// Driver name as libvirt reports it: `QEMU`, `Xen`, `TEST`, ...
    pub driver: String,
    pub libvirt_version: String,
    pub hypervisor_version: String,
    pub cpus: u32,
    pub cpu_model: String,
    pub cpu_mhz: u32,
    pub memory_kib: u64,
    pub caps: HostCaps,
}

/// Everything the cache keeps about one domain, read in one go.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainSnapshot {
    pub uuid: String,
    pub name: String,
    pub state: VmState,
    /// libvirt's raw state reason; see `uvmm_model::state::state_reason`.
    pub reason: u32,
    pub persistent: bool,
    pub autostart: bool,
    /// A managed-save image exists (the VM was suspended to disk).
    pub managed_save: bool,
    pub max_memory_kib: u64,
    pub memory_kib: u64,
    pub vcpus: u32,
    pub cpu_time_ns: u64,
    /// Live XML (what is running now, e.g. with the assigned VNC port), with secrets.
    pub xml: String,
    /// The persistent definition (with secrets) of a running persistent domain: what its
    /// next start brings, when changes were stored while it ran. `None` for inactive and
    /// transient domains, whose live XML is all there is.
    pub next_boot_xml: Option<String>,
}

/// A storage pool as libvirt reports it now.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PoolInfo {
    pub def: PoolDef,
    pub active: bool,
    pub autostart: bool,
    pub persistent: bool,
    pub capacity: u64,
    pub allocation: u64,
    pub available: u64,
}

/// A storage volume and the pool it lives in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VolumeInfo {
    pub pool: String,
    pub def: VolumeDef,
}

/// Operations on a storage pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolAction {
    /// Create the pool's storage (directory, file system, volume group); never overwrites
    /// existing data.
    Build,
    Start,
    Stop,
    /// Re-read the pool's volumes and sizes from the storage.
    Refresh,
    /// Remove the definition (storage untouched).
    Undefine,
    /// Remove the pool's storage (e.g. the empty directory); the pool must be stopped.
    DeleteStorage,
    Autostart(bool),
}

/// A libvirt virtual network.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetworkInfo {
    pub name: String,
    pub bridge: Option<String>,
    pub active: bool,
}

/// Per-domain figures from one `virConnectGetAllDomainStats` call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DomainStats {
    pub uuid: String,
    pub state: Option<VmState>,
    pub reason: Option<u32>,
    pub balloon_maximum_kib: Option<u64>,
    pub cpu_time_ns: Option<u64>,
    pub balloon_current_kib: Option<u64>,
    pub vcpus_current: Option<u32>,
}

/// libvirt's lifecycle event types (`virDomainEventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Defined,
    Undefined,
    Started,
    Suspended,
    Resumed,
    Stopped,
    Shutdown,
    PmSuspended,
    Crashed,
    Other(i32),
}

impl Lifecycle {
    pub fn from_raw(code: i32) -> Lifecycle {
        match code {
            0 => Lifecycle::Defined,
            1 => Lifecycle::Undefined,
            2 => Lifecycle::Started,
            3 => Lifecycle::Suspended,
            4 => Lifecycle::Resumed,
            5 => Lifecycle::Stopped,
            6 => Lifecycle::Shutdown,
            7 => Lifecycle::PmSuspended,
            8 => Lifecycle::Crashed,
            other => Lifecycle::Other(other),
        }
    }
}

/// What a connection reports asynchronously.
#[derive(Debug, Clone, PartialEq)]
pub enum HostEvent {
    /// A lifecycle event for one domain.
    Lifecycle {
        uuid: String,
        name: String,
        event: Lifecycle,
        detail: i32,
    },
    /// A device, medium or metadata of a domain changed (no state change).
    DomainChanged { uuid: String, name: String },
    /// The connection is gone (EOF, keepalive timeout, error).
    Closed { reason: String },
}

/// Receives events; called on libvirt's event thread, so it must not block.
pub type EventSink = Arc<dyn Fn(HostEvent) + Send + Sync>;

/// One open connection to one host.
///
/// Every method but `uri` has a default that answers "not supported" (what libvirt says for
/// a driver without the call): an implementation says what it can do, and a fake for tests
/// implements only what the tests need.
pub trait Hypervisor: Send + Sync {
    fn uri(&self) -> &str;
    fn host_info(&self) -> Result<HostInfo, LibvirtError> {
        Err(not_supported("reading host facts"))
    }
    /// Every domain, active and inactive.
    fn list_domains(&self) -> Result<Vec<DomainSnapshot>, LibvirtError> {
        Err(not_supported("listing domains"))
    }
    /// One domain; `Ok(None)` when it does not exist (any more).
    fn domain(&self, _uuid: &str) -> Result<Option<DomainSnapshot>, LibvirtError> {
        Err(not_supported("reading a domain"))
    }
    fn action(&self, _uuid: &str, action: Action) -> Result<(), LibvirtError> {
        Err(not_supported(action.as_str()))
    }
    /// Statistics of all domains in one call; with `active_only`, of the active ones
    /// (those with a domain ID: running, paused, ...), which is all that changes between
    /// events.
    fn domain_stats(&self, _active_only: bool) -> Result<Vec<DomainStats>, LibvirtError> {
        Err(not_supported("bulk statistics"))
    }
    fn free_memory_kib(&self) -> Result<u64, LibvirtError> {
        Err(not_supported("reading free memory"))
    }
    /// Domain XML; `inactive` for the persistent definition, `secure` to include secrets
    /// (VNC passwords).
    fn domain_xml(
        &self,
        _uuid: &str,
        _inactive: bool,
        _secure: bool,
    ) -> Result<String, LibvirtError> {
        Err(not_supported("reading domain XML"))
    }
    /// The persistent definitions (inactive XML with secrets) of those of `wanted` that
    /// exist, as `(uuid, xml)`: what the definition watch compares. The default reads each
    /// with `domain_xml`; the real implementation lists the persistent domains once and
    /// saves the per-VM lookup (one round trip per VM instead of two).
    fn persistent_definitions(
        &self,
        wanted: &[String],
    ) -> Result<Vec<(String, String)>, LibvirtError> {
        let mut out = Vec::with_capacity(wanted.len());
        for uuid in wanted {
            match self.domain_xml(uuid, true, true) {
                Ok(xml) => out.push((uuid.clone(), xml)),
                Err(e) if e.kind == ErrorKind::Connection => return Err(e),
                // Gone, or an odd answer about one domain: looked at next time.
                Err(_) => {}
            }
        }
        Ok(out)
    }
    /// Define (create or replace) a persistent domain; returns its UUID.
    fn define(&self, _xml: &str) -> Result<String, LibvirtError> {
        Err(not_supported("defining domains"))
    }
    /// Remove a domain's definition with its managed-save image, snapshot metadata and
    /// NVRAM. Disk images are not touched.
    fn undefine(&self, _uuid: &str) -> Result<(), LibvirtError> {
        Err(not_supported("undefining domains"))
    }
    fn set_autostart(&self, _uuid: &str, _on: bool) -> Result<(), LibvirtError> {
        Err(not_supported("autostart"))
    }
    /// Change a device (e.g. the medium of a CD-ROM): with `live` in the running VM only,
    /// otherwise in the persistent definition only. The two are changed separately
    /// because they may differ (changes stored for the next start), and libvirt refuses a
    /// device of one that does not fit the other.
    fn update_device(
        &self,
        _uuid: &str,
        _device_xml: &str,
        _live: bool,
    ) -> Result<(), LibvirtError> {
        Err(not_supported("changing devices"))
    }
    /// Update the running VM's notes: `<description>` and the project's metadata element
    /// (`None` removes it). The persistent definition is changed through `define`.
    fn set_live_notes(
        &self,
        _uuid: &str,
        _description: Option<&str>,
        _notes_xml: Option<&str>,
    ) -> Result<(), LibvirtError> {
        Err(not_supported("changing a running domain's notes"))
    }
    fn pools(&self) -> Result<Vec<PoolInfo>, LibvirtError> {
        Err(not_supported("storage pools"))
    }
    fn volumes(&self, _pool: &str) -> Result<Vec<VolumeInfo>, LibvirtError> {
        Err(not_supported("storage volumes"))
    }
    /// One volume of a pool, `Ok(None)` when the pool has none of that name. Also while
    /// libvirt still builds it (a clone in progress), which is how its progress is read.
    fn volume(&self, pool: &str, name: &str) -> Result<Option<VolumeInfo>, LibvirtError> {
        Ok(self.volumes(pool)?.into_iter().find(|v| v.def.name == name))
    }
    fn create_volume(&self, _pool: &str, _xml: &str) -> Result<VolumeInfo, LibvirtError> {
        Err(not_supported("creating volumes"))
    }
    fn delete_volume(&self, _pool: &str, _name: &str) -> Result<(), LibvirtError> {
        Err(not_supported("deleting volumes"))
    }
    /// The volume at a path, when some pool holds it.
    fn volume_by_path(&self, _path: &str) -> Result<Option<VolumeInfo>, LibvirtError> {
        Err(not_supported("finding volumes by path"))
    }
    /// The first `len` bytes of a volume, read through libvirt (works for remote hosts).
    fn read_volume(&self, _pool: &str, _name: &str, _len: u64) -> Result<Vec<u8>, LibvirtError> {
        Err(not_supported("reading volumes"))
    }
    fn define_pool(&self, _xml: &str) -> Result<(), LibvirtError> {
        Err(not_supported("defining storage pools"))
    }
    fn pool_action(&self, _pool: &str, _action: PoolAction) -> Result<(), LibvirtError> {
        Err(not_supported("this storage pool operation"))
    }
    /// Create `xml` (a new volume) as a copy of volume `source` of the same pool.
    fn clone_volume(
        &self,
        _pool: &str,
        _source: &str,
        _xml: &str,
    ) -> Result<VolumeInfo, LibvirtError> {
        Err(not_supported("cloning volumes"))
    }
    /// Grow a volume to `capacity` bytes.
    fn resize_volume(&self, _pool: &str, _name: &str, _capacity: u64) -> Result<(), LibvirtError> {
        Err(not_supported("resizing volumes"))
    }
    fn networks(&self) -> Result<Vec<NetworkInfo>, LibvirtError> {
        Err(not_supported("virtual networks"))
    }
    /// Names of the host's network interfaces (bridges included), where the driver can
    /// list them.
    fn interfaces(&self) -> Result<Vec<String>, LibvirtError> {
        Err(not_supported("listing interfaces"))
    }
    /// Whether the connection is still usable.
    fn is_alive(&self) -> bool {
        true
    }

    // --- Moving and copying VMs (issue 16). Every method has a default body that says
    // "not supported", so drivers (and test wrappers) need only what they can do. The
    // orchestration (checks first, progress, cleanup, the outcome on both hosts) lives in
    // `migrate`, `snapshot` and `devices`, over these primitives.

    /// Live-migrate a running domain peer to peer: this host's libvirtd connects to
    /// `dest_uri` (as *it* reaches the target) and drives the migration
    /// (`virDomainMigrateToURI3` with `VIR_MIGRATE_PEER2PEER`). Blocks until the migration
    /// ended; progress is read meanwhile with [`Hypervisor::job_progress`] (from another
    /// thread, ideally over another connection) and it is cancelled with
    /// [`Hypervisor::abort_job`]. When this returns an error, libvirt has either resumed
    /// the domain here or (if it could not learn the target's outcome) left it paused here:
    /// `migrate::migrate_live` finds out which.
    fn migrate_to(
        &self,
        uuid: &str,
        dest_uri: &str,
        params: &MigrateParams,
    ) -> Result<(), LibvirtError> {
        let _ = (uuid, dest_uri, params);
        Err(not_supported("live migration"))
    }
    /// Progress of the domain's current job (`virDomainGetJobStats`); with `completed`, the
    /// statistics of the last completed job (on a migration's target: downtime and totals).
    /// `Ok(None)` when there is no job (or no statistics).
    fn job_progress(
        &self,
        uuid: &str,
        completed: bool,
    ) -> Result<Option<JobProgress>, LibvirtError> {
        let _ = (uuid, completed);
        Err(not_supported("job statistics"))
    }
    /// Abort the domain's current job (a migration: the domain keeps running here).
    fn abort_job(&self, uuid: &str) -> Result<(), LibvirtError> {
        let _ = uuid;
        Err(not_supported("aborting a job"))
    }
    /// Switch a running migration started with post-copy allowed into post-copy mode.
    fn start_post_copy(&self, uuid: &str) -> Result<(), LibvirtError> {
        let _ = uuid;
        Err(not_supported("post-copy migration"))
    }
    /// Can this host run a guest CPU (`<cpu>` XML) with this emulator/arch/machine/domain
    /// type (`virConnectCompareHypervisorCPU`)?
    fn compare_cpu(
        &self,
        cpu_xml: &str,
        arch: Option<&str>,
        machine: Option<&str>,
        virt_type: Option<&str>,
    ) -> Result<CpuCompatibility, LibvirtError> {
        let _ = (cpu_xml, arch, machine, virt_type);
        Err(not_supported("CPU comparison"))
    }
    /// Stream a volume's bytes (from offset 0) into `sink`; returns the byte count.
    fn download_volume(
        &self,
        pool: &str,
        name: &str,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), LibvirtError>,
    ) -> Result<u64, LibvirtError> {
        let _ = (pool, name, sink);
        Err(not_supported("volume download"))
    }
    /// Replace a volume's bytes with what `source` yields (it returns 0 at the end).
    fn upload_volume(
        &self,
        pool: &str,
        name: &str,
        source: &mut dyn FnMut(&mut [u8]) -> Result<usize, LibvirtError>,
    ) -> Result<u64, LibvirtError> {
        let _ = (pool, name, source);
        Err(not_supported("volume upload"))
    }
    /// Redefine snapshot metadata (`VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE`), e.g. on the
    /// target of an offline migration; `current` marks it the current snapshot.
    fn snapshot_redefine(&self, uuid: &str, xml: &str, current: bool) -> Result<(), LibvirtError> {
        let _ = (uuid, xml, current);
        Err(not_supported("snapshot redefinition"))
    }
    /// Create a snapshot; returns its name.
    fn snapshot_create(&self, uuid: &str, spec: &SnapshotSpec) -> Result<String, LibvirtError> {
        let _ = (uuid, spec);
        Err(not_supported("snapshots"))
    }
    /// Every snapshot of a domain, parents before children.
    fn snapshots(&self, uuid: &str) -> Result<Vec<SnapshotInfo>, LibvirtError> {
        let _ = uuid;
        Err(not_supported("snapshots"))
    }
    /// Revert to a snapshot. `running`: start (or keep) the domain running afterwards
    /// even if the snapshot was taken while it was off.
    fn snapshot_revert(&self, uuid: &str, name: &str, running: bool) -> Result<(), LibvirtError> {
        let _ = (uuid, name, running);
        Err(not_supported("snapshots"))
    }
    /// Delete one snapshot without losing data of another snapshot or of the current
    /// state: through libvirt (which merges external ones), falling back to
    /// [`Hypervisor::snapshot_merge_external`] where libvirt cannot delete external
    /// snapshots; otherwise refused with the reason (see [`SnapshotDeleteOutcome`]).
    fn snapshot_delete(
        &self,
        uuid: &str,
        name: &str,
        timeout: std::time::Duration,
    ) -> Result<SnapshotDeleteOutcome, LibvirtError> {
        let _ = (uuid, name, timeout);
        Err(not_supported("snapshots"))
    }
    /// uvmm's own merge of an external snapshot (what `snapshot_delete` falls back to where
    /// libvirt cannot delete external snapshots): only the newest one, by an active block
    /// commit and pivot per disk; anything else is refused with the reason.
    fn snapshot_merge_external(
        &self,
        uuid: &str,
        name: &str,
        timeout: std::time::Duration,
    ) -> Result<SnapshotDeleteOutcome, LibvirtError> {
        let _ = (uuid, name, timeout);
        Err(not_supported("snapshots"))
    }
    /// Attach a device: `live` to the running domain, `persist` to its definition.
    fn attach_device(
        &self,
        uuid: &str,
        device_xml: &str,
        live: bool,
        persist: bool,
    ) -> Result<(), LibvirtError> {
        let _ = (uuid, device_xml, live, persist);
        Err(not_supported("device hot-plug"))
    }
    /// Detach a device: from the definition at once (`persist`), from the running domain
    /// (`live`) with the guest's cooperation, waiting up to `timeout` for it.
    fn detach_device(
        &self,
        uuid: &str,
        device_xml: &str,
        live: bool,
        persist: bool,
        timeout: std::time::Duration,
    ) -> Result<DetachOutcome, LibvirtError> {
        let _ = (uuid, device_xml, live, persist, timeout);
        Err(not_supported("device hot-unplug"))
    }
    /// Rename a shut-off domain (`virDomainRename`); the UUID stays.
    fn rename(&self, uuid: &str, new_name: &str) -> Result<(), LibvirtError> {
        let _ = (uuid, new_name);
        Err(not_supported("rename"))
    }
    /// Start a shut-off domain paused (the guest does not run until resumed).
    fn start_paused(&self, uuid: &str) -> Result<(), LibvirtError> {
        let _ = uuid;
        Err(not_supported("starting paused"))
    }
}

/// The error of a default trait body: this driver (or wrapper) cannot do `what`.
pub fn not_supported(what: &str) -> LibvirtError {
    LibvirtError::new(
        ErrorKind::NotSupported,
        format!("{what} is not supported by this connection"),
    )
}

/// Opens connections. Events of the new connection go to `sink` until it is dropped.
pub trait Connector: Send + Sync {
    fn connect(&self, uri: &str, sink: EventSink) -> Result<Arc<dyn Hypervisor>, LibvirtError>;
}
