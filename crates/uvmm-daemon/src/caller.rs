//! Who made a request: today the peer (a process on the UNIX socket by its uid, from
//! `SO_PEERCRED`, or a TCP address) and how it was let in (the socket's file mode, or the
//! API token). Extracted once in `http` (`extract.rs`), passed to every operation and job,
//! written into every backup version (`user`) and every change's log line. This is the
//! seam for logins and roles (issue 13: users, roles, scopes): a login will be another
//! `Auth`, and a role check will read the caller before the operation runs.
//!
//! How this meets `uvmm-auth` (not used by uvmmd yet; `docs/auth.md`): [`Peer`] is what
//! its `Credentials`/`Origin` are made from (`Unix` → `Credentials::UnixPeer`,
//! `Origin::Unix`; `Tcp` → the request's headers, `Origin::Tcp`), [`Auth::Socket`] is its
//! `Principal::UnixPeer` and [`Auth::ApiToken`] its `Principal::LegacyToken`. Wiring it in
//! adds the `Authenticated` (principal, origin, grants) to `Caller`; [`Caller::user`] then
//! comes from the principal, keeping the names recorded today (`root`, `uid:N`,
//! `token:api`) for these two.

use std::fmt;
use std::net::SocketAddr;

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

/// How a caller was let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// The UNIX socket: whoever may open it (its file mode) is trusted.
    Socket,
    /// The TCP listener with the API token.
    ApiToken,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub peer: Peer,
    pub auth: Auth,
    /// The name recorded for this caller (see [`Caller::user`]), resolved once.
    user: String,
}

impl Caller {
    /// The caller of a request the guard let in: on the UNIX socket by its mode, on TCP
    /// by the API token (the guard refuses TCP requests without it).
    pub fn of(peer: Peer) -> Caller {
        let auth = match peer {
            Peer::Unix { .. } => Auth::Socket,
            Peer::Tcp(_) => Auth::ApiToken,
        };
        Caller::new(peer, auth)
    }

    pub fn new(peer: Peer, auth: Auth) -> Caller {
        let user = match (&peer, auth) {
            (Peer::Unix { uid, .. }, _) => user_name(*uid),
            // One token for every TCP client: it is all that is known about them.
            (Peer::Tcp(_), Auth::ApiToken) => "token:api".to_string(),
            (Peer::Tcp(a), Auth::Socket) => format!("tcp:{}", a.ip()),
        };
        Caller { peer, auth, user }
    }

    /// The name recorded for changes (a backup version's `user`, the change log): the
    /// account name of a socket peer (`root`; `uid:N` when the uid has no name), or
    /// `token:api` for the TCP token.
    pub fn user(&self) -> &str {
        &self.user
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.user, self.peer)
    }
}

/// The account name of a uid (getpwuid_r), or `uid:N`.
fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => format!("uid:{uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_are_recorded_by_name() {
        let unix = |uid| Peer::Unix {
            uid,
            gid: 0,
            pid: Some(1),
        };
        let tcp = Peer::Tcp("127.0.0.1:5000".parse().unwrap());
        // uid 0 is root everywhere; a uid without an account keeps its number.
        assert_eq!(Caller::new(unix(0), Auth::Socket).user(), "root");
        assert_eq!(
            Caller::new(unix(4_000_000_007), Auth::Socket).user(),
            "uid:4000000007"
        );
        assert_eq!(Caller::new(tcp.clone(), Auth::ApiToken).user(), "token:api");
        assert_eq!(
            Caller::new(unix(0), Auth::Socket).to_string(),
            "root (uid=0 pid=1)"
        );
    }
}
