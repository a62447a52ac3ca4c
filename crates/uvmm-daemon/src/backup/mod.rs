//! Backups of VM definitions: recording versions (`record`).

pub mod record;

use crate::error::libvirt_message;
use crate::vm::VmError;
use uvmm_backup::restore::RestoreError;
use uvmm_backup::store::BackupError as StoreError;
use uvmm_libvirt::LibvirtError;
use uvmm_model::domain::DomainError;
use uvmm_model::validate::Invalid;

/// What reading backups and restoring can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("this daemon keeps no backups")]
    NoStore,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the backup of {vm} has no version {version}")]
    NoVersion { vm: String, version: u32 },
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error("give either backup (name or UUID) or xml")]
    NeitherOrBoth,
    /// The request is fine; this (old) backup lacks what it needs.
    #[error("the backup does not say which host it came from: give host")]
    NoHost,
    #[error("host {host} is not managed by this daemon; add it first or restore directly with uvmm-restore --direct")]
    HostNotManaged { host: String },
    #[error("not a domain definition: {0}")]
    NotADefinition(#[source] DomainError),
    #[error("the definition cannot be restored: {0}")]
    BadValues(#[source] Invalid),
    #[error("the definition cannot be restored here: {0}")]
    TooBig(#[source] Invalid),
    /// The host-facing checks of a definition brought by a client.
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error("{}", libvirt_message(.0))]
    Libvirt(LibvirtError),
}

impl From<LibvirtError> for BackupError {
    fn from(e: LibvirtError) -> Self {
        BackupError::Libvirt(crate::error::from_libvirt(e))
    }
}
