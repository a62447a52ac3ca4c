//! Password logins: a [`LoginBackend`] checks user and password (PAM first, the LDAP
//! directory later), a [`LoginService`] wraps it with rate limits, a uniform failure path
//! and sessions.

pub mod pam;
mod service;

pub use service::{LoginError, LoginService, LoginSuccess};

use crate::caller::UserIdentity;
use std::net::IpAddr;

/// Why a backend refused. Only for the log: the client always gets the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown user or wrong password (backends need not tell them apart, PAM does not
    /// reliably).
    BadCredentials,
    /// The account is locked or disabled.
    AccountLocked,
    /// The account has expired.
    AccountExpired,
    /// The password has expired and must be changed first.
    PasswordExpired,
    /// The backend's account policy refused (PAM account stack: access.conf, …).
    NotPermitted,
    /// uvmm's own rules: root logins are off, the password was empty, the name malformed.
    ByPolicy,
    /// Authenticated, but the account holds no role in uvmm.
    NoRole,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::BadCredentials => "bad credentials",
            Refusal::AccountLocked => "account locked",
            Refusal::AccountExpired => "account expired",
            Refusal::PasswordExpired => "password expired",
            Refusal::NotPermitted => "not permitted by the account policy",
            Refusal::ByPolicy => "refused by uvmm's login rules",
            Refusal::NoRole => "no role in uvmm",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("login refused: {}", .0.as_str())]
    Refused(Refusal),
    /// The backend itself failed (PAM misconfigured, directory down): a `503`, not a
    /// failed login, and not counted against the user.
    #[error("the login service is unavailable: {0}")]
    Unavailable(String),
}

/// Checks a user's password. Blocking (PAM and LDAP binds block): the daemon calls the
/// [`LoginService`] from `spawn_blocking`.
///
/// The directory joins as a second implementation: `Directory::authenticate(uid, pw)`
/// returns `User { uid, dn, groups }`, which maps to a [`UserIdentity`] with
/// `source: "directory"` and the directory's group names.
pub trait LoginBackend: Send + Sync {
    /// `pam`, `directory`: recorded in the identity and the audit log.
    fn name(&self) -> &'static str;

    fn authenticate(
        &self,
        user: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<UserIdentity, BackendError>;
}
