//! The `[auth]` and `[tls]` tables of uvmmd.toml: parse, check, and use the result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uvmm_auth::caller::UserIdentity;
use uvmm_auth::config::Policy;
use uvmm_auth::roles::{authorize, HostRef, Permission, Target};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = toml::from_str::<uvmm_auth::tls::TlsConfig>(text);
    let Ok(policy) = Policy::from_toml(text) else {
        return;
    };
    // A checked policy is usable: grants for some identities, every permission.
    let host = HostRef {
        id: "kvm2",
        uri: "qemu+ssh://kvm2/system",
    };
    for (name, groups) in [
        ("alice", vec!["uvmm".to_string()]),
        ("root", vec![]),
        ("bob", vec!["webteam".to_string(), "uvmm-admin".to_string()]),
    ] {
        let who = UserIdentity {
            name: name.into(),
            uid: Some(if name == "root" { 0 } else { 1000 }),
            groups,
            source: "pam".into(),
        };
        let grants = policy.grants_for(&who);
        for p in Permission::ALL {
            for t in [
                Target::vm(host, "web-1"),
                Target::host(host),
                Target::global(),
            ] {
                let _ = authorize(&grants, p, &t);
            }
        }
    }
    assert!(policy.sessions.idle <= policy.sessions.absolute);
    assert!(policy.rate_limit.lockout_min <= policy.rate_limit.lockout_max);
});
