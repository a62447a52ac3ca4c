use super::*;
use std::time::Duration;
use uvmm_api::{EventKind, VmQuery};

pub(crate) const URI: &str = "test:///a.xml";

pub(crate) fn snap(uuid: &str, name: &str, state: VmState) -> DomainSnapshot {
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

pub(crate) const U1: &str = "00000000-0000-0000-0000-000000000001";

pub(crate) const U2: &str = "00000000-0000-0000-0000-000000000002";

pub(crate) const U3: &str = "00000000-0000-0000-0000-000000000003";

pub(crate) fn cache_with(domains: Vec<DomainSnapshot>) -> Cache {
    let mut c = Cache::default();
    c.add_host(URI, "a", HostOrigin::Cmdline, SystemTime::now());
    c.host_synced(URI, HostInfo::default(), None, domains, SystemTime::now());
    c
}

pub(crate) fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind()).collect()
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
    match &ev[2].change {
        Change::VmState { vm, previous_state } => {
            assert_eq!(*previous_state, VmState::Running);
            assert_eq!(vm.state, VmState::Paused);
        }
        other => panic!("{other:?}"),
    }
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
        assert_eq!(
            ev.first().map(|e| e.kind()),
            want,
            "{before:?} -> {after:?}"
        );
        assert!(ev.len() <= 1);
    }
    // The detail shows the pending value next to the live one; the ETag is that of
    // the live and the persistent definition together, as `vm::load` checks it.
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
