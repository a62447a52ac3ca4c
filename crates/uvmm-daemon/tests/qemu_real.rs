//! VMs on a real libvirtd with QEMU (qemu:///system in a private mount namespace). Guests
//! run under TCG: KVM is present on these machines but does not boot guests, so every VM
//! that is started is created with `--type qemu`; what the profile resolves to without that
//! is checked too (kvm when the host offers it, otherwise qemu with a note).

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn profiles_create_start_and_delete_real_qemu_guests() {
    let dir = tempfile::tempdir().unwrap();
    let lv = SystemLibvirtd::start(&dir.path().join("libvirt"));
    lv.virsh(&[
        "pool-define-as",
        "default",
        "dir",
        "--target",
        lv.images().to_str().unwrap(),
    ]);
    lv.virsh(&["pool-start", "default"]);
    let uri = lv.uri();
    let d = Daemon::start(std::slice::from_ref(&uri));
    let host = d.get("/api/v1/hosts")[0].clone();
    assert_eq!(host["status"], "connected", "{host}\n{}", d.log());
    assert_eq!(host["driver"], "QEMU");
    let caps = d.get("/api/v1/hosts/localhost")["capabilities"].clone();
    let has_kvm = caps.as_array().unwrap().iter().any(|g| {
        g["domain_types"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "kvm")
    });
    eprintln!("host offers KVM: {has_kvm}; started guests use TCG (type qemu) either way");

    // Without --type: what the profile resolves to on this host.
    let r = ok(
        d.cli(&[
            "vm",
            "create",
            "--host",
            "localhost",
            "--profile",
            "Linux",
            "--name",
            "resolve-only",
            "--no-network",
            "--no-disk",
            "--memory",
            "128MiB",
            "--json",
        ]),
        "resolve",
    );
    if has_kvm {
        assert_eq!(r["vm"]["domain_type"], "kvm");
    } else {
        assert_eq!(r["vm"]["domain_type"], "qemu");
        assert!(r["notes"].to_string().contains("TCG"), "{r}");
    }
    ok(
        d.cli(&["vm", "delete", "resolve-only", "--json"]),
        "delete resolve-only",
    );

    // Every HVM profile: created, valid for libvirt's schema, started under TCG.
    for (profile, name) in [("Windows", "q-win"), ("Linux", "q-lin"), ("Other", "q-oth")] {
        let r = ok(
            d.cli(&[
                "vm",
                "create",
                "--host",
                "localhost",
                "--profile",
                profile,
                "--name",
                name,
                "--type",
                "qemu",
                "--memory",
                "128MiB",
                "--no-network",
                "--disk",
                "pool=default,size=64MiB",
                "--start",
                "--json",
            ]),
            profile,
        );
        assert!(
            r["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .all(|w| !w.as_str().unwrap().contains("could not be started")),
            "{profile}: {r}"
        );
        assert_eq!(r["vm"]["state"], "running", "{profile}: {r}");
        assert_eq!(r["vm"]["domain_type"], "qemu");
        let xml = d.cli_json(&["vm", "xml", name, "--inactive"])["xml"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(xml.contains("<acpi/>") && xml.contains("<apic/>"), "{xml}");
        let f = dir.path().join(format!("{name}.xml"));
        std::fs::write(&f, &xml).unwrap();
        let v = Command::new("virt-xml-validate")
            .arg(&f)
            .arg("domain")
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "{profile}: {}",
            String::from_utf8_lossy(&v.stderr)
        );
        if profile == "Windows" {
            assert!(
                xml.contains("<hyperv"),
                "Windows gets Hyper-V enlightenments on QEMU: {xml}"
            );
            assert!(xml.contains("offset='localtime'"));
        }
        // libvirt's own view agrees.
        assert!(lv.virsh(&["domstate", name]).contains("running"));
    }
    // Xen PV cannot run on a QEMU host.
    let out = d.cli(&[
        "vm",
        "create",
        "--host",
        "localhost",
        "--profile",
        "Linux Xen PV",
        "--name",
        "q-pv",
        "--no-network",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot run Xen paravirtualised"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A Xen PV backup is not restored on a QEMU host (through uvmmd, and directly).
    let old = tempfile::tempdir().unwrap();
    let pv_uuid = "0e0e0e0e-1111-4222-8333-444444444444";
    std::fs::write(
        old.path().join(format!("{pv_uuid}.xml")),
        format!("<domain type='xen'><name>pv-guest</name><uuid>{pv_uuid}</uuid><memory>524288</memory><bootloader>/usr/bin/pygrub</bootloader><os><type arch='x86_64' machine='xenpv'>linux</type></os></domain>"),
    )
    .unwrap();
    for extra in [
        vec!["--host", "localhost"],
        vec!["--host", uri.as_str(), "--direct"],
    ] {
        let out = Command::new(uvmm_restore_bin())
            .args(["-r", "pv-guest", "--dir", old.path().to_str().unwrap()])
            .args(&extra)
            .env("UVMM_SOCKET", &d.socket)
            .output()
            .unwrap();
        let msg = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {msg}");
        assert!(msg.contains("xen Xen PV guest"), "{extra:?}: {msg}");
    }

    // CD-ROM media change on a running guest goes into QEMU right away.
    std::fs::write(lv.images().join("tools.iso"), vec![0u8; 1 << 20]).unwrap();
    lv.virsh(&["pool-refresh", "default"]);
    ok(
        d.cli(&[
            "vm",
            "cdrom",
            "insert",
            "q-lin",
            "default/tools.iso",
            "--json",
        ]),
        "insert",
    );
    assert!(lv.virsh(&["domblklist", "q-lin"]).contains("tools.iso"));
    ok(d.cli(&["vm", "cdrom", "eject", "q-lin", "--json"]), "eject");
    assert!(!lv.virsh(&["domblklist", "q-lin"]).contains("tools.iso"));

    // Boot order on a real QEMU definition (HVM).
    ok(d.cli(&["vm", "stop", "q-oth", "--json"]), "stop");
    let r = ok(
        d.cli(&["vm", "disk", "boot", "q-oth", "hda", "--json"]),
        "boot hda",
    );
    assert_eq!(r["vm"]["boot_order"][0], "hda");
    ok(
        d.cli(&["vm", "start", "q-oth", "--json"]),
        "start with new boot order",
    );

    // Statistics flow from the bulk call: a running TCG guest uses some CPU.
    wait_for(
        Duration::from_secs(30),
        "CPU usage of a running guest",
        || (d.vm("q-lin", "localhost")["cpu_usage"].as_f64().unwrap() > 0.0).then_some(()),
    );

    // Delete: refused while running; with --volumes all the image goes, by default it stays.
    let out = d.cli(&["vm", "delete", "q-win"]);
    assert_eq!(out.status.code(), Some(1));
    for name in ["q-win", "q-lin", "q-oth"] {
        ok(d.cli(&["vm", "stop", name, "--json"]), "stop");
    }
    let r = ok(
        d.cli(&["vm", "delete", "q-win", "--volumes", "all", "--json"]),
        "delete with volumes",
    );
    assert_eq!(r["deleted"].as_array().unwrap().len(), 1, "{r}");
    assert!(!lv.images().join("q-win.qcow2").exists());
    let r = ok(
        d.cli(&["vm", "delete", "q-lin", "--json"]),
        "delete keeping volumes",
    );
    assert!(r["deleted"].as_array().unwrap().is_empty());
    assert!(lv.images().join("q-lin.qcow2").exists());
    assert!(!lv.virsh(&["list", "--all", "--name"]).contains("q-lin"));
}

fn inactive_xml(d: &Daemon, vm: &str) -> String {
    d.cli_json(&["vm", "xml", vm, "--inactive"])["xml"]
        .as_str()
        .unwrap()
        .to_string()
}

fn target_of<'a>(disks: &'a serde_json::Value, target: &str) -> Option<&'a serde_json::Value> {
    disks
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["target"] == target)
}

/// A running guest whose stored definition has changes for its next start: media change
/// works on each definition from its own XML, a drive in only one of them is changed
/// there, and `vm show` says what the next start brings. Then the switch from kvm to qemu.
#[test]
fn live_media_change_with_changes_pending_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let lv = SystemLibvirtd::start(&dir.path().join("libvirt"));
    lv.virsh(&[
        "pool-define-as",
        "default",
        "dir",
        "--target",
        lv.images().to_str().unwrap(),
    ]);
    lv.virsh(&["pool-start", "default"]);
    for iso in ["a.iso", "b.iso", "c.iso"] {
        std::fs::write(lv.images().join(iso), vec![0u8; 1 << 20]).unwrap();
    }
    lv.virsh(&["pool-refresh", "default"]);
    let d = Daemon::start(&[lv.uri()]);
    // Linux profile: a virtio disk and an empty SATA CD-ROM (sda), boot list cdrom, hd.
    ok(
        d.cli(&[
            "vm",
            "create",
            "--host",
            "localhost",
            "--profile",
            "Linux",
            "--name",
            "m-1",
            "--type",
            "qemu",
            "--memory",
            "128MiB",
            "--no-network",
            "--disk",
            "pool=default,size=64MiB",
            "--start",
            "--json",
        ]),
        "create",
    );
    let show = d.cli_json(&["vm", "show", "m-1"]);
    assert_eq!(show["state"], "running", "{show}");
    // Nothing pending right after the start: what only a running VM has (the CPU QEMU
    // got, ports, aliases) is not a change.
    assert_eq!(show["pending"], serde_json::Value::Null, "{show}");

    // Item 3: "Set as boot medium" while running stores per-device boot orders for the
    // next start; the running VM keeps <os><boot dev>. Media change must still work.
    ok(
        d.cli(&["vm", "disk", "boot", "m-1", "vda", "--json"]),
        "boot medium",
    );
    ok(
        d.cli(&["vm", "cdrom", "insert", "m-1", "default/a.iso", "--json"]),
        "insert with a pending boot order",
    );
    assert!(lv.virsh(&["domblklist", "m-1"]).contains("a.iso"));
    let r = d.cli_json(&["vm", "show", "m-1"]);
    assert_eq!(
        r["pending"]["boot_order"],
        serde_json::json!(["vda", "sda"]),
        "{r}"
    );
    assert_eq!(r["boot_order"], serde_json::json!(["cdrom", "hd"]));
    let stored = inactive_xml(&d, "m-1");
    assert!(
        stored.contains("a.iso") && stored.contains("<boot order='2'/>"),
        "{stored}"
    );
    let text = String::from_utf8_lossy(&d.cli(&["vm", "show", "m-1"]).stdout).into_owned();
    assert!(text.contains("cdrom, hd (next boot: vda, sda)"), "{text}");

    // Item 4: a CD-ROM drive added while running exists only in the stored definition.
    let r = ok(
        d.cli(&["vm", "disk", "add", "m-1", "--cdrom", "--json"]),
        "cdrom for the next start",
    );
    let added = r["vm"]["pending"]["disks"].clone();
    assert!(target_of(&added, "sdb").is_some(), "{r}");
    assert!(target_of(&r["vm"]["disks"], "sdb").is_none(), "{r}");
    let r = ok(
        d.cli(&[
            "vm",
            "cdrom",
            "insert",
            "m-1",
            "default/b.iso",
            "--drive",
            "sdb",
            "--json",
        ]),
        "insert into a drive of the next start",
    );
    assert!(
        r["warnings"].to_string().contains("from its next start"),
        "{r}"
    );
    assert!(inactive_xml(&d, "m-1").contains("b.iso"));
    assert!(!lv.virsh(&["domblklist", "m-1"]).contains("b.iso"));
    // ... and a drive removed while running exists only in the running VM.
    ok(
        d.cli(&["vm", "disk", "remove", "m-1", "sda", "--json"]),
        "remove for the next start",
    );
    let r = ok(
        d.cli(&[
            "vm",
            "cdrom",
            "insert",
            "m-1",
            "default/c.iso",
            "--drive",
            "sda",
            "--json",
        ]),
        "insert into a drive of the running VM only",
    );
    assert!(r["warnings"].to_string().contains("running VM only"), "{r}");
    assert!(lv.virsh(&["domblklist", "m-1"]).contains("c.iso"));
    assert!(!inactive_xml(&d, "m-1").contains("c.iso"));
    let text = String::from_utf8_lossy(&d.cli(&["vm", "disk", "list", "m-1"]).stdout).into_owned();
    let row = |t: &str| {
        text.lines()
            .find(|l| l.starts_with(t))
            .unwrap_or_else(|| panic!("{t}: {text}"))
            .to_string()
    };
    assert!(row("sda").ends_with("removed"), "{text}");
    assert!(row("sdb").ends_with("added"), "{text}");
    // Ejecting works on both sides too.
    ok(
        d.cli(&["vm", "cdrom", "eject", "m-1", "--drive", "sda", "--json"]),
        "eject live only",
    );
    assert!(!lv.virsh(&["domblklist", "m-1"]).contains("c.iso"));
    // After a restart the stored definition is what runs.
    ok(d.cli(&["vm", "stop", "m-1", "--json"]), "stop");
    ok(d.cli(&["vm", "start", "m-1", "--json"]), "start");
    let show = d.cli_json(&["vm", "show", "m-1"]);
    assert_eq!(show["pending"], serde_json::Value::Null, "{show}");
    assert_eq!(show["boot_order"], serde_json::json!(["vda"]), "{show}");
    assert!(lv.virsh(&["domblklist", "m-1"]).contains("b.iso"));

    // Item 11: a VM made for KVM switches to QEMU emulation (and back where KVM is
    // offered) while shut off.
    let caps = d.get("/api/v1/hosts/localhost")["capabilities"].clone();
    let has_kvm = caps.as_array().unwrap().iter().any(|g| {
        g["domain_types"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "kvm")
    });
    ok(
        d.cli(&[
            "vm",
            "create",
            "--host",
            "localhost",
            "--profile",
            "Linux",
            "--name",
            "k-1",
            "--memory",
            "128MiB",
            "--no-network",
            "--disk",
            "pool=default,size=64MiB",
            "--json",
        ]),
        "create without --type",
    );
    let t = d.cli_json(&["vm", "show", "k-1"])["domain_type"].clone();
    assert_eq!(t == "kvm", has_kvm, "profiles pick kvm where it is offered");
    if has_kvm {
        // A start that fails says how to get out of a broken KVM. (The image is removed
        // behind libvirt's back: a start failure that does not depend on this machine's
        // KVM.)
        std::fs::remove_file(lv.images().join("k-1.qcow2")).unwrap();
        fails(d.cli(&["vm", "start", "k-1"]), "uvmm vm set k-1 type=qemu");
        lv.virsh(&["pool-refresh", "default"]);
        ok(
            d.cli(&["vm", "disk", "remove", "k-1", "vda", "--json"]),
            "drop the lost disk",
        );
    }
    let r = ok(
        d.cli(&["vm", "set", "k-1", "type=qemu", "--json"]),
        "type=qemu",
    );
    assert_eq!(r["vm"]["domain_type"], "qemu", "{r}");
    let xml = inactive_xml(&d, "k-1");
    assert!(xml.starts_with("<domain type='qemu'"), "{xml}");
    ok(d.cli(&["vm", "start", "k-1", "--json"]), "start under TCG");
    assert!(lv.virsh(&["domstate", "k-1"]).contains("running"));
    fails(
        d.cli(&["vm", "set", "k-1", "type=kvm"]),
        "only while it is shut off",
    );
    ok(d.cli(&["vm", "stop", "k-1", "--json"]), "stop");
    let out = d.cli(&["vm", "set", "k-1", "type=kvm", "--json"]);
    if has_kvm {
        assert_eq!(ok(out, "back to kvm")["vm"]["domain_type"], "kvm");
    } else {
        fails(out, "offers no kvm domains");
    }
    ok(d.cli(&["vm", "stop", "m-1", "--json"]), "stop");
}
