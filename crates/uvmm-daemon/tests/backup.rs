//! Versioned backups of every definition change, and uvmm-restore.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn virsh(uri: &str, args: &[&str]) -> std::process::Output {
    Command::new("virsh")
        .arg("-c")
        .arg(uri)
        .args(args)
        .output()
        .expect("virsh")
}

#[test]
fn every_edit_is_a_version_and_the_diff_shows_exactly_the_edits() {
    let d = Daemon::start(&[demo_uri("demo-kvm1")]);
    ok(
        d.cli(&[
            "vm",
            "create",
            "--host",
            "demo-kvm1",
            "--profile",
            "Linux",
            "--name",
            "bk-a",
            "--no-network",
            "--disk",
            "pool=default,size=1GiB",
            "--json",
        ]),
        "create",
    );
    ok(
        d.cli(&["vm", "set", "bk-a", "memory=1GiB", "--json"]),
        "edit 1",
    );
    ok(d.cli(&["vm", "set", "bk-a", "vcpus=3", "--json"]), "edit 2");
    ok(
        d.cli(&["vm", "set", "bk-a", "contact=ops@example.com", "--json"]),
        "edit 3",
    );
    // An edit that changes nothing makes no version.
    ok(
        d.cli(&["vm", "set", "bk-a", "vcpus=3", "--json"]),
        "no-op edit",
    );
    let show = d.cli_json(&["backup", "show", "bk-a"]);
    let causes: Vec<&str> = show["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["cause"].as_str().unwrap())
        .collect();
    assert_eq!(causes, ["create", "edit", "edit", "edit"], "{show}");
    assert_eq!(show["version_count"], 4);

    let diff = |a: u32, b: u32| -> Vec<String> {
        let out = d.cli(&["backup", "diff", "bk-a", &a.to_string(), &b.to_string()]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| {
                (l.starts_with('+') || l.starts_with('-'))
                    && !l.starts_with("+++")
                    && !l.starts_with("---")
            })
            .map(str::to_string)
            .collect()
    };
    let d12 = diff(1, 2);
    assert!(
        d12.iter().all(|l| l.contains("emory")),
        "only memory changed: {d12:?}"
    );
    assert_eq!(d12.len(), 4, "{d12:?}");
    let d23 = diff(2, 3);
    assert_eq!(d23.len(), 2, "{d23:?}");
    assert!(
        d23[0].contains("<vcpu") && d23[1].contains(">3</vcpu>"),
        "{d23:?}"
    );
    // The first note creates the metadata element around it; nothing else changes.
    let d34 = diff(3, 4);
    assert!(
        d34.iter().all(|l| l.starts_with('+')
            && (l.contains("contact") || l.contains("metadata") || l.contains("uvmm:notes"))),
        "{d34:?}"
    );
    assert!(d34.iter().any(|l| l.contains("ops@example.com")));

    // On disk: the latest definition at <dir>/<uuid>.xml, versions below <dir>/<uuid>/,
    // all private.
    let uuid = show["uuid"].as_str().unwrap();
    let latest = std::fs::read_to_string(d.backup_dir().join(format!("{uuid}.xml"))).unwrap();
    assert!(latest.contains("ops@example.com"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.backup_dir().join(uuid))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    let v = d.cli_json(&["backup", "show", "bk-a", "--version", "2"]);
    assert!(
        v["xml"]
            .as_str()
            .unwrap()
            .contains("<memory unit='KiB'>1048576</memory>"),
        "{v}"
    );
    let list = d.cli_json(&["backup", "list", "bk-*"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[test]
fn changes_outside_uvmm_are_versions_too() {
    let dir = tempfile::tempdir().unwrap();
    let libvirtd = Libvirtd::start(&dir.path().join("libvirtd"));
    let uri = libvirtd.uri();
    let d = Daemon::start(std::slice::from_ref(&uri));
    // The first sight of a VM is recorded.
    let show = wait_for(Duration::from_secs(5), "first backup", || {
        let out = d.cli(&["backup", "show", "test", "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
    });
    assert_eq!(show["versions"][0]["cause"], "resync");
    // virsh (a second libvirt connection) changes the definition.
    let xml = String::from_utf8(virsh(&uri, &["dumpxml", "--inactive", "test"]).stdout).unwrap();
    let changed = xml.replace("</name>", "</name>\n  <title>changed by virsh</title>");
    let f = dir.path().join("test.xml");
    std::fs::write(&f, changed).unwrap();
    let out = virsh(&uri, &["define", f.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for(
        Duration::from_secs(5),
        "a version with cause external",
        || {
            let show = d.cli_json(&["backup", "show", "test"]);
            let last = show["versions"]
                .as_array()
                .unwrap()
                .last()
                .cloned()
                .unwrap();
            (last["cause"] == "external").then_some(())
        },
    );
    let v = d.cli_json(&["backup", "show", "test", "--version", "2"]);
    assert!(v["xml"].as_str().unwrap().contains("changed by virsh"));
    // Undefined outside uvmm: recorded as deleted.
    let _ = virsh(&uri, &["destroy", "test"]);
    let out = virsh(&uri, &["undefine", "test"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for(Duration::from_secs(5), "deletion recorded", || {
        let list = d.cli_json(&["backup", "list", "test"]);
        (list[0]["deleted"] == true).then_some(())
    });
}

#[test]
fn delete_then_restore_by_name_and_uuid_with_all_checks() {
    let dir = tempfile::tempdir().unwrap();
    let libvirtd = Libvirtd::start(&dir.path().join("libvirtd"));
    let _keeper = libvirtd.keeper();
    let uri = libvirtd.uri();
    let mut d = Daemon::start(std::slice::from_ref(&uri));
    ok(
        d.cli(&[
            "vm",
            "create",
            "--host",
            "default",
            "--profile",
            "Linux",
            "--name",
            "rs-a",
            "--no-network",
            "--disk",
            "pool=default-pool,size=1GiB",
            "--json",
        ]),
        "create a",
    );
    ok(
        d.cli(&[
            "vm",
            "set",
            "rs-a",
            "description=before the fault",
            "--json",
        ]),
        "edit a",
    );
    let uuid = d.vm("rs-a", "default")["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let last_xml = d.cli_json(&["backup", "show", "rs-a", "--version", "2"])["xml"]
        .as_str()
        .unwrap()
        .to_string();
    ok(
        d.cli(&["vm", "delete", "rs-a", "--json"]),
        "delete keeping images",
    );

    // Listing, as the seed's commands do.
    let out = d.restore(&["-l"]);
    assert!(
        out.status.success() && text(&out).contains("rs-a (deleted)"),
        "{}",
        text(&out)
    );
    let out = d.restore(&["-l", "-p", "*RS-*"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        2,
        "{}",
        text(&out)
    );

    // Restore by name through the daemon: equals the last version.
    let out = d.restore(&["-r", "rs-a"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("uvmm vm start rs-a"), "{}", text(&out));
    let restored = String::from_utf8(
        virsh(&uri, &["dumpxml", "--inactive", "--security-info", "rs-a"]).stdout,
    )
    .unwrap();
    assert_eq!(
        restored.trim_end(),
        last_xml.trim_end(),
        "the restored definition equals the last version"
    );
    assert_eq!(d.vm("rs-a", "default")["state"], "shutoff");

    // Again: refused (exists), then forced by UUID.
    let out = d.restore(&["-r", "rs-a"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("already exists") && text(&out).contains("-f"),
        "{}",
        text(&out)
    );
    let out = d.restore(&["-r", &uuid, "-f", "--version", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        d.vm("rs-a", "default")["description"],
        Value::Null,
        "version 1 had no description"
    );

    // A missing image is refused, naming it.
    ok(
        d.cli(&[
            "vm",
            "create",
            "--host",
            "default",
            "--profile",
            "Linux",
            "--name",
            "rs-b",
            "--no-network",
            "--disk",
            "pool=default-pool,size=1GiB",
            "--json",
        ]),
        "create b",
    );
    ok(
        d.cli(&["vm", "delete", "rs-b", "--volumes", "all", "--json"]),
        "delete b with images",
    );
    let out = d.restore(&["-r", "rs-b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("rs-b.qcow2") && text(&out).contains("does not exist"),
        "{}",
        text(&out)
    );
    assert!(
        d.vms().iter().all(|v| v["name"] != "rs-b"),
        "a refused restore defines nothing"
    );

    // With the daemon stopped the restore goes directly through libvirt.
    ok(d.cli(&["vm", "delete", "rs-a", "--json"]), "delete a again");
    d.stop();
    let out = d.restore(&["-r", "rs-a"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("restoring directly through libvirt"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("virsh -c"), "{}", text(&out));
    assert!(virsh(&uri, &["dominfo", "rs-a"]).status.success());
    // The direct restore was recorded too.
    d.respawn();
    let show = d.cli_json(&["backup", "show", "rs-a"]);
    let causes: Vec<&str> = show["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["cause"].as_str().unwrap())
        .collect();
    assert_eq!(causes.last(), Some(&"restore"), "{causes:?}");
}

#[test]
fn kill_9_during_a_burst_of_edits_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let libvirtd = Libvirtd::start(&dir.path().join("libvirtd"));
    let _keeper = libvirtd.keeper();
    let uri = libvirtd.uri();
    let mut d = Daemon::start(std::slice::from_ref(&uri));
    for round in 0..6u32 {
        // A burst of edits in the background, killed at different points.
        let socket = d.socket.clone();
        let burst = std::thread::spawn(move || {
            for i in 0..40u32 {
                let _ = Command::new(uvmm_bin())
                    .args([
                        "vm",
                        "set",
                        "test",
                        &format!("memory={}MiB", 256 + round * 40 + i),
                    ])
                    .env("UVMM_SOCKET", &socket)
                    .output();
            }
        });
        std::thread::sleep(Duration::from_millis(150 + 70 * u64::from(round)));
        d.kill9();
        burst.join().unwrap();
        d.respawn();
    }
    // After the last restart the resync records libvirt's current definition.
    let current = String::from_utf8(
        virsh(&uri, &["dumpxml", "--inactive", "--security-info", "test"]).stdout,
    )
    .unwrap();
    wait_for(
        Duration::from_secs(10),
        "the resync to record the current definition",
        || {
            let n = d.cli_json(&["backup", "show", "test"])["latest"].as_u64()?;
            let xml = d.cli_json(&["backup", "show", "test", "--version", &n.to_string()]);
            (xml["xml"].as_str()?.trim_end() == current.trim_end()).then_some(())
        },
    );
    d.stop();
    // Every file in the store is complete and parses.
    let store = d.backup_dir();
    let mut versions = 0;
    for entry in walk(&store) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        let content = std::fs::read_to_string(&entry).unwrap();
        assert!(!content.is_empty(), "{} is empty", entry.display());
        if name.ends_with(".meta.json") {
            let meta: Value = serde_json::from_str(&content)
                .unwrap_or_else(|e| panic!("{}: {e}", entry.display()));
            let xml = entry.with_file_name(name.replace(".meta.json", ".xml"));
            assert_eq!(
                std::fs::metadata(&xml).unwrap().len(),
                meta["xml_bytes"].as_u64().unwrap(),
                "{}",
                xml.display()
            );
            versions += 1;
        } else if name.ends_with(".xml") {
            uvmm_model::domain::parse_domain(&content)
                .unwrap_or_else(|e| panic!("{}: {e}", entry.display()));
        } else if entry == store.join("uvmmd.lock") {
            // One daemon per backup directory: the lock names the holder.
            assert!(content.trim().parse::<u32>().is_ok(), "lock: {content:?}");
        } else {
            panic!("unexpected file in the store: {}", entry.display());
        }
    }
    assert!(versions > 1, "the bursts made versions");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn old_uvmm_layout_is_listed_and_restored() {
    let d = Daemon::start(&[demo_uri("demo-kvm2")]);
    let old = tempfile::tempdir().unwrap();
    let dom = |name: &str, uuid: &str, mem: u32| {
        format!("<domain type='test'><name>{name}</name><uuid>{uuid}</uuid><memory unit='MiB'>{mem}</memory><os><type>hvm</type></os><devices/></domain>")
    };
    let (u1, u2) = (
        "11111111-2222-4333-8444-555555555555",
        "66666666-7777-4888-9999-aaaaaaaaaaaa",
    );
    std::fs::write(
        old.path().join(format!("{u1}.xml")),
        dom("old-winxp", u1, 512),
    )
    .unwrap();
    std::fs::write(
        old.path().join(format!("{u1}.xml.save")),
        dom("old-winxp", u1, 256),
    )
    .unwrap();
    std::fs::write(
        old.path().join(format!("{u2}..xml")),
        dom("old-linux", u2, 1024),
    )
    .unwrap();
    std::fs::write(
        old.path().join(format!("{u2}..xml.save")),
        dom("old-linux", u2, 768),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(uvmm_restore_bin())
            .args(args)
            .arg("--dir")
            .arg(old.path())
            .env("UVMM_SOCKET", &d.socket)
            .output()
            .unwrap()
    };
    let out = run(&["-l"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("old-winxp") && text(&out).contains("old-linux"),
        "{}",
        text(&out)
    );
    let out = run(&["-l", "-p", "*winxp*"]);
    assert!(!text(&out).contains("old-linux"));
    // The old layout does not know the host.
    let out = run(&["-r", "old-winxp"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--host"));
    let out = run(&["-r", "old-winxp", "--host", "demo-kvm2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(d.vm("old-winxp", "demo-kvm2")["max_memory_kib"], 512 * 1024);
    // The ".save" file is the previous definition: version 1.
    let out = run(&["-r", u2, "--version", "1", "--host", "demo-kvm2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(d.vm("old-linux", "demo-kvm2")["max_memory_kib"], 768 * 1024);
}

/// Notes changed through uvmm are recorded once each, as `edit`, and the definition watch
/// adds nothing after them; a stored version that differs from the host's definition only
/// in its layout (written under a libvirt that indents differently) is no new version at
/// the next start; a real change with virsh still is `external`. On the test driver behind
/// a real libvirtd.
#[test]
fn notes_edits_and_reindented_definitions_make_no_external_versions() {
    let dir = tempfile::tempdir().unwrap();
    let libvirtd = Libvirtd::start(&dir.path().join("libvirtd"));
    let _keeper = libvirtd.keeper();
    let uri = libvirtd.uri();
    let mut d = Daemon::start_with(
        std::slice::from_ref(&uri),
        &[],
        "reconcile_interval_secs = 1\nstats_interval_secs = 1\n",
    );
    let causes = |d: &Daemon| -> Vec<String> {
        d.cli_json(&["backup", "show", "test"])["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["cause"].as_str().unwrap().to_string())
            .collect()
    };
    wait_for(Duration::from_secs(5), "first backup", || {
        d.cli(&["backup", "show", "test", "--json"])
            .status
            .success()
            .then_some(())
    });
    ok(
        d.cli(&[
            "vm",
            "set",
            "test",
            "description=first note",
            "contact=ops@example.com",
            "--json",
        ]),
        "notes",
    );
    ok(
        d.cli(&["vm", "set", "test", "description=second note", "--json"]),
        "notes again",
    );
    // Several rounds of the definition watch.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(causes(&d), ["resync", "edit", "edit"]);

    // The store's latest version as another libvirt would have indented it.
    let uuid = d.cli_json(&["backup", "show", "test"])["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    d.stop();
    let latest = d.backup_dir().join(&uuid).join("000003.xml");
    let xml = std::fs::read_to_string(&latest).unwrap();
    let reindented = xml.replace("\n  <", "\n\n      <");
    assert_ne!(reindented, xml);
    std::fs::write(&latest, &reindented).unwrap();
    // Its record says how long it is (a version whose XML does not match counts as lost).
    let meta_path = d.backup_dir().join(&uuid).join("000003.meta.json");
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["xml_bytes"] = reindented.len().into();
    std::fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
    std::fs::write(d.backup_dir().join(format!("{uuid}.xml")), &reindented).unwrap();
    d.respawn();
    wait_for(
        Duration::from_secs(10),
        "the resync after the start",
        || {
            // The log starts afresh with the new process.
            d.log()
                .contains("backups checked against the host's definitions")
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        causes(&d),
        ["resync", "edit", "edit"],
        "no version for a layout"
    );

    // A real change outside uvmm.
    let xml = String::from_utf8(virsh(&uri, &["dumpxml", "--inactive", "test"]).stdout).unwrap();
    let f = dir.path().join("test.xml");
    std::fs::write(
        &f,
        xml.replace("<memory unit='KiB'>", "<memory unit='KiB'>1"),
    )
    .unwrap();
    let out = virsh(&uri, &["define", f.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for(Duration::from_secs(10), "the outside change", || {
        (causes(&d).last().map(String::as_str) == Some("external")).then_some(())
    });
    assert_eq!(causes(&d), ["resync", "edit", "edit", "external"]);
}
