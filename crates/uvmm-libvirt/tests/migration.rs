//! Live and offline migration and failover between two real libvirtds (separate mount
//! namespaces, distinct host UUIDs, TCP on 127.0.0.1), with real QEMU (TCG) guests whose
//! serial console counts: a guest "kept running" when its counter goes on on the target.

#[path = "support/hosts.rs"]
mod hosts;

use hosts::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uvmm_libvirt::migrate::{
    check_migration, failover_define, migrate_live, migrate_offline, CopyStorage, DiskMove,
    Incompatibility, MigrateOptions, MigrationError, MigrationEvent, Side,
};
use uvmm_libvirt::{Connector, Hypervisor, LibvirtConnector};

fn connect(uri: &str) -> Arc<dyn Hypervisor> {
    LibvirtConnector::default()
        .connect(uri, Arc::new(|_| {}))
        .unwrap_or_else(|e| panic!("connect {uri}: {e}"))
}

fn uuid_of(h: &TestHost, name: &str) -> String {
    h.virsh(&["domuuid", name]).trim().to_string()
}

/// Define and start `spec` on `host`; wait until it counts.
fn boot(hosts: &TwoHosts, host: &TestHost, spec: &GuestSpec) -> String {
    let xml = spec.xml(&hosts.image);
    let f = hosts.root.join(format!("{}.xml", spec.name));
    std::fs::write(&f, xml).unwrap();
    host.virsh(&["define", f.to_str().unwrap()]);
    host.virsh(&["start", &spec.name]);
    SerialLog(spec.serial.clone()).wait_booted();
    uuid_of(host, &spec.name)
}

/// Shared storage (proven by a probe) and copied storage, each a running guest that keeps
/// counting on the target; then an offline migration with its snapshot metadata, a
/// refusal that lists every reason, and a failover of a guest on shared storage.
#[test]
fn live_offline_and_failover_between_two_hosts() {
    let mut hosts = TwoHosts::start("mig");
    let (a, b) = (connect(&hosts.a.uri()), connect(&hosts.b.uri()));
    let a_mon = connect(&hosts.a.uri());
    let no_cancel = AtomicBool::new(false);

    // --- 1. Live, shared storage. The target gets a definition with its own serial log,
    // so the counter it prints is the target's beyond doubt.
    let disk = hosts.shared.join("shared-1.qcow2");
    make_qcow2(&disk, "64M", "marker-shared-1");
    for h in [&hosts.a, &hosts.b] {
        h.virsh(&["pool-refresh", "shared"]);
    }
    let spec = GuestSpec::new("m-shared", hosts.serial_path("m-shared-a"))
        .disk(disk.to_str().unwrap(), "qcow2");
    let uuid = boot(&hosts, &hosts.a, &spec);
    let src_log = SerialLog(spec.serial.clone());
    assert!(
        src_log
            .disk_lines()
            .iter()
            .any(|l| l.contains("marker-shared-1")),
        "{}",
        src_log.text()
    );
    let dst_serial = hosts.serial_path("m-shared-b");
    let dest_xml = hosts
        .a
        .virsh(&["dumpxml", "--migratable", "m-shared"])
        .replace(spec.serial.to_str().unwrap(), dst_serial.to_str().unwrap());
    let mut opts = MigrateOptions::new(hosts.b.tcp_uri());
    opts.trust_proven_shared_storage = true;
    opts.dest_xml = Some(dest_xml);
    let mut events = Vec::new();
    let report = migrate_live(
        &*a,
        &*a_mon,
        &*b,
        &uuid,
        &opts,
        &mut |e| events.push(e),
        &no_cancel,
    )
    .unwrap_or_else(|e| panic!("shared-storage migration: {e}\n{}", hosts.a.log()));
    assert_eq!(report.plan.disks.len(), 1);
    assert_eq!(report.plan.disks[0].how, DiskMove::Shared { proven: true });
    assert!(report.created_volumes.is_empty());
    assert_eq!(report.placement.source, Side::Absent, "source undefined");
    assert_eq!(report.placement.target, Side::Running { persistent: true });
    let completed = report.completed.clone().expect("completed job statistics");
    eprintln!(
        "shared: {:?} total, downtime {:?} ms, {:?} bytes; progress events: {}",
        report.duration,
        completed.downtime_ms,
        completed.data_processed,
        events
            .iter()
            .filter(|e| matches!(e, MigrationEvent::Progress(_)))
            .count()
    );
    assert!(completed.downtime_ms.is_some(), "{completed:?}");
    assert!(completed.data_total.unwrap_or(0) > 0, "{completed:?}");
    assert!(matches!(events.first(), Some(MigrationEvent::Planned(_))));
    let last_on_source = src_log.last_tick().unwrap();
    let dst_log = SerialLog(dst_serial);
    let first = dst_log.wait_tick_after(None, Duration::from_secs(30));
    let first_on_target = dst_log
        .text()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("uvmm-guest: tick "))
        .find_map(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(
        first_on_target > last_on_source && first_on_target <= last_on_source + 50,
        "the counter went on where it stopped: source {last_on_source}, target {first_on_target}"
    );
    assert!(
        !dst_log.text().contains("booted"),
        "no reboot on the target"
    );
    dst_log.wait_tick_after(Some(first), Duration::from_secs(30));
    assert_eq!(hosts.b.domstate("m-shared").as_deref(), Some("running"));
    assert!(hosts.a.domstate("m-shared").is_none());
    hosts.b.virsh(&["destroy", "m-shared"]);

    // --- 2. Live, copied storage: the disk is on A's local pool only.
    let local = hosts.a.local_images().join("copy-1.qcow2");
    make_qcow2(&local, "64M", "marker-copy-1");
    hosts.a.virsh(&["pool-refresh", "local"]);
    let spec = GuestSpec::new("m-copy", hosts.serial_path("m-copy"))
        .disk("/var/lib/libvirt/images/copy-1.qcow2", "qcow2");
    let uuid = boot(&hosts, &hosts.a, &spec);
    let log = SerialLog(spec.serial.clone());
    let opts = MigrateOptions::new(hosts.b.tcp_uri());
    let mut events = Vec::new();
    let report = migrate_live(
        &*a,
        &*a_mon,
        &*b,
        &uuid,
        &opts,
        &mut |e| events.push(e),
        &no_cancel,
    )
    .unwrap_or_else(|e| panic!("copy-storage migration: {e}\n{}", hosts.a.log()));
    assert!(
        matches!(report.plan.disks[0].how, DiskMove::Copy { ref target_pool, .. } if target_pool == "local"),
        "{:?}",
        report.plan
    );
    assert_eq!(
        report.created_volumes,
        vec![("local".to_string(), "copy-1.qcow2".to_string())]
    );
    assert!(events.iter().any(
        |e| matches!(e, MigrationEvent::VolumeCreated(p, n) if p == "local" && n == "copy-1.qcow2")
    ));
    let completed = report.completed.clone().expect("completed stats");
    eprintln!(
        "copy: {:?} total, downtime {:?} ms, disk {:?} bytes",
        report.duration, completed.downtime_ms, completed.disk_processed
    );
    let t = log.last_tick().unwrap();
    log.wait_tick_after(Some(t), Duration::from_secs(30));
    assert_eq!(hosts.b.domstate("m-copy").as_deref(), Some("running"));
    hosts.b.virsh(&["destroy", "m-copy"]);
    let copied = hosts.b.local_images().join("copy-1.qcow2");
    assert_eq!(read_image(&copied, 0, 13), b"marker-copy-1");
    assert!(local.exists(), "the source's image is kept");

    // --- 3. Offline: definition, disk and snapshot metadata move; the source keeps its image.
    let off = hosts.a.local_images().join("off-1.qcow2");
    make_qcow2(&off, "64M", "marker-off-1");
    hosts.a.virsh(&["pool-refresh", "local"]);
    let spec = GuestSpec::new("m-off", hosts.serial_path("m-off"))
        .disk("/var/lib/libvirt/images/off-1.qcow2", "qcow2");
    let f = hosts.root.join("m-off.xml");
    std::fs::write(&f, spec.xml(&hosts.image)).unwrap();
    hosts.a.virsh(&["define", f.to_str().unwrap()]);
    hosts
        .a
        .virsh(&["snapshot-create-as", "m-off", "before-move"]);
    write_marker(&off, "qcow2", 4096, "after-snapshot");
    let uuid = uuid_of(&hosts.a, "m-off");
    let mut copied_bytes = 0;
    let r = migrate_offline(
        &*a,
        &*b,
        &uuid,
        CopyStorage::Auto,
        &mut |e| {
            if let MigrationEvent::CopyProgress(_, done, _) = e {
                copied_bytes = done;
            }
        },
        &no_cancel,
    )
    .unwrap_or_else(|e| panic!("offline migration: {e}"));
    assert_eq!(r.snapshots, 1);
    assert_eq!(r.placement.source, Side::Absent);
    assert!(matches!(r.placement.target, Side::Inactive { .. }), "{r:?}");
    assert!(copied_bytes > 0);
    assert!(off.exists(), "the source's image is kept");
    let moved = hosts.b.local_images().join("off-1.qcow2");
    assert_eq!(read_image(&moved, 0, 12), b"marker-off-1");
    assert_eq!(read_image(&moved, 4096, 14), b"after-snapshot");
    assert!(hosts
        .b
        .virsh(&["snapshot-list", "m-off", "--name"])
        .contains("before-move"));
    // The internal snapshot's data came along inside the image: revert works on B.
    hosts.b.virsh(&["snapshot-revert", "m-off", "before-move"]);
    assert_eq!(read_image(&moved, 4096, 14), vec![0u8; 14]);
    hosts.b.virsh(&["start", "m-off"]);
    let log = SerialLog(spec.serial.clone());
    log.wait_booted();
    assert!(
        log.disk_lines().iter().any(|l| l.contains("marker-off-1")),
        "{}",
        log.text()
    );
    hosts.b.virsh(&["destroy", "m-off"]);

    // --- 4. Refusals: every reason at once, nothing changed.
    let mut bad = GuestSpec::new("m-bad", hosts.serial_path("m-bad"));
    bad.extra_devices =
        "<interface type='network'><source network='no-such-net'/><model type='virtio'/></interface>"
            .into();
    let xml = bad.xml(&hosts.image).replace(
        "<model fallback='forbid'>qemu64</model>",
        "<model fallback='forbid'>Icelake-Server</model><feature policy='require' name='avx512f'/>",
    );
    let f = hosts.root.join("m-bad.xml");
    std::fs::write(&f, xml).unwrap();
    hosts.a.virsh(&["define", f.to_str().unwrap()]);
    let uuid = uuid_of(&hosts.a, "m-bad");
    match check_migration(&*a, &*b, &uuid, true, CopyStorage::Auto) {
        Err(MigrationError::Refused(r)) => {
            let text = format!("{r:?}");
            assert!(
                r.iter().any(|x| matches!(x, Incompatibility::State(_))),
                "{text}"
            );
            assert!(
                r.iter()
                    .any(|x| matches!(x, Incompatibility::Network(m) if m.contains("no-such-net"))),
                "{text}"
            );
            assert!(
                r.iter().any(|x| matches!(x, Incompatibility::Cpu(_))),
                "{text}"
            );
        }
        other => panic!("expected a refusal: {other:?}"),
    }
    assert!(hosts.b.domstate("m-bad").is_none());

    // --- 5. Failover: A dies; its guest on shared storage is defined on B and boots.
    let disk = hosts.shared.join("fail-1.qcow2");
    make_qcow2(&disk, "64M", "marker-fail-1");
    for h in [&hosts.a, &hosts.b] {
        h.virsh(&["pool-refresh", "shared"]);
    }
    let spec =
        GuestSpec::new("m-fail", hosts.serial_path("m-fail")).disk(disk.to_str().unwrap(), "qcow2");
    boot(&hosts, &hosts.a, &spec);
    let saved = hosts
        .a
        .virsh(&["dumpxml", "--inactive", "--security-info", "m-fail"]);
    // A guest whose disk only A has cannot fail over.
    make_qcow2(&hosts.a.local_images().join("only-a.qcow2"), "16M", "");
    hosts.a.virsh(&["pool-refresh", "local"]);
    let only_a = GuestSpec::new("m-only-a", hosts.serial_path("m-only-a"))
        .disk("/var/lib/libvirt/images/only-a.qcow2", "qcow2");
    let f = hosts.root.join("m-only-a.xml");
    std::fs::write(&f, only_a.xml(&hosts.image)).unwrap();
    hosts.a.virsh(&["define", f.to_str().unwrap()]);
    let local_xml = hosts.a.virsh(&["dumpxml", "--inactive", "m-only-a"]);
    drop(a);
    drop(a_mon);
    hosts.a.crash();
    assert!(!hosts.a.qemu_running("m-fail"));
    match failover_define(&*b, &local_xml) {
        Err(MigrationError::Refused(r)) => assert!(
            r.iter()
                .any(|x| matches!(x, Incompatibility::Storage(m) if m.contains("only-a.qcow2"))),
            "{r:?}"
        ),
        other => panic!("{other:?}"),
    }
    let r = failover_define(&*b, &saved).unwrap_or_else(|e| panic!("failover: {e}"));
    assert_eq!(r.disks, vec![disk.to_str().unwrap().to_string()]);
    hosts.b.virsh(&["start", "m-fail"]);
    let log = SerialLog(spec.serial.clone());
    let before = log.text().matches("booted").count();
    wait_for(
        Duration::from_secs(180),
        "the failed-over guest to boot",
        || (log.text().matches("booted").count() > before).then_some(()),
    );
    hosts.b.virsh(&["destroy", "m-fail"]);
}

/// A guest that dirties memory, migrated at 1 MiB/s: slow enough to abort, and to kill the
/// target's libvirtd in the middle. Both times the guest must go on running on the source.
#[test]
fn abort_and_target_death_leave_the_guest_running_on_the_source() {
    let mut hosts = TwoHosts::start("abort");
    let (a, b) = (connect(&hosts.a.uri()), connect(&hosts.b.uri()));
    let a_mon = connect(&hosts.a.uri());
    let disk = hosts.shared.join("slow-1.qcow2");
    make_qcow2(&disk, "64M", "marker-slow-1");
    for h in [&hosts.a, &hosts.b] {
        h.virsh(&["pool-refresh", "shared"]);
    }
    let mut spec =
        GuestSpec::new("m-slow", hosts.serial_path("m-slow")).disk(disk.to_str().unwrap(), "qcow2");
    spec.dirty_mib = Some(24);
    let uuid = boot(&hosts, &hosts.a, &spec);
    let log = SerialLog(spec.serial.clone());
    let mut opts = MigrateOptions::new(hosts.b.tcp_uri());
    opts.trust_proven_shared_storage = true;
    opts.bandwidth_mib_s = Some(1);

    // --- Abort once data flows.
    let cancel = AtomicBool::new(false);
    let mut progressed = None;
    let r = migrate_live(
        &*a,
        &*a_mon,
        &*b,
        &uuid,
        &opts,
        &mut |e| {
            if let MigrationEvent::Progress(p) = e {
                if p.data_processed.unwrap_or(0) > 1 << 20 {
                    progressed = Some(p.clone());
                    cancel.store(true, Ordering::SeqCst);
                }
            }
        },
        &cancel,
    );
    let p = progressed.expect("progress with data before the abort");
    eprintln!("progress before abort: {p:?}");
    assert!(p.data_total.is_some() && p.data_remaining.is_some() && p.mem_bps.is_some());
    match r {
        Err(MigrationError::Aborted { placement }) => {
            assert_eq!(placement.source, Side::Running { persistent: true });
            assert_eq!(placement.target, Side::Absent);
        }
        other => panic!("expected Aborted: {other:?}"),
    }
    let t = log.last_tick().unwrap();
    log.wait_tick_after(Some(t), Duration::from_secs(30));
    assert_eq!(hosts.a.domstate("m-slow").as_deref(), Some("running"));
    assert!(!hosts.b.qemu_running("m-slow"));

    // --- The target's libvirtd is killed while data flows.
    let never = AtomicBool::new(false);
    let mut killed = false;
    let b_host = &mut hosts.b;
    let r = migrate_live(
        &*a,
        &*a_mon,
        &*b,
        &uuid,
        &opts,
        &mut |e| {
            if let MigrationEvent::Progress(p) = e {
                if !killed && p.data_processed.unwrap_or(0) > 1 << 20 {
                    killed = true;
                    b_host.kill_libvirtd();
                }
            }
        },
        &never,
    );
    assert!(
        killed,
        "the migration was slow enough to kill the target midway"
    );
    match &r {
        Err(MigrationError::Failed { placement, cause }) => {
            eprintln!("target death: {cause}; {}", placement.describe());
            assert_eq!(
                placement.source,
                Side::Running { persistent: true },
                "{}",
                r.as_ref().unwrap_err()
            );
            assert!(
                matches!(placement.target, Side::Unreachable(_)),
                "{placement:?}"
            );
            assert!(!placement.running_on_both());
        }
        other => panic!("expected Failed: {other:?}"),
    }
    let t = log.last_tick().unwrap();
    log.wait_tick_after(Some(t), Duration::from_secs(30));
    // The target's libvirtd comes back, finds the unfinished incoming migration and kills
    // its paused QEMU: the guest never ran there.
    hosts.b.restart_libvirtd();
    wait_for(
        Duration::from_secs(60),
        "B to drop the half-migrated guest",
        || {
            (!hosts.b.qemu_running("m-slow")
                && !hosts.b.domains(false).contains(&"m-slow".to_string()))
            .then_some(())
        },
    );
    assert!(
        hosts.b.domstate("m-slow").is_none(),
        "not even defined on B"
    );
    assert_eq!(hosts.a.domstate("m-slow").as_deref(), Some("running"));
    hosts.a.virsh(&["destroy", "m-slow"]);
}

/// What libvirt 9.0 + QEMU 7.2 (TCG) do with auto-converge and post-copy, on a guest that
/// dirties memory (~8 MiB/s under TCG) about as fast as it may be sent (8 MiB/s): from the
/// third pass auto-converge throttles the vCPU (the job statistics say by how much, ~25 s
/// in); post-copy (limited to 2 MiB/s) switches over after 2 s and completes.
#[test]
fn auto_converge_throttles_and_post_copy_completes() {
    let hosts = TwoHosts::start("conv");
    let (a, b) = (connect(&hosts.a.uri()), connect(&hosts.b.uri()));
    let a_mon = connect(&hosts.a.uri());
    let disk = hosts.shared.join("conv-1.qcow2");
    make_qcow2(&disk, "64M", "marker-conv-1");
    for h in [&hosts.a, &hosts.b] {
        h.virsh(&["pool-refresh", "shared"]);
    }
    let mut spec =
        GuestSpec::new("m-conv", hosts.serial_path("m-conv")).disk(disk.to_str().unwrap(), "qcow2");
    spec.dirty_mib = Some(24);
    let uuid = boot(&hosts, &hosts.a, &spec);
    let log = SerialLog(spec.serial.clone());

    // Auto-converge: wait for the throttle to show in the statistics, then abort.
    let mut opts = MigrateOptions::new(hosts.b.tcp_uri());
    opts.trust_proven_shared_storage = true;
    opts.bandwidth_mib_s = Some(8);
    opts.auto_converge = true;
    let cancel = AtomicBool::new(false);
    let started = std::time::Instant::now();
    let mut throttle = None;
    let r = migrate_live(
        &*a,
        &*a_mon,
        &*b,
        &uuid,
        &opts,
        &mut |e| {
            if let MigrationEvent::Progress(p) = e {
                if p.auto_converge_throttle.unwrap_or(0) > 0 {
                    throttle = p.auto_converge_throttle;
                    cancel.store(true, Ordering::SeqCst);
                }
                if started.elapsed() > Duration::from_secs(60) {
                    cancel.store(true, Ordering::SeqCst);
                }
            }
        },
        &cancel,
    );
    eprintln!(
        "auto-converge: throttle {throttle:?} after {:?}",
        started.elapsed()
    );
    assert!(
        throttle.is_some_and(|t| t > 0),
        "auto-converge throttled the guest"
    );
    assert!(matches!(r, Err(MigrationError::Aborted { .. })), "{r:?}");
    let t = log.last_tick().unwrap();
    log.wait_tick_after(Some(t), Duration::from_secs(30));

    // Post-copy: switched to after 2 s; the migration then completes whatever the guest
    // dirties.
    let mut opts = MigrateOptions::new(hosts.b.tcp_uri());
    opts.trust_proven_shared_storage = true;
    opts.bandwidth_mib_s = Some(2);
    opts.post_copy = uvmm_libvirt::migrate::PostCopy::After(Duration::from_secs(2));
    let mut switched = false;
    let report = migrate_live(
        &*a,
        &*a_mon,
        &*b,
        &uuid,
        &opts,
        &mut |e| {
            if matches!(e, MigrationEvent::PostCopyStarted) {
                switched = true;
            }
        },
        &AtomicBool::new(false),
    )
    .unwrap_or_else(|e| panic!("post-copy migration: {e}"));
    assert!(switched);
    let c = report.completed.clone().unwrap_or_default();
    eprintln!(
        "post-copy: {:?}, downtime {:?} ms, post-copy requests {:?}",
        report.duration, c.downtime_ms, c.postcopy_requests
    );
    assert_eq!(report.placement.target, Side::Running { persistent: true });
    let t = log.last_tick().unwrap();
    log.wait_tick_after(Some(t), Duration::from_secs(30));
    hosts.b.virsh(&["destroy", "m-conv"]);
}
