//! API tokens on disk: create, verify, list, revoke, expiry; the file is 0600, holds no
//! secret, survives a reopen, and a damaged or too open file is refused.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};
use uvmm_auth::roles::{authorize, HostRef, Permission, Role, Target};
use uvmm_auth::tokens::{grant_from_parts, is_named_token, TokenError, TokenRequest, TokenStore};
use uvmm_auth::Grants;

fn req(name: &str, role: Role, vms: &[&str], valid_for: Option<Duration>) -> TokenRequest {
    let vms: Vec<String> = vms.iter().map(|s| s.to_string()).collect();
    TokenRequest {
        name: name.into(),
        grant: grant_from_parts(role, &[], &vms).unwrap(),
        valid_for,
        created_by: "root (uid 0)".into(),
    }
}

#[test]
fn lifecycle_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/tokens.json");
    let store = TokenStore::open(&path).unwrap();
    let now = SystemTime::now();

    let ci = store
        .create(req("ci", Role::Operator, &["web-*"], None), now)
        .unwrap();
    let prom = store
        .create(
            req(
                "prometheus",
                Role::Viewer,
                &[],
                Some(Duration::from_secs(3600)),
            ),
            now,
        )
        .unwrap();
    // 256-bit secret, recognisable prefix, and two tokens never alike.
    assert!(is_named_token(&ci.token));
    let secret = ci.token.rsplit('_').next().unwrap();
    assert_eq!(secret.len(), 64);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(ci.token, prom.token);

    // The file: 0600, in a directory made 0700, no secret in it, only hashes.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let text = std::fs::read_to_string(&path).unwrap();
    for t in [&ci.token, &prom.token] {
        let secret = t.rsplit('_').next().unwrap();
        assert!(!text.contains(secret), "secret at rest");
    }
    assert_eq!(text.matches("\"sha256\"").count(), 2);

    // Verify: the right token, its grant.
    let v = store.verify(&ci.token, now).unwrap();
    assert_eq!(v.name, "ci");
    let host = HostRef {
        id: "kvm2",
        uri: "qemu+ssh://kvm2/system",
    };
    let grants = Grants(vec![v.grant]);
    assert!(authorize(&grants, Permission::Lifecycle, &Target::vm(host, "web-1")).is_ok());
    assert!(authorize(&grants, Permission::Lifecycle, &Target::vm(host, "db-1")).is_err());

    // Wrong secrets of every shape are "invalid", nothing more.
    let flipped = {
        let mut b = ci.token.clone().into_bytes();
        let last = b.len() - 1;
        b[last] = if b[last] == b'0' { b'1' } else { b'0' };
        String::from_utf8(b).unwrap()
    };
    for bad in [
        flipped.as_str(),
        "",
        "uvmm_",
        "uvmm__",
        &ci.token[..ci.token.len() - 1],
        "Bearer x",
        &prom.token.replace("uvmm_", "uvmm-"),
    ] {
        assert!(
            matches!(store.verify(bad, now), Err(TokenError::Invalid)),
            "{bad:?}"
        );
    }

    // Expiry.
    let later = now + Duration::from_secs(3601);
    assert!(
        matches!(store.verify(&prom.token, later), Err(TokenError::Expired(n)) if n == "prometheus")
    );
    assert!(store.verify(&ci.token, later).is_ok());
    let list = store.list(later);
    assert_eq!(
        list.iter()
            .map(|t| (t.name.as_str(), t.expired))
            .collect::<Vec<_>>(),
        [("ci", false), ("prometheus", true)]
    );
    assert_eq!(list[0].vms.as_deref(), Some(&["web-*".to_string()][..]));
    assert_eq!(list[0].hosts, None);
    assert_eq!(list[0].created_by, "root (uid 0)");
    // The listing never carries the secret or the hash.
    let shown = serde_json::to_string(&list).unwrap();
    assert!(!shown.contains("sha256") && !shown.contains(secret));

    // Names are unique; bad names and zero validity are refused.
    assert!(matches!(
        store.create(req("ci", Role::Viewer, &[], None), now),
        Err(TokenError::Exists(_))
    ));
    assert!(matches!(
        store.create(req("a b", Role::Viewer, &[], None), now),
        Err(TokenError::BadName(_))
    ));
    assert!(matches!(
        store.create(req("z", Role::Viewer, &[], Some(Duration::ZERO)), now),
        Err(TokenError::BadExpiry)
    ));

    // A second process (or a restart) sees the same tokens.
    let reopened = TokenStore::open(&path).unwrap();
    assert_eq!(reopened.verify(&ci.token, now).unwrap().name, "ci");

    // Revoke: gone at once, and from the file.
    let info = store.revoke("ci", now).unwrap();
    assert_eq!(info.name, "ci");
    assert!(matches!(
        store.verify(&ci.token, now),
        Err(TokenError::Invalid)
    ));
    assert!(matches!(
        store.revoke("ci", now),
        Err(TokenError::NotFound(_))
    ));
    let reopened = TokenStore::open(&path).unwrap();
    assert!(matches!(
        reopened.verify(&ci.token, now),
        Err(TokenError::Invalid)
    ));
    assert_eq!(reopened.list(now).len(), 1);
    // The other store learns of the change on reload (SIGHUP).
    let other = TokenStore::open(&path).unwrap();
    store.revoke("prometheus", now).unwrap();
    assert!(other.verify(&prom.token, now).is_ok());
    assert_eq!(other.reload().unwrap(), 0);
    assert!(other.verify(&prom.token, now).is_err());
    // No temporary files left behind.
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );
}

#[test]
fn unsafe_or_damaged_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = TokenStore::open(&path).unwrap();
    store
        .create(req("a", Role::Admin, &[], None), SystemTime::now())
        .unwrap();

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = TokenStore::open(&path).unwrap_err().to_string();
    assert!(err.contains("0644") && err.contains("chmod 600"), "{err}");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&path, "{\"version\":1,\"tokens\":[{\"id\":\"zz\"}]}").unwrap();
    let err = TokenStore::open(&path).unwrap_err().to_string();
    assert!(err.contains("is damaged"), "{err}");
    // A failed reload keeps what is in memory.
    assert!(store.reload().is_err());
    assert_eq!(store.list(SystemTime::now()).len(), 1);
}
