//! `POST /api/v1/vms/{uuid}/failover`: a VM's host is down for good; define the VM on
//! another host from its last backed-up definition, when every disk image is visible
//! there (shared storage). Explicit (`force: true`), and refused while the VM's host is
//! reachable (then it is a migration). The job runs on the target host: the source has no
//! connection.
//!
//! The cache then shows the VM on the target only (its entry on the dead host is dropped).
//! If the old host comes back with the VM still defined, uvmm shows it on both hosts —
//! which is the truth then, and the split brain the warning is about.

use super::migrate::MigrateError;
use crate::backup::BackupError;
use crate::cache::{Cache, HostEntry, VmEntry};
use crate::error::Error;
use crate::jobs::{Job, JobCtx};
use crate::vm::VmError;
use uvmm_api::{FailoverRequest, FailoverResult};
use uvmm_backup::Cause;
use uvmm_libvirt::migrate::{failover_define, MigrationError};

pub struct Failover {
    req: FailoverRequest,
    uuid: String,
    /// The VM's host (id or URI) when the UUID is on several hosts.
    source: Option<String>,
    /// From `prepare`: the dead host's URI and the VM's name.
    from: String,
    name: String,
}

impl Failover {
    pub fn new(uuid: String, source: Option<String>, req: FailoverRequest) -> Failover {
        Failover {
            req,
            uuid,
            source,
            from: String::new(),
            name: String::new(),
        }
    }
}

fn conflict(why: String) -> Error {
    VmError::Conflict { why }.into()
}

impl Job for Failover {
    type Output = FailoverResult;
    type Error = Error;

    /// `h` is the target host.
    fn prepare(&mut self, cache: &Cache, h: &HostEntry, _: Option<&VmEntry>) -> Result<(), Error> {
        let (src, vm) = cache.resolve_vm(&self.uuid, self.source.as_deref())?;
        if src.uri == h.uri {
            return Err(conflict(format!("{} is on {} already", vm.name, h.id)));
        }
        if src.available() {
            return Err(conflict(format!(
                "{} is reachable: fail over only from a host that is down (migrate the VM \
                 instead)",
                src.id
            )));
        }
        if !self.req.force {
            return Err(conflict(format!(
                "failover defines {} on {} although {} may still run it: make sure {} is \
                 off, then send force: true (uvmm vm failover --force)",
                vm.name, h.id, src.id, src.id
            )));
        }
        self.from = src.uri.clone();
        self.name = vm.name.clone();
        self.uuid = vm.uuid.clone();
        Ok(())
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<FailoverResult, Error> {
        let store = ctx.shared.backups.as_ref().ok_or(BackupError::NoStore)?;
        let (meta, xml) = store
            .latest(&self.uuid)
            .map_err(BackupError::from)?
            .ok_or_else(|| conflict(format!("no backup of {} to fail over from", self.name)))?;
        if meta.deleted {
            return Err(conflict(format!(
                "{} was deleted (backup version {})",
                self.name, meta.version
            )));
        }
        let report = failover_define(ctx.hv, &xml).map_err(|e| match e {
            MigrationError::Refused(_) => MigrateError::Refused(e.to_string()),
            e => MigrateError::Failed(crate::error::client_safe(&e.to_string())),
        })?;
        let uuid = self.uuid.clone();
        let from = self.from.clone();
        ctx.shared.update(|c| ((), c.vm_remove(&from, &uuid)));
        ctx.refresh(&uuid);
        let mut warnings = vec![format!(
            "{} is defined on {} now; if {} comes back with it, undefine it there before \
             starting it anywhere (both running it on the same images destroys its file \
             systems)",
            self.name, ctx.at.host_id, self.from
        )];
        warnings.extend(ctx.backup(&uuid, Cause::Migrate));
        let backup_version = store
            .versions(&uuid)
            .ok()
            .and_then(|v| v.last().map(|v| v.version))
            .filter(|v| *v != meta.version);
        tracing::warn!(%uuid, from = %self.from, to = %ctx.uri(), user = ctx.caller.user(),
            "VM failed over");
        Ok(FailoverResult {
            uuid,
            name: self.name,
            from: self.from,
            to: ctx.uri().to_string(),
            from_version: meta.version,
            backup_version,
            disks: report.disks,
            warnings,
        })
    }
}
