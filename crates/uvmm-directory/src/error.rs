//! Errors of the directory mode. Every variant keeps its cause (`#[source]`), so a log line
//! can show the whole chain; [`Error::is_unavailable`] tells "the directory cannot be
//! reached now" (run on the cache, retry later) from mistakes that retrying will not fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("directory configuration: {0}")]
    Config(String),

    #[error("cannot read the directory password file {path}")]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("directory password file {path}: {reason}")]
    PasswordFileUnsafe { path: PathBuf, reason: String },

    #[error("TLS setup for the directory: {0}")]
    Tls(String),

    #[error("cannot reach the directory at {url}")]
    Connect {
        url: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },

    #[error("the directory did not answer {op} within {secs} s")]
    Timeout { op: String, secs: u64 },

    #[error("directory {op} failed")]
    Ldap {
        op: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },

    #[error("directory {op} failed: {message} (LDAP result {rc})")]
    Result {
        op: String,
        rc: u32,
        message: String,
    },

    #[error("the directory refused the bind as {dn}: {message} (LDAP result {rc})")]
    Bind {
        dn: String,
        rc: u32,
        message: String,
    },

    /// Wrong user name or password. Deliberately says nothing about which of the two.
    #[error("login refused: unknown user or wrong password")]
    InvalidCredentials,

    /// No entry matches the login name. Only for the login backend's order (the next
    /// backend is asked); the client sees the same answer as for a wrong password.
    #[error("login refused: unknown user or wrong password")]
    UnknownUser,

    #[error("login: {0}")]
    Login(String),

    #[error("the directory sent something malformed: {0}")]
    Protocol(String),

    #[error("the directory refused the note of VM {uuid}: {reason}")]
    NoteRejected { uuid: String, reason: String },

    #[error("invalid VM note key {key:?}: {reason}")]
    NoteKey { key: String, reason: String },

    #[error("directory cache {path}")]
    CacheIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("directory cache {path} is not valid")]
    CacheFormat {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("note journal {path} line {line} is corrupt; it is kept for inspection")]
    JournalCorrupt {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// LDAP result codes that mean "the server cannot serve now", not "the request is wrong":
/// busy (51), unavailable (52), unwilling to perform (53, what a consumer answers while it is
/// still loading), other (80, server-side failure), and ldap3's pseudo codes for a lost
/// connection.
const UNAVAILABLE_RC: [u32; 4] = [51, 52, 53, 80];

impl Error {
    /// True when the directory cannot be reached or cannot serve right now: the caller keeps
    /// running on the cache, reports itself degraded and tries again later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Timeout { .. } => true,
            Error::Ldap { source, .. } => ldap_error_is_unavailable(source),
            Error::Result { rc, .. } | Error::Bind { rc, .. } => UNAVAILABLE_RC.contains(rc),
            _ => false,
        }
    }
}

pub(crate) fn ldap_error_is_unavailable(e: &ldap3::LdapError) -> bool {
    use ldap3::LdapError as E;
    match e {
        E::Io { .. }
        | E::OpSend { .. }
        | E::ResultRecv { .. }
        | E::Timeout { .. }
        | E::EndOfStream
        | E::IdScrubSend { .. }
        | E::MiscSend { .. } => true,
        E::LdapResult { result } => UNAVAILABLE_RC.contains(&result.rc),
        _ => false,
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_errors_mean_unavailable() {
        let table: Vec<(Error, bool)> = vec![
            (Error::Config("x".into()), false),
            (
                Error::Timeout {
                    op: "search".into(),
                    secs: 5,
                },
                true,
            ),
            (
                Error::Result {
                    op: "search".into(),
                    rc: 52,
                    message: String::new(),
                },
                true,
            ),
            (
                Error::Result {
                    op: "search".into(),
                    rc: 32,
                    message: String::new(),
                },
                false,
            ),
            (
                Error::Bind {
                    dn: "x".into(),
                    rc: 49,
                    message: String::new(),
                },
                false,
            ),
            (Error::InvalidCredentials, false),
            (Error::UnknownUser, false),
            (
                Error::Ldap {
                    op: "search".into(),
                    source: Box::new(ldap3::LdapError::EndOfStream),
                },
                true,
            ),
        ];
        for (e, want) in table {
            assert_eq!(e.is_unavailable(), want, "{e}");
        }
    }
}
