//! Who may do what in uvmm (issue 13), as a library the daemon's `http/` layer and the CLI
//! plug in:
//!
//! - [`tls`]: the TCP listener's certificate (configured or self-signed, reloadable) and
//!   the CLI's server verification (`--ca`, or a fingerprint pinned with consent);
//! - [`login`]: password logins through a [`login::LoginBackend`] (PAM now, the directory
//!   later) with rate limits and one uniform failure path; [`session`]: browser sessions
//!   with CSRF tokens; [`tokens`]: named API tokens stored hashed;
//! - [`config`]: the `[auth]` table (UNIX groups, users and groups → roles and scopes);
//!   [`roles`]: the permissions, and [`roles::authorize`] — the one place that decides;
//! - [`audit`]: the JSON-lines audit log.
//!
//! Nothing here speaks HTTP: the daemon maps these types to status codes in its one error
//! mapping (`http/error.rs`). `docs/security.md` describes the whole.

pub mod audit;
pub mod authn;
pub mod caller;
pub mod config;
pub mod login;
pub mod peer;
pub mod ratelimit;
pub mod roles;
pub mod session;
pub mod tls;
pub mod tokens;
pub mod util;

pub use authn::{AuthError, Authenticator, Credentials};
pub use caller::{Authenticated, Origin, Principal, UserIdentity};
pub use config::{AuthConfig, Policy, PolicyHandle};
pub use roles::{
    authorize, visible, Access, Denied, Grant, Grants, HostRef, Permission, Role, Scope, Target,
};
