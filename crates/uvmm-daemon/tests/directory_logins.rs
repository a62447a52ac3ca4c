//! Directory logins through uvmmd against a real slapd: a directory user logs in over
//! HTTPS (and with `uvmm login`) and gets the role of its group (`[auth.directory_groups]`);
//! wrong passwords, users without a mapped group and LDAP filter injection are refused
//! like unknown users; with slapd stopped an existing session keeps its role and a new
//! login is refused with a message that says why; no password reaches a log.

mod common;
#[path = "../../uvmm-directory/tests/support/slapd.rs"]
mod slapd;

use common::remote::*;
use common::*;
use serde_json::Value;
use slapd::{Slapd, SERVICE_DN, SERVICE_PW};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// dave: in uvmm-viewers only.
const DAVE: &str = "dn: uid=dave,cn=users,dc=example,dc=com\nchangetype: add\n\
    objectClass: inetOrgPerson\nobjectClass: posixAccount\nuid: dave\ncn: Dave Viewer\n\
    sn: Viewer\nuidNumber: 2004\ngidNumber: 5004\nhomeDirectory: /home/dave\n\
    userPassword: dave-pw\n\n\
    dn: cn=uvmm-viewers,cn=groups,dc=example,dc=com\nchangetype: add\n\
    objectClass: posixGroup\ncn: uvmm-viewers\ngidNumber: 5004\nmemberUid: dave\n";

/// uvmmd in directory mode with the directory's groups mapped to roles.
fn config(dir: &Path) -> String {
    let pw = dir.join("bind.secret");
    std::fs::write(&pw, SERVICE_PW).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "{}\n[auth]\nfailure_delay_ms = 200\n\
         [auth.directory_groups]\nadmin = [\"uvmm-admins\"]\noperator = [\"uvmm-operators\"]\n\
         viewer = [\"uvmm-viewers\"]\n\
         [directory]\nbind_dn = \"{SERVICE_DN}\"\npassword_file = \"{}\"\n\
         poll_interval_secs = 1\nconnect_timeout_secs = 1\ntimeout_secs = 3\n\
         [directory.users]\nbase = \"cn=users\"\ngroup_base = \"cn=groups\"\n",
        demo_runtime_config(),
        pw.display()
    )
}

struct Session {
    cookie: String,
    csrf: String,
}

fn login(r: &Remote, user: &str, pw: &str) -> (u16, Option<Session>) {
    let (code, s) = r.login(user, pw);
    (code, s.map(|(cookie, csrf)| Session { cookie, csrf }))
}

fn login_body(r: &Remote, user: &str, pw: &str) -> (u16, String) {
    let body = serde_json::json!({"user": user, "password": pw}).to_string();
    r.https("POST", "/api/v1/login", &[], Some(&body))
}

impl Session {
    fn req(&self, r: &Remote, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let h = [
            format!("Cookie: {}", self.cookie),
            format!("X-CSRF-Token: {}", self.csrf),
        ];
        let h: Vec<&str> = h.iter().map(String::as_str).collect();
        r.https(method, path, &h, body)
    }
}

fn state(r: &Remote, uuid: &str) -> String {
    r.d.get(&format!("/api/v1/vms/{uuid}?host=demo-kvm1"))["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn directory_users_log_in_with_the_role_of_their_group() {
    let mut ldap = Slapd::start(slapd::Options::default());
    ldap.ldapmodify(DAVE);
    let tmp = tempfile::tempdir().unwrap();
    let uri = ldap.uri();
    let r = Remote::start_with_args(&config(tmp.path()), &["-b", &uri]);
    let vm = r.d.vm("build-old", "demo-kvm1");
    let uuid = vm["uuid"].as_str().unwrap().to_string();
    assert_eq!(state(&r, &uuid), "shutoff", "{vm}");
    let start = format!("/api/v1/vms/{uuid}/start?host=demo-kvm1");
    let stop = format!("/api/v1/vms/{uuid}/stop?host=demo-kvm1");

    // dave (uvmm-viewers): reads, cannot start.
    let (code, dave) = login(&r, "dave", "dave-pw");
    assert_eq!(code, 200, "{}", r.d.log());
    let dave = dave.unwrap();
    let (code, who) = dave.req(&r, "GET", "/api/v1/whoami", None);
    let who: Value = serde_json::from_str(&who).unwrap();
    assert_eq!(
        (code, &who["user"], &who["role"]),
        (200, &"dave".into(), &"viewer".into()),
        "{who}"
    );
    let (code, list) = dave.req(&r, "GET", "/api/v1/vms", None);
    assert!(code == 200 && list.contains("build-old"), "{code} {list}");
    let (code, body) = dave.req(&r, "POST", &start, None);
    assert_eq!(code, 403, "{body}");
    assert_eq!(state(&r, &uuid), "shutoff");

    // bob (uvmm-operators, nested in staff): starts and stops.
    let (code, bob) = login(&r, "bob", "bob-pw");
    assert_eq!(code, 200);
    let bob = bob.unwrap();
    let (code, body) = bob.req(&r, "POST", &start, None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(state(&r, &uuid), "running");
    let (code, body) = bob.req(&r, "POST", &stop, None);
    assert_eq!(code, 200, "{body}");

    // The CLI logs a directory user in the same way.
    let fp = r.fingerprint();
    let out = r.cli(
        &[
            "--accept-fingerprint",
            &fp,
            "login",
            "--user",
            "alice",
            "--password-stdin",
        ],
        &[],
        Some("alice-pw\n"),
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("admin"),
        "{out:?}"
    );

    // Refused alike (401, one message): wrong password, unknown user, a user whose groups
    // map to no role (carol). The attacks on the name are in `named_directory_login_attacks`.
    for (user, pw) in [("bob", "alice-pw"), ("nobody", "x"), ("carol", "carol-pw")] {
        let (code, body) = login_body(&r, user, pw);
        assert_eq!(code, 401, "{user}: {body}");
        assert!(
            body.contains("invalid user name or password"),
            "{user}: {body}"
        );
    }

    // slapd stopped: the sessions keep their roles; a new login is refused with the reason.
    ldap.stop();
    wait_for(Duration::from_secs(20), "degraded", || {
        (r.d.get("/api/v1/directory")["online"] == false).then_some(())
    });
    let (code, body) = dave.req(&r, "POST", &start, None);
    assert_eq!(code, 403, "{body}");
    let (code, body) = bob.req(&r, "POST", &start, None);
    assert_eq!(
        code, 200,
        "the operator's session outlives the directory: {body}"
    );
    assert_eq!(state(&r, &uuid), "running");
    let (code, body) = login_body(&r, "bob", "bob-pw");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("the directory is unavailable") && body.contains("existing sessions"),
        "{body}"
    );
    // … and tells nothing about the directory's address to a client that has not logged in.
    assert!(
        !body.contains("127.0.0.1") && !body.contains("ldap://"),
        "{body}"
    );

    // No password in the daemon's log or the audit log.
    let log = r.d.log();
    let audit = std::fs::read_to_string(r.d.dir.path().join("audit.log")).unwrap();
    assert!(audit.contains("\"user\":\"bob\""), "{audit}");
    for secret in [SERVICE_PW, "alice-pw", "bob-pw", "dave-pw", "carol-pw"] {
        assert!(!log.contains(secret), "{secret} in the log");
        assert!(!audit.contains(secret), "{secret} in the audit log");
    }
    let logins: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["what"]["operation"] == "login")
        .collect();
    assert!(
        logins.iter().any(|v| v["result"]["status"] == 503),
        "{audit}"
    );
}

/// The named attacks of issue 13 on a directory login: each is refused with the answer of
/// a wrong password (401), no session is made, and nothing is changed. An LDAP filter or
/// DN in the name finds nobody (values are escaped, RFC 4515), so nobody is bound as.
#[test]
fn named_directory_login_attacks() {
    let ldap = Slapd::start(slapd::Options::default());
    let tmp = tempfile::tempdir().unwrap();
    let uri = ldap.uri();
    let r = Remote::start_with_args(&config(tmp.path()), &["-b", &uri]);
    let before = r.d.vm("web-01", "demo-kvm1");
    // (attack, user, password)
    let table = [
        ("filter injection, any uid", "*)(uid=*", "alice-pw"),
        (
            "filter injection after a real name",
            "alice)(uid=*",
            "alice-pw",
        ),
        ("filter injection, always true", "alice)(|(uid=*", "bob-pw"),
        ("wildcard name", "*", "alice-pw"),
        ("wildcard suffix", "bob*", "bob-pw"),
        (
            "a DN as the name",
            "uid=alice,cn=users,dc=example,dc=com",
            "alice-pw",
        ),
        (
            "the service account's name and password",
            "uvmm-svc",
            SERVICE_PW,
        ),
        ("empty password (anonymous bind)", "alice", ""),
        ("NUL in the name", "alice\u{0}", "alice-pw"),
        ("wrong password of an admin", "alice", "bob-pw"),
    ];
    for (attack, user, pw) in table {
        let (code, body) = login_body(&r, user, pw);
        assert_eq!(code, 401, "{attack}: {body}");
        assert!(
            body.contains("invalid user name or password"),
            "{attack}: {body}"
        );
        assert!(!body.contains("csrf"), "{attack}: a session? {body}");
    }
    // Nobody logged in, nothing changed; the real users still can (no lockout of alice
    // by the attempts that named others).
    let audit = std::fs::read_to_string(r.d.dir.path().join("audit.log")).unwrap();
    let ok_logins = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["what"]["operation"] == "login" && v["result"]["status"] == 200)
        .count();
    assert_eq!(ok_logins, 0, "{audit}");
    assert_eq!(r.d.vm("web-01", "demo-kvm1"), before);
    assert_eq!(login(&r, "bob", "bob-pw").0, 200);
}
