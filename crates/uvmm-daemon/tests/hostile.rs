//! A hostile local user against a real uvmmd (issue 10). uvmmd runs as root, as in
//! production; every request of the tables is made by `curl` running as `nobody`
//! (`setpriv --reuid=65534`), so what is proven is what an unprivileged account gets.
//!
//! Two kinds of attacker: one without anything (no token: the UNIX socket's mode and the
//! TCP token keep it out entirely), and one that holds the API token (a less trusted tool or
//! a leaked token): every hostile request of the table is refused with a 4xx, and nothing
//! changes — hosts, VM definitions, backups and volumes are compared before and after.

mod common;

use common::world::*;
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const NOBODY: &str = "65534";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Run `curl` as nobody; returns (curl's exit code, HTTP status, body).
fn curl_as_nobody(args: &[&str], body: Option<&[u8]>) -> (i32, u16, String) {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid",
        NOBODY,
        "--regid",
        NOBODY,
        "--clear-groups",
        "--",
        "curl",
        "-s",
        "-S",
        "--max-time",
        "20",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
    ])
    .args(args)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if body.is_some() {
        cmd.args(["--data-binary", "@-"]);
    }
    let mut child = cmd
        .spawn()
        .expect("setpriv and curl are installed by the test command");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(b) = body {
        stdin.write_all(b).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        out.status.code().unwrap_or(-1),
        code.trim().parse().unwrap_or(0),
        body.to_string(),
    )
}

struct Attacker {
    base: String,
    token: String,
}

impl Attacker {
    /// A request over TCP with the token and the listener's own Host, plus `headers`.
    fn send(&self, method: &str, path: &str, headers: &[&str], body: Option<&str>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let auth = format!("Authorization: Bearer {}", self.token);
        let mut args = vec!["-X", method, &url, "-H", &auth];
        let has_type = headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("content-type"));
        if body.is_some() && !has_type {
            args.extend(["-H", "Content-Type: application/json"]);
        }
        for h in headers {
            args.extend(["-H", h]);
        }
        let (rc, status, text) = curl_as_nobody(&args, body.map(str::as_bytes));
        assert_eq!(rc, 0, "curl {method} {path} failed: {text}");
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }
}

fn start(dir_extra: &str) -> (Daemon, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let config = format!("{}\n{dir_extra}", demo_runtime_config());
    let d = Daemon::start_with(
        &[demo_uri("demo-kvm1"), demo_uri("demo-xen1")],
        &["-s", &listen],
        &config,
    );
    // nobody must be able to reach the socket file itself, so that its mode is what
    // refuses (a 0700 temporary directory would refuse before it).
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    (d, port)
}

#[test]
fn an_unprivileged_user_without_the_token_gets_nothing() {
    let (d, port) = start("");
    let socket = d.socket.display().to_string();
    // The UNIX socket is 0666: every local account may ask, and gets what the roles of
    // its groups allow; nobody has none (403 on every route, below).
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666);
    let (rc, status, text) =
        curl_as_nobody(&["--unix-socket", &socket, "http://uvmmd/api/v1/vms"], None);
    assert_eq!((rc, status), (0, 403), "nobody on the UNIX socket: {text}");
    // The token file: 0600 root.
    let token_file = d.token_file();
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let read = Command::new("setpriv")
        .args([
            "--reuid",
            NOBODY,
            "--regid",
            NOBODY,
            "--clear-groups",
            "cat",
        ])
        .arg(&token_file)
        .output()
        .unwrap();
    assert!(!read.status.success(), "nobody read the token");

    // Every route of the API, over TCP without the token (or with a wrong one): 401, in
    // the JSON envelope, and nothing changes.
    settled(&d);
    let before = world(&d);
    let doc = d.get("/api/v1/openapi.json");
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", "demo-kvm1")
            .replace("{uuid}", "00000000-0000-0000-0000-000000000000")
            .replace("{pool}", "default")
            .replace("{volume}", "web-01.qcow2")
            .replace("{action}", "start")
            .replace("{vm}", "web-01")
            .replace("{version}", "1")
            .replace("{target}", "vda")
            .replace("{mac}", "52:54:00:00:00:01")
            .replace(
                "{name}",
                if path.contains("tokens") {
                    "ci"
                } else {
                    "Linux"
                },
            )
            .replace("{task}", "00000000-0000-4000-8000-000000000000");
        for (method, op) in item.as_object().unwrap() {
            // The permission a caller needs (roles, issue 13): every route has one, and
            // only the login is open to strangers.
            let permission = op["x-uvmm-permission"].as_str().unwrap_or_default();
            let known = [
                "read",
                "lifecycle",
                "media",
                "console",
                "edit",
                "create",
                "delete",
                "storage",
                "hosts",
                "restore",
                "tokens",
                "public",
                "authenticated",
            ];
            assert!(
                known.contains(&permission),
                "{method} {path} has no permission: {op}"
            );
            // The console's websocket handshake is a GET that opens the VM's screen and
            // keyboard: it needs more than read, never less.
            assert!(
                method != "get"
                    || ["read", "authenticated"].contains(&permission)
                    || path == "/api/v1/tokens"
                    || (path == "/api/v1/vms/{uuid}/console" && permission == "console"),
                "{method} {path} reads and must need no more than read"
            );
            if permission == "public" {
                assert_eq!(path, "/api/v1/login", "only the login is public");
                continue;
            }
            let url = format!("http://127.0.0.1:{port}{concrete}");
            for auth in [
                None,
                Some("Authorization: Bearer 0000000000000000000000000000000000000000"),
            ] {
                let m = method.to_uppercase();
                let mut args = vec!["-X", &m, &url, "-H", "Content-Type: application/json"];
                if let Some(a) = auth {
                    args.extend(["-H", a]);
                }
                let body = (m != "GET").then_some(&b"{}"[..]);
                let (rc, status, text) = curl_as_nobody(&args, body);
                assert_eq!(rc, 0, "{m} {concrete}: {text}");
                assert_eq!(status, 401, "{m} {concrete} {auth:?}: {text}");
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["error"]["code"], "unauthorized", "{text}");
                checked += 1;
            }
            // The same over the UNIX socket as nobody: known, but without a role.
            let m = method.to_uppercase();
            let url = format!("http://uvmmd{concrete}");
            let args = [
                "--unix-socket",
                &socket,
                "-X",
                &m,
                &url,
                "-H",
                "Content-Type: application/json",
            ];
            let body = (m != "GET").then_some(&b"{}"[..]);
            let (rc, status, text) = curl_as_nobody(&args, body);
            assert_eq!((rc, status), (0, 403), "{m} {concrete} as nobody: {text}");
            checked += 1;
        }
    }
    assert!(
        checked > 100,
        "only {checked} requests: the route table is incomplete"
    );
    assert_unchanged(&before, &world(&d), "a refused request changed something");
}

#[test]
fn hostile_requests_with_the_token_are_refused_and_change_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A program an ext URI would run, leaving a mark if it ever ran.
    let marker = scratch.path().join("ran-as-root");
    let program = scratch.path().join("evil.sh");
    std::fs::write(&program, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A root-only file an attacker wants to read.
    let secret = scratch.path().join("shadow");
    std::fs::write(&secret, "root:$y$TOPSECRETHASH:19000:0:99999:7:::\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let root_only = scratch.path().join("private");
    std::fs::create_dir(&root_only).unwrap();
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(root_only.join("exists.iso"), "x").unwrap();

    let log = scratch.path().join("uvmmd.log");
    let (d, port) = start("");
    let t = Attacker {
        base: format!("http://127.0.0.1:{port}"),
        token: std::fs::read_to_string(d.token_file())
            .unwrap()
            .trim()
            .to_string(),
    };
    // A VNC password and a few versions to read back.
    let set = d.cli(&[
        "vm",
        "set",
        "web-01",
        "--host",
        "demo-kvm1",
        "vnc_password=S3cretVnc",
    ]);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    d.cli(&[
        "vm",
        "set",
        "web-01",
        "--host",
        "demo-kvm1",
        "description=second",
    ]);
    let web01 = d.vm("web-01", "demo-kvm1");
    let uuid = web01["uuid"].as_str().unwrap().to_string();
    // A volume to try to delete.
    let (st, _) = d.http(
        "POST",
        "/api/v1/hosts/demo-kvm1/pools/default/volumes",
        Some(r#"{"name":"keep-me.qcow2","size_bytes":1048576,"format":"qcow2"}"#),
    );
    assert_eq!(st, 201);
    settled(&d);
    let before = world(&d);

    let ext = format!(
        r#"{{"uri":"qemu+ext:///system?command={}"}}"#,
        program.display()
    );
    let shadow_host = format!(r#"{{"uri":"test://{}"}}"#, secret.display());
    let traversal = format!(
        r#"{{"uri":"test://{}/../../../../..{}"}}"#,
        repo_root().join("demo/hosts").display(),
        secret.display()
    );
    let cdrom_secret = format!(r#"{{"source":"{}"}}"#, secret.display());
    let cdrom_exists = format!(
        r#"{{"source":"{}"}}"#,
        root_only.join("exists.iso").display()
    );
    let cdrom_missing = format!(
        r#"{{"source":"{}"}}"#,
        root_only.join("missing.iso").display()
    );
    let vm = format!("/api/v1/vms/{uuid}");
    let evil_name = r#"{"host":"demo-kvm1","xml":"<domain type='test'><name>evil$(id);`id`</name><uuid>11111111-2222-3333-4444-555555555555</uuid><memory>1048576</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>"}"#.to_string();
    let tiny_memory = r#"{"host":"demo-kvm1","xml":"<domain type='test'><name>tiny</name><uuid>11111111-2222-3333-4444-555555555556</uuid><memory>1</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>"}"#.to_string();
    let shadow_disk = format!(
        r#"{{"host":"demo-kvm1","xml":"<domain type='test'><name>reader</name><uuid>11111111-2222-3333-4444-555555555557</uuid><memory>1048576</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices><disk type='file' device='disk'><source file='{}'/><target dev='vda' bus='virtio'/></disk></devices></domain>"}}"#,
        secret.display()
    );
    let serial_file = r#"{"host":"demo-kvm1","xml":"<domain type='test'><name>writer</name><uuid>11111111-2222-3333-4444-555555555558</uuid><memory>1048576</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices><serial type='file'><source path='/etc/passwd'/></serial></devices></domain>"}"#.to_string();
    let big = format!(r#"{{"uri":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let own_host = format!("Host: 127.0.0.1:{port}");

    // (method, path, extra headers, body, expected status, what the answer must not contain)
    type Row = (
        &'static str,
        String,
        Vec<String>,
        Option<String>,
        u16,
        Option<String>,
    );
    let table: Vec<Row> = vec![
        // 1. programs and files named by a host URI
        (
            "POST",
            "/api/v1/hosts".into(),
            vec![],
            Some(ext.clone()),
            403,
            None,
        ),
        (
            "POST",
            "/api/v1/hosts".into(),
            vec![],
            Some(r#"{"uri":"qemu+ssh://kvm1/system?netcat=/tmp/x"}"#.into()),
            403,
            None,
        ),
        (
            "POST",
            "/api/v1/hosts".into(),
            vec![],
            Some(r#"{"uri":"qemu+unix:///system?socket=/run/x"}"#.into()),
            403,
            None,
        ),
        (
            "POST",
            "/api/v1/hosts".into(),
            vec![],
            Some(r#"{"uri":"qemu+ssh://kvm1/system?keyfile=/root/.ssh/id_rsa"}"#.into()),
            403,
            None,
        ),
        (
            "POST",
            "/api/v1/hosts".into(),
            vec![],
            Some(r#"{"uri":"qemu+ssh://-oProxyCommand=x/system"}"#.into()),
            400,
            None,
        ),
        (
            "POST",
            "/api/v1/hosts".into(),
            vec![],
            Some(r#"{"uri":"qemu:///embed?root=/etc"}"#.into()),
            403,
            None,
        ),
        // 2. reading root-only files
        (
            "POST",
            "/api/v1/hosts".into(),
            vec![],
            Some(shadow_host),
            403,
            Some("TOPSECRET".into()),
        ),
        (
            "POST",
            "/api/v1/hosts".into(),
            vec![],
            Some(traversal),
            403,
            Some("TOPSECRET".into()),
        ),
        // 4. secrets in backups
        (
            "GET",
            format!("/api/v1/backups/{uuid}/versions/2"),
            vec![],
            None,
            200,
            Some("S3cretVnc".into()),
        ),
        (
            "GET",
            format!("/api/v1/backups/{uuid}/diff?from=1&to=3"),
            vec![],
            None,
            200,
            Some("S3cretVnc".into()),
        ),
        (
            "GET",
            format!("{vm}/xml?inactive=true"),
            vec![],
            None,
            200,
            Some("S3cretVnc".into()),
        ),
        // 5. cross-site requests and DNS rebinding
        (
            "POST",
            "/api/v1/hosts".into(),
            vec!["Content-Type: text/plain".into()],
            Some(r#"{"uri":"test:///default"}"#.into()),
            415,
            None,
        ),
        (
            "POST",
            "/api/v1/hosts".into(),
            vec!["Content-Type: application/x-www-form-urlencoded".into()],
            Some(r#"{"uri":"test:///default"}"#.into()),
            415,
            None,
        ),
        (
            "POST",
            format!("{vm}/shutdown"),
            vec!["Origin: http://evil.example".into()],
            None,
            403,
            None,
        ),
        (
            "POST",
            format!("{vm}/shutdown"),
            vec!["Host: evil.example".into()],
            None,
            403,
            None,
        ),
        (
            "POST",
            format!("{vm}/shutdown"),
            vec!["Sec-Fetch-Site: cross-site".into()],
            None,
            403,
            None,
        ),
        (
            "GET",
            "/api/v1/vms".into(),
            vec!["Host: rebound.example:80".into()],
            None,
            403,
            Some("web-01".into()),
        ),
        // 6. the file oracle: the same answer whether the file exists or not
        (
            "PUT",
            format!("{vm}/disks/sda/media"),
            vec![],
            Some(cdrom_secret),
            403,
            Some("TOPSECRET".into()),
        ),
        (
            "PUT",
            format!("{vm}/disks/sda/media"),
            vec![],
            Some(cdrom_exists),
            403,
            None,
        ),
        (
            "PUT",
            format!("{vm}/disks/sda/media"),
            vec![],
            Some(cdrom_missing),
            403,
            None,
        ),
        (
            "POST",
            format!("{vm}/disks"),
            vec![],
            Some(r#"{"source":{"kind":"block","path":"/dev/sda"}}"#.into()),
            403,
            None,
        ),
        // 7. restore of a client's definition
        (
            "POST",
            "/api/v1/restore".into(),
            vec![],
            Some(evil_name),
            400,
            None,
        ),
        (
            "POST",
            "/api/v1/restore".into(),
            vec![],
            Some(tiny_memory),
            400,
            None,
        ),
        (
            "POST",
            "/api/v1/restore".into(),
            vec![],
            Some(shadow_disk),
            403,
            Some("TOPSECRET".into()),
        ),
        (
            "POST",
            "/api/v1/restore".into(),
            vec![],
            Some(serial_file),
            403,
            None,
        ),
        // 9. unknown query parameters are refused, not ignored
        (
            "DELETE",
            "/api/v1/hosts/demo-kvm1/pools/default/volumes/keep-me.qcow2?dry_run=true".into(),
            vec![],
            None,
            400,
            None,
        ),
        ("DELETE", format!("{vm}?force=1"), vec![], None, 400, None),
        // 10. every error in the JSON envelope
        ("POST", "/api/v1/hosts".into(), vec![], Some(big), 413, None),
        (
            "GET",
            "/api/v1/backups/web-01/versions/notanumber".into(),
            vec![],
            None,
            400,
            None,
        ),
        (
            "POST",
            "/api/v1/hosts".into(),
            vec![],
            Some("{not json".into()),
            400,
            None,
        ),
        (
            "POST",
            "/api/v1/vms/x/frobnicate".into(),
            vec![],
            None,
            400,
            None,
        ),
        (
            "PATCH",
            "/api/v1/hosts".into(),
            vec![],
            Some("{}".into()),
            405,
            None,
        ),
    ];
    for (method, path, headers, body, want, secret_text) in &table {
        let mut hs: Vec<&str> = headers.iter().map(String::as_str).collect();
        if !hs.iter().any(|h| h.starts_with("Host:")) {
            hs.push(&own_host);
        }
        let (status, answer) = t.send(method, path, &hs, body.as_deref());
        assert_eq!(status, *want, "{method} {path} {headers:?}: {answer}");
        if status >= 400 {
            assert!(
                answer["error"]["code"].is_string() && answer["error"]["message"].is_string(),
                "{method} {path}: not the JSON envelope: {answer}"
            );
        }
        if let Some(s) = secret_text {
            assert!(
                !answer.to_string().contains(s.as_str()),
                "{method} {path} leaked {s}: {answer}"
            );
        }
    }
    // The oracle: an existing and a missing file in a root-only directory get one answer.
    let ask = |p: &Path| {
        let b = format!(r#"{{"source":"{}"}}"#, p.display());
        t.send(
            "PUT",
            &format!("{vm}/disks/sda/media"),
            &[&own_host],
            Some(&b),
        )
        .1
    };
    let strip = |v: Value, p: &Path| v.to_string().replace(&p.display().to_string(), "PATH");
    let a = root_only.join("exists.iso");
    let b = root_only.join("missing.iso");
    assert_eq!(strip(ask(&a), &a), strip(ask(&b), &b));

    assert!(!marker.exists(), "the ext URI's program ran");
    assert_unchanged(&before, &world(&d), "a refused request changed something");

    // 11. one log line per change with its peer; the secret never reaches the log.
    let logged = d.log();
    assert!(
        !logged.contains("TOPSECRET"),
        "the log quotes the root-only file"
    );
    assert!(
        logged.contains("peer=tcp=127.0.0.1:") && logged.contains("change refused or failed"),
        "no change line with the peer in the log"
    );
    drop(log);
}

#[test]
fn every_route_refuses_unknown_query_parameters() {
    let (d, port) = start("");
    let t = Attacker {
        base: format!("http://127.0.0.1:{port}"),
        token: std::fs::read_to_string(d.token_file())
            .unwrap()
            .trim()
            .to_string(),
    };
    let own_host = format!("Host: 127.0.0.1:{port}");
    settled(&d);
    let before = world(&d);
    let doc = d.get("/api/v1/openapi.json");
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", "demo-kvm1")
            .replace("{uuid}", "00000000-0000-0000-0000-000000000000")
            .replace("{pool}", "default")
            .replace("{volume}", "web-01.qcow2")
            .replace("{action}", "start")
            .replace("{vm}", "web-01")
            .replace("{version}", "1")
            .replace("{target}", "vda")
            .replace("{mac}", "52:54:00:00:00:01")
            .replace(
                "{name}",
                if path.contains("tokens") {
                    "ci"
                } else {
                    "Linux"
                },
            )
            .replace("{task}", "00000000-0000-4000-8000-000000000000");
        for method in item.as_object().unwrap().keys() {
            let m = method.to_uppercase();
            let body = (m == "POST" || m == "PUT" || m == "PATCH").then_some("{}");
            let (status, answer) = t.send(
                &m,
                &format!("{concrete}?zz_not_declared=1"),
                &[&own_host],
                body,
            );
            assert_eq!(status, 400, "{m} {concrete}: {answer}");
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("zz_not_declared"),
                "{m} {concrete}: {answer}"
            );
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} routes");
    assert_unchanged(&before, &world(&d), "a refused request changed something");
}

#[test]
fn held_connections_cannot_lock_anyone_out() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let config =
        "[api]\nmax_connections_per_peer = 4\nmax_connections = 8\nrequest_timeout_secs = 2\n";
    let d = Daemon::start_with(&[demo_uri("demo-xen1")], &["-s", &listen], config);
    // A client that opens connections and sends nothing, and one that trickles headers.
    let mut idle: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(&listen).unwrap())
        .collect();
    let mut slow = std::net::TcpStream::connect(&listen).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut refused = String::new();
    slow.read_to_string(&mut refused).unwrap();
    assert!(
        refused.starts_with("HTTP/1.1 503") && refused.contains("too_many_connections"),
        "the fifth connection from one address: {refused:?}"
    );
    // Root on the UNIX socket is served meanwhile.
    let (status, _) = http_raw(&d.socket, "GET", "/api/v1/version", None);
    assert_eq!(status, 200);
    // The held connections are closed after the request timeout.
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        let n = s.read_to_end(&mut buf);
        assert!(n.is_ok(), "the idle connection was not closed: {n:?}");
    }
    // A slowloris: headers one byte at a time, never finished.
    let mut loris = std::net::TcpStream::connect(&listen).unwrap();
    loris
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let closed = loop {
        if loris.write_all(b"X").is_err() {
            break true;
        }
        let mut b = [0u8; 512];
        loris
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        match loris.read(&mut b) {
            Ok(0) => break true,
            Ok(_) => break true,
            Err(_) if started.elapsed() > Duration::from_secs(15) => break false,
            Err(_) => {}
        }
    };
    assert!(closed, "a slowloris connection was held for 15 s");
    // A client that sends its body slowly gets a JSON 408.
    let mut body_slow = std::net::TcpStream::connect(&listen).unwrap();
    let token = std::fs::read_to_string(d.token_file()).unwrap();
    write!(
        body_slow,
        "POST /api/v1/hosts HTTP/1.1\r\nHost: {listen}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        token.trim()
    )
    .unwrap();
    body_slow
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = body_slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("request_timeout"), "{answer:?}");
    // And the listener takes new connections again.
    let (status, _) = http_raw(&d.socket, "GET", "/api/v1/version", None);
    assert_eq!(status, 200);
    let mut fresh = std::net::TcpStream::connect(&listen).unwrap();
    write!(
        fresh,
        "GET /api/v1/version HTTP/1.0\r\nHost: {listen}\r\nAuthorization: Bearer {}\r\n\r\n",
        token.trim()
    )
    .unwrap();
    let mut ok = String::new();
    fresh.read_to_string(&mut ok).unwrap();
    assert!(
        ok.starts_with("HTTP/1.0 200") || ok.starts_with("HTTP/1.1 200"),
        "{ok:?}"
    );
}

#[test]
fn the_log_file_is_not_world_readable_and_keeps_records_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("uvmmd.log");
    let logarg = log.display().to_string();
    let d = Daemon::start_with(
        &[demo_uri("demo-xen1")],
        &["-l", &logarg],
        &demo_runtime_config(),
    );
    // A libvirt error with several lines: a node file that is not XML.
    let bad = repo_root().join("demo/hosts/not-xml-for-test.xml");
    let _ = std::fs::remove_file(&bad);
    let node = tempfile::NamedTempFile::new_in(repo_root().join("demo/hosts")).unwrap();
    std::fs::write(node.path(), "first line\nSECONDLINE\n").unwrap();
    let body = format!(r#"{{"uri":"test://{}"}}"#, node.path().display());
    let (status, host) = d.http("POST", "/api/v1/hosts", Some(&body));
    assert_eq!(status, 201, "{host}");
    assert!(
        !host.to_string().contains("SECONDLINE"),
        "the client sees libvirt's quote of the file: {host}"
    );
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    let text = std::fs::read_to_string(&log).unwrap();
    for line in text.lines() {
        assert!(
            line.is_empty() || line.starts_with(char::is_numeric) || line.starts_with(' '),
            "a log record broke into lines: {line:?}"
        );
    }
    assert!(text.contains("change"), "no change record: {text}");
}
