//! Who made a request: the principal (for the audit log and the UI) and the grants that
//! were resolved for it (for `authorize`). The daemon's `Caller` carries one of these
//! into every job.

use crate::roles::Grants;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;

/// A user as a login backend or the system knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserIdentity {
    /// The canonical account name (as the backend returned it, which may differ from what
    /// was typed, e.g. in case).
    pub name: String,
    /// Local uid, when the account is a local one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Group names (local groups for PAM and UNIX peers, directory groups for LDAP).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Which backend vouched for the user: `pam`, `unix-peer`, `directory`.
    pub source: String,
}

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    /// A process on the UNIX socket (`SO_PEERCRED`).
    UnixPeer {
        uid: u32,
        pid: Option<i32>,
        /// The account name, when the uid has one.
        user: Option<String>,
    },
    /// A browser session made by `POST /api/v1/login`.
    Session { user: String },
    /// A named API token (`Authorization: Bearer uvmm_…`).
    Token { name: String },
    /// The daemon's one legacy API token (`<state_dir>/api-token`), admin.
    LegacyToken,
}

impl Principal {
    /// A short name for logs and the audit record's "who".
    pub fn who(&self) -> String {
        match self {
            Principal::UnixPeer { uid, user, .. } => match user {
                Some(u) => format!("{u} (uid {uid})"),
                None => format!("uid {uid}"),
            },
            Principal::Session { user } => user.clone(),
            Principal::Token { name } => format!("token {name}"),
            Principal::LegacyToken => "api-token".to_string(),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.who())
    }
}

/// Where the request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Origin {
    Unix,
    Tcp { addr: SocketAddr },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Unix => f.write_str("unix"),
            Origin::Tcp { addr } => write!(f, "tcp={addr}"),
        }
    }
}

/// An authenticated caller: what the daemon's request extractor produces and every job
/// carries. Grants are resolved when the request arrives, from the policy in force then,
/// so a reload (SIGHUP) applies to the next request of an existing session too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub principal: Principal,
    pub origin: Origin,
    pub grants: Grants,
}
