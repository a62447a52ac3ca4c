//! Storage pools and sparse volumes, pool monitoring, /metrics and check_uvmm: on
//! test-driver hosts, and on a real libvirtd with a dir pool on a small tmpfs (so the
//! thresholds are crossed by writing real data, not by filling a disk) and an iSCSI target
//! served by tgt on 127.0.0.1.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const MIB: u64 = 1 << 20;

#[test]
fn pools_and_volumes_on_test_driver_hosts() {
    let d = Daemon::start(&[demo_uri("demo-kvm1"), demo_uri("demo-xen1")]);
    let pools = d.cli_json(&["pool", "list"]);
    assert_eq!(pools.as_array().unwrap().len(), 4);
    let default = d.cli_json(&["pool", "show", "default", "--host", "demo-kvm1"]);
    assert_eq!(default["kind"], "dir");
    assert_eq!(
        default["provisioned"],
        5 * 20 * 1024 * MIB,
        "sum of the volume capacities"
    );
    let web = default["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "web-01.qcow2")
        .unwrap()
        .clone();
    assert_eq!(web["used_by"], serde_json::json!(["web-01@demo-kvm1"]));
    assert_eq!(web["deletable"], false);
    // Ambiguous pool name without --host.
    fails(d.cli(&["pool", "show", "iso"]), "choose one with --host");

    // Volumes: sparse by default, preallocated on request, clone, delete.
    let v = d.cli_json(&[
        "volume",
        "create",
        "default",
        "data.img",
        "10GiB",
        "--host",
        "demo-kvm1",
    ]);
    assert_eq!(
        (v["capacity"].as_u64(), v["allocation"].as_u64()),
        (Some(10 << 30), Some(0)),
        "{v}"
    );
    let v = d.cli_json(&[
        "volume",
        "create",
        "default",
        "full.img",
        "1GiB",
        "--host",
        "demo-kvm1",
        "--preallocate",
    ]);
    assert_eq!(v["allocation"].as_u64(), Some(1 << 30), "{v}");
    // The format follows the name unless given: a .qcow2 volume is qcow2, and a raw one
    // named .qcow2 is refused before anything is made.
    let v = d.cli_json(&[
        "volume",
        "create",
        "default",
        "named.qcow2",
        "1GiB",
        "--host",
        "demo-kvm1",
    ]);
    assert_eq!(v["format"], "qcow2", "{v}");
    fails(
        d.cli(&[
            "volume",
            "create",
            "default",
            "liar.qcow2",
            "1GiB",
            "--host",
            "demo-kvm1",
            "--format",
            "raw",
        ]),
        "raw image with a .qcow2 name",
    );
    // Every host has a pool called default: the table says whose each volume is.
    let out = d.cli(&["volume", "list", "default"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(table.starts_with("HOST"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("demo-kvm1") && l.contains("named.qcow2")),
        "{table}"
    );
    assert!(!table.contains("liar.qcow2"), "{table}");
    let v = d.cli_json(&[
        "volume",
        "clone",
        "default",
        "data.img",
        "copy.img",
        "--host",
        "demo-kvm1",
    ]);
    assert_eq!(v["capacity"].as_u64(), Some(10 << 30));
    ok(
        d.cli(&[
            "volume",
            "delete",
            "default",
            "copy.img",
            "--host",
            "demo-kvm1",
            "--json",
        ]),
        "delete unused",
    );
    // In use, or refused by the rules: clear 409s, nothing changed.
    fails(
        d.cli(&[
            "volume",
            "delete",
            "default",
            "web-01.qcow2",
            "--host",
            "demo-kvm1",
        ]),
        "used by web-01@demo-kvm1",
    );
    fails(
        d.cli(&["pool", "delete", "default", "--host", "demo-kvm1"]),
        "in use by",
    );
    fails(
        d.cli(&[
            "volume",
            "create",
            "default",
            "data.img",
            "1GiB",
            "--host",
            "demo-kvm1",
        ]),
        "already exists",
    );
    fails(
        d.cli(&[
            "volume",
            "resize",
            "default",
            "data.img",
            "20GiB",
            "--host",
            "demo-kvm1",
        ]),
        "not supported",
    );
    for (name, text) in [
        ("a/b", "invalid volume name"),
        ("..", "invalid volume name"),
        (".hidden", "invalid volume name"),
        ("bell\u{7}", "invalid volume name"),
    ] {
        fails(
            d.cli(&[
                "volume",
                "create",
                "default",
                name,
                "1GiB",
                "--host",
                "demo-kvm1",
            ]),
            text,
        );
    }
    let out = d.cli(&[
        "volume",
        "create",
        "default",
        "zero.img",
        "0",
        "--host",
        "demo-kvm1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let out = d.cli(&[
        "volume",
        "create",
        "default",
        "huge.img",
        "99999999PiB",
        "--host",
        "demo-kvm1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unparseable size is a usage error"
    );
    let vols = d.cli_json(&["volume", "list", "--host", "demo-kvm1", "--pool", "default"]);
    let names: Vec<&str> = vols
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"data.img") && names.contains(&"full.img") && !names.contains(&"copy.img"),
        "{names:?}"
    );
    // The pool may also be named like `volume create POOL`: same answer.
    assert_eq!(
        d.cli_json(&["volume", "list", "default", "--host", "demo-kvm1"]),
        vols
    );

    // Pools: create (dir), stop, start, refresh, delete; bad definitions refused.
    let p = d.cli_json(&[
        "pool",
        "create",
        "scratch",
        "--host",
        "demo-kvm1",
        "--type",
        "dir",
        "--target",
        "/srv/scratch",
    ]);
    assert_eq!(
        (p["active"].as_bool(), p["autostart"].as_bool()),
        (Some(true), Some(true)),
        "{p}"
    );
    let p = d.cli_json(&["pool", "stop", "scratch", "--host", "demo-kvm1"]);
    assert_eq!(p["active"], false);
    // Stopped although marked autostart: a fault for the UI, /metrics and the plugin.
    assert_eq!(p["level"], "warning", "{p}");
    assert!(
        p["alerts"]
            .to_string()
            .contains("stopped although marked autostart"),
        "{p}"
    );
    let (code, out) = check_uvmm(&d, &["pools", "-H", "demo-kvm1", "-P", "scratch"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("demo-kvm1/scratch WARNING: stopped"), "{out}");
    ok(
        d.cli(&["pool", "start", "scratch", "--host", "demo-kvm1", "--json"]),
        "start",
    );
    ok(
        d.cli(&[
            "pool",
            "refresh",
            "scratch",
            "--host",
            "demo-kvm1",
            "--json",
        ]),
        "refresh",
    );
    ok(
        d.cli(&["pool", "delete", "scratch", "--host", "demo-kvm1", "--json"]),
        "delete",
    );
    assert!(d
        .cli_json(&["pool", "list", "--host", "demo-kvm1"])
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["name"] != "scratch"));
    // Bad definitions are refused and create nothing.
    let pools_before = d
        .cli_json(&["pool", "list", "--host", "demo-kvm1"])
        .as_array()
        .unwrap()
        .len();
    for (name, rest, error) in [
        ("x", &["--type", "dir"][..], "needs target_path (--target)"),
        (
            "x",
            &["--type", "netfs", "--target", "/mnt/x"][..],
            "needs source_host (--source-host)",
        ),
        (
            "default",
            &["--type", "dir", "--target", "/x"][..],
            "already exists",
        ),
        (
            "../x",
            &["--type", "dir", "--target", "/x"][..],
            "invalid pool name",
        ),
        // The iso pool's directory: libvirt's "operation failed" became a 502 once.
        (
            "iso2",
            &[
                "--type",
                "dir",
                "--target",
                "/var/lib/uvmm-demo/demo-kvm1/iso/",
            ][..],
            "storage pool 'iso' already uses",
        ),
    ] {
        let mut args = vec!["pool", "create", name, "--host", "demo-kvm1"];
        args.extend_from_slice(rest);
        fails(d.cli(&args), error);
    }
    assert_eq!(
        d.cli_json(&["pool", "list", "--host", "demo-kvm1"])
            .as_array()
            .unwrap()
            .len(),
        pools_before
    );
}

/// A tmpfs of a fixed size, so a pool's capacity is small and known.
/// tgtd (Debian tgt) serving one 64 MiB LUN on 127.0.0.1:PORT.
struct Tgt {
    child: std::process::Child,
    control: String,
}

impl Tgt {
    fn start(dir: &Path, port: u16, iqn: &str) -> Tgt {
        let control = (port % 1000).to_string();
        let child = Command::new("tgtd")
            .args([
                "-f",
                "-C",
                &control,
                "--iscsi",
                &format!("portal=127.0.0.1:{port}"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("tgtd.log")).unwrap())
            .spawn()
            .expect("tgtd (Debian tgt) must be installed by the test command");
        let t = Tgt { child, control };
        let lun = dir.join("lun.img");
        std::fs::File::create(&lun)
            .unwrap()
            .set_len(64 * MIB)
            .unwrap();
        let adm = |args: &[&str]| {
            wait_for(Duration::from_secs(10), "tgtadm", || {
                Command::new("tgtadm")
                    .args(["-C", &t.control, "--lld", "iscsi"])
                    .args(args)
                    .status()
                    .ok()
                    .filter(|s| s.success())
            });
        };
        adm(&["--op", "new", "--mode", "target", "--tid", "1", "-T", iqn]);
        adm(&[
            "--op",
            "new",
            "--mode",
            "logicalunit",
            "--tid",
            "1",
            "--lun",
            "1",
            "-b",
            lun.to_str().unwrap(),
        ]);
        adm(&[
            "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL",
        ]);
        t
    }
}

impl Drop for Tgt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `text` names a libvirt API function (`virStorageVolResize`).
fn names_libvirt_function(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| {
        w.strip_prefix("vir")
            .and_then(|r| r.chars().next())
            .is_some_and(|c| c.is_ascii_uppercase())
    })
}

/// The test driver lacks volume resizing: the answer says so in words (what, which host,
/// what kind of host), without libvirt's function name, and nothing changes.
#[test]
fn an_operation_the_host_lacks_is_said_in_words_without_libvirt_function_names() {
    let d = Daemon::start(&[demo_uri("demo-kvm1")]);
    let capacity = || {
        d.get("/api/v1/hosts/demo-kvm1/pools/default")["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "web-01.qcow2")
            .map(|v| v["capacity"].clone())
            .unwrap()
    };
    let before = capacity();
    let (status, body) = d.http(
        "POST",
        "/api/v1/hosts/demo-kvm1/pools/default/volumes/web-01.qcow2/resize",
        Some(r#"{"size_bytes": 107374182400}"#),
    );
    assert_eq!(status, 501, "{body}");
    assert_eq!(body["error"]["code"], "not_supported", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert_eq!(
        message,
        "resizing a volume is not supported on host demo-kvm1 (libvirt's test driver)"
    );
    assert!(!names_libvirt_function(&body.to_string()), "{body}");
    assert_eq!(capacity(), before, "nothing changed");
    // The CLI shows the same words; libvirt's own text is in the daemon log only.
    let out = d.cli(&["volume", "resize", "default", "web-01.qcow2", "100GiB"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("resizing a volume is not supported"), "{err}");
    assert!(!names_libvirt_function(&err), "{err}");
    assert!(
        d.log().contains("virStorageVolResize"),
        "libvirt's text is logged"
    );
}

fn write_data(path: &Path, offset: u64, mib: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let chunk = vec![0xABu8; usize::try_from(MIB).unwrap()];
    for _ in 0..mib {
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
}

fn check_uvmm(d: &Daemon, args: &[&str]) -> (i32, String) {
    let out = Command::new(check_uvmm_bin())
        .args(args)
        .env("UVMM_SOCKET", &d.socket)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn real_dir_pool_sparse_volumes_thresholds_metrics_and_iscsi() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    // Mounted before libvirtd starts: its private mount namespace copies the mount.
    let _tmpfs = Tmpfs::mount(&small, 64);
    let lv = SystemLibvirtd::start(&dir.path().join("libvirt"));
    let uri = lv.uri();
    let config = "[monitoring]\npool_interval_secs = 1\nwarning = [\"50%\"]\ncritical = [\"75%\"]\novercommit_warning = 2.0\n";
    let d = Daemon::start_with(std::slice::from_ref(&uri), &[], config);
    let events = d.events();

    let p = d.cli_json(&[
        "pool",
        "create",
        "small",
        "--host",
        "localhost",
        "--type",
        "dir",
        "--target",
        small.to_str().unwrap(),
    ]);
    assert_eq!(p["active"], true, "{p}");
    assert_eq!(
        p["capacity"].as_u64(),
        Some(64 * MIB),
        "the tmpfs is the pool: {p}"
    );

    // A sparse volume takes (almost) no space until data is written into it.
    let v = d.cli_json(&[
        "volume",
        "create",
        "small",
        "disk1.img",
        "40MiB",
        "--host",
        "localhost",
    ]);
    assert!(v["allocation"].as_u64().unwrap() < MIB, "sparse: {v}");
    let pools_check = [
        "pools",
        "-H",
        "localhost",
        "-P",
        "small",
        "-w",
        "50%",
        "-c",
        "75%",
    ];
    let (code, out) = check_uvmm(&d, &pools_check);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("UVMM POOLS OK - ") && out.contains("'localhost/small'="),
        "{out}"
    );

    write_data(&small.join("disk1.img"), 0, 36);
    ok(
        d.cli(&["pool", "refresh", "small", "--host", "localhost", "--json"]),
        "refresh",
    );
    let shown = d.cli_json(&["pool", "show", "small", "--host", "localhost"]);
    let alloc = shown["volumes"][0]["allocation"].as_u64().unwrap();
    assert!(
        alloc >= 36 * MIB,
        "the volume grew with the data written: {alloc}"
    );
    let (code, out) = check_uvmm(&d, &pools_check);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("WARNING") && out.contains("% used"), "{out}");
    // Without thresholds of its own the plugin takes uvmmd's ([monitoring]: 50 %, 75 %).
    let daemon_check = ["pools", "-H", "localhost", "-P", "small"];
    let (code, out) = check_uvmm(&d, &daemon_check);
    assert_eq!(code, 1, "uvmmd's thresholds: {out}");
    assert!(out.contains("threshold 50%"), "{out}");
    events.expect("pool_alert warning", Duration::from_secs(10), |e| {
        e["kind"] == "pool_alert" && e["pool"] == "small" && e["level"] == "warning"
    });

    ok(
        d.cli(&[
            "volume",
            "create",
            "small",
            "disk2.img",
            "40MiB",
            "--host",
            "localhost",
            "--json",
        ]),
        "disk2",
    );
    write_data(&small.join("disk2.img"), 0, 16);
    ok(
        d.cli(&["pool", "refresh", "small", "--host", "localhost", "--json"]),
        "refresh",
    );
    let (code, out) = check_uvmm(&d, &pools_check);
    assert_eq!(code, 2, "{out}");
    let (code, out) = check_uvmm(&d, &daemon_check);
    assert_eq!(code, 2, "uvmmd's thresholds: {out}");
    events.expect("pool_alert critical", Duration::from_secs(10), |e| {
        e["kind"] == "pool_alert" && e["pool"] == "small" && e["level"] == "critical"
    });
    // The same answer straight from libvirt.
    let (code, out) = check_uvmm(
        &d,
        &[
            "pools", "--direct", &uri, "-P", "small", "-w", "50%", "-c", "75%",
        ],
    );
    assert_eq!(code, 2, "{out}");
    // Overcommitment: 80 MiB of volumes on 64 MiB.
    let (code, out) = check_uvmm(
        &d,
        &[
            "pools",
            "-H",
            "localhost",
            "-P",
            "small",
            "--overcommit-warn",
            "1.2",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("overcommitted 1.25x"), "{out}");
    // Absolute free-space thresholds: 12 MiB free is below 20 MiB.
    let (code, out) = check_uvmm(
        &d,
        &[
            "pools",
            "-H",
            "localhost",
            "-P",
            "small",
            "-w",
            "20MiB:",
            "-c",
            "4MiB:",
        ],
    );
    assert_eq!(code, 1, "{out}");

    // /metrics passes promtool and has the pool's figures.
    let (status, metrics) = http_raw(&d.socket, "GET", "/metrics", None);
    assert_eq!(status, 200);
    assert!(
        metrics.contains("uvmm_pool_allocation_bytes{host=\"localhost\",pool=\"small\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("uvmm_pool_alert_level{host=\"localhost\",pool=\"small\"} 2"));
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian prometheus) must be installed by the test command");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Volumes in use are kept; clone and grow work on a real dir pool.
    ok(
        d.cli(&[
            "vm",
            "create",
            "--host",
            "localhost",
            "--profile",
            "Linux",
            "--name",
            "st-a",
            "--type",
            "qemu",
            "--no-disk",
            "--no-network",
            "--memory",
            "128MiB",
            "--json",
        ]),
        "vm",
    );
    ok(
        d.cli(&[
            "vm",
            "disk",
            "add",
            "st-a",
            "--volume",
            "small/disk1.img",
            "--json",
        ]),
        "attach",
    );
    fails(
        d.cli(&[
            "volume",
            "delete",
            "small",
            "disk1.img",
            "--host",
            "localhost",
        ]),
        "used by st-a@localhost",
    );
    fails(
        d.cli(&["pool", "delete", "small", "--host", "localhost"]),
        "in use by st-a@localhost",
    );
    ok(d.cli(&["vm", "delete", "st-a", "--json"]), "delete vm");
    ok(
        d.cli(&[
            "volume",
            "delete",
            "small",
            "disk1.img",
            "--host",
            "localhost",
            "--json",
        ]),
        "now deletable",
    );
    assert!(!small.join("disk1.img").exists());
    let c = d.cli_json(&[
        "volume",
        "clone",
        "small",
        "disk2.img",
        "disk3.img",
        "--host",
        "localhost",
    ]);
    assert_eq!(c["capacity"].as_u64(), Some(40 * MIB));
    let r = d.cli_json(&[
        "volume",
        "resize",
        "small",
        "disk3.img",
        "48MiB",
        "--host",
        "localhost",
    ]);
    assert_eq!(r["capacity"].as_u64(), Some(48 * MIB), "{r}");
    fails(
        d.cli(&[
            "volume",
            "resize",
            "small",
            "disk3.img",
            "8MiB",
            "--host",
            "localhost",
        ]),
        "only grow",
    );

    // iSCSI: a real target (tgt) on 127.0.0.1, read by libvirt's iscsi-direct pool
    // (libiscsi in libvirtd; no kernel initiator needed).
    let iqn = "iqn.2026-11.de.univention.uvmm:test";
    let port = 3260 + (std::process::id() % 500) as u16 + 1;
    let _tgt = Tgt::start(dir.path(), port, iqn);
    let p = d.cli_json(&[
        "pool",
        "create",
        "iscsi1",
        "--host",
        "localhost",
        "--type",
        "iscsi-direct",
        "--source-host",
        &format!("127.0.0.1:{port}"),
        "--source-name",
        iqn,
        "--initiator",
        "iqn.2026-11.de.univention.uvmm:initiator",
        "--no-build",
    ]);
    assert_eq!(p["active"], true, "{p}");
    // tgt reports the LUN one 512-byte sector short of the backing file.
    assert!(p["capacity"].as_u64().unwrap() > 63 * MIB, "{p}");
    let lun = p["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["capacity"].as_u64().unwrap_or(0) > 63 * MIB)
        .cloned();
    assert!(lun.is_some(), "the LUN is a volume: {p}");
    // LUNs belong to the storage system: uvmm does not delete them.
    let name = lun.unwrap()["name"].as_str().unwrap().to_string();
    fails(
        d.cli(&["volume", "delete", "iscsi1", &name, "--host", "localhost"]),
        "iscsi-direct",
    );
    ok(
        d.cli(&["pool", "delete", "iscsi1", "--host", "localhost", "--json"]),
        "remove iscsi pool",
    );
}

/// Volumes a VM change makes or deletes (create, add drive, detach with delete, delete
/// with images) are in the pool's listing and figures at once, not after the next pool
/// round (a minute later): the web UI's drive sizes and delete dialog read them there.
#[test]
fn volumes_made_and_deleted_by_vm_changes_show_in_the_pool_at_once() {
    let d = Daemon::start(&[demo_uri("demo-kvm2")]);
    let volumes = || -> Vec<String> {
        d.get("/api/v1/hosts/demo-kvm2/pools/default")["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect()
    };
    let provisioned = || d.get("/api/v1/hosts/demo-kvm2/pools/default")["provisioned"].as_u64();
    let before = provisioned().unwrap();
    let (status, created) = d.http(
        "POST",
        "/api/v1/vms",
        Some(
            r#"{"host":"demo-kvm2","profile":"Linux","name":"poolsync","memory_kib":65536,
                "disks":[{"pool":"default","size_bytes":1073741824,"format":"qcow2"}],"networks":[]}"#,
        ),
    );
    assert_eq!(status, 201, "{created}");
    let uuid = created["vm"]["uuid"].as_str().unwrap().to_string();
    assert!(
        volumes().contains(&"poolsync.qcow2".to_string()),
        "{:?}",
        volumes()
    );
    assert_eq!(provisioned(), Some(before + (1 << 30)));
    let (status, added) = d.http(
        "POST",
        &format!("/api/v1/vms/{uuid}/disks"),
        Some(r#"{"source":{"kind":"new","pool":"default","size_bytes":1073741824,"name":"poolsync-b.qcow2"}}"#),
    );
    assert_eq!(status, 200, "{added}");
    assert!(volumes().contains(&"poolsync-b.qcow2".to_string()));
    let (status, out) = d.http(
        "DELETE",
        &format!("/api/v1/vms/{uuid}/disks/vdb?delete_volume=true"),
        None,
    );
    assert_eq!(status, 200, "{out}");
    assert!(!volumes().contains(&"poolsync-b.qcow2".to_string()));
    let (status, out) = d.http("DELETE", &format!("/api/v1/vms/{uuid}?volumes=all"), None);
    assert_eq!(status, 200, "{out}");
    assert!(!volumes().contains(&"poolsync.qcow2".to_string()));
    assert_eq!(provisioned(), Some(before));
}

#[test]
fn a_volume_a_running_vm_gets_at_its_next_start_is_in_use() {
    let d = Daemon::start(&[demo_uri("demo-kvm1")]);
    // web-02 is running: the new drive is stored for its next start only.
    ok(
        d.cli(&[
            "vm",
            "disk",
            "add",
            "web-02",
            "pool=default,size=1GiB",
            "--json",
        ]),
        "disk add",
    );
    let vol = "web-02-vdb.qcow2";
    let pool = d.get("/api/v1/hosts/demo-kvm1/pools/default");
    let row = pool["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == vol)
        .unwrap_or_else(|| panic!("no {vol} in {pool}"))
        .clone();
    assert_eq!(
        row["used_by"],
        serde_json::json!(["web-02@demo-kvm1"]),
        "{row}"
    );
    fails(
        d.cli(&["volume", "delete", "default", vol, "--host", "demo-kvm1"]),
        "used by web-02@demo-kvm1",
    );
    let pool = d.get("/api/v1/hosts/demo-kvm1/pools/default");
    assert!(pool["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["name"] == vol));
}
