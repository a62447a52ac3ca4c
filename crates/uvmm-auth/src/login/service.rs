//! `POST /api/v1/login` without HTTP: rate limits, the backend, the uniform failure path,
//! and a session on success.
//!
//! **The failure path is the same code for every failure.** Whatever goes wrong (unknown
//! user, wrong password, locked or expired account, root refused, no role, malformed
//! input), the attempt runs the backend the same way when it can, is counted by the rate
//! limiter, and is answered with the same error ([`LoginError::Refused`], one message)
//! no earlier than `failure_delay` after it arrived. So the answer and its timing tell an
//! attacker only "this did not work". The real reason is kept in the error for the log.

use super::{BackendError, LoginBackend, Refusal};
use crate::caller::UserIdentity;
use crate::config::{LoginSettings, PolicyHandle};
use crate::ratelimit::{Limited, LoginLimiter};
use crate::roles::Grants;
use crate::session::{NewSession, SessionStore};
use crate::util::RandomError;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A successful login.
#[derive(Debug, Clone)]
pub struct LoginSuccess {
    pub session: NewSession,
    /// The grants in force at login (for the login answer: the UI hides what the user
    /// may not do). Each request resolves them again from the session's identity.
    pub grants: Grants,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Every refused login, whatever the reason (`401`). `reason` is for the log only.
    #[error("invalid user name or password")]
    Refused { reason: Refusal },
    /// Too many failures for this user name or address (`429`, `Retry-After`).
    #[error(transparent)]
    Limited(#[from] Limited),
    /// Too many logins being checked right now (`503`).
    #[error("too many logins at once; try again in a moment")]
    Busy,
    /// The backend is broken (`503`); not counted against the user.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Random(#[from] RandomError),
}

impl LoginError {
    /// The reason for the log line of a refused login.
    pub fn log_reason(&self) -> String {
        match self {
            LoginError::Refused { reason } => reason.as_str().to_string(),
            other => other.to_string(),
        }
    }
}

/// Login with everything around it. Blocking (the backend blocks, and a failure waits for
/// the failure delay): call it from `spawn_blocking`.
pub struct LoginService {
    backend: Arc<dyn LoginBackend>,
    policy: PolicyHandle,
    sessions: Arc<SessionStore>,
    limiter: Mutex<LoginLimiter>,
    in_flight: AtomicUsize,
}

struct InFlight<'a>(&'a AtomicUsize);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The shape of a user name and password we pass to a backend at all.
fn acceptable(user: &str, password: &str) -> bool {
    !user.is_empty()
        && user.len() <= 256
        && !user.chars().any(|c| c.is_control() || c == ' ')
        && !password.is_empty()
        && password.len() <= 4096
        && !password.contains('\0')
}

impl LoginService {
    pub fn new(
        backend: Arc<dyn LoginBackend>,
        policy: PolicyHandle,
        sessions: Arc<SessionStore>,
    ) -> LoginService {
        let limits = policy.current().rate_limit.clone();
        LoginService {
            backend,
            policy,
            sessions,
            limiter: Mutex::new(LoginLimiter::new(limits)),
            in_flight: AtomicUsize::new(0),
        }
    }

    pub fn sessions(&self) -> &Arc<SessionStore> {
        &self.sessions
    }

    /// Apply a reloaded policy's rate limits and session limits (counts so far are
    /// dropped: a reload is rare, and a fresh start errs on the side of the user).
    pub fn apply_policy(&self) {
        let p = self.policy.current();
        *self.limiter.lock().unwrap_or_else(|e| e.into_inner()) =
            LoginLimiter::new(p.rate_limit.clone());
        self.sessions.set_settings(p.sessions.clone());
    }

    /// Clear a user's lockout (an administrator's command).
    pub fn unlock_user(&self, user: &str) -> bool {
        self.limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear_user(user)
    }

    pub fn login(
        &self,
        user: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<LoginSuccess, LoginError> {
        let start = Instant::now();
        let policy = self.policy.current();
        let settings: &LoginSettings = &policy.login;

        self.limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(user, peer, start)?;
        let n = self.in_flight.fetch_add(1, Ordering::SeqCst);
        let _slot = InFlight(&self.in_flight);
        if n >= settings.max_in_flight {
            return Err(LoginError::Busy);
        }

        // Every case below reaches `outcome`; only a broken backend leaves early.
        // `Some(why)`: answered as unavailable after the failure path.
        let mut undecided: Option<String> = None;
        let outcome: Result<(UserIdentity, Grants), Refusal> = if !acceptable(user, password) {
            Err(Refusal::ByPolicy)
        } else {
            match self.backend.authenticate(user, password, peer) {
                Err(BackendError::Unavailable(m)) => return Err(LoginError::Unavailable(m)),
                Err(BackendError::Undecided { why }) => {
                    undecided = Some(why);
                    Err(Refusal::BadCredentials)
                }
                Err(BackendError::Refused(r)) => Err(r),
                Ok(identity) if identity.uid == Some(0) && !settings.allow_root_login => {
                    Err(Refusal::ByPolicy)
                }
                Ok(identity) => {
                    let grants = policy.grants_for(&identity);
                    if grants.is_empty() {
                        Err(Refusal::NoRole)
                    } else {
                        Ok((identity, grants))
                    }
                }
            }
        };

        let mut limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Ok((identity, grants)) => {
                limiter.record_success(user);
                drop(limiter);
                let session = self.sessions.create(identity, Instant::now())?;
                Ok(LoginSuccess { session, grants })
            }
            Err(reason) => {
                limiter.record_failure(user, peer, start);
                drop(limiter);
                let due = start + settings.failure_delay;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                match undecided {
                    Some(why) => Err(LoginError::Unavailable(why)),
                    None => Err(LoginError::Refused { reason }),
                }
            }
        }
    }

    /// The grants of a session's user under the policy in force now.
    pub fn grants_for(&self, user: &UserIdentity) -> Grants {
        self.policy.current().grants_for(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthConfig, Policy};
    use std::time::Duration;

    /// A backend with one user, for the service's own logic (the PAM backend has its own
    /// tests against real accounts in tests/pam.rs).
    struct Fake;
    impl LoginBackend for Fake {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn authenticate(
            &self,
            user: &str,
            password: &str,
            _peer: Option<IpAddr>,
        ) -> Result<UserIdentity, BackendError> {
            let id = |name: &str, uid, groups: &[&str]| UserIdentity {
                name: name.into(),
                uid: Some(uid),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                source: "fake".into(),
            };
            match (user, password) {
                ("alice", "right") => Ok(id("alice", 1000, &["uvmm"])),
                ("root", "right") => Ok(id("root", 0, &[])),
                ("nobody", "right") => Ok(id("nobody", 65534, &["nogroup"])),
                ("broken", _) => Err(BackendError::Unavailable("directory down".into())),
                ("half", _) => Err(BackendError::Undecided {
                    why: "directory down".into(),
                }),
                ("expired", "right") => Err(BackendError::Refused(Refusal::AccountExpired)),
                _ => Err(BackendError::Refused(Refusal::BadCredentials)),
            }
        }
    }

    fn service(extra: &str) -> LoginService {
        let text = format!("[auth]\nfailure_delay_ms = 50\n{extra}");
        let policy = Policy::from_toml(&text).unwrap();
        let sessions = Arc::new(SessionStore::new(policy.sessions.clone()));
        LoginService::new(Arc::new(Fake), PolicyHandle::new(policy), sessions)
    }

    #[test]
    fn outcomes() {
        let s = service("");
        let ok = s.login("alice", "right", None).unwrap();
        assert_eq!(ok.session.user.name, "alice");
        assert_eq!(ok.grants.highest_role(), Some(crate::roles::Role::Operator));
        assert_eq!(s.sessions().len(), 1);
        // (user, password, reason in the log)
        let table = [
            ("alice", "wrong", Refusal::BadCredentials),
            ("mallory", "right", Refusal::BadCredentials),
            ("expired", "right", Refusal::AccountExpired),
            ("root", "right", Refusal::ByPolicy),
            ("nobody", "right", Refusal::NoRole),
            ("alice", "", Refusal::ByPolicy),
            ("", "x", Refusal::ByPolicy),
            ("al ice", "x", Refusal::ByPolicy),
            ("alice", "a\0b", Refusal::ByPolicy),
        ];
        for (user, pw, want) in table {
            let t = Instant::now();
            match s.login(user, pw, None) {
                Err(e @ LoginError::Refused { reason }) => {
                    assert_eq!(reason, want, "{user}");
                    assert_eq!(e.to_string(), "invalid user name or password");
                }
                other => panic!("{user}: {other:?}"),
            }
            assert!(
                t.elapsed() >= Duration::from_millis(50),
                "{user} answered early"
            );
            s.unlock_user(user);
        }
        assert!(matches!(
            s.login("broken", "x", None),
            Err(LoginError::Unavailable(_))
        ));
    }

    /// Unavailable because a backend could not be asked, but refused by another: the
    /// answer says unavailable, the attempt is delayed and counted (no free guessing of
    /// local passwords while the directory is down).
    #[test]
    fn undecided_is_counted() {
        let s = service("[auth.rate_limit]\nuser_free_failures = 2\nlockout_min_secs = 60");
        for _ in 0..3 {
            let t = Instant::now();
            assert!(matches!(
                s.login("half", "x", None),
                Err(LoginError::Unavailable(_))
            ));
            assert!(t.elapsed() >= Duration::from_millis(50));
        }
        assert!(matches!(
            s.login("half", "x", None),
            Err(LoginError::Limited(_))
        ));
    }

    #[test]
    fn root_when_allowed() {
        let s = service("allow_root_login = true");
        assert!(s.login("root", "right", None).is_ok());
    }

    #[test]
    fn lockout_then_unlock() {
        let s = service("[auth.rate_limit]\nuser_free_failures = 2\nlockout_min_secs = 60");
        let addr: IpAddr = "192.0.2.9".parse().unwrap();
        for _ in 0..3 {
            assert!(matches!(
                s.login("alice", "wrong", Some(addr)),
                Err(LoginError::Refused { .. })
            ));
        }
        // Locked: even the right password is not checked.
        match s.login("alice", "right", Some(addr)) {
            Err(LoginError::Limited(l)) => assert_eq!(l.retry_after.as_secs(), 59),
            other => panic!("{other:?}"),
        }
        assert!(s.unlock_user("alice"));
        assert!(s.login("alice", "right", Some(addr)).is_ok());
        // Reload applies new limits.
        s.policy
            .reload(
                &AuthConfig::from_toml(
                    "[auth]\nfailure_delay_ms = 50\n[auth.rate_limit]\nuser_free_failures = 0",
                )
                .unwrap(),
            )
            .unwrap();
        s.apply_policy();
        let _ = s.login("alice", "wrong", Some(addr));
        assert!(matches!(
            s.login("alice", "right", Some(addr)),
            Err(LoginError::Limited(_))
        ));
    }
}
