//! Definition changes made with `virsh ... --config` while uvmmd runs. libvirt sends no
//! event for them; uvmmd must still see them within the reconcile interval (view, ETag,
//! a backup version with cause `external`), and a uvmm edit right after one must not
//! record the foreign change as its own. On a real libvirtd with real QEMU domains.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

/// The versions of a VM's backup: (version, cause).
fn versions(d: &Daemon, vm: &str) -> Vec<(u64, String)> {
    d.cli_json(&["backup", "show", vm])["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["cause"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The lines a version changed (the unified diff without context and headers).
fn diff(d: &Daemon, vm: &str, from: u64, to: u64) -> String {
    let out = d.cli(&["backup", "diff", vm, &from.to_string(), &to.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn create(d: &Daemon, name: &str, start: bool) -> Value {
    let mut args = vec![
        "vm",
        "create",
        "--host",
        "localhost",
        "--profile",
        "Linux",
        "--name",
        name,
        "--type",
        "qemu",
        "--memory",
        "128MiB",
        "--no-disk",
        "--no-network",
    ];
    if start {
        args.push("--start");
    }
    d.cli_json(&args)
}

#[test]
fn virsh_config_changes_are_seen_recorded_as_external_and_not_claimed_by_uvmm() {
    let dir = tempfile::tempdir().unwrap();
    let lv = SystemLibvirtd::start(&dir.path().join("libvirt"));
    let uri = lv.uri();
    let image = dir.path().join("extra.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();

    // 1. Right before a uvmm edit: with a reconcile interval far beyond the test, only the
    //    check in front of the edit can notice the foreign change.
    {
        let d = Daemon::start_with(
            std::slice::from_ref(&uri),
            &[],
            "reconcile_interval_secs = 3600\n",
        );
        create(&d, "ext-edit", false);
        lv.virsh(&["setmaxmem", "ext-edit", "262144", "--config"]);
        ok(
            d.cli(&["vm", "set", "ext-edit", "description=mine", "--json"]),
            "edit",
        );
        let v = versions(&d, "ext-edit");
        let causes: Vec<&str> = v.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(causes, ["create", "external", "edit"], "{v:?}");
        let (ext, edit) = (v[1].0, v[2].0);
        let foreign = diff(&d, "ext-edit", v[0].0, ext);
        assert!(foreign.contains("262144"), "{foreign}");
        let own = diff(&d, "ext-edit", ext, edit);
        assert!(
            own.contains("mine") && !own.contains("262144"),
            "the edit's version holds only the edit: {own}"
        );
    }

    // 2. Nobody edits: the definition watch finds the changes within the interval.
    let d = Daemon::start_with(
        std::slice::from_ref(&uri),
        &[],
        "reconcile_interval_secs = 3\nstats_interval_secs = 1\n",
    );
    create(&d, "ext-off", false);
    create(&d, "ext-run", true);
    let before = d.cli_json(&["vm", "show", "ext-off"]);
    let etag_before = before["etag"].as_str().unwrap().to_string();
    let count_before = versions(&d, "ext-off").len();

    lv.virsh(&["setmaxmem", "ext-off", "262144", "--config"]);
    lv.virsh(&["setvcpus", "ext-off", "2", "--config", "--maximum"]);
    lv.virsh(&["setvcpus", "ext-off", "2", "--config"]);
    lv.virsh(&[
        "attach-disk",
        "ext-off",
        image.to_str().unwrap(),
        "vdb",
        "--config",
    ]);
    lv.virsh(&["setmaxmem", "ext-run", "300000", "--config"]);

    // The view follows: memory, vCPUs and the new drive.
    let now = wait_for(Duration::from_secs(30), "the changes in the view", || {
        let v = d.cli_json(&["vm", "show", "ext-off"]);
        let has_vdb = v["disks"]
            .as_array()?
            .iter()
            .any(|disk| disk["target"] == "vdb");
        (v["max_memory_kib"] == 262144 && v["vcpus"] == 2 && has_vdb).then_some(v)
    });
    // Recorded as external, in as few versions as the watch saw states.
    let v = versions(&d, "ext-off");
    assert!(v.len() > count_before, "{v:?}");
    assert!(
        v[count_before..].iter().all(|(_, c)| c == "external"),
        "{v:?}"
    );
    let latest = d.cli_json(&[
        "backup",
        "show",
        "ext-off",
        "--version",
        &v.last().unwrap().0.to_string(),
    ]);
    assert!(latest.to_string().contains("vdb"), "{latest}");
    // The running VM's stored definition changed too: a version, cause external.
    wait_for(
        Duration::from_secs(30),
        "the running VM's change recorded",
        || {
            let v = versions(&d, "ext-run");
            (v.last()?.1 == "external").then_some(())
        },
    );

    // A freshly read ETag works with --if-match; the stale one is refused.
    let etag = now["etag"].as_str().unwrap().to_string();
    assert_ne!(etag, etag_before);
    fails(
        d.cli(&[
            "vm",
            "set",
            "ext-off",
            "description=x",
            "--if-match",
            &etag_before,
        ]),
        "ETag mismatch",
    );
    ok(
        d.cli(&[
            "vm",
            "set",
            "ext-off",
            "description=x",
            "--if-match",
            &etag,
            "--json",
        ]),
        "edit with the fresh ETag",
    );
    let v = versions(&d, "ext-off");
    let (prev, last) = (&v[v.len() - 2], &v[v.len() - 1]);
    assert_eq!(last.1, "edit", "{v:?}");
    let own = diff(&d, "ext-off", prev.0, last.0);
    assert!(!own.contains("vdb") && !own.contains("262144"), "{own}");

    // Nothing changes: no further versions appear.
    let settled = versions(&d, "ext-off").len();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(versions(&d, "ext-off").len(), settled);
}
