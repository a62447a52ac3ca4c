//! The daemon's error type.

use uvmm_api::VmSummary;
use uvmm_libvirt::{ErrorKind, LibvirtError};
use uvmm_model::state::TransitionError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Ambiguous {
        message: String,
        candidates: Vec<VmSummary>,
    },
    #[error("{0}")]
    InvalidTransition(#[from] TransitionError),
    #[error("{0}")]
    Conflict(String),
    #[error("host {host} is unavailable: {reason}")]
    HostUnavailable { host: String, reason: String },
    #[error("host {host} did not answer within {secs} s")]
    Timeout { host: String, secs: u64 },
    #[error("libvirt: {0}")]
    Libvirt(LibvirtError),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    RequestTimeout(String),
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

impl From<LibvirtError> for CoreError {
    fn from(mut e: LibvirtError) -> Self {
        let safe = client_safe(&e.message);
        if safe != e.message {
            tracing::info!("libvirt said: {}", e.message);
            e.message = safe;
        }
        match e.kind {
            ErrorKind::NotFound => CoreError::NotFound(e.message),
            ErrorKind::InvalidOperation => CoreError::Conflict(e.message),
            ErrorKind::InvalidInput => CoreError::BadRequest(e.message),
            ErrorKind::Exists => CoreError::Conflict(e.message),
            _ => CoreError::Libvirt(e),
        }
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
