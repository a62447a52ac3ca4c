//! Local accounts: a UNIX socket peer's uid, or a PAM user's name, to the account name and
//! its group names (primary and supplementary, through NSS: `getgrouplist`). The role
//! itself is decided by the pure [`crate::config::unix_role`] / `Policy::grants_for`.

use crate::caller::UserIdentity;
use nix::unistd::{getgrouplist, Gid, Group, Uid, User};
use std::ffi::CString;

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("looking up {what} failed: {source}")]
    Nss {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("user name {0:?} contains a NUL byte")]
    Nul(String),
}

/// Group names of `user` (whose primary group is `gid`). A gid without a name is skipped:
/// configuration names groups, so an unnamed gid cannot carry a role.
fn group_names(user: &User) -> Result<Vec<String>, LookupError> {
    let cname =
        CString::new(user.name.as_bytes()).map_err(|_| LookupError::Nul(user.name.clone()))?;
    let gids = getgrouplist(&cname, user.gid).map_err(|source| LookupError::Nss {
        what: format!("the groups of {}", user.name),
        source,
    })?;
    let mut names = Vec::with_capacity(gids.len());
    for gid in gids {
        if let Some(g) = group_by_gid(gid)? {
            if !names.contains(&g) {
                names.push(g);
            }
        }
    }
    Ok(names)
}

fn group_by_gid(gid: Gid) -> Result<Option<String>, LookupError> {
    Group::from_gid(gid)
        .map(|g| g.map(|g| g.name))
        .map_err(|source| LookupError::Nss {
            what: format!("group {gid}"),
            source,
        })
}

fn identity(user: User, source: &str) -> Result<UserIdentity, LookupError> {
    Ok(UserIdentity {
        groups: group_names(&user)?,
        uid: Some(user.uid.as_raw()),
        name: user.name,
        source: source.to_string(),
    })
}

/// The account of a UNIX socket peer (`SO_PEERCRED` uid). A uid without an account (a
/// container's, a deleted user's) gets a nameless identity with no groups: only uid 0
/// has a role then.
pub fn peer_identity(uid: u32) -> Result<UserIdentity, LookupError> {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(user)) => identity(user, "unix-peer"),
        Ok(None) => Ok(UserIdentity {
            name: format!("uid {uid}"),
            uid: Some(uid),
            groups: Vec::new(),
            source: "unix-peer".into(),
        }),
        Err(source) => Err(LookupError::Nss {
            what: format!("uid {uid}"),
            source,
        }),
    }
}

/// A local account by name, as PAM knows it; `None` if NSS has no such user.
pub fn local_user(name: &str, source: &str) -> Result<Option<UserIdentity>, LookupError> {
    if name.contains('\0') {
        return Err(LookupError::Nul(name.to_string()));
    }
    match User::from_name(name) {
        Ok(Some(user)) => identity(user, source).map(Some),
        Ok(None) => Ok(None),
        Err(source) => Err(LookupError::Nss {
            what: format!("user {name}"),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_unknown_uid() {
        let root = peer_identity(0).unwrap();
        assert_eq!(root.name, "root");
        assert_eq!(root.uid, Some(0));
        assert!(root.groups.contains(&"root".to_string()));
        // A uid nobody has.
        let ghost = peer_identity(3_999_999_999).unwrap();
        assert_eq!(ghost.name, "uid 3999999999");
        assert!(ghost.groups.is_empty());
        assert_eq!(local_user("no-such-user-uvmm", "pam").unwrap(), None);
        assert!(local_user("a\0b", "pam").is_err());
    }
}
