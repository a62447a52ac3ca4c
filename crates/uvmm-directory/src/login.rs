//! Directory logins as a `uvmm_auth::login::LoginBackend`: bind as the user (found by
//! `users.user_filter`), groups from the directory (nested ones too). The identity's
//! groups then meet `[[auth.grant]] group = …` like local groups do, so a directory user
//! gets the role of its group. uvmmd asks it before PAM in directory mode
//! (`[auth] login_backends`, docs/auth.md).

use crate::client::{error_chain, Directory};
use crate::error::Error;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::Mutex;
use uvmm_auth::caller::UserIdentity;
use uvmm_auth::login::{BackendError, LoginBackend, Refusal};

/// The directory as a login backend. `authenticate` blocks (the trait's contract): call it
/// from `spawn_blocking` or a thread outside the runtime, never from a runtime worker.
pub struct DirectoryLogin {
    dir: Arc<Mutex<Directory>>,
    runtime: tokio::runtime::Handle,
}

impl DirectoryLogin {
    pub fn new(dir: Arc<Mutex<Directory>>, runtime: tokio::runtime::Handle) -> DirectoryLogin {
        DirectoryLogin { dir, runtime }
    }
}

/// What a client is told while the directory cannot be reached.
pub const UNAVAILABLE: &str = "the directory is unavailable, so it cannot check passwords: \
     directory users cannot log in until it answers again (existing sessions keep working)";

/// What a directory answer means for a login (pure, for the table test).
pub fn login_outcome(
    result: Result<crate::client::User, Error>,
) -> Result<UserIdentity, BackendError> {
    match result {
        Ok(u) => Ok(UserIdentity {
            name: u.uid,
            uid: None,
            groups: u.groups.into_iter().collect(),
            source: "directory".into(),
        }),
        Err(Error::InvalidCredentials) => Err(BackendError::Refused(Refusal::BadCredentials)),
        Err(Error::UnknownUser) => Err(BackendError::Refused(Refusal::UnknownUser)),
        // Ambiguous or malformed names: uvmm's rules refuse, not the password.
        Err(Error::Login(_)) => Err(BackendError::Refused(Refusal::ByPolicy)),
        // The password cannot be checked without the directory: say so (503), it is not
        // a failed login. The cause (server address, error) goes to the log only: the
        // client has not logged in.
        Err(e) => {
            tracing::warn!("directory login not possible: {}", error_chain(&e));
            Err(BackendError::Unavailable(UNAVAILABLE.into()))
        }
    }
}

impl LoginBackend for DirectoryLogin {
    fn name(&self) -> &'static str {
        "directory"
    }

    fn authenticate(
        &self,
        user: &str,
        password: &str,
        _peer: Option<IpAddr>,
    ) -> Result<UserIdentity, BackendError> {
        let dir = self.dir.clone();
        let result = self.runtime.block_on(async move {
            let d = dir.lock().await;
            d.authenticate(user, password).await
        });
        login_outcome(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::User;

    #[test]
    fn outcomes() {
        let ok = login_outcome(Ok(User {
            uid: "alice".into(),
            dn: "uid=alice,dc=x".into(),
            groups: ["uvmm-admins".to_string()].into(),
        }))
        .unwrap();
        assert_eq!(
            (ok.name.as_str(), ok.source.as_str(), ok.groups.as_slice()),
            ("alice", "directory", ["uvmm-admins".to_string()].as_slice())
        );
        for (e, refused) in [
            (Error::InvalidCredentials, Some(Refusal::BadCredentials)),
            (Error::UnknownUser, Some(Refusal::UnknownUser)),
            (Error::Login("ambiguous".into()), Some(Refusal::ByPolicy)),
            (
                Error::Timeout {
                    op: "bind".into(),
                    secs: 1,
                },
                None,
            ),
        ] {
            match (login_outcome(Err(e)), refused) {
                (Err(BackendError::Refused(r)), Some(want)) => assert_eq!(r, want),
                (Err(BackendError::Unavailable(_)), None) => {}
                (other, want) => panic!("{other:?} for {want:?}"),
            }
        }
    }
}
