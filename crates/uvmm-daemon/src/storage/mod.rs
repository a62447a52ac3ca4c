//! Storage pools and volumes. Volume creation lives here; VM operations call it.

pub mod pools;
pub mod volumes;

use crate::error::libvirt_message;
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
    if what.is_empty() {
        source.message.clone()
    } else {
        format!("{what}: {}", source.message)
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
