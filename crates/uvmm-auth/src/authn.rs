//! From a request's credentials to an [`Authenticated`] caller: the one function the
//! daemon's request extractor calls. UNIX socket peers by `SO_PEERCRED`; TCP requests by
//! `Authorization: Bearer` (a named token, or the legacy `api-token`) or by the session
//! cookie (plus `X-CSRF-Token` on changes). Anonymous requests are refused.

use crate::caller::{Authenticated, Origin, Principal};
use crate::config::PolicyHandle;
use crate::peer::{self, LookupError};
use crate::roles::Grants;
use crate::session::{self, SessionError, SessionStore};
use crate::tokens::{self, TokenError, TokenStore};
use crate::util::ct_eq;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// What a request brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// A process on the UNIX socket.
    UnixPeer { uid: u32, pid: Option<i32> },
    /// `Authorization: Bearer …`.
    Bearer(&'a str),
    /// The session cookie's value, and the `X-CSRF-Token` header if any.
    Session { id: &'a str, csrf: Option<&'a str> },
    /// Nothing usable.
    None,
}

impl<'a> Credentials<'a> {
    /// From the headers of a TCP request. A bearer token wins over a cookie (API clients
    /// send no cookies; a browser never sends our bearer token). `secure`: the listener
    /// speaks TLS (which cookie name applies).
    pub fn from_headers(
        authorization: Option<&'a str>,
        cookie: Option<&'a str>,
        csrf: Option<&'a str>,
        secure: bool,
    ) -> Credentials<'a> {
        if let Some(auth) = authorization {
            let mut parts = auth.trim().splitn(2, ' ');
            if let (Some(scheme), Some(value)) = (parts.next(), parts.next()) {
                if scheme.eq_ignore_ascii_case("bearer") && !value.trim().is_empty() {
                    return Credentials::Bearer(value.trim());
                }
            }
            return Credentials::None;
        }
        match cookie.and_then(|c| session::cookie_value(c, secure)) {
            Some(id) => Credentials::Session { id, csrf },
            None => Credentials::None,
        }
    }
}

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: log in, or send Authorization: Bearer TOKEN")]
    Missing,
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Session(#[from] SessionError),
    /// Known, but no role: a UNIX peer outside the uvmm groups, or a session whose user
    /// lost every role since logging in.
    #[error("this account has no role in uvmm")]
    NoRole,
    #[error("looking up the caller's account failed: {0}")]
    Lookup(#[from] LookupError),
}

impl AuthError {
    /// What the daemon's error mapping should answer: `401` asks for credentials, `403`
    /// means they were fine but do not suffice (CSRF: the session is valid, the request
    /// did not prove it came from our page).
    pub fn status_code(&self) -> u16 {
        match self {
            AuthError::Missing | AuthError::Token(_) => 401,
            AuthError::Session(SessionError::CsrfMissing | SessionError::CsrfMismatch) => 403,
            AuthError::Session(_) => 401,
            AuthError::NoRole => 403,
            AuthError::Lookup(_) => 500,
        }
    }
}

/// Everything needed to authenticate a request. Cheap to share (`Arc` inside).
#[derive(Debug, Clone)]
pub struct Authenticator {
    pub policy: PolicyHandle,
    pub tokens: Arc<TokenStore>,
    pub sessions: Arc<SessionStore>,
    /// The legacy single API token (`<state_dir>/api-token`), which stays an admin
    /// credential until administrators move to named tokens.
    pub legacy_token: Option<String>,
}

impl Authenticator {
    pub fn authenticate(
        &self,
        credentials: Credentials<'_>,
        origin: Origin,
        method: &str,
        now: Instant,
        wall: SystemTime,
    ) -> Result<Authenticated, AuthError> {
        let policy = self.policy.current();
        let (principal, grants) = match credentials {
            Credentials::None => return Err(AuthError::Missing),
            Credentials::UnixPeer { uid, pid } => {
                let identity = peer::peer_identity(uid)?;
                let grants = policy.grants_for(&identity);
                let user = identity
                    .uid
                    .filter(|_| !identity.name.starts_with("uid "))
                    .map(|_| identity.name);
                (Principal::UnixPeer { uid, pid, user }, grants)
            }
            Credentials::Bearer(token) if tokens::is_named_token(token) => {
                let v = self.tokens.verify(token, wall)?;
                (Principal::Token { name: v.name }, Grants(vec![v.grant]))
            }
            Credentials::Bearer(token) => match &self.legacy_token {
                Some(legacy) if ct_eq(token.as_bytes(), legacy.as_bytes()) => {
                    (Principal::LegacyToken, Grants::admin())
                }
                _ => return Err(AuthError::Token(TokenError::Invalid)),
            },
            Credentials::Session { id, csrf } => {
                let info = self
                    .sessions
                    .check(id, csrf, session::is_mutating(method), now)?;
                let grants = policy.grants_for(&info.user);
                (
                    Principal::Session {
                        user: info.user.name,
                    },
                    grants,
                )
            }
        };
        if grants.is_empty() {
            return Err(AuthError::NoRole);
        }
        Ok(Authenticated {
            principal,
            origin,
            grants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::UserIdentity;
    use crate::config::Policy;
    use crate::roles::{Grant, Role};
    use crate::session::SessionSettings;
    use crate::tokens::TokenRequest;

    #[test]
    fn credentials_from_headers() {
        let id = "a".repeat(64);
        let cookie = format!("x=1; __Host-uvmm-session={id}");
        let table = [
            (Some("Bearer abc"), None, Credentials::Bearer("abc")),
            (
                Some("bearer  abc "),
                Some(cookie.as_str()),
                Credentials::Bearer("abc"),
            ),
            (
                Some("Basic dXNlcjpwdw=="),
                Some(cookie.as_str()),
                Credentials::None,
            ),
            (Some("Bearer "), None, Credentials::None),
            (
                None,
                Some(cookie.as_str()),
                Credentials::Session {
                    id: &id,
                    csrf: Some("c"),
                },
            ),
            (None, Some("uvmm-session=x"), Credentials::None),
            (None, None, Credentials::None),
        ];
        for (auth, cookie, want) in table {
            assert_eq!(
                Credentials::from_headers(auth, cookie, Some("c"), true),
                want,
                "{auth:?} {cookie:?}"
            );
        }
    }

    #[test]
    fn every_way_in() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Arc::new(TokenStore::open(&dir.path().join("tokens.json")).unwrap());
        let sessions = Arc::new(SessionStore::new(SessionSettings::default()));
        let auth = Authenticator {
            policy: PolicyHandle::new(Policy::default()),
            tokens: tokens.clone(),
            sessions: sessions.clone(),
            legacy_token: Some("legacy-secret".into()),
        };
        let now = Instant::now();
        let wall = SystemTime::now();
        let tcp = Origin::Tcp {
            addr: "127.0.0.1:4000".parse().unwrap(),
        };
        let go = |c| auth.authenticate(c, tcp, "POST", now, wall);

        // Root on the socket is admin; a uid without a role is refused.
        let root = auth
            .authenticate(
                Credentials::UnixPeer {
                    uid: 0,
                    pid: Some(1),
                },
                Origin::Unix,
                "POST",
                now,
                wall,
            )
            .unwrap();
        assert_eq!(root.grants, Grants(vec![Grant::unrestricted(Role::Admin)]));
        assert_eq!(root.principal.who(), "root (uid 0)");
        let nobody = auth.authenticate(
            Credentials::UnixPeer {
                uid: 65534,
                pid: None,
            },
            Origin::Unix,
            "GET",
            now,
            wall,
        );
        assert!(matches!(nobody, Err(AuthError::NoRole)));
        assert_eq!(nobody.unwrap_err().status_code(), 403);

        // Tokens: named, legacy, wrong.
        let t = tokens
            .create(
                TokenRequest {
                    name: "ci".into(),
                    grant: Grant::unrestricted(Role::Viewer),
                    valid_for: None,
                    created_by: "test".into(),
                },
                wall,
            )
            .unwrap();
        let a = go(Credentials::Bearer(&t.token)).unwrap();
        assert_eq!(a.principal, Principal::Token { name: "ci".into() });
        assert_eq!(a.grants.highest_role(), Some(Role::Viewer));
        assert_eq!(
            go(Credentials::Bearer("legacy-secret")).unwrap().principal,
            Principal::LegacyToken
        );
        for bad in ["legacy-secreT", "uvmm_x_y", ""] {
            let e = go(Credentials::Bearer(bad)).unwrap_err();
            assert_eq!(e.status_code(), 401, "{bad}");
        }
        assert_eq!(go(Credentials::None).unwrap_err().status_code(), 401);

        // Sessions: CSRF needed on changes; grants follow the policy in force.
        let user = UserIdentity {
            name: "op".into(),
            uid: Some(1000),
            groups: vec!["uvmm".into()],
            source: "pam".into(),
        };
        let s = sessions.create(user, now).unwrap();
        let e = go(Credentials::Session {
            id: &s.id,
            csrf: None,
        })
        .unwrap_err();
        assert_eq!(e.status_code(), 403);
        let ok = go(Credentials::Session {
            id: &s.id,
            csrf: Some(&s.csrf),
        })
        .unwrap();
        assert_eq!(ok.grants.highest_role(), Some(Role::Operator));
        auth.policy
            .reload(
                &crate::config::AuthConfig::from_toml("[auth.unix_groups]\noperator = []").unwrap(),
            )
            .unwrap();
        let e = go(Credentials::Session {
            id: &s.id,
            csrf: Some(&s.csrf),
        })
        .unwrap_err();
        assert!(matches!(e, AuthError::NoRole));
        assert!(sessions.logout(&s.id));
        assert_eq!(
            go(Credentials::Session {
                id: &s.id,
                csrf: Some(&s.csrf)
            })
            .unwrap_err()
            .status_code(),
            401
        );
    }
}
