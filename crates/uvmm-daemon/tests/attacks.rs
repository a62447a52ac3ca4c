//! The named attacks of issue 13 against the real daemon on `-s 0.0.0.0` over real TLS,
//! with real PAM accounts: each is answered 4xx and changes nothing (VM definitions, hosts,
//! volumes and backups compared before and after). tests/hostile.rs holds the longer
//! table of hostile request bodies (with the admin token, over loopback HTTP and as
//! `nobody`); this one is about who is asking.

mod common;

use common::remote::*;
use common::world::*;
use common::*;
use serde_json::Value;
use std::io::Read;
use std::time::{Duration, Instant};

struct Session {
    cookie: String,
    csrf: String,
}

impl Session {
    fn headers(&self) -> Vec<String> {
        vec![
            format!("Cookie: {}", self.cookie),
            format!("X-CSRF-Token: {}", self.csrf),
        ]
    }
}

fn login(r: &Remote, user: &str, pw: &str) -> Session {
    let (status, s) = r.login(user, pw);
    assert_eq!(status, 200, "{user} logs in");
    let (cookie, csrf) = s.unwrap();
    assert!(cookie.starts_with("__Host-uvmm-session="), "{cookie}");
    Session { cookie, csrf }
}

/// A path of the document with its parameters filled in with real objects.
fn concrete(path: &str, uuid: &str) -> String {
    path.replace("{id}", "demo-kvm1")
        .replace("{uuid}", uuid)
        .replace("{pool}", "default")
        .replace("{volume}", "web-01.qcow2")
        .replace("{action}", "stop")
        .replace("{vm}", "web-01")
        .replace("{version}", "1")
        .replace("{target}", "vda")
        .replace("{mac}", "52:54:00:00:00:01")
        .replace("{name}", "ci")
        .replace("{task}", "00000000-0000-4000-8000-000000000000")
}

#[test]
fn named_attacks_are_refused_and_change_nothing() {
    let mut acc = Accounts::new("a");
    let (gadm, gop, gview, gweb) = (
        acc.group("adm"),
        acc.group("op"),
        acc.group("view"),
        acc.group("web"),
    );
    let pw = format!("Pw-{}-y", std::process::id());
    let alice = acc.user("alice", &pw, &[&gadm]);
    let vera = acc.user("vera", &pw, &[&gview]);
    let sam = acc.user("sam", &pw, &[&gweb]);
    let grant = format!(
        "[[auth.grant]]\ngroup = \"{gweb}\"\nrole = \"operator\"\nhosts = [\"demo-kvm1\"]\nvms = [\"web-*\"]\n"
    );
    let r = Remote::start(&roles_config(&gadm, &gop, &gview, "", &grant));
    settled(&r.d);
    let (a, v, s) = (
        login(&r, &alice, &pw),
        login(&r, &vera, &pw),
        login(&r, &sam, &pw),
    );
    // A session that was ended on the server.
    let gone = login(&r, &alice, &pw);
    let h: Vec<String> = gone.headers();
    let h: Vec<&str> = h.iter().map(String::as_str).collect();
    assert_eq!(r.https("POST", "/api/v1/logout", &h, None).0, 204);

    let web01 = r.d.vm("web-01", "demo-kvm1")["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let db01 = r.d.vm("db-01", "demo-kvm1")["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let web01b = r.d.vm("web-01", "demo-kvm2")["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let vm = |u: &str, host: &str, rest: &str| format!("/api/v1/vms/{u}{rest}?host={host}");
    let before = world(&r.d);

    let own = |s: &Session| s.headers();
    let forged = vec![
        format!("Cookie: __Host-uvmm-session={}", "a".repeat(64)),
        format!("X-CSRF-Token: {}", "b".repeat(64)),
    ];
    let no_csrf = vec![format!("Cookie: {}", a.cookie)];
    let wrong_csrf = vec![
        format!("Cookie: {}", a.cookie),
        format!("X-CSRF-Token: {}", v.csrf),
    ];
    let plain_cookie = vec![
        format!(
            "Cookie: uvmm-session={}",
            a.cookie.split('=').nth(1).unwrap()
        ),
        format!("X-CSRF-Token: {}", a.csrf),
    ];
    let bearer = |t: &str| vec![format!("Authorization: Bearer {t}")];
    let patch = r#"{"description":"changed by an attack"}"#;
    let big = format!(r#"{{"description":"{}"}}"#, "x".repeat(10 << 20));
    let nul = "{\"description\":\"a\\u0000b\"}";
    let control = "{\"description\":\"a\\u001b[31mred\"}";
    // (attack, method, path, headers, body, expected statuses)
    type Row = (
        &'static str,
        &'static str,
        String,
        Vec<String>,
        Option<String>,
        &'static [u16],
    );
    let table: Vec<Row> = vec![
        (
            "no credentials",
            "PATCH",
            vm(&web01, "demo-kvm1", ""),
            vec![],
            Some(patch.into()),
            &[401],
        ),
        (
            "no credentials, read",
            "GET",
            "/api/v1/vms".into(),
            vec![],
            None,
            &[401],
        ),
        (
            "wrong token",
            "PATCH",
            vm(&web01, "demo-kvm1", ""),
            bearer(&format!("uvmm_0000000000000000_{}", "0".repeat(64))),
            Some(patch.into()),
            &[401],
        ),
        (
            "wrong legacy token",
            "PATCH",
            vm(&web01, "demo-kvm1", ""),
            bearer(&"0".repeat(64)),
            Some(patch.into()),
            &[401],
        ),
        (
            "Basic auth",
            "PATCH",
            vm(&web01, "demo-kvm1", ""),
            vec![format!("Authorization: Basic {}", "YWxpY2U6cHc=")],
            Some(patch.into()),
            &[401],
        ),
        (
            "wrong password",
            "POST",
            "/api/v1/login".into(),
            vec![],
            Some(format!(r#"{{"user":"{alice}","password":"wrong"}}"#)),
            &[401],
        ),
        (
            "password with NUL",
            "POST",
            "/api/v1/login".into(),
            vec![],
            Some(format!(r#"{{"user":"{alice}","password":"{pw}\u0000"}}"#)),
            &[401],
        ),
        (
            "forged session",
            "PATCH",
            vm(&web01, "demo-kvm1", ""),
            forged,
            Some(patch.into()),
            &[401],
        ),
        (
            "ended session",
            "PATCH",
            vm(&web01, "demo-kvm1", ""),
            gone.headers(),
            Some(patch.into()),
            &[401],
        ),
        (
            "plain-HTTP cookie name on TLS",
            "PATCH",
            vm(&web01, "demo-kvm1", ""),
            plain_cookie,
            Some(patch.into()),
            &[401],
        ),
        (
            "missing CSRF token",
            "PATCH",
            vm(&web01, "demo-kvm1", ""),
            no_csrf,
            Some(patch.into()),
            &[403],
        ),
        (
            "another session's CSRF token",
            "PATCH",
            vm(&web01, "demo-kvm1", ""),
            wrong_csrf,
            Some(patch.into()),
            &[403],
        ),
        (
            "viewer edits",
            "PATCH",
            vm(&web01, "demo-kvm1", ""),
            own(&v),
            Some(patch.into()),
            &[403],
        ),
        (
            "operator edits in scope",
            "PATCH",
            vm(&web01, "demo-kvm1", ""),
            own(&s),
            Some(patch.into()),
            &[403],
        ),
        (
            "operator out of scope: other VM",
            "POST",
            vm(&db01, "demo-kvm1", "/stop"),
            own(&s),
            None,
            &[404],
        ),
        (
            "operator out of scope: other host",
            "POST",
            vm(&web01b, "demo-kvm2", "/stop"),
            own(&s),
            None,
            &[404],
        ),
        (
            "operator creates a VM (needs an admin, scoped or not)",
            "POST",
            "/api/v1/vms".into(),
            own(&s),
            Some(
                r#"{"host":"demo-kvm1","profile":"Linux","name":"web-x","memory_kib":65536}"#
                    .into(),
            ),
            &[403],
        ),
        (
            "operator removes its host",
            "DELETE",
            "/api/v1/hosts/demo-kvm1".into(),
            own(&s),
            None,
            &[403],
        ),
        (
            "operator restores",
            "POST",
            "/api/v1/restore".into(),
            own(&s),
            Some("{}".into()),
            &[403],
        ),
        (
            "operator makes a token",
            "POST",
            "/api/v1/tokens".into(),
            own(&s),
            Some(r#"{"name":"x","role":"operator"}"#.into()),
            &[403],
        ),
        (
            "admin token above nothing: unknown role",
            "POST",
            "/api/v1/tokens".into(),
            own(&a),
            Some(r#"{"name":"x","role":"root"}"#.into()),
            &[400],
        ),
        (
            "traversal in a backup name",
            "GET",
            "/api/v1/backups/..%2F..%2F..%2Fetc%2Fpasswd".into(),
            own(&a),
            None,
            &[400, 404],
        ),
        (
            "traversal in a volume name",
            "POST",
            "/api/v1/hosts/demo-kvm1/pools/default/volumes".into(),
            own(&a),
            Some(r#"{"name":"../../../etc/cron.d/x","capacity_bytes":1048576}"#.into()),
            &[400],
        ),
        (
            "traversal in a volume path",
            "DELETE",
            "/api/v1/hosts/demo-kvm1/pools/default/volumes/..%2F..%2Fetc%2Fpasswd".into(),
            own(&a),
            None,
            &[400, 404],
        ),
        (
            "traversal in a snapshot name",
            "POST",
            vm(&web01, "demo-kvm1", "/snapshots"),
            own(&a),
            Some(r#"{"name":"../../../etc/cron.d/x"}"#.into()),
            &[400],
        ),
        (
            "traversal in a clone's name (its images are named after it)",
            "POST",
            vm(&web01, "demo-kvm1", "/clone"),
            own(&a),
            Some(r#"{"name":"../../../etc/cron.d/x"}"#.into()),
            &[400],
        ),
        (
            "traversal in a new VM name",
            "POST",
            vm(&web01, "demo-kvm1", "/rename"),
            own(&a),
            Some(r#"{"name":"../../../etc/cron.d/x"}"#.into()),
            &[400],
        ),
        (
            "traversal in a token name",
            "DELETE",
            "/api/v1/tokens/..%2Ftokens.json".into(),
            own(&a),
            None,
            &[400, 404],
        ),
        (
            "traversal in a profile name",
            "GET",
            "/api/v1/profiles/..%2F..%2Fetc%2Fpasswd".into(),
            own(&a),
            None,
            &[400, 404],
        ),
        (
            "NUL in a note",
            "PATCH",
            vm(&web01, "demo-kvm1", ""),
            own(&a),
            Some(nul.into()),
            &[400],
        ),
        (
            "control bytes in a note",
            "PATCH",
            vm(&web01, "demo-kvm1", ""),
            own(&a),
            Some(control.into()),
            &[400],
        ),
        (
            "NUL in a path",
            "GET",
            "/api/v1/hosts/demo%00kvm1".into(),
            own(&a),
            None,
            &[400, 404],
        ),
        (
            "10 MB body",
            "PATCH",
            vm(&web01, "demo-kvm1", ""),
            own(&a),
            Some(big),
            &[413],
        ),
        (
            "ext URI runs a program",
            "POST",
            "/api/v1/hosts".into(),
            own(&a),
            Some(r#"{"uri":"qemu+ext:///system?command=/tmp/evil"}"#.into()),
            &[400, 403],
        ),
        (
            "not a libvirt URI",
            "POST",
            "/api/v1/hosts".into(),
            own(&a),
            Some(r#"{"uri":"file:///etc/shadow"}"#.into()),
            &[400],
        ),
        (
            "bad URI in the path",
            "GET",
            "/api/v1/hosts/%ZZ".into(),
            own(&a),
            None,
            &[400, 404],
        ),
    ];
    for (name, method, path, headers, body, want) in &table {
        let h: Vec<&str> = headers.iter().map(String::as_str).collect();
        let (status, text) = r.https(method, path, &h, body.as_deref());
        assert!(
            want.contains(&status),
            "{name}: {method} {path} → {status}, want {want:?}: {}",
            &text[..text.len().min(300)]
        );
        if status != 413 {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert!(
                v["error"]["code"].is_string(),
                "{name}: not the JSON error envelope: {text}"
            );
        }
    }

    // Refusals of known callers are audited with what they aimed at; 401s have no who.
    let audit = std::fs::read_to_string(r.d.dir.path().join("audit.log")).unwrap();
    let records: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        records.iter().any(|v| v["who"]["user"] == vera.as_str()
            && v["what"]["operation"] == "edit_vm"
            && v["result"]["status"] == 403
            && v["target"]["vm"] == "web-01"),
        "{audit}"
    );
    assert!(
        !audit.contains(&a.csrf) && !audit.contains(a.cookie.split('=').nth(1).unwrap()),
        "a session secret in the audit log"
    );

    // A viewer calling every route that changes something: 403, route by route.
    let doc = r.d.get("/api/v1/openapi.json");
    let mut walked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let permission = op["x-uvmm-permission"].as_str().unwrap();
            if method == "get" || ["public", "authenticated"].contains(&permission) {
                continue;
            }
            let m = method.to_uppercase();
            let p = format!("{}?host=demo-kvm1", concrete(path, &web01));
            let p = if path.contains("{uuid}") {
                p
            } else {
                concrete(path, &web01)
            };
            let hv = own(&v);
            let h: Vec<&str> = hv.iter().map(String::as_str).collect();
            let (status, text) = r.https(&m, &p, &h, Some("{}"));
            assert_eq!(status, 403, "viewer {m} {p}: {text}");
            walked += 1;
        }
    }
    // Today's document has 24 (all but login and logout); fewer means the walk broke.
    assert!(walked >= 24, "only {walked} mutating routes");

    assert_unchanged(&before, &world(&r.d), "a refused request changed something");

    // XML in a note is a note: stored as text, the definition keeps its devices.
    let xmlnote = r#"{"description":"</description><devices><disk type='file'><source file='/etc/shadow'/></disk></devices><description>"}"#;
    let hv = own(&a);
    let h: Vec<&str> = hv.iter().map(String::as_str).collect();
    let (status, text) = r.https("PATCH", &vm(&web01, "demo-kvm1", ""), &h, Some(xmlnote));
    assert!(status == 200 || status == 400, "{status}: {text}");
    let (_, xml) = http_raw(
        &r.d.socket,
        "GET",
        &vm(&web01, "demo-kvm1", "/xml").replace("/xml?", "/xml?inactive=true&"),
        None,
    );
    assert!(
        !xml.contains("<source file='/etc/shadow'"),
        "the note became XML: {xml}"
    );
    assert_eq!(xml.matches("<devices>").count(), 1, "{xml}");
}

#[test]
fn an_idle_session_expires() {
    let mut acc = Accounts::new("e");
    let gadm = acc.group("adm");
    let pw = format!("Pw-{}-z", std::process::id());
    let alice = acc.user("alice", &pw, &[&gadm]);
    let r = Remote::start(&roles_config(
        &gadm,
        "x-none",
        "x-none",
        "session_idle_mins = 1",
        "",
    ));
    let s = login(&r, &alice, &pw);
    let hv = s.headers();
    let h: Vec<&str> = hv.iter().map(String::as_str).collect();
    assert_eq!(r.https("GET", "/api/v1/whoami", &h, None).0, 200);
    std::thread::sleep(Duration::from_secs(62));
    let before = world(&r.d);
    let uuid = r.d.vm("web-01", "demo-kvm1")["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, text) = r.https(
        "PATCH",
        &format!("/api/v1/vms/{uuid}?host=demo-kvm1"),
        &h,
        Some(r#"{"description":"late"}"#),
    );
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("expired"), "{text}");
    assert_unchanged(
        &before,
        &world(&r.d),
        "an expired session changed something",
    );
}

#[test]
fn a_thousand_slow_tls_connections_hold_nobody_out() {
    // The test opens 1,000 connections: more descriptors than the default soft limit.
    let want = 4096;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read only the struct passed, which lives here.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max.min(want);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    let config = format!(
        "{}\nrequest_timeout_secs = 5\nmax_connections = 2000\n",
        demo_runtime_config()
    );
    let r = Remote::start(&config);
    let addr = format!("127.0.0.1:{}", r.port);
    // 1,000 connections that never start the handshake.
    let mut held = Vec::new();
    for _ in 0..1000 {
        match std::net::TcpStream::connect(&addr) {
            Ok(c) => held.push(c),
            Err(e) => panic!("connect {}: {e}", held.len()),
        }
    }
    // Another client (another address) and root on the socket get in at once.
    let started = Instant::now();
    let out = r.curl(
        "GET",
        "/api/v1/version",
        &[&format!("Authorization: Bearer {}", r.token())],
        None,
        &["--interface", "127.0.0.2"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("200"),
        "another client during the flood: {text}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(http_raw(&r.d.socket, "GET", "/api/v1/version", None).0, 200);
    // The held ones are closed after the handshake time (request_timeout_secs).
    std::thread::sleep(Duration::from_secs(7));
    let mut closed = 0;
    for c in held.iter_mut() {
        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 64];
        match c.read(&mut buf) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            _ => {}
        }
    }
    assert_eq!(
        closed,
        held.len(),
        "connections still held after the timeout"
    );
    let out = r.curl(
        "GET",
        "/api/v1/version",
        &[&format!("Authorization: Bearer {}", r.token())],
        None,
        &[],
    );
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("200"));
}
