//! The `[auth]` table of `uvmmd.toml`: UNIX groups and configured grants (users and groups
//! → roles and scopes), login, session and rate-limit settings. Parsed and checked here
//! into a [`Policy`]; [`PolicyHandle`] swaps it on SIGHUP.
//!
//! ```toml
//! [auth]
//! allow_root_login = false      # PAM login as root (root uses the UNIX socket)
//! failure_delay_ms = 1000       # every failed login answers after this long
//! session_idle_mins = 30
//! session_max_hours = 12
//!
//! login_backends = ["directory", "pam"]   # asked in this order (default: directory
//!                               # mode ["directory", "pam"], standalone ["pam"])
//!
//! [auth.unix_groups]            # roles of local groups (UNIX socket and PAM logins)
//! admin = ["uvmm-admin"]
//! operator = ["uvmm"]
//! viewer = ["uvmm-viewer"]
//!
//! [auth.directory_groups]       # roles of directory groups (directory logins); none
//! admin = ["uvmm-admins"]       # by default
//! operator = ["uvmm-operators"]
//!
//! [[auth.grant]]                # operator on the web VMs of kvm2
//! group = "webteam"             # or: user = "alice"
//! role = "operator"
//! hosts = ["kvm2"]              # host ids or URIs; absent: every host
//! vms = ["web-*"]               # VM names; absent: every VM
//! ```

use crate::caller::UserIdentity;
use crate::ratelimit::RateLimitSettings;
use crate::roles::{Grant, Grants, Role, Scope, ScopeError};
use crate::session::SessionSettings;
use serde::Deserialize;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The `[auth]` table as written. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub allow_root_login: Option<bool>,
    pub failure_delay_ms: Option<u64>,
    pub max_logins_in_flight: Option<usize>,
    pub session_idle_mins: Option<u64>,
    pub session_max_hours: Option<u64>,
    pub max_sessions: Option<usize>,
    pub max_sessions_per_user: Option<usize>,
    pub login_backends: Option<Vec<String>>,
    pub unix_groups: Option<UnixGroupsConfig>,
    pub directory_groups: Option<UnixGroupsConfig>,
    pub rate_limit: Option<RateLimitConfig>,
    #[serde(default, rename = "grant")]
    pub grants: Vec<GrantConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnixGroupsConfig {
    pub admin: Option<Vec<String>>,
    pub operator: Option<Vec<String>>,
    pub viewer: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub user_free_failures: Option<u32>,
    pub address_free_failures: Option<u32>,
    pub lockout_min_secs: Option<u64>,
    pub lockout_max_secs: Option<u64>,
    pub forget_after_secs: Option<u64>,
}

/// One `[[auth.grant]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantConfig {
    pub user: Option<String>,
    pub group: Option<String>,
    pub role: String,
    pub hosts: Option<Vec<String>>,
    pub vms: Option<Vec<String>>,
}

/// Which local groups hold which role (checked in this order: admin first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixGroups {
    pub admin: Vec<String>,
    pub operator: Vec<String>,
    pub viewer: Vec<String>,
}

impl Default for UnixGroups {
    fn default() -> Self {
        UnixGroups {
            admin: vec!["uvmm-admin".into()],
            operator: vec!["uvmm".into()],
            viewer: vec!["uvmm-viewer".into()],
        }
    }
}

impl UnixGroups {
    /// No group holds a role (the default of `[auth.directory_groups]`: a directory's
    /// groups mean nothing to uvmm until the configuration says so).
    pub fn none() -> UnixGroups {
        UnixGroups {
            admin: Vec::new(),
            operator: Vec::new(),
            viewer: Vec::new(),
        }
    }
}

/// A login backend `[auth] login_backends` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    Pam,
    Directory,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Pam => "pam",
            BackendKind::Directory => "directory",
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pam" => Ok(BackendKind::Pam),
            "directory" => Ok(BackendKind::Directory),
            other => Err(format!(
                "unknown login backend '{other}' (known: \"pam\", \"directory\")"
            )),
        }
    }
}

/// Who a configured grant is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Group(String),
}

/// How logins behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSettings {
    /// Whether `root` may log in through PAM (default no: root has the UNIX socket).
    pub allow_root_login: bool,
    /// Every failed login is answered this long after it arrived, whatever failed, so that
    /// an unknown user, a wrong password and a locked account look the same. Must exceed
    /// the slowest password check.
    pub failure_delay: Duration,
    /// Logins checked at the same time; more are answered "busy" at once.
    pub max_in_flight: usize,
}

impl Default for LoginSettings {
    fn default() -> Self {
        LoginSettings {
            allow_root_login: false,
            failure_delay: Duration::from_millis(1000),
            max_in_flight: 16,
        }
    }
}

/// The checked configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub unix_groups: UnixGroups,
    /// Roles of directory groups; they apply to identities from the directory only, as
    /// `unix_groups` apply to local ones only (a directory group that happens to be
    /// called `uvmm-admin` makes nobody an admin).
    pub directory_groups: UnixGroups,
    /// The order of the login backends; `None`: the daemon's default for its mode.
    pub login_backends: Option<Vec<BackendKind>>,
    pub grants: Vec<(Subject, Grant)>,
    pub login: LoginSettings,
    pub sessions: SessionSettings,
    pub rate_limit: RateLimitSettings,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            unix_groups: UnixGroups::default(),
            directory_groups: UnixGroups::none(),
            login_backends: None,
            grants: Vec::new(),
            login: LoginSettings::default(),
            sessions: SessionSettings::default(),
            rate_limit: RateLimitSettings::default(),
        }
    }
}

/// What is wrong with the `[auth]` table. Each message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("[auth]: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("[[auth.grant]] #{index}: {message}")]
    Grant { index: usize, message: String },
    #[error("[[auth.grant]] #{index}: {source}")]
    Pattern {
        index: usize,
        #[source]
        source: ScopeError,
    },
    #[error("[auth] {key}: {message}")]
    Value { key: &'static str, message: String },
}

/// A user or group name as `[auth]` accepts it: what `useradd` and directories accept,
/// without spaces, control characters or `:`.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '$'))
}

fn value(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        key,
        message: message.into(),
    }
}

fn positive(key: &'static str, v: Option<u64>, default: u64, max: u64) -> Result<u64, ConfigError> {
    match v {
        None => Ok(default),
        Some(0) => Err(value(key, "must be at least 1")),
        Some(v) if v > max => Err(value(key, format!("must be at most {max}"))),
        Some(v) => Ok(v),
    }
}

/// [`positive`] for a count: the same checks, as the `usize` it is used as.
fn positive_count(
    key: &'static str,
    v: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, ConfigError> {
    let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let n = positive(key, v.map(wide), wide(default), wide(max))?;
    // At most `max`, which is a usize.
    Ok(usize::try_from(n).unwrap_or(max))
}

impl AuthConfig {
    /// Parse the `[auth]` table from a whole configuration file's text (other tables are
    /// ignored here; the daemon checks them).
    pub fn from_toml(text: &str) -> Result<AuthConfig, ConfigError> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            auth: AuthConfig,
        }
        let file: File = toml::from_str(text)?;
        Ok(file.auth)
    }

    /// Check everything and build the policy.
    pub fn validate(&self) -> Result<Policy, ConfigError> {
        let mut unix = UnixGroups::default();
        if let Some(g) = &self.unix_groups {
            for (key, list, slot) in [
                ("unix_groups.admin", &g.admin, &mut unix.admin),
                ("unix_groups.operator", &g.operator, &mut unix.operator),
                ("unix_groups.viewer", &g.viewer, &mut unix.viewer),
            ] {
                set_groups(key, list, slot)?;
            }
        }
        let mut directory = UnixGroups::none();
        if let Some(g) = &self.directory_groups {
            for (key, list, slot) in [
                ("directory_groups.admin", &g.admin, &mut directory.admin),
                (
                    "directory_groups.operator",
                    &g.operator,
                    &mut directory.operator,
                ),
                ("directory_groups.viewer", &g.viewer, &mut directory.viewer),
            ] {
                set_groups(key, list, slot)?;
            }
        }
        let login_backends = match &self.login_backends {
            None => None,
            Some(names) if names.is_empty() => {
                return Err(value(
                    "login_backends",
                    "[] would allow no login; leave it out for the default",
                ))
            }
            Some(names) => {
                let mut kinds: Vec<BackendKind> = Vec::new();
                for n in names {
                    let k: BackendKind = n.parse().map_err(|e| value("login_backends", e))?;
                    if kinds.contains(&k) {
                        return Err(value("login_backends", format!("'{n}' is named twice")));
                    }
                    kinds.push(k);
                }
                Some(kinds)
            }
        };

        let mut grants = Vec::new();
        for (i, g) in self.grants.iter().enumerate() {
            let index = i + 1;
            let gerr = |message: String| ConfigError::Grant { index, message };
            let subject = match (&g.user, &g.group) {
                (Some(u), None) if valid_name(u) => Subject::User(u.clone()),
                (None, Some(gr)) if valid_name(gr) => Subject::Group(gr.clone()),
                (Some(u), None) => return Err(gerr(format!("'{u}' is not a user name"))),
                (None, Some(gr)) => return Err(gerr(format!("'{gr}' is not a group name"))),
                (Some(_), Some(_)) => {
                    return Err(gerr("give either user or group, not both".into()))
                }
                (None, None) => {
                    return Err(gerr("give user = \"NAME\" or group = \"NAME\"".into()))
                }
            };
            let role: Role = g.role.parse().map_err(|e| gerr(format!("{e}")))?;
            for (key, list) in [("hosts", &g.hosts), ("vms", &g.vms)] {
                if list.as_ref().is_some_and(|l| l.is_empty()) {
                    return Err(gerr(format!(
                        "{key} = [] would grant nothing; leave {key} out to mean all"
                    )));
                }
            }
            let pat = |source| ConfigError::Pattern { index, source };
            let grant = Grant {
                role,
                hosts: Scope::from_patterns(g.hosts.as_deref()).map_err(pat)?,
                vms: Scope::from_patterns(g.vms.as_deref()).map_err(pat)?,
            };
            grants.push((subject, grant));
        }

        let login = LoginSettings {
            allow_root_login: self.allow_root_login.unwrap_or(false),
            failure_delay: Duration::from_millis(positive(
                "failure_delay_ms",
                self.failure_delay_ms,
                1000,
                60_000,
            )?),
            max_in_flight: positive_count(
                "max_logins_in_flight",
                self.max_logins_in_flight,
                16,
                1024,
            )?,
        };
        let idle = positive("session_idle_mins", self.session_idle_mins, 30, 24 * 60)?;
        let max = positive("session_max_hours", self.session_max_hours, 12, 24 * 31)?;
        if idle > max * 60 {
            return Err(value(
                "session_idle_mins",
                format!("{idle} minutes is longer than session_max_hours ({max} h)"),
            ));
        }
        let sessions = SessionSettings {
            idle: Duration::from_secs(idle * 60),
            absolute: Duration::from_secs(max * 3600),
            max_sessions: positive_count("max_sessions", self.max_sessions, 10_000, 1_000_000)?,
            max_per_user: positive_count(
                "max_sessions_per_user",
                self.max_sessions_per_user,
                16,
                10_000,
            )?,
        };
        let r = self.rate_limit.clone().unwrap_or_default();
        let d = RateLimitSettings::default();
        let lock_min = positive(
            "rate_limit.lockout_min_secs",
            r.lockout_min_secs,
            d.lockout_min.as_secs(),
            86_400,
        )?;
        let lock_max = positive(
            "rate_limit.lockout_max_secs",
            r.lockout_max_secs,
            d.lockout_max.as_secs(),
            86_400,
        )?;
        if lock_min > lock_max {
            return Err(value(
                "rate_limit.lockout_min_secs",
                "is larger than rate_limit.lockout_max_secs",
            ));
        }
        let rate_limit = RateLimitSettings {
            user_free_failures: r.user_free_failures.unwrap_or(d.user_free_failures),
            address_free_failures: r.address_free_failures.unwrap_or(d.address_free_failures),
            lockout_min: Duration::from_secs(lock_min),
            lockout_max: Duration::from_secs(lock_max),
            forget_after: Duration::from_secs(positive(
                "rate_limit.forget_after_secs",
                r.forget_after_secs,
                d.forget_after.as_secs(),
                7 * 86_400,
            )?),
            max_entries: d.max_entries,
        };
        Ok(Policy {
            unix_groups: unix,
            directory_groups: directory,
            login_backends,
            grants,
            login,
            sessions,
            rate_limit,
        })
    }
}

/// Check and set one `[auth.*_groups]` list.
fn set_groups(
    key: &'static str,
    list: &Option<Vec<String>>,
    slot: &mut Vec<String>,
) -> Result<(), ConfigError> {
    if let Some(list) = list {
        if let Some(bad) = list.iter().find(|n| !valid_name(n)) {
            return Err(value(key, format!("'{bad}' is not a group name")));
        }
        slot.clone_from(list);
    }
    Ok(())
}

/// `UserIdentity::source` of a directory login.
pub const DIRECTORY_SOURCE: &str = "directory";

/// The role of a local account from its uid and groups: root and the admin groups are
/// admins, the operator groups operators, the viewer groups viewers; anyone else none.
/// Pure: the caller looks the groups up (`peer::local_user`).
pub fn unix_role(uid: u32, groups: &[String], cfg: &UnixGroups) -> Option<Role> {
    if uid == 0 {
        return Some(Role::Admin);
    }
    let member = |list: &[String]| groups.iter().any(|g| list.contains(g));
    if member(&cfg.admin) {
        Some(Role::Admin)
    } else if member(&cfg.operator) {
        Some(Role::Operator)
    } else if member(&cfg.viewer) {
        Some(Role::Viewer)
    } else {
        None
    }
}

impl Policy {
    /// Parse and check a whole configuration file's `[auth]` table.
    pub fn from_toml(text: &str) -> Result<Policy, ConfigError> {
        AuthConfig::from_toml(text)?.validate()
    }

    /// Everything `user` may do: the role of its groups (everywhere) — local groups
    /// through `unix_groups` for local identities (UNIX peer, PAM), directory groups
    /// through `directory_groups` for directory logins — plus every configured grant
    /// naming the user or one of its groups.
    pub fn grants_for(&self, user: &UserIdentity) -> Grants {
        let mut out = Vec::new();
        let role = if user.source == DIRECTORY_SOURCE {
            // Never uid 0: a directory identity has no local uid.
            unix_role(u32::MAX, &user.groups, &self.directory_groups)
        } else {
            unix_role(
                user.uid.unwrap_or(u32::MAX),
                &user.groups,
                &self.unix_groups,
            )
        };
        if let Some(role) = role {
            out.push(Grant::unrestricted(role));
        }
        for (subject, grant) in &self.grants {
            let applies = match subject {
                Subject::User(u) => *u == user.name,
                Subject::Group(g) => user.groups.contains(g),
            };
            if applies {
                out.push(grant.clone());
            }
        }
        Grants(out)
    }
}

/// The policy in force, swapped as a whole on reload: a request sees the old or the new
/// policy, never a mix.
#[derive(Debug, Clone, Default)]
pub struct PolicyHandle(Arc<RwLock<Arc<Policy>>>);

impl PolicyHandle {
    pub fn new(policy: Policy) -> PolicyHandle {
        PolicyHandle(Arc::new(RwLock::new(Arc::new(policy))))
    }

    pub fn current(&self) -> Arc<Policy> {
        match self.0.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Check `config` and put it in force; on error the old policy stays.
    pub fn reload(&self, config: &AuthConfig) -> Result<(), ConfigError> {
        let policy = Arc::new(config.validate()?);
        match self.0.write() {
            Ok(mut p) => *p = policy,
            Err(poisoned) => *poisoned.into_inner() = policy,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::{authorize, HostRef, Permission, Target};

    fn user(name: &str, uid: u32, groups: &[&str]) -> UserIdentity {
        UserIdentity {
            name: name.into(),
            uid: Some(uid),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            source: "pam".into(),
        }
    }

    #[test]
    fn unix_role_table() {
        let cfg = UnixGroups::default();
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let table: &[(u32, &[&str], Option<Role>)] = &[
            (0, &[], Some(Role::Admin)),
            (0, &["uvmm-viewer"], Some(Role::Admin)),
            (1000, &["uvmm-admin"], Some(Role::Admin)),
            (1000, &["uvmm", "uvmm-admin"], Some(Role::Admin)),
            (1000, &["uvmm"], Some(Role::Operator)),
            (1000, &["uvmm-viewer", "uvmm"], Some(Role::Operator)),
            (1000, &["uvmm-viewer"], Some(Role::Viewer)),
            (1000, &["users", "sudo", "libvirt"], None),
            (1000, &[], None),
            (65534, &["nogroup"], None),
            (1000, &["UVMM-ADMIN"], None), // group names are exact
        ];
        for (uid, groups, want) in table {
            assert_eq!(unix_role(*uid, &s(groups), &cfg), *want, "{uid} {groups:?}");
        }
        let custom = UnixGroups {
            admin: vec!["wheel".into()],
            operator: vec![],
            viewer: vec!["staff".into()],
        };
        assert_eq!(unix_role(5, &s(&["wheel"]), &custom), Some(Role::Admin));
        assert_eq!(unix_role(5, &s(&["uvmm-admin"]), &custom), None);
        assert_eq!(unix_role(5, &s(&["staff"]), &custom), Some(Role::Viewer));
    }

    const FULL: &str = r#"
hosts = ["test:///default"]   # not ours: ignored here
[api]
max_connections = 5

[auth]
allow_root_login = true
failure_delay_ms = 500
session_idle_mins = 20
session_max_hours = 8
[auth.unix_groups]
admin = ["wheel"]
[auth.rate_limit]
user_free_failures = 3
[[auth.grant]]
group = "webteam"
role = "operator"
hosts = ["kvm2"]
vms = ["web-*"]
[[auth.grant]]
user = "carol"
role = "viewer"
"#;

    #[test]
    fn full_config() {
        let p = Policy::from_toml(FULL).unwrap();
        assert!(p.login.allow_root_login);
        assert_eq!(p.login.failure_delay, Duration::from_millis(500));
        assert_eq!(p.sessions.idle, Duration::from_secs(20 * 60));
        assert_eq!(p.sessions.absolute, Duration::from_secs(8 * 3600));
        assert_eq!(p.unix_groups.admin, ["wheel"]);
        assert_eq!(p.unix_groups.operator, ["uvmm"]); // default kept
        assert_eq!(p.rate_limit.user_free_failures, 3);
        assert_eq!(p.grants.len(), 2);

        let kvm2 = HostRef {
            id: "kvm2",
            uri: "qemu+ssh://kvm2/system",
        };
        let dave = p.grants_for(&user("dave", 1001, &["webteam"]));
        assert!(authorize(&dave, Permission::Lifecycle, &Target::vm(kvm2, "web-3")).is_ok());
        assert!(authorize(&dave, Permission::Lifecycle, &Target::vm(kvm2, "db")).is_err());
        let carol = p.grants_for(&user("carol", 1002, &[]));
        assert_eq!(carol.highest_role(), Some(Role::Viewer));
        let wheel = p.grants_for(&user("erin", 1003, &["wheel", "webteam"]));
        assert_eq!(wheel.0.len(), 2);
        assert_eq!(wheel.highest_role(), Some(Role::Admin));
        assert!(p.grants_for(&user("mallory", 1004, &["users"])).is_empty());
        assert_eq!(
            p.grants_for(&user("root", 0, &[])).highest_role(),
            Some(Role::Admin)
        );
    }

    /// Local groups give roles to local identities only, directory groups to directory
    /// identities only; grants naming a group apply to both.
    #[test]
    fn directory_groups_apply_to_directory_users_only() {
        let p = Policy::from_toml(
            "[auth]\nlogin_backends = [\"directory\", \"pam\"]\n\
             [auth.directory_groups]\nadmin = [\"uvmm-admins\"]\nviewer = [\"staff\"]\n\
             [[auth.grant]]\ngroup = \"webteam\"\nrole = \"operator\"\nvms = [\"web-*\"]\n",
        )
        .unwrap();
        assert_eq!(
            p.login_backends,
            Some(vec![BackendKind::Directory, BackendKind::Pam])
        );
        let dir = |groups: &[&str]| UserIdentity {
            source: DIRECTORY_SOURCE.into(),
            uid: None,
            ..user("d", 0, groups)
        };
        let table: &[(UserIdentity, Option<Role>)] = &[
            (dir(&["uvmm-admins"]), Some(Role::Admin)),
            (dir(&["staff"]), Some(Role::Viewer)),
            (dir(&["uvmm-admin"]), None), // a local group's name means nothing here
            (dir(&[]), None),
            (dir(&["webteam"]), Some(Role::Operator)), // grants: both kinds
            (user("l", 1000, &["uvmm-admins"]), None), // nor the other way round
            (user("l", 1000, &["uvmm-admin"]), Some(Role::Admin)),
            (
                UserIdentity {
                    uid: Some(0),
                    ..dir(&[])
                },
                None,
            ),
        ];
        for (id, want) in table {
            assert_eq!(p.grants_for(id).highest_role(), *want, "{id:?}");
        }
        // Default: no directory group holds a role.
        let d = Policy::from_toml("").unwrap();
        assert_eq!(d.directory_groups, UnixGroups::none());
        assert!(d.grants_for(&dir(&["uvmm-admin", "uvmm"])).is_empty());
    }

    #[test]
    fn empty_config_is_defaults() {
        let p = Policy::from_toml("").unwrap();
        assert_eq!(p, Policy::default());
        assert_eq!(Policy::from_toml("[auth]\n").unwrap(), Policy::default());
    }

    /// Every mistake gets a message that names the place.
    #[test]
    fn errors_name_the_key() {
        let table = [
            ("[auth]\nallow_root = true", "unknown field `allow_root`"),
            ("[auth]\nfailure_delay_ms = 0", "failure_delay_ms: must be at least 1"),
            ("[auth]\nfailure_delay_ms = -1", "failure_delay_ms"),
            (
                "[auth]\nsession_idle_mins = 600\nsession_max_hours = 2",
                "session_idle_mins: 600 minutes is longer",
            ),
            ("[[auth.grant]]\nrole = \"admin\"", "#1: give user"),
            (
                "[[auth.grant]]\nuser = \"a\"\ngroup = \"b\"\nrole = \"admin\"",
                "#1: give either user or group",
            ),
            (
                "[[auth.grant]]\nuser = \"a\"\nrole = \"viewer\"\n[[auth.grant]]\nuser = \"b\"\nrole = \"root\"",
                "#2: unknown role 'root'",
            ),
            (
                "[[auth.grant]]\nuser = \"a b\"\nrole = \"viewer\"",
                "'a b' is not a user name",
            ),
            (
                "[[auth.grant]]\ngroup = \"g\"\nrole = \"viewer\"\nvms = []",
                "vms = [] would grant nothing",
            ),
            (
                "[[auth.grant]]\ngroup = \"g\"\nrole = \"viewer\"\nhosts = [\"\"]",
                "#1: an empty pattern",
            ),
            (
                "[[auth.grant]]\ngroup = \"g\"\nrole = \"viewer\"\nvms = [\"web-[\"]",
                "unbalanced brackets",
            ),
            ("[auth.unix_groups]\nadmin = [\"-x\"]", "unix_groups.admin: '-x'"),
            ("[auth.rate_limit]\nlockout_min_secs = 100\nlockout_max_secs = 10", "lockout_min_secs"),
            ("[auth]\nmax_sessions = 0", "max_sessions: must be at least 1"),
            ("[auth]\nlogin_backends = []", "login_backends: [] would allow no login"),
            ("[auth]\nlogin_backends = [\"ldap\"]", "unknown login backend 'ldap'"),
            (
                "[auth]\nlogin_backends = [\"pam\", \"pam\"]",
                "login_backends: 'pam' is named twice",
            ),
            ("[auth.directory_groups]\nviewer = [\"a b\"]", "directory_groups.viewer: 'a b'"),
            ("[auth", "[auth]"),
        ];
        for (text, want) in table {
            let err = Policy::from_toml(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn reload_keeps_old_policy_on_error() {
        let h = PolicyHandle::new(Policy::from_toml(FULL).unwrap());
        let bad = AuthConfig::from_toml("[[auth.grant]]\nrole = \"x\"").unwrap();
        assert!(h.reload(&bad).is_err());
        assert_eq!(h.current().grants.len(), 2);
        let good = AuthConfig::from_toml("[auth]\n").unwrap();
        h.reload(&good).unwrap();
        assert!(h.current().grants.is_empty());
    }
}
