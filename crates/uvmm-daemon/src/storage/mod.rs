//! Storage pools and volumes. Volume creation lives here; VM operations call it.

pub mod pools;
pub mod volumes;

use crate::cache::{pool_detail, pool_summary, Cache, HostEntry, LookupError};
use crate::error::{libvirt_message, Error};
use crate::hosts::shared::Shared;
use uvmm_api::{PoolDetail, PoolSummary, VolumeSummary};
use uvmm_libvirt::LibvirtError;
use uvmm_model::storage::VolumeSizeError;
use uvmm_model::validate::Invalid;

/// What a storage operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A pool or volume the request names does not exist.
    #[error("{what}")]
    NotFound { what: String },
    /// A value of the request is not acceptable.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A size the volume, its format or its pool cannot hold.
    #[error(transparent)]
    Size(#[from] VolumeSizeError),
    /// The request does not fit the pool or volume as they are now (in use, exists, ...).
    #[error("{why}")]
    Conflict { why: String },
    /// libvirt refused for a reason of the host's state (space, a clashing pool, a
    /// storage that cannot be removed); `what` says what was being done.
    #[error("{}", refused(.what, .source))]
    Refused {
        what: String,
        #[source]
        source: LibvirtError,
    },
    #[error("{}", libvirt_message(.0))]
    Libvirt(LibvirtError),
}

fn refused(what: &str, source: &LibvirtError) -> String {
    let said = crate::error::libvirt_words(source);
    if what.is_empty() {
        said
    } else {
        format!("{what}: {said}")
    }
}

impl From<LibvirtError> for StorageError {
    fn from(e: LibvirtError) -> Self {
        StorageError::Libvirt(crate::error::from_libvirt(e))
    }
}

impl StorageError {
    pub fn not_found(what: impl Into<String>) -> StorageError {
        StorageError::NotFound { what: what.into() }
    }
    pub fn conflict(why: impl Into<String>) -> StorageError {
        StorageError::Conflict { why: why.into() }
    }
    /// libvirt refused while doing `what` (see `Refused`).
    pub fn refused(what: impl Into<String>, source: LibvirtError) -> StorageError {
        StorageError::Refused {
            what: what.into(),
            source: crate::error::from_libvirt(source),
        }
    }
}

/// An invalid value of a request, in the words given.
pub(crate) fn bad(msg: impl Into<String>) -> StorageError {
    StorageError::Invalid(Invalid(msg.into()))
}

/// The storage pools of all hosts, or of one (id or URI), by host and name.
pub fn list_pools(shared: &Shared, host: Option<&str>) -> Result<Vec<PoolSummary>, LookupError> {
    let cache = shared.read();
    let only = host
        .map(|h| cache.resolve_host(h).map(|e| e.uri.clone()))
        .transpose()?;
    let mut out: Vec<PoolSummary> = cache
        .hosts()
        .filter(|h| only.as_deref().is_none_or(|u| u == h.uri))
        .flat_map(|h| h.pools.iter().map(move |p| pool_summary(h, p)))
        .collect();
    out.sort_by(|a, b| a.host_id.cmp(&b.host_id).then(a.name.cmp(&b.name)));
    Ok(out)
}

/// One pool of a host (id or URI) with its volumes.
pub fn pool(shared: &Shared, host: &str, pool: &str) -> Result<PoolDetail, Error> {
    let cache = shared.read();
    let h = cache.resolve_host(host)?;
    Ok(pool_in(&cache, h, pool)?)
}

/// A pool of host `h` as the cache has it.
pub fn pool_in(cache: &Cache, h: &HostEntry, pool: &str) -> Result<PoolDetail, StorageError> {
    let p = h
        .pools
        .iter()
        .find(|p| p.info.def.name == pool)
        .ok_or_else(|| StorageError::not_found(format!("no storage pool '{pool}' on {}", h.id)))?;
    Ok(pool_detail(cache, h, p))
}

/// A volume of a pool of host `h` as the cache has it.
pub fn volume_in(
    cache: &Cache,
    h: &HostEntry,
    pool: &str,
    name: &str,
) -> Result<VolumeSummary, StorageError> {
    pool_in(cache, h, pool)?
        .volumes
        .into_iter()
        .find(|v| v.name == name)
        .ok_or_else(|| StorageError::not_found(format!("no volume '{name}' in pool '{pool}'")))
}
