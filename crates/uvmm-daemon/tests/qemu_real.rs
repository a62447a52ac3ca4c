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
