//! How the cache changes: every update is a pure function of the cache and what libvirt
//! said, returning the events it caused (added, removed, state changed, definition
//! changed). `Shared::update` publishes them in change order.

use super::notes::overlay_notes;
use super::*;
use uvmm_api::{Change, Event};
use uvmm_libvirt::DomainStats;
use uvmm_model::monitor::{evaluate, Thresholds};

/// Weight of the newest sample in the smoothed CPU usage.
const CPU_SMOOTHING: f64 = 0.5;

/// An event of `host` before the bus gives it a sequence number and time.
fn event(host: &HostEntry, change: Change) -> Event {
    Event::new(&host.uri, &host.id, Some(host.available()), change)
}

/// A pool event: `alert` (a monitoring level crossed) or a pool added, removed, started
/// or stopped.
fn pool_event(alert: bool, host: &HostEntry, pool: &PoolEntry, message: String) -> Event {
    let (pool, level) = (pool.info.def.name.clone(), pool.level);
    let change = if alert {
        Change::PoolAlert {
            pool,
            level,
            message,
        }
    } else {
        Change::PoolChanged {
            pool,
            level,
            message,
        }
    };
    event(host, change)
}

/// A VM was added.
fn vm_added(host: &HostEntry, vm: &VmEntry) -> Event {
    let vm = vm_summary(host, vm);
    event(host, Change::VmAdded { vm })
}

/// A VM's state (`state`) or definition changed.
pub(super) fn vm_changed(
    host: &HostEntry,
    vm: &VmEntry,
    previous_state: VmState,
    state: bool,
) -> Event {
    let vm = vm_summary(host, vm);
    let change = if state {
        Change::VmState { vm, previous_state }
    } else {
        Change::VmChanged { vm, previous_state }
    };
    event(host, change)
}

fn vm_removed(host: &HostEntry, vm: &VmEntry) -> Event {
    let change = Change::VmRemoved {
        uuid: vm.uuid.clone(),
        name: vm.name.clone(),
        state: vm.state,
    };
    event(host, change)
}

impl Cache {
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
        let ev = event(&entry, Change::HostAdded);
        self.ids.insert(id.to_string(), uri.to_string());
        self.hosts.insert(uri.to_string(), entry);
        self.pages = OnceLock::new();
        vec![ev]
    }

    pub fn remove_host(&mut self, uri: &str) -> Vec<Event> {
        match self.hosts.remove(uri) {
            Some(h) => {
                self.pages = OnceLock::new();
                self.ids.remove(&h.id);
                let mut ev = event(&h, Change::HostRemoved);
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
        // A moving VM's copy on its target waits for the end of the move (`moving.rs`).
        let held: Vec<String> = domains
            .iter()
            .filter(|d| self.held_back(uri, &d.uuid))
            .map(|d| d.uuid.clone())
            .collect();
        let kept: Vec<String> = self
            .moving
            .keys()
            .filter(|u| self.kept_until_moved(uri, u))
            .cloned()
            .collect();
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
            if held.contains(&snap.uuid) {
                continue;
            }
            let mut vm = VmEntry::from_snapshot(snap);
            overlay_notes(self.directory_notes.as_ref(), &mut vm);
            fresh.insert(vm.uuid.clone(), vm);
        }
        let old = std::mem::take(host.vms_mut(&mut self.pages));
        for (uuid, old_vm) in &old {
            if !fresh.contains_key(uuid) {
                if kept.contains(uuid) {
                    fresh.insert(uuid.clone(), old_vm.clone());
                } else {
                    events.push(vm_removed(host, old_vm));
                }
            }
        }
        for (uuid, mut vm) in fresh {
            match old.get(&uuid) {
                None => events.push(vm_added(host, &vm)),
                Some(prev) => {
                    vm.cpu_usage = prev.cpu_usage;
                    vm.cpu_sample = prev.cpu_sample;
                    if prev.state != vm.state || prev.managed_save != vm.managed_save {
                        events.push(vm_changed(host, &vm, prev.state, true));
                    } else if !prev.same_definition(&vm) {
                        events.push(vm_changed(host, &vm, prev.state, false));
                    }
                }
            }
            host.vms_mut(&mut self.pages).insert(uuid, vm);
        }
        if !was_available {
            events.insert(0, event(host, Change::HostConnected));
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
            let message = error.to_string();
            vec![event(host, Change::HostUnavailable { message })]
        } else {
            vec![]
        }
    }

    /// Insert or refresh one VM.
    pub fn vm_upsert(&mut self, uri: &str, snap: DomainSnapshot) -> Vec<Event> {
        if self.held_back(uri, &snap.uuid) {
            return vec![];
        }
        let Some(host) = self.hosts.get_mut(uri) else {
            return vec![];
        };
        let mut vm = VmEntry::from_snapshot(snap);
        overlay_notes(self.directory_notes.as_ref(), &mut vm);
        let ev = match host.vms.get(&vm.uuid) {
            None => Some(vm_added(host, &vm)),
            Some(prev) => {
                if vm.state.is_active() {
                    vm.cpu_usage = prev.cpu_usage;
                    vm.cpu_sample = prev.cpu_sample;
                }
                if prev.state != vm.state || prev.managed_save != vm.managed_save {
                    Some(vm_changed(host, &vm, prev.state, true))
                } else if !prev.same_definition(&vm) {
                    Some(vm_changed(host, &vm, prev.state, false))
                } else {
                    None
                }
            }
        };
        // A change of state or figures keeps the rows and the name order: only what they
        // hold (name, description, contact) rebuilds them.
        let same_row = host.vms.get(&vm.uuid).is_some_and(|prev| {
            prev.name == vm.name
                && prev.def.notes.description == vm.def.notes.description
                && prev.def.notes.contact == vm.def.notes.contact
        });
        if same_row {
            host.vms.insert(vm.uuid.clone(), vm);
            host.refresh_rows();
        } else {
            host.vms_mut(&mut self.pages).insert(vm.uuid.clone(), vm);
        }
        ev.into_iter().collect()
    }

    pub fn vm_remove(&mut self, uri: &str, uuid: &str) -> Vec<Event> {
        if self.kept_until_moved(uri, uuid) {
            return vec![];
        }
        let Some(host) = self.hosts.get_mut(uri) else {
            return vec![];
        };
        match host.vms_mut(&mut self.pages).remove(uuid) {
            Some(vm) => vec![vm_removed(host, &vm)],
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
                            let vcpus = f64::from(vm.vcpus.max(1));
                            let pct = (cpu - prev_cpu) as f64 / dt / vcpus * 100.0;
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
            // A pool meant to run (autostart) that is stopped is a fault: the VMs with
            // images in it cannot start, and its figures are unknown. A pool stopped on
            // purpose (no autostart) is not.
            if entry.info.autostart && !entry.info.active {
                entry.level = entry.level.max(Level::Warning);
                entry
                    .alerts
                    .push("stopped although marked autostart: its images cannot be used".into());
            }
            let prev = old.iter().find(|p| p.info.def.name == entry.info.def.name);
            match prev {
                None => events.push(pool_event(false, host, &entry, "pool added".into())),
                Some(p) if p.info.active != entry.info.active => {
                    let what = if entry.info.active {
                        "pool started"
                    } else {
                        "pool stopped"
                    };
                    events.push(pool_event(false, host, &entry, what.into()));
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
                events.push(pool_event(true, host, &entry, msg));
            }
            host.pools.push(entry);
        }
        for p in &old {
            if !host
                .pools
                .iter()
                .any(|n| n.info.def.name == p.info.def.name)
            {
                events.push(pool_event(false, host, p, "pool removed".into()));
            }
        }
        events
    }

    pub fn set_free_memory(&mut self, uri: &str, kib: u64) {
        if let Some(h) = self.hosts.get_mut(uri) {
            h.free_memory_kib = Some(kib);
        }
    }
}

#[cfg(test)]
pub(super) mod tests;
