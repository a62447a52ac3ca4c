//! "Set as boot medium".

use super::images::inspect;
use super::*;
use crate::hosts::facts::HostFacts;
use crate::jobs::JobCtx;
use uvmm_model::boot::{pygrub_warning, read_partition_table, set_boot_medium, BootChange};
use uvmm_model::edit::retarget_disks;

/// The job of `POST /api/v1/vms/{uuid}/disks/{target}/boot`. Returns warnings.
pub fn set_boot(
    ctx: &JobCtx<'_>,
    facts: &HostFacts,
    uuid: &str,
    target: &str,
    if_match: Option<&str>,
) -> Result<Vec<String>, VmError> {
    let hv = ctx.hv;
    let (tree, old, running) = load(hv, uuid, if_match)?;
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
    warnings.extend(ctx.backup(uuid, "edit"));
    ctx.refresh(uuid);
    Ok(warnings)
}
