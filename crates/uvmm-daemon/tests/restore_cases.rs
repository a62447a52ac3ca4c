//! uvmm-restore where it used to go wrong (test-driver hosts): it finds uvmmd's backups in
//! a backup directory other than the default (asking uvmmd, or reading uvmmd's
//! configuration file when uvmmd is down), and `-f` does not undefine a different VM that
//! happens to have the name: that takes `--replace`.
//! (A restore after an image vanished is tested on a real libvirtd in `real_outcomes.rs`.)

mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Output};

/// uvmm-restore as an administrator runs it: no --dir.
fn restore(d: &Daemon, args: &[&str]) -> Output {
    Command::new(uvmm_restore_bin())
        .args(args)
        .env("UVMM_SOCKET", &d.socket)
        .output()
        .unwrap()
}

fn json(out: Output, what: &str) -> Value {
    ok(out, what)
}

#[test]
fn backups_are_found_where_uvmmd_keeps_them() {
    let mut d = Daemon::start(&[demo_uri("demo-kvm1")]);
    assert_ne!(d.backup_dir(), std::path::Path::new("/var/backups/uvmm"));
    // The start-up check runs on the backup pool after the host connected; it is done
    // when it says so (counting directory entries raced with it: two entries per VM).
    wait_for(std::time::Duration::from_secs(10), "resync backups", || {
        d.log()
            .contains("backups checked against the host's definitions")
            .then_some(())
    });
    // uvmmd answers: its backups, wherever its directory is.
    let list = json(restore(&d, &["-l", "--json"]), "list through uvmmd");
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"web-01"), "{names:?}");
    let narrowed = json(
        restore(&d, &["-l", "-p", "web*", "--json"]),
        "pattern through uvmmd",
    );
    assert!(narrowed
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["name"].as_str().unwrap().starts_with("web")));

    // uvmmd is down: uvmmd's configuration file says where.
    d.stop();
    let cfg = d.dir.path().join("restore-view.toml");
    std::fs::write(
        &cfg,
        format!("backup_dir = \"{}\"\n", d.backup_dir().display()),
    )
    .unwrap();
    let out = restore(&d, &["-l", "--json", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let list = json(out, "list from the configured directory");
    assert_eq!(
        list.as_array().unwrap().len(),
        names.len(),
        "the same backups"
    );
    assert!(
        err.contains(&format!(
            "reading the backups in {}",
            d.backup_dir().display()
        )),
        "{err}"
    );
    // A configuration file given by name must exist.
    fails(
        restore(&d, &["-l", "--config", "/nonexistent/uvmmd.toml"]),
        "cannot read /nonexistent/uvmmd.toml",
    );
}

#[test]
fn force_redefines_the_same_vm_only_and_replace_is_explicit() {
    let d = Daemon::start(&[demo_uri("demo-kvm1")]);
    let create = |name: &str| -> String {
        let r = d.cli_json(&[
            "vm",
            "create",
            "--host",
            "demo-kvm1",
            "--profile",
            "Linux",
            "--name",
            name,
            "--no-disk",
            "--no-network",
        ]);
        r["vm"]["uuid"].as_str().unwrap().to_string()
    };
    let first = create("twin");
    ok(
        d.cli(&["vm", "delete", "twin", "--json"]),
        "delete first twin",
    );
    let second = create("twin");
    assert_ne!(first, second);

    // Without options the refusal names --replace, not -f (which would be refused next).
    let out = restore(&d, &["-r", &first]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("different VM") && err.contains("--replace") && !err.contains("-f "),
        "{err}"
    );
    // -f alone does not undefine the other VM of that name.
    let out = restore(&d, &["-r", &first, "-f"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("different VM") && err.contains("--replace"),
        "{err}"
    );
    assert_eq!(d.vm("twin", "demo-kvm1")["uuid"], second.as_str());
    // The same VM is still redefined by -f.
    let out = restore(&d, &["-r", &second, "-f", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --replace puts the backup in the other VM's place, and says so.
    let r = json(
        restore(&d, &["-r", &first, "--replace", "--json"]),
        "replace",
    );
    assert_eq!(r["restored"]["replaced"], second.as_str(), "{r}");
    assert!(r["restored"]["warnings"]
        .to_string()
        .contains("was undefined to make room"));
    assert_eq!(d.vm("twin", "demo-kvm1")["uuid"], first.as_str());
    // The help says which does what.
    let help = restore(&d, &["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--replace") && help.contains("same UUID"),
        "{help}"
    );
}
