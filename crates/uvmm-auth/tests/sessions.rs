//! Browser sessions and login rate limits through the public API, as the daemon's login,
//! logout and request extractor will use them.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uvmm_auth::caller::UserIdentity;
use uvmm_auth::config::Policy;
use uvmm_auth::login::{BackendError, LoginBackend, LoginError, LoginService, Refusal};
use uvmm_auth::ratelimit::{LimitedBy, LoginLimiter, RateLimitSettings};
use uvmm_auth::session::{
    clear_cookie, cookie_value, is_mutating, set_cookie, SessionError, SessionSettings,
    SessionStore,
};
use uvmm_auth::PolicyHandle;

fn erin() -> UserIdentity {
    UserIdentity {
        name: "erin".into(),
        uid: Some(1001),
        groups: vec!["uvmm".into()],
        source: "pam".into(),
    }
}

/// A request as the extractor sees it: Cookie header, X-CSRF-Token header, method.
fn request(
    store: &SessionStore,
    cookie_header: &str,
    csrf: Option<&str>,
    method: &str,
    now: Instant,
) -> Result<String, SessionError> {
    let id = cookie_value(cookie_header, true).ok_or(SessionError::Unknown)?;
    store
        .check(id, csrf, is_mutating(method), now)
        .map(|s| s.user.name)
}

#[test]
fn session_lifecycle() {
    let store = SessionStore::new(SessionSettings {
        idle: Duration::from_secs(30 * 60),
        absolute: Duration::from_secs(12 * 3600),
        max_sessions: 100,
        max_per_user: 4,
    });
    let t0 = Instant::now();
    let s = store.create(erin(), t0).unwrap();
    let set = set_cookie(&s, true);
    assert!(set.contains("HttpOnly") && set.contains("Secure") && set.contains("SameSite=Strict"));
    let cookie = set.split(';').next().unwrap().to_string();
    let at = |m: u64| t0 + Duration::from_secs(m * 60);

    // Reads need the cookie only; changes need the CSRF header too.
    assert_eq!(
        request(&store, &cookie, None, "GET", at(1)).unwrap(),
        "erin"
    );
    assert_eq!(
        request(&store, &cookie, None, "POST", at(2)),
        Err(SessionError::CsrfMissing)
    );
    assert_eq!(
        request(
            &store,
            &cookie,
            Some("0".repeat(64).as_str()),
            "DELETE",
            at(3)
        ),
        Err(SessionError::CsrfMismatch)
    );
    assert_eq!(
        request(&store, &cookie, Some(&s.csrf), "POST", at(4)).unwrap(),
        "erin"
    );
    // Another session's CSRF token does not do.
    let s2 = store.create(erin(), at(4)).unwrap();
    assert_eq!(
        request(&store, &cookie, Some(&s2.csrf), "PATCH", at(5)),
        Err(SessionError::CsrfMismatch)
    );

    // Idle: 30 minutes without a request end it; every request extends it.
    for m in (30..12 * 60).step_by(29) {
        assert!(
            request(&store, &cookie, None, "GET", at(m)).is_ok(),
            "minute {m}"
        );
    }
    // Absolute: 12 hours after login, however busy.
    assert_eq!(
        request(&store, &cookie, None, "GET", at(12 * 60)),
        Err(SessionError::Absolute(Duration::from_secs(12 * 3600)))
    );
    assert_eq!(
        request(&store, &cookie, None, "GET", at(12 * 60)),
        Err(SessionError::Unknown)
    );
    // The second session, unused for 30 minutes, is gone.
    let c2 = format!("__Host-uvmm-session={}", s2.id);
    assert!(matches!(
        request(&store, &c2, None, "GET", at(12 * 60)),
        Err(SessionError::Idle(_) | SessionError::Unknown)
    ));

    // Logout ends it at once; the answer clears the cookie.
    let s3 = store.create(erin(), at(0)).unwrap();
    let c3 = format!("other=1; __Host-uvmm-session={}", s3.id);
    assert!(request(&store, &c3, None, "GET", at(1)).is_ok());
    assert!(store.logout(&s3.id));
    assert_eq!(
        request(&store, &c3, None, "GET", at(1)),
        Err(SessionError::Unknown)
    );
    assert!(clear_cookie(true).contains("Max-Age=0"));
    // Forged cookies of every shape.
    for forged in [
        "",
        "__Host-uvmm-session=",
        "__Host-uvmm-session=x",
        &format!("uvmm-session={}", s3.id),
    ] {
        assert_eq!(
            request(&store, forged, None, "GET", at(1)),
            Err(SessionError::Unknown),
            "{forged}"
        );
    }
}

struct OneUser;
impl LoginBackend for OneUser {
    fn name(&self) -> &'static str {
        "test"
    }
    fn authenticate(
        &self,
        user: &str,
        password: &str,
        _: Option<IpAddr>,
    ) -> Result<UserIdentity, BackendError> {
        if user == "erin" && password == "pw" {
            Ok(erin())
        } else {
            Err(BackendError::Refused(Refusal::BadCredentials))
        }
    }
}

#[test]
fn login_then_session_then_logout() {
    let policy =
        Policy::from_toml("[auth]\nfailure_delay_ms = 20\nsession_idle_mins = 5\n").unwrap();
    let sessions = Arc::new(SessionStore::new(policy.sessions.clone()));
    let svc = LoginService::new(
        Arc::new(OneUser),
        PolicyHandle::new(policy),
        sessions.clone(),
    );
    let ok = svc
        .login("erin", "pw", Some("198.51.100.7".parse().unwrap()))
        .unwrap();
    let info = sessions
        .check(&ok.session.id, Some(&ok.session.csrf), true, Instant::now())
        .unwrap();
    assert_eq!(info.user, erin());
    // Rights are resolved per request from the policy in force.
    assert_eq!(
        svc.grants_for(&info.user).highest_role(),
        Some(uvmm_auth::Role::Operator)
    );
    assert!(sessions.logout(&ok.session.id));
    assert!(sessions
        .check(&ok.session.id, None, false, Instant::now())
        .is_err());
}

#[test]
fn rate_limits_per_user_and_per_address() {
    let mut l = LoginLimiter::new(RateLimitSettings {
        user_free_failures: 5,
        address_free_failures: 8,
        lockout_min: Duration::from_secs(1),
        lockout_max: Duration::from_secs(900),
        forget_after: Duration::from_secs(900),
        max_entries: 1000,
    });
    let t0 = Instant::now();
    let a: Option<IpAddr> = Some("203.0.113.1".parse().unwrap());
    let b: Option<IpAddr> = Some("203.0.113.2".parse().unwrap());
    // One address guessing one user: the user locks after 5 failures.
    for _ in 0..5 {
        l.check("erin", a, t0).unwrap();
        l.record_failure("erin", a, t0);
    }
    l.record_failure("erin", a, t0);
    assert_eq!(l.check("erin", b, t0).unwrap_err().by, LimitedBy::User);
    // Spraying many names from one address: the 9th failure locks the address.
    l.record_failure("u1", a, t0);
    l.record_failure("u2", a, t0);
    assert!(l.check("fresh-name", a, t0).is_ok());
    l.record_failure("u3", a, t0);
    let e = l.check("fresh-name", a, t0).unwrap_err();
    assert_eq!(e.by, LimitedBy::Address);
    // Other addresses and users are unaffected.
    assert!(l.check("frank", b, t0).is_ok());
    // The lockout ends, with back-off on the next failures.
    let t1 = t0 + e.retry_after;
    assert!(l.check("fresh-name", a, t1).is_ok());
    l.record_failure("fresh-name", a, t1);
    let e2 = l.check("x", a, t1).unwrap_err();
    assert!(e2.retry_after > e.retry_after, "{e2:?} after {e:?}");
}

#[test]
fn login_service_reports_limits() {
    let policy = Policy::from_toml(
        "[auth]\nfailure_delay_ms = 10\n[auth.rate_limit]\naddress_free_failures = 2\nlockout_min_secs = 5\n",
    )
    .unwrap();
    let sessions = Arc::new(SessionStore::new(policy.sessions.clone()));
    let svc = LoginService::new(Arc::new(OneUser), PolicyHandle::new(policy), sessions);
    let addr = Some("198.51.100.9".parse().unwrap());
    for user in ["a", "b", "c"] {
        assert!(matches!(
            svc.login(user, "x", addr),
            Err(LoginError::Refused { .. })
        ));
    }
    match svc.login("erin", "pw", addr) {
        Err(LoginError::Limited(l)) => {
            assert_eq!(l.by, LimitedBy::Address);
            assert!(l
                .to_string()
                .starts_with("too many failed logins; try again in"));
        }
        other => panic!("{other:?}"),
    }
    // From another address the right password works.
    assert!(svc
        .login("erin", "pw", Some("198.51.100.10".parse().unwrap()))
        .is_ok());
}
