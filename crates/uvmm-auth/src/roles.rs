//! Roles, permissions and scopes: what a caller may do, decided in one function.
//!
//! A caller holds [`Grants`]: each [`Grant`] is a [`Role`] limited to hosts and to VM name
//! patterns ([`Scope`]). A route declares the [`Permission`] it needs; [`authorize`] says
//! yes or no for one target, [`visible`] filters lists and the event stream.

use serde::{Deserialize, Serialize};
use std::fmt;
use uvmm_model::glob::Pattern;

/// The three roles of issue 13. Ordered: a higher role can do everything a lower one can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read: lists, details, statistics, events, backups.
    Viewer,
    /// Viewer + lifecycle (start, stop, pause, …), media change, console.
    Operator,
    /// Everything: create, edit, delete, storage, hosts, restore, tokens, the audit log.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role includes `permission` (scope aside).
    pub fn allows(self, permission: Permission) -> bool {
        self >= permission.min_role()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role '{0}' (expected viewer, operator or admin)")]
pub struct UnknownRole(pub String);

/// What a route needs. Declared once per (method, path) in the daemon's route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read anything the scope covers: lists, details, statistics, events, backups, pools.
    Read,
    /// Start, shut down, power off, reboot, reset, pause, resume, save.
    Lifecycle,
    /// Change the medium of a CD-ROM or floppy drive.
    Media,
    /// Open the VM's graphical console.
    Console,
    /// Change a VM's definition (settings, drives, NICs, notes).
    Edit,
    /// Define a new VM.
    Create,
    /// Undefine a VM (and delete its images).
    Delete,
    /// Pools and volumes of a host.
    Storage,
    /// Add, remove or reconnect hosts.
    Hosts,
    /// Restore a VM from a backup; prune backups.
    Restore,
    /// Create, list and revoke API tokens.
    Tokens,
    /// Read the audit log and the admins' audit events.
    Audit,
}

/// How far a permission reaches, which decides how a grant's scope is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// One VM on one host: host and VM patterns both apply.
    Vm,
    /// A whole host (its pools, its connection): the grant must cover the host and every
    /// VM on it, because pools and connections are shared by all its VMs.
    Host,
    /// The whole daemon (tokens, the audit log): only an unrestricted grant.
    Global,
}

impl Permission {
    pub const ALL: [Permission; 12] = [
        Permission::Read,
        Permission::Lifecycle,
        Permission::Media,
        Permission::Console,
        Permission::Edit,
        Permission::Create,
        Permission::Delete,
        Permission::Storage,
        Permission::Hosts,
        Permission::Restore,
        Permission::Tokens,
        Permission::Audit,
    ];

    /// The least role that includes this permission.
    pub fn min_role(self) -> Role {
        match self {
            Permission::Read => Role::Viewer,
            Permission::Lifecycle | Permission::Media | Permission::Console => Role::Operator,
            Permission::Edit
            | Permission::Create
            | Permission::Delete
            | Permission::Storage
            | Permission::Hosts
            | Permission::Restore
            | Permission::Tokens
            | Permission::Audit => Role::Admin,
        }
    }

    pub fn reach(self) -> Reach {
        match self {
            Permission::Read
            | Permission::Lifecycle
            | Permission::Media
            | Permission::Console
            | Permission::Edit
            | Permission::Create
            | Permission::Delete
            | Permission::Restore => Reach::Vm,
            Permission::Storage | Permission::Hosts => Reach::Host,
            Permission::Tokens | Permission::Audit => Reach::Global,
        }
    }

    /// Whether a request needing this permission is written to the audit log: everything
    /// but reading. Opening a console changes nothing, but hands over the VM's screen and
    /// keyboard, so it is recorded too.
    pub fn is_audited(self) -> bool {
        !matches!(self, Permission::Read | Permission::Audit)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Lifecycle => "lifecycle",
            Permission::Media => "media",
            Permission::Console => "console",
            Permission::Edit => "edit",
            Permission::Create => "create",
            Permission::Delete => "delete",
            Permission::Storage => "storage",
            Permission::Hosts => "hosts",
            Permission::Restore => "restore",
            Permission::Tokens => "tokens",
            Permission::Audit => "audit",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a route of the daemon's table requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials: the login route, the web UI's files, the OpenAPI document.
    Public,
    /// Any authenticated caller, whatever its grants: logout, "who am I".
    Authenticated,
    /// An authenticated caller whose grants include this permission for the target.
    Needs(Permission),
}

/// A host as scopes see it: its short id (`kvm2`) and its libvirt URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRef<'a> {
    pub id: &'a str,
    pub uri: &'a str,
}

/// What a request acts on. `host: None` means "no particular host" (a daemon-wide
/// operation), `vm: None` "no particular VM" (a host-level object such as a pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Target<'a> {
    pub host: Option<HostRef<'a>>,
    pub vm: Option<&'a str>,
}

impl<'a> Target<'a> {
    /// Daemon-wide: no host, no VM.
    pub fn global() -> Target<'static> {
        Target::default()
    }
    pub fn host(host: HostRef<'a>) -> Target<'a> {
        Target {
            host: Some(host),
            vm: None,
        }
    }
    pub fn vm(host: HostRef<'a>, vm: &'a str) -> Target<'a> {
        Target {
            host: Some(host),
            vm: Some(vm),
        }
    }
}

/// One pattern of a scope. A pattern without glob characters is an exact name (ignoring
/// case, like every pattern in uvmm): `kvm2` must not also mean `kvm20`, which
/// `uvmm_model::glob`'s substring rule for plain words would do.
#[derive(Debug, Clone)]
pub struct ScopePattern {
    text: String,
    glob: Option<Pattern>,
}

impl ScopePattern {
    pub fn new(text: &str) -> Result<ScopePattern, ScopeError> {
        if text.is_empty() {
            return Err(ScopeError::Empty);
        }
        if text.chars().count() > 256 {
            return Err(ScopeError::TooLong(text.chars().take(40).collect()));
        }
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(ScopeError::Control(text.to_string(), c));
        }
        if text.matches('[').count() != text.matches(']').count() {
            return Err(ScopeError::Brackets(text.to_string()));
        }
        let is_glob = text.contains(['*', '?', '[']);
        Ok(ScopePattern {
            text: text.to_string(),
            glob: is_glob.then(|| Pattern::new(text)),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, name: &str) -> bool {
        match &self.glob {
            Some(p) => p.matches(name),
            None => lower_eq(&self.text, name),
        }
    }
}

fn lower_eq(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

impl PartialEq for ScopePattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for ScopePattern {}

impl Serialize for ScopePattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for ScopePattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ScopePattern::new(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("an empty pattern matches nothing; leave the list out to mean 'all'")]
    Empty,
    #[error("pattern '{0}…' is longer than 256 characters")]
    TooLong(String),
    #[error("pattern {0:?} contains the control character {1:?}")]
    Control(String, char),
    #[error("pattern '{0}' has unbalanced brackets")]
    Brackets(String),
}

/// Where a grant applies: everywhere, or only to names matching one of the patterns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    #[default]
    All,
    Only(Vec<ScopePattern>),
}

impl Scope {
    /// A scope from a configuration list: absent means all; an empty list is refused by
    /// the configuration check (it would silently grant nothing).
    pub fn from_patterns(patterns: Option<&[String]>) -> Result<Scope, ScopeError> {
        match patterns {
            None => Ok(Scope::All),
            Some(list) => Ok(Scope::Only(
                list.iter()
                    .map(|p| ScopePattern::new(p))
                    .collect::<Result<_, _>>()?,
            )),
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Scope::All)
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(patterns) => patterns.iter().any(|p| p.matches(name)),
        }
    }

    fn matches_host(&self, host: HostRef<'_>) -> bool {
        self.matches(host.id) || self.matches(host.uri)
    }

    /// The patterns, `None` for all (how tokens and the API show a scope).
    pub fn patterns(&self) -> Option<Vec<String>> {
        match self {
            Scope::All => None,
            Scope::Only(p) => Some(p.iter().map(|p| p.as_str().to_string()).collect()),
        }
    }

    /// Whether every name this scope matches is also matched by `outer`. Decided
    /// conservatively: `outer` is all, or each of our patterns appears literally in it.
    fn within(&self, outer: &Scope) -> bool {
        match (self, outer) {
            (_, Scope::All) => true,
            (Scope::All, Scope::Only(_)) => false,
            (Scope::Only(mine), Scope::Only(theirs)) => mine.iter().all(|p| theirs.contains(p)),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Scope::All => s.serialize_none(),
            Scope::Only(p) => p.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<Vec<ScopePattern>>::deserialize(d)? {
            None => Scope::All,
            Some(p) => Scope::Only(p),
        })
    }
}

/// A role, limited to hosts and VM names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub role: Role,
    /// Host ids or URIs (patterns); absent: every host.
    #[serde(default, skip_serializing_if = "Scope::is_all")]
    pub hosts: Scope,
    /// VM names (patterns); absent: every VM.
    #[serde(default, skip_serializing_if = "Scope::is_all")]
    pub vms: Scope,
}

impl Grant {
    /// The role everywhere.
    pub fn unrestricted(role: Role) -> Grant {
        Grant {
            role,
            hosts: Scope::All,
            vms: Scope::All,
        }
    }

    /// Whether this grant's scope covers `target` for a permission of `reach`.
    fn covers(&self, permission: Permission, target: &Target<'_>) -> bool {
        let host_ok = match target.host {
            Some(h) => self.hosts.matches_host(h),
            None => self.hosts.is_all(),
        };
        if !host_ok {
            return false;
        }
        match permission.reach() {
            Reach::Global => self.hosts.is_all() && self.vms.is_all(),
            Reach::Host => self.vms.is_all(),
            Reach::Vm => match target.vm {
                Some(name) => self.vms.matches(name),
                // A host-level read (the host's details, its pools) needs the host only:
                // someone who may see a VM may see where it runs.
                None => permission == Permission::Read || self.vms.is_all(),
            },
        }
    }

    /// Whether `self` gives nothing beyond `outer` (for "a token may not exceed its
    /// creator's rights"). Conservative: patterns must appear literally in `outer`.
    pub fn within(&self, outer: &Grant) -> bool {
        self.role <= outer.role && self.hosts.within(&outer.hosts) && self.vms.within(&outer.vms)
    }
}

/// Everything a caller holds. Empty: the caller may do nothing (and is refused at login).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Grants(pub Vec<Grant>);

impl Grants {
    pub fn none() -> Grants {
        Grants(Vec::new())
    }

    pub fn admin() -> Grants {
        Grants(vec![Grant::unrestricted(Role::Admin)])
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some grant includes `permission` somewhere. For list routes and the event
    /// stream, which then show each item only if [`visible`] (or `authorize`) says so.
    pub fn allows_somewhere(&self, permission: Permission) -> bool {
        self.0.iter().any(|g| g.role.allows(permission))
    }

    /// The highest role held anywhere (what the UI shows as "signed in as operator").
    pub fn highest_role(&self) -> Option<Role> {
        self.0.iter().map(|g| g.role).max()
    }

    /// The permissions the caller has for `target`: for the UI, to hide what it may not
    /// do (the server checks regardless).
    pub fn permissions_for(&self, target: &Target<'_>) -> Vec<Permission> {
        Permission::ALL
            .into_iter()
            .filter(|p| authorize(self, *p, target).is_ok())
            .collect()
    }

    /// Whether one of our grants includes all of `wanted`.
    pub fn include(&self, wanted: &Grant) -> bool {
        self.0.iter().any(|g| wanted.within(g))
    }
}

/// Why a request was refused. Every variant is a `403` (the caller is known); the
/// message names the permission, never what exists outside the caller's scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this account has no role in uvmm")]
    NoRole,
    #[error("'{permission}' needs the role {needed} (this account is {held})")]
    RoleTooLow {
        permission: Permission,
        needed: Role,
        held: Role,
    },
    #[error("'{permission}' is not granted for this host or VM")]
    OutOfScope { permission: Permission },
}

/// The one place that decides whether `grants` allow `permission` on `target`.
pub fn authorize(
    grants: &Grants,
    permission: Permission,
    target: &Target<'_>,
) -> Result<(), Denied> {
    let mut role_ok = false;
    for grant in &grants.0 {
        if !grant.role.allows(permission) {
            continue;
        }
        role_ok = true;
        if grant.covers(permission, target) {
            return Ok(());
        }
    }
    match grants.highest_role() {
        None => Err(Denied::NoRole),
        Some(_) if role_ok => Err(Denied::OutOfScope { permission }),
        Some(held) => Err(Denied::RoleTooLow {
            permission,
            needed: permission.min_role(),
            held,
        }),
    }
}

/// Whether the caller may see this host (vm `None`) or this VM: for filtering lists and
/// the event stream. A VM the caller may not see should answer `404`, not `403`, so that
/// its existence is not revealed.
pub fn visible(grants: &Grants, host: HostRef<'_>, vm: Option<&str>) -> bool {
    authorize(
        grants,
        Permission::Read,
        &Target {
            host: Some(host),
            vm,
        },
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KVM2: HostRef<'static> = HostRef {
        id: "kvm2",
        uri: "qemu+ssh://kvm2.example.com/system",
    };
    const KVM20: HostRef<'static> = HostRef {
        id: "kvm20",
        uri: "qemu+ssh://kvm20.example.com/system",
    };
    const LOCAL: HostRef<'static> = HostRef {
        id: "localhost",
        uri: "qemu:///system",
    };

    fn grant(role: Role, hosts: Option<&[&str]>, vms: Option<&[&str]>) -> Grant {
        let to = |l: Option<&[&str]>| {
            Scope::from_patterns(
                l.map(|l| l.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .as_deref(),
            )
            .unwrap()
        };
        Grant {
            role,
            hosts: to(hosts),
            vms: to(vms),
        }
    }

    #[test]
    fn every_role_and_permission_unscoped() {
        use Permission::*;
        // (permission, viewer, operator, admin)
        let table = [
            (Read, true, true, true),
            (Lifecycle, false, true, true),
            (Media, false, true, true),
            (Console, false, true, true),
            (Edit, false, false, true),
            (Create, false, false, true),
            (Delete, false, false, true),
            (Storage, false, false, true),
            (Hosts, false, false, true),
            (Restore, false, false, true),
            (Tokens, false, false, true),
            (Audit, false, false, true),
        ];
        assert_eq!(table.len(), Permission::ALL.len());
        for (perm, v, o, a) in table {
            for (role, want) in [(Role::Viewer, v), (Role::Operator, o), (Role::Admin, a)] {
                let g = Grants(vec![Grant::unrestricted(role)]);
                let target = match perm.reach() {
                    Reach::Vm => Target::vm(KVM2, "web-1"),
                    Reach::Host => Target::host(KVM2),
                    Reach::Global => Target::global(),
                };
                assert_eq!(authorize(&g, perm, &target).is_ok(), want, "{role} {perm}");
                if !want {
                    assert!(matches!(
                        authorize(&g, perm, &target),
                        Err(Denied::RoleTooLow { .. })
                    ));
                }
            }
        }
    }

    /// Operator on `web-*` of host kvm2, the example of issue 13, against every reach.
    #[test]
    fn scoped_operator() {
        use Permission::*;
        let g = Grants(vec![grant(
            Role::Operator,
            Some(&["kvm2"]),
            Some(&["web-*"]),
        )]);
        // (permission, target, allowed)
        let table: Vec<(Permission, Target, bool)> = vec![
            (Lifecycle, Target::vm(KVM2, "web-1"), true),
            (Lifecycle, Target::vm(KVM2, "WEB-1"), true), // patterns ignore case
            (Lifecycle, Target::vm(KVM2, "db-1"), false),
            (Lifecycle, Target::vm(KVM20, "web-1"), false), // kvm2 is not a substring rule
            (Lifecycle, Target::vm(LOCAL, "web-1"), false),
            (Media, Target::vm(KVM2, "web-9"), true),
            (Console, Target::vm(KVM2, "web-9"), true),
            (Read, Target::vm(KVM2, "web-1"), true),
            (Read, Target::vm(KVM2, "db-1"), false),
            (Read, Target::host(KVM2), true), // may see the host its VMs run on
            (Read, Target::host(KVM20), false),
            (Read, Target::global(), false),
            (Lifecycle, Target::host(KVM2), false), // no VM named: not all VMs covered
            (Edit, Target::vm(KVM2, "web-1"), false),
            (Storage, Target::host(KVM2), false),
        ];
        for (perm, target, want) in table {
            assert_eq!(
                authorize(&g, perm, &target).is_ok(),
                want,
                "{perm} {target:?}"
            );
        }
        assert_eq!(
            authorize(&g, Lifecycle, &Target::vm(KVM2, "db-1")),
            Err(Denied::OutOfScope {
                permission: Lifecycle
            })
        );
    }

    #[test]
    fn scoped_admin_needs_whole_host_for_host_permissions() {
        use Permission::*;
        let host_admin = Grants(vec![grant(Role::Admin, Some(&["kvm2"]), None)]);
        let vm_admin = Grants(vec![grant(Role::Admin, None, Some(&["test-*"]))]);
        let table: Vec<(&Grants, Permission, Target, bool)> = vec![
            (&host_admin, Storage, Target::host(KVM2), true),
            (&host_admin, Storage, Target::host(KVM20), false),
            (&host_admin, Hosts, Target::host(KVM2), true),
            (&host_admin, Create, Target::vm(KVM2, "anything"), true),
            (&host_admin, Delete, Target::vm(KVM20, "x"), false),
            (&host_admin, Tokens, Target::global(), false),
            (&host_admin, Audit, Target::global(), false),
            (&host_admin, Hosts, Target::global(), false), // adding a host anywhere
            (&vm_admin, Create, Target::vm(KVM20, "test-1"), true),
            (&vm_admin, Create, Target::vm(KVM20, "prod-1"), false),
            (&vm_admin, Edit, Target::vm(LOCAL, "test-x"), true),
            (&vm_admin, Storage, Target::host(KVM2), false), // pools are shared by all VMs
            (&vm_admin, Hosts, Target::host(KVM2), false),
            (&vm_admin, Tokens, Target::global(), false),
        ];
        for (g, perm, target, want) in table {
            assert_eq!(
                authorize(g, perm, &target).is_ok(),
                want,
                "{g:?} {perm} {target:?}"
            );
        }
    }

    #[test]
    fn grants_combine() {
        use Permission::*;
        // Viewer everywhere plus operator on kvm2's web VMs.
        let g = Grants(vec![
            grant(Role::Viewer, None, None),
            grant(Role::Operator, Some(&["kvm2"]), Some(&["web-*", "api-?"])),
        ]);
        assert!(authorize(&g, Read, &Target::vm(LOCAL, "db")).is_ok());
        assert!(authorize(&g, Lifecycle, &Target::vm(KVM2, "api-1")).is_ok());
        assert!(authorize(&g, Lifecycle, &Target::vm(KVM2, "api-10")).is_err());
        assert_eq!(
            authorize(&g, Lifecycle, &Target::vm(LOCAL, "web-1")),
            Err(Denied::OutOfScope {
                permission: Lifecycle
            })
        );
        assert_eq!(
            authorize(&g, Edit, &Target::vm(KVM2, "web-1")),
            Err(Denied::RoleTooLow {
                permission: Edit,
                needed: Role::Admin,
                held: Role::Operator
            })
        );
        assert!(g.allows_somewhere(Lifecycle));
        assert!(!g.allows_somewhere(Edit));
        assert_eq!(
            authorize(&Grants::none(), Read, &Target::global()),
            Err(Denied::NoRole)
        );
    }

    #[test]
    fn host_patterns_match_id_or_uri() {
        let by_uri = Grants(vec![grant(Role::Viewer, Some(&["qemu+ssh://kvm2*"]), None)]);
        assert!(visible(&by_uri, KVM2, Some("x")));
        assert!(visible(&by_uri, KVM20, Some("x")));
        assert!(!visible(&by_uri, LOCAL, None));
        let by_id = Grants(vec![grant(Role::Viewer, Some(&["KVM2"]), None)]);
        assert!(visible(&by_id, KVM2, None));
        assert!(!visible(&by_id, KVM20, None));
    }

    #[test]
    fn visible_filters() {
        let g = Grants(vec![grant(Role::Viewer, Some(&["kvm2"]), Some(&["web-*"]))]);
        let names = ["web-1", "db-1", "web-2", "webx"];
        let seen: Vec<_> = names
            .iter()
            .filter(|n| visible(&g, KVM2, Some(n)))
            .collect();
        assert_eq!(seen, [&"web-1", &"web-2"]);
        assert!(visible(&g, KVM2, None));
        assert!(!visible(&g, LOCAL, None));
    }

    #[test]
    fn pattern_checks() {
        for (text, ok) in [
            ("web-*", true),
            ("kvm2", true),
            ("[a-z]*", true),
            ("", false),
            ("a\u{0}b", false),
            ("web-[", false),
            (&"x".repeat(257), false),
        ] {
            assert_eq!(ScopePattern::new(text).is_ok(), ok, "{text:?}");
        }
        assert!(ScopePattern::new("db").unwrap().matches("DB"));
        assert!(!ScopePattern::new("db").unwrap().matches("db-1"));
    }

    #[test]
    fn within_is_conservative() {
        let admin = grant(Role::Admin, None, None);
        let kvm2_web = grant(Role::Operator, Some(&["kvm2"]), Some(&["web-*"]));
        let kvm2_all = grant(Role::Operator, Some(&["kvm2"]), None);
        assert!(kvm2_web.within(&admin));
        assert!(kvm2_web.within(&kvm2_all));
        assert!(!kvm2_all.within(&kvm2_web));
        assert!(!admin.within(&kvm2_web));
        assert!(!grant(Role::Admin, Some(&["kvm2"]), None).within(&kvm2_all));
        assert!(Grants(vec![kvm2_all.clone()]).include(&kvm2_web));
    }

    #[test]
    fn serde_shapes() {
        let g = grant(Role::Operator, Some(&["kvm2"]), None);
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(json, r#"{"role":"operator","hosts":["kvm2"]}"#);
        let back: Grant = serde_json::from_str(&json).unwrap();
        assert_eq!(back, g);
        assert!(serde_json::from_str::<Grant>(r#"{"role":"root"}"#).is_err());
        assert!(serde_json::from_str::<Grant>(r#"{"role":"viewer","vms":[""]}"#).is_err());
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
        assert!("Admin".parse::<Role>().is_err());
    }
}
