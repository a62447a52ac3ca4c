//! Honest outcomes with real QEMU guests on a real libvirtd (qemu:///system in a private
//! mount namespace, TCG): a `vm create --start` whose start fails exits 1, a shutdown the
//! guest ignores is "requested", not "now running", and `--wait` fails after its timeout;
//! a restore after an image vanished behind libvirt's back lists the missing drive instead
//! of passing on libvirt's error.

mod common;

use common::*;
use std::process::Command;

#[test]
fn start_failures_ignored_shutdowns_and_vanished_images_are_reported_honestly() {
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
    // Pools are not refreshed during the test: libvirt keeps listing a removed image.
    let d = Daemon::start_with(
        std::slice::from_ref(&lv.uri()),
        &[],
        "[monitoring]\npool_interval_secs = 3600\n",
    );
    let base = [
        "vm",
        "create",
        "--host",
        "localhost",
        "--profile",
        "Linux",
        "--type",
        "qemu",
        "--memory",
        "128MiB",
        "--no-disk",
    ];

    // --start on a network that is defined but not active: created, not started, exit 1.
    let net = dir.path().join("idle-net.xml");
    std::fs::write(
        &net,
        "<network><name>idle</name><bridge name='virbr77'/></network>",
    )
    .unwrap();
    lv.virsh(&["net-define", net.to_str().unwrap()]);
    let mut args = base.to_vec();
    args.extend([
        "--name",
        "q-nobridge",
        "--network",
        "network=idle",
        "--start",
    ]);
    let out = d.cli(&args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("was created on localhost but could not be started")
            && err.contains("stays defined"),
        "{err}"
    );
    assert_eq!(
        err.matches("could not be started").count(),
        1,
        "said once: {err}"
    );
    assert_eq!(d.vm("q-nobridge", "localhost")["state"], "shutoff");

    // A guest without an operating system ignores the ACPI power button.
    let mut args = base.to_vec();
    args.extend(["--name", "q-deaf", "--no-network", "--start", "--json"]);
    ok(d.cli(&args), "q-deaf");
    let out = d.cli(&["vm", "shutdown", "q-deaf"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("shutdown requested for q-deaf") && !text.contains("is now running"),
        "{text}"
    );
    let out = d.cli(&["vm", "shutdown", "q-deaf", "--wait", "--timeout", "3"]);
    fails(out, "q-deaf did not shut down within 3 s");
    assert_eq!(d.vm("q-deaf", "localhost")["state"], "running");
    ok(d.cli(&["vm", "stop", "q-deaf", "--json"]), "stop q-deaf");

    // A VM whose image is removed outside libvirt after the VM was deleted.
    let mut args = base.to_vec();
    args.retain(|a| *a != "--no-disk");
    args.extend([
        "--name",
        "q-gone",
        "--no-network",
        "--disk",
        "pool=default,size=16MiB,format=raw",
        "--json",
    ]);
    let r = ok(d.cli(&args), "q-gone");
    let image = r["vm"]["disks"][0]["source"].as_str().unwrap().to_string();
    ok(
        d.cli(&["vm", "delete", "q-gone", "--json"]),
        "delete, keep image",
    );
    std::fs::remove_file(&image).unwrap();
    let want = format!("disk image {image} (drive vda) does not exist on the target host");
    // Through uvmmd, and directly through libvirt.
    for extra in [
        &[][..],
        &["--direct", "--dir", d.backup_dir().to_str().unwrap()][..],
    ] {
        let out = Command::new(uvmm_restore_bin())
            .args(["-r", "q-gone"])
            .args(extra)
            .env("UVMM_SOCKET", &d.socket)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        assert!(
            err.contains("restore refused") && err.contains(&want),
            "{extra:?}: {err}"
        );
        assert!(!err.contains("libvirt:"), "{extra:?}: {err}");
    }
    assert!(d.vms().iter().all(|v| v["name"] != "q-gone"));
}
