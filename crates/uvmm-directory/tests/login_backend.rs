//! The directory as a `uvmm_auth` login backend against a real slapd: a directory user logs
//! in (bind as the user) and gets the role of its group through `[[auth.grant]]`; wrong
//! passwords and unknown users are refused alike; slapd down is "unavailable", not a
//! failed login.

#[path = "support/slapd.rs"]
mod slapd;

use slapd::{Options, Slapd, SERVICE_DN, SERVICE_PW};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use uvmm_auth::config::Policy;
use uvmm_auth::login::{BackendError, LoginBackend, Refusal};
use uvmm_auth::roles::Role;
use uvmm_directory::login::DirectoryLogin;
use uvmm_directory::{Directory, DirectoryConfig};

#[test]
fn directory_users_get_the_role_of_their_group() {
    let mut s = Slapd::start(Options::default());
    let tmp = tempfile::tempdir().unwrap();
    let pw = tmp.path().join("bind.secret");
    std::fs::write(&pw, SERVICE_PW).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = DirectoryConfig::new(s.uri());
    c.bind_dn = Some(SERVICE_DN.into());
    c.password_file = Some(pw);
    c.cache_dir = tmp.path().join("cache");
    c.connect_timeout_secs = 1;
    c.timeout_secs = 3;
    c.users.base = "cn=users".into();
    c.users.group_base = "cn=groups".into();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (dir, _) = runtime.block_on(Directory::open(c)).unwrap();
    let login = DirectoryLogin::new(
        Arc::new(tokio::sync::Mutex::new(dir)),
        runtime.handle().clone(),
    );
    assert_eq!(login.name(), "directory");

    let policy = Policy::from_toml(
        "[[auth.grant]]\ngroup = \"uvmm-admins\"\nrole = \"admin\"\n\
         [[auth.grant]]\ngroup = \"uvmm-operators\"\nrole = \"operator\"\n",
    )
    .unwrap();
    // alice: memberUid of uvmm-admins; bob: member of uvmm-operators; carol: in staff only
    // (staff holds uvmm-operators as a member, not the other way round).
    for (user, password, role) in [
        ("alice", "alice-pw", Some(Role::Admin)),
        ("bob", "bob-pw", Some(Role::Operator)),
        ("carol", "carol-pw", None),
    ] {
        let id = login.authenticate(user, password, None).unwrap();
        assert_eq!((id.name.as_str(), id.source.as_str()), (user, "directory"));
        assert_eq!(
            policy.grants_for(&id).highest_role(),
            role,
            "{user}: {id:?}"
        );
    }
    for (user, password) in [("alice", "bob-pw"), ("nobody", "x"), ("alice", "")] {
        match login.authenticate(user, password, None) {
            Err(BackendError::Refused(r)) => assert_ne!(r, Refusal::NoRole, "{user}"),
            other => panic!("{user}/{password}: {other:?}"),
        }
    }
    let wrong = login.authenticate("alice", "wrong", None);
    assert!(
        matches!(wrong, Err(BackendError::Refused(Refusal::BadCredentials))),
        "{wrong:?}"
    );

    s.stop();
    let down = login.authenticate("alice", "alice-pw", None);
    assert!(
        matches!(down, Err(BackendError::Unavailable(_))),
        "{down:?}"
    );
}
