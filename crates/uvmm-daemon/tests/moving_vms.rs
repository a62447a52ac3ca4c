//! Moving and copying VMs through uvmmd (migration, evacuation, failover, snapshots, rename): two real libvirtds (separate mount namespaces, distinct host
//! UUIDs, TCP between them) managed by one real uvmmd, tiny real QEMU (TCG) guests whose
//! serial console counts. Uses the two-host harness of uvmm-libvirt (`hosts.rs`).
//!
//! While a VM moves, a poller reads `GET /api/v1/vms` again and again: the VM must be on
//! exactly one host in every answer.

mod common;
#[path = "../../uvmm-libvirt/tests/support/hosts.rs"]
mod hosts;

use common::{ok, Daemon};
use hosts::{image_content, make_qcow2, read_image, write_marker, GuestSpec, SerialLog, TwoHosts};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn daemon(hosts: &TwoHosts) -> Daemon {
    let config = format!(
        "[migration]\npeer_uris = {{ \"{}\" = \"{}\", \"{}\" = \"{}\" }}\n",
        hosts.a.uri(),
        hosts.a.tcp_uri(),
        hosts.b.uri(),
        hosts.b.tcp_uri()
    );
    let d = Daemon::start_with(&[hosts.a.uri(), hosts.b.uri()], &[], &config);
    let list = d.get("/api/v1/hosts");
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|h| h["status"] == "connected"),
        "{list}\n{}",
        d.log()
    );
    d
}

/// Reads the VM list over and over until stopped; returns every answer that did not show
/// `name` on exactly one host, and how many answers it read.
struct ListWatch {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(Vec<Vec<String>>, usize)>,
}

impl ListWatch {
    fn start(socket: std::path::PathBuf, name: &str) -> ListWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, name) = (stop.clone(), name.to_string());
        let handle = std::thread::spawn(move || {
            let (mut bad, mut reads) = (Vec::new(), 0);
            while !s.load(Ordering::SeqCst) {
                let (_, text) = common::http_raw(&socket, "GET", "/api/v1/vms", None);
                let v: Value = serde_json::from_str(&text).unwrap_or_default();
                let on: Vec<String> = v["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|v| v["name"] == name.as_str())
                    .map(|v| v["host"].as_str().unwrap_or_default().to_string())
                    .collect();
                if on.len() != 1 {
                    bad.push(on);
                }
                reads += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (bad, reads)
        });
        ListWatch { stop, handle }
    }

    fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        let (bad, reads) = self.handle.join().unwrap();
        assert!(reads > 10, "the list was read only {reads} times");
        assert!(
            bad.is_empty(),
            "the VM was not on exactly one host: {bad:?}"
        );
    }
}

fn boot(hosts: &TwoHosts, spec: &GuestSpec) -> String {
    hosts.boot(&hosts.a, spec)
}

fn migrate_cli(d: &Daemon, name: &str, to: &str, extra: &[&str]) -> Value {
    let mut args = vec!["vm", "migrate", name, "--to", to];
    args.extend_from_slice(extra);
    args.push("--json");
    ok(d.cli(&args), &format!("migrate {name}"))
}

fn counts_on(log: &SerialLog, after: u64) {
    let t = log.wait_tick_after(Some(after), Duration::from_secs(30));
    assert!(t > after);
}

/// Live with shared storage and with copied storage, offline, refusals; the cache never
/// shows a moving VM twice or not at all; the backups follow the VM.
#[test]
fn live_and_offline_migration_through_uvmmd() {
    let hosts = TwoHosts::start("dmig");
    let d = daemon(&hosts);
    let (a_uri, b_uri) = (hosts.a.uri(), hosts.b.uri());

    // --- Live, shared storage (proven by the probe volume).
    let disk = hosts.shared.join("d-shared.qcow2");
    make_qcow2(&disk, "64M", "marker-d-shared");
    for h in [&hosts.a, &hosts.b] {
        h.virsh(&["pool-refresh", "shared"]);
    }
    let spec = GuestSpec::new("d-shared", hosts.serial_path("d-shared"))
        .disk(disk.to_str().unwrap(), "qcow2");
    let uuid = boot(&hosts, &spec);
    let log = SerialLog(spec.serial.clone());
    common::wait_for(Duration::from_secs(20), "uvmmd to list the guest", || {
        (d.listed_on("d-shared") == [a_uri.clone()]).then_some(())
    });
    let watch = ListWatch::start(d.socket.clone(), "d-shared");
    let r = migrate_cli(&d, "d-shared", &b_uri, &[]);
    watch.finish();
    eprintln!("shared: {r}");
    assert_eq!(r["live"], true);
    assert_eq!(
        (r["from"].as_str(), r["to"].as_str()),
        (Some(&*a_uri), Some(&*b_uri))
    );
    assert!(r["downtime_ms"].is_u64(), "{r}");
    assert_eq!(r["copied_disks"], json!([]));
    let before = log.last_tick().unwrap();
    counts_on(&log, before);
    assert_eq!(log.text().matches("booted").count(), 1, "no reboot");
    assert_eq!(hosts.b.domstate("d-shared").as_deref(), Some("running"));
    assert!(hosts.a.domstate("d-shared").is_none());
    assert_eq!(d.listed_on("d-shared"), std::slice::from_ref(&b_uri));
    // The history stays one history: the versions on A, then the move recorded on B.
    let backup = d.get(&format!("/api/v1/backups/{uuid}"));
    let versions = backup["versions"].as_array().unwrap();
    let last = versions.last().unwrap();
    assert_eq!(last["cause"], "migrate", "{backup}");
    assert_eq!(last["host"], b_uri.as_str());
    assert_eq!(r["backup_version"], last["version"]);
    assert!(
        versions.iter().any(|v| v["host"] == a_uri.as_str()),
        "{backup}"
    );
    assert!(
        versions.iter().all(|v| v["deleted"] == false),
        "a move is no deletion: {backup}"
    );
    hosts.b.virsh(&["destroy", "d-shared"]);

    // --- Live, copied storage: the disk is in A's local pool only.
    let local = hosts.a.local_images().join("d-copy.qcow2");
    make_qcow2(&local, "64M", "marker-d-copy");
    hosts.a.virsh(&["pool-refresh", "local"]);
    let spec = GuestSpec::new("d-copy", hosts.serial_path("d-copy"))
        .disk("/var/lib/libvirt/images/d-copy.qcow2", "qcow2");
    boot(&hosts, &spec);
    let log = SerialLog(spec.serial.clone());
    common::wait_for(Duration::from_secs(20), "uvmmd to list d-copy", || {
        (d.listed_on("d-copy") == [a_uri.clone()]).then_some(())
    });
    // Refused before anything moves: not every disk is shared.
    let out = d.cli(&[
        "vm",
        "migrate",
        "d-copy",
        "--to",
        &b_uri,
        "--no-copy-storage",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("storage"), "{err}");
    // Running: an offline move is refused.
    let (st, body) = d.http(
        "POST",
        &format!(
            "/api/v1/vms/{}/migrate",
            hosts.a.virsh(&["domuuid", "d-copy"]).trim()
        ),
        Some(&json!({"to": b_uri, "offline": true}).to_string()),
    );
    assert_eq!(st, 409, "{body}");
    let watch = ListWatch::start(d.socket.clone(), "d-copy");
    let r = migrate_cli(&d, "d-copy", &b_uri, &[]);
    watch.finish();
    eprintln!("copied: {r}");
    assert_eq!(r["copied_disks"], json!(["vda"]));
    let before = log.last_tick().unwrap();
    counts_on(&log, before);
    assert_eq!(log.text().matches("booted").count(), 1, "no reboot");
    assert!(hosts.b.local_images().join("d-copy.qcow2").exists());
    assert_eq!(d.listed_on("d-copy"), std::slice::from_ref(&b_uri));
    hosts.b.virsh(&["destroy", "d-copy"]);

    // --- Offline: a shut-off VM with a local disk moves with its disk.
    let local = hosts.a.local_images().join("d-off.qcow2");
    make_qcow2(&local, "64M", "marker-d-off");
    hosts.a.virsh(&["pool-refresh", "local"]);
    let spec = GuestSpec::new("d-off", hosts.serial_path("d-off"))
        .disk("/var/lib/libvirt/images/d-off.qcow2", "qcow2");
    hosts.define(&hosts.a, &spec);
    common::wait_for(Duration::from_secs(20), "uvmmd to list d-off", || {
        (d.listed_on("d-off") == [a_uri.clone()]).then_some(())
    });
    let r = migrate_cli(&d, "d-off", &b_uri, &["--offline"]);
    eprintln!("offline: {r}");
    assert_eq!(r["live"], false);
    assert_eq!(r["copied_disks"], json!(["vda"]));
    assert_eq!(r["source_volumes_kept"], json!(["local/d-off.qcow2"]));
    assert_eq!(hosts.b.domstate("d-off").as_deref(), Some("shut off"));
    assert!(hosts.a.domstate("d-off").is_none());
    assert_eq!(d.listed_on("d-off"), std::slice::from_ref(&b_uri));
    // It boots there, from the copied disk.
    ok(
        d.cli(&["vm", "start", "d-off", "--json"]),
        "start d-off on B",
    );
    let log = SerialLog(spec.serial.clone());
    log.wait_booted();
    assert!(
        log.disk_lines().iter().any(|l| l.contains("marker-d-off")),
        "{}",
        log.text()
    );
    hosts.b.virsh(&["destroy", "d-off"]);
}

fn task(d: &Daemon, id: &str) -> Value {
    d.get(&format!("/api/v1/tasks/{id}"))
}

fn start_slow(d: &Daemon, uuid: &str, to: &str) -> String {
    let (st, t) = d.http(
        "POST",
        &format!("/api/v1/vms/{uuid}/migrate?wait=false"),
        Some(&json!({"to": to, "bandwidth_mib_s": 1}).to_string()),
    );
    assert_eq!(st, 202, "{t}\n{}", d.log());
    assert_eq!(t["kind"], "vm_migrate");
    assert_eq!(t["cancel"], "abort");
    t["id"].as_str().unwrap().to_string()
}

/// Wait until the task reports more than 1 MiB sent; returns the task then.
fn wait_data(d: &Daemon, id: &str) -> Value {
    common::wait_for(Duration::from_secs(60), "migration data to flow", || {
        let t = task(d, id);
        assert_eq!(t["state"], "running", "{t}");
        (t["migration"]["data_processed"].as_u64().unwrap_or(0) > 1 << 20).then_some(t)
    })
}

fn wait_ended(d: &Daemon, id: &str) -> Value {
    common::wait_for(Duration::from_secs(60), "the task to end", || {
        let t = task(d, id);
        matches!(
            t["state"].as_str(),
            Some("cancelled" | "failed" | "succeeded")
        )
        .then_some(t)
    })
}

/// A guest that dirties memory, migrated at 1 MiB/s: cancelling the task aborts it, and
/// killing the target's libvirtd midway fails it; both times the guest runs on the source
/// and uvmm shows it there (and says so).
#[test]
fn cancel_and_target_death_leave_the_guest_on_the_source() {
    let mut hosts = TwoHosts::start("dabort");
    let d = daemon(&hosts);
    let (a_uri, b_uri) = (hosts.a.uri(), hosts.b.uri());
    let disk = hosts.shared.join("d-slow.qcow2");
    make_qcow2(&disk, "64M", "marker-d-slow");
    for h in [&hosts.a, &hosts.b] {
        h.virsh(&["pool-refresh", "shared"]);
    }
    let mut spec =
        GuestSpec::new("d-slow", hosts.serial_path("d-slow")).disk(disk.to_str().unwrap(), "qcow2");
    spec.dirty_mib = Some(24);
    let uuid = boot(&hosts, &spec);
    let log = SerialLog(spec.serial.clone());
    common::wait_for(Duration::from_secs(20), "uvmmd to list d-slow", || {
        (d.listed_on("d-slow") == [a_uri.clone()]).then_some(())
    });

    // --- Cancel once data flows.
    let watch = ListWatch::start(d.socket.clone(), "d-slow");
    let id = start_slow(&d, &uuid, &b_uri);
    let t = wait_data(&d, &id);
    eprintln!("before cancel: {}", t["migration"]);
    assert!(t["migration"]["data_total"].is_u64() && t["migration"]["data_remaining"].is_u64());
    assert_eq!(
        d.listed_on("d-slow"),
        std::slice::from_ref(&a_uri),
        "on the source while it moves"
    );
    let (st, _) = d.http("DELETE", &format!("/api/v1/tasks/{id}"), None);
    assert_eq!(st, 202);
    let t = wait_ended(&d, &id);
    assert_eq!(t["state"], "cancelled", "{t}");
    watch.finish();
    let after = log.last_tick().unwrap();
    counts_on(&log, after);
    assert_eq!(hosts.a.domstate("d-slow").as_deref(), Some("running"));
    assert!(!hosts.b.qemu_running("d-slow"));
    assert_eq!(d.listed_on("d-slow"), std::slice::from_ref(&a_uri));

    // --- The target's libvirtd dies midway.
    let id = start_slow(&d, &uuid, &b_uri);
    wait_data(&d, &id);
    hosts.b.kill_libvirtd();
    let t = wait_ended(&d, &id);
    eprintln!("target death: {t}");
    assert_eq!(t["state"], "failed");
    assert_eq!(t["error"]["code"], "migration_failed");
    let msg = t["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("on the source: running"),
        "uvmm says where it is: {msg}"
    );
    let after = log.last_tick().unwrap();
    counts_on(&log, after);
    assert_eq!(hosts.a.domstate("d-slow").as_deref(), Some("running"));
    assert_eq!(d.listed_on("d-slow"), std::slice::from_ref(&a_uri));
    // B comes back without the VM, and uvmmd still shows it once, on A.
    hosts.b.restart_libvirtd();
    common::wait_for(Duration::from_secs(90), "uvmmd to reconnect to B", || {
        let h = d.get("/api/v1/hosts");
        h.as_array()
            .unwrap()
            .iter()
            .all(|h| h["status"] == "connected")
            .then_some(())
    });
    assert_eq!(d.listed_on("d-slow"), std::slice::from_ref(&a_uri));
    hosts.a.virsh(&["destroy", "d-slow"]);
}

/// Three guests leave host A: two running (live), one shut off (offline); one of the
/// running ones has its disk on A's local storage (copied). The task's result lists each.
#[test]
fn evacuate_moves_three_guests_off_a_host() {
    let hosts = TwoHosts::start("devac");
    let d = daemon(&hosts);
    let (a_uri, b_uri) = (hosts.a.uri(), hosts.b.uri());
    let mut logs = Vec::new();
    for (name, shared, run) in [("e1", true, true), ("e2", false, true), ("e3", true, false)] {
        let path = if shared {
            let p = hosts.shared.join(format!("{name}.qcow2"));
            make_qcow2(&p, "64M", &format!("marker-{name}"));
            p.to_str().unwrap().to_string()
        } else {
            make_qcow2(
                &hosts.a.local_images().join(format!("{name}.qcow2")),
                "64M",
                &format!("marker-{name}"),
            );
            format!("/var/lib/libvirt/images/{name}.qcow2")
        };
        for h in [&hosts.a, &hosts.b] {
            h.virsh(&["pool-refresh", "shared"]);
        }
        hosts.a.virsh(&["pool-refresh", "local"]);
        let spec = GuestSpec::new(name, hosts.serial_path(name)).disk(&path, "qcow2");
        if run {
            boot(&hosts, &spec);
            logs.push(SerialLog(spec.serial.clone()));
        } else {
            hosts.define(&hosts.a, &spec);
        }
    }
    common::wait_for(Duration::from_secs(20), "uvmmd to list the guests", || {
        ["e1", "e2", "e3"]
            .iter()
            .all(|n| d.listed_on(n) == std::slice::from_ref(&a_uri))
            .then_some(())
    });
    let out = d.cli(&["host", "evacuate", &a_uri, "--max-parallel", "2", "--json"]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(
        out.status.success(),
        "{r}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("evacuate: {r}");
    assert_eq!(r["moved"], 3, "{r}");
    assert_eq!(
        (r["failed"].as_u64(), r["skipped"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(r["max_parallel"], 2);
    // One parent task, a child migration task per VM with its own progress.
    let tasks = d.get("/api/v1/tasks");
    let tasks = tasks.as_array().unwrap();
    let parent = tasks
        .iter()
        .find(|t| t["kind"] == "host_evacuate")
        .expect("the evacuation's task");
    assert_eq!(parent["state"], "succeeded", "{parent}");
    for v in r["vms"].as_array().unwrap() {
        assert_eq!(v["outcome"], "moved", "{v}");
        assert_eq!(v["to"], b_uri.as_str());
        assert_eq!(v["live"], v["name"] != "e3", "{v}");
        let child = tasks
            .iter()
            .find(|t| t["id"] == v["task"])
            .unwrap_or_else(|| panic!("the child task of {v}"));
        assert_eq!(
            (
                &child["kind"],
                &child["parent"],
                &child["state"],
                &child["uuid"]
            ),
            (
                &json!("vm_migrate"),
                &parent["id"],
                &json!("succeeded"),
                &v["uuid"]
            ),
            "{child}"
        );
        assert_eq!(child["result"]["to"], b_uri.as_str(), "{child}");
    }
    for n in ["e1", "e2", "e3"] {
        assert_eq!(d.listed_on(n), std::slice::from_ref(&b_uri), "{n}");
        assert!(hosts.a.domstate(n).is_none(), "{n} left A");
    }
    assert_eq!(hosts.b.domstate("e3").as_deref(), Some("shut off"));
    for log in &logs {
        let t = log.last_tick().unwrap();
        counts_on(log, t);
        assert_eq!(log.text().matches("booted").count(), 1, "no reboot");
    }
    for n in ["e1", "e2"] {
        hosts.b.virsh(&["destroy", n]);
    }
}

/// Host A dies with a guest whose disk is on shared storage: refused while A is
/// reachable and without force; with force the guest is defined on B from its backup,
/// listed there once, and boots from the same disk.
#[test]
fn failover_defines_the_guest_of_a_dead_host_on_the_other() {
    let mut hosts = TwoHosts::start("dfail");
    let d = daemon(&hosts);
    let (a_uri, b_uri) = (hosts.a.uri(), hosts.b.uri());
    let disk = hosts.shared.join("d-fail.qcow2");
    make_qcow2(&disk, "64M", "marker-d-fail");
    for h in [&hosts.a, &hosts.b] {
        h.virsh(&["pool-refresh", "shared"]);
    }
    let spec =
        GuestSpec::new("d-fail", hosts.serial_path("d-fail")).disk(disk.to_str().unwrap(), "qcow2");
    let uuid = boot(&hosts, &spec);
    common::wait_for(Duration::from_secs(20), "a backup of d-fail", || {
        let (st, b) = d.http("GET", &format!("/api/v1/backups/{uuid}"), None);
        (st == 200 && b["versions"].as_array().is_some_and(|v| !v.is_empty())).then_some(())
    });
    let failover = |force: bool| {
        d.http(
            "POST",
            &format!("/api/v1/vms/{uuid}/failover"),
            Some(&json!({"to": b_uri, "force": force}).to_string()),
        )
    };
    let (st, body) = failover(true);
    assert_eq!(st, 409, "refused while A is reachable: {body}");
    assert!(body.to_string().contains("reachable"), "{body}");

    hosts.a.crash();
    common::wait_for(Duration::from_secs(60), "uvmmd to see A down", || {
        d.get("/api/v1/hosts")
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["uri"] == a_uri.as_str() && h["status"] == "unavailable")
            .then_some(())
    });
    let out = d.cli(&["vm", "failover", "d-fail", "--to", &b_uri]);
    assert_eq!(out.status.code(), Some(1), "refused without --force");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("force"), "{err}");
    let r = migrate_or_fail(&d, &["vm", "failover", "d-fail", "--to", &b_uri, "--force"]);
    eprintln!("failover: {r}");
    assert_eq!(r["to"], b_uri.as_str());
    assert!(r["warnings"].to_string().contains("both"), "{r}");
    assert_eq!(d.listed_on("d-fail"), std::slice::from_ref(&b_uri));
    assert_eq!(hosts.b.domstate("d-fail").as_deref(), Some("shut off"));
    let backup = d.get(&format!("/api/v1/backups/{uuid}"));
    let last = backup["versions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["cause"].as_str(), last["host"].as_str()),
        (Some("migrate"), Some(&*b_uri)),
        "{backup}"
    );
    ok(d.cli(&["vm", "start", "d-fail", "--json"]), "start on B");
    let log = SerialLog(spec.serial.clone());
    common::wait_for(Duration::from_secs(60), "the guest to boot on B", || {
        (log.text().matches("booted").count() >= 2).then_some(())
    });
    hosts.b.virsh(&["destroy", "d-fail"]);
}

fn migrate_or_fail(d: &Daemon, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    ok(d.cli(&all), &format!("{args:?}"))
}

/// The disk path a host's libvirt has for `vda` of `name` (its stored definition).
fn vda(h: &hosts::TestHost, name: &str) -> std::path::PathBuf {
    let blk = h.virsh(&["domblklist", name, "--inactive"]);
    blk.split_whitespace()
        .find(|w| w.starts_with('/'))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("no disk in {blk}"))
}

/// Internal snapshot revert restores the disk as it was (a marker written after the
/// snapshot is gone); an external snapshot created and deleted keeps every byte of the
/// current state; a running VM's snapshot is a task with its memory; the tree and the
/// current point are listed; rename keeps the UUID and the backup history.
#[test]
fn snapshots_and_rename_through_uvmmd() {
    let hosts = TwoHosts::start("dsnap");
    let d = daemon(&hosts);
    let disk = hosts.shared.join("d-snap.qcow2");
    make_qcow2(&disk, "64M", "marker-d-snap");
    let spec =
        GuestSpec::new("d-snap", hosts.serial_path("d-snap")).disk(disk.to_str().unwrap(), "qcow2");
    let uuid = hosts.define(&hosts.a, &spec);
    common::wait_for(Duration::from_secs(20), "uvmmd to list d-snap", || {
        (d.listed_on("d-snap").len() == 1).then_some(())
    });

    // --- Internal, shut off: revert brings back the disk as it was.
    let s1 = ok(
        d.cli(&["snapshot", "create", "d-snap", "s1", "--json"]),
        "snapshot s1",
    );
    assert_eq!(
        (s1["kind"].as_str(), s1["current"].as_bool()),
        (Some("internal"), Some(true))
    );
    write_marker(&disk, "qcow2", 8192, "after-s1");
    assert_eq!(read_image(&disk, 8192, 8), b"after-s1");
    ok(
        d.cli(&["snapshot", "create", "d-snap", "s2", "--json"]),
        "s2",
    );
    let list = ok(d.cli(&["snapshot", "list", "d-snap", "--json"]), "list");
    let tree: Vec<(String, u64, bool)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["depth"].as_u64().unwrap(),
                s["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(tree, [("s1".into(), 0, false), ("s2".into(), 1, true)]);
    ok(
        d.cli(&["snapshot", "revert", "d-snap", "s1", "--json"]),
        "revert",
    );
    assert_eq!(
        read_image(&disk, 8192, 8),
        vec![0u8; 8],
        "the later write is gone"
    );
    assert_eq!(read_image(&disk, 0, 13), b"marker-d-snap");
    let list = ok(d.cli(&["snapshot", "list", "d-snap", "--json"]), "list");
    assert!(list[0]["current"].as_bool().unwrap(), "{list}");
    let ended = |kind: &str| {
        d.get("/api/v1/tasks")
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["kind"] == kind && t["uuid"] == uuid.as_str())
            .map(|t| {
                (
                    t["state"].as_str().unwrap().to_string(),
                    t["target"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ended("snapshot_revert"),
        [("succeeded".into(), json!("s1"))]
    );
    for s in ["s2", "s1"] {
        let r = ok(
            d.cli(&["snapshot", "delete", "d-snap", s, "--json"]),
            "delete",
        );
        assert_eq!(r["how"], "deleted");
    }

    // --- External, shut off: create, write into the overlay, delete: every byte stays.
    let e1 = ok(
        d.cli(&["snapshot", "create", "d-snap", "e1", "--external", "--json"]),
        "external",
    );
    assert_eq!(e1["kind"], "external");
    let overlay = vda(&hosts.a, "d-snap");
    assert_ne!(overlay, disk, "the VM uses an overlay now");
    write_marker(&overlay, "qcow2", 65536, "written-into-overlay");
    let current = image_content(&overlay);
    let r = ok(
        d.cli(&["snapshot", "delete", "d-snap", "e1", "--json"]),
        "merge",
    );
    assert_eq!(r["how"], "merged", "{r}");
    assert_eq!(vda(&hosts.a, "d-snap"), disk);
    assert_eq!(
        image_content(&disk),
        current,
        "every byte of the current state"
    );
    assert_eq!(ended("snapshot_delete").len(), 3, "every delete is a task");
    // Each snapshot taken is a version with its definition; each deletion is noted.
    let backup = d.get(&format!("/api/v1/backups/{uuid}"));
    let versions = backup["versions"].as_array().unwrap();
    let noted: Vec<(String, String)> = versions
        .iter()
        .filter(|v| v["snapshot"].is_object())
        .map(|v| {
            let s = &v["snapshot"];
            (
                s["name"].as_str().unwrap().into(),
                s["event"].as_str().unwrap().into(),
            )
        })
        .collect();
    let pairs = [
        ("s1", "created"),
        ("s2", "created"),
        ("s2", "deleted"),
        ("s1", "deleted"),
        ("e1", "created"),
        ("e1", "deleted"),
    ];
    assert_eq!(
        noted,
        pairs.map(|(n, e)| (n.to_string(), e.to_string())),
        "{backup}"
    );
    let e1_taken = versions
        .iter()
        .find(|v| v["snapshot"]["name"] == "e1" && v["snapshot"]["event"] == "created")
        .unwrap();
    let version = d.get(&format!(
        "/api/v1/backups/{uuid}/versions/{}",
        e1_taken["version"]
    ));
    let snap_xml = version["snapshot_xml"].as_str().unwrap_or_default();
    assert!(
        snap_xml.contains("<name>e1</name>") && snap_xml.contains("snapshot='external'"),
        "{version}"
    );
    // The version's domain definition is the one on the overlay.
    assert!(
        version["xml"]
            .as_str()
            .unwrap()
            .contains(overlay.to_str().unwrap()),
        "{version}"
    );

    // --- Running: an internal snapshot is a task and has the memory.
    ok(d.cli(&["vm", "start", "d-snap", "--json"]), "start");
    SerialLog(spec.serial.clone()).wait_booted();
    let r = ok(
        d.cli(&["snapshot", "create", "d-snap", "run1", "--json"]),
        "running snapshot",
    );
    assert_eq!(
        (r["memory"].as_bool(), r["state"].as_str()),
        (Some(true), Some("running"))
    );
    let tasks = d.get("/api/v1/tasks");
    assert!(
        tasks
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["kind"] == "snapshot_create" && t["state"] == "succeeded"),
        "{tasks}"
    );
    // Reverting the running guest to its snapshot with memory is a task (--no-wait) that
    // cannot be cancelled; it ends with the guest running.
    let t = ok(
        d.cli(&[
            "snapshot",
            "revert",
            "d-snap",
            "run1",
            "--no-wait",
            "--json",
        ]),
        "revert --no-wait",
    );
    assert_eq!(
        (t["kind"].as_str(), t["cancel"].as_str()),
        (Some("snapshot_revert"), Some("none")),
        "{t}"
    );
    let id = t["id"].as_str().unwrap();
    let (st, refused) = d.http("DELETE", &format!("/api/v1/tasks/{id}"), None);
    assert_eq!(st, 409, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot be cancelled"),
        "{refused}"
    );
    let t = wait_ended(&d, id);
    assert_eq!(t["state"], "succeeded", "{t}");
    assert_eq!(hosts.a.domstate("d-snap").as_deref(), Some("running"));
    // Rename is refused while it runs, and works once it is off.
    let out = d.cli(&["vm", "rename", "d-snap", "d-renamed"]);
    assert_eq!(out.status.code(), Some(1));
    ok(
        d.cli(&["snapshot", "delete", "d-snap", "run1", "--json"]),
        "delete run1",
    );
    ok(d.cli(&["vm", "stop", "d-snap", "--json"]), "stop");
    let r = ok(
        d.cli(&["vm", "rename", "d-snap", "d-renamed", "--json"]),
        "rename",
    );
    assert_eq!(r["vm"]["name"], "d-renamed");
    assert_eq!(r["vm"]["uuid"], uuid.as_str());
    assert_eq!(hosts.a.domstate("d-renamed").as_deref(), Some("shut off"));
    assert!(hosts.a.domstate("d-snap").is_none());
    assert_eq!(d.listed_on("d-renamed").len(), 1);
    let backup = d.get(&format!("/api/v1/backups/{uuid}"));
    let versions = backup["versions"].as_array().unwrap();
    assert_eq!(versions.last().unwrap()["name"], "d-renamed", "{backup}");
    assert!(
        versions.iter().any(|v| v["name"] == "d-snap"),
        "history kept"
    );
}

/// `vm disk add --live` attaches a drive to the running guest (`virsh domblklist` shows
/// it) and stores it; `vm disk remove --live` detaches it; a guest that never releases a
/// device (booted with `acpi=off`) gets a 409 that says so and keeps it.
#[test]
fn hot_plug_of_a_disk_through_uvmmd() {
    let hosts = TwoHosts::start("dhot");
    let d = daemon(&hosts);
    let boot_disk = hosts.shared.join("d-hot.qcow2");
    make_qcow2(&boot_disk, "64M", "marker-d-hot");
    let spare = hosts.shared.join("spare.qcow2");
    make_qcow2(&spare, "16M", "marker-spare");
    hosts.a.virsh(&["pool-refresh", "shared"]);
    let spec = GuestSpec::new("d-hot", hosts.serial_path("d-hot"))
        .disk(boot_disk.to_str().unwrap(), "qcow2");
    boot(&hosts, &spec);
    common::wait_for(Duration::from_secs(20), "uvmmd to list d-hot", || {
        (d.listed_on("d-hot").len() == 1).then_some(())
    });
    // `virsh domblklist|domiflist d-hot`, of the running guest or its stored definition.
    let devices = |list: &'static str, inactive: bool| {
        let mut args = vec![list, "d-hot"];
        if inactive {
            args.push("--inactive");
        }
        hosts.a.virsh(&args)
    };
    let blk = |inactive: bool| devices("domblklist", inactive);
    let r = ok(
        d.cli(&[
            "vm",
            "disk",
            "add",
            "d-hot",
            "--volume",
            "shared/spare.qcow2",
            "--live",
            "--json",
        ]),
        "hot-plug",
    );
    assert!(r["notes"].to_string().contains("attached"), "{r}");
    assert!(
        !r["warnings"].to_string().contains("next"),
        "no next-boot warning: {r}"
    );
    assert!(blk(false).contains("spare.qcow2"), "live: {}", blk(false));
    assert!(blk(true).contains("spare.qcow2"), "stored: {}", blk(true));
    ok(
        d.cli(&["vm", "disk", "remove", "d-hot", "vdb", "--live", "--json"]),
        "hot-unplug",
    );
    assert!(!blk(false).contains("spare.qcow2"), "{}", blk(false));
    assert!(!blk(true).contains("spare.qcow2"), "{}", blk(true));

    // A NIC on an isolated libvirt network (a bridge without IP, forward or DHCP: no
    // dnsmasq) attaches live and detaches again. The bridge is the machine's (the test
    // hosts share its network namespace): a name of this process's own.
    let bridge = format!("uvbr{}", std::process::id() % 1_000_000);
    let net_xml = hosts.shared.join("iso-hot.xml");
    std::fs::write(
        &net_xml,
        format!("<network><name>iso-hot</name><bridge name='{bridge}' stp='off'/></network>"),
    )
    .unwrap();
    hosts.a.virsh(&["net-define", net_xml.to_str().unwrap()]);
    hosts.a.virsh(&["net-start", "iso-hot"]);
    let mac = "52:54:00:16:00:01";
    let ifs = |inactive: bool| devices("domiflist", inactive);
    let r = ok(
        d.cli(&[
            "vm",
            "nic",
            "add",
            "d-hot",
            "network=iso-hot",
            "--mac",
            mac,
            "--live",
            "--json",
        ]),
        "nic hot-plug",
    );
    assert!(r["notes"].to_string().contains(mac), "{r}");
    let live = ifs(false);
    assert!(
        live.contains(mac) && live.contains("iso-hot"),
        "live: {live}"
    );
    assert!(ifs(true).contains(mac), "stored: {}", ifs(true));
    ok(
        d.cli(&["vm", "nic", "remove", "d-hot", mac, "--live", "--json"]),
        "nic hot-unplug",
    );
    assert!(!ifs(false).contains(mac), "{}", ifs(false));
    assert!(!ifs(true).contains(mac), "{}", ifs(true));
    hosts.a.virsh(&["destroy", "d-hot"]);
    // Removes the bridge again.
    hosts.a.virsh(&["net-destroy", "iso-hot"]);

    // A guest that does not release the device.
    let mut spec = GuestSpec::new("d-deaf", hosts.serial_path("d-deaf"))
        .disk(boot_disk.to_str().unwrap(), "qcow2");
    spec.extra_cmdline = "acpi=off".into();
    boot(&hosts, &spec);
    common::wait_for(Duration::from_secs(20), "uvmmd to list d-deaf", || {
        (d.listed_on("d-deaf").len() == 1).then_some(())
    });
    ok(
        d.cli(&[
            "vm",
            "disk",
            "add",
            "d-deaf",
            "--volume",
            "shared/spare.qcow2",
            "--live",
            "--json",
        ]),
        "hot-plug",
    );
    let out = d.cli(&["vm", "disk", "remove", "d-deaf", "vdb", "--live"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not release"), "{err}");
    let stored = hosts.a.virsh(&["domblklist", "d-deaf", "--inactive"]);
    assert!(
        stored.contains("spare.qcow2"),
        "the definition keeps it: {stored}"
    );
    hosts.a.virsh(&["destroy", "d-deaf"]);
}

/// `vm clone` as a full copy and as a linked clone: new UUID, new MAC, own disk; both
/// boot from their disk with the source's content.
#[test]
fn clone_copy_and_linked_both_boot() {
    let hosts = TwoHosts::start("dclone");
    let d = daemon(&hosts);
    let disk = hosts.shared.join("d-src.qcow2");
    make_qcow2(&disk, "64M", "marker-d-src");
    hosts.a.virsh(&["pool-refresh", "shared"]);
    let mut spec =
        GuestSpec::new("d-src", hosts.serial_path("d-src")).disk(disk.to_str().unwrap(), "qcow2");
    spec.extra_devices =
        "<interface type='user'><mac address='52:54:00:aa:00:01'/><model type='virtio'/></interface>"
            .into();
    let src_uuid = hosts.define(&hosts.a, &spec);
    common::wait_for(Duration::from_secs(20), "uvmmd to list d-src", || {
        (d.listed_on("d-src").len() == 1).then_some(())
    });
    // The clones write to the source's serial file (the definition is copied): booted
    // lines are counted.
    let log = SerialLog(spec.serial.clone());
    let kinds = [("d-copy1", &[][..]), ("d-link1", &["--linked"][..])];
    for (done, (name, extra)) in kinds.into_iter().enumerate() {
        let boots = done + 1;
        let mut args = vec!["vm", "clone", "d-src", "--name", name];
        args.extend_from_slice(extra);
        args.push("--json");
        let r = ok(d.cli(&args), name);
        eprintln!("{name}: {}", r["notes"]);
        let uuid = r["vm"]["uuid"].as_str().unwrap().to_string();
        assert_ne!(uuid, src_uuid);
        let image = hosts.shared.join(format!("{name}-vda.qcow2"));
        assert!(image.exists(), "{}", image.display());
        let info = String::from_utf8(
            std::process::Command::new("qemu-img")
                .args(["info", image.to_str().unwrap()])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        assert_eq!(
            info.contains("backing file"),
            name == "d-link1",
            "linked clones only have a backing file: {info}"
        );
        let ifaces = hosts.a.virsh(&["domiflist", name, "--inactive"]);
        assert!(!ifaces.contains("52:54:00:aa:00:01"), "a new MAC: {ifaces}");
        assert!(ifaces.contains("52:54:00"), "{ifaces}");
        ok(d.cli(&["vm", "start", name, "--json"]), "start clone");
        // The guest prints "booted", then its disks' first bytes.
        common::wait_for(
            Duration::from_secs(60),
            "the clone to boot from its disk",
            || {
                let from_disk = log
                    .disk_lines()
                    .iter()
                    .filter(|l| l.contains("marker-d-src"))
                    .count();
                (from_disk >= boots).then_some(())
            },
        );
        hosts.a.virsh(&["destroy", name]);
    }
    clone_to_other_host(&hosts, &d);
    // A running source is refused.
    ok(d.cli(&["vm", "start", "d-src", "--json"]), "start source");
    let out = d.cli(&["vm", "clone", "d-src", "--name", "d-copy2"]);
    assert_eq!(out.status.code(), Some(1));
    hosts.a.virsh(&["destroy", "d-src"]);
}

/// `vm clone --to`: a VM whose disk is in A's local pool cloned to B. The clone is made on
/// A, moved offline with its disk and its image on A deleted: afterwards it is defined on
/// B only and boots there, and the source VM (definition and image) is as it was. A linked
/// clone to another host is refused with nothing created.
fn clone_to_other_host(hosts: &TwoHosts, d: &Daemon) {
    let (a_uri, b_uri) = (hosts.a.uri(), hosts.b.uri());
    let disk = hosts.a.local_images().join("d-lsrc.qcow2");
    make_qcow2(&disk, "64M", "marker-d-lsrc");
    hosts.a.virsh(&["pool-refresh", "local"]);
    let spec = GuestSpec::new("d-lsrc", hosts.serial_path("d-lsrc"))
        .disk("/var/lib/libvirt/images/d-lsrc.qcow2", "qcow2");
    hosts.define(&hosts.a, &spec);
    common::wait_for(Duration::from_secs(20), "uvmmd to list d-lsrc", || {
        (d.listed_on("d-lsrc") == [a_uri.clone()]).then_some(())
    });
    let src_xml = hosts.a.virsh(&["dumpxml", "d-lsrc", "--inactive"]);
    let src_image = std::fs::read(&disk).unwrap();
    let image_on =
        |h: &hosts::TestHost, name: &str| h.local_images().join(format!("{name}-vda.qcow2"));

    // Linked to another host: refused before anything is made.
    let out = d.cli(&[
        "vm", "clone", "d-lsrc", "--name", "d-flink", "--mode", "linked", "--to", &b_uri,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("linked clone"), "{err}");
    assert!(hosts.a.domstate("d-flink").is_none() && hosts.b.domstate("d-flink").is_none());
    assert!(!image_on(&hosts.a, "d-flink").exists() && !image_on(&hosts.b, "d-flink").exists());

    let r = ok(
        d.cli(&[
            "vm", "clone", "d-lsrc", "--name", "d-far", "--to", &b_uri, "--json",
        ]),
        "clone to B",
    );
    eprintln!("clone to B: {}", r["notes"]);
    assert_eq!(r["vm"]["name"], "d-far", "{r}");
    assert!(hosts.a.domstate("d-far").is_none(), "not left on A");
    assert_eq!(hosts.b.domstate("d-far").as_deref(), Some("shut off"));
    assert_eq!(d.listed_on("d-far"), std::slice::from_ref(&b_uri));
    assert!(
        !image_on(&hosts.a, "d-far").exists(),
        "no leftover image on A"
    );
    assert!(image_on(&hosts.b, "d-far").exists());
    assert_eq!(hosts.a.virsh(&["dumpxml", "d-lsrc", "--inactive"]), src_xml);
    assert!(
        std::fs::read(&disk).unwrap() == src_image,
        "the source's image changed"
    );
    assert_eq!(d.listed_on("d-lsrc"), std::slice::from_ref(&a_uri));
    let log = SerialLog(spec.serial.clone());
    ok(
        d.cli(&["vm", "start", "d-far", "--json"]),
        "start clone on B",
    );
    common::wait_for(Duration::from_secs(60), "the clone to boot on B", || {
        log.disk_lines()
            .iter()
            .any(|l| l.contains("marker-d-lsrc"))
            .then_some(())
    });
    hosts.b.virsh(&["destroy", "d-far"]);
}
