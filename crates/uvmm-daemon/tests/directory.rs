//! Directory mode against a real slapd (the harness of `uvmm-directory`): hosts from host
//! entries (added → connected, removed → dropped), profiles from the directory (a VM
//! created from one), the degraded state while slapd is down (serving and starting from the
//! cache), two uvmmd on a replicated directory, and `-b ""` never connecting.

mod common;
#[path = "../../uvmm-directory/tests/support/slapd.rs"]
mod slapd;

use common::*;
use serde_json::Value;
use slapd::{Slapd, SERVICE_DN, SERVICE_PW};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// Node files for the directory's host entries (each `test:///FILE` is a host of its own).
fn host_files(dir: &Path, names: &[&str]) {
    let node = std::fs::read(repo_root().join("demo/hosts/demo-kvm1.xml")).unwrap();
    for n in names {
        std::fs::write(dir.join(format!("{n}.xml")), &node).unwrap();
    }
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("hosts")).unwrap();
        host_files(&dir.path().join("hosts"), &["kvm1", "kvm2", "xen1", "kvm3"]);
        let pw = dir.path().join("bind.secret");
        std::fs::write(&pw, SERVICE_PW).unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        Setup { dir }
    }

    fn hosts_dir(&self) -> String {
        self.dir.path().join("hosts").display().to_string()
    }

    /// `[api]` lets the test hosts through the runtime host policy unless `policy` is false.
    fn config(&self, policy: bool, extra: &str) -> String {
        let hosts = self.hosts_dir();
        let api = if policy {
            format!("[api]\ntest_host_dirs = [\"{hosts}\"]\n")
        } else {
            String::new()
        };
        format!(
            "{api}[directory]\nbind_dn = \"{SERVICE_DN}\"\npassword_file = \"{}\"\n\
             poll_interval_secs = 1\nconnect_timeout_secs = 1\ntimeout_secs = 3\n{extra}\n\
             [directory.hosts]\nservices = {{ \"KVM Host\" = \"test://{hosts}/{{cn}}.xml\", \
             \"XEN Host\" = \"test://{hosts}/{{cn}}.xml\" }}\n",
            self.dir.path().join("bind.secret").display()
        )
    }

    fn uri(&self, name: &str) -> String {
        format!("test://{}/{name}.xml", self.hosts_dir())
    }
}

/// uri → (origin, status)
fn hosts(d: &Daemon) -> BTreeMap<String, (String, String)> {
    d.get("/api/v1/hosts")
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["uri"].as_str().unwrap().to_string(),
                (
                    h["origin"].as_str().unwrap().to_string(),
                    h["status"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

fn directory_uris(d: &Daemon) -> Vec<String> {
    hosts(d)
        .into_iter()
        .filter(|(_, (o, _))| o == "directory")
        .map(|(u, _)| u)
        .collect()
}

fn note_dn(uuid: &str) -> String {
    format!("univentionVirtualMachineUUID={uuid},cn=Information,cn=Virtual Machine Manager,dc=example,dc=com")
}

/// The note entry of `uuid` as the directory has it (LDIF), or "" when there is none.
fn directory_note(ldap: &Slapd, uuid: &str) -> String {
    ldap.ldapsearch(&format!("(univentionVirtualMachineUUID={uuid})"), &["*"])
}

/// The description uvmmd shows for a VM on kvm1 (the node files are copies of one, so
/// their VMs share UUIDs).
fn shown_description(d: &Daemon, uuid: &str) -> Value {
    d.get(&format!("/api/v1/vms/{uuid}?host=kvm1"))["description"].clone()
}

fn patch_description(d: &Daemon, uuid: &str, text: &str) -> Value {
    let (code, body) = d.http(
        "PATCH",
        &format!("/api/v1/vms/{uuid}?host=kvm1"),
        Some(&serde_json::json!({ "description": text }).to_string()),
    );
    assert_eq!(code, 200, "{body}");
    body
}

/// `check_uvmm daemon`: exit code and output.
fn check_daemon(d: &Daemon) -> (Option<i32>, String) {
    let out = std::process::Command::new(check_uvmm_bin())
        .arg("daemon")
        .env("UVMM_SOCKET", &d.socket)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn start(slapd_uri: &str, hosts: &[String], config: &str) -> Daemon {
    Daemon::start_with(hosts, &["-b", slapd_uri], config)
}

const KVM3: &str = "dn: cn=kvm3,cn=computers,dc=example,dc=com\nchangetype: add\n\
    objectClass: device\nobjectClass: domainRelatedObject\nobjectClass: uvmmHostServices\n\
    cn: kvm3\nassociatedDomain: example.com\nuniventionService: KVM Host\n";

#[test]
fn hosts_and_profiles_come_from_the_directory() {
    let s = Setup::new();
    let ldap = Slapd::start(slapd::Options::default());
    let local = demo_uri("demo-kvm2");
    let d = start(
        &ldap.uri(),
        std::slice::from_ref(&local),
        &s.config(true, ""),
    );

    // The three host entries with a virtualization service, beside the command line's.
    let all = hosts(&d);
    let want: Vec<String> = ["kvm1", "kvm2", "xen1"].iter().map(|n| s.uri(n)).collect();
    assert_eq!(directory_uris(&d), want, "{all:?}");
    for u in &want {
        assert_eq!(all[u].1, "connected", "{u}: {all:?}");
    }
    assert_eq!(all[&local].0, "cmdline");

    let status = d.get("/api/v1/directory");
    assert_eq!(status["mode"], "directory", "{status}");
    assert_eq!(status["online"], true, "{status}");
    assert_eq!(status["degraded"], false, "{status}");
    assert_eq!(status["hosts"], 3, "{status}");
    let out = d.cli(&["directory", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("online"), "{text}");

    // A host entry added: connected; one removed: dropped (the local host stays).
    ldap.ldapmodify(KVM3);
    wait_for(Duration::from_secs(20), "kvm3 connected", || {
        (hosts(&d).get(&s.uri("kvm3")) == Some(&("directory".to_string(), "connected".to_string())))
            .then_some(())
    });
    ldap.ldapdelete("cn=kvm2,cn=computers,dc=example,dc=com");
    wait_for(Duration::from_secs(20), "kvm2 dropped", || {
        (!hosts(&d).contains_key(&s.uri("kvm2"))).then_some(())
    });
    assert!(hosts(&d).contains_key(&local));
    // A directory host is removed in the directory, not through the API.
    let (code, body) = d.http("DELETE", "/api/v1/hosts/kvm1", None);
    assert!((400..500).contains(&code), "{code} {body}");
    assert!(body.to_string().contains("directory"), "{body}");
    assert!(hosts(&d).contains_key(&s.uri("kvm1")));

    // Directory profiles beside the local ones; a VM created from one.
    let names: Vec<String> = d
        .get("/api/v1/profiles")
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    for n in ["UCS 4 (64 Bit)", "Microsoft Windows 2016 (64 Bit)", "Linux"] {
        assert!(names.iter().any(|x| x == n), "{n} missing: {names:?}");
    }
    // The listing says where each comes from.
    let ucs = d.get("/api/v1/profiles/UCS%204%20(64%20Bit)");
    assert!(
        ucs["origin"]
            .as_str()
            .is_some_and(|o| o.starts_with("directory:cn=UCS 4 (64 Bit),cn=kvm,cn=Profiles")),
        "{ucs}"
    );
    assert!(d.get("/api/v1/profiles/Linux").get("origin").is_none());
    let (code, created) = d.http(
        "POST",
        "/api/v1/vms",
        Some(
            r#"{"host":"kvm1","profile":"Microsoft Windows 2016 (64 Bit)","name":"from-ldap",
                "memory_kib":65536,"disks":[],"networks":[]}"#,
        ),
    );
    assert_eq!(code, 201, "{created}");
    let uuid = created["vm"]["uuid"].as_str().unwrap();
    assert_eq!(created["vm"]["vcpus"], 2, "{created}");
    let (code, xml) = http_raw(
        &d.socket,
        "GET",
        &format!("/api/v1/vms/{uuid}/xml?host=kvm1"),
        None,
    );
    assert_eq!(code, 200, "{xml}");
    assert!(xml.contains("localtime"), "the profile's RTC offset: {xml}");

    // Notes: written to the directory on create (with the profile's DN) and on edit, read
    // back, and a change made in the directory is shown after a refresh.
    let (code, noted) = d.http(
        "POST",
        "/api/v1/vms",
        Some(
            r#"{"host":"kvm1","profile":"UCS 4 (64 Bit)","name":"noted","memory_kib":65536,
                "disks":[],"networks":[],"description":"web server","contact":"ops@example.com"}"#,
        ),
    );
    assert_eq!(code, 201, "{noted}");
    let noted = noted["vm"]["uuid"].as_str().unwrap().to_string();
    let entry = directory_note(&ldap, &noted);
    assert!(
        entry.contains("univentionVirtualMachineDescription: web server"),
        "{entry}"
    );
    assert!(
        entry.contains("univentionVirtualMachineContact: ops@example.com"),
        "{entry}"
    );
    assert!(
        entry.contains("univentionVirtualMachineProfileRef: cn=UCS 4 (64 Bit),cn=kvm,cn=Profiles"),
        "{entry}"
    );
    let changed = patch_description(&d, &noted, "web server 2");
    assert_eq!(changed["vm"]["description"], "web server 2");
    assert!(
        directory_note(&ldap, &noted).contains("univentionVirtualMachineDescription: web server 2")
    );
    assert_eq!(shown_description(&d, &noted), "web server 2");
    ldap.ldapmodify(&format!(
        "dn: {}\nchangetype: modify\nreplace: univentionVirtualMachineDescription\n\
         univentionVirtualMachineDescription: edited in the directory\n",
        note_dn(&noted)
    ));
    wait_for(Duration::from_secs(20), "the directory's note", || {
        (shown_description(&d, &noted) == "edited in the directory").then_some(())
    });
    // Searching finds it by the directory's text.
    let found = d.get("/api/v1/vms?q=*edited*");
    assert!(found.to_string().contains(&noted), "{found}");
    // The note entry removed: the definition's own copy shows again.
    ldap.ldapdelete(&note_dn(&noted));
    wait_for(Duration::from_secs(20), "the definition's note", || {
        (shown_description(&d, &noted) == "web server 2").then_some(())
    });

    // A profile changed in the directory is used after the next refresh.
    ldap.ldapmodify(
        "dn: cn=Microsoft Windows 2016 (64 Bit),cn=kvm,cn=Profiles,cn=Virtual Machine Manager,dc=example,dc=com\n\
         changetype: modify\nreplace: univentionVirtualMachineProfileCPUs\nuniventionVirtualMachineProfileCPUs: 3\n",
    );
    wait_for(Duration::from_secs(20), "the changed profile", || {
        let p = d.get("/api/v1/profiles/Microsoft%20Windows%202016%20(64%20Bit)");
        (p["vcpus"] == 3).then_some(())
    });

    // The bind password is in no answer and no log line.
    for text in [
        d.log(),
        d.get("/api/v1/directory").to_string(),
        d.get("/api/v1/openapi.json").to_string(),
        String::from_utf8_lossy(&d.cli(&["--json", "directory", "status"]).stdout).into_owned(),
    ] {
        assert!(!text.contains(SERVICE_PW), "password leaked: {text}");
    }
}

#[test]
fn directory_hosts_meet_the_runtime_host_policy_unless_trusted() {
    let s = Setup::new();
    let ldap = Slapd::start(slapd::Options::default());
    // No [api] test_host_dirs: test:///FILE hosts are refused for API clients, and so for
    // whoever writes host entries.
    let d = start(&ldap.uri(), &[], &s.config(false, ""));
    assert!(directory_uris(&d).is_empty(), "{:?}", hosts(&d));
    assert!(
        d.log().contains("not connecting to this host"),
        "{}",
        d.log()
    );
    // … and visible in the API and the CLI with the reason, not only in the log.
    let status = d.get("/api/v1/directory");
    assert_eq!(status["hosts"], 3);
    let refused = status["refused_hosts"].as_array().unwrap();
    let uris: Vec<&str> = refused.iter().map(|h| h["uri"].as_str().unwrap()).collect();
    assert_eq!(
        uris,
        [s.uri("kvm1"), s.uri("kvm2"), s.uri("xen1")],
        "{status}"
    );
    for h in refused {
        assert!(
            h["reason"].as_str().unwrap().contains("test"),
            "a reason that names the rule: {h}"
        );
    }
    let out = d.cli(&["directory", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("refused:   {}", s.uri("kvm1"))),
        "{text}"
    );
    // An entry removed from the directory leaves the list.
    ldap.ldapdelete("cn=kvm2,cn=computers,dc=example,dc=com");
    wait_for(Duration::from_secs(20), "kvm2 off the refused list", || {
        (d.get("/api/v1/directory")["refused_hosts"]
            .as_array()
            .unwrap()
            .len()
            == 2)
            .then_some(())
    });
    drop(d);
    ldap.ldapmodify(
        "dn: cn=kvm2,cn=computers,dc=example,dc=com\nchangetype: add\nobjectClass: device\n\
         objectClass: domainRelatedObject\nobjectClass: uvmmHostServices\ncn: kvm2\n\
         associatedDomain: example.com\nuniventionService: KVM Host\n",
    );
    let trusted = start(&ldap.uri(), &[], &s.config(false, "trust_host_uris = true"));
    assert_eq!(directory_uris(&trusted).len(), 3, "{:?}", hosts(&trusted));
}

#[test]
fn slapd_down_serves_and_starts_from_the_cache() {
    let s = Setup::new();
    let mut ldap = Slapd::start(slapd::Options::default());
    let mut d = start(&ldap.uri(), &[], &s.config(true, ""));
    let want: Vec<String> = ["kvm1", "kvm2", "xen1"].iter().map(|n| s.uri(n)).collect();
    assert_eq!(directory_uris(&d), want);

    // A VM of the node file (same UUID on every test:///FILE open, so after a restart too).
    let vm = d
        .vms()
        .into_iter()
        .find(|v| v["host_id"] == "kvm1")
        .unwrap();
    let uuid = vm["uuid"].as_str().unwrap().to_string();
    patch_description(&d, &uuid, "before the outage");
    assert!(directory_note(&ldap, &uuid).contains("before the outage"));

    let events = d.events();
    ldap.stop();
    let down = events.expect("directory_state degraded", Duration::from_secs(30), |e| {
        e["kind"] == "directory_state" && e["available"] == false
    });
    assert!(
        down["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{down}"
    );
    let status = wait_for(Duration::from_secs(30), "degraded", || {
        let st = d.get("/api/v1/directory");
        (st["degraded"] == true).then_some(st)
    });
    assert_eq!(status["online"], false, "{status}");
    assert!(
        status["degraded_reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{status}"
    );
    // Still serving the directory's hosts.
    assert_eq!(directory_uris(&d), want);
    let (_, metrics) = http_raw(&d.socket, "GET", "/metrics", None);
    assert!(metrics.contains("uvmm_directory_online 0"), "{metrics}");
    let text = String::from_utf8_lossy(&d.cli(&["directory", "status"]).stdout).into_owned();
    assert!(text.contains("DEGRADED"), "{text}");
    let (code, out) = check_daemon(&d);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("WARNING") && out.contains("serving from the cache"),
        "{out}"
    );

    // A note edit while the directory is down: accepted, shown, queued (on disk).
    patch_description(&d, &uuid, "during the outage");
    assert_eq!(shown_description(&d, &uuid), "during the outage");
    assert_eq!(d.get("/api/v1/directory")["pending_writes"], 1);
    assert!(
        std::fs::read_to_string(d.dir.path().join("state/directory/notes-journal.jsonl"))
            .unwrap()
            .contains("during the outage")
    );

    // Restarted while slapd is down: starts from the disk cache.
    d.restart();
    assert_eq!(directory_uris(&d), want);
    let status = d.get("/api/v1/directory");
    assert_eq!(
        (&status["degraded"], &status["from_cache"]),
        (&Value::Bool(true), &Value::Bool(true)),
        "{status}"
    );
    assert!(status["state_time"].is_i64(), "{status}");
    assert_eq!(
        status["pending_writes"], 1,
        "the queue survives a restart: {status}"
    );
    assert_eq!(shown_description(&d, &uuid), "during the outage");

    // slapd back: online again (an event says so), and changes are followed again.
    let events = d.events();
    ldap.restart();
    events.expect("directory_state online", Duration::from_secs(30), |e| {
        e["kind"] == "directory_state" && e["available"] == true
    });
    wait_for(Duration::from_secs(30), "online again", || {
        (d.get("/api/v1/directory")["online"] == true).then_some(())
    });
    let (_, metrics) = http_raw(&d.socket, "GET", "/metrics", None);
    assert!(metrics.contains("uvmm_directory_online 1"), "{metrics}");
    assert_eq!(check_daemon(&d).0, Some(0));
    // The queue replayed: the directory has the edit, nothing is pending, uvmmd shows it.
    wait_for(Duration::from_secs(20), "the queue replayed", || {
        (d.get("/api/v1/directory")["pending_writes"] == 0).then_some(())
    });
    assert!(
        directory_note(&ldap, &uuid)
            .contains("univentionVirtualMachineDescription: during the outage"),
        "{}",
        directory_note(&ldap, &uuid)
    );
    assert_eq!(shown_description(&d, &uuid), "during the outage");
    ldap.ldapmodify(KVM3);
    wait_for(Duration::from_secs(20), "kvm3 after the outage", || {
        directory_uris(&d).contains(&s.uri("kvm3")).then_some(())
    });
}

#[test]
fn two_daemons_share_a_replicated_directory() {
    let s = Setup::new();
    let (provider, consumer) = Slapd::pair();
    let a = start(&provider.uri(), &[], &s.config(true, ""));
    let b = start(&consumer.uri(), &[], &s.config(true, ""));
    let profiles = |d: &Daemon| d.get("/api/v1/profiles");
    assert_eq!(directory_uris(&a), directory_uris(&b));
    assert_eq!(directory_uris(&a).len(), 3);
    assert_eq!(profiles(&a), profiles(&b));

    // A note written through a (to the provider) is shown by b (from the consumer) for
    // the same VM (both open the same node file, so the VM has one UUID on both).
    let uuid = a
        .vms()
        .into_iter()
        .find(|v| v["host_id"] == "kvm1")
        .unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    patch_description(&a, &uuid, "shared note");
    wait_for(Duration::from_secs(30), "the note on b", || {
        (shown_description(&b, &uuid) == "shared note").then_some(())
    });

    // A host entry added on the provider reaches both daemons (b through replication).
    provider.ldapmodify(KVM3);
    for d in [&a, &b] {
        wait_for(Duration::from_secs(30), "kvm3 on both daemons", || {
            directory_uris(d).contains(&s.uri("kvm3")).then_some(())
        });
    }
}

#[test]
fn standalone_never_opens_a_directory_connection() {
    let s = Setup::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = format!(
        "[directory]\nuri = \"ldap://127.0.0.1:{port}/dc=example,dc=com\"\n\
         connect_timeout_secs = 1\ntimeout_secs = 1\ncache_dir = \"{}\"\n",
        s.dir.path().join("cache").display()
    );
    // -b "" (the harness's default) wins over [directory].
    let d = Daemon::start_with(&[demo_uri("demo-kvm1")], &[], &config);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(d.get("/api/v1/directory")["mode"], "standalone");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "standalone uvmmd connected to the directory port"
    );
    drop(d);

    // The control: the same configuration without -b "" connects there (and, as nothing
    // answers, starts degraded).
    let d = Daemon::start_with(
        &[demo_uri("demo-kvm1")],
        &["-b", &format!("ldap://127.0.0.1:{port}/dc=example,dc=com")],
        &config,
    );
    let accepted = listener.accept();
    assert!(
        accepted.is_ok(),
        "directory mode did not connect: {accepted:?}"
    );
    let status = d.get("/api/v1/directory");
    assert_eq!(
        (&status["mode"], &status["degraded"]),
        (&Value::from("directory"), &Value::Bool(true)),
        "{status}"
    );
}
