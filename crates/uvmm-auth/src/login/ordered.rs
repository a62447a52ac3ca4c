//! Several login backends in a stated order (`[auth] login_backends`).
//!
//! **The rule.** Backends are asked in order. A backend that knows the user decides:
//! its "yes" is the login, its "no" (wrong password, locked, ambiguous) is final and the
//! backends after it are not asked. Only a backend that says it does not know the name
//! ([`Refusal::UnknownUser`]), that is off (PAM without its service file) or that cannot
//! be reached passes the name on. So in directory mode (`["directory", "pam"]`) a name
//! the directory knows is the directory's user, whatever local account has the same
//! name, and local accounts log in through PAM. If nobody accepted and a backend was
//! unreachable, the login is *unavailable* (`503` with the reason), not refused: the
//! password may well be right, it just cannot be checked now; a later backend's "no"
//! does not change that (PAM cannot tell an unknown name from a wrong password).

use super::{BackendError, LoginBackend, Refusal};
use crate::caller::UserIdentity;
use crate::config::{BackendKind, PolicyHandle};
use std::net::IpAddr;
use std::sync::Arc;

/// The backends this daemon has, asked in the order the policy in force names (read at
/// each login, so SIGHUP changes it), or `default_order`.
pub struct Ordered {
    backends: Vec<(BackendKind, Arc<dyn LoginBackend>)>,
    default_order: Vec<BackendKind>,
    policy: PolicyHandle,
}

impl Ordered {
    pub fn new(
        backends: Vec<(BackendKind, Arc<dyn LoginBackend>)>,
        default_order: Vec<BackendKind>,
        policy: PolicyHandle,
    ) -> Ordered {
        Ordered {
            backends,
            default_order,
            policy,
        }
    }

    /// The order in force: the policy's, else the default; kinds this daemon does not
    /// have are left out (the daemon refuses such a configuration at start).
    pub fn order(&self) -> Vec<BackendKind> {
        let policy = self.policy.current();
        policy
            .login_backends
            .clone()
            .unwrap_or_else(|| self.default_order.clone())
            .into_iter()
            .filter(|k| self.backends.iter().any(|(have, _)| have == k))
            .collect()
    }

    fn get(&self, kind: BackendKind) -> Option<&Arc<dyn LoginBackend>> {
        self.backends
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, b)| b)
    }
}

impl LoginBackend for Ordered {
    fn name(&self) -> &'static str {
        "ordered"
    }

    fn off(&self) -> Option<String> {
        let order = self.order();
        let reasons: Vec<String> = order
            .iter()
            .filter_map(|k| self.get(*k).and_then(|b| b.off()))
            .collect();
        if order.is_empty() {
            Some("no login backend is configured".into())
        } else if reasons.len() == order.len() {
            Some(reasons.join("; "))
        } else {
            None
        }
    }

    fn authenticate(
        &self,
        user: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<UserIdentity, BackendError> {
        let mut unreachable: Vec<String> = Vec::new();
        let mut asked = false;
        // A backend said no after one could not be asked.
        let mut refused = false;
        for kind in self.order() {
            let Some(backend) = self.get(kind) else {
                continue;
            };
            if backend.off().is_some() {
                continue;
            }
            asked = true;
            match backend.authenticate(user, password, peer) {
                Ok(identity) => return Ok(identity),
                Err(BackendError::Refused(Refusal::UnknownUser)) => {}
                // After an unreachable backend, a later "no" is not final: the one that
                // could not answer may know the name (PAM cannot tell "unknown" from
                // "wrong password").
                Err(BackendError::Refused(_)) if !unreachable.is_empty() => refused = true,
                Err(BackendError::Refused(r)) => return Err(BackendError::Refused(r)),
                Err(BackendError::Undecided { why } | BackendError::Unavailable(why)) => {
                    unreachable.push(why)
                }
            }
        }
        if !unreachable.is_empty() {
            let why = unreachable.join("; ");
            return Err(if refused {
                BackendError::Undecided { why }
            } else {
                BackendError::Unavailable(why)
            });
        }
        if !asked {
            return Err(BackendError::Unavailable(
                self.off()
                    .unwrap_or_else(|| "no login backend is configured".into()),
            ));
        }
        Err(BackendError::Refused(Refusal::UnknownUser))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use std::sync::Mutex;

    /// A backend that knows some users, can be off or unreachable, and counts its calls;
    /// `blind`: says "bad credentials" for unknown users too, as PAM does.
    struct Fake {
        blind: bool,
        name: &'static str,
        users: &'static [(&'static str, &'static str)],
        off: bool,
        down: bool,
        calls: Mutex<Vec<String>>,
    }

    impl Fake {
        fn new(name: &'static str, users: &'static [(&'static str, &'static str)]) -> Fake {
            Fake {
                blind: false,
                name,
                users,
                off: false,
                down: false,
                calls: Mutex::new(Vec::new()),
            }
        }
    }

    impl LoginBackend for Fake {
        fn name(&self) -> &'static str {
            self.name
        }
        fn off(&self) -> Option<String> {
            self.off.then(|| format!("{} is off", self.name))
        }
        fn authenticate(
            &self,
            user: &str,
            password: &str,
            _peer: Option<IpAddr>,
        ) -> Result<UserIdentity, BackendError> {
            self.calls.lock().unwrap().push(user.to_string());
            if self.down {
                return Err(BackendError::Unavailable(format!("{} is down", self.name)));
            }
            match self.users.iter().find(|(u, _)| *u == user) {
                None if self.blind => Err(BackendError::Refused(Refusal::BadCredentials)),
                None => Err(BackendError::Refused(Refusal::UnknownUser)),
                Some((_, pw)) if *pw == password => Ok(UserIdentity {
                    name: user.into(),
                    uid: None,
                    groups: Vec::new(),
                    source: self.name.into(),
                }),
                Some(_) => Err(BackendError::Refused(Refusal::BadCredentials)),
            }
        }
    }

    const DIR: &[(&str, &str)] = &[("alice", "dir-pw"), ("shared", "dir-pw")];
    const PAM: &[(&str, &str)] = &[("root2", "local-pw"), ("shared", "local-pw")];

    fn ordered(dir: Fake, pam: Fake, config: &str) -> (Ordered, Arc<Fake>, Arc<Fake>) {
        let (dir, pam) = (Arc::new(dir), Arc::new(pam));
        let o = Ordered::new(
            vec![
                (BackendKind::Pam, pam.clone() as Arc<dyn LoginBackend>),
                (BackendKind::Directory, dir.clone() as Arc<dyn LoginBackend>),
            ],
            vec![BackendKind::Directory, BackendKind::Pam],
            PolicyHandle::new(Policy::from_toml(config).unwrap()),
        );
        (o, dir, pam)
    }

    /// (user, password) → the backend that vouched, or the error's kind.
    #[test]
    fn directory_first_then_pam() {
        let (o, dir, pam) = ordered(Fake::new("directory", DIR), Fake::new("pam", PAM), "");
        let src = |u: &str, p: &str| match o.authenticate(u, p, None) {
            Ok(id) => id.source,
            Err(BackendError::Refused(r)) => r.as_str().to_string(),
            Err(BackendError::Unavailable(m) | BackendError::Undecided { why: m }) => {
                format!("unavailable: {m}")
            }
        };
        let table = [
            ("alice", "dir-pw", "directory"),
            ("alice", "wrong", "bad credentials"),
            ("root2", "local-pw", "pam"),
            ("root2", "wrong", "bad credentials"),
            // A name both know is the directory's: the local password does not work.
            ("shared", "dir-pw", "directory"),
            ("shared", "local-pw", "bad credentials"),
            ("nobody", "x", "unknown user"),
        ];
        for (u, p, want) in table {
            assert_eq!(src(u, p), want, "{u}/{p}");
        }
        // The directory's "no" for a user it knows is final: PAM was never asked for alice.
        assert!(!pam.calls.lock().unwrap().iter().any(|u| u == "alice"));
        assert_eq!(dir.calls.lock().unwrap().len(), table.len());
    }

    #[test]
    fn directory_down() {
        let mut d = Fake::new("directory", DIR);
        d.down = true;
        let mut p = Fake::new("pam", PAM);
        p.blind = true;
        let (o, _, _) = ordered(d, p, "");
        // Local accounts still log in; anyone else learns the directory is down (also
        // with a wrong local password: the name may be the directory's).
        assert_eq!(
            o.authenticate("root2", "local-pw", None).unwrap().source,
            "pam"
        );
        for (u, p) in [("alice", "dir-pw"), ("nobody", "x"), ("root2", "wrong")] {
            match o.authenticate(u, p, None) {
                // PAM refused too: counted like a failed login (the service's rule).
                Err(BackendError::Undecided { why }) => assert_eq!(why, "directory is down"),
                other => panic!("{u}: {other:?}"),
            }
        }
    }

    #[test]
    fn configured_order_and_off_backends() {
        // PAM first: the shared name is the local account's.
        let (o, _, _) = ordered(
            Fake::new("directory", DIR),
            Fake::new("pam", PAM),
            "[auth]\nlogin_backends = [\"pam\", \"directory\"]",
        );
        assert_eq!(
            o.authenticate("shared", "local-pw", None).unwrap().source,
            "pam"
        );
        // Only the directory: local accounts are unknown.
        let (o, _, pam) = ordered(
            Fake::new("directory", DIR),
            Fake::new("pam", PAM),
            "[auth]\nlogin_backends = [\"directory\"]",
        );
        assert!(matches!(
            o.authenticate("root2", "local-pw", None),
            Err(BackendError::Refused(Refusal::UnknownUser))
        ));
        assert!(pam.calls.lock().unwrap().is_empty());
        // PAM off (no service file): skipped, not an outage.
        let mut p = Fake::new("pam", PAM);
        p.off = true;
        let (o, _, _) = ordered(Fake::new("directory", DIR), p, "");
        assert!(o.off().is_none());
        assert!(matches!(
            o.authenticate("root2", "local-pw", None),
            Err(BackendError::Refused(Refusal::UnknownUser))
        ));
        // Everything off: unavailable, with the reason.
        let (mut d, mut p) = (Fake::new("directory", DIR), Fake::new("pam", PAM));
        d.off = true;
        p.off = true;
        let (o, _, _) = ordered(d, p, "");
        assert_eq!(o.off().unwrap(), "directory is off; pam is off");
        assert!(matches!(
            o.authenticate("alice", "dir-pw", None),
            Err(BackendError::Unavailable(_))
        ));
    }
}
