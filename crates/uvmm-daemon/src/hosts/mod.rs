//! The managed hosts: where their list comes from (`source`), which are managed
//! (`registry`), one worker per host (`worker`: an actor on a bounded pool, its phases in
//! `serve`), what it reads (`reads`), its side of the definition watch (`defcheck`), what a job knows of its host (`facts`), the bounded
//! pool for backup I/O (`pool`), and what the parts share (`shared`).

pub mod defcheck;
pub mod facts;
pub mod pool;
pub mod reads;
pub mod registry;
pub mod serve;
pub mod shared;
pub mod source;
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

/// Every managed host with its status, by id.
pub fn list(shared: &shared::Shared) -> Vec<uvmm_api::HostSummary> {
    let now = std::time::SystemTime::now();
    let mut hosts: Vec<_> = shared
        .read()
        .hosts()
        .map(|h| crate::cache::host_summary(h, now))
        .collect();
    hosts.sort_by(|a, b| a.id.cmp(&b.id));
    hosts
}

/// One host (id or URI) with its guest capabilities.
pub fn show(
    shared: &shared::Shared,
    id: &str,
) -> Result<uvmm_api::HostDetail, crate::cache::LookupError> {
    let cache = shared.read();
    Ok(crate::cache::host_detail(
        cache.resolve_host(id)?,
        std::time::SystemTime::now(),
    ))
}
