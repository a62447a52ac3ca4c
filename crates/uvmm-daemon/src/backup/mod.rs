//! Backups of VM definitions: recording versions (`record`), reading them (here) and
//! restoring them (`restore`).

pub mod record;
pub mod restore;

use crate::error::libvirt_message;
use crate::hosts::shared::Shared;
use crate::vm::VmError;
use std::time::SystemTime;
use uvmm_api::{BackupDetail, BackupSummary, BackupVersion, PruneResponse};
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

fn store(shared: &Shared) -> Result<&uvmm_backup::BackupStore, BackupError> {
    shared.backups.as_deref().ok_or(BackupError::NoStore)
}

/// The backed-up VMs (deleted ones too), optionally those whose name matches a glob.
pub fn list(shared: &Shared, pattern: Option<&str>) -> Result<Vec<BackupSummary>, BackupError> {
    let mut list = store(shared)?.list()?;
    if let Some(p) = pattern {
        list.retain(|b| uvmm_model::glob::matches(p, &b.name));
    }
    Ok(list)
}

/// The versions of one VM (name or UUID).
pub fn show(shared: &Shared, vm: &str) -> Result<BackupDetail, BackupError> {
    let store = store(shared)?;
    let summary = store.find(vm)?;
    let versions = store.versions(&summary.uuid)?;
    Ok(BackupDetail { summary, versions })
}

/// One version (the latest when `None`): its record and its XML without secrets.
pub fn version(
    shared: &Shared,
    vm: &str,
    version: Option<u32>,
) -> Result<BackupVersion, BackupError> {
    let store = store(shared)?;
    let detail = show(shared, vm)?;
    let n = version.unwrap_or(detail.summary.latest);
    let meta = detail
        .versions
        .iter()
        .find(|m| m.version == n)
        .cloned()
        .ok_or_else(|| BackupError::NoVersion {
            vm: vm.to_string(),
            version: n,
        })?;
    // The files keep secrets (a restore brings a VNC password back); clients do not
    // see them.
    let xml = uvmm_model::secrets::redact(&store.version_xml(&detail.summary.uuid, n)?);
    let snapshot_xml = store
        .version_snapshot_xml(&detail.summary.uuid, n)?
        .map(|x| uvmm_model::secrets::redact(&x));
    Ok(BackupVersion {
        uuid: detail.summary.uuid,
        meta,
        xml,
        snapshot_xml,
    })
}

/// A unified diff of two versions, without secrets.
pub fn diff(shared: &Shared, vm: &str, from: u32, to: u32) -> Result<String, BackupError> {
    let store = store(shared)?;
    let summary = store.find(vm)?;
    Ok(store.diff_with(&summary.uuid, from, to, |x| uvmm_model::secrets::redact(&x))?)
}

/// Apply the retention policy to every VM's versions.
pub fn prune(shared: &Shared) -> Result<PruneResponse, BackupError> {
    let removed = store(shared)?.prune(shared.retention, SystemTime::now())?;
    Ok(PruneResponse { removed })
}
