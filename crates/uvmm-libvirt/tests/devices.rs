//! Clones (full copy with progress, linked on a qcow2 backing file), live hot-plug of a
//! disk and a NIC, a detach the guest does not answer, and rename — on a real libvirtd
//! with real QEMU (TCG) guests.

#[path = "support/hosts.rs"]
mod hosts;

use hosts::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uvmm_libvirt::devices::{clone_volume_with_progress, linked_clone_volume};
use uvmm_libvirt::{Connector, DetachOutcome, ErrorKind, Hypervisor, LibvirtConnector};
use uvmm_model::clone::{qemu_mac, rewrite_for_clone, CloneSpec};

/// What the source disk starts with; every clone must print it at boot.
const MARKER: &str = "marker-clone-src";

fn connect(uri: &str) -> Arc<dyn Hypervisor> {
    LibvirtConnector::default()
        .connect(uri, Arc::new(|_| {}))
        .unwrap_or_else(|e| panic!("connect {uri}: {e}"))
}

/// Define the clone `name` of `src_xml` with its disk at `new_path`, start it and wait for
/// it to print the source disk's marker ([`MARKER`]).
fn boot_clone(
    hosts: &TwoHosts,
    h: &dyn Hypervisor,
    src_xml: &str,
    name: &str,
    uuid: &str,
    old_path: &str,
    new_path: &str,
) -> String {
    let marker = MARKER;
    let serial = hosts.serial_path(name);
    let rw = rewrite_for_clone(
        src_xml,
        &CloneSpec {
            name: name.into(),
            uuid: uuid.into(),
            new_macs: Some(vec![qemu_mac([
                0x10,
                0x20,
                u8::try_from(uuid.len()).unwrap(),
            ])]),
            disks: [(old_path.to_string(), new_path.to_string())]
                .into_iter()
                .collect::<HashMap<_, _>>(),
        },
    )
    .unwrap();
    assert_eq!(rw.macs.len(), 1);
    // Each guest logs to its own serial file.
    let xml = rw.xml.replace(
        hosts.serial_path("c-src").to_str().unwrap(),
        serial.to_str().unwrap(),
    );
    let got = h.define(&xml).unwrap();
    assert_eq!(got, uuid);
    h.action(uuid, uvmm_model::Action::Start).unwrap();
    let log = SerialLog(serial);
    log.wait_booted();
    assert!(
        log.disk_lines().iter().any(|l| l.contains(marker)),
        "{name} boots from its own disk with the source's content: {}",
        log.text()
    );
    uuid.to_string()
}

#[test]
fn clones_hot_plug_and_rename() {
    let hosts = TwoHosts::start("dev");
    let h = connect(&hosts.a.uri());
    let mon = connect(&hosts.a.uri());
    let src = hosts.shared.join("c-src.qcow2");
    make_qcow2(&src, "64M", "marker-clone-src");
    // Some data, so the copy takes a moment and its progress can be seen.
    run(&[
        "qemu-io",
        "-f",
        "qcow2",
        "-c",
        "write -P 0x5a 1M 24M",
        src.to_str().unwrap(),
    ]);
    hosts.a.virsh(&["pool-refresh", "shared"]);
    let mut g =
        GuestSpec::new("c-src", hosts.serial_path("c-src")).disk(src.to_str().unwrap(), "qcow2");
    g.extra_devices =
        "<interface type='user'><mac address='52:54:00:aa:00:01'/><model type='virtio'/></interface>"
            .into();
    let src_uuid = hosts.define(&hosts.a, &g);
    let src_xml = h.domain_xml(&src_uuid, true, true).unwrap();

    // --- Full copy, with progress from a second connection.
    let mut calls = Vec::new();
    let vol = clone_volume_with_progress(
        &*h,
        &*mon,
        "shared",
        "c-src.qcow2",
        "c-copy.qcow2",
        Duration::from_millis(10),
        &mut |done, total| calls.push((done, total)),
    )
    .unwrap();
    eprintln!("copy progress calls: {calls:?}");
    let (done, total) = *calls.last().unwrap();
    assert_eq!(done, total, "the last progress is complete");
    assert!(total >= 24 << 20, "{calls:?}");
    assert_eq!(vol.def.format.as_deref(), Some("qcow2"));
    let copy_path = vol.def.path.clone().unwrap();
    let copy_uuid = boot_clone(
        &hosts,
        &*h,
        &src_xml,
        "c-copy",
        "c0c0c0c0-0000-4000-8000-000000000001",
        src.to_str().unwrap(),
        &copy_path,
    );

    // --- Live hot-plug on the running clone: a new disk and a NIC, live and persistent.
    let hot = hosts.shared.join("hot.qcow2");
    make_qcow2(&hot, "16M", "marker-hot");
    let disk_xml = format!(
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
         <source file='{}'/><target dev='vdb' bus='virtio'/></disk>",
        hot.display()
    );
    h.attach_device(&copy_uuid, &disk_xml, true, true).unwrap();
    let blk = hosts.a.virsh(&["domblklist", "c-copy"]);
    assert!(blk.contains("vdb") && blk.contains("hot.qcow2"), "{blk}");
    assert!(hosts
        .a
        .virsh(&["domblklist", "c-copy", "--inactive"])
        .contains("hot.qcow2"));
    let nic_xml = "<interface type='user'><mac address='52:54:00:bb:00:02'/><model type='virtio'/></interface>";
    h.attach_device(&copy_uuid, nic_xml, true, true).unwrap();
    assert!(hosts
        .a
        .virsh(&["domiflist", "c-copy"])
        .contains("52:54:00:bb:00:02"));
    // The guest's kernel answers ACPI hot-unplug (busybox need not): both go.
    let t = std::time::Instant::now();
    assert_eq!(
        h.detach_device(&copy_uuid, nic_xml, true, true, Duration::from_secs(30))
            .unwrap(),
        DetachOutcome::Removed
    );
    assert_eq!(
        h.detach_device(&copy_uuid, &disk_xml, true, true, Duration::from_secs(30))
            .unwrap(),
        DetachOutcome::Removed
    );
    eprintln!("two cooperative detaches took {:?}", t.elapsed());
    assert!(!hosts.a.virsh(&["domblklist", "c-copy"]).contains("vdb"));
    assert!(!hosts
        .a
        .virsh(&["domblklist", "c-copy", "--inactive"])
        .contains("hot.qcow2"));
    assert!(!hosts
        .a
        .virsh(&["domiflist", "c-copy"])
        .contains("52:54:00:bb:00:02"));
    hosts.a.virsh(&["destroy", "c-copy"]);

    // --- Linked clone: a qcow2 overlay on the source image. This guest ignores ACPI
    // (acpi=off), so it never answers a hot-unplug: the detach reports the timeout.
    let link = linked_clone_volume(&*h, "shared", "c-src.qcow2", "c-link.qcow2").unwrap();
    let link_path = link.def.path.clone().unwrap();
    let info = run(&["qemu-img", "info", &link_path]);
    assert!(
        info.contains("backing file: ") && info.contains("c-src.qcow2"),
        "{info}"
    );
    let src_xml_noacpi = src_xml.replace("quiet panic=-1", "quiet panic=-1 acpi=off");
    let link_uuid = boot_clone(
        &hosts,
        &*h,
        &src_xml_noacpi,
        "c-link",
        "c0c0c0c0-0000-4000-8000-000000000002",
        src.to_str().unwrap(),
        &link_path,
    );
    let disk2 = disk_xml.replace("vdb", "vdc");
    h.attach_device(&link_uuid, &disk2, true, false).unwrap();
    assert!(hosts.a.virsh(&["domblklist", "c-link"]).contains("vdc"));
    let out = h
        .detach_device(&link_uuid, &disk2, true, false, Duration::from_secs(3))
        .unwrap();
    assert_eq!(out, DetachOutcome::TimedOut { persisted: false });
    assert!(
        hosts.a.virsh(&["domblklist", "c-link"]).contains("vdc"),
        "the guest did not release it"
    );
    hosts.a.virsh(&["destroy", "c-link"]);
    // Writes to the clone stay in the clone.
    write_marker(
        std::path::Path::new(&link_path),
        "qcow2",
        0,
        "CHANGED-IN-LINKED",
    );
    assert_eq!(read_image(&src, 0, 16), b"marker-clone-src");

    // --- Rename (shut off only): same UUID, new name.
    let e = {
        hosts.a.virsh(&["start", "c-link"]);
        let e = h.rename(&link_uuid, "c-link-running").unwrap_err();
        hosts.a.virsh(&["destroy", "c-link"]);
        e
    };
    assert_eq!(e.kind, ErrorKind::InvalidOperation, "{e}");
    h.rename(&link_uuid, "c-renamed").unwrap();
    assert_eq!(
        hosts.a.virsh(&["domuuid", "c-renamed"]).trim(),
        link_uuid.as_str()
    );
    assert!(hosts.a.domstate("c-link").is_none());
    // A taken name is refused.
    assert!(h.rename(&link_uuid, "c-copy").is_err());
}
