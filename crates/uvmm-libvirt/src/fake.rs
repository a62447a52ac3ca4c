//! An in-memory hypervisor for fast tests of the daemon's jobs, tasks and workers without
//! libvirt (the libvirt test driver stays for the integration tests). It keeps domains,
//! pools, volumes and networks in memory, sends lifecycle events like libvirt does, and
//! lets a test stop a call half-way ([`FakeHost::hold`]) to look at the daemon while it
//! runs: that is how a test shows, by ordering and not by timing, that a long job does not
//! block its host.
//!
//! Connections to one URI share one [`FakeHost`], as `test:///default` does.

use crate::{
    not_supported, Connector, DomainSnapshot, DomainStats, ErrorKind, EventSink, HostEvent,
    HostInfo, Hypervisor, JobProgress, LibvirtError, Lifecycle, NetworkInfo, PoolAction, PoolInfo,
    VolumeInfo,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use uvmm_model::caps::{GuestCaps, HostCaps};
use uvmm_model::domain::parse_domain;
use uvmm_model::storage::{parse_volume, PoolDef, VolumeDef};
use uvmm_model::{Action, VmState};

/// A poisoned lock only means a test thread panicked; the data is still what it was.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn missing(what: &str) -> LibvirtError {
    LibvirtError::new(ErrorKind::NotFound, format!("{what} not found"))
}

/// Opens [`FakeHypervisor`] connections; every URI gets its own [`FakeHost`], made on
/// first use with [`FakeHost::standard`] content.
#[derive(Default)]
pub struct FakeConnector {
    hosts: Mutex<HashMap<String, Arc<FakeHost>>>,
    /// Refuse this many of the next connection attempts.
    pub refuse_connects: AtomicUsize,
    /// Connection attempts made.
    pub connects: AtomicUsize,
}

impl FakeConnector {
    pub fn new() -> Arc<FakeConnector> {
        Arc::new(FakeConnector::default())
    }

    /// The host behind `uri` (made now if it does not exist yet).
    pub fn host(&self, uri: &str) -> Arc<FakeHost> {
        lock(&self.hosts)
            .entry(uri.to_string())
            .or_insert_with(|| Arc::new(FakeHost::standard()))
            .clone()
    }
}

impl Connector for FakeConnector {
    fn connect(&self, uri: &str, sink: EventSink) -> Result<Arc<dyn Hypervisor>, LibvirtError> {
        self.connects.fetch_add(1, Ordering::SeqCst);
        let refused = self
            .refuse_connects
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refused {
            return Err(LibvirtError::new(
                ErrorKind::Connection,
                "fake: connection refused",
            ));
        }
        let host = self.host(uri);
        if !host.alive() {
            return Err(LibvirtError::new(
                ErrorKind::Connection,
                "fake: host is down",
            ));
        }
        lock(&host.sinks).push(sink);
        Ok(Arc::new(FakeHypervisor {
            uri: uri.to_string(),
            host,
        }))
    }
}

/// A domain of a fake host.
#[derive(Debug, Clone)]
pub struct FakeDomain {
    pub name: String,
    pub state: VmState,
    pub persistent: bool,
    pub autostart: bool,
    pub managed_save: bool,
    /// The definition (with secrets), as defined.
    pub xml: String,
}

#[derive(Debug, Clone)]
struct FakePool {
    info: PoolInfo,
    volumes: BTreeMap<String, VolumeDef>,
}

#[derive(Debug, Default)]
struct State {
    info: HostInfo,
    domains: BTreeMap<String, FakeDomain>,
    pools: BTreeMap<String, FakePool>,
    networks: Vec<NetworkInfo>,
    interfaces: Vec<String>,
    /// Progress of each domain's running job, as the test sets it.
    jobs: HashMap<String, JobProgress>,
    /// Domains whose running job was aborted (the held call then fails).
    aborted: Vec<String>,
    down: bool,
    quiet: bool,
    next_uuid: u32,
}

/// A call that a test holds half-way: it waits in the fake until the test opens the gate.
#[derive(Default)]
pub struct Gate {
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Gate {
    /// Wait until a call is held here (or `timeout` passes); true if one is.
    pub fn wait_entered(&self, timeout: std::time::Duration) -> bool {
        let guard = lock(&self.state);
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |(entered, _)| *entered == 0)
            .unwrap_or_else(|p| p.into_inner());
        guard.0 > 0
    }

    /// Let every held call (and every later one) go on.
    pub fn open(&self) {
        lock(&self.state).1 = true;
        self.changed.notify_all();
    }

    fn pass(&self) {
        let mut guard = lock(&self.state);
        guard.0 += 1;
        self.changed.notify_all();
        let _open = self
            .changed
            .wait_while(guard, |(_, open)| !*open)
            .unwrap_or_else(|p| p.into_inner());
    }
}

/// One fake host: its state, the event sinks of its connections, the held calls.
pub struct FakeHost {
    state: Mutex<State>,
    sinks: Mutex<Vec<EventSink>>,
    gates: Mutex<HashMap<String, Arc<Gate>>>,
    calls: Mutex<Vec<String>>,
}

const CAPS: &[(&str, &str, &[&str])] = &[("hvm", "x86_64", &["qemu", "kvm"])];

impl FakeHost {
    /// A host with 8 CPUs, 16 GiB, a `default` dir pool of 100 GiB, a `default` network,
    /// and no domains.
    pub fn standard() -> FakeHost {
        let guests = CAPS
            .iter()
            .map(|(os, arch, types)| GuestCaps {
                os_type: os.to_string(),
                arch: arch.to_string(),
                domain_types: types.iter().map(|t| t.to_string()).collect(),
                machines: vec!["pc".into()],
                emulator: Some("/usr/bin/qemu-system-x86_64".into()),
            })
            .collect();
        let info = HostInfo {
            hostname: "fake".into(),
            driver: "FAKE".into(),
            libvirt_version: "9.0.0".into(),
            hypervisor_version: String::new(),
            cpus: 8,
            cpu_model: "x86_64".into(),
            cpu_mhz: 2000,
            memory_kib: 16 << 20,
            caps: HostCaps {
                host_arch: Some("x86_64".into()),
                guests,
            },
        };
        let host = FakeHost {
            state: Mutex::new(State {
                info,
                networks: vec![NetworkInfo {
                    name: "default".into(),
                    bridge: Some("virbr0".into()),
                    active: true,
                }],
                interfaces: vec!["virbr0".into(), "eth0".into()],
                ..State::default()
            }),
            sinks: Mutex::default(),
            gates: Mutex::default(),
            calls: Mutex::default(),
        };
        host.add_pool("default", "/var/lib/libvirt/images", 100 << 30);
        host
    }

    fn st(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Add a dir pool (active, autostart).
    pub fn add_pool(&self, name: &str, path: &str, capacity: u64) {
        let info = PoolInfo {
            def: PoolDef {
                name: name.into(),
                uuid: None,
                kind: "dir".into(),
                target_path: Some(path.into()),
                source: None,
            },
            active: true,
            autostart: true,
            persistent: true,
            capacity,
            allocation: 0,
            available: capacity,
        };
        self.st().pools.insert(
            name.into(),
            FakePool {
                info,
                volumes: BTreeMap::new(),
            },
        );
    }

    /// Add a raw volume of `capacity` bytes with `allocation` bytes used.
    pub fn add_volume(&self, pool: &str, name: &str, capacity: u64, allocation: u64) {
        let mut st = self.st();
        let Some(p) = st.pools.get_mut(pool) else {
            return;
        };
        let path = p
            .info
            .def
            .target_path
            .as_deref()
            .map(|d| format!("{d}/{name}"));
        p.volumes.insert(
            name.into(),
            VolumeDef {
                name: name.into(),
                kind: "file".into(),
                path,
                format: Some("raw".into()),
                capacity,
                allocation,
            },
        );
    }

    /// What a volume has allocated now (a clone in progress grows).
    pub fn set_allocation(&self, pool: &str, name: &str, allocation: u64) {
        if let Some(v) = self
            .st()
            .pools
            .get_mut(pool)
            .and_then(|p| p.volumes.get_mut(name))
        {
            v.allocation = allocation;
        }
    }

    /// Add a persistent domain with 1 GiB and 1 vCPU in `state` (connections hear of it
    /// as libvirt tells of a define); returns its UUID.
    pub fn add_domain(&self, name: &str, state: VmState) -> String {
        let mut st = self.st();
        st.next_uuid += 1;
        let uuid = format!("00000000-0000-4000-8000-{:012x}", st.next_uuid);
        let xml = format!(
            "<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid>\
             <memory unit='KiB'>1048576</memory><currentMemory unit='KiB'>1048576</currentMemory>\
             <vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os>\
             <devices></devices></domain>"
        );
        st.domains.insert(
            uuid.clone(),
            FakeDomain {
                name: name.into(),
                state,
                persistent: true,
                autostart: false,
                managed_save: false,
                xml,
            },
        );
        drop(st);
        self.emit(&uuid, name, Lifecycle::Defined);
        uuid
    }

    /// Replace a domain's definition without telling anyone, as `virsh ... --config` or
    /// a libvirt that re-serialises a definition on its own does.
    pub fn rewrite_definition(&self, uuid: &str, xml: &str) {
        if let Some(d) = self.st().domains.get_mut(uuid) {
            d.xml = xml.to_string();
        }
    }

    /// A domain as the fake has it now.
    pub fn domain(&self, uuid: &str) -> Option<FakeDomain> {
        self.st().domains.get(uuid).cloned()
    }

    /// The names of the volumes of a pool.
    pub fn volume_names(&self, pool: &str) -> Vec<String> {
        self.st()
            .pools
            .get(pool)
            .map(|p| p.volumes.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// What `job_progress` answers for a domain while its job runs.
    pub fn set_job_progress(&self, uuid: &str, progress: JobProgress) {
        self.st().jobs.insert(uuid.into(), progress);
    }

    /// Hold every call named `call` (a method name; actions as `action:start` ...) until
    /// the returned gate opens.
    pub fn hold(&self, call: &str) -> Arc<Gate> {
        lock(&self.gates)
            .entry(call.to_string())
            .or_default()
            .clone()
    }

    /// Every call made so far, by name, in order.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }

    /// Events are not sent while `quiet` (a lost event).
    pub fn set_quiet(&self, quiet: bool) {
        self.st().quiet = quiet;
    }

    /// The host goes down: open connections report `Closed`, new ones are refused.
    pub fn go_down(&self, reason: &str) {
        self.st().down = true;
        for sink in lock(&self.sinks).drain(..) {
            sink(HostEvent::Closed {
                reason: reason.into(),
            });
        }
    }

    pub fn come_back(&self) {
        self.st().down = false;
    }

    fn alive(&self) -> bool {
        !self.st().down
    }

    fn enter(&self, call: &str) -> Result<(), LibvirtError> {
        lock(&self.calls).push(call.to_string());
        if self.st().down {
            return Err(LibvirtError::new(
                ErrorKind::Connection,
                "fake: host is down",
            ));
        }
        let gate = lock(&self.gates).get(call).cloned();
        if let Some(g) = gate {
            g.pass();
        }
        Ok(())
    }

    fn emit(&self, uuid: &str, name: &str, event: Lifecycle) {
        if self.st().quiet {
            return;
        }
        for sink in lock(&self.sinks).iter() {
            sink(HostEvent::Lifecycle {
                uuid: uuid.into(),
                name: name.into(),
                event,
                detail: 0,
            });
        }
    }
}

/// A connection to a [`FakeHost`].
pub struct FakeHypervisor {
    uri: String,
    host: Arc<FakeHost>,
}

impl FakeHypervisor {
    fn snapshot(uuid: &str, d: &FakeDomain) -> DomainSnapshot {
        let def = parse_domain(&d.xml).unwrap_or_default();
        DomainSnapshot {
            uuid: uuid.into(),
            name: d.name.clone(),
            state: d.state,
            reason: 0,
            persistent: d.persistent,
            autostart: d.autostart,
            managed_save: d.managed_save,
            max_memory_kib: def.max_memory_kib,
            memory_kib: def.memory_kib,
            vcpus: def.vcpus,
            cpu_time_ns: 0,
            xml: d.xml.clone(),
            next_boot_xml: (d.state.is_active() && d.persistent).then(|| d.xml.clone()),
        }
    }

    fn volume_info(pool: &str, v: &VolumeDef) -> VolumeInfo {
        VolumeInfo {
            pool: pool.into(),
            def: v.clone(),
        }
    }
}

impl Hypervisor for FakeHypervisor {
    fn uri(&self) -> &str {
        &self.uri
    }

    fn is_alive(&self) -> bool {
        self.host.alive()
    }

    fn host_info(&self) -> Result<HostInfo, LibvirtError> {
        self.host.enter("host_info")?;
        Ok(self.host.st().info.clone())
    }

    fn list_domains(&self) -> Result<Vec<DomainSnapshot>, LibvirtError> {
        self.host.enter("list_domains")?;
        let st = self.host.st();
        Ok(st
            .domains
            .iter()
            .map(|(u, d)| Self::snapshot(u, d))
            .collect())
    }

    fn domain(&self, uuid: &str) -> Result<Option<DomainSnapshot>, LibvirtError> {
        self.host.enter("domain")?;
        Ok(self
            .host
            .st()
            .domains
            .get(uuid)
            .map(|d| Self::snapshot(uuid, d)))
    }

    fn action(&self, uuid: &str, action: Action) -> Result<(), LibvirtError> {
        self.host.enter("action")?;
        let state = self
            .host
            .st()
            .domains
            .get(uuid)
            .map(|d| d.state)
            .ok_or_else(|| missing("domain"))?;
        action
            .check(state)
            .map_err(|e| LibvirtError::new(ErrorKind::InvalidOperation, format!("fake: {e}")))?;
        // Held here like a long libvirt call (a managed save), abortable meanwhile.
        self.host.enter(&format!("action:{}", action.as_str()))?;
        let mut st = self.host.st();
        st.jobs.remove(uuid);
        if let Some(i) = st.aborted.iter().position(|u| u == uuid) {
            st.aborted.remove(i);
            return Err(LibvirtError::new(
                ErrorKind::Aborted,
                "operation aborted: job canceled by client",
            ));
        }
        let d = st.domains.get_mut(uuid).ok_or_else(|| missing("domain"))?;
        let (next, event) = match action {
            Action::Start => (VmState::Running, Lifecycle::Started),
            Action::Shutdown | Action::Stop => (VmState::Shutoff, Lifecycle::Stopped),
            Action::Pause => (VmState::Paused, Lifecycle::Suspended),
            Action::Resume => (VmState::Running, Lifecycle::Resumed),
            Action::Suspend => (VmState::Shutoff, Lifecycle::Stopped),
            Action::Reboot | Action::Reset => (VmState::Running, Lifecycle::Other(-1)),
        };
        d.managed_save = action == Action::Suspend;
        d.state = next;
        let name = d.name.clone();
        drop(st);
        if next != state {
            self.host.emit(uuid, &name, event);
        }
        Ok(())
    }

    fn job_progress(
        &self,
        uuid: &str,
        completed: bool,
    ) -> Result<Option<JobProgress>, LibvirtError> {
        self.host.enter("job_progress")?;
        // The fake keeps no statistics of ended jobs.
        if completed {
            return Ok(None);
        }
        Ok(self.host.st().jobs.get(uuid).cloned())
    }

    fn abort_job(&self, uuid: &str) -> Result<(), LibvirtError> {
        self.host.enter("abort_job")?;
        self.host.st().aborted.push(uuid.into());
        Ok(())
    }

    fn domain_stats(&self, active_only: bool) -> Result<Vec<DomainStats>, LibvirtError> {
        self.host.enter("domain_stats")?;
        let st = self.host.st();
        Ok(st
            .domains
            .iter()
            .filter(|(_, d)| !active_only || d.state.is_active())
            .map(|(u, d)| DomainStats {
                uuid: u.clone(),
                state: Some(d.state),
                cpu_time_ns: Some(0),
                ..DomainStats::default()
            })
            .collect())
    }

    fn free_memory_kib(&self) -> Result<u64, LibvirtError> {
        self.host.enter("free_memory_kib")?;
        Ok(8 << 20)
    }

    fn domain_xml(
        &self,
        uuid: &str,
        _inactive: bool,
        _secure: bool,
    ) -> Result<String, LibvirtError> {
        self.host.enter("domain_xml")?;
        self.host
            .st()
            .domains
            .get(uuid)
            .map(|d| d.xml.clone())
            .ok_or_else(|| missing("domain"))
    }

    fn define(&self, xml: &str) -> Result<String, LibvirtError> {
        self.host.enter("define")?;
        let def = parse_domain(xml)
            .map_err(|e| LibvirtError::new(ErrorKind::InvalidInput, format!("fake: {e}")))?;
        let mut st = self.host.st();
        let uuid = if def.uuid.is_empty() {
            st.next_uuid += 1;
            format!("00000000-0000-4000-8000-{:012x}", st.next_uuid)
        } else {
            def.uuid.clone()
        };
        if let Some((u, _)) = st
            .domains
            .iter()
            .find(|(u, d)| d.name == def.name && **u != uuid)
        {
            return Err(LibvirtError::new(
                ErrorKind::Exists,
                format!("fake: domain '{}' already exists with uuid {u}", def.name),
            ));
        }
        let xml = if def.uuid.is_empty() {
            xml.replacen("</name>", &format!("</name><uuid>{uuid}</uuid>"), 1)
        } else {
            xml.to_string()
        };
        let d = st.domains.entry(uuid.clone()).or_insert(FakeDomain {
            name: def.name.clone(),
            state: VmState::Shutoff,
            persistent: true,
            autostart: false,
            managed_save: false,
            xml: String::new(),
        });
        d.xml = xml;
        d.name = def.name.clone();
        d.persistent = true;
        drop(st);
        self.host.emit(&uuid, &def.name, Lifecycle::Defined);
        Ok(uuid)
    }

    fn undefine(&self, uuid: &str) -> Result<(), LibvirtError> {
        self.host.enter("undefine")?;
        let mut st = self.host.st();
        let d = st.domains.get_mut(uuid).ok_or_else(|| missing("domain"))?;
        let name = d.name.clone();
        if d.state.is_active() {
            d.persistent = false;
        } else {
            st.domains.remove(uuid);
        }
        drop(st);
        self.host.emit(uuid, &name, Lifecycle::Undefined);
        Ok(())
    }

    fn set_autostart(&self, uuid: &str, on: bool) -> Result<(), LibvirtError> {
        self.host.enter("set_autostart")?;
        let mut st = self.host.st();
        let d = st.domains.get_mut(uuid).ok_or_else(|| missing("domain"))?;
        d.autostart = on;
        Ok(())
    }

    fn set_live_notes(
        &self,
        _uuid: &str,
        _description: Option<&str>,
        _notes_xml: Option<&str>,
    ) -> Result<(), LibvirtError> {
        self.host.enter("set_live_notes")
    }

    fn pools(&self) -> Result<Vec<PoolInfo>, LibvirtError> {
        self.host.enter("pools")?;
        let st = self.host.st();
        Ok(st
            .pools
            .values()
            .map(|p| {
                let mut info = p.info.clone();
                info.allocation = p.volumes.values().map(|v| v.allocation).sum();
                info.available = info.capacity.saturating_sub(info.allocation);
                info
            })
            .collect())
    }

    fn volumes(&self, pool: &str) -> Result<Vec<VolumeInfo>, LibvirtError> {
        self.host.enter("volumes")?;
        let st = self.host.st();
        let p = st.pools.get(pool).ok_or_else(|| missing("storage pool"))?;
        Ok(p.volumes
            .values()
            .map(|v| Self::volume_info(pool, v))
            .collect())
    }

    fn create_volume(&self, pool: &str, xml: &str) -> Result<VolumeInfo, LibvirtError> {
        self.host.enter("create_volume")?;
        let mut def = parse_volume(xml)
            .map_err(|e| LibvirtError::new(ErrorKind::InvalidInput, format!("fake: {e}")))?;
        let mut st = self.host.st();
        let p = st
            .pools
            .get_mut(pool)
            .ok_or_else(|| missing("storage pool"))?;
        if p.volumes.contains_key(&def.name) {
            return Err(LibvirtError::new(
                ErrorKind::Exists,
                format!("fake: volume '{}' exists", def.name),
            ));
        }
        def.kind = "file".into();
        def.path = p
            .info
            .def
            .target_path
            .as_deref()
            .map(|d| format!("{d}/{}", def.name));
        p.volumes.insert(def.name.clone(), def.clone());
        Ok(Self::volume_info(pool, &def))
    }

    fn delete_volume(&self, pool: &str, name: &str) -> Result<(), LibvirtError> {
        self.host.enter("delete_volume")?;
        let mut st = self.host.st();
        let p = st
            .pools
            .get_mut(pool)
            .ok_or_else(|| missing("storage pool"))?;
        p.volumes
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| missing("storage volume"))
    }

    fn volume_by_path(&self, path: &str) -> Result<Option<VolumeInfo>, LibvirtError> {
        self.host.enter("volume_by_path")?;
        let st = self.host.st();
        Ok(st.pools.iter().find_map(|(name, p)| {
            p.volumes
                .values()
                .find(|v| v.path.as_deref() == Some(path))
                .map(|v| Self::volume_info(name, v))
        }))
    }

    fn pool_action(&self, pool: &str, action: PoolAction) -> Result<(), LibvirtError> {
        self.host.enter("pool_action")?;
        let mut st = self.host.st();
        let p = st
            .pools
            .get_mut(pool)
            .ok_or_else(|| missing("storage pool"))?;
        match action {
            PoolAction::Start => p.info.active = true,
            PoolAction::Stop => p.info.active = false,
            PoolAction::Autostart(on) => p.info.autostart = on,
            PoolAction::Refresh | PoolAction::Build | PoolAction::DeleteStorage => {}
            PoolAction::Undefine => {
                st.pools.remove(pool);
            }
        }
        Ok(())
    }

    /// Like libvirt: the new volume exists (with what is copied so far) while the copy
    /// runs; hold `clone_volume` to look at it then.
    fn clone_volume(
        &self,
        pool: &str,
        source: &str,
        xml: &str,
    ) -> Result<VolumeInfo, LibvirtError> {
        lock(&self.host.calls).push("clone_volume:start".into());
        let mut def = parse_volume(xml)
            .map_err(|e| LibvirtError::new(ErrorKind::InvalidInput, format!("fake: {e}")))?;
        let allocation = {
            let mut st = self.host.st();
            let p = st
                .pools
                .get_mut(pool)
                .ok_or_else(|| missing("storage pool"))?;
            let src = p
                .volumes
                .get(source)
                .cloned()
                .ok_or_else(|| missing("storage volume"))?;
            if p.volumes.contains_key(&def.name) {
                return Err(LibvirtError::new(
                    ErrorKind::Exists,
                    format!("fake: volume '{}' exists", def.name),
                ));
            }
            def.kind = "file".into();
            def.format = src.format.clone();
            def.path = p
                .info
                .def
                .target_path
                .as_deref()
                .map(|d| format!("{d}/{}", def.name));
            def.allocation = 0;
            p.volumes.insert(def.name.clone(), def.clone());
            src.allocation
        };
        self.host.enter("clone_volume")?;
        self.host.set_allocation(pool, &def.name, allocation);
        def.allocation = allocation;
        Ok(Self::volume_info(pool, &def))
    }

    fn networks(&self) -> Result<Vec<NetworkInfo>, LibvirtError> {
        self.host.enter("networks")?;
        Ok(self.host.st().networks.clone())
    }

    fn interfaces(&self) -> Result<Vec<String>, LibvirtError> {
        self.host.enter("interfaces")?;
        Ok(self.host.st().interfaces.clone())
    }

    fn read_volume(&self, _pool: &str, _name: &str, _len: u64) -> Result<Vec<u8>, LibvirtError> {
        Err(not_supported("reading volumes (fake)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_fake_host_keeps_state_across_connections_and_sends_events() {
        let c = FakeConnector::new();
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let sink: EventSink = Arc::new(move |e| lock(&seen).push(e));
        let a = c.connect("fake:///a", sink).unwrap();
        let b = c.connect("fake:///a", Arc::new(|_| {})).unwrap();
        let uuid = c.host("fake:///a").add_domain("web", VmState::Shutoff);
        a.action(&uuid, Action::Start).unwrap();
        assert_eq!(b.domain(&uuid).unwrap().unwrap().state, VmState::Running);
        assert!(b.action(&uuid, Action::Start).is_err(), "already running");
        // The new domain's definition, then its start, as libvirt announces them.
        assert!(
            matches!(
                lock(&events).as_slice(),
                [
                    HostEvent::Lifecycle {
                        event: Lifecycle::Defined,
                        ..
                    },
                    HostEvent::Lifecycle {
                        event: Lifecycle::Started,
                        ..
                    }
                ]
            ),
            "{:?}",
            lock(&events)
        );
        let other = c.connect("fake:///b", Arc::new(|_| {})).unwrap();
        assert!(other.domain(&uuid).unwrap().is_none(), "hosts are separate");
    }

    #[test]
    fn a_held_clone_shows_its_volume_and_finishes_when_released() {
        let c = FakeConnector::new();
        let host = c.host("fake:///a");
        host.add_volume("default", "src.img", 10 << 30, 4 << 30);
        let gate = host.hold("clone_volume");
        let hv = c.connect("fake:///a", Arc::new(|_| {})).unwrap();
        let xml = uvmm_model::storage::volume_xml("copy.img", 10 << 30, Some("raw"), true);
        std::thread::scope(|s| {
            let copy = s.spawn(|| hv.clone_volume("default", "src.img", &xml));
            assert!(gate.wait_entered(Duration::from_secs(5)));
            let building = hv.volume("default", "copy.img").unwrap().unwrap();
            assert_eq!(building.def.allocation, 0);
            gate.open();
            assert_eq!(copy.join().unwrap().unwrap().def.allocation, 4 << 30);
        });
    }

    #[test]
    fn an_aborted_action_fails_as_aborted() {
        let c = FakeConnector::new();
        let host = c.host("fake:///a");
        let uuid = host.add_domain("db", VmState::Running);
        let gate = host.hold("action:suspend");
        let hv = c.connect("fake:///a", Arc::new(|_| {})).unwrap();
        std::thread::scope(|s| {
            let save = s.spawn(|| hv.action(&uuid, Action::Suspend));
            assert!(gate.wait_entered(Duration::from_secs(5)));
            hv.abort_job(&uuid).unwrap();
            gate.open();
            assert_eq!(save.join().unwrap().unwrap_err().kind, ErrorKind::Aborted);
        });
        assert_eq!(host.domain(&uuid).unwrap().state, VmState::Running);
    }
}
