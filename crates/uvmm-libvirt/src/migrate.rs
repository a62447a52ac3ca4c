//! Moving a VM between hosts: live migration, offline migration and failover.
//!
//! Everything here works over [`Hypervisor`] connections, so the daemon's task layer calls
//! it with the connections of its task (one to the source, one to the target, and a second
//! one to the source for progress while the first blocks in the migration call).
//!
//! The rule every function keeps: **the VM is never left defined on neither host nor
//! running on both.**
//! - Nothing moves before [`check_migration`] found the target able to take the VM: CPU
//!   model, domain type and machine, name/UUID clashes, memory, networks, pools, and which
//!   disks are on shared storage; a refusal lists every reason ([`MigrationError::Refused`]).
//! - Live migration is peer to peer: the source libvirtd drives it, and libvirt's protocol
//!   resumes the guest on the target only in its *Finish* step, after the source stopped
//!   sending, and resumes it on the source only when Finish reported failure. When the
//!   source cannot learn Finish's outcome (the target died at that moment) libvirt leaves
//!   the source *paused*; [`migrate_live`] then reports [`Side::Paused`] and never resumes
//!   it on its own, because the target may be running it. Post-copy gives that up once it
//!   switched (the state is split between hosts): it is off unless asked for.
//! - With `undefine_source` the definition is removed from the source only after libvirt
//!   made it persistent on the target (`VIR_MIGRATE_PERSIST_DEST` is implied), in libvirt's
//!   Confirm step after a successful Finish.
//! - Offline migration copies the disks, defines the target, and only then undefines the
//!   source; a failure at any step undoes the target's side (volumes it created,
//!   definition), so the VM stays where it was.
//! - After every attempt both hosts are asked where the VM is ([`Placement`]), and that,
//!   not the libvirt call's return value alone, is what the result reports.

use crate::{ErrorKind, Hypervisor, LibvirtError, VolumeInfo};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use uvmm_model::domain::{parse_domain, DomainDef};
use uvmm_model::VmState;

/// How the disks get to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CopyStorage {
    /// Copy exactly the disks that are not on shared storage (the check decides).
    #[default]
    Auto,
    /// Copy nothing: every disk must be on shared storage, or the check refuses.
    Never,
    /// Copy every writable disk in full (`VIR_MIGRATE_NON_SHARED_DISK`).
    All,
    /// Copy only the top image of each disk; its backing files must already be on the
    /// target (`VIR_MIGRATE_NON_SHARED_INC`).
    Incremental,
}

/// Post-copy: the guest switches to the target early and pulls the rest of its memory on
/// demand. Converges for any guest, but from the switch on a failure of either host or of
/// the network loses the running guest (its memory is split between the hosts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PostCopy {
    #[default]
    Off,
    /// Allowed (`VIR_MIGRATE_POSTCOPY`), switched to only through
    /// [`Hypervisor::start_post_copy`] by the caller.
    Allowed,
    /// Allowed and switched to automatically this long after the start.
    After(Duration),
}

/// What a caller asks of a live migration.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// The target as the *source libvirtd* reaches it (peer to peer), e.g.
    /// `qemu+tcp://host2/system` or `qemu+ssh://host2/system`.
    pub dest_uri: String,
    /// Limit in MiB/s (`VIR_MIGRATE_PARAM_BANDWIDTH`).
    pub bandwidth_mib_s: Option<u64>,
    /// Slow the guest's vCPUs down when it dirties memory faster than it can be sent.
    pub auto_converge: bool,
    pub post_copy: PostCopy,
    pub copy_storage: CopyStorage,
    /// Keep the definition on the target and remove it from the source (the usual "move").
    /// Without it the target runs a transient copy and the source keeps its definition.
    pub undefine_source: bool,
    /// libvirt refuses to migrate disks on file systems it cannot tell are shared (a local
    /// file system, a bind mount) as "unsafe". With this set, a disk that uvmm *proved* shared
    /// (a probe volume created on the source was seen on the target) is migrated anyway
    /// (`VIR_MIGRATE_UNSAFE`, only when every non-copied disk was proven so).
    pub trust_proven_shared_storage: bool,
    /// A definition to run on the target (same name and UUID), e.g. with other paths.
    pub dest_xml: Option<String>,
    /// Where the target's QEMU listens (`VIR_MIGRATE_PARAM_URI`), e.g. `tcp://10.0.0.2`.
    pub migration_uri: Option<String>,
    /// How often progress is read.
    pub poll_interval: Duration,
}

impl MigrateOptions {
    pub fn new(dest_uri: impl Into<String>) -> MigrateOptions {
        MigrateOptions {
            dest_uri: dest_uri.into(),
            bandwidth_mib_s: None,
            auto_converge: false,
            post_copy: PostCopy::Off,
            copy_storage: CopyStorage::Auto,
            undefine_source: true,
            trust_proven_shared_storage: false,
            dest_xml: None,
            migration_uri: None,
            poll_interval: Duration::from_millis(200),
        }
    }
}

/// The parameters of one libvirt migration call (what [`Hypervisor::migrate_to`] passes on).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MigrateParams {
    pub bandwidth_mib_s: Option<u64>,
    pub auto_converge: bool,
    pub post_copy: bool,
    /// `All` or `Incremental` copy the disks named in `migrate_disks` (all writable ones
    /// when empty); `Auto`/`Never` copy none.
    pub copy_storage: CopyStorage,
    pub migrate_disks: Vec<String>,
    pub persist_on_target: bool,
    pub undefine_source: bool,
    /// `VIR_MIGRATE_UNSAFE` (see [`MigrateOptions::trust_proven_shared_storage`]).
    pub unsafe_ok: bool,
    pub dest_xml: Option<String>,
    pub migration_uri: Option<String>,
}

/// Progress of a libvirt job (`virDomainGetJobStats`), in bytes and milliseconds. Fields
/// are `None` where libvirt did not report them (they depend on the phase and the driver).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobProgress {
    /// `virDomainJobType`: 0 none, 1 bounded, 2 unbounded, 3 completed, 4 failed,
    /// 5 cancelled.
    pub job_type: i32,
    /// `virDomainJobOperation`: e.g. 2 incoming migration, 3 outgoing migration.
    pub operation: Option<i32>,
    pub time_elapsed_ms: Option<u64>,
    pub time_remaining_ms: Option<u64>,
    pub data_total: Option<u64>,
    pub data_processed: Option<u64>,
    pub data_remaining: Option<u64>,
    pub mem_total: Option<u64>,
    pub mem_processed: Option<u64>,
    pub mem_remaining: Option<u64>,
    /// Memory transfer rate, bytes/s.
    pub mem_bps: Option<u64>,
    /// Pages the guest dirties per second.
    pub mem_dirty_rate: Option<u64>,
    pub mem_iteration: Option<u64>,
    pub disk_total: Option<u64>,
    pub disk_processed: Option<u64>,
    pub disk_remaining: Option<u64>,
    pub disk_bps: Option<u64>,
    /// Time the guest was stopped for the switch-over (completed jobs).
    pub downtime_ms: Option<u64>,
    pub setup_time_ms: Option<u64>,
    /// vCPU throttle in percent while auto-converge slows the guest.
    pub auto_converge_throttle: Option<i32>,
    pub postcopy_requests: Option<u64>,
    pub error_message: Option<String>,
}

impl JobProgress {
    /// Whether a job is running (bounded or unbounded).
    pub fn active(&self) -> bool {
        matches!(self.job_type, 1 | 2)
    }
}

/// One reason the target cannot take the VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incompatibility {
    /// The VM must be running (live) or shut off (offline) for this.
    State(String),
    Cpu(String),
    DomainType(String),
    Machine(String),
    /// A domain of that name or UUID exists on the target.
    Exists(String),
    Memory(String),
    Network(String),
    Storage(String),
}

impl std::fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, msg) = match self {
            Incompatibility::State(m) => ("state", m),
            Incompatibility::Cpu(m) => ("CPU", m),
            Incompatibility::DomainType(m) => ("domain type", m),
            Incompatibility::Machine(m) => ("machine", m),
            Incompatibility::Exists(m) => ("name/UUID", m),
            Incompatibility::Memory(m) => ("memory", m),
            Incompatibility::Network(m) => ("network", m),
            Incompatibility::Storage(m) => ("storage", m),
        };
        write!(f, "{what}: {msg}")
    }
}

fn join_reasons(r: &[Incompatibility]) -> String {
    r.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// How one disk gets to the target.
#[derive(Debug, Clone, PartialEq)]
pub enum DiskMove {
    /// The target sees the same image (shared storage); `proven` when a probe volume
    /// showed it (rather than the pools' network source).
    Shared { proven: bool },
    /// The image is copied into this target pool under the same name (and path).
    Copy {
        target_pool: String,
        volume: VolumeInfo,
    },
    /// Read-only media (CD-ROM) present on the target at the same path.
    Present,
}

/// One disk of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskPlan {
    pub target: String,
    pub path: String,
    pub source_pool: Option<String>,
    pub how: DiskMove,
}

/// What [`check_migration`] found: the target can take the VM this way.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationPlan {
    pub uuid: String,
    pub name: String,
    /// Live migration (the VM runs) or offline.
    pub live: bool,
    pub disks: Vec<DiskPlan>,
    /// Things that are fine but worth saying (e.g. a bridge that could not be verified).
    pub notes: Vec<String>,
}

impl MigrationPlan {
    /// Disks that will be copied.
    pub fn copied(&self) -> impl Iterator<Item = &DiskPlan> {
        self.disks
            .iter()
            .filter(|d| matches!(d.how, DiskMove::Copy { .. }))
    }
}

/// Where a VM is on one host after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// Not defined there.
    Absent,
    /// Defined, running.
    Running { persistent: bool },
    /// Defined and paused (after a migration whose outcome libvirt could not learn).
    Paused { persistent: bool },
    /// Defined, not running (shut off, crashed ...).
    Inactive { state: VmState },
    /// The host could not be asked.
    Unreachable(String),
}

impl Side {
    fn of(h: &dyn Hypervisor, uuid: &str) -> Side {
        match h.domain(uuid) {
            Ok(None) => Side::Absent,
            Ok(Some(d)) => match d.state {
                VmState::Running => Side::Running {
                    persistent: d.persistent,
                },
                VmState::Paused => Side::Paused {
                    persistent: d.persistent,
                },
                s => Side::Inactive { state: s },
            },
            Err(e) => Side::Unreachable(e.message),
        }
    }

    fn running(&self) -> bool {
        matches!(self, Side::Running { .. })
    }

    fn defined(&self) -> bool {
        !matches!(self, Side::Absent | Side::Unreachable(_))
    }
}

/// Where the VM is after an attempt, as both hosts answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub source: Side,
    pub target: Side,
}

impl Placement {
    pub fn of(source: &dyn Hypervisor, target: &dyn Hypervisor, uuid: &str) -> Placement {
        Placement {
            source: Side::of(source, uuid),
            target: Side::of(target, uuid),
        }
    }

    /// The guest runs on both hosts: must never happen; reported loudly if libvirt ever
    /// let it.
    pub fn running_on_both(&self) -> bool {
        self.source.running() && self.target.running()
    }

    /// Defined on neither host (both answered).
    pub fn on_neither(&self) -> bool {
        matches!(self.source, Side::Absent) && matches!(self.target, Side::Absent)
    }

    /// In one sentence, for errors and logs.
    pub fn describe(&self) -> String {
        let side = |s: &Side| match s {
            Side::Absent => "not defined".to_string(),
            Side::Running { persistent } => {
                format!("running{}", if *persistent { "" } else { " (transient)" })
            }
            Side::Paused { .. } => "paused".to_string(),
            Side::Inactive { state } => format!("{state:?}").to_lowercase(),
            Side::Unreachable(e) => format!("unreachable ({e})"),
        };
        format!(
            "on the source: {}; on the target: {}",
            side(&self.source),
            side(&self.target)
        )
    }
}

/// What came of a migration that did not complete.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The check found reasons not to start; nothing was changed on either host.
    #[error("the target cannot take this VM: {}", join_reasons(.0))]
    Refused(Vec<Incompatibility>),
    /// A libvirt call needed for the check or preparation failed; nothing moved.
    #[error("could not prepare the migration: {0}")]
    Prepare(#[source] LibvirtError),
    /// Cancelled by the caller; the VM is where `placement` says (normally running on the
    /// source).
    #[error("migration aborted; the VM is {}", .placement.describe())]
    Aborted { placement: Placement },
    /// libvirt reported a failure; `placement` says where the VM is.
    #[error("migration failed: {cause}; the VM is {}", .placement.describe())]
    Failed {
        #[source]
        cause: LibvirtError,
        placement: Placement,
    },
}

/// What a successful migration did.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationReport {
    pub plan: MigrationPlan,
    pub duration: Duration,
    /// The target's statistics of the completed job (downtime, totals), where reported.
    pub completed: Option<JobProgress>,
    /// The last progress read while it ran.
    pub last_progress: Option<JobProgress>,
    /// Volumes created on the target for copied disks.
    pub created_volumes: Vec<(String, String)>,
    pub placement: Placement,
}

/// What the caller hears while a migration runs.
#[derive(Debug, Clone, PartialEq)]
pub enum MigrationEvent {
    /// The check passed with this plan.
    Planned(MigrationPlan),
    /// A target volume was created (pool, name).
    VolumeCreated(String, String),
    /// Progress of the libvirt job.
    Progress(Box<JobProgress>),
    /// Bytes of a disk copied so far (offline migration): disk target, done, total.
    CopyProgress(String, u64, u64),
    /// The caller's cancel was passed to libvirt.
    AbortRequested,
    /// Switched to post-copy.
    PostCopyStarted,
}

fn def_of(xml: &str) -> Result<DomainDef, MigrationError> {
    parse_domain(xml).map_err(|e| {
        MigrationError::Prepare(LibvirtError::new(
            ErrorKind::Other,
            format!("unreadable domain XML: {e}"),
        ))
    })
}

/// The `<cpu>` element of a domain XML, verbatim, if it has one.
fn cpu_element(xml: &str) -> Option<String> {
    let root = uvmm_model::xml::parse(xml).ok()?;
    root.child("cpu").map(|c| c.to_xml())
}

/// Check that `target` can take the VM `uuid` of `source` and decide how each disk moves.
/// Reads only, except for shared-storage probes (a tiny volume created and removed again in
/// a source pool). `live`: the VM must be running (live migration) or shut off (offline).
pub fn check_migration(
    source: &dyn Hypervisor,
    target: &dyn Hypervisor,
    uuid: &str,
    live: bool,
    copy: CopyStorage,
) -> Result<MigrationPlan, MigrationError> {
    let dom = source
        .domain(uuid)
        .map_err(MigrationError::Prepare)?
        .ok_or_else(|| {
            MigrationError::Prepare(LibvirtError::new(
                ErrorKind::NotFound,
                format!("domain {uuid} not found on the source"),
            ))
        })?;
    let mut reasons = Vec::new();
    let mut notes = Vec::new();
    if live && dom.state != VmState::Running {
        reasons.push(Incompatibility::State(format!(
            "a live migration needs a running VM; it is {:?}",
            dom.state
        )));
    }
    if !live && dom.state != VmState::Shutoff {
        reasons.push(Incompatibility::State(format!(
            "an offline migration needs a shut-off VM; it is {:?}",
            dom.state
        )));
    }
    if !live && dom.managed_save {
        reasons.push(Incompatibility::State(
            "it has a managed-save image (suspended to disk), which cannot move".into(),
        ));
    }
    // The live XML of a running VM has the CPU QEMU really got (host-model expanded).
    let def = def_of(&dom.xml)?;
    let info = target.host_info().map_err(MigrationError::Prepare)?;

    // Domain type, architecture, machine.
    let arch = def.arch.clone();
    let guests: Vec<_> = info
        .caps
        .guests
        .iter()
        .filter(|g| {
            g.os_type == def.os_type && (arch.is_none() || Some(g.arch.as_str()) == arch.as_deref())
        })
        .collect();
    if !guests
        .iter()
        .any(|g| g.domain_types.contains(&def.domain_type))
    {
        reasons.push(Incompatibility::DomainType(format!(
            "the target offers no '{}' domains for {} {}",
            def.domain_type,
            def.os_type,
            arch.as_deref().unwrap_or("")
        )));
    } else if let Some(m) = &def.machine {
        if !guests.iter().any(|g| g.machines.iter().any(|x| x == m)) {
            reasons.push(Incompatibility::Machine(format!(
                "the target's emulator has no machine type '{m}'"
            )));
        }
    }

    // CPU: the target compares the guest's CPU with what its hypervisor can provide.
    match cpu_element(&dom.xml) {
        Some(cpu) if cpu.contains("host-passthrough") => {
            // The guest sees the host CPU as it is: only the same CPU model is safe.
            match source.host_info() {
                Ok(src) if src.cpu_model != info.cpu_model => {
                    reasons.push(Incompatibility::Cpu(format!(
                        "host-passthrough CPU: source CPU '{}' differs from the target's '{}'",
                        src.cpu_model, info.cpu_model
                    )))
                }
                Ok(_) => {}
                Err(e) => return Err(MigrationError::Prepare(e)),
            }
        }
        Some(cpu) => match target.compare_cpu(
            &cpu,
            arch.as_deref(),
            def.machine.as_deref(),
            Some(&def.domain_type),
        ) {
            Ok(crate::CpuCompatibility::Incompatible(why)) => {
                reasons.push(Incompatibility::Cpu(why))
            }
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::NotSupported => {
                notes.push(format!("the target cannot compare CPUs ({e}); not checked"))
            }
            Err(e) => reasons.push(Incompatibility::Cpu(e.message)),
        },
        None => {}
    }

    // Name and UUID must be free on the target.
    match target.domain(uuid) {
        Ok(Some(d)) => reasons.push(Incompatibility::Exists(format!(
            "the target already has this VM (UUID {uuid}, '{}', {:?})",
            d.name, d.state
        ))),
        Ok(None) => {}
        Err(e) => return Err(MigrationError::Prepare(e)),
    }
    match target.list_domains() {
        Ok(list) => {
            if let Some(d) = list.iter().find(|d| d.name == dom.name && d.uuid != uuid) {
                reasons.push(Incompatibility::Exists(format!(
                    "the target has another VM named '{}' (UUID {})",
                    d.name, d.uuid
                )));
            }
        }
        Err(e) => return Err(MigrationError::Prepare(e)),
    }

    // Memory: a live guest needs its memory free on the target right away.
    if live {
        match target.free_memory_kib() {
            Ok(free) if free < def.memory_kib => reasons.push(Incompatibility::Memory(format!(
                "the VM needs {} MiB, the target has {} MiB free",
                def.memory_kib / 1024,
                free / 1024
            ))),
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::NotSupported => {}
            Err(e) => return Err(MigrationError::Prepare(e)),
        }
    }

    // Networks and bridges.
    let nets = target.networks().map_err(MigrationError::Prepare)?;
    let ifaces = target.interfaces().ok();
    for nic in &def.nics {
        let Some(src) = &nic.source else { continue };
        match nic.kind.as_str() {
            "network" => match nets.iter().find(|n| &n.name == src) {
                Some(n) if n.active => {}
                Some(_) => reasons.push(Incompatibility::Network(format!(
                    "network '{src}' exists on the target but is not active"
                ))),
                None => reasons.push(Incompatibility::Network(format!(
                    "the target has no network '{src}'"
                ))),
            },
            "bridge" => match &ifaces {
                Some(list) if list.iter().any(|i| i == src) => {}
                Some(_) if nets.iter().any(|n| n.bridge.as_deref() == Some(src)) => {}
                Some(_) => reasons.push(Incompatibility::Network(format!(
                    "the target has no bridge '{src}'"
                ))),
                None => notes.push(format!(
                    "the target cannot list its interfaces: bridge '{src}' not verified"
                )),
            },
            _ => {}
        }
    }

    // Storage: per disk, shared or copied (into a pool with the same path).
    let src_pools = source.pools().map_err(MigrationError::Prepare)?;
    let dst_pools = target.pools().map_err(MigrationError::Prepare)?;
    let mut disks = Vec::new();
    let mut probed: std::collections::HashMap<(String, String), bool> = Default::default();
    for disk in &def.disks {
        let Some(path) = disk.source.clone() else {
            continue; // an empty CD-ROM drive
        };
        if disk.kind != "file" && disk.kind != "block" && disk.kind != "volume" {
            if copy == CopyStorage::All || copy == CopyStorage::Incremental {
                reasons.push(Incompatibility::Storage(format!(
                    "{}: {} disks cannot be copied",
                    disk.target, disk.kind
                )));
            }
            // Network disks (rbd, iscsi, ...) are reached from any host.
            disks.push(DiskPlan {
                target: disk.target.clone(),
                path,
                source_pool: None,
                how: DiskMove::Shared { proven: false },
            });
            continue;
        }
        let vol = source
            .volume_by_path(&path)
            .map_err(MigrationError::Prepare)?;
        let readonly = disk.readonly || disk.device == "cdrom" || disk.device == "floppy";
        let on_target = target
            .volume_by_path(&path)
            .map_err(MigrationError::Prepare)?;
        let Some(vol) = vol else {
            // Not in a pool: uvmm cannot create it on the target nor probe it.
            if readonly && on_target.is_some() {
                disks.push(DiskPlan {
                    target: disk.target.clone(),
                    path,
                    source_pool: None,
                    how: DiskMove::Present,
                });
            } else {
                reasons.push(Incompatibility::Storage(format!(
                    "{}: {path} is in no storage pool of the source, so uvmm can neither \
                     tell whether it is shared nor create it on the target",
                    disk.target
                )));
            }
            continue;
        };
        let spool = src_pools.iter().find(|p| p.def.name == vol.pool);
        // A target pool for this disk: same path (libvirt uses the same path on the
        // target), or for network pools the same source.
        let dpool = spool.and_then(|sp| {
            dst_pools.iter().find(|dp| {
                dp.active && dp.def.kind == sp.def.kind && dp.def.target_path == sp.def.target_path
            })
        });
        let shared = match (spool, dpool) {
            (Some(sp), Some(dp)) => {
                if uvmm_model::storage::pool_is_shared(&sp.def.kind)
                    && sp.def.source.is_some()
                    && sp.def.source == dp.def.source
                {
                    Some(false)
                } else if matches!(sp.def.kind.as_str(), "dir" | "fs" | "netfs") {
                    let key = (sp.def.name.clone(), dp.def.name.clone());
                    let seen = match probed.get(&key) {
                        Some(s) => *s,
                        None => {
                            let s = probe_shared(source, &sp.def.name, target, &dp.def.name)
                                .map_err(MigrationError::Prepare)?;
                            probed.insert(key, s);
                            s
                        }
                    };
                    seen.then_some(true)
                } else {
                    None
                }
            }
            _ => None,
        };
        if readonly {
            if shared.is_some() || on_target.is_some() {
                disks.push(DiskPlan {
                    target: disk.target.clone(),
                    path,
                    source_pool: Some(vol.pool.clone()),
                    how: DiskMove::Present,
                });
            } else {
                reasons.push(Incompatibility::Storage(format!(
                    "{}: the medium {path} is not on the target",
                    disk.target
                )));
            }
            continue;
        }
        let want_copy = match copy {
            CopyStorage::Never => false,
            CopyStorage::All | CopyStorage::Incremental => true,
            CopyStorage::Auto => shared.is_none(),
        };
        if !want_copy {
            match shared {
                Some(proven) => disks.push(DiskPlan {
                    target: disk.target.clone(),
                    path,
                    source_pool: Some(vol.pool.clone()),
                    how: DiskMove::Shared { proven },
                }),
                None => reasons.push(Incompatibility::Storage(format!(
                    "{}: {path} is not on storage the target shares, and copying was not allowed",
                    disk.target
                ))),
            }
            continue;
        }
        if shared.is_some() {
            reasons.push(Incompatibility::Storage(format!(
                "{}: {path} is on shared storage; copying it onto itself would destroy it",
                disk.target
            )));
            continue;
        }
        let Some(dp) = dpool else {
            reasons.push(Incompatibility::Storage(format!(
                "{}: the target has no active pool at {} to copy {path} into",
                disk.target,
                spool
                    .and_then(|p| p.def.target_path.clone())
                    .unwrap_or_else(|| "the same path".into())
            )));
            continue;
        };
        if on_target.is_some() {
            reasons.push(Incompatibility::Storage(format!(
                "{}: {path} already exists on the target and would be overwritten",
                disk.target
            )));
            continue;
        }
        let need = if copy == CopyStorage::Incremental {
            vol.def.allocation
        } else {
            vol.def.capacity.max(vol.def.allocation)
        };
        if dp.available < need && vol.def.format.as_deref() != Some("qcow2") {
            reasons.push(Incompatibility::Storage(format!(
                "{}: pool '{}' on the target has {} bytes free, the disk needs {need}",
                disk.target, dp.def.name, dp.available
            )));
            continue;
        }
        disks.push(DiskPlan {
            target: disk.target.clone(),
            path,
            source_pool: Some(vol.pool.clone()),
            how: DiskMove::Copy {
                target_pool: dp.def.name.clone(),
                volume: vol,
            },
        });
    }
    if !reasons.is_empty() {
        return Err(MigrationError::Refused(reasons));
    }
    Ok(MigrationPlan {
        uuid: uuid.to_string(),
        name: dom.name,
        live,
        disks,
        notes,
    })
}

/// Does the target see what the source writes into this pool? A tiny volume made in the
/// source pool is looked for in the target pool (after a refresh) and removed again.
fn probe_shared(
    source: &dyn Hypervisor,
    source_pool: &str,
    target: &dyn Hypervisor,
    target_pool: &str,
) -> Result<bool, LibvirtError> {
    let name = format!(
        ".uvmm-shared-probe-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ (source_pool.len() as u128)
    );
    let xml = uvmm_model::storage::volume_xml(&name, 512, Some("raw"), true);
    source.create_volume(source_pool, &xml)?;
    let seen = (|| {
        target.pool_action(target_pool, crate::PoolAction::Refresh)?;
        Ok::<bool, LibvirtError>(target.volume(target_pool, &name)?.is_some())
    })();
    let deleted = source.delete_volume(source_pool, &name);
    // Let the target forget the probe too.
    let _ = target.pool_action(target_pool, crate::PoolAction::Refresh);
    let seen = seen?;
    deleted?;
    Ok(seen)
}

/// Create the target volumes of the copied disks (same name, capacity and format).
/// Returns what it created; on failure removes those again.
fn create_target_volumes(
    plan: &MigrationPlan,
    target: &dyn Hypervisor,
    events: &mut dyn FnMut(MigrationEvent),
) -> Result<Vec<(String, String)>, LibvirtError> {
    let mut created = Vec::new();
    for d in plan.copied() {
        let DiskMove::Copy {
            target_pool,
            volume,
        } = &d.how
        else {
            continue;
        };
        let xml = uvmm_model::storage::volume_xml(
            &volume.def.name,
            volume.def.capacity,
            volume.def.format.as_deref(),
            true,
        );
        if let Err(e) = target.create_volume(target_pool, &xml) {
            remove_volumes(target, &created);
            return Err(e);
        }
        created.push((target_pool.clone(), volume.def.name.clone()));
        events(MigrationEvent::VolumeCreated(
            target_pool.clone(),
            volume.def.name.clone(),
        ));
    }
    Ok(created)
}

fn remove_volumes(target: &dyn Hypervisor, vols: &[(String, String)]) {
    for (pool, name) in vols {
        if let Err(e) = target.delete_volume(pool, name) {
            tracing::warn!(%pool, %name, "could not remove a volume made for a migration: {e}");
        }
    }
}

/// Live-migrate the running VM `uuid` from `source` to `target`.
///
/// `source` makes the (blocking) migration call; `monitor` is a second connection to the
/// source for progress and abort; `target` is used for the check, for creating volumes of
/// copied disks and to see where the VM ended up. `events` hears progress (every
/// `poll_interval`); setting `cancel` aborts the migration.
pub fn migrate_live(
    source: &dyn Hypervisor,
    monitor: &dyn Hypervisor,
    target: &dyn Hypervisor,
    uuid: &str,
    opts: &MigrateOptions,
    events: &mut dyn FnMut(MigrationEvent),
    cancel: &AtomicBool,
) -> Result<MigrationReport, MigrationError> {
    let plan = check_migration(source, target, uuid, true, opts.copy_storage)?;
    events(MigrationEvent::Planned(plan.clone()));
    let created = create_target_volumes(&plan, target, events).map_err(MigrationError::Prepare)?;

    let copied: Vec<String> = plan.copied().map(|d| d.target.clone()).collect();
    let all_shared_proven = plan
        .disks
        .iter()
        .filter(|d| matches!(d.how, DiskMove::Shared { .. }))
        .all(|d| d.how == DiskMove::Shared { proven: true });
    let params = MigrateParams {
        bandwidth_mib_s: opts.bandwidth_mib_s,
        auto_converge: opts.auto_converge,
        post_copy: opts.post_copy != PostCopy::Off,
        copy_storage: if copied.is_empty() {
            CopyStorage::Never
        } else if opts.copy_storage == CopyStorage::Incremental {
            CopyStorage::Incremental
        } else {
            CopyStorage::All
        },
        migrate_disks: copied,
        persist_on_target: opts.undefine_source,
        undefine_source: opts.undefine_source,
        unsafe_ok: opts.trust_proven_shared_storage && all_shared_proven,
        dest_xml: opts.dest_xml.clone(),
        migration_uri: opts.migration_uri.clone(),
    };

    let started = Instant::now();
    let mut last: Option<JobProgress> = None;
    let mut abort_sent = false;
    let mut postcopy_sent = false;
    let result = std::thread::scope(|s| {
        let job = s.spawn(|| source.migrate_to(uuid, &opts.dest_uri, &params));
        while !job.is_finished() {
            std::thread::sleep(opts.poll_interval);
            if job.is_finished() {
                break;
            }
            if cancel.load(Ordering::SeqCst) && !abort_sent {
                abort_sent = true;
                events(MigrationEvent::AbortRequested);
                if let Err(e) = monitor.abort_job(uuid) {
                    // Too early (no job yet) or too late (finished): tried again next round.
                    tracing::debug!(%uuid, "abort: {e}");
                    abort_sent = false;
                }
            }
            if let PostCopy::After(after) = opts.post_copy {
                if !postcopy_sent && !abort_sent && started.elapsed() >= after {
                    match monitor.start_post_copy(uuid) {
                        Ok(()) => {
                            postcopy_sent = true;
                            events(MigrationEvent::PostCopyStarted);
                        }
                        Err(e) => tracing::debug!(%uuid, "post-copy switch: {e}"),
                    }
                }
            }
            match monitor.job_progress(uuid, false) {
                Ok(Some(p)) if p.active() => {
                    events(MigrationEvent::Progress(Box::new(p.clone())));
                    last = Some(p);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(%uuid, "job progress: {e}"),
            }
        }
        job.join().unwrap_or_else(|_| {
            Err(LibvirtError::new(
                ErrorKind::Other,
                "the migration thread panicked",
            ))
        })
    });
    let duration = started.elapsed();
    let placement = Placement::of(monitor, target, uuid);
    match result {
        Ok(()) => {
            let completed = target.job_progress(uuid, true).ok().flatten();
            if placement.running_on_both() {
                tracing::error!(%uuid, "after migration the VM runs on both hosts");
            }
            Ok(MigrationReport {
                plan,
                duration,
                completed,
                last_progress: last,
                created_volumes: created,
                placement,
            })
        }
        Err(cause) => {
            // The copies are useless unless the VM ended up on the target after all.
            if !placement.target.defined() && !created.is_empty() {
                remove_volumes(target, &created);
            }
            if placement.running_on_both() {
                tracing::error!(%uuid, "after a failed migration the VM runs on both hosts");
            }
            if cancel.load(Ordering::SeqCst) && placement.source.running() {
                Err(MigrationError::Aborted { placement })
            } else {
                Err(MigrationError::Failed { cause, placement })
            }
        }
    }
}

/// What an offline migration did.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineReport {
    pub plan: MigrationPlan,
    /// Volumes created (and filled) on the target.
    pub copied_volumes: Vec<(String, String)>,
    /// Snapshot metadata carried over (internal snapshots live inside the qcow2 images).
    pub snapshots: usize,
    /// Source volumes that were copied and are still on the source (uvmm never deletes
    /// them on its own; the caller may, once satisfied).
    pub source_volumes_kept: Vec<(String, String)>,
    pub placement: Placement,
}

/// Move a shut-off VM: copy the disks that are not shared, define it on the target (with
/// its snapshots' metadata), then undefine it on the source. Any failure before the last
/// step undoes the target's side; the VM is then still defined on the source only.
pub fn migrate_offline(
    source: &dyn Hypervisor,
    target: &dyn Hypervisor,
    uuid: &str,
    copy: CopyStorage,
    events: &mut dyn FnMut(MigrationEvent),
    cancel: &AtomicBool,
) -> Result<OfflineReport, MigrationError> {
    let plan = check_migration(source, target, uuid, false, copy)?;
    events(MigrationEvent::Planned(plan.clone()));
    let xml = source
        .domain_xml(uuid, true, true)
        .map_err(MigrationError::Prepare)?;
    // Snapshot metadata must come along (the source's goes with its definition); only a
    // driver without snapshots may have none.
    let snaps = match source.snapshots(uuid) {
        Ok(s) => s,
        Err(e) if e.kind == ErrorKind::NotSupported => Vec::new(),
        Err(e) => return Err(MigrationError::Prepare(e)),
    };
    let created = create_target_volumes(&plan, target, events).map_err(MigrationError::Prepare)?;
    let mut defined = false;
    let undo = |defined: bool| {
        if defined {
            let _ = target.undefine(uuid);
        }
        remove_volumes(target, &created);
    };
    let fail = |cause: LibvirtError, defined: bool| {
        undo(defined);
        MigrationError::Failed {
            cause,
            placement: Placement::of(source, target, uuid),
        }
    };
    for d in plan.copied() {
        if cancel.load(Ordering::SeqCst) {
            undo(defined);
            return Err(MigrationError::Aborted {
                placement: Placement::of(source, target, uuid),
            });
        }
        let DiskMove::Copy {
            target_pool,
            volume,
        } = &d.how
        else {
            continue;
        };
        let total = volume.def.capacity;
        let disk = d.target.clone();
        if let Err(e) = copy_volume_between(
            source,
            &volume.pool,
            target,
            target_pool,
            &volume.def.name,
            &mut |done| events(MigrationEvent::CopyProgress(disk.clone(), done, total)),
            cancel,
        ) {
            return Err(fail(e, defined));
        }
    }
    if let Err(e) = target.define(&xml) {
        return Err(fail(e, defined));
    }
    defined = true;
    // Snapshot metadata, parents first (the list is in that order); the current one last.
    let mut carried = 0;
    for s in &snaps {
        if let Err(e) = target.snapshot_redefine(uuid, &s.xml, s.current) {
            return Err(fail(e, defined));
        }
        carried += 1;
    }
    if let Err(e) = source.undefine(uuid) {
        // Both hosts would have it: take it off the target again.
        return Err(fail(e, defined));
    }
    let source_volumes_kept = plan
        .copied()
        .filter_map(|d| d.source_pool.clone().map(|p| (p, volume_name(&d.how))))
        .collect();
    Ok(OfflineReport {
        placement: Placement::of(source, target, uuid),
        plan,
        copied_volumes: created,
        snapshots: carried,
        source_volumes_kept,
    })
}

fn volume_name(how: &DiskMove) -> String {
    match how {
        DiskMove::Copy { volume, .. } => volume.def.name.clone(),
        _ => String::new(),
    }
}

/// Copy a volume's bytes from one host to another through libvirt streams (works for
/// remote hosts), `progress` hearing the bytes done. The target volume must exist.
pub fn copy_volume_between(
    source: &dyn Hypervisor,
    source_pool: &str,
    target: &dyn Hypervisor,
    target_pool: &str,
    name: &str,
    progress: &mut dyn FnMut(u64),
    cancel: &AtomicBool,
) -> Result<u64, LibvirtError> {
    // A bounded channel between the download and the upload: memory stays at a few chunks
    // whatever the disk's size.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    std::thread::scope(|s| {
        let down = s.spawn(move || {
            source.download_volume(source_pool, name, &mut |chunk| {
                if cancel.load(Ordering::SeqCst) {
                    return Err(LibvirtError::new(ErrorKind::Other, "copy cancelled"));
                }
                tx.send(chunk.to_vec())
                    .map_err(|_| LibvirtError::new(ErrorKind::Other, "the upload side stopped"))
            })
        });
        let mut pending: Vec<u8> = Vec::new();
        let mut done = 0u64;
        let up = target.upload_volume(target_pool, name, &mut |buf| {
            if pending.is_empty() {
                match rx.recv() {
                    Ok(chunk) => pending = chunk,
                    Err(_) => return Ok(0),
                }
            }
            let n = pending.len().min(buf.len());
            buf[..n].copy_from_slice(&pending[..n]);
            pending.drain(..n);
            done += n as u64;
            progress(done);
            Ok(n)
        });
        drop(rx);
        let down = down.join().unwrap_or_else(|_| {
            Err(LibvirtError::new(
                ErrorKind::Other,
                "the download thread panicked",
            ))
        });
        let sent = down?;
        let got = up?;
        if sent != got {
            return Err(LibvirtError::new(
                ErrorKind::Other,
                format!("copied {got} of {sent} bytes of {name}"),
            ));
        }
        Ok(got)
    })
}

/// What [`failover_define`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverReport {
    pub uuid: String,
    /// Disk paths checked on the target.
    pub disks: Vec<String>,
}

/// Failover: define on `target` a VM whose host is unreachable, from its last known
/// definition (`xml`, e.g. from the backup store). Only when every disk is reachable on
/// the target as a volume of a pool there (shared storage) and the target does not already
/// have it. The caller must make sure (and say, with a warning about split brain) that
/// the old host really is down: if it is not, both may run the VM on the same disks.
pub fn failover_define(
    target: &dyn Hypervisor,
    xml: &str,
) -> Result<FailoverReport, MigrationError> {
    let def = def_of(xml)?;
    let mut reasons = Vec::new();
    if let Some(d) = target.domain(&def.uuid).map_err(MigrationError::Prepare)? {
        reasons.push(Incompatibility::Exists(format!(
            "the target already has this VM ('{}', {:?})",
            d.name, d.state
        )));
    }
    let mut disks = Vec::new();
    let mut seen = BTreeSet::new();
    for disk in &def.disks {
        let Some(path) = &disk.source else { continue };
        if !seen.insert(path.clone()) {
            continue;
        }
        if disk.kind == "network" {
            disks.push(path.clone());
            continue;
        }
        match target
            .volume_by_path(path)
            .map_err(MigrationError::Prepare)?
        {
            Some(_) => disks.push(path.clone()),
            None => reasons.push(Incompatibility::Storage(format!(
                "{}: {path} is not visible on the target (not on shared storage)",
                disk.target
            ))),
        }
    }
    if !reasons.is_empty() {
        return Err(MigrationError::Refused(reasons));
    }
    let uuid = target.define(xml).map_err(MigrationError::Prepare)?;
    Ok(FailoverReport { uuid, disks })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_verdicts() {
        let run = Side::Running { persistent: true };
        let cases = [
            (run.clone(), Side::Absent, false, false),
            (run.clone(), run.clone(), true, false),
            (Side::Absent, Side::Absent, false, true),
            (Side::Absent, Side::Unreachable("x".into()), false, false),
            (
                Side::Paused { persistent: true },
                Side::Unreachable("x".into()),
                false,
                false,
            ),
        ];
        for (s, t, both, neither) in cases {
            let p = Placement {
                source: s,
                target: t,
            };
            assert_eq!(p.running_on_both(), both, "{p:?}");
            assert_eq!(p.on_neither(), neither, "{p:?}");
        }
    }

    #[test]
    fn refusal_lists_every_reason() {
        let e = MigrationError::Refused(vec![
            Incompatibility::Cpu("no".into()),
            Incompatibility::Network("no net 'x'".into()),
        ]);
        assert_eq!(
            e.to_string(),
            "the target cannot take this VM: CPU: no; network: no net 'x'"
        );
    }

    #[test]
    fn cpu_element_is_taken_verbatim() {
        let xml = "<domain><name>a</name><cpu mode='custom'><model>qemu64</model></cpu></domain>";
        let cpu = cpu_element(xml).unwrap();
        assert!(
            cpu.starts_with("<cpu") && cpu.contains("<model>qemu64</model>"),
            "{cpu}"
        );
        assert!(cpu_element("<domain><name>a</name></domain>").is_none());
    }
}
