//! Real PAM: local accounts this test creates (`useradd`, `chpasswd`, removed again),
//! authenticated through libpam and pam_unix with the PAM file the Debian package ships.
//! Needs root (as CI runs); fails, not skips, without it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uvmm_auth::config::Policy;
use uvmm_auth::login::pam::{PamBackend, PAM_SERVICE};
use uvmm_auth::login::{BackendError, LoginBackend, LoginError, LoginService, Refusal};
use uvmm_auth::session::SessionStore;
use uvmm_auth::{PolicyHandle, Role};

#[path = "support/accounts.rs"]
mod accounts;
use accounts::{run, LocalAccounts};

/// Test accounts, groups and a PAM service file; all removed on drop.
struct Fixture {
    accounts: LocalAccounts,
    prefix: String,
    service_file: PathBuf,
    service: String,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let prefix = format!("ua{}{tag}", std::process::id() % 100_000);
        let accounts = LocalAccounts::new(prefix.clone());
        // The service file is the one the package installs as /etc/pam.d/uvmm.
        let packaged = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../packaging/debian/uvmm-daemon.uvmm.pam");
        let service = format!("{prefix}-uvmm");
        let service_file = PathBuf::from("/etc/pam.d").join(&service);
        std::fs::copy(&packaged, &service_file).unwrap();
        Fixture {
            accounts,
            prefix,
            service_file,
            service,
        }
    }

    fn group(&mut self, suffix: &str) -> String {
        self.accounts.group(suffix)
    }

    fn user(&mut self, suffix: &str, password: &str, groups: &[&str]) -> String {
        self.accounts.user(suffix, password, groups)
    }

    fn backend(&self) -> PamBackend {
        PamBackend::new(&self.service)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.service_file);
    }
}

fn refusal(r: Result<uvmm_auth::UserIdentity, BackendError>) -> Refusal {
    match r {
        Err(BackendError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn packaged_pam_file_matches_the_library() {
    assert_eq!(PAM_SERVICE, "uvmm");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/debian");
    let pam = std::fs::read_to_string(root.join("uvmm-daemon.uvmm.pam")).unwrap();
    let rules: Vec<&str> = pam
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    // The library runs the auth stack, then the account stack: the file must have both.
    assert_eq!(rules, ["@include common-auth", "@include common-account"]);
    let debian_rules = std::fs::read_to_string(root.join("rules")).unwrap();
    assert!(debian_rules.contains("dh_installpam --name=uvmm"));
}

#[test]
fn accounts_through_real_pam() {
    let mut fx = Fixture::new("a");
    let ops = fx.group("op");
    let other = fx.group("x");
    let alice = fx.user("alice", "correct horse 1", &[&ops, &other]);
    let bob = fx.user("bob", "battery staple 2", &[]);
    let pam = fx.backend();
    let peer: Option<IpAddr> = Some("192.0.2.10".parse().unwrap());

    // The right password: the account with its groups.
    let id = pam.authenticate(&alice, "correct horse 1", peer).unwrap();
    assert_eq!(id.name, alice);
    assert_eq!(id.source, "pam");
    assert!(id.uid.is_some_and(|u| u >= 1000));
    assert!(
        id.groups.contains(&ops) && id.groups.contains(&other),
        "{:?}",
        id.groups
    );
    // …and its role from the groups, as configured.
    let policy =
        Policy::from_toml(&format!("[auth.unix_groups]\noperator = [\"{ops}\"]\n")).unwrap();
    assert_eq!(policy.grants_for(&id).highest_role(), Some(Role::Operator));
    let bob_id = pam.authenticate(&bob, "battery staple 2", None).unwrap();
    assert!(policy.grants_for(&bob_id).is_empty(), "no group, no role");

    // Wrong password, unknown user, another user's password: the same refusal.
    assert_eq!(
        refusal(pam.authenticate(&alice, "correct horse 2", peer)),
        Refusal::BadCredentials
    );
    assert_eq!(
        refusal(pam.authenticate(&alice, "", peer)),
        Refusal::BadCredentials
    );
    assert_eq!(
        refusal(pam.authenticate(&format!("{}nobody", fx.prefix), "correct horse 1", peer)),
        Refusal::BadCredentials
    );
    assert_eq!(
        refusal(pam.authenticate(&bob, "correct horse 1", None)),
        Refusal::BadCredentials
    );

    // A locked account (usermod -L): its right password no longer works.
    run("usermod", &["-L", &bob], None);
    assert_eq!(
        refusal(pam.authenticate(&bob, "battery staple 2", None)),
        Refusal::BadCredentials
    );
    run("usermod", &["-U", &bob], None);
    pam.authenticate(&bob, "battery staple 2", None).unwrap();

    // An expired account (chage -E 0): the password is right, the account stack refuses.
    // (pam_unix says "expired"; Debian's common-account ignores that and lets pam_deny
    // refuse, so the stack's answer is "not permitted".)
    run("chage", &["-E", "0", &bob], None);
    let why = refusal(pam.authenticate(&bob, "battery staple 2", None));
    assert!(
        matches!(why, Refusal::AccountExpired | Refusal::NotPermitted),
        "{why:?}"
    );
    run("chage", &["-E", "-1", &bob], None);
    // A password that must be changed (chage -d 0).
    run("chage", &["-d", "0", &bob], None);
    assert_eq!(
        refusal(pam.authenticate(&bob, "battery staple 2", None)),
        Refusal::PasswordExpired
    );

    // An account without a password: common-auth says `nullok`, uvmm refuses anyway.
    let empty = fx.user("empty", "x", &[]);
    run("passwd", &["-d", &empty], None);
    assert_eq!(
        refusal(pam.authenticate(&empty, "", None)),
        Refusal::BadCredentials
    );

    // A service without a PAM file would fall back to /etc/pam.d/other (on Debian: the
    // common-* stacks, not uvmm's file): the daemon checks the file exists at start.
    fx.backend().check_service().unwrap();
    let missing = PamBackend::new("uvmm-no-such-service");
    let err = missing.check_service().unwrap_err().to_string();
    assert!(err.contains("/etc/pam.d/uvmm-no-such-service"), "{err}");
}

/// Unknown user and wrong password take the same time and give the same answer: the same
/// code path runs (the backend is called in both cases), and every failure is answered
/// at the failure delay. Measured coarsely: each failure lasts at least the delay, and the
/// medians of both kinds lie within 100 ms of each other.
#[test]
fn login_failures_look_alike() {
    let mut fx = Fixture::new("t");
    let ops = fx.group("op");
    let carol = fx.user("carol", "s3cret-Pass", &[&ops]);
    let text = format!(
        "[auth]\nfailure_delay_ms = 300\n[auth.unix_groups]\noperator = [\"{ops}\"]\n\
         [auth.rate_limit]\nuser_free_failures = 1000\naddress_free_failures = 1000\n"
    );
    let policy = Policy::from_toml(&text).unwrap();
    let sessions = Arc::new(SessionStore::new(policy.sessions.clone()));
    let svc = LoginService::new(Arc::new(fx.backend()), PolicyHandle::new(policy), sessions);
    let peer: Option<IpAddr> = Some("192.0.2.20".parse().unwrap());

    let unknown = format!("{}ghost", fx.prefix);
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut messages = Vec::new();
    for i in 0..12 {
        let (user, kind) = if i % 2 == 0 {
            (&carol, 0)
        } else {
            (&unknown, 1)
        };
        let t = Instant::now();
        let err = svc.login(user, "wrong-Pass", peer).unwrap_err();
        times[kind].push(t.elapsed());
        assert!(
            matches!(
                err,
                LoginError::Refused {
                    reason: Refusal::BadCredentials
                }
            ),
            "{err:?}"
        );
        messages.push(err.to_string());
    }
    messages.dedup();
    assert_eq!(messages, ["invalid user name or password"]);
    for t in times.iter().flatten() {
        assert!(
            *t >= Duration::from_millis(300),
            "a failure answered after {t:?}"
        );
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut times[0].clone()), median(&mut times[1].clone()));
    let diff = a.abs_diff(b);
    assert!(
        diff < Duration::from_millis(100),
        "wrong password {a:?}, unknown user {b:?}"
    );

    // The right password works and yields a session with the group's role.
    let ok = svc.login(&carol, "s3cret-Pass", peer).unwrap();
    assert_eq!(ok.grants.highest_role(), Some(Role::Operator));
    assert_eq!(ok.session.user.name, carol);
    assert_eq!(svc.sessions().len(), 1);
}

#[test]
fn rate_limit_with_real_pam() {
    let mut fx = Fixture::new("r");
    let ops = fx.group("op");
    let dave = fx.user("dave", "Right-Pass-3", &[&ops]);
    let text = format!(
        "[auth]\nfailure_delay_ms = 50\n[auth.unix_groups]\noperator = [\"{ops}\"]\n\
         [auth.rate_limit]\nuser_free_failures = 3\nlockout_min_secs = 30\n"
    );
    let policy = Policy::from_toml(&text).unwrap();
    let sessions = Arc::new(SessionStore::new(policy.sessions.clone()));
    let svc = LoginService::new(Arc::new(fx.backend()), PolicyHandle::new(policy), sessions);
    for _ in 0..4 {
        assert!(matches!(
            svc.login(&dave, "guess", None),
            Err(LoginError::Refused { .. })
        ));
    }
    // Locked: the right password is not even tried.
    match svc.login(&dave, "Right-Pass-3", None) {
        Err(LoginError::Limited(l)) => assert!(l.retry_after > Duration::from_secs(25)),
        other => panic!("{other:?}"),
    }
    assert!(svc.unlock_user(&dave));
    assert!(svc.login(&dave, "Right-Pass-3", None).is_ok());
}
