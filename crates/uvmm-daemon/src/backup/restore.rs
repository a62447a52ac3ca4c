//! Restoring a VM from a backup version, or from a definition a client brings, onto a
//! managed host.

use super::{store, version, BackupError};
use crate::cache::{Cache, HostEntry, VmEntry};
use crate::error::Error;
use crate::hosts::shared::Shared;
use crate::jobs::{Job, JobCtx, Target};
use uvmm_api::{RestoreReport, RestoreRequest};
use uvmm_backup::restore::{Existing, RestoreError};
use uvmm_backup::Cause;
use uvmm_model::validate::HostLimits;

/// `POST /api/v1/restore`, planned: which definition goes onto which host.
pub struct Restore {
    /// The target host's URI.
    host: String,
    xml: String,
    existing: Existing,
    /// A definition brought by the client passes the checks of a new VM first; one from
    /// uvmmd's own backups was read from libvirt and is restored as it was.
    from_client: bool,
    /// The version's own host (URI) and VM name, for one from the store.
    from: Option<(String, String)>,
}

impl Restore {
    /// The host it goes onto.
    pub fn target(&self) -> Target {
        Target::Host(self.host.clone())
    }

    /// The host (URI) and VM name it takes, for the authorization.
    pub fn onto(&self) -> (&str, String) {
        let name = uvmm_model::domain::parse_domain(&self.xml)
            .map(|d| d.name)
            .unwrap_or_default();
        (&self.host, name)
    }

    /// The host (URI) and name of the VM a stored version was (`None`: a definition the
    /// client brought), for the authorization.
    pub fn from(&self) -> Option<(&str, &str)> {
        self.from.as_ref().map(|(h, n)| (h.as_str(), n.as_str()))
    }

    /// Find the definition (a version of the store, or the one brought along) and the
    /// host (given, or where the backup came from; it must be managed here).
    pub fn plan(shared: &Shared, req: RestoreRequest) -> Result<Restore, Error> {
        let (xml, from) = match (&req.backup, &req.xml) {
            (Some(vm), None) => {
                let v = version(shared, vm, req.version)?;
                let xml = store(shared)?
                    .version_xml(&v.uuid, v.meta.version)
                    .map_err(BackupError::from)?;
                (xml, Some((v.meta.host, v.meta.name)))
            }
            (None, Some(xml)) => (xml.clone(), None),
            _ => return Err(BackupError::NeitherOrBoth.into()),
        };
        // The request is fine when the host is missing; old backups lack it.
        let host = req
            .host
            .clone()
            .or(from
                .as_ref()
                .map(|(h, _)| h.clone())
                .filter(|h| !h.is_empty()))
            .ok_or(BackupError::NoHost)?;
        let uri = shared
            .read()
            .resolve_host(&host)
            .map(|h| h.uri.clone())
            .map_err(|_| BackupError::HostNotManaged { host: host.clone() })?;
        let existing = match (req.force, req.replace) {
            (_, true) => Existing::Replace,
            (true, false) => Existing::Redefine,
            (false, false) => Existing::Refuse,
        };
        Ok(Restore {
            host: uri,
            xml,
            existing,
            from_client: req.xml.is_some(),
            from,
        })
    }
}

/// The value checks of a new VM (name, memory, vCPUs, notes, devices) for a definition a
/// client sends to be restored.
fn check_client_definition_values(xml: &str, limits: HostLimits) -> Result<(), BackupError> {
    let def = uvmm_model::domain::parse_domain(xml).map_err(BackupError::NotADefinition)?;
    uvmm_model::validate::definition_values(&def, None).map_err(BackupError::BadValues)?;
    uvmm_model::validate::host_limits(&def, None, limits).map_err(BackupError::TooBig)
}

impl Job for Restore {
    type Output = RestoreReport;
    type Error = BackupError;

    fn prepare(&mut self, _: &Cache, h: &HostEntry, _: Option<&VmEntry>) -> Result<(), Error> {
        if self.from_client {
            let info = h.info.clone().unwrap_or_default();
            let limits = HostLimits {
                memory_kib: Some(info.memory_kib),
                cpus: Some(info.cpus),
            };
            check_client_definition_values(&self.xml, limits)?;
        }
        Ok(())
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<RestoreReport, BackupError> {
        if self.from_client {
            crate::vm::images::check_client_definition(ctx.hv, ctx.facts(), &self.xml)?;
        }
        let local = ctx.facts().local;
        let mut report = uvmm_backup::restore::restore(ctx.hv, &self.xml, self.existing, local)
            .map_err(|e| match e {
                RestoreError::Libvirt(l) => BackupError::from(l),
                other => BackupError::Restore(other),
            })?;
        report
            .warnings
            .extend(ctx.backup(&report.uuid, Cause::Restore));
        // The VM undefined to make room leaves the cache now too, not when libvirt's event
        // arrives: an answer is followed by reads that must see both changes.
        if let Some(old) = &report.replaced {
            ctx.refresh(old);
        }
        ctx.refresh(&report.uuid);
        Ok(report)
    }
}
