//! Creating, editing and deleting VMs end to end on libvirt test-driver hosts, through the
//! real CLI and raw HTTP.

mod common;

use common::*;
use serde_json::{json, Value};
use std::process::Command;

fn validate_xml(xml: &str, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("d.xml");
    std::fs::write(&f, xml).unwrap();
    let out = Command::new("virt-xml-validate")
        .arg(&f)
        .arg("domain")
        .output()
        .expect("virt-xml-validate");
    assert!(
        out.status.success(),
        "{what}: {xml}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn xml_of(d: &Daemon, vm: &str, host: &str) -> String {
    let v = d.cli_json(&["vm", "xml", vm, "--host", host, "--inactive"]);
    v["xml"].as_str().unwrap().to_string()
}

#[test]
fn create_from_every_profile_on_test_driver_hosts() {
    let d = Daemon::start(&demo_uris());
    let profiles = d.cli_json(&["profile", "list"]);
    assert_eq!(profiles.as_array().unwrap().len(), 4);
    for (profile, host, name) in [
        ("Windows", "demo-kvm1", "win-a"),
        ("Linux", "demo-kvm1", "lin-a"),
        ("Other", "demo-kvm2", "oth-a"),
        ("Linux Xen PV", "demo-xen1", "pv-a"),
    ] {
        let r = ok(
            d.cli(&[
                "vm",
                "create",
                "--host",
                host,
                "--profile",
                profile,
                "--name",
                name,
                "--disk",
                "pool=default,size=2GiB",
                "--json",
            ]),
            profile,
        );
        assert!(
            r["notes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n.as_str().unwrap().contains("test-driver")),
            "{r}"
        );
        let xml = xml_of(&d, name, host);
        validate_xml(&xml, profile);
        let vm = &r["vm"];
        assert_eq!(vm["state"], "shutoff");
        match profile {
            "Windows" => {
                let cds: Vec<&Value> = vm["disks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|d| d["device"] == "cdrom")
                    .collect();
                assert_eq!(cds.len(), 2, "install and driver CD-ROM: {vm}");
                assert_eq!(vm["rtc"], "localtime");
                // Hyper-V enlightenments exist for QEMU/KVM only (see the real-QEMU test).
                assert_eq!(vm["features"]["hyperv"], false);
                assert_eq!(vm["disks"][0]["bus"], "virtio");
            }
            "Linux" => assert_eq!(vm["nics"][0]["model"], "virtio"),
            "Other" => {
                assert_eq!(vm["disks"][0]["target"], "hda");
                assert_eq!(vm["nics"][0]["model"], "rtl8139");
            }
            _ => {
                assert_eq!(vm["bootloader"], "/usr/bin/pygrub");
                assert_eq!(vm["disks"][0]["target"], "xvda");
                assert_eq!(vm["os_type"], "xen");
            }
        }
        assert!(
            xml.contains("<acpi/>") || profile == "Linux Xen PV",
            "{xml}"
        );
        // The new VM is in the list right away.
        assert_eq!(d.vm(name, host)["state"], "shutoff");
    }
}

#[test]
fn set_as_boot_medium_on_xen_pv_and_hvm() {
    let d = Daemon::start(&demo_uris());
    ok(
        d.cli(&[
            "vm",
            "create",
            "--host",
            "demo-xen1",
            "--profile",
            "Linux Xen PV",
            "--name",
            "pv-b",
            "--disk",
            "pool=default,size=1GiB",
            "--disk",
            "pool=default,size=1GiB",
            "--json",
        ]),
        "create",
    );
    let before = d.cli_json(&["vm", "disk", "list", "pv-b"]);
    let second = before[1]["source"].as_str().unwrap().to_string();
    let first = before[0]["source"].as_str().unwrap().to_string();
    let r = ok(
        d.cli(&["vm", "disk", "boot", "pv-b", "xvdb", "--json"]),
        "boot xvdb",
    );
    // The chosen image is now the first disk (xvda): pygrub reads it.
    assert_eq!(r["vm"]["disks"][0]["target"], "xvda", "{r}");
    assert_eq!(r["vm"]["disks"][0]["source"], second.as_str(), "{r}");
    assert_eq!(r["vm"]["disks"][1]["source"], first.as_str(), "{r}");
    let xml = xml_of(&d, "pv-b", "demo-xen1");
    assert!(
        xml.find(&second).unwrap() < xml.find(&first).unwrap(),
        "the chosen image must come first in the XML: {xml}"
    );
    // On the first disk it is a no-op; while running the order cannot change.
    let before = xml_of(&d, "pv-b", "demo-xen1");
    ok(
        d.cli(&["vm", "disk", "boot", "pv-b", "xvda", "--json"]),
        "no-op",
    );
    assert_eq!(xml_of(&d, "pv-b", "demo-xen1"), before);
    ok(d.cli(&["vm", "start", "pv-b", "--json"]), "start");
    let out = d.cli(&["vm", "disk", "boot", "pv-b", "xvdb"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("shut off"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // HVM: per-device boot order, the others keep their relative order.
    ok(
        d.cli(&[
            "vm",
            "create",
            "--host",
            "demo-kvm1",
            "--profile",
            "Linux",
            "--name",
            "hvm-b",
            "--disk",
            "pool=default,size=1GiB",
            "--json",
        ]),
        "create hvm",
    );
    let r = ok(
        d.cli(&["vm", "disk", "boot", "hvm-b", "vda", "--json"]),
        "boot vda",
    );
    assert_eq!(r["vm"]["boot_order"], json!(["vda", "sda"]), "{r}");
    let xml = xml_of(&d, "hvm-b", "demo-kvm1");
    assert!(
        !xml.contains("<boot dev="),
        "os/boot must go when per-device order is used: {xml}"
    );
    assert!(xml.contains("<boot order='1'/>"), "{xml}");
    validate_xml(&xml, "hvm boot order");
    let out = d.cli(&["vm", "disk", "boot", "hvm-b", "vdz"]);
    assert_eq!(out.status.code(), Some(1));
}

/// A raw disk image with an MBR whose first partition has (or lacks) the boot flag.
fn mbr_image(path: &std::path::Path, bootable: bool) {
    let mut b = vec![0u8; 1 << 20];
    b[446] = if bootable { 0x80 } else { 0 };
    b[446 + 4] = 0x83;
    b[510] = 0x55;
    b[511] = 0xAA;
    std::fs::write(path, b).unwrap();
}

#[test]
fn pygrub_preflight_reads_raw_and_qcow2_images() {
    // The images lie outside every pool: the configuration permits their directory.
    let imgs = tempfile::tempdir().unwrap();
    let config = format!(
        "{}image_dirs = [\"{}\"]\n",
        demo_runtime_config(),
        imgs.path().display()
    );
    let d = Daemon::start_with(&[demo_uri("demo-xen1")], &[], &config);
    let qcow2_of = |raw: &std::path::Path, name: &str| {
        let out = imgs.path().join(name);
        let conv = Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "qcow2"])
            .arg(raw)
            .arg(&out)
            .output()
            .expect("qemu-img (qemu-utils)");
        assert!(
            conv.status.success(),
            "{}",
            String::from_utf8_lossy(&conv.stderr)
        );
        out
    };
    let flagged = imgs.path().join("flagged.raw");
    let plain = imgs.path().join("plain.raw");
    mbr_image(&flagged, true);
    mbr_image(&plain, false);
    let flagged_q = qcow2_of(&flagged, "flagged.qcow2");
    let plain_q = qcow2_of(&plain, "plain.qcow2");
    ok(
        d.cli(&[
            "vm",
            "create",
            "--host",
            "demo-xen1",
            "--profile",
            "Linux Xen PV",
            "--name",
            "pv-c",
            "--disk",
            "pool=default,size=1GiB",
            "--json",
        ]),
        "create",
    );
    for img in [&flagged, &plain, &flagged_q, &plain_q] {
        ok(
            d.cli(&[
                "vm",
                "disk",
                "add",
                "pv-c",
                "--volume",
                img.to_str().unwrap(),
                "--json",
            ]),
            "attach",
        );
    }
    let disks = d.cli_json(&["vm", "disk", "list", "pv-c"]);
    let formats: Vec<&str> = disks
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["format"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        formats,
        ["raw", "raw", "raw", "qcow2", "qcow2"],
        "formats of attached images are recorded"
    );
    // Boot from an image (found by its path: targets move with every boot change).
    let warnings = |image: &str| -> Vec<String> {
        let disks = d.cli_json(&["vm", "disk", "list", "pv-c"]);
        let target = disks
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["source"].as_str().unwrap().ends_with(image))
            .map(|d| d["target"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{image} not attached: {disks}"));
        let r = ok(
            d.cli(&["vm", "disk", "boot", "pv-c", &target, "--json"]),
            image,
        );
        assert!(
            r["vm"]["disks"][0]["source"]
                .as_str()
                .unwrap()
                .ends_with(image),
            "{r}"
        );
        assert_eq!(r["vm"]["disks"][0]["target"], "xvda");
        r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().to_string())
            .collect()
    };
    // Raw with and without boot flag, then the same as qcow2 (read through qemu-img, which
    // shows the guest's view, not the qcow2 file).
    assert_eq!(warnings("flagged.raw"), Vec::<String>::new());
    let w = warnings("plain.raw");
    assert!(
        w.iter()
            .any(|w| w.contains("no partition is marked bootable") && w.contains("MBR")),
        "{w:?}"
    );
    assert_eq!(warnings("flagged.qcow2"), Vec::<String>::new());
    let w = warnings("plain.qcow2");
    assert!(
        w.iter()
            .any(|w| w.contains("no partition is marked bootable")),
        "{w:?}"
    );
    // A volume of the demo pool has no real file behind it: the answer says so plainly.
    let w = warnings("pv-c.img");
    assert!(
        w.iter().any(|w| w.contains("could not be inspected")),
        "{w:?}"
    );
}

#[test]
fn etag_guards_against_lost_updates() {
    let d = Daemon::start(&[demo_uri("demo-kvm1")]);
    let show = d.cli_json(&["vm", "show", "build-old"]);
    let etag = show["etag"].as_str().unwrap().to_string();
    let uuid = show["uuid"].as_str().unwrap().to_string();
    let r = ok(
        d.cli(&[
            "vm",
            "set",
            "build-old",
            "memory=1536MiB",
            "--if-match",
            &etag,
            "--json",
        ]),
        "first edit",
    );
    assert_eq!(r["vm"]["max_memory_kib"], 1536 * 1024);
    assert_ne!(r["vm"]["etag"], etag.as_str());
    // A second client still holding the old ETag is refused; nothing changes.
    let out = d.cli(&["vm", "set", "build-old", "memory=3GiB", "--if-match", &etag]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("changed by someone else"));
    let (status, body) = http_with_header(
        &d,
        "PATCH",
        &format!("/api/v1/vms/{uuid}"),
        "{\"vcpus\": 2}",
        &etag,
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        d.vm("build-old", "demo-kvm1")["max_memory_kib"],
        1536 * 1024
    );
    assert_eq!(d.vm("build-old", "demo-kvm1")["vcpus"], 1);
    // Without If-Match the edit goes through (last writer wins, as with virsh).
    ok(
        d.cli(&["vm", "set", "build-old", "vcpus=2", "--json"]),
        "unguarded",
    );
    assert_eq!(d.vm("build-old", "demo-kvm1")["vcpus"], 2);
}

fn http_with_header(d: &Daemon, method: &str, path: &str, body: &str, etag: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: x\r\nIf-Match: {etag}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, resp)
}

#[test]
fn changes_to_a_running_vm_are_stored_for_the_next_boot() {
    let d = Daemon::start(&[demo_uri("demo-kvm1")]);
    let r = ok(d.cli(&["vm", "set", "web-01", "vcpus=4", "--json"]), "set");
    let w = r["warnings"].as_array().unwrap();
    assert!(
        w.iter()
            .any(|w| w.as_str().unwrap().contains("next started")),
        "{r}"
    );
    // Running: still 2 vCPUs; the persistent definition has 4.
    assert_eq!(d.vm("web-01", "demo-kvm1")["vcpus"], 2);
    assert!(xml_of(&d, "web-01", "demo-kvm1").contains(">4</vcpu>"));
    ok(d.cli(&["vm", "stop", "web-01", "--json"]), "stop");
    ok(d.cli(&["vm", "start", "web-01", "--json"]), "start");
    assert_eq!(d.vm("web-01", "demo-kvm1")["vcpus"], 4);
    // Notes change at once, also on a running VM, and are escaped.
    let r = ok(
        d.cli(&[
            "vm",
            "set",
            "web-01",
            "description=</description><evil/> & \"x\"",
            "--json",
        ]),
        "notes",
    );
    assert!(r["warnings"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(
        d.vm("web-01", "demo-kvm1")["description"],
        "</description><evil/> & \"x\""
    );
    let xml = xml_of(&d, "web-01", "demo-kvm1");
    assert!(
        !xml.contains("<evil/>") && xml.contains("&lt;evil/&gt;"),
        "{xml}"
    );
}

#[test]
fn drives_nics_and_media_through_the_cli() {
    let d = Daemon::start(&[demo_uri("demo-kvm1")]);
    let r = ok(
        d.cli(&[
            "vm",
            "disk",
            "add",
            "build-old",
            "pool=default,size=5GiB,format=raw",
            "--json",
        ]),
        "new disk",
    );
    let added: Vec<&Value> = r["vm"]["disks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["target"] == "vdb")
        .collect();
    assert_eq!(added.len(), 1, "{r}");
    assert_eq!(added[0]["format"], "raw");
    assert!(added[0]["source"]
        .as_str()
        .unwrap()
        .ends_with("build-old-vdb.img"));
    // web-02 is running with that image open: handing it to another VM is refused (two
    // writers corrupt it), and nothing changes; once web-02 is off it may be shared.
    let add_web02 = || {
        d.cli(&[
            "vm",
            "disk",
            "add",
            "build-old",
            "--volume",
            "default/web-02.qcow2",
            "--json",
        ])
    };
    let before = d.cli_json(&["vm", "disk", "list", "build-old"]);
    fails(add_web02(), "in use by the running VM web-02@demo-kvm1");
    assert_eq!(d.cli_json(&["vm", "disk", "list", "build-old"]), before);
    ok(d.cli(&["vm", "stop", "web-02", "--json"]), "stop web-02");
    let r = ok(add_web02(), "existing volume of a shut-off VM");
    assert!(
        r["warnings"]
            .to_string()
            .contains("also used by web-02@demo-kvm1"),
        "{r}"
    );
    ok(
        d.cli(&["vm", "disk", "add", "build-old", "--cdrom", "--json"]),
        "empty cdrom",
    );
    let disks = d.cli_json(&["vm", "disk", "list", "build-old"]);
    let targets: Vec<&str> = disks
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["target"].as_str().unwrap())
        .collect();
    // libvirt keeps disks sorted by bus and target.
    assert_eq!(targets, ["vda", "vdb", "vdc", "sda", "sdb"]);
    let r = ok(
        d.cli(&[
            "vm",
            "cdrom",
            "insert",
            "build-old",
            "iso/debian-12-netinst.iso",
            "--drive",
            "sdb",
            "--json",
        ]),
        "insert",
    );
    let sdb = r["vm"]["disks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["target"] == "sdb")
        .unwrap()
        .clone();
    assert!(sdb["source"]
        .as_str()
        .unwrap()
        .ends_with("debian-12-netinst.iso"));
    ok(
        d.cli(&[
            "vm",
            "cdrom",
            "eject",
            "build-old",
            "--drive",
            "sdb",
            "--json",
        ]),
        "eject",
    );
    let r = ok(
        d.cli(&[
            "vm",
            "disk",
            "remove",
            "build-old",
            "vdb",
            "--delete-volume",
            "--json",
        ]),
        "remove+delete",
    );
    assert_eq!(r["deleted"].as_array().unwrap().len(), 1, "{r}");
    // web-02's image is shared: detaching it with --delete-volume keeps it.
    let r = ok(
        d.cli(&[
            "vm",
            "disk",
            "remove",
            "build-old",
            "vdc",
            "--delete-volume",
            "--json",
        ]),
        "remove shared",
    );
    assert!(r["deleted"].as_array().unwrap().is_empty());
    assert!(
        r["kept"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("web-02@demo-kvm1"),
        "{r}"
    );
    let r = ok(
        d.cli(&[
            "vm",
            "nic",
            "add",
            "build-old",
            "network=default",
            "--model",
            "e1000",
            "--mac",
            "52:54:00:aa:bb:cc",
            "--json",
        ]),
        "nic add",
    );
    assert_eq!(r["vm"]["nics"].as_array().unwrap().len(), 2);
    ok(
        d.cli(&[
            "vm",
            "nic",
            "remove",
            "build-old",
            "52:54:00:aa:bb:cc",
            "--json",
        ]),
        "nic remove",
    );
    let show = d.cli_json(&["vm", "show", "build-old"]);
    assert_eq!(show["nics"].as_array().unwrap().len(), 1);
    assert_eq!(show["disks"].as_array().unwrap().len(), 3);
}

fn volumes_of(uri: &str, pool: &str) -> Vec<String> {
    let out = Command::new("virsh")
        .args(["-c", uri, "vol-list", pool])
        .output()
        .expect("virsh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    v.sort();
    v
}

#[test]
fn delete_with_and_without_volumes() {
    // test:///default behind a real libvirtd: virsh sees what uvmm did.
    let dir = tempfile::tempdir().unwrap();
    let libvirtd = Libvirtd::start(&dir.path().join("libvirtd"));
    let uri = libvirtd.uri();
    let d = Daemon::start(std::slice::from_ref(&uri));
    ok(
        d.cli(&[
            "vm",
            "create",
            "--host",
            "default",
            "--profile",
            "Linux",
            "--name",
            "del-a",
            "--disk",
            "pool=default-pool,size=1GiB",
            "--disk",
            "pool=default-pool,size=1GiB",
            "--json",
        ]),
        "create a",
    );
    ok(
        d.cli(&[
            "vm",
            "create",
            "--host",
            "default",
            "--profile",
            "Linux",
            "--name",
            "del-b",
            "--no-disk",
            "--json",
        ]),
        "create b",
    );
    ok(
        d.cli(&[
            "vm",
            "disk",
            "add",
            "del-b",
            "--volume",
            "default-pool/del-a-1.qcow2",
            "--json",
        ]),
        "share",
    );
    assert_eq!(
        volumes_of(&uri, "default-pool"),
        ["del-a-1.qcow2", "del-a.qcow2"]
    );

    // Running VMs are not deleted.
    ok(d.cli(&["vm", "start", "del-a", "--json"]), "start");
    let out = d.cli(&["vm", "delete", "del-a"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop it"));
    ok(d.cli(&["vm", "stop", "del-a", "--json"]), "stop");

    let r = ok(
        d.cli(&["vm", "delete", "del-a", "--volumes", "all", "--json"]),
        "delete a",
    );
    assert_eq!(r["deleted"].as_array().unwrap().len(), 1, "{r}");
    assert!(
        r["kept"][0]["reason"].as_str().unwrap().contains("del-b"),
        "shared image kept: {r}"
    );
    assert_eq!(volumes_of(&uri, "default-pool"), ["del-a-1.qcow2"]);
    // Default: keep every image.
    let r = ok(d.cli(&["vm", "delete", "del-b", "--json"]), "delete b");
    assert!(r["deleted"].as_array().unwrap().is_empty());
    assert_eq!(volumes_of(&uri, "default-pool"), ["del-a-1.qcow2"]);
    assert!(d
        .vms()
        .iter()
        .all(|v| v["name"] != "del-a" && v["name"] != "del-b"));
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let libvirtd = Libvirtd::start(&dir.path().join("libvirtd"));
    let uri = libvirtd.uri();
    let d = Daemon::start(std::slice::from_ref(&uri));
    let vms_before: Vec<String> = d
        .vms()
        .iter()
        .map(|v| format!("{} {}", v["name"], v["etag"]))
        .collect();
    let vols_before = volumes_of(&uri, "default-pool");
    let create = |extra: Value| -> Value {
        let mut base = json!({"host": "default", "profile": "Linux", "name": "new-vm", "disks": [{"pool": "default-pool", "size_bytes": 1073741824u64}], "networks": ["network=default"]});
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        base
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (create(json!({"name": "test"})), 409, "already exists"),
        (create(json!({"name": "bad name"})), 400, "invalid VM name"),
        (create(json!({"name": "../etc"})), 400, "invalid VM name"),
        (create(json!({"name": ""})), 400, "invalid VM name"),
        (
            create(json!({"memory_kib": 1u64 << 40})),
            409,
            "more than the host has",
        ),
        (create(json!({"memory_kib": 0})), 400, "zero"),
        (create(json!({"vcpus": 0})), 400, "vCPU"),
        (create(json!({"profile": "BeOS"})), 404, "no profile"),
        (create(json!({"host": "nowhere"})), 404, "no host"),
        (
            create(json!({"disks": [{"pool": "nopool", "size_bytes": 1024}]})),
            404,
            "no storage pool",
        ),
        (
            create(json!({"disks": [{"pool": "default-pool", "size_bytes": 0}]})),
            400,
            "zero",
        ),
        (
            create(json!({"disks": [{"pool": "default-pool", "size_bytes": 1024, "name": "a/b"}]})),
            400,
            "invalid volume name",
        ),
        (
            create(json!({"disks": [{"pool": "default-pool", "size_bytes": 1024, "name": ".."}]})),
            400,
            "invalid volume name",
        ),
        (
            create(
                json!({"disks": [{"pool": "default-pool", "size_bytes": 1024, "format": "vmdk"}]}),
            ),
            400,
            "format",
        ),
        (
            create(json!({"networks": ["network=nonet"]})),
            404,
            "no virtual network",
        ),
        (
            create(json!({"networks": ["bridge=nobr0"]})),
            404,
            "no bridge interface",
        ),
        (create(json!({"networks": ["vlan=5"]})), 400, "network"),
        // Outside every pool, and no [api] image_dirs: refused before anything looks.
        (
            create(json!({"cdrom": "/nonexistent.iso"})),
            403,
            "not a volume of a storage pool",
        ),
        (
            create(json!({"description": "bell\u{7}"})),
            400,
            "control characters",
        ),
        (create(json!({"domain_type": "vmware"})), 400, "domain_type"),
        (create(json!({"colour": "red"})), 400, "unknown field"),
    ];
    for (body, status, text) in cases {
        let (got, resp) = d.http("POST", "/api/v1/vms", Some(&body.to_string()));
        assert_eq!(got, status, "{body}: {resp}");
        assert!(
            resp["error"]["message"].as_str().unwrap().contains(text),
            "{body}: {resp}"
        );
    }
    // A size that does not fit u64 is a JSON error, not an overflow.
    let huge = r#"{"host":"default","profile":"Linux","name":"x","disks":[{"pool":"default-pool","size_bytes":99999999999999999999999}]}"#;
    assert_eq!(d.http("POST", "/api/v1/vms", Some(huge)).0, 400);

    // Edits with bad values.
    let uuid = d.vm("test", "default")["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    // (method, body, status, text): 400 for values the API never takes, 409 for what this
    // host cannot take.
    let edits: Vec<(&str, String, u16, &str)> = vec![
        ("PATCH", r#"{"vcpus": 0}"#.into(), 400, "vCPU"),
        ("PATCH", r#"{"memory_kib": 0}"#.into(), 400, "zero"),
        ("PATCH", r#"{"rtc": "gmt"}"#.into(), 400, "rtc"),
        ("PATCH", r#"{"boot": ["usb"]}"#.into(), 400, "boot device"),
        ("PATCH", r#"{"cpu_model": "a b"}"#.into(), 400, "CPU model"),
        (
            "PATCH",
            r#"{"vnc": true, "vnc_keymap": "DE!"}"#.into(),
            400,
            "keymap",
        ),
        (
            "PATCH",
            r#"{"memory_kib": 1099511627776}"#.into(),
            409,
            "more than the host has",
        ),
    ];
    for (m, body, status, text) in edits {
        let (got, resp) = d.http(m, &format!("/api/v1/vms/{uuid}"), Some(&body));
        assert_eq!(got, status, "{body}: {resp}");
        assert!(
            resp["error"]["message"].as_str().unwrap().contains(text),
            "{body}: {resp}"
        );
    }
    // (path, body, status, text): 404 for a pool, volume or bridge that does not exist.
    for (path, body, status, text) in [
        (
            "disks",
            r#"{"source": {"kind": "new", "pool": "nopool", "size_bytes": 1024}}"#,
            404,
            "no storage pool",
        ),
        (
            "disks",
            r#"{"source": {"kind": "new", "pool": "default-pool", "size_bytes": 1024, "name": "../x"}}"#,
            400,
            "invalid volume name",
        ),
        (
            "disks",
            r#"{"source": {"kind": "volume", "volume": "default-pool/missing.img"}}"#,
            404,
            "no volume",
        ),
        (
            "disks",
            r#"{"source": {"kind": "block", "path": "relative/dev"}}"#,
            400,
            "invalid path",
        ),
        (
            "disks",
            r#"{"source": {"kind": "new", "pool": "default-pool", "size_bytes": 1024}, "bus": "nvme9"}"#,
            400,
            "unknown disk bus",
        ),
        ("nics", r#"{"source": "bridge=nobr0"}"#, 404, "no bridge"),
        (
            "nics",
            r#"{"source": "network=default", "mac": "01:00:5e:00:00:01"}"#,
            400,
            "multicast",
        ),
    ] {
        let (got, resp) = d.http("POST", &format!("/api/v1/vms/{uuid}/{path}"), Some(body));
        assert_eq!(got, status, "{body}: {resp}");
        assert!(
            resp["error"]["message"].as_str().unwrap().contains(text),
            "{body}: {resp}"
        );
    }
    let vms_after: Vec<String> = d
        .vms()
        .iter()
        .map(|v| format!("{} {}", v["name"], v["etag"]))
        .collect();
    assert_eq!(vms_after, vms_before, "bad input must not change any VM");
    assert_eq!(
        volumes_of(&uri, "default-pool"),
        vols_before,
        "bad input must not leave volumes behind"
    );
}

/// A test-driver host with the definitions real administrators brought along: a USB
/// device and a USB redirection that boot before the disk, NUMA cells with a DIMM and a
/// hot-plug limit, a clone whose two NICs share a MAC, and a KVM domain.
const ODD_HOST: &str = r#"<node xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
<cpu><mode>host</mode><topology sockets='1' cores='4' threads='1'/></cpu>
<memory>16777216</memory>
<domain type='test'>
  <name>usb-boot</name>
  <uuid>7e0b7e63-2a5c-4a8b-9a5e-1d2f3a4b5c01</uuid>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><source file='/img/usb-boot.img'/><target dev='vda' bus='virtio'/><boot order='3'/></disk>
    <disk type='file' device='cdrom'><target dev='sda' bus='sata'/><readonly/></disk>
    <controller type='usb' index='0' model='piix3-uhci'/>
    <hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/></source><boot order='2'/></hostdev>
    <redirdev bus='usb' type='spicevmc'><boot order='1'/></redirdev>
  </devices>
  <test:runstate>5</test:runstate>
</domain>
<domain type='test'>
  <name>numa</name>
  <uuid>7e0b7e63-2a5c-4a8b-9a5e-1d2f3a4b5c02</uuid>
  <maxMemory slots='4' unit='GiB'>4</maxMemory>
  <memory unit='MiB'>1536</memory>
  <vcpu>2</vcpu>
  <os><type>hvm</type></os>
  <cpu><numa><cell id='0' cpus='0' memory='512' unit='MiB'/><cell id='1' cpus='1' memory='512' unit='MiB'/></numa></cpu>
  <devices>
    <memory model='dimm'><target><size unit='MiB'>512</size><node>0</node></target></memory>
  </devices>
  <test:runstate>5</test:runstate>
</domain>
<domain type='test'>
  <name>clone</name>
  <uuid>7e0b7e63-2a5c-4a8b-9a5e-1d2f3a4b5c03</uuid>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
  <devices>
    <interface type='network'><mac address='52:54:00:12:34:56'/><source network='default'/></interface>
    <interface type='network'><mac address='52:54:00:12:34:56'/><source network='default'/></interface>
  </devices>
  <test:runstate>5</test:runstate>
</domain>
<domain type='kvm'>
  <name>kvm-guest</name>
  <uuid>7e0b7e63-2a5c-4a8b-9a5e-1d2f3a4b5c04</uuid>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
  <test:runstate>5</test:runstate>
</domain>
<network><name>default</name><bridge name='virbr0'/><forward/><ip address='192.168.122.1' netmask='255.255.255.0'/></network>
<pool type='dir'><name>default</name><target><path>/var/lib/libvirt/images</path></target></pool>
</node>"#;

fn odd_host() -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("odd.xml");
    std::fs::write(&node, ODD_HOST).unwrap();
    let d = Daemon::start(&[format!("test://{}", node.display())]);
    (dir, d)
}

#[test]
fn set_as_boot_medium_renumbers_every_device_with_a_boot_order() {
    let (_dir, d) = odd_host();
    let r = ok(
        d.cli(&["vm", "disk", "boot", "usb-boot", "sda", "--json"]),
        "boot from the CD-ROM",
    );
    assert_eq!(
        r["vm"]["boot_order"],
        json!(["sda", "redirdev#1", "hostdev#1", "vda"]),
        "{r}"
    );
    let xml = xml_of(&d, "usb-boot", "odd");
    for want in [
        "<boot order='1'/>",
        "<boot order='2'/>",
        "<boot order='3'/>",
        "<boot order='4'/>",
        "<product id='0xbeef'/>",
    ] {
        assert!(xml.contains(want), "{want}: {xml}");
    }
    validate_xml(&xml, "usb-boot");
    // Back to a boot device list: no device keeps an order (libvirt refuses the mix).
    ok(
        d.cli(&["vm", "set", "usb-boot", "boot=hd,cdrom", "--json"]),
        "boot list",
    );
    let xml = xml_of(&d, "usb-boot", "odd");
    assert!(!xml.contains("<boot order"), "{xml}");
    assert!(
        xml.contains("<redirdev") && xml.contains("<hostdev"),
        "{xml}"
    );
}

#[test]
fn memory_edits_keep_numa_cells_dimms_and_the_hotplug_limit_consistent() {
    let (_dir, d) = odd_host();
    // 3 GiB in all: the 512 MiB DIMM stays, the cells share the rest as before (1:1).
    let r = ok(
        d.cli(&["vm", "set", "numa", "memory=3GiB", "--json"]),
        "memory",
    );
    assert_eq!(r["vm"]["max_memory_kib"], 3 << 20, "{r}");
    let xml = xml_of(&d, "numa", "odd");
    assert_eq!(
        xml.matches("memory='1310720' unit='KiB'").count(),
        2,
        "each cell 1280 MiB: {xml}"
    );
    assert!(xml.contains("<size unit='KiB'>524288</size>"), "{xml}");
    // What the definition cannot hold is refused in uvmm's words, and changes nothing.
    let uuid = r["vm"]["uuid"].as_str().unwrap().to_string();
    for (body, text) in [
        (r#"{"memory_kib": 8388608}"#, "<maxMemory> of 4 GiB"),
        (
            r#"{"memory_kib": 524288}"#,
            "memory devices (DIMMs) already hold 512 MiB",
        ),
        (r#"{"memory_kib": 1024}"#, "memory devices (DIMMs)"),
    ] {
        let (status, resp) = d.http("PATCH", &format!("/api/v1/vms/{uuid}"), Some(body));
        assert_eq!(status, 400, "{body}: {resp}");
        let msg = resp["error"]["message"].as_str().unwrap();
        assert!(msg.contains(text), "{body}: {msg}");
    }
    assert_eq!(xml_of(&d, "numa", "odd"), xml);
}

#[test]
fn nics_sharing_a_mac_block_only_the_edits_that_need_them_apart() {
    let (_dir, d) = odd_host();
    // Edits that do not touch the NICs go through.
    ok(
        d.cli(&["vm", "set", "clone", "description=cloned", "--json"]),
        "description",
    );
    ok(d.cli(&["vm", "set", "clone", "vcpus=2", "--json"]), "vcpus");
    ok(
        d.cli(&["vm", "disk", "add", "clone", "--cdrom", "--json"]),
        "cdrom",
    );
    let show = d.cli_json(&["vm", "show", "clone"]);
    assert_eq!(show["description"], "cloned");
    assert_eq!(show["nics"].as_array().unwrap().len(), 2, "{show}");
    // A third NIC with that MAC, or removing "the" NIC with it, is refused with the reason.
    fails(
        d.cli(&[
            "vm",
            "nic",
            "add",
            "clone",
            "network=default",
            "--mac",
            "52:54:00:12:34:56",
        ]),
        "already has a network interface with MAC",
    );
    fails(
        d.cli(&["vm", "nic", "remove", "clone", "52:54:00:12:34:56"]),
        "2 network interfaces with MAC 52:54:00:12:34:56",
    );
    assert_eq!(
        d.cli_json(&["vm", "show", "clone"])["nics"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn cdrom_insert_and_eject_leave_the_drive_as_it_was() {
    let d = Daemon::start(&[demo_uri("demo-kvm1")]);
    let before = xml_of(&d, "build-old", "demo-kvm1");
    let r = ok(
        d.cli(&[
            "vm",
            "cdrom",
            "insert",
            "build-old",
            "iso/debian-12-netinst.iso",
            "--json",
        ]),
        "insert",
    );
    let sda = r["vm"]["disks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["target"] == "sda")
        .unwrap()
        .clone();
    assert!(sda["source"].as_str().unwrap().ends_with(".iso"), "{sda}");
    assert_eq!(sda["format"], Value::Null, "no <driver type> added: {sda}");
    ok(
        d.cli(&["vm", "cdrom", "eject", "build-old", "--json"]),
        "eject",
    );
    // The drive is as it was (libvirt re-indents the metadata of every redefinition).
    let cdrom = |xml: &str| {
        let start = xml.find("<disk type='file' device='cdrom'>").unwrap();
        xml[start..start + xml[start..].find("</disk>").unwrap()].to_string()
    };
    assert_eq!(cdrom(&xml_of(&d, "build-old", "demo-kvm1")), cdrom(&before));
}

#[test]
fn sizes_nobody_can_hold_are_refused_before_libvirt_sees_them() {
    let d = Daemon::start(&[demo_uri("demo-kvm1")]);
    let uuid = d.vm("build-old", "demo-kvm1")["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let etag_before = d.cli_json(&["vm", "show", "build-old"])["etag"].clone();
    let vols_before = d.get("/api/v1/hosts/demo-kvm1/pools/default")["volumes"].clone();
    let two63 = 1u64 << 63;
    let new_disk = |size: u64| {
        format!(r#"{{"source": {{"kind": "new", "pool": "default", "size_bytes": {size}}}}}"#)
    };
    let cases: Vec<(&str, String, String, &str)> = vec![
        // libvirt takes 2^63 - 1 as a number and fails on 2^63 ("numerical overflow").
        (
            "POST",
            format!("/api/v1/vms/{uuid}/disks"),
            new_disk(two63),
            "more than libvirt can represent",
        ),
        (
            "POST",
            format!("/api/v1/vms/{uuid}/disks"),
            new_disk(u64::MAX),
            "more than libvirt can represent",
        ),
        (
            "POST",
            format!("/api/v1/vms/{uuid}/disks"),
            new_disk(two63 - 1),
            "a qcow2 image holds at most 2 PiB",
        ),
        (
            "POST",
            format!("/api/v1/vms/{uuid}/disks"),
            new_disk(100 * (1 << 30) + 1),
            "pool 'default' holds 100 GiB in all",
        ),
        (
            "POST",
            "/api/v1/hosts/demo-kvm1/pools/default/volumes".into(),
            format!(r#"{{"name": "big.img", "size_bytes": {two63}}}"#),
            "more than libvirt can represent",
        ),
        (
            "POST",
            "/api/v1/hosts/demo-kvm1/pools/default/volumes".into(),
            format!(r#"{{"name": "big.img", "size_bytes": {}}}"#, two63 - 1),
            "a raw image holds at most",
        ),
        (
            "POST",
            "/api/v1/hosts/demo-kvm1/pools/default/volumes/build-old.qcow2/resize".into(),
            format!(r#"{{"size_bytes": {two63}}}"#),
            "more than libvirt can represent",
        ),
        (
            "POST",
            "/api/v1/vms".into(),
            format!(
                r#"{{"host": "demo-kvm1", "profile": "Linux", "name": "huge", "disks": [{{"pool": "default", "size_bytes": {two63}}}]}}"#
            ),
            "more than libvirt can represent",
        ),
        // 2^54 KiB is 2^64 bytes: wrapping arithmetic once said "memory 0 B".
        (
            "PATCH",
            format!("/api/v1/vms/{uuid}"),
            format!(r#"{{"memory_kib": {}}}"#, 1u64 << 54),
            "more than libvirt can represent",
        ),
        (
            "PATCH",
            format!("/api/v1/vms/{uuid}"),
            format!(r#"{{"memory_kib": {}}}"#, u64::MAX),
            "more than libvirt can represent",
        ),
    ];
    for (method, path, body, text) in cases {
        let (status, resp) = d.http(method, &path, Some(&body));
        assert_eq!(status, 400, "{method} {path} {body}: {resp}");
        let msg = resp["error"]["message"].as_str().unwrap();
        assert!(msg.contains(text), "{body}: {msg}");
        assert!(!msg.contains(" 0 B"), "{body}: {msg}");
    }
    assert_eq!(
        d.cli_json(&["vm", "show", "build-old"])["etag"],
        etag_before
    );
    assert_eq!(
        d.get("/api/v1/hosts/demo-kvm1/pools/default")["volumes"],
        vols_before
    );
    assert!(d.vms().iter().all(|v| v["name"] != "huge"));
}

#[test]
fn domain_type_changes_only_to_what_the_host_offers() {
    let (_dir, d) = odd_host();
    // A KVM definition on a host that offers neither kvm nor qemu (a test-driver host):
    // refused with what the host does offer. The real switch is tested on QEMU.
    let out = d.cli(&["vm", "set", "kvm-guest", "type=qemu"]);
    fails(out, "this host offers no qemu domains for hvm");
    fails(
        d.cli(&["vm", "set", "kvm-guest", "type=vmware"]),
        "expected qemu or kvm",
    );
    fails(
        d.cli(&["vm", "set", "numa", "type=kvm"]),
        "only QEMU/KVM VMs switch",
    );
    assert_eq!(d.vm("kvm-guest", "odd")["domain_type"], "kvm");
}

#[test]
fn next_boot_values_are_shown_next_to_the_live_ones() {
    let d = Daemon::start(&[demo_uri("demo-kvm1")]);
    let show = d.cli_json(&["vm", "show", "web-01"]);
    assert_eq!(show["state"], "running");
    assert_eq!(show["pending"], Value::Null, "{show}");
    let etag = show["etag"].as_str().unwrap().to_string();
    ok(
        d.cli(&["vm", "set", "web-01", "vcpus=4", "memory=3GiB", "--json"]),
        "set",
    );
    ok(
        d.cli(&["vm", "disk", "add", "web-01", "--cdrom", "--json"]),
        "cdrom for the next start",
    );
    let show = d.cli_json(&["vm", "show", "web-01"]);
    assert_eq!(show["vcpus"], 2, "live value stays: {show}");
    assert_eq!(show["pending"]["vcpus"], 4, "{show}");
    assert_eq!(show["pending"]["max_memory_kib"], 3 << 20, "{show}");
    assert!(show["pending"]["disks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["device"] == "cdrom"));
    assert!(show["pending"].get("nics").is_none(), "unchanged: {show}");
    // A change for the next start is a change: the old ETag no longer fits.
    assert_ne!(show["etag"], etag.as_str());
    let uuid = show["uuid"].as_str().unwrap().to_string();
    let (status, _) = http_with_header(
        &d,
        "PATCH",
        &format!("/api/v1/vms/{uuid}"),
        "{\"vcpus\": 1}",
        &etag,
    );
    assert_eq!(status, 409);
    let text = String::from_utf8_lossy(&d.cli(&["vm", "show", "web-01"]).stdout).into_owned();
    assert!(text.contains("vCPUs:       2 (next boot: 4)"), "{text}");
    assert!(text.contains("(next boot: 3 GiB, max 3 GiB)"), "{text}");
    // A display change for the next start shows the setting that changes.
    ok(
        d.cli(&["vm", "set", "web-01", "keymap=fr-ch", "--json"]),
        "keymap",
    );
    let text = String::from_utf8_lossy(&d.cli(&["vm", "show", "web-01"]).stdout).into_owned();
    let next = text
        .lines()
        .find(|l| l.trim_start().starts_with("(next boot: vnc"))
        .unwrap_or_else(|| panic!("no next-boot display line: {text}"));
    assert!(next.contains("keymap fr-ch"), "{next}");
    let text =
        String::from_utf8_lossy(&d.cli(&["vm", "disk", "list", "web-01"]).stdout).into_owned();
    assert!(
        text.lines().next().unwrap().ends_with("NEXT BOOT"),
        "{text}"
    );
    assert!(text.lines().last().unwrap().ends_with("added"), "{text}");
    let list = d.cli_json(&["vm", "disk", "list", "web-01"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.last().unwrap()["next_boot"], "added", "{list:?}");
    assert_eq!(list[0]["next_boot"], "unchanged", "{list:?}");
    // After a restart the stored values are the live ones.
    ok(d.cli(&["vm", "stop", "web-01", "--json"]), "stop");
    ok(d.cli(&["vm", "start", "web-01", "--json"]), "start");
    let show = d.cli_json(&["vm", "show", "web-01"]);
    assert_eq!(show["vcpus"], 4);
    assert_eq!(show["pending"], Value::Null, "{show}");
}
