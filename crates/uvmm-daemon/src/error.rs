//! What can go wrong, said by what it is, with its cause kept. Each resource has its own
//! enum (`vm::VmError`, `storage::StorageError`, `hosts::HostError`, `backup::BackupError`,
//! `cache::LookupError`, `jobs::JobError`, `http::error::RequestError`); [`Error`] gathers
//! them for the handlers. Nothing here knows HTTP: `http::error` is the one place that
//! turns these into status codes (the rule is in docs/api.md).

use uvmm_libvirt::{ErrorKind, LibvirtError};

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
    /// A broken invariant: a bug (the daemon log has the details).
    #[error("{what}")]
    Internal { what: String },
}

impl Error {
    pub fn internal(what: impl Into<String>) -> Error {
        Error::Internal { what: what.into() }
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
    match e.kind {
        ErrorKind::NotFound
        | ErrorKind::InvalidOperation
        | ErrorKind::InvalidInput
        | ErrorKind::Exists => e.message.clone(),
        _ => format!("libvirt: {}", e.message),
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
