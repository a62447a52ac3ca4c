//! Snapshots on a real libvirtd with QEMU (TCG): internal ones revert disk content and
//! memory; external ones are created (disk-only and with memory, on raw and qcow2 images)
//! and deleted by merging without losing a byte of the current state, where libvirt 9.0
//! itself refuses to delete them.

#[path = "support/hosts.rs"]
mod hosts;

use hosts::*;
use std::sync::Arc;
use std::time::Duration;
use uvmm_libvirt::snapshot::{snapshot_tree, SnapshotKind};
use uvmm_libvirt::{
    Connector, ErrorKind, Hypervisor, LibvirtConnector, SnapshotDeleteOutcome, SnapshotSpec,
};

fn connect(uri: &str) -> Arc<dyn Hypervisor> {
    LibvirtConnector::default()
        .connect(uri, Arc::new(|_| {}))
        .unwrap_or_else(|e| panic!("connect {uri}: {e}"))
}

fn spec(name: &str, kind: SnapshotKind, memory: bool) -> SnapshotSpec {
    SnapshotSpec {
        name: name.into(),
        description: Some(format!("test {name}")),
        kind,
        memory,
        memory_file: None,
    }
}

const MIN: Duration = Duration::from_secs(60);

#[test]
fn internal_snapshots_revert_disk_and_memory() {
    let hosts = TwoHosts::start("snapi");
    let h = connect(&hosts.a.uri());
    let disk = hosts.shared.join("int.qcow2");
    make_qcow2(&disk, "64M", "marker-int");
    let g =
        GuestSpec::new("s-int", hosts.serial_path("s-int")).disk(disk.to_str().unwrap(), "qcow2");
    let uuid = hosts.define(&hosts.a, &g);

    // Offline: s1, a write, s2, another write.
    assert_eq!(
        h.snapshot_create(&uuid, &spec("s1", SnapshotKind::Internal, false))
            .unwrap(),
        "s1"
    );
    write_marker(&disk, "qcow2", 8192, "after-s1");
    h.snapshot_create(&uuid, &spec("s2", SnapshotKind::Internal, false))
        .unwrap();
    write_marker(&disk, "qcow2", 16384, "after-s2");

    let list = h.snapshots(&uuid).unwrap();
    let tree = snapshot_tree(&list);
    assert_eq!(tree.len(), 1);
    assert_eq!(tree[0].info.name, "s1");
    assert_eq!(tree[0].children[0].info.name, "s2");
    assert!(tree[0].children[0].info.current);
    assert!(list
        .iter()
        .all(|s| s.kind == SnapshotKind::Internal && !s.memory));

    // Revert to s1: both later writes are gone, the first marker stays.
    h.snapshot_revert(&uuid, "s1", false).unwrap();
    assert_eq!(read_image(&disk, 0, 10), b"marker-int");
    assert_eq!(read_image(&disk, 8192, 8), vec![0u8; 8]);
    assert_eq!(read_image(&disk, 16384, 8), vec![0u8; 8]);
    assert!(h
        .snapshots(&uuid)
        .unwrap()
        .iter()
        .any(|s| s.name == "s1" && s.current));
    // Revert to s2 (any snapshot, not only the latest): the write before it is back.
    h.snapshot_revert(&uuid, "s2", false).unwrap();
    assert_eq!(read_image(&disk, 8192, 8), b"after-s1");
    assert_eq!(read_image(&disk, 16384, 8), vec![0u8; 8]);
    // Deleting s1 (which has a child) keeps s2's data and the current state.
    write_marker(&disk, "qcow2", 16384, "current!");
    assert_eq!(
        h.snapshot_delete(&uuid, "s1", MIN).unwrap(),
        SnapshotDeleteOutcome::Deleted
    );
    assert_eq!(read_image(&disk, 16384, 8), b"current!");
    let left = h.snapshots(&uuid).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].parent, None, "s2 became a root");
    h.snapshot_revert(&uuid, "s2", false).unwrap();
    assert_eq!(read_image(&disk, 8192, 8), b"after-s1");
    h.snapshot_delete(&uuid, "s2", MIN).unwrap();

    // Running: an internal snapshot includes the memory; reverting brings the counter back.
    hosts.a.virsh(&["start", "s-int"]);
    let log = SerialLog(g.serial.clone());
    let t1 = log.wait_booted();
    let e = h
        .snapshot_create(&uuid, &spec("bad", SnapshotKind::Internal, false))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput, "{e}");
    h.snapshot_create(&uuid, &spec("run1", SnapshotKind::Internal, true))
        .unwrap();
    let at_snapshot = log.last_tick().unwrap();
    assert!(at_snapshot >= t1);
    log.wait_tick_after(Some(at_snapshot + 20), Duration::from_secs(60));
    let len_before = log.text().len();
    h.snapshot_revert(&uuid, "run1", false).unwrap();
    assert_eq!(hosts.a.domstate("s-int").as_deref(), Some("running"));
    // The guest goes on from its memory at the snapshot: small tick numbers again, and no
    // reboot.
    wait_for(
        Duration::from_secs(60),
        "ticks from the reverted memory",
        || {
            let text = log.text();
            let after = &text[len_before.min(text.len())..];
            after
                .lines()
                .filter_map(|l| l.trim().strip_prefix("uvmm-guest: tick "))
                .filter_map(|n| n.parse::<u64>().ok())
                .any(|n| n <= at_snapshot + 10)
                .then_some(())
        },
    );
    let info = h.snapshots(&uuid).unwrap();
    assert!(info[0].memory && info[0].state == "running", "{info:?}");
    h.snapshot_delete(&uuid, "run1", MIN).unwrap();
    hosts.a.virsh(&["destroy", "s-int"]);
}

/// The overlay an external snapshot put under `vda` of a shut-off domain.
fn inactive_vda(host: &TestHost, name: &str) -> std::path::PathBuf {
    let blk = host.virsh(&["domblklist", name, "--inactive"]);
    blk.split_whitespace()
        .find(|w| w.starts_with('/'))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("no disk in {blk}"))
}

#[test]
fn external_snapshots_merge_away_without_losing_a_byte() {
    let hosts = TwoHosts::start("snape");
    let h = connect(&hosts.a.uri());
    // A raw image: the case external snapshots exist for.
    let base = hosts.shared.join("ext.raw");
    run(&[
        "qemu-img",
        "create",
        "-q",
        "-f",
        "raw",
        base.to_str().unwrap(),
        "32M",
    ]);
    write_marker(&base, "raw", 0, "marker-ext");
    let g = GuestSpec::new("s-ext", hosts.serial_path("s-ext")).disk(base.to_str().unwrap(), "raw");
    let uuid = hosts.define(&hosts.a, &g);

    // Offline, disk-only, merged by uvmm's own path (what older libvirt gets): the VM is
    // started paused for the commit and stopped again.
    h.snapshot_create(&uuid, &spec("e1", SnapshotKind::External, false))
        .unwrap();
    assert_eq!(h.snapshots(&uuid).unwrap()[0].kind, SnapshotKind::External);
    let overlay = inactive_vda(&hosts.a, "s-ext");
    assert_ne!(overlay, base, "the VM runs on an overlay now");
    write_marker(&overlay, "qcow2", 8192, "written-into-overlay-1");
    let current = image_content(&overlay);
    // Reverting to an external snapshot is refused by libvirt 9.0.
    let e = h.snapshot_revert(&uuid, "e1", false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotSupported, "{e}");
    match h.snapshot_merge_external(&uuid, "e1", MIN).unwrap() {
        SnapshotDeleteOutcome::Merged {
            disks,
            unused_overlays,
        } => {
            assert_eq!(disks, vec!["vda".to_string()]);
            assert_eq!(unused_overlays, vec![overlay.display().to_string()]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(hosts.a.domstate("s-ext").as_deref(), Some("shut off"));
    assert!(h.snapshots(&uuid).unwrap().is_empty());
    let inactive = hosts.a.virsh(&["dumpxml", "--inactive", "s-ext"]);
    assert!(
        inactive.contains(base.to_str().unwrap()) && inactive.contains("type='raw'"),
        "{inactive}"
    );
    assert_eq!(
        image_content(&base),
        current,
        "every byte of the current state is in the base"
    );

    // Offline again, deleted through libvirt 9.0, which merges external snapshots itself.
    h.snapshot_create(&uuid, &spec("e1b", SnapshotKind::External, false))
        .unwrap();
    let overlay = inactive_vda(&hosts.a, "s-ext");
    write_marker(&overlay, "qcow2", 65536, "written-into-overlay-2");
    let current = image_content(&overlay);
    match h.snapshot_delete(&uuid, "e1b", MIN).unwrap() {
        SnapshotDeleteOutcome::MergedByLibvirt {
            removed_overlays,
            memory_file,
        } => {
            assert_eq!(removed_overlays, vec![overlay.display().to_string()]);
            assert_eq!(memory_file, None);
        }
        other => panic!("libvirt 9.0 deletes external snapshots itself: {other:?}"),
    }
    assert!(!overlay.exists(), "libvirt removes the merged overlay");
    assert_eq!(inactive_vda(&hosts.a, "s-ext"), base);
    assert_eq!(
        image_content(&base),
        current,
        "every byte of the current state is in the base"
    );

    // Running: disk-only e2 and, on top, e3 with memory. uvmm's merge refuses e2 (not the
    // newest); libvirt merges it (a commit below the active image); uvmm merges e3 (active
    // commit and pivot) while the guest keeps counting.
    hosts.a.virsh(&["start", "s-ext"]);
    let log = SerialLog(g.serial.clone());
    log.wait_booted();
    assert!(
        log.disk_lines().iter().any(|l| l.contains("marker-ext")),
        "{}",
        log.text()
    );
    h.snapshot_create(&uuid, &spec("e2", SnapshotKind::External, false))
        .unwrap();
    let mem = hosts.shared.join("e3.mem");
    let mut e3 = spec("e3", SnapshotKind::External, true);
    e3.memory_file = Some(mem.display().to_string());
    h.snapshot_create(&uuid, &e3).unwrap();
    assert!(mem.exists());
    let list = h.snapshots(&uuid).unwrap();
    assert_eq!(list.len(), 2);
    assert!(
        list.iter()
            .any(|s| s.name == "e3" && s.memory && s.current && s.parent.as_deref() == Some("e2")),
        "{list:?}"
    );
    let e = h.snapshot_merge_external(&uuid, "e2", MIN).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotSupported);
    assert!(e.message.contains("newer snapshots"), "{e}");
    assert_eq!(
        h.snapshots(&uuid).unwrap().len(),
        2,
        "a refusal changes nothing"
    );
    assert!(matches!(
        h.snapshot_delete(&uuid, "e2", MIN).unwrap(),
        SnapshotDeleteOutcome::MergedByLibvirt { .. }
    ));
    match h.snapshot_merge_external(&uuid, "e3", MIN).unwrap() {
        SnapshotDeleteOutcome::Merged {
            unused_overlays, ..
        } => {
            assert!(
                unused_overlays.contains(&mem.display().to_string()),
                "{unused_overlays:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    let t = log.last_tick().unwrap();
    log.wait_tick_after(Some(t), Duration::from_secs(30));
    let blk = hosts.a.virsh(&["domblklist", "s-ext"]);
    assert!(
        blk.contains(base.to_str().unwrap()),
        "runs on the base again: {blk}"
    );
    assert!(h.snapshots(&uuid).unwrap().is_empty());
    hosts.a.virsh(&["destroy", "s-ext"]);
    assert_eq!(inactive_vda(&hosts.a, "s-ext"), base);
    assert_eq!(read_image(&base, 8192, 22), b"written-into-overlay-1");
    assert_eq!(read_image(&base, 65536, 22), b"written-into-overlay-2");
}
