//! Cache entries as the API shows them.

use super::{Cache, HostEntry, PoolEntry, VmEntry};
use std::time::SystemTime;
use uvmm_api::{
    HostDetail, HostStatus, HostSummary, PoolDetail, PoolSummary, VmDetail, VmSummary,
    VolumeSummary,
};
use uvmm_model::state::state_reason;

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

#[cfg(test)]
mod tests {
    use super::super::PoolFreshness;
    use super::*;
    use uvmm_libvirt::PoolInfo;
    use uvmm_model::monitor::Level;

    #[test]
    fn host_cpu_usage_weighs_vms_by_vcpus() {
        use super::super::update::tests::*;
        use uvmm_libvirt::HostInfo;
        use uvmm_model::state::VmState;
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
