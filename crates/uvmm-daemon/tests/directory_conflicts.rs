//! A note changed on both sides during an outage, end to end through uvmmd: uvmmd loses
//! the directory (a relay between them is cut, so the test can still change the directory
//! directly), queues note edits, someone changes the same notes in the directory, the
//! relay comes back → the conflict rule of docs/directory.md is applied per field (the
//! newer change wins; a field only one side changed is kept), logged, and uvmmd shows the
//! result.

mod common;
#[path = "../../uvmm-directory/tests/support/slapd.rs"]
mod slapd;

use common::proxy::Relay;
use common::*;
use slapd::{Slapd, SERVICE_DN, SERVICE_PW};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const NOTES: &str = "cn=Information,cn=Virtual Machine Manager,dc=example,dc=com";

fn config(dir: &Path) -> String {
    let hosts = dir.join("hosts");
    std::fs::create_dir(&hosts).unwrap();
    let node = std::fs::read(repo_root().join("demo/hosts/demo-kvm1.xml")).unwrap();
    for n in ["kvm1", "kvm2", "xen1"] {
        std::fs::write(hosts.join(format!("{n}.xml")), &node).unwrap();
    }
    let pw = dir.join("bind.secret");
    std::fs::write(&pw, SERVICE_PW).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let h = hosts.display();
    format!(
        "[api]\ntest_host_dirs = [\"{h}\"]\n[directory]\nbind_dn = \"{SERVICE_DN}\"\n\
         password_file = \"{}\"\npoll_interval_secs = 1\nconnect_timeout_secs = 1\n\
         timeout_secs = 3\n[directory.hosts]\nservices = {{ \"KVM Host\" = \"test://{h}/{{cn}}.xml\", \
         \"XEN Host\" = \"test://{h}/{{cn}}.xml\" }}\n",
        pw.display()
    )
}

fn patch(d: &Daemon, uuid: &str, body: &str) {
    let (code, out) = d.http(
        "PATCH",
        &format!("/api/v1/vms/{uuid}?host=kvm1"),
        Some(body),
    );
    assert_eq!(code, 200, "{out}");
}

fn shown(d: &Daemon, uuid: &str, field: &str) -> String {
    d.get(&format!("/api/v1/vms/{uuid}?host=kvm1"))[field]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn in_directory(ldap: &Slapd, uuid: &str) -> String {
    ldap.ldapsearch(&format!("(univentionVirtualMachineUUID={uuid})"), &["*"])
}

fn change_in_directory(ldap: &Slapd, uuid: &str, text: &str) {
    ldap.ldapmodify(&format!(
        "dn: univentionVirtualMachineUUID={uuid},{NOTES}\nchangetype: modify\n\
         replace: univentionVirtualMachineDescription\nuniventionVirtualMachineDescription: {text}\n"
    ));
}

/// The conflict rule compares seconds: make sure the next change is in a later one.
fn next_second() {
    std::thread::sleep(Duration::from_millis(1100));
}

#[test]
fn a_note_changed_on_both_sides_during_an_outage() {
    let ldap = Slapd::start(slapd::Options::default());
    let port: u16 = ldap
        .uri()
        .trim_start_matches("ldap://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let relay = Relay::start(port);
    let tmp = tempfile::tempdir().unwrap();
    let uri = format!("ldap://127.0.0.1:{}/dc=example,dc=com", relay.port);
    let d = Daemon::start_with(&[], &["-b", &uri], &config(tmp.path()));
    wait_for(Duration::from_secs(20), "kvm1 connected", || {
        d.vms()
            .iter()
            .filter(|v| v["host_id"] == "kvm1")
            .count()
            .ge(&2)
            .then_some(())
    });
    let on_kvm1: Vec<String> = d
        .vms()
        .iter()
        .filter(|v| v["host_id"] == "kvm1")
        .map(|v| v["uuid"].as_str().unwrap().to_string())
        .collect();
    let (a, b) = (&on_kvm1[0], &on_kvm1[1]);
    patch(&d, a, r#"{"description":"a: base","contact":"a@base"}"#);
    patch(&d, b, r#"{"description":"b: base"}"#);
    assert!(in_directory(&ldap, a).contains("a: base"));

    relay.cut();
    wait_for(Duration::from_secs(30), "degraded", || {
        (d.get("/api/v1/directory")["online"] == false).then_some(())
    });
    // a: changed in the directory first, then here (later: ours wins), with a contact
    // nobody else touched; b: changed here first, then in the directory (theirs wins).
    change_in_directory(&ldap, a, "a: theirs, earlier");
    next_second();
    patch(
        &d,
        a,
        r#"{"description":"a: ours, later","contact":"a@ours"}"#,
    );
    patch(&d, b, r#"{"description":"b: ours, earlier"}"#);
    assert_eq!(d.get("/api/v1/directory")["pending_writes"], 2);
    assert_eq!(shown(&d, b, "description"), "b: ours, earlier");
    next_second();
    change_in_directory(&ldap, b, "b: theirs, later");

    relay.restore();
    wait_for(Duration::from_secs(30), "the queue replayed", || {
        let st = d.get("/api/v1/directory");
        (st["online"] == true && st["pending_writes"] == 0).then_some(())
    });
    // The directory and uvmmd agree on the result of the rule.
    let (dir_a, dir_b) = (in_directory(&ldap, a), in_directory(&ldap, b));
    assert!(
        dir_a.contains("univentionVirtualMachineDescription: a: ours, later"),
        "{dir_a}"
    );
    assert!(
        dir_a.contains("univentionVirtualMachineContact: a@ours"),
        "{dir_a}"
    );
    assert!(
        dir_b.contains("univentionVirtualMachineDescription: b: theirs, later"),
        "{dir_b}"
    );
    wait_for(Duration::from_secs(20), "uvmmd shows the result", || {
        (shown(&d, a, "description") == "a: ours, later"
            && shown(&d, a, "contact") == "a@ours"
            && shown(&d, b, "description") == "b: theirs, later")
            .then_some(())
    });
    // Both conflicts are logged with their winner.
    let log = d.log();
    let conflicts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("note conflict"))
        .collect();
    assert!(
        conflicts
            .iter()
            .any(|l| l.contains(a.as_str()) && l.contains("Local")),
        "{conflicts:?}"
    );
    assert!(
        conflicts
            .iter()
            .any(|l| l.contains(b.as_str()) && l.contains("Directory")),
        "{conflicts:?}"
    );
}
