//! Every role × permission × scope combination that matters, from a TOML configuration as
//! an administrator writes it, through `Policy::grants_for` and `authorize`.

use uvmm_auth::caller::UserIdentity;
use uvmm_auth::config::Policy;
use uvmm_auth::roles::{authorize, visible, Denied, HostRef, Permission, Role, Target};

const CONFIG: &str = r#"
[auth.unix_groups]
admin = ["t-admins"]
operator = ["t-ops"]
viewer = ["t-viewers"]

# role × scope: all / host kvm2 / VMs web-* / both
[[auth.grant]]
user = "viewer-host"
role = "viewer"
hosts = ["kvm2"]
[[auth.grant]]
user = "viewer-vms"
role = "viewer"
vms = ["web-*"]
[[auth.grant]]
user = "viewer-both"
role = "viewer"
hosts = ["kvm2"]
vms = ["web-*"]
[[auth.grant]]
user = "operator-host"
role = "operator"
hosts = ["kvm2"]
[[auth.grant]]
user = "operator-vms"
role = "operator"
vms = ["web-*"]
[[auth.grant]]
user = "operator-both"
role = "operator"
hosts = ["kvm2"]
vms = ["web-*"]
[[auth.grant]]
user = "admin-host"
role = "admin"
hosts = ["kvm2"]
[[auth.grant]]
user = "admin-vms"
role = "admin"
vms = ["web-*"]
[[auth.grant]]
user = "admin-both"
role = "admin"
hosts = ["kvm2"]
vms = ["web-*"]
"#;

const KVM2: HostRef<'static> = HostRef {
    id: "kvm2",
    uri: "qemu+ssh://kvm2.example.com/system",
};
const KVM3: HostRef<'static> = HostRef {
    id: "kvm3",
    uri: "qemu+ssh://kvm3.example.com/system",
};

fn user(name: &str, groups: &[&str]) -> UserIdentity {
    UserIdentity {
        name: name.into(),
        uid: Some(2000),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        source: "pam".into(),
    }
}

/// The spec of issue 13, written independently of the code: what each role includes.
fn role_includes(role: Role, p: Permission) -> bool {
    use Permission::*;
    let viewer = [Read];
    let operator = [Read, Lifecycle, Media, Console];
    match role {
        Role::Viewer => viewer.contains(&p),
        Role::Operator => operator.contains(&p),
        Role::Admin => true,
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Place {
    InScopeVm,       // web-1 on kvm2
    OtherVmSameHost, // db-1 on kvm2
    SameVmOtherHost, // web-1 on kvm3
    Host,            // kvm2 itself
    OtherHost,       // kvm3 itself
    Global,          // no host
}

fn target(p: Place) -> Target<'static> {
    match p {
        Place::InScopeVm => Target::vm(KVM2, "web-1"),
        Place::OtherVmSameHost => Target::vm(KVM2, "db-1"),
        Place::SameVmOtherHost => Target::vm(KVM3, "web-1"),
        Place::Host => Target::host(KVM2),
        Place::OtherHost => Target::host(KVM3),
        Place::Global => Target::global(),
    }
}

/// What a scope covers, per the issue's rules: VM permissions need host and VM in scope
/// (a host-level read needs the host only); host permissions (storage, hosts) need the
/// host and all its VMs; tokens and audit need no restriction at all.
fn scope_covers(host_limited: bool, vms_limited: bool, p: Permission, place: Place) -> bool {
    use Permission::*;
    use Place::*;
    let host_ok = match place {
        InScopeVm | OtherVmSameHost | Host => true,
        SameVmOtherHost | OtherHost => !host_limited,
        Global => !host_limited,
    };
    match p {
        Tokens | Audit => !host_limited && !vms_limited,
        Storage | Hosts => host_ok && !vms_limited,
        _ => {
            host_ok
                && match place {
                    InScopeVm | SameVmOtherHost => true,
                    OtherVmSameHost => !vms_limited,
                    Host | OtherHost | Global => p == Read || !vms_limited,
                }
        }
    }
}

#[test]
fn role_permission_scope_matrix() {
    let policy = Policy::from_toml(CONFIG).unwrap();
    let places = [
        Place::InScopeVm,
        Place::OtherVmSameHost,
        Place::SameVmOtherHost,
        Place::Host,
        Place::OtherHost,
        Place::Global,
    ];
    let mut checked = 0;
    for role in Role::ALL {
        for (scope, host_limited, vms_limited) in [
            ("all", false, false),
            ("host", true, false),
            ("vms", false, true),
            ("both", true, true),
        ] {
            let who = if scope == "all" {
                let group = match role {
                    Role::Viewer => "t-viewers",
                    Role::Operator => "t-ops",
                    Role::Admin => "t-admins",
                };
                user("someone", &[group])
            } else {
                user(&format!("{role}-{scope}"), &[])
            };
            let grants = policy.grants_for(&who);
            assert_eq!(grants.highest_role(), Some(role), "{who:?}");
            for p in Permission::ALL {
                for place in places {
                    let want =
                        role_includes(role, p) && scope_covers(host_limited, vms_limited, p, place);
                    let got = authorize(&grants, p, &target(place));
                    assert_eq!(
                        got.is_ok(),
                        want,
                        "{role} scoped to {scope}: {p} on {place:?} → {got:?}"
                    );
                    if let Err(e) = got {
                        let expect_role_error = !role_includes(role, p);
                        assert_eq!(
                            matches!(e, Denied::RoleTooLow { .. }),
                            expect_role_error,
                            "{e}"
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 3 * 4 * 12 * 6);
}

#[test]
fn lists_and_events_show_only_what_is_in_scope() {
    let policy = Policy::from_toml(CONFIG).unwrap();
    let vms = [
        (KVM2, "web-1"),
        (KVM2, "db-1"),
        (KVM3, "web-2"),
        (KVM3, "mail"),
    ];
    let seen = |name: &str, groups: &[&str]| -> Vec<&str> {
        let g = policy.grants_for(&user(name, groups));
        vms.iter()
            .filter(|(h, v)| visible(&g, *h, Some(v)))
            .map(|(_, v)| *v)
            .collect()
    };
    assert_eq!(
        seen("x", &["t-viewers"]),
        ["web-1", "db-1", "web-2", "mail"]
    );
    assert_eq!(seen("viewer-host", &[]), ["web-1", "db-1"]);
    assert_eq!(seen("operator-vms", &[]), ["web-1", "web-2"]);
    assert_eq!(seen("admin-both", &[]), ["web-1"]);
    assert!(seen("stranger", &["users"]).is_empty());
    // Several grants add up.
    assert_eq!(seen("viewer-host", &["t-viewers"]).len(), 4);
}

#[test]
fn unknown_account_is_refused_everything() {
    let policy = Policy::from_toml(CONFIG).unwrap();
    let g = policy.grants_for(&user("nobody", &["nogroup"]));
    for p in Permission::ALL {
        assert_eq!(
            authorize(&g, p, &Target::vm(KVM2, "web-1")),
            Err(Denied::NoRole)
        );
    }
}
