//! Password logins: a [`LoginBackend`] checks user and password (PAM, the LDAP
//! directory, or both in a stated order: [`Ordered`]), a [`LoginService`] wraps it with
//! rate limits, a uniform failure path and sessions.

mod ordered;
pub mod pam;
mod service;

pub use ordered::Ordered;
pub use service::{LoginError, LoginService, LoginSuccess};

use crate::caller::UserIdentity;
use std::net::IpAddr;

/// Why a backend refused. Only for the log: the client always gets the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown user or wrong password (backends need not tell them apart, PAM does not
    /// reliably).
    BadCredentials,
    /// The backend knows no such user (only backends that can tell say so: the directory
    /// does, PAM does not). With several backends, the next one is asked.
    UnknownUser,
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
            Refusal::UnknownUser => "unknown user",
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
    /// A backend refused the password, but one that may know the name could not be
    /// asked ([`Ordered`]): answered as unavailable (`503`, with `why`), but counted and
    /// delayed like a failed login, so that an outage does not lift the rate limits on
    /// the accounts that can still be checked.
    #[error("the login service is unavailable: {why}")]
    Undecided { why: String },
}

/// Checks a user's password. Blocking (PAM and LDAP binds block): the daemon calls the
/// [`LoginService`] from `spawn_blocking`.
///
/// Implementations: PAM (`pam::PamBackend`) and the directory
/// (`uvmm_directory::login::DirectoryLogin`, identities with `source: "directory"` and
/// the directory's group names).
pub trait LoginBackend: Send + Sync {
    /// `pam`, `directory`: recorded in the identity and the audit log.
    fn name(&self) -> &'static str;

    /// Why this backend cannot check any password now for reasons of configuration
    /// (PAM without its service file); `None` when it can try. An [`Ordered`] list skips
    /// such a backend instead of failing every login.
    fn off(&self) -> Option<String> {
        None
    }

    fn authenticate(
        &self,
        user: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<UserIdentity, BackendError>;
}
