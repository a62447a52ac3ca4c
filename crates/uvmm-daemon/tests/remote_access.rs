//! Remote access as the seed starts it (`uvmmd -s 0.0.0.0`), against the real daemon over
//! real TLS: the CLI with `--url https://127.0.0.1:PORT`, pinning the self-signed
//! certificate only with consent (a changed one refused), `--ca`, API tokens (roles,
//! scopes, revocation), PAM logins with accounts this test creates (sessions, CSRF,
//! logout), roles from UNIX groups on the socket, the caller in backups and the audit log.
//! Needs root (useradd, setpriv), as CI runs.

mod common;

use common::remote::*;
use common::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn success(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: exit {:?}\n{}{}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn failure(o: Output, code: i32, needle: &str, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: {}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(
        stderr(&o).contains(needle),
        "{what}: '{needle}' not in: {}",
        stderr(&o)
    );
}

#[test]
fn tls_pinning_ca_and_tokens_from_the_cli() {
    let r = Remote::start(&demo_runtime_config());
    let fp = r.fingerprint();
    assert!(fp.starts_with("SHA256:"), "{fp}");
    assert!(r.d.log().contains(&fp), "the fingerprint is logged");
    let token = r.d.token_file();
    let token = token.to_str().unwrap();

    // Never trusted silently: unknown → refused with the fingerprint and what to do.
    failure(
        r.cli(&["--token-file", token, "vm", "list"], &[], None),
        1,
        &format!("its certificate has fingerprint {fp}"),
        "unknown server",
    );
    let wrong = format!("SHA256:{}", ["AB"; 32].join(":"));
    failure(
        r.cli(
            &[
                "--token-file",
                token,
                "--accept-fingerprint",
                &wrong,
                "vm",
                "list",
            ],
            &[],
            None,
        ),
        1,
        "not trusted",
        "a fingerprint that is not the server's",
    );
    let list = success(
        r.cli(
            &[
                "--token-file",
                token,
                "--accept-fingerprint",
                &fp,
                "vm",
                "list",
            ],
            &[],
            None,
        ),
        "pinned on first use with --accept-fingerprint",
    );
    assert!(list.contains("web-01"), "{list}");
    let known = r.home.path().join("uvmm/known_hosts");
    let mode = std::fs::metadata(&known).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    success(
        r.cli(&["--token-file", token, "host", "list"], &[], None),
        "pinned: no flag needed",
    );
    // The certificate "changed": a different pin is a possible man-in-the-middle, even
    // with --accept-fingerprint; only --replace-pin re-pins.
    let port = r.port;
    std::fs::write(&known, format!("127.0.0.1:{port} {wrong}\n")).unwrap();
    failure(
        r.cli(&["--token-file", token, "vm", "list"], &[], None),
        1,
        "man-in-the-middle",
        "changed certificate",
    );
    failure(
        r.cli(
            &[
                "--token-file",
                token,
                "--accept-fingerprint",
                &fp,
                "vm",
                "list",
            ],
            &[],
            None,
        ),
        1,
        "man-in-the-middle",
        "changed certificate, --accept-fingerprint alone",
    );
    success(
        r.cli(
            &[
                "--token-file",
                token,
                "--accept-fingerprint",
                &fp,
                "--replace-pin",
                "vm",
                "list",
            ],
            &[],
            None,
        ),
        "re-pinned on purpose",
    );
    // --ca: ordinary PKI checks against uvmmd's certificate, no pin involved.
    let fresh = tempfile::tempdir().unwrap();
    let ca = r.cert.to_str().unwrap();
    success(
        r.cli(
            &["--token-file", token, "--ca", ca, "vm", "list"],
            &[("XDG_CONFIG_HOME", fresh.path().to_str().unwrap())],
            None,
        ),
        "--ca",
    );
    // HTTPS only: plain HTTP on the TLS port gets no API answer.
    let plain = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(format!("http://127.0.0.1:{port}/api/v1/version"))
        .output()
        .unwrap();
    assert_ne!(stdout(&plain), "200", "plain HTTP on the TLS listener");
    // ... and the CLI refuses to send a token over plain HTTP to another machine.
    failure(
        Command::new(uvmm_bin())
            .args(["--url", "http://192.0.2.1:2106", "--token-file", token])
            .args(["vm", "list"])
            .output()
            .unwrap(),
        2,
        "plain HTTP only to this machine",
        "http to another machine",
    );

    // Tokens: made by an admin (here the legacy token), shown once, with role and scope.
    let admin = ["--token-file", token];
    let make = |args: &[&str]| -> String {
        let mut all = admin.to_vec();
        all.extend(["token", "create"]);
        all.extend(args);
        success(r.cli(&all, &[], None), "token create")
            .trim()
            .to_string()
    };
    let viewer = make(&["watch", "--role", "viewer", "--valid-days", "7"]);
    assert!(viewer.starts_with("uvmm_"), "{viewer}");
    let scoped = make(&[
        "webops",
        "--role",
        "operator",
        "--host",
        "demo-kvm1",
        "--vm",
        "web-*",
    ]);
    let listed = success(
        r.cli(&[admin[0], admin[1], "token", "list", "--json"], &[], None),
        "token list",
    );
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert!(
        !listed.to_string().contains(&viewer[20..]),
        "no secret in the list"
    );
    let stored = std::fs::read_to_string(r.d.dir.path().join("state/tokens.json")).unwrap();
    assert!(!stored.contains(&viewer[22..]), "tokens are stored hashed");

    let as_viewer = [("UVMM_TOKEN", viewer.as_str())];
    success(r.cli(&["vm", "list"], &as_viewer, None), "viewer reads");
    failure(
        r.cli(
            &["vm", "start", "build-old", "--host", "demo-kvm1"],
            &as_viewer,
            None,
        ),
        1,
        "needs the role operator",
        "viewer starts a VM",
    );
    // A scoped operator sees and acts on its VMs only; the others do not exist for it.
    let as_ops = [("UVMM_TOKEN", scoped.as_str())];
    let seen: Value = serde_json::from_str(&success(
        r.cli(&["vm", "list", "--json"], &as_ops, None),
        "scoped list",
    ))
    .unwrap();
    let mut names: Vec<String> = seen
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            format!(
                "{}@{}",
                v["name"].as_str().unwrap(),
                v["host_id"].as_str().unwrap()
            )
        })
        .collect();
    names.sort();
    assert_eq!(names, ["web-01@demo-kvm1", "web-02@demo-kvm1"]);
    failure(
        r.cli(
            &["vm", "show", "db-01", "--host", "demo-kvm1"],
            &as_ops,
            None,
        ),
        1,
        "no VM",
        "out of scope on its host",
    );
    failure(
        r.cli(
            &["vm", "show", "web-01", "--host", "demo-kvm2"],
            &as_ops,
            None,
        ),
        1,
        "no VM",
        "its VM name on another host",
    );
    failure(
        r.cli(&["token", "create", "x", "--role", "viewer"], &as_ops, None),
        1,
        "needs the role admin",
        "an operator makes tokens",
    );
    let who = success(r.cli(&["whoami", "--json"], &as_ops, None), "whoami");
    let who: Value = serde_json::from_str(&who).unwrap();
    assert_eq!(who["user"], "token:webops");
    assert_eq!(who["grants"][0]["vms"][0], "web-*");
    // Revoked: refused at once.
    success(
        r.cli(&[admin[0], admin[1], "token", "revoke", "watch"], &[], None),
        "revoke",
    );
    failure(
        r.cli(&["vm", "list"], &as_viewer, None),
        1,
        "invalid API token",
        "revoked token",
    );
}

#[test]
fn pam_logins_roles_sessions_and_the_audit_log() {
    let mut acc = Accounts::new("l");
    let (gadm, gop, gview) = (acc.group("adm"), acc.group("op"), acc.group("view"));
    let pw = format!("Pw-{}-x", std::process::id());
    let alice = acc.user("alice", &pw, &[&gadm]);
    let oscar = acc.user("oscar", &pw, &[&gop]);
    let vera = acc.user("vera", &pw, &[&gview]);
    let nora = acc.user("nora", &pw, &[]);
    let r = Remote::start(&roles_config(&gadm, &gop, &gview, "", ""));
    let fp = r.fingerprint();
    let pin = ["--accept-fingerprint", fp.as_str()];
    let login = |user: &str, password: &str| {
        r.cli(
            &[pin[0], pin[1], "login", "--user", user, "--password-stdin"],
            &[],
            Some(&format!("{password}\n")),
        )
    };

    // Wrong password, and an account without a role: the same refusal.
    failure(
        login(&alice, "wrong"),
        1,
        "invalid user name or password",
        "wrong password",
    );
    failure(
        login(&nora, &pw),
        1,
        "invalid user name or password",
        "no role",
    );
    failure(
        login("ur-nobody-here", &pw),
        1,
        "invalid user name or password",
        "unknown user",
    );

    // An admin logs in; the session is kept 0600 in a 0700 directory.
    let out = success(login(&alice, &pw), "alice logs in");
    assert!(out.contains("admin"), "{out}");
    let sessions = r.home.path().join("uvmm/sessions");
    let mode = std::fs::metadata(&sessions).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    for f in std::fs::read_dir(&sessions).unwrap() {
        let m = f.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o600);
    }
    let who: Value =
        serde_json::from_str(&success(r.cli(&["whoami", "--json"], &[], None), "whoami")).unwrap();
    assert_eq!(
        (&who["user"], &who["via"]),
        (&alice.as_str().into(), &"session".into())
    );
    success(
        r.cli(
            &[
                "vm",
                "set",
                "web-01",
                "--host",
                "demo-kvm1",
                "description=by alice",
            ],
            &[],
            None,
        ),
        "alice edits over TLS",
    );
    // The backup version and the audit log name the user.
    let web01 = r.d.vm("web-01", "demo-kvm1");
    let uuid = web01["uuid"].as_str().unwrap().to_string();
    let show = r.d.cli_json(&["backup", "show", &uuid]);
    let last = show["versions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["cause"], &last["user"]),
        (&"edit".into(), &alice.as_str().into()),
        "{last}"
    );
    let audit = std::fs::read_to_string(r.d.dir.path().join("audit.log")).unwrap();
    let edit = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["what"]["operation"] == "edit_vm")
        .unwrap_or_else(|| panic!("no audit record of the edit:\n{audit}"));
    assert_eq!(edit["who"]["user"], alice.as_str(), "{edit}");
    assert_eq!(edit["who"]["kind"], "session", "{edit}");
    assert_eq!(edit["target"]["vm"], "web-01", "{edit}");
    assert_eq!(edit["result"]["status"], 200, "{edit}");
    assert!(
        edit["from"].as_str().unwrap().starts_with("tcp=127.0.0.1"),
        "{edit}"
    );
    let logins: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["what"]["operation"] == "login")
        .collect();
    assert!(
        logins.iter().any(|v| v["result"]["status"] == 401),
        "{audit}"
    );
    assert!(!audit.contains(&pw), "a password in the audit log");

    // Logged out: the session ends on the server and here.
    success(r.cli(&["logout"], &[], None), "logout");
    // (This machine's /var/lib/uvmm/api-token, if there is one, is another daemon's.)
    let after = r.cli(&["vm", "list"], &[], None);
    assert!(
        !after.status.success()
            && (stderr(&after).contains("needs a login")
                || stderr(&after).contains("invalid API token")),
        "after logout: {}",
        stderr(&after)
    );

    // A viewer reads and may not act; an operator acts.
    success(login(&vera, &pw), "vera logs in");
    success(r.cli(&["vm", "list"], &[], None), "viewer lists");
    failure(
        r.cli(&["vm", "pause", "web-01", "--host", "demo-kvm1"], &[], None),
        1,
        "needs the role operator",
        "viewer pauses",
    );
    success(login(&oscar, &pw), "oscar logs in");
    failure(
        r.cli(
            &[
                "vm",
                "set",
                "web-01",
                "--host",
                "demo-kvm1",
                "description=x",
            ],
            &[],
            None,
        ),
        1,
        "needs the role admin",
        "operator edits",
    );

    // The UNIX socket: the same roles from the peer's account; no role, 403.
    let socket = r.d.socket.to_str().unwrap().to_string();
    let as_user = |user: &str, method: &str, path: &str| -> u16 {
        let out = Command::new("setpriv")
            .args(["--reuid", user, "--regid", user, "--init-groups", "--"])
            .args([
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                method,
            ])
            .args(["--unix-socket", &socket])
            .arg(format!("http://uvmmd{path}"))
            .output()
            .unwrap();
        stdout(&out).trim().parse().unwrap_or(0)
    };
    let action = |a: &str| format!("/api/v1/vms/{uuid}/{a}?host=demo-kvm1");
    assert_eq!(
        as_user(&nora, "GET", "/api/v1/vms"),
        403,
        "no role on the socket"
    );
    assert_eq!(
        as_user(&vera, "GET", "/api/v1/vms"),
        200,
        "viewer on the socket"
    );
    assert_eq!(
        as_user(&vera, "POST", &action("pause")),
        403,
        "viewer pauses"
    );
    assert!(
        matches!(as_user(&oscar, "POST", &action("pause")), 200 | 409),
        "operator pauses on the socket"
    );
}

/// A certificate pair made with openssl (ECDSA P-256, for 127.0.0.1), key 0600.
fn make_cert(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=uvmm-test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {}", stderr(&out));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (cert, key)
}

#[test]
fn sighup_reloads_certificate_policy_and_audit_log_without_dropping_connections() {
    let mut acc = Accounts::new("h");
    let gview = acc.group("view");
    let pw = format!("Pw-{}-h", std::process::id());
    let vera = acc.user("vera", &pw, &[&gview]);
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(certs.path(), "live");
    let (cert_b, key_b) = make_cert(certs.path(), "renewed");
    let tls = format!(
        "\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    // vera's group has no role yet.
    let config = |viewer: &str| roles_config("x-none-a", "x-none-o", viewer, "", "") + &tls;
    let r = Remote::start_with_cert(&config("x-none-v"), &cert);
    let fp_a = r.fingerprint();
    let socket = r.d.socket.to_str().unwrap().to_string();
    let as_vera = || -> u16 {
        let out = Command::new("setpriv")
            .args(["--reuid", &vera, "--regid", &vera, "--init-groups", "--"])
            .args(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(["--unix-socket", &socket, "http://uvmmd/api/v1/vms"])
            .output()
            .unwrap();
        stdout(&out).trim().parse().unwrap_or(0)
    };
    assert_eq!(as_vera(), 403);
    // An open TLS connection: the event stream, as admin.
    let mut stream = Command::new("curl")
        .args(["-s", "-N", "--cacert"])
        .arg(&cert)
        .args(["-H", &format!("Authorization: Bearer {}", r.token())])
        .arg(format!("{}/api/v1/events", r.url()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));

    // Renewed certificate, a role for vera's group, the audit log rotated away: SIGHUP.
    std::fs::copy(&cert_b, &cert).unwrap();
    std::fs::copy(&key_b, &key).unwrap();
    std::fs::write(r.d.dir.path().join("uvmmd.toml"), config(&gview)).unwrap();
    let audit = r.d.dir.path().join("audit.log");
    std::fs::rename(&audit, r.d.dir.path().join("audit.log.1")).unwrap();
    let pid = r.d.child.as_ref().unwrap().id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    wait_for(std::time::Duration::from_secs(10), "the reload", || {
        r.d.log()
            .contains("SIGHUP: certificate reloaded")
            .then_some(())
    });
    let fp_b = r.fingerprint();
    assert_ne!(fp_a, fp_b);
    assert!(r.d.log().contains(&fp_b));
    assert_eq!(
        as_vera(),
        200,
        "[auth] reloaded: vera's group is viewer now"
    );
    // New connections get the new certificate: a client pinned to the old one refuses.
    let token = r.d.token_file();
    let token = token.to_str().unwrap();
    success(
        r.cli(
            &[
                "--token-file",
                token,
                "--accept-fingerprint",
                &fp_b,
                "host",
                "list",
            ],
            &[],
            None,
        ),
        "the renewed certificate",
    );
    let port = r.port;
    std::fs::write(
        r.home.path().join("uvmm/known_hosts"),
        format!("127.0.0.1:{port} {fp_a}\n"),
    )
    .unwrap();
    failure(
        r.cli(&["--token-file", token, "host", "list"], &[], None),
        1,
        "man-in-the-middle",
        "pinned to the old certificate",
    );
    // The open connection still delivers: a change made now arrives on it.
    success(
        r.d.cli(&[
            "vm",
            "set",
            "web-02",
            "--host",
            "demo-kvm1",
            "description=after reload",
        ]),
        "a change after the reload",
    );
    let mut out = stream.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.contains("after reload") {
                break;
            }
        }
        seen
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !reader.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = stream.kill();
    let _ = stream.wait();
    let seen = reader.join().unwrap();
    assert!(seen.contains("after reload"), "the open stream: {seen}");
    // The audit log was reopened: the change is in the new file.
    let new_audit = std::fs::read_to_string(&audit).unwrap();
    assert!(new_audit.contains("edit_vm"), "{new_audit}");
}
