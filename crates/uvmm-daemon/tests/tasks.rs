//! Tasks against a real libvirtd (the QEMU driver, a dir pool on a tmpfs, a TCG guest):
//! a clone of 1.5 GiB of real data runs as a task while the same host starts and lists
//! a VM; a cancelled clone is deleted; `vm suspend` (a managed save) follows its task;
//! `uvmm task` shows and waits.
//!
//! Whether the host's worker is free is shown by ordering, not by timing: `vm start` and
//! `vm list` of the clone's host complete, and only then is the clone task asked about,
//! which must still be running. Were the clone run on the worker (as before tasks), the
//! start would be answered only after the copy, and the task would have ended.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const MIB: u64 = 1 << 20;
/// Enough data that libvirt takes seconds to copy it (about 400 MB/s measured here),
/// while starting a TCG guest and listing VMs take a fraction of a second.
const DATA_MIB: u64 = 1536;

/// A file of `mib` MiB of non-zero data (a sparse copy would skip zeros).
fn write_image(path: &Path, mib: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0xA5u8; usize::try_from(MIB).unwrap()];
    for _ in 0..mib {
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
}

fn task_of(d: &Daemon, id: &str) -> Value {
    d.get(&format!("/api/v1/tasks/{id}"))
}

#[test]
fn a_long_clone_is_a_task_and_its_host_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let pool_dir = dir.path().join("big");
    // Room for the source and two copies.
    let _tmpfs = Tmpfs::mount(&pool_dir, 3 * DATA_MIB + 256);
    write_image(&pool_dir.join("src.img"), DATA_MIB);
    let lv = SystemLibvirtd::start(&dir.path().join("libvirt"));
    let d = Daemon::start_with(&[lv.uri()], &[], "");
    let events = d.events();
    ok(
        d.cli(&[
            "pool",
            "create",
            "big",
            "--host",
            "localhost",
            "--type",
            "dir",
            "--target",
            pool_dir.to_str().unwrap(),
            "--json",
        ]),
        "pool",
    );
    ok(
        d.cli(&[
            "vm",
            "create",
            "--host",
            "localhost",
            "--profile",
            "Linux",
            "--name",
            "t1",
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

    // The clone starts as a task and answers at once.
    let task = d.cli_json(&[
        "volume",
        "clone",
        "big",
        "src.img",
        "copy.img",
        "--host",
        "localhost",
        "--no-wait",
    ]);
    let id = task["id"].as_str().unwrap().to_string();
    assert_eq!(
        (&task["kind"], &task["state"], &task["user"]),
        (&"volume_clone".into(), &"running".into(), &"root".into()),
        "{task}"
    );
    let begun = events.expect("the clone's task_progress", Duration::from_secs(10), |e| {
        e["kind"] == "task_progress" && e["task"]["id"] == id.as_str()
    });
    assert_eq!(begun["task"]["state"], "running", "{begun}");
    // Meanwhile the same host starts a VM (its event arrives) and lists its VMs ...
    let started = d.cli_json(&["vm", "start", "t1"]);
    assert_eq!(started["vm"]["state"], "running", "{started}");
    events.expect("t1's start", Duration::from_secs(10), |e| {
        e["kind"] == "vm_state" && e["name"] == "t1" && e["state"] == "running"
    });
    let listed = d.cli_json(&["vm", "list", "--host", "localhost"]);
    assert_eq!(listed[0]["state"], "running", "{listed}");
    // ... while the copy still runs.
    let now = task_of(&d, &id);
    assert_eq!(
        now["state"], "running",
        "the clone ended before the VM start was answered: {now}"
    );

    // Its end, on the event stream and from `uvmm task wait`.
    let done = d.cli_json(&["task", "wait", &id]);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["name"], "copy.img");
    assert_eq!(done["result"]["capacity"].as_u64(), Some(DATA_MIB * MIB));
    assert_eq!(done["bytes_total"].as_u64(), Some(DATA_MIB * MIB), "{done}");
    let ended = events.expect("task_done", Duration::from_secs(10), |e| {
        e["kind"] == "task_done" && e["task"]["id"] == id.as_str()
    });
    assert_eq!(ended["task"]["state"], "succeeded");
    assert_eq!(ended["host_id"], "localhost");
    let listed = d.cli_json(&["task", "list"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id.as_str()),
        "{listed}"
    );

    // A cancelled copy runs to its end (libvirt cannot interrupt it), then goes.
    let task = d.cli_json(&[
        "volume",
        "clone",
        "big",
        "src.img",
        "copy2.img",
        "--host",
        "localhost",
        "--no-wait",
    ]);
    let id2 = task["id"].as_str().unwrap().to_string();
    let asked = d.cli_json(&["task", "cancel", &id2]);
    assert_eq!(asked["state"], "cancelling", "{asked}");
    assert_eq!(asked["cancel"], "undo");
    fails(d.cli(&["task", "wait", &id2]), "cancelled");
    assert_eq!(task_of(&d, &id2)["state"], "cancelled");
    assert!(
        !pool_dir.join("copy2.img").exists(),
        "the cancelled copy is gone"
    );
    let pool = d.cli_json(&["pool", "show", "big", "--host", "localhost"]);
    let mut names: Vec<&str> = pool["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    // In the order libvirt lists them, which is the directory's.
    names.sort_unstable();
    assert_eq!(names, ["copy.img", "src.img"], "{pool}");

    // A managed save of the running guest: a task the command follows; the answer is the
    // VM as before tasks.
    let saved = d.cli_json(&["vm", "suspend", "t1"]);
    assert_eq!(
        (&saved["vm"]["state"], &saved["vm"]["suspended"]),
        (&"shutoff".into(), &true.into()),
        "{saved}"
    );
    let suspend = events.expect("the suspend task's end", Duration::from_secs(30), |e| {
        e["kind"] == "task_done" && e["task"]["kind"] == "vm_suspend"
    });
    assert_eq!(suspend["task"]["state"], "succeeded", "{suspend}");
    // Waiting is the default of the API too: an old client gets the answer it always got.
    ok(
        d.cli(&["vm", "start", "t1", "--json"]),
        "resume from the save",
    );
    let (status, body) = d.http(
        "POST",
        &format!(
            "/api/v1/vms/{}/suspend",
            saved["vm"]["uuid"].as_str().unwrap()
        ),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["vm"]["suspended"], true, "{body}");
}
