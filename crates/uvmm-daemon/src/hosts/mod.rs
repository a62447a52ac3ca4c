//! The managed hosts: one worker thread per host (`worker`), what it reads (`reads`), its
//! side of the definition watch (`defcheck`), and what the parts share (`shared`).

pub mod defcheck;
pub mod facts;
pub mod reads;
pub mod shared;
pub mod worker;

use uvmm_model::hosts::UriError;

/// What managing hosts (adding, removing, keeping the list) can fail with.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    BadUri(#[from] UriError),
    /// The API's policy refuses the URI (`[api]`, docs/security.md).
    #[error("{why}")]
    Refused { why: String },
    #[error("host {uri} is already managed")]
    AlreadyManaged { uri: String },
    /// The host list could not be saved.
    #[error("cannot save {path}: {source}")]
    Persist {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The saved host list could not be read.
    #[error("{path}: {why}")]
    Load {
        path: std::path::PathBuf,
        why: String,
    },
    /// The host was removed while it was being added.
    #[error("host vanished while being added")]
    Vanished,
}
