//! "Set as boot medium".

use super::images::inspect;
use super::*;
use crate::jobs::JobCtx;
use uvmm_model::boot::{pygrub_warning, read_partition_table, set_boot_medium, BootChange};
use uvmm_model::edit::retarget_disks;

/// `POST /api/v1/vms/{uuid}/disks/{target}/boot`: set as boot medium. For Xen PV the
/// drive becomes the first disk and its image is checked for pygrub (warnings); for HVM it
/// gets boot order 1.
pub struct SetBoot {
    pub target: String,
}

impl VmChange for SetBoot {
    fn change(self, ctx: &JobCtx<'_>, vm: Loaded) -> Result<Edited, VmError> {
        let (facts, hv, target) = (ctx.facts(), ctx.hv, self.target.as_str());
        let running = vm.running();
        let (tree, old) = (vm.tree, vm.def);
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
        let next_boot = running && matches!(change, BootChange::Changed);
        match change {
            BootChange::Unchanged => {}
            BootChange::Changed => {
                store(hv, tree, &old, &new)?;
            }
            BootChange::Retargeted(renames) => {
                let mut tree = tree;
                retarget_disks(&mut tree, &renames);
                hv.define(&tree.to_xml())?;
            }
        }
        Ok(Edited::written(vec![], warnings, next_boot))
    }
}
