//! The live cache of hosts and VMs. Every read of the API is answered from here; host
//! workers write into it. Each update returns the events it caused, so "what changed" is
//! decided in one pure place that the unit tests below cover with tables.

use crate::error::CoreError;
use crate::listing::{f64_key, prefix_key, ListRow, ListRows};
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};
use uvmm_api::{
    Event, EventKind, HostDetail, HostOrigin, HostStatus, HostSummary, PoolDetail, PoolSummary,
    VmDetail, VmPage, VmQuery, VmSummary, VolumeSummary,
};
use uvmm_libvirt::{DomainSnapshot, DomainStats, HostInfo, PoolInfo};
use uvmm_model::domain::{parse_domain, DomainDef};
use uvmm_model::monitor::{evaluate, Level, Thresholds, Usage};
use uvmm_model::pending::{pending, Pending};
use uvmm_model::state::state_reason;
use uvmm_model::storage::VolumeDef;
use uvmm_model::VmState;

/// Weight of the newest sample in the smoothed CPU usage.
const CPU_SMOOTHING: f64 = 0.5;

#[derive(Debug, Clone)]
pub struct VmEntry {
    pub uuid: String,
    pub name: String,
    pub state: VmState,
    pub reason: u32,
    pub persistent: bool,
    pub autostart: bool,
    pub managed_save: bool,
    pub max_memory_kib: u64,
    pub memory_kib: u64,
    pub vcpus: u32,
    pub def: DomainDef,
    /// What the next start of a running VM brings (its persistent definition differs).
    pub pending: Option<Pending>,
    /// Lower-case name: the sort key for people's order, computed once.
    pub name_key: String,
    /// Hash of the live XML (and of the persistent one of a running VM): tells definition
    /// changes apart from state changes, and is the ETag.
    pub xml_hash: u64,
    pub cpu_usage: f64,
    cpu_sample: Option<(u64, Instant)>,
}

impl VmEntry {
    /// The images of every drive the VM has now or will have at its next start: a volume
    /// that only the stored definition names is still in use (it is needed at the next
    /// start), so it must not look free to delete.
    pub fn disk_sources(&self) -> impl Iterator<Item = &str> {
        let next = self
            .pending
            .as_ref()
            .and_then(|p| p.disks.as_deref())
            .unwrap_or_default();
        self.def
            .disks
            .iter()
            .chain(next)
            .filter_map(|d| d.source.as_deref())
    }

    /// Build from what libvirt returned. XML the model cannot read still gives an entry
    /// (with what the snapshot knows), so one odd domain never hides a host's others.
    pub fn from_snapshot(s: DomainSnapshot) -> VmEntry {
        let def = parse_domain(&s.xml).unwrap_or_else(|e| {
            tracing::warn!(uuid = %s.uuid, name = %s.name, "unreadable domain XML: {e}");
            DomainDef {
                name: s.name.clone(),
                uuid: s.uuid.clone(),
                ..DomainDef::default()
            }
        });
        // A change stored for the next start is a change of the VM: it shows, and it
        // changes the ETag (an edit based on the old persistent definition must fail).
        let pending = s.next_boot_xml.as_deref().and_then(|x| match parse_domain(x) {
            Ok(next) => pending(&def, &next),
            Err(e) => {
                tracing::warn!(uuid = %s.uuid, name = %s.name, "unreadable persistent XML: {e}");
                None
            }
        });
        VmEntry {
            name_key: s.name.to_lowercase(),
            xml_hash: xml_hash(&s.xml, s.next_boot_xml.as_deref()),
            pending,
            uuid: s.uuid,
            name: s.name,
            state: s.state,
            reason: s.reason,
            persistent: s.persistent,
            autostart: s.autostart,
            managed_save: s.managed_save,
            // Bulk statistics leave sizes of inactive domains out: the XML has them.
            max_memory_kib: if s.max_memory_kib > 0 {
                s.max_memory_kib
            } else {
                def.max_memory_kib
            },
            memory_kib: if s.memory_kib > 0 {
                s.memory_kib
            } else {
                def.memory_kib
            },
            vcpus: if s.vcpus > 0 { s.vcpus } else { def.vcpus },
            def,
            cpu_usage: 0.0,
            cpu_sample: None,
        }
    }

    /// Fields whose change is worth a `vm_changed` event (not statistics).
    fn same_definition(&self, other: &VmEntry) -> bool {
        self.name == other.name
            && self.persistent == other.persistent
            && self.autostart == other.autostart
            && self.max_memory_kib == other.max_memory_kib
            && self.xml_hash == other.xml_hash
    }
}

/// FNV-1a: stable across processes and releases, unlike std's DefaultHasher.
pub fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Hash of the live XML, combined with the persistent XML of a running VM. A shut-off VM
/// keeps the hash of its one definition.
fn xml_hash(live: &str, next_boot: Option<&str>) -> u64 {
    match next_boot {
        None => hash_str(live),
        Some(next) => hash_str(live) ^ hash_str(next).rotate_left(1),
    }
}

/// The ETag of a VM: a hash of its live XML and, while it runs, of its persistent XML
/// (both as read with secrets, so a password change counts as a change).
pub fn etag_of(live: &str, next_boot: Option<&str>) -> String {
    format!("\"{:016x}\"", xml_hash(live, next_boot))
}

/// How fresh a pool's figures are: libvirt reports them as of its last refresh of the
/// pool (virStoragePoolRefresh).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolFreshness {
    /// When the refresh behind these figures started; None: never on this connection.
    pub refreshed_at: Option<SystemTime>,
    /// Why the last refresh failed (the figures are then those of an earlier one).
    pub error: Option<String>,
}

/// A storage pool as last read, with the monitoring verdict.
#[derive(Debug, Clone)]
pub struct PoolEntry {
    pub info: PoolInfo,
    pub volumes: Vec<VolumeDef>,
    pub provisioned: u64,
    pub level: Level,
    pub alerts: Vec<String>,
    pub freshness: PoolFreshness,
    /// The longest age the daemon lets these figures reach (`pool_interval_secs`).
    pub max_age: std::time::Duration,
}

impl PoolEntry {
    pub fn usage(&self) -> Usage {
        Usage {
            capacity: self.info.capacity,
            allocation: self.info.allocation,
            available: self.info.available,
            provisioned: self.provisioned,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HostEntry {
    pub id: String,
    pub uri: String,
    pub origin: HostOrigin,
    pub status: HostStatus,
    pub info: Option<HostInfo>,
    pub free_memory_kib: Option<u64>,
    pub last_error: Option<String>,
    pub since: SystemTime,
    pub retry_at: Option<SystemTime>,
    /// Private: every change must go through `vms_mut` or `refresh_rows`, so the
    /// listing rows never disagree with the entries.
    vms: BTreeMap<String, VmEntry>,
    rows: OnceLock<ListRows>,
    pub pools: Vec<PoolEntry>,
}

impl HostEntry {
    pub fn available(&self) -> bool {
        self.status == HostStatus::Connected
    }

    /// Ok when connected; otherwise the error a request for this host answers with.
    pub fn ensure_available(&self) -> Result<(), CoreError> {
        if self.available() {
            return Ok(());
        }
        Err(CoreError::HostUnavailable {
            host: self.uri.clone(),
            reason: self
                .last_error
                .clone()
                .unwrap_or_else(|| "not connected yet".into()),
        })
    }

    pub fn vms(&self) -> &BTreeMap<String, VmEntry> {
        &self.vms
    }

    /// For changes of the VM set or of names and notes: the rows are rebuilt.
    fn vms_mut(&mut self) -> &mut BTreeMap<String, VmEntry> {
        self.rows = OnceLock::new();
        &mut self.vms
    }

    /// After figures changed in place (statistics): copy them into the rows.
    fn refresh_rows(&mut self) {
        if let Some(rows) = self.rows.get_mut() {
            rows.refresh_figures(&self.vms);
        }
    }

    /// The listing rows, built on first use after a change.
    pub fn rows(&self) -> &ListRows {
        self.rows.get_or_init(|| ListRows::build(&self.vms))
    }
}

#[derive(Debug, Default)]
pub struct Cache {
    hosts: BTreeMap<String, HostEntry>,
    ids: HashMap<String, String>,
    /// Bumped by every change that produced an event (see `Shared::update`).
    pub generation: u64,
    /// Bumped by every statistics round.
    pub stats_generation: u64,
}

/// An event before the bus gives it a sequence number and time.
fn event(kind: EventKind, host: &HostEntry) -> Event {
    Event {
        seq: 0,
        time: String::new(),
        kind,
        host: host.uri.clone(),
        host_id: host.id.clone(),
        uuid: None,
        name: None,
        state: None,
        previous_state: None,
        available: Some(host.available()),
        message: None,
        vm: None,
        pool: None,
        level: None,
    }
}

fn pool_event(kind: EventKind, host: &HostEntry, pool: &PoolEntry, message: String) -> Event {
    let mut e = event(kind, host);
    e.pool = Some(pool.info.def.name.clone());
    e.level = Some(pool.level);
    e.message = Some(message);
    e
}

fn vm_event(kind: EventKind, host: &HostEntry, vm: &VmEntry, previous: Option<VmState>) -> Event {
    let mut e = event(kind, host);
    e.uuid = Some(vm.uuid.clone());
    e.name = Some(vm.name.clone());
    e.state = Some(vm.state);
    e.previous_state = previous;
    if kind != EventKind::VmRemoved {
        e.vm = Some(vm_summary(host, vm));
    }
    e
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn vm_summary(host: &HostEntry, vm: &VmEntry) -> VmSummary {
    VmSummary {
        name: vm.name.clone(),
        uuid: vm.uuid.clone(),
        host: host.uri.clone(),
        host_id: host.id.clone(),
        state: vm.state,
        reason: state_reason(vm.state, vm.reason).to_string(),
        suspended: vm.managed_save,
        available: host.available(),
        persistent: vm.persistent,
        autostart: vm.autostart,
        memory_kib: vm.memory_kib,
        max_memory_kib: vm.max_memory_kib,
        vcpus: vm.vcpus,
        cpu_usage: (vm.cpu_usage * 10.0).round() / 10.0,
        // A port in an inactive definition is only a wish; show ports of running VMs.
        vnc_port: vm.state.is_active().then(|| vm.def.vnc_port()).flatten(),
        description: vm.def.notes.description.clone(),
        os_type: vm.def.os_type.clone(),
        domain_type: vm.def.domain_type.clone(),
    }
}

pub fn vm_detail(host: &HostEntry, vm: &VmEntry) -> VmDetail {
    let d = &vm.def;
    VmDetail {
        summary: vm_summary(host, vm),
        title: d.title.clone(),
        contact: d.notes.contact.clone(),
        os: d.notes.os.clone(),
        arch: d.arch.clone(),
        machine: d.machine.clone(),
        bootloader: d.bootloader.clone(),
        boot_order: d.boot_order(),
        disks: d.disks.clone(),
        nics: d.nics.clone(),
        graphics: d.graphics.clone(),
        rtc: d.rtc.clone(),
        cpu_model: d.cpu_model.clone(),
        features: d.features,
        etag: format!("\"{:016x}\"", vm.xml_hash),
        pending: vm.pending.clone(),
    }
}

pub fn host_summary(h: &HostEntry, now: SystemTime) -> HostSummary {
    let info = h.info.as_ref();
    HostSummary {
        id: h.id.clone(),
        uri: h.uri.clone(),
        status: h.status,
        available: h.available(),
        origin: h.origin,
        hostname: info.map(|i| i.hostname.clone()),
        driver: info.map(|i| i.driver.clone()),
        libvirt_version: info.map(|i| i.libvirt_version.clone()),
        hypervisor_version: info.map(|i| i.hypervisor_version.clone()),
        cpus: info.map(|i| i.cpus),
        memory_kib: info.map(|i| i.memory_kib),
        free_memory_kib: h.free_memory_kib,
        vm_count: h.vms.len(),
        running_count: h.vms.values().filter(|v| v.state.is_active()).count(),
        running_vcpus: h
            .vms
            .values()
            .filter(|v| v.state.is_active())
            .map(|v| u64::from(v.vcpus))
            .sum(),
        running_memory_kib: h
            .vms
            .values()
            .filter(|v| v.state.is_active())
            .map(|v| v.memory_kib)
            .sum(),
        cpu_usage: host_cpu_usage(h),
        last_error: h.last_error.clone(),
        since: rfc3339(h.since),
        retry_in_secs: h
            .retry_at
            .filter(|_| h.status == HostStatus::Unavailable)
            .map(|t| t.duration_since(now).map(|d| d.as_secs()).unwrap_or(0)),
    }
}

/// How busy the host's CPUs are with its VMs: each VM's usage (percent of its vCPUs)
/// weighted by its vCPUs, in percent of the host's CPUs. What the overview's CPU bar shows;
/// libvirt's host CPU counters would need one more call per host and round.
fn host_cpu_usage(h: &HostEntry) -> Option<f64> {
    let cpus = h.info.as_ref().map(|i| i.cpus).filter(|c| *c > 0)?;
    let busy: f64 = h
        .vms
        .values()
        .filter(|v| v.state.is_active())
        .map(|v| v.cpu_usage * f64::from(v.vcpus))
        .sum();
    Some((busy / f64::from(cpus)).clamp(0.0, 100.0))
}

pub fn host_detail(h: &HostEntry, now: SystemTime) -> HostDetail {
    HostDetail {
        summary: host_summary(h, now),
        cpu_model: h.info.as_ref().map(|i| i.cpu_model.clone()),
        cpu_mhz: h.info.as_ref().map(|i| i.cpu_mhz),
        capabilities: h
            .info
            .as_ref()
            .map(|i| i.caps.guests.clone())
            .unwrap_or_default(),
    }
}

/// Seconds the figures are old at `now`, and whether that is older than promised (never
/// refreshed counts as too old). Inactive pools have no figures to judge.
pub fn pool_age(p: &PoolEntry, now: SystemTime) -> (Option<u64>, bool) {
    if !p.info.active {
        return (None, false);
    }
    match p.freshness.refreshed_at {
        None => (None, true),
        Some(t) => {
            let age = now.duration_since(t).unwrap_or_default();
            (Some(age.as_secs()), age > p.max_age)
        }
    }
}

pub fn pool_summary(h: &HostEntry, p: &PoolEntry) -> PoolSummary {
    let (age_secs, stale) = pool_age(p, SystemTime::now());
    PoolSummary {
        name: p.info.def.name.clone(),
        host: h.uri.clone(),
        host_id: h.id.clone(),
        kind: p.info.def.kind.clone(),
        active: p.info.active,
        autostart: p.info.autostart,
        persistent: p.info.persistent,
        target_path: p.info.def.target_path.clone(),
        source: p.info.def.source.clone(),
        capacity: p.info.capacity,
        allocation: p.info.allocation,
        available: p.info.available,
        provisioned: p.provisioned,
        volume_count: p.volumes.len(),
        level: p.level,
        alerts: p.alerts.clone(),
        available_host: h.available(),
        refreshed: p.freshness.refreshed_at.map(rfc3339),
        age_secs,
        max_age_secs: p.max_age.as_secs(),
        stale,
        refresh_error: p.freshness.error.clone(),
    }
}

/// A pool with its volumes, who uses them and whether they may be deleted.
pub fn pool_detail(cache: &Cache, h: &HostEntry, p: &PoolEntry) -> PoolDetail {
    let shared = uvmm_model::storage::pool_is_shared(&p.info.def.kind);
    let volumes = p
        .volumes
        .iter()
        .map(|v| {
            let mut users = v
                .path
                .as_deref()
                .map(|path| cache.users_of(&h.uri, path, shared))
                .unwrap_or_default();
            // Disks may also reference the volume as POOL/VOLUME.
            users.extend(cache.users_of(
                &h.uri,
                &format!("{}/{}", p.info.def.name, v.name),
                shared,
            ));
            users.sort();
            users.dedup();
            let keep_reason = uvmm_model::storage::delete_refusal(Some(&p.info.def.kind), &users);
            VolumeSummary {
                name: v.name.clone(),
                pool: p.info.def.name.clone(),
                path: v.path.clone(),
                kind: v.kind.clone(),
                format: v.format.clone(),
                capacity: v.capacity,
                allocation: v.allocation,
                used_by: users,
                deletable: keep_reason.is_none(),
                keep_reason,
            }
        })
        .collect();
    PoolDetail {
        summary: pool_summary(h, p),
        volumes,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    Name,
    Host,
    State,
    Memory,
    Vcpus,
    Cpu,
}

fn parse_sort(s: &str) -> Result<(SortKey, bool), CoreError> {
    let (desc, key) = match s.strip_prefix('-') {
        Some(k) => (true, k),
        None => (false, s),
    };
    let key = match key {
        "name" => SortKey::Name,
        "host" => SortKey::Host,
        "state" => SortKey::State,
        "memory" => SortKey::Memory,
        "vcpus" => SortKey::Vcpus,
        "cpu" => SortKey::Cpu,
        other => {
            return Err(CoreError::BadRequest(format!(
                "unknown sort key '{other}' (expected name, host, state, memory, vcpus or cpu, \
                 optionally prefixed with '-')"
            )))
        }
    };
    Ok((key, desc))
}

impl Cache {
    pub fn hosts(&self) -> impl Iterator<Item = &HostEntry> {
        self.hosts.values()
    }

    pub fn host(&self, uri: &str) -> Option<&HostEntry> {
        self.hosts.get(uri)
    }

    /// Find a host by id or URI.
    pub fn resolve_host(&self, id_or_uri: &str) -> Result<&HostEntry, CoreError> {
        self.hosts
            .get(id_or_uri)
            .or_else(|| self.ids.get(id_or_uri).and_then(|u| self.hosts.get(u)))
            .ok_or_else(|| CoreError::NotFound(format!("no host '{id_or_uri}'")))
    }

    /// A free id for a new host, based on its URI.
    pub fn free_id(&self, base: &str) -> String {
        if !self.ids.contains_key(base) && !self.hosts.contains_key(base) {
            return base.to_string();
        }
        (2..)
            .map(|n| format!("{base}-{n}"))
            .find(|c| !self.ids.contains_key(c))
            .expect("an unbounded range always has a free id")
    }

    pub fn add_host(
        &mut self,
        uri: &str,
        id: &str,
        origin: HostOrigin,
        now: SystemTime,
    ) -> Vec<Event> {
        let entry = HostEntry {
            id: id.to_string(),
            uri: uri.to_string(),
            origin,
            status: HostStatus::Connecting,
            info: None,
            free_memory_kib: None,
            last_error: None,
            since: now,
            retry_at: None,
            vms: BTreeMap::new(),
            rows: OnceLock::new(),
            pools: Vec::new(),
        };
        let ev = event(EventKind::HostAdded, &entry);
        self.ids.insert(id.to_string(), uri.to_string());
        self.hosts.insert(uri.to_string(), entry);
        vec![ev]
    }

    pub fn remove_host(&mut self, uri: &str) -> Vec<Event> {
        match self.hosts.remove(uri) {
            Some(h) => {
                self.ids.remove(&h.id);
                let mut ev = event(EventKind::HostRemoved, &h);
                ev.available = Some(false);
                vec![ev]
            }
            None => vec![],
        }
    }

    /// A (re)connection finished its full synchronisation: replace the VM set.
    pub fn host_synced(
        &mut self,
        uri: &str,
        info: HostInfo,
        free_memory_kib: Option<u64>,
        domains: Vec<DomainSnapshot>,
        now: SystemTime,
    ) -> Vec<Event> {
        let Some(host) = self.hosts.get_mut(uri) else {
            return vec![];
        };
        let mut events = Vec::new();
        let was_available = host.available();
        host.status = HostStatus::Connected;
        host.info = Some(info);
        host.free_memory_kib = free_memory_kib;
        host.last_error = None;
        host.retry_at = None;
        if !was_available {
            host.since = now;
        }
        let mut fresh: BTreeMap<String, VmEntry> = BTreeMap::new();
        for snap in domains {
            let vm = VmEntry::from_snapshot(snap);
            fresh.insert(vm.uuid.clone(), vm);
        }
        let old = std::mem::take(host.vms_mut());
        for (uuid, old_vm) in &old {
            if !fresh.contains_key(uuid) {
                events.push(vm_event(
                    EventKind::VmRemoved,
                    host,
                    old_vm,
                    Some(old_vm.state),
                ));
            }
        }
        for (uuid, mut vm) in fresh {
            match old.get(&uuid) {
                None => events.push(vm_event(EventKind::VmAdded, host, &vm, None)),
                Some(prev) => {
                    vm.cpu_usage = prev.cpu_usage;
                    vm.cpu_sample = prev.cpu_sample;
                    if prev.state != vm.state || prev.managed_save != vm.managed_save {
                        events.push(vm_event(EventKind::VmState, host, &vm, Some(prev.state)));
                    } else if !prev.same_definition(&vm) {
                        events.push(vm_event(EventKind::VmChanged, host, &vm, Some(prev.state)));
                    }
                }
            }
            host.vms_mut().insert(uuid, vm);
        }
        if !was_available {
            events.insert(0, event(EventKind::HostConnected, host));
        }
        events
    }

    /// The host cannot be reached. Its VMs stay, marked unavailable through the host.
    pub fn host_unavailable(
        &mut self,
        uri: &str,
        error: &str,
        retry_at: Option<SystemTime>,
        now: SystemTime,
    ) -> Vec<Event> {
        let Some(host) = self.hosts.get_mut(uri) else {
            return vec![];
        };
        let changed = host.status != HostStatus::Unavailable;
        host.status = HostStatus::Unavailable;
        host.last_error = Some(error.to_string());
        host.retry_at = retry_at;
        if changed {
            host.since = now;
            for vm in host.vms.values_mut() {
                vm.cpu_usage = 0.0;
                vm.cpu_sample = None;
            }
            host.refresh_rows();
            let mut ev = event(EventKind::HostUnavailable, host);
            ev.message = Some(error.to_string());
            vec![ev]
        } else {
            vec![]
        }
    }

    /// Insert or refresh one VM.
    pub fn vm_upsert(&mut self, uri: &str, snap: DomainSnapshot) -> Vec<Event> {
        let Some(host) = self.hosts.get_mut(uri) else {
            return vec![];
        };
        let mut vm = VmEntry::from_snapshot(snap);
        let ev = match host.vms.get(&vm.uuid) {
            None => Some(vm_event(EventKind::VmAdded, host, &vm, None)),
            Some(prev) => {
                if vm.state.is_active() {
                    vm.cpu_usage = prev.cpu_usage;
                    vm.cpu_sample = prev.cpu_sample;
                }
                if prev.state != vm.state || prev.managed_save != vm.managed_save {
                    Some(vm_event(EventKind::VmState, host, &vm, Some(prev.state)))
                } else if !prev.same_definition(&vm) {
                    Some(vm_event(EventKind::VmChanged, host, &vm, Some(prev.state)))
                } else {
                    None
                }
            }
        };
        host.vms_mut().insert(vm.uuid.clone(), vm);
        ev.into_iter().collect()
    }

    pub fn vm_remove(&mut self, uri: &str, uuid: &str) -> Vec<Event> {
        let Some(host) = self.hosts.get_mut(uri) else {
            return vec![];
        };
        match host.vms_mut().remove(uuid) {
            Some(vm) => vec![vm_event(EventKind::VmRemoved, host, &vm, Some(vm.state))],
            None => vec![],
        }
    }

    /// Apply one bulk statistics read. Returns the UUIDs whose cached state disagrees with
    /// libvirt (a missed event): the worker re-reads those.
    /// Apply one bulk statistics read; returns the VMs whose cached state disagrees with
    /// libvirt (to be re-read). `complete` says the read covered every domain; otherwise it
    /// covered the active ones, and only an active VM missing from it is a disagreement.
    pub fn apply_stats(
        &mut self,
        uri: &str,
        stats: &[DomainStats],
        free_memory_kib: Option<u64>,
        now: Instant,
        complete: bool,
    ) -> Vec<String> {
        let Some(host) = self.hosts.get_mut(uri) else {
            return vec![];
        };
        self.stats_generation += 1;
        if free_memory_kib.is_some() {
            host.free_memory_kib = free_memory_kib;
        }
        let mut stale = Vec::new();
        let mut seen = std::collections::HashSet::with_capacity(stats.len());
        for s in stats {
            seen.insert(s.uuid.as_str());
            let Some(vm) = host.vms.get_mut(&s.uuid) else {
                stale.push(s.uuid.clone());
                continue;
            };
            if s.state.is_some_and(|st| st != vm.state) {
                stale.push(s.uuid.clone());
            }
            if let Some(mem) = s.balloon_current_kib.filter(|m| *m > 0) {
                vm.memory_kib = mem;
            }
            if let Some(v) = s.vcpus_current.filter(|v| *v > 0) {
                vm.vcpus = v;
            }
            match (s.cpu_time_ns, vm.state.is_active()) {
                (Some(cpu), true) => {
                    if let Some((prev_cpu, prev_t)) = vm.cpu_sample {
                        let dt = now.saturating_duration_since(prev_t).as_nanos() as f64;
                        if dt > 0.0 && cpu >= prev_cpu {
                            let pct = (cpu - prev_cpu) as f64 / dt / vm.vcpus.max(1) as f64 * 100.0;
                            let pct = pct.clamp(0.0, 100.0);
                            vm.cpu_usage =
                                CPU_SMOOTHING * pct + (1.0 - CPU_SMOOTHING) * vm.cpu_usage;
                        }
                    }
                    vm.cpu_sample = Some((cpu, now));
                }
                _ => {
                    vm.cpu_usage = 0.0;
                    vm.cpu_sample = None;
                }
            }
        }
        for (uuid, vm) in &host.vms {
            if (complete || vm.state.is_active()) && !seen.contains(uuid.as_str()) {
                stale.push(uuid.clone());
            }
        }
        host.refresh_rows();
        stale
    }

    /// A fresh read of a host's pools: monitoring verdicts, and events for what changed.
    pub fn pools_updated(
        &mut self,
        uri: &str,
        pools: Vec<(PoolInfo, Vec<VolumeDef>, PoolFreshness)>,
        max_age: std::time::Duration,
        thresholds: &dyn Fn(&str, &str, &str) -> Thresholds,
    ) -> Vec<Event> {
        let Some(host) = self.hosts.get_mut(uri) else {
            return vec![];
        };
        let old = std::mem::take(&mut host.pools);
        let mut events = Vec::new();
        for (info, volumes, freshness) in pools {
            let provisioned = volumes.iter().map(|v| v.capacity).sum();
            let mut entry = PoolEntry {
                info,
                volumes,
                provisioned,
                level: Level::Ok,
                alerts: vec![],
                freshness,
                max_age,
            };
            let (level, alerts) = evaluate(
                &entry.usage(),
                &thresholds(&host.id, &host.uri, &entry.info.def.name),
            );
            entry.level = level;
            entry.alerts = alerts;
            let prev = old.iter().find(|p| p.info.def.name == entry.info.def.name);
            match prev {
                None => events.push(pool_event(
                    EventKind::PoolChanged,
                    host,
                    &entry,
                    "pool added".into(),
                )),
                Some(p) if p.info.active != entry.info.active => {
                    let what = if entry.info.active {
                        "pool started"
                    } else {
                        "pool stopped"
                    };
                    events.push(pool_event(
                        EventKind::PoolChanged,
                        host,
                        &entry,
                        what.into(),
                    ));
                }
                _ => {}
            }
            let prev_level = prev.map(|p| p.level).unwrap_or(Level::Ok);
            if prev_level != entry.level {
                let msg = if entry.level == Level::Ok {
                    "back within thresholds".to_string()
                } else {
                    entry.alerts.join("; ")
                };
                tracing::warn!(host = %host.id, pool = %entry.info.def.name, level = entry.level.as_str(), "pool {}: {msg}", entry.level.as_str());
                events.push(pool_event(EventKind::PoolAlert, host, &entry, msg));
            }
            host.pools.push(entry);
        }
        for p in &old {
            if !host
                .pools
                .iter()
                .any(|n| n.info.def.name == p.info.def.name)
            {
                events.push(pool_event(
                    EventKind::PoolChanged,
                    host,
                    p,
                    "pool removed".into(),
                ));
            }
        }
        events
    }

    pub fn set_free_memory(&mut self, uri: &str, kib: u64) {
        if let Some(h) = self.hosts.get_mut(uri) {
            h.free_memory_kib = Some(kib);
        }
    }

    /// Who uses an image: `name@host-id` of the VMs (on every host for shared pools).
    pub fn users_of(&self, host_uri: &str, path: &str, shared: bool) -> Vec<String> {
        let mut users: Vec<String> = self
            .hosts
            .values()
            .filter(|h| shared || h.uri == host_uri)
            .flat_map(|h| {
                h.vms
                    .values()
                    .filter(|v| v.disk_sources().any(|s| s == path))
                    .map(move |v| format!("{}@{}", v.name, h.id))
            })
            .collect();
        users.sort();
        users
    }

    /// All VMs with a UUID (normally one; several when the same definition exists on
    /// several hosts).
    pub fn find_uuid(&self, uuid: &str) -> Vec<(&HostEntry, &VmEntry)> {
        self.hosts
            .values()
            .filter_map(|h| h.vms.get(uuid).map(|v| (h, v)))
            .collect()
    }

    /// Resolve `uuid` (optionally on one host) to exactly one VM.
    pub fn resolve_vm(
        &self,
        uuid: &str,
        host: Option<&str>,
    ) -> Result<(&HostEntry, &VmEntry), CoreError> {
        let uuid = uvmm_model::uuid::normalize_uuid(uuid)
            .map_err(|e| CoreError::BadRequest(e.to_string()))?;
        if let Some(h) = host {
            let h = self.resolve_host(h)?;
            return h
                .vms
                .get(&uuid)
                .map(|v| (h, v))
                .ok_or_else(|| CoreError::NotFound(format!("no VM {uuid} on host {}", h.id)));
        }
        let mut found = self.find_uuid(&uuid);
        match found.len() {
            0 => Err(CoreError::NotFound(format!("no VM with UUID {uuid}"))),
            1 => Ok(found.remove(0)),
            _ => Err(CoreError::Ambiguous {
                message: format!(
                    "UUID {uuid} exists on {} hosts; choose one with host=",
                    found.len()
                ),
                candidates: found.iter().map(|(h, v)| vm_summary(h, v)).collect(),
            }),
        }
    }

    pub fn list_vms(&self, q: &VmQuery) -> Result<VmPage, CoreError> {
        let state = q
            .state
            .as_deref()
            .map(|s| s.parse::<VmState>())
            .transpose()
            .map_err(|e| CoreError::BadRequest(e.to_string()))?;
        let (key, desc) = parse_sort(q.sort.as_deref().unwrap_or("name"))?;
        let pattern = q.q.as_deref().map(uvmm_model::glob::Pattern::new);
        let only_host = q
            .host
            .as_deref()
            .map(|h| self.resolve_host(h).map(|e| e.uri.as_str()))
            .transpose()?;
        // Rows come from each host's dense listing rows (see `listing.rs`); each carries
        // its primary sort key, so comparisons touch only this vector.
        type Row<'a> = (u128, &'a HostEntry, &'a ListRows, &'a ListRow);
        let mut rows: Vec<Row> = Vec::new();
        for h in self
            .hosts
            .values()
            .filter(|h| only_host.is_none_or(|u| u == h.uri))
        {
            let host_key = prefix_key(&h.id);
            let lr = h.rows();
            rows.extend(
                lr.rows
                    .iter()
                    .filter(|r| state.is_none_or(|s| r.state == s))
                    .filter(|r| q.name.as_deref().is_none_or(|n| lr.name(r) == n))
                    .filter(|r| {
                        pattern.as_ref().is_none_or(|pat| {
                            pat.matches(lr.name(r))
                                || lr.description(r).is_some_and(|d| pat.matches(d))
                                || lr.contact(r).is_some_and(|c| pat.matches(c))
                        })
                    })
                    .map(|r| {
                        let k = match key {
                            SortKey::Name => r.name_prefix,
                            SortKey::Host => host_key,
                            SortKey::State => r.state as u128,
                            SortKey::Memory => r.memory_kib as u128,
                            SortKey::Vcpus => r.vcpus as u128,
                            SortKey::Cpu => f64_key(r.cpu_usage),
                        };
                        (k, h, lr, r)
                    }),
            );
        }
        // The row key orders like the primary key wherever the keys differ; ties fall
        // back to the full key, then a stable secondary order that keeps pages consistent
        // between requests.
        let cmp = |(ka, ha, la, a): &Row, (kb, hb, lb, b): &Row| {
            let k = if desc { kb.cmp(ka) } else { ka.cmp(kb) };
            k.then_with(|| {
                let primary = match key {
                    SortKey::Name => la.name_key(a).cmp(lb.name_key(b)),
                    SortKey::Host => ha.id.cmp(&hb.id),
                    _ => std::cmp::Ordering::Equal,
                };
                if desc {
                    primary.reverse()
                } else {
                    primary
                }
            })
            .then_with(|| a.name_prefix.cmp(&b.name_prefix))
            .then_with(|| la.name_key(a).cmp(lb.name_key(b)))
            .then_with(|| la.name(a).cmp(lb.name(b)))
            .then_with(|| ha.id.cmp(&hb.id))
        };
        let total = rows.len();
        let offset = q.offset.unwrap_or(0);
        // A page needs only its first offset+limit rows in order: select those, sort them.
        let wanted = q
            .limit
            .map(|l| offset.saturating_add(l))
            .unwrap_or(usize::MAX);
        if wanted < rows.len() {
            rows.select_nth_unstable_by(wanted, cmp);
            rows.truncate(wanted);
        }
        rows.sort_by(cmp);
        let items = rows
            .into_iter()
            .skip(offset)
            .take(q.limit.unwrap_or(usize::MAX))
            .filter_map(|(_, h, lr, r)| h.vms.get(lr.uuid(r)).map(|v| vm_summary(h, v)))
            .collect();
        Ok(VmPage {
            total,
            offset,
            limit: q.limit,
            items,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const URI: &str = "test:///a.xml";

    fn snap(uuid: &str, name: &str, state: VmState) -> DomainSnapshot {
        DomainSnapshot {
            uuid: uuid.into(),
            name: name.into(),
            state,
            reason: 1,
            persistent: true,
            autostart: false,
            managed_save: false,
            max_memory_kib: 1024,
            memory_kib: 1024,
            vcpus: 2,
            cpu_time_ns: 0,
            xml: format!(
                "<domain type='test'><name>{name}</name><uuid>{uuid}</uuid><description>d-{name}</description></domain>"
            ),
            next_boot_xml: None,
        }
    }

    const U1: &str = "00000000-0000-0000-0000-000000000001";
    const U2: &str = "00000000-0000-0000-0000-000000000002";
    const U3: &str = "00000000-0000-0000-0000-000000000003";

    fn cache_with(domains: Vec<DomainSnapshot>) -> Cache {
        let mut c = Cache::default();
        c.add_host(URI, "a", HostOrigin::Cmdline, SystemTime::now());
        c.host_synced(URI, HostInfo::default(), None, domains, SystemTime::now());
        c
    }

    fn kinds(events: &[Event]) -> Vec<EventKind> {
        events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn sync_and_resync_produce_the_right_events() {
        let mut c = Cache::default();
        assert_eq!(
            kinds(&c.add_host(URI, "a", HostOrigin::Cmdline, SystemTime::now())),
            vec![EventKind::HostAdded]
        );
        let ev = c.host_synced(
            URI,
            HostInfo::default(),
            None,
            vec![
                snap(U1, "a", VmState::Running),
                snap(U2, "b", VmState::Shutoff),
            ],
            SystemTime::now(),
        );
        assert_eq!(
            kinds(&ev),
            vec![
                EventKind::HostConnected,
                EventKind::VmAdded,
                EventKind::VmAdded
            ]
        );

        let ev = c.host_unavailable(URI, "EOF", None, SystemTime::now());
        assert_eq!(kinds(&ev), vec![EventKind::HostUnavailable]);
        // VMs stay listed, marked unavailable.
        let page = c.list_vms(&VmQuery::default()).unwrap();
        assert_eq!(page.total, 2);
        assert!(page.items.iter().all(|v| !v.available));
        // A second failure while unavailable is not news.
        assert!(c
            .host_unavailable(URI, "again", None, SystemTime::now())
            .is_empty());

        // Reconnect: U1 now paused, U2 gone, U3 new.
        let ev = c.host_synced(
            URI,
            HostInfo::default(),
            None,
            vec![
                snap(U1, "a", VmState::Paused),
                snap(U3, "c", VmState::Running),
            ],
            SystemTime::now(),
        );
        assert_eq!(
            kinds(&ev),
            vec![
                EventKind::HostConnected,
                EventKind::VmRemoved,
                EventKind::VmState,
                EventKind::VmAdded
            ]
        );
        assert_eq!(ev[2].previous_state, Some(VmState::Running));
        assert_eq!(ev[2].state, Some(VmState::Paused));
        assert!(c
            .list_vms(&VmQuery::default())
            .unwrap()
            .items
            .iter()
            .all(|v| v.available));
    }

    #[test]
    fn upsert_table() {
        // (before, after, expected event)
        let running = snap(U1, "a", VmState::Running);
        let mut renamed = snap(U1, "b", VmState::Running);
        renamed.xml = running.xml.replace("<name>a</name>", "<name>b</name>");
        let mut saved = snap(U1, "a", VmState::Shutoff);
        saved.managed_save = true;
        let stopped = snap(U1, "a", VmState::Shutoff);
        // A change stored for the next start of a running VM.
        let mut same_next = running.clone();
        same_next.next_boot_xml = Some(running.xml.clone());
        let mut vcpus_next = running.clone();
        vcpus_next.next_boot_xml = Some(running.xml.replace("</uuid>", "</uuid><vcpu>4</vcpu>"));
        let table: Vec<(Option<DomainSnapshot>, DomainSnapshot, Option<EventKind>)> = vec![
            (None, running.clone(), Some(EventKind::VmAdded)),
            (
                Some(same_next.clone()),
                vcpus_next.clone(),
                Some(EventKind::VmChanged),
            ),
            (Some(vcpus_next.clone()), vcpus_next.clone(), None),
            (Some(running.clone()), running.clone(), None),
            (
                Some(running.clone()),
                stopped.clone(),
                Some(EventKind::VmState),
            ),
            (
                Some(running.clone()),
                renamed.clone(),
                Some(EventKind::VmChanged),
            ),
            (
                Some(stopped.clone()),
                saved.clone(),
                Some(EventKind::VmState),
            ),
        ];
        for (before, after, want) in table {
            let mut c = cache_with(before.clone().into_iter().collect());
            let ev = c.vm_upsert(URI, after.clone());
            assert_eq!(ev.first().map(|e| e.kind), want, "{before:?} -> {after:?}");
            assert!(ev.len() <= 1);
        }
        // The detail shows the pending value next to the live one; the ETag is that of
        // the live and the persistent definition together, as `vmops` computes it.
        let c = cache_with(vec![vcpus_next.clone()]);
        let h = c.host(URI).unwrap();
        let d = vm_detail(h, &h.vms()[U1]);
        assert_eq!(d.summary.vcpus, 2);
        assert_eq!(d.pending.as_ref().and_then(|p| p.vcpus), Some(4));
        assert_eq!(
            d.etag,
            etag_of(&vcpus_next.xml, vcpus_next.next_boot_xml.as_deref())
        );
        assert_ne!(d.etag, etag_of(&vcpus_next.xml, None));
        let c = cache_with(vec![same_next]);
        let h = c.host(URI).unwrap();
        assert_eq!(vm_detail(h, &h.vms()[U1]).pending, None);
    }

    #[test]
    fn removal_and_unknown_host_are_quiet() {
        let mut c = cache_with(vec![snap(U1, "a", VmState::Running)]);
        assert_eq!(kinds(&c.vm_remove(URI, U1)), vec![EventKind::VmRemoved]);
        assert!(c.vm_remove(URI, U1).is_empty());
        assert!(c
            .vm_upsert("test:///other", snap(U2, "x", VmState::Running))
            .is_empty());
        assert_eq!(kinds(&c.remove_host(URI)), vec![EventKind::HostRemoved]);
        assert!(c.resolve_host("a").is_err());
    }

    #[test]
    fn stats_compute_cpu_and_flag_missed_events() {
        let mut c = cache_with(vec![
            snap(U1, "a", VmState::Running),
            snap(U2, "b", VmState::Shutoff),
        ]);
        let t0 = Instant::now();
        let stat = |cpu: u64, state| DomainStats {
            uuid: U1.into(),
            state: Some(state),
            cpu_time_ns: Some(cpu),
            balloon_current_kib: Some(512),
            vcpus_current: Some(2),
            ..DomainStats::default()
        };
        let other = DomainStats {
            uuid: U2.into(),
            state: Some(VmState::Shutoff),
            ..DomainStats::default()
        };
        assert!(c
            .apply_stats(
                URI,
                &[stat(0, VmState::Running), other.clone()],
                Some(99),
                t0,
                true
            )
            .is_empty());
        // 1 s later, 1 s of CPU on 2 vCPUs = 50 %, smoothed from 0 -> 25 %.
        let stale = c.apply_stats(
            URI,
            &[stat(1_000_000_000, VmState::Running), other.clone()],
            None,
            t0 + Duration::from_secs(1),
            true,
        );
        assert!(stale.is_empty());
        let vm = &c.host(URI).unwrap().vms[U1];
        assert!((vm.cpu_usage - 25.0).abs() < 0.01, "{}", vm.cpu_usage);
        assert_eq!(vm.memory_kib, 512);
        assert_eq!(c.host(URI).unwrap().free_memory_kib, Some(99));
        // Bogus counters (test driver) are clamped.
        c.apply_stats(
            URI,
            &[stat(u64::MAX, VmState::Running), other.clone()],
            None,
            t0 + Duration::from_secs(2),
            true,
        );
        assert!(c.host(URI).unwrap().vms[U1].cpu_usage <= 100.0);
        // State disagreement, unknown UUID and a VM missing from the stats: all stale.
        let unknown = DomainStats {
            uuid: U3.into(),
            ..DomainStats::default()
        };
        let mut stale = c.apply_stats(
            URI,
            &[stat(0, VmState::Paused), unknown.clone()],
            None,
            t0 + Duration::from_secs(3),
            true,
        );
        stale.sort();
        assert_eq!(stale, vec![U1.to_string(), U2.to_string(), U3.to_string()]);
        // A read of the active VMs only: the shut-off VM is expected to be missing, a
        // running one is not.
        let stale = c.apply_stats(URI, &[unknown], None, t0 + Duration::from_secs(4), false);
        let mut stale = stale;
        stale.sort();
        assert_eq!(stale, vec![U1.to_string(), U3.to_string()]);
        let stale = c.apply_stats(
            URI,
            &[stat(0, VmState::Running)],
            None,
            t0 + Duration::from_secs(5),
            false,
        );
        assert!(stale.is_empty(), "{stale:?}");
    }

    #[test]
    fn list_filters_sorts_and_pages() {
        let mut c = cache_with(vec![
            snap(U1, "web-01", VmState::Running),
            snap(U2, "db-01", VmState::Shutoff),
            snap(U3, "Web-02", VmState::Running),
        ]);
        c.add_host("test:///b.xml", "b", HostOrigin::Runtime, SystemTime::now());
        c.host_synced(
            "test:///b.xml",
            HostInfo::default(),
            None,
            vec![snap(U1, "web-01", VmState::Paused)],
            SystemTime::now(),
        );
        let names = |q: VmQuery| -> Vec<String> {
            c.list_vms(&q)
                .unwrap()
                .items
                .into_iter()
                .map(|v| format!("{}@{}", v.name, v.host_id))
                .collect()
        };
        assert_eq!(
            names(VmQuery::default()),
            vec!["db-01@a", "web-01@a", "web-01@b", "Web-02@a"]
        );
        assert_eq!(
            names(VmQuery {
                q: Some("web*".into()),
                ..Default::default()
            }),
            vec!["web-01@a", "web-01@b", "Web-02@a"]
        );
        assert_eq!(
            names(VmQuery {
                q: Some("d-db".into()),
                ..Default::default()
            }),
            vec!["db-01@a"]
        );
        assert_eq!(
            names(VmQuery {
                state: Some("running".into()),
                ..Default::default()
            }),
            vec!["web-01@a", "Web-02@a"]
        );
        assert_eq!(
            names(VmQuery {
                host: Some("b".into()),
                ..Default::default()
            }),
            vec!["web-01@b"]
        );
        assert_eq!(
            names(VmQuery {
                host: Some("test:///b.xml".into()),
                ..Default::default()
            }),
            vec!["web-01@b"]
        );
        assert_eq!(
            names(VmQuery {
                name: Some("web-01".into()),
                ..Default::default()
            }),
            vec!["web-01@a", "web-01@b"]
        );
        assert_eq!(
            names(VmQuery {
                sort: Some("-name".into()),
                limit: Some(3),
                ..Default::default()
            }),
            vec!["Web-02@a", "web-01@a", "web-01@b"]
        );
        let page = c
            .list_vms(&VmQuery {
                offset: Some(3),
                limit: Some(2),
                ..Default::default()
            })
            .unwrap();
        assert_eq!((page.total, page.items.len()), (4, 1));

        for bad in [
            VmQuery {
                state: Some("runing".into()),
                ..Default::default()
            },
            VmQuery {
                sort: Some("size".into()),
                ..Default::default()
            },
        ] {
            assert!(
                matches!(c.list_vms(&bad), Err(CoreError::BadRequest(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            c.list_vms(&VmQuery {
                host: Some("zzz".into()),
                ..Default::default()
            }),
            Err(CoreError::NotFound(_))
        ));
    }

    /// The listing rows are built once and then kept: every kind of change must reach
    /// them (a list is taken before each change so the rows exist when it happens).
    #[test]
    fn listings_follow_every_change_after_the_rows_exist() {
        let mut c = cache_with(vec![
            snap(U1, "alpha", VmState::Running),
            snap(U2, "beta", VmState::Shutoff),
        ]);
        let list = |c: &Cache, sort: &str| -> Vec<String> {
            c.list_vms(&VmQuery {
                sort: Some(sort.into()),
                ..Default::default()
            })
            .unwrap()
            .items
            .into_iter()
            .map(|v| format!("{}:{}:{}:{}", v.name, v.state, v.memory_kib, v.vcpus))
            .collect()
        };
        assert_eq!(
            list(&c, "name"),
            ["alpha:running:1024:2", "beta:shutoff:1024:2"]
        );
        // Statistics change figures in place.
        let t0 = Instant::now();
        let stat = DomainStats {
            uuid: U1.into(),
            state: Some(VmState::Running),
            cpu_time_ns: Some(0),
            balloon_current_kib: Some(4096),
            vcpus_current: Some(4),
            ..DomainStats::default()
        };
        c.apply_stats(URI, &[stat], None, t0, false);
        assert_eq!(
            list(&c, "-memory"),
            ["alpha:running:4096:4", "beta:shutoff:1024:2"]
        );
        assert_eq!(list(&c, "vcpus")[0], "beta:shutoff:1024:2");
        // A state change, a rename and a new description through upsert.
        c.vm_upsert(URI, snap(U2, "aardvark", VmState::Running));
        assert_eq!(
            list(&c, "name"),
            ["aardvark:running:1024:2", "alpha:running:4096:4"]
        );
        let by_desc = |c: &Cache, q: &str| {
            c.list_vms(&VmQuery {
                q: Some(q.into()),
                ..Default::default()
            })
            .unwrap()
            .total
        };
        assert_eq!(by_desc(&c, "d-aardvark"), 1);
        assert_eq!(by_desc(&c, "d-beta"), 0);
        // A new VM, a removed VM.
        c.vm_upsert(URI, snap(U3, "zulu", VmState::Paused));
        assert_eq!(list(&c, "-name")[0], "zulu:paused:1024:2");
        c.vm_remove(URI, U1);
        assert_eq!(
            list(&c, "name"),
            ["aardvark:running:1024:2", "zulu:paused:1024:2"]
        );
        // A full resync replaces the set.
        c.host_synced(
            URI,
            HostInfo::default(),
            None,
            vec![snap(U1, "omega", VmState::Shutoff)],
            SystemTime::now(),
        );
        assert_eq!(list(&c, "name"), ["omega:shutoff:1024:2"]);
        // Losing the host zeroes CPU figures; the listing shows the VM still.
        c.host_unavailable(URI, "gone", None, SystemTime::now());
        assert_eq!(list(&c, "cpu"), ["omega:shutoff:1024:2"]);
    }

    #[test]
    fn search_covers_name_description_and_contact() {
        let mut with_contact = snap(U1, "alpha", VmState::Running);
        with_contact.xml = format!(
            "<domain type='test'><name>alpha</name><uuid>{U1}</uuid><metadata>\
             <uvmm:notes xmlns:uvmm='https://univention.de/uvmm/1'>\
             <uvmm:contact>Jane Roe</uvmm:contact></uvmm:notes></metadata></domain>"
        );
        let c = cache_with(vec![with_contact, snap(U2, "beta", VmState::Shutoff)]);
        let search = |q: &str| -> Vec<String> {
            c.list_vms(&VmQuery {
                q: Some(q.into()),
                ..Default::default()
            })
            .unwrap()
            .items
            .into_iter()
            .map(|v| v.name)
            .collect()
        };
        assert_eq!(search("jane"), ["alpha"]);
        assert_eq!(search("*roe"), ["alpha"]);
        assert_eq!(search("d-beta"), ["beta"]);
        assert_eq!(search("alp"), ["alpha"]);
        assert!(search("nobody").is_empty());
    }

    #[test]
    fn host_cpu_usage_weighs_vms_by_vcpus() {
        let mut c = cache_with(vec![
            snap(U1, "a", VmState::Running),
            snap(U2, "b", VmState::Shutoff),
        ]);
        let h = c.hosts.get_mut(URI).unwrap();
        h.info = Some(HostInfo {
            cpus: 8,
            ..HostInfo::default()
        });
        h.vms.get_mut(U1).unwrap().cpu_usage = 50.0;
        h.vms.get_mut(U2).unwrap().cpu_usage = 100.0;
        let s = host_summary(h, SystemTime::now());
        // a: 2 vCPUs at 50 % = one CPU of eight; b is shut off.
        assert_eq!(s.cpu_usage, Some(12.5));
        assert_eq!(s.running_vcpus, 2);
        assert_eq!(s.running_memory_kib, 1024);
        h.info = None;
        assert_eq!(host_summary(h, SystemTime::now()).cpu_usage, None);
    }

    #[test]
    fn resolve_vm_cases() {
        let mut c = cache_with(vec![snap(U1, "a", VmState::Running)]);
        assert!(c.resolve_vm(U1, None).is_ok());
        assert!(c.resolve_vm(&U1.replace('-', ""), None).is_ok());
        assert!(matches!(
            c.resolve_vm("nope", None),
            Err(CoreError::BadRequest(_))
        ));
        assert!(matches!(
            c.resolve_vm(U2, None),
            Err(CoreError::NotFound(_))
        ));
        c.add_host("test:///b.xml", "b", HostOrigin::Runtime, SystemTime::now());
        c.host_synced(
            "test:///b.xml",
            HostInfo::default(),
            None,
            vec![snap(U1, "a", VmState::Shutoff)],
            SystemTime::now(),
        );
        assert!(matches!(
            c.resolve_vm(U1, None),
            Err(CoreError::Ambiguous { .. })
        ));
        assert_eq!(c.resolve_vm(U1, Some("b")).unwrap().0.id, "b");
    }

    #[test]
    fn free_ids() {
        let mut c = Cache::default();
        assert_eq!(c.free_id("default"), "default");
        c.add_host(
            "test:///default",
            "default",
            HostOrigin::Cmdline,
            SystemTime::now(),
        );
        assert_eq!(c.free_id("default"), "default-2");
    }

    #[test]
    fn pool_figures_age() {
        let now = SystemTime::now();
        let secs = std::time::Duration::from_secs;
        let entry = |active: bool, refreshed: Option<u64>| PoolEntry {
            info: PoolInfo {
                active,
                ..PoolInfo::default()
            },
            volumes: vec![],
            provisioned: 0,
            level: Level::Ok,
            alerts: vec![],
            freshness: PoolFreshness {
                refreshed_at: refreshed.map(|ago| now - secs(ago)),
                error: None,
            },
            max_age: secs(60),
        };
        // (active, refreshed seconds ago, age, stale)
        let table = [
            (true, Some(0), Some(0), false),
            (true, Some(60), Some(60), false),
            (true, Some(61), Some(61), true),
            (true, None, None, true),
            (false, None, None, false),
            (false, Some(600), None, false),
        ];
        for (active, ago, age, stale) in table {
            assert_eq!(
                pool_age(&entry(active, ago), now),
                (age, stale),
                "{active} {ago:?}"
            );
        }
    }
}
