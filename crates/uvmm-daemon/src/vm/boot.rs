//! "Set as boot medium".

use super::images::inspect;
use super::*;
use crate::jobs::Job;
use crate::jobs::JobCtx;
use uvmm_api::VmChangeResponse;
use uvmm_backup::Cause;
use uvmm_model::boot::{pygrub_warning, read_partition_table, set_boot_medium, BootChange};
use uvmm_model::edit::retarget_disks;

/// `POST /api/v1/vms/{uuid}/disks/{target}/boot`: set as boot medium. For Xen PV the
/// drive becomes the first disk and its image is checked for pygrub (warnings); for HVM it
/// gets boot order 1.
pub struct SetBoot {
    pub target: String,
    pub if_match: Option<String>,
}

impl Job for SetBoot {
    type Output = VmChangeResponse;
    type Error = VmError;

    fn run(self, ctx: &JobCtx<'_>) -> Result<VmChangeResponse, VmError> {
        let (facts, uuid) = (ctx.facts(), ctx.at.vm());
        let (target, if_match) = (self.target.as_str(), self.if_match.as_deref());
        let hv = ctx.hv;
        let loaded = load(hv, uuid, if_match)?;
        let running = loaded.running();
        let (tree, old) = (loaded.tree, loaded.def);
        let mut new = old.clone();
        let change = set_boot_medium(&mut new, target, running).map_err(|e| match e {
            uvmm_model::boot::BootError::NoDrive(_) => VmError::not_found(e.to_string()),
            uvmm_model::boot::BootError::Running => VmError::conflict(e.to_string()),
        })?;
        let mut warnings = Vec::new();
        if old.is_xen_pv() {
            let disk = new.disks[0].clone();
            match inspect(hv, facts, &disk) {
                Ok(bytes) => warnings.extend(pygrub_warning(&read_partition_table(&bytes))),
                Err(why) => warnings.push(format!(
                    "the image of {target} could not be inspected for pygrub: {why}"
                )),
            }
        }
        match change {
            BootChange::Unchanged => {}
            BootChange::Changed => {
                store(hv, tree, &old, &new)?;
                if running {
                    warnings.push(NEXT_BOOT.into());
                }
            }
            BootChange::Retargeted(renames) => {
                let mut tree = tree;
                retarget_disks(&mut tree, &renames);
                hv.define(&tree.to_xml())?;
            }
        }
        warnings.extend(ctx.backup(uuid, Cause::Edit));
        ctx.refresh(uuid);
        ctx.changed(uuid, vec![], warnings)
    }
}
