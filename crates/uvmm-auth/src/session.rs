//! Browser sessions: a random id in an HttpOnly, Secure, SameSite=Strict cookie, and a
//! CSRF token the page sends in a header with every mutating request.
//!
//! Memory only: a restart of uvmmd logs everyone out. That is deliberate: nothing secret
//! is written to disk, and a restart is rare and visible. The store is bounded (in total
//! and per user); the id is kept only as its SHA-256, so a memory dump does not yield
//! cookies to replay.

use crate::caller::UserIdentity;
use crate::util::{ct_eq, hex, random_bytes, sha256, RandomError};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie's name. The `__Host-` prefix makes browsers accept it only with `Secure`,
/// `Path=/` and no `Domain`, so a neighbouring host or a plain-HTTP page cannot plant or
/// overwrite it.
pub const COOKIE_NAME: &str = "__Host-uvmm-session";
/// The cookie's name on a plain-HTTP loopback listener, where `Secure` cannot be used.
pub const COOKIE_NAME_PLAIN: &str = "uvmm-session";
/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after login, used or not.
    pub absolute: Duration,
    pub max_sessions: usize,
    /// Beyond this many sessions of one user, the user's least recently used ends.
    pub max_per_user: usize,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
            max_sessions: 10_000,
            max_per_user: 16,
        }
    }
}

/// A session just made: the id goes into the cookie, the CSRF token into the login
/// answer (the page keeps it in memory and sends it as `X-CSRF-Token`).
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub csrf: String,
    pub user: UserIdentity,
    /// For the cookie's `Max-Age`: the absolute lifetime.
    pub max_age: Duration,
}

/// A live session, as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub user: UserIdentity,
    pub created: Instant,
    pub last_seen: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("not logged in")]
    Unknown,
    #[error("the session expired after {} minutes without use; log in again", .0.as_secs() / 60)]
    Idle(Duration),
    #[error("the session ended {} hours after login; log in again", .0.as_secs() / 3600)]
    Absolute(Duration),
    #[error("a change needs the X-CSRF-Token header of this session")]
    CsrfMissing,
    #[error("the X-CSRF-Token header does not belong to this session")]
    CsrfMismatch,
}

#[derive(Debug)]
struct Entry {
    user: UserIdentity,
    csrf: [u8; 32],
    created: Instant,
    last_seen: Instant,
}

#[derive(Debug)]
pub struct SessionStore {
    settings: Mutex<SessionSettings>,
    sessions: Mutex<HashMap<[u8; 32], Entry>>,
}

/// Whether a request with this method changes something and so needs the CSRF token.
pub fn is_mutating(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS")
}

impl SessionStore {
    pub fn new(settings: SessionSettings) -> SessionStore {
        SessionStore {
            settings: Mutex::new(settings),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn settings(&self) -> SessionSettings {
        match self.settings.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// New limits (SIGHUP); they apply to existing sessions at their next use.
    pub fn set_settings(&self, settings: SessionSettings) {
        match self.settings.lock() {
            Ok(mut s) => *s = settings,
            Err(p) => *p.into_inner() = settings,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        // A panic while holding the lock cannot leave an entry half-written (each change
        // is one insert or remove), so the map is still sound.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a session for `user` (after a successful login).
    pub fn create(&self, user: UserIdentity, now: Instant) -> Result<NewSession, RandomError> {
        let s = self.settings();
        let id = random_bytes::<32>()?;
        let csrf = random_bytes::<32>()?;
        let mut map = self.map();
        map.retain(|_, e| live(e, now, &s).is_ok());
        // Per user: end the least recently used beyond the cap.
        let mut mine: Vec<([u8; 32], Instant)> = map
            .iter()
            .filter(|(_, e)| e.user.name == user.name && e.user.source == user.source)
            .map(|(k, e)| (*k, e.last_seen))
            .collect();
        if mine.len() >= s.max_per_user {
            mine.sort_by_key(|(_, seen)| *seen);
            for (k, _) in mine.iter().take(mine.len() + 1 - s.max_per_user) {
                map.remove(k);
            }
        }
        // In total: end the least recently used of anyone.
        while map.len() >= s.max_sessions {
            let Some(oldest) = map.iter().min_by_key(|(_, e)| e.last_seen).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
        let id = hex(&id);
        map.insert(
            sha256(id.as_bytes()),
            Entry {
                user: user.clone(),
                csrf,
                created: now,
                last_seen: now,
            },
        );
        Ok(NewSession {
            id,
            csrf: hex(&csrf),
            user,
            max_age: s.absolute,
        })
    }

    /// Check a request's session: the cookie's id must be live; a mutating request must
    /// also carry the session's CSRF token. Marks the session used.
    pub fn check(
        &self,
        cookie: &str,
        csrf: Option<&str>,
        mutating: bool,
        now: Instant,
    ) -> Result<SessionInfo, SessionError> {
        let s = self.settings();
        let key = sha256(cookie.as_bytes());
        let mut map = self.map();
        let entry = map.get_mut(&key).ok_or(SessionError::Unknown)?;
        if let Err(e) = live(entry, now, &s) {
            map.remove(&key);
            return Err(e);
        }
        if mutating {
            let given = csrf.ok_or(SessionError::CsrfMissing)?;
            // Compare the hex text in constant time: a wrong token must not be found byte
            // by byte from response times.
            if !ct_eq(given.as_bytes(), hex(&entry.csrf).as_bytes()) {
                return Err(SessionError::CsrfMismatch);
            }
        }
        entry.last_seen = now;
        Ok(SessionInfo {
            user: entry.user.clone(),
            created: entry.created,
            last_seen: entry.last_seen,
        })
    }

    /// The CSRF token of this cookie's live session: for a second tab of the same browser,
    /// which has the cookie but not the token the login answered. Only a same-origin page
    /// can read the answer (cross-site requests are refused before they get here).
    pub fn csrf_of(&self, cookie: &str, now: Instant) -> Option<String> {
        let s = self.settings();
        let map = self.map();
        map.get(&sha256(cookie.as_bytes()))
            .filter(|e| live(e, now, &s).is_ok())
            .map(|e| hex(&e.csrf))
    }

    /// End the session of this cookie; true when there was one.
    pub fn logout(&self, cookie: &str) -> bool {
        self.map().remove(&sha256(cookie.as_bytes())).is_some()
    }

    /// End every session of a user (account removed, password changed, role taken away).
    pub fn logout_user(&self, name: &str) -> usize {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, e| e.user.name != name);
        before - map.len()
    }

    /// Drop expired sessions (call now and then; `create` also does).
    pub fn purge(&self, now: Instant) -> usize {
        let s = self.settings();
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, e| live(e, now, &s).is_ok());
        before - map.len()
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn live(e: &Entry, now: Instant, s: &SessionSettings) -> Result<(), SessionError> {
    if now.saturating_duration_since(e.created) >= s.absolute {
        return Err(SessionError::Absolute(s.absolute));
    }
    if now.saturating_duration_since(e.last_seen) >= s.idle {
        return Err(SessionError::Idle(s.idle));
    }
    Ok(())
}

/// The `Set-Cookie` value that starts a session. `secure` is true on TLS listeners (then
/// the `__Host-` name is used); false only on a plain-HTTP loopback listener.
pub fn set_cookie(session: &NewSession, secure: bool) -> String {
    let name = if secure {
        COOKIE_NAME
    } else {
        COOKIE_NAME_PLAIN
    };
    format!(
        "{name}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        session.id,
        session.max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie (logout).
pub fn clear_cookie(secure: bool) -> String {
    let name = if secure {
        COOKIE_NAME
    } else {
        COOKIE_NAME_PLAIN
    };
    format!(
        "{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The session id from a `Cookie` request header, if it has one of ours. Only a value of
/// the right shape (64 hex digits) is returned.
pub fn cookie_value(cookie_header: &str, secure: bool) -> Option<&str> {
    let name = if secure {
        COOKIE_NAME
    } else {
        COOKIE_NAME_PLAIN
    };
    cookie_header
        .split(';')
        .filter_map(|part| part.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> UserIdentity {
        UserIdentity {
            name: "alice".into(),
            uid: Some(1000),
            groups: vec![],
            source: "pam".into(),
        }
    }

    fn store() -> SessionStore {
        SessionStore::new(SessionSettings {
            idle: Duration::from_secs(600),
            absolute: Duration::from_secs(3600),
            max_sessions: 5,
            max_per_user: 3,
        })
    }

    #[test]
    fn idle_and_absolute_expiry() {
        let st = store();
        let t0 = Instant::now();
        let s = st.create(alice(), t0).unwrap();
        let at = |secs| t0 + Duration::from_secs(secs);
        // Used every 9 minutes: alive until the absolute end.
        for m in (9..60).step_by(9) {
            st.check(&s.id, None, false, at(m * 60)).unwrap();
        }
        assert_eq!(
            st.check(&s.id, None, false, at(3600)),
            Err(SessionError::Absolute(Duration::from_secs(3600)))
        );
        // Gone for good.
        assert_eq!(
            st.check(&s.id, None, false, at(1)),
            Err(SessionError::Unknown)
        );

        let s2 = st.create(alice(), t0).unwrap();
        st.check(&s2.id, None, false, at(599)).unwrap();
        assert_eq!(
            st.check(&s2.id, None, false, at(599 + 600)),
            Err(SessionError::Idle(Duration::from_secs(600)))
        );
    }

    #[test]
    fn csrf_for_mutating_requests() {
        let st = store();
        let now = Instant::now();
        let s = st.create(alice(), now).unwrap();
        let other = st.create(alice(), now).unwrap();
        assert!(st.check(&s.id, None, false, now).is_ok());
        assert_eq!(
            st.check(&s.id, None, true, now),
            Err(SessionError::CsrfMissing)
        );
        assert_eq!(
            st.check(&s.id, Some(&other.csrf), true, now),
            Err(SessionError::CsrfMismatch)
        );
        assert_eq!(
            st.check(&s.id, Some(""), true, now),
            Err(SessionError::CsrfMismatch)
        );
        assert_eq!(
            st.check(&s.id, Some(&s.csrf.to_uppercase()), true, now),
            Err(SessionError::CsrfMismatch)
        );
        assert!(st.check(&s.id, Some(&s.csrf), true, now).is_ok());
        // A CSRF token is not a session id.
        assert_eq!(
            st.check(&s.csrf, None, false, now),
            Err(SessionError::Unknown)
        );
        assert!(is_mutating("POST") && is_mutating("DELETE") && is_mutating("PATCH"));
        assert!(!is_mutating("GET") && !is_mutating("HEAD"));
    }

    #[test]
    fn logout() {
        let st = store();
        let now = Instant::now();
        let s = st.create(alice(), now).unwrap();
        let s2 = st.create(alice(), now).unwrap();
        assert!(st.logout(&s.id));
        assert!(!st.logout(&s.id));
        assert_eq!(
            st.check(&s.id, None, false, now),
            Err(SessionError::Unknown)
        );
        assert!(st.check(&s2.id, None, false, now).is_ok());
        assert_eq!(st.logout_user("alice"), 1);
        assert!(st.is_empty());
    }

    #[test]
    fn bounded() {
        let st = store();
        let t0 = Instant::now();
        let ids: Vec<_> = (0..4)
            .map(|i| st.create(alice(), t0 + Duration::from_secs(i)).unwrap().id)
            .collect();
        // Per user 3: the first is gone.
        assert_eq!(st.len(), 3);
        assert_eq!(
            st.check(&ids[0], None, false, t0 + Duration::from_secs(5)),
            Err(SessionError::Unknown)
        );
        for i in 0..10 {
            let u = UserIdentity {
                name: format!("u{i}"),
                ..alice()
            };
            st.create(u, t0 + Duration::from_secs(10 + i)).unwrap();
        }
        assert_eq!(st.len(), 5);
        assert_eq!(st.purge(t0 + Duration::from_secs(4000)), 5);
    }

    #[test]
    fn cookies() {
        let st = store();
        let s = st.create(alice(), Instant::now()).unwrap();
        let c = set_cookie(&s, true);
        assert!(c.starts_with(&format!(
            "__Host-uvmm-session={}; Path=/; Max-Age=3600;",
            s.id
        )));
        for attr in ["HttpOnly", "SameSite=Strict", "Secure"] {
            assert!(c.contains(attr), "{c}");
        }
        assert!(!set_cookie(&s, false).contains("Secure"));
        assert!(clear_cookie(true).contains("Max-Age=0"));
        let header = format!("a=b; __Host-uvmm-session={}; c=d", s.id);
        assert_eq!(cookie_value(&header, true), Some(s.id.as_str()));
        assert_eq!(cookie_value(&header, false), None);
        assert_eq!(cookie_value("__Host-uvmm-session=../../x", true), None);
        assert_eq!(s.id.len(), 64);
        assert_eq!(s.csrf.len(), 64);
        assert_ne!(s.id, s.csrf);
    }
}
