//! Logins, API tokens and "who am I" (`/api/v1/login`, `/api/v1/logout`,
//! `/api/v1/whoami`, `/api/v1/tokens`). The roles and scopes themselves are
//! `uvmm_auth::roles`; here they travel as strings.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/login`: a local account's name and password (PAM service `uvmm`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(max_length = 256)]
    pub user: String,
    #[schema(max_length = 4096)]
    pub password: String,
}

/// One grant: a role, limited to hosts and VM names (patterns) when given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GrantInfo {
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// Host ids or URIs (patterns); absent: every host.
    pub hosts: Option<Vec<String>>,
    /// VM names (patterns); absent: every VM.
    pub vms: Option<Vec<String>>,
}

/// Who the caller is and what it may do: the answer of `GET /api/v1/whoami` and of a
/// login (which also sets the session cookie).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// The name changes are recorded under (`root`, `alice`, `token:ci`, `token:api`).
    pub user: String,
    /// How the caller came in: `unix_peer`, `session`, `token`, `legacy_token`.
    pub via: String,
    /// The highest role held anywhere.
    pub role: Option<String>,
    pub grants: Vec<GrantInfo>,
    /// A session's CSRF token: send it as `X-CSRF-Token` with every change. In the answer
    /// of the login and of `whoami` for a browser session (null for other callers).
    pub csrf: Option<String>,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreateRequest {
    /// 1 to 64 letters, digits, `.`, `_`, `-`, starting with a letter or digit.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub name: String,
    /// `viewer`, `operator` or `admin`; never more than the creator holds.
    pub role: String,
    /// Host ids or URIs (patterns); absent or empty: every host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// VM names (patterns); absent or empty: every VM.
    #[serde(default)]
    pub vms: Vec<String>,
    /// Days until it expires; absent: until revoked.
    #[schema(minimum = 1, maximum = 36500)]
    pub valid_days: Option<u32>,
}

/// A token as listed: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub name: String,
    pub role: String,
    pub hosts: Option<Vec<String>>,
    pub vms: Option<Vec<String>>,
    /// Seconds since 1970.
    pub created: u64,
    pub expires: Option<u64>,
    pub created_by: String,
    pub expired: bool,
}

/// The answer to `POST /api/v1/tokens`: the only time the token is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewTokenResponse {
    /// `uvmm_<id>_<secret>`: send it as `Authorization: Bearer …`. uvmmd keeps only
    /// its SHA-256 and cannot show it again.
    pub token: String,
    pub info: TokenInfo,
}
