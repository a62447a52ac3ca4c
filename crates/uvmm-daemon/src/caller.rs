//! Who made a request: the peer (a process on the UNIX socket by its uid, from
//! `SO_PEERCRED`, or a TCP address), the principal it authenticated as (the socket peer's
//! account, a login session, an API token, the legacy `api-token`) and its grants (roles
//! with scopes, see `uvmm_auth::roles`). Built once per request by the authorization
//! middleware (`http/auth.rs`), passed to every operation and job, written into every
//! backup version (`user`), every change's log line and the audit log.

use std::fmt;
use std::net::SocketAddr;
use uvmm_auth::{Grants, Origin, Principal};

/// The other end of a connection. Inserted into every request's extensions by the accept
/// loop (`http::conn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A process on the UNIX socket, by its credentials (`SO_PEERCRED`).
    Unix {
        uid: u32,
        gid: u32,
        pid: Option<i32>,
    },
    /// A TCP client, by address.
    Tcp(SocketAddr),
}

impl Peer {
    pub fn origin(&self) -> Origin {
        match self {
            Peer::Unix { .. } => Origin::Unix,
            Peer::Tcp(addr) => Origin::Tcp { addr: *addr },
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Unix { uid, pid, .. } => match pid {
                Some(p) => write!(f, "uid={uid} pid={p}"),
                None => write!(f, "uid={uid}"),
            },
            Peer::Tcp(a) => write!(f, "tcp={a}"),
        }
    }
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub peer: Peer,
    pub principal: Principal,
    pub grants: Grants,
    /// The name recorded for this caller (see [`Caller::user`]), resolved once.
    user: String,
}

impl Caller {
    pub fn new(peer: Peer, principal: Principal, grants: Grants) -> Caller {
        let user = match &principal {
            Principal::UnixPeer { uid, user, .. } => {
                user.clone().unwrap_or_else(|| format!("uid:{uid}"))
            }
            Principal::Session { user } => user.clone(),
            Principal::Token { name } => format!("token:{name}"),
            // One token for every holder: it is all that is known about them.
            Principal::LegacyToken => "token:api".to_string(),
        };
        Caller {
            peer,
            principal,
            grants,
            user,
        }
    }

    /// A socket peer with every right (root, for operations uvmmd starts itself and tests).
    pub fn unix_admin(uid: u32, pid: Option<i32>) -> Caller {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name);
        Caller::new(
            Peer::Unix { uid, gid: 0, pid },
            Principal::UnixPeer { uid, pid, user },
            Grants::admin(),
        )
    }

    /// The name recorded for changes (a backup version's `user`, the change log, the
    /// audit log): the account name of a socket peer (`root`; `uid:N` when the uid has no
    /// name), the user of a login session, `token:NAME` for an API token, `token:api` for
    /// the legacy token.
    pub fn user(&self) -> &str {
        &self.user
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.user, self.peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_are_recorded_by_name() {
        let tcp = Peer::Tcp("127.0.0.1:5000".parse().unwrap());
        let admin = Grants::admin;
        // uid 0 is root everywhere; a uid without an account keeps its number.
        assert_eq!(Caller::unix_admin(0, Some(1)).user(), "root");
        assert_eq!(
            Caller::unix_admin(4_000_000_007, None).user(),
            "uid:4000000007"
        );
        let table = [
            (Principal::LegacyToken, "token:api"),
            (Principal::Token { name: "ci".into() }, "token:ci"),
            (
                Principal::Session {
                    user: "alice".into(),
                },
                "alice",
            ),
        ];
        for (p, want) in table {
            assert_eq!(Caller::new(tcp.clone(), p, admin()).user(), want);
        }
        assert_eq!(
            Caller::unix_admin(0, Some(1)).to_string(),
            "root (uid=0 pid=1)"
        );
    }
}
