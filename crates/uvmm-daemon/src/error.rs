//! What can go wrong, said by what it is, with its cause kept. Each resource has its own
//! enum (`vm::VmError`, `storage::StorageError`, `hosts::HostError`, `backup::BackupError`,
//! `cache::LookupError`, `jobs::JobError`, `http::error::RequestError`); [`Error`] gathers
//! them for the handlers. Nothing here knows HTTP: `http::error` is the one place that
//! turns these into status codes (the rule is in docs/api.md).

use uvmm_libvirt::{ErrorKind, LibvirtError};
use uvmm_model::hosts::HostUri;

pub use crate::backup::BackupError;
pub use crate::cache::LookupError;
pub use crate::hosts::HostError;
pub use crate::http::error::RequestError;
pub use crate::jobs::tasks::TaskError;
pub use crate::jobs::JobError;
pub use crate::storage::StorageError;
pub use crate::vm::console::ConsoleError;
pub use crate::vm::migrate::MigrateError;
pub use crate::vm::VmError;

/// Everything an operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error(transparent)]
    Console(#[from] ConsoleError),
    /// No profile of that name.
    #[error("{what}")]
    NoProfile { what: String },
    /// The host's libvirt driver lacks the operation (`Error::on_host` found it): said in
    /// words with the kind of host; libvirt's text, which names its API function, goes to
    /// the log only.
    #[error("{what} is not supported on host {host} ({kind})")]
    NotSupported {
        what: &'static str,
        host: String,
        kind: &'static str,
    },
    /// A broken invariant: a bug (the daemon log has the details).
    #[error("{what}")]
    Internal { what: String },
}

impl Error {
    pub fn internal(what: impl Into<String>) -> Error {
        Error::Internal { what: what.into() }
    }

    /// The libvirt error this error carries, if it is one.
    fn libvirt(&self) -> Option<&LibvirtError> {
        match self {
            Error::Vm(VmError::Libvirt(l) | VmError::Storage(StorageError::Libvirt(l)))
            | Error::Storage(StorageError::Libvirt(l) | StorageError::Refused { source: l, .. })
            | Error::Backup(BackupError::Libvirt(l)) => Some(l),
            _ => None,
        }
    }

    /// An error of a job on `host`: where libvirt said the host's driver lacks the
    /// operation, the answer says which operation and what kind of host, in words.
    pub fn on_host(self, host_id: &str, host: &HostUri) -> Error {
        let Some(l) = self.libvirt() else {
            return self;
        };
        let Some(what) = l.unsupported_operation() else {
            return self;
        };
        tracing::info!(host = %host.uri, "not supported by the host: libvirt said: {}", l.message);
        Error::NotSupported {
            what,
            host: host_id.to_string(),
            kind: host.driver_words(),
        }
    }
}

/// A libvirt message as clients may see it: its first line only, printable, bounded.
/// libvirt's parse errors quote the file they read on the following lines (`test:///FILE`
/// with a file that is not XML shows its first line), so the rest goes to the log only.
pub fn client_safe(message: &str) -> String {
    let first = message.lines().next().unwrap_or("").trim();
    let mut out: String = first
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    if message.trim_end().contains('\n') || first.chars().count() > 300 {
        out.push_str(" (more in the daemon log)");
    }
    out
}

/// A libvirt error as it enters the daemon's errors: its message made client-safe (the
/// whole message goes to the log), its kind and code kept.
pub fn from_libvirt(mut e: LibvirtError) -> LibvirtError {
    let safe = client_safe(&e.message);
    if safe != e.message {
        tracing::info!("libvirt said: {}", e.message);
        e.message = safe;
    }
    e
}

/// How a libvirt error reads in an answer: a refusal that is about the object (missing,
/// in the wrong state, exists, bad input) in libvirt's words; a failure of libvirt itself
/// marked as such.
pub fn libvirt_message(e: &LibvirtError) -> String {
    if let Some(what) = e.unsupported_operation() {
        return unsupported_here(what);
    }
    match e.kind {
        ErrorKind::NotFound
        | ErrorKind::InvalidOperation
        | ErrorKind::InvalidInput
        | ErrorKind::Exists => e.message.clone(),
        _ => format!("libvirt: {}", e.message),
    }
}

/// What a host lacks, where the host is not known (`Error::on_host` says which when it
/// is): never libvirt's function name.
pub fn unsupported_here(what: &str) -> String {
    format!("{what} is not supported on this host")
}

/// A libvirt message inside a sentence of uvmm's own ("cannot …: MESSAGE"): libvirt's
/// words, except where it names its API function for something the host lacks.
pub fn libvirt_words(e: &LibvirtError) -> String {
    match e.unsupported_operation() {
        Some(what) => unsupported_here(what),
        None => e.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_safe_messages() {
        let table = [
            ("plain", "plain"),
            (
                "/etc/shadow:1: Start tag expected, '<' not found\nroot:$y$j9T$secret:19000::\n^",
                "/etc/shadow:1: Start tag expected, '<' not found (more in the daemon log)",
            ),
            ("tab\there", "tabhere"),
            ("", ""),
        ];
        for (input, want) in table {
            assert_eq!(client_safe(input), want, "{input:?}");
        }
        assert!(client_safe(&"x".repeat(1000)).len() < 340);
    }
}
