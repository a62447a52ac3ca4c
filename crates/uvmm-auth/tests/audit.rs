//! The audit log on disk: JSON lines, mode 0640, appended by concurrent writers without
//! interleaving, reopened after logrotate moved it, and never a secret in it.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::SystemTime;
use uvmm_auth::audit::{redact_path, redact_text, AuditLog, AuditRecord, AuditTarget};
use uvmm_auth::caller::{Origin, Principal};

/// A request carrying secrets everywhere a client can put them, as the daemon's audit
/// layer receives it: the path with its query, an error message that quotes the input,
/// and (not handed to the audit record at all) headers and body.
struct Hostile {
    path: &'static str,
    authorization: &'static str,
    cookie: &'static str,
    body: &'static str,
    error_message: &'static str,
}

const SECRETS: &[&str] = &[
    "hunter2",
    "uvmm_00112233aabbccdd_ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
    "ffeeddccbbaa9988",
    "c0ffee",
    "vncSecret",
    "abc123cookie",
];

fn hostile() -> Hostile {
    Hostile {
        path: "/api/v1/vms/5f0c/graphics?host=kvm2&password=vncSecret&token=uvmm_00112233aabbccdd_ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
        authorization: "Bearer uvmm_00112233aabbccdd_ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
        cookie: "__Host-uvmm-session=abc123cookie",
        body: r#"{"password":"hunter2","csrf":"c0ffee"}"#,
        error_message: "libvirt refused: passwd=hunter2 is too short; Authorization: Bearer uvmm_00112233aabbccdd_ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100, csrf=c0ffee",
    }
}

#[test]
fn records_on_disk_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log/uvmm/audit.log");
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );

    let req = hostile();
    // The audit layer gets typed parts only; headers and body are never handed over.
    let _not_recorded = (req.authorization, req.cookie, req.body);
    let principal = Principal::Token { name: "ci".into() };
    let origin = Origin::Tcp {
        addr: "192.0.2.4:51234".parse().unwrap(),
    };
    let record = AuditRecord::request(
        SystemTime::now(),
        &principal,
        origin,
        "POST",
        "/api/v1/vms/{uuid}/graphics",
        req.path,
        "vm.set_graphics_password",
    )
    .target(AuditTarget {
        host: Some("kvm2".into()),
        vm: Some("web-1".into()),
        uuid: Some("5f0c".into()),
        object: None,
    })
    .result(422, Some("invalid"), Some(req.error_message))
    .task(Some("task-17".into()));
    log.record(&record).unwrap();
    log.record(&AuditRecord::login(
        SystemTime::now(),
        "alice",
        origin,
        401,
        Some("bad credentials"),
    ))
    .unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    for s in SECRETS {
        assert!(!text.contains(s), "secret {s:?} in the audit log:\n{text}");
    }
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let r = &lines[0];
    assert_eq!(
        r["who"],
        serde_json::json!({"kind": "token", "token": "ci"})
    );
    assert_eq!(r["from"], "tcp=192.0.2.4:51234");
    assert_eq!(r["what"]["method"], "POST");
    assert_eq!(r["what"]["route"], "/api/v1/vms/{uuid}/graphics");
    assert_eq!(
        r["what"]["path"],
        "/api/v1/vms/5f0c/graphics?host=kvm2&password=(hidden)&token=(hidden)"
    );
    assert_eq!(r["what"]["operation"], "vm.set_graphics_password");
    assert_eq!(
        r["target"],
        serde_json::json!({"host": "kvm2", "vm": "web-1", "uuid": "5f0c"})
    );
    assert_eq!(r["result"]["status"], 422);
    assert_eq!(r["result"]["error"], "invalid");
    assert!(r["result"]["message"]
        .as_str()
        .unwrap()
        .starts_with("libvirt refused: passwd=(hidden)"));
    assert_eq!(r["task"], "task-17");
    assert!(r["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        lines[1]["who"],
        serde_json::json!({"kind": "login", "user": "alice"})
    );
    assert_eq!(lines[1]["result"]["status"], 401);
}

#[test]
fn unix_peer_and_line_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(&path).unwrap();
    let p = Principal::UnixPeer {
        uid: 1000,
        pid: Some(4242),
        user: Some("alice".into()),
    };
    let r = AuditRecord::request(
        SystemTime::now(),
        &p,
        Origin::Unix,
        "DELETE",
        "/api/v1/vms/{uuid}",
        "/api/v1/vms/u",
        "vm.delete",
    )
    .result(
        500,
        Some("libvirt"),
        Some("line one\nline two\r\n{\"forged\": true}"),
    );
    log.record(&r).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text.lines().count(),
        1,
        "a message cannot forge a second record"
    );
    let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!(
        v["who"],
        serde_json::json!({"kind": "unix_peer", "user": "alice", "uid": 1000, "pid": 4242})
    );
    assert_eq!(v["from"], "unix");
}

#[test]
fn concurrent_writers_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = Arc::new(AuditLog::open(&path).unwrap());
    let p = Principal::Session { user: "bob".into() };
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..250 {
                    let r = AuditRecord::request(
                        SystemTime::now(),
                        &p,
                        Origin::Unix,
                        "POST",
                        "/r",
                        "/r",
                        &format!("op{t}-{i}"),
                    )
                    .result(200, None, Some(&"x".repeat(i * 7)));
                    log.record(&r).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1000);
    for l in text.lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap();
    }

    // logrotate: the file is renamed; SIGHUP → reopen writes a new file, 0640 even if
    // something made it wider.
    let rotated = dir.path().join("audit.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    log.reopen().unwrap();
    log.record(&AuditRecord::request(
        SystemTime::now(),
        &p,
        Origin::Unix,
        "POST",
        "/r",
        "/r",
        "after",
    ))
    .unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    assert_eq!(
        std::fs::read_to_string(&rotated).unwrap().lines().count(),
        1000
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    log.reopen().unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
}

#[test]
fn redaction_helpers() {
    let req = hostile();
    let p = redact_path(req.path);
    let t = redact_text(req.error_message);
    for s in SECRETS {
        assert!(!p.contains(s) && !t.contains(s), "{s}: {p} / {t}");
    }
}
