//! Inserting and ejecting media, also live.

use super::images::resolve_image;
use super::*;
use crate::jobs::JobCtx;
use uvmm_model::change::with_medium;
use uvmm_model::edit::merge;
use uvmm_model::xml;

/// The `<disk>` element of `target` in a domain tree, as XML for `update_device`.
pub(crate) fn drive_xml(tree: &xml::Element, target: &str) -> Result<String, VmError> {
    tree.child("devices")
        .and_then(|d| {
            d.elements().find(|e| {
                e.name == "disk" && e.find("target").and_then(|t| t.attr("dev")) == Some(target)
            })
        })
        .map(|e| e.to_xml())
        .ok_or_else(|| VmError::internal("merged drive vanished"))
}

pub(crate) fn device_words(device: &str) -> &str {
    match device {
        "cdrom" => "a CD-ROM drive",
        "floppy" => "a floppy drive",
        "disk" => "a hard disk",
        other => other,
    }
}

/// `PUT /api/v1/vms/{uuid}/disks/{target}/media`: insert (`source`) or eject (`None`), also
/// live.
///
/// A running VM has two definitions: the live one and the persistent one for its next
/// start, which may differ (a drive added or removed, a boot order changed while it
/// runs). Each is changed from its own XML: libvirt refuses a device taken from one into
/// the other ("per-device boot elements cannot be used together with os/boot elements").
/// A drive in only one of them is changed there, and the answer says so.
pub struct ChangeMedia {
    pub target: String,
    pub source: Option<String>,
}

impl VmChange for ChangeMedia {
    fn change(self, ctx: &JobCtx<'_>, vm: Loaded) -> Result<Edited, VmError> {
        let (facts, hv, uuid) = (ctx.facts(), ctx.hv, ctx.at.vm());
        let (target, source) = (self.target.as_str(), self.source.as_deref());
        let Loaded {
            tree,
            def: old,
            snap,
        } = vm;
        let running = snap.state.is_active();
        let live = if running {
            Some(parse_tree(&snap.xml)?)
        } else {
            None
        };
        // A transient VM has no definition for a next start: only the running one changes.
        let stored_pos = old
            .disks
            .iter()
            .position(|d| d.target == target)
            .filter(|_| snap.persistent || !running);
        let live_pos = live
            .as_ref()
            .and_then(|l| l.def.disks.iter().position(|x| x.target == target));
        let stored_drive = stored_pos.map(|p| &old.disks[p]);
        let live_drive = live.as_ref().zip(live_pos).map(|(l, p)| &l.def.disks[p]);
        let drive = match (live_drive, stored_drive) {
            (None, None) => {
                return Err(VmError::not_found(format!(
                    "{} has no drive {target}",
                    old.name
                )))
            }
            (Some(l), Some(s)) if l.device != s.device => {
                return Err(VmError::conflict(format!(
                    "{target} is {} in the running VM but {} in its definition for the next start; change the medium after a restart",
                    device_words(&l.device),
                    device_words(&s.device)
                )))
            }
            (Some(d), _) | (None, Some(d)) => d,
        };
        if !matches!(drive.device.as_str(), "cdrom" | "floppy") {
            return Err(VmError::conflict(format!(
                "{target} is a hard disk; media can only be changed in CD-ROM and floppy drives"
            )));
        }
        let mut warnings = Vec::new();
        let medium = match source {
            Some(s) => {
                let image = resolve_image(hv, facts, s)?;
                warnings.extend(image.warning);
                Some(image.medium)
            }
            None => None,
        };
        // The persistent definition first, then the running VM; if the running VM refuses
        // (a locked tray, say), the definition goes back to what it was.
        let mut defined_old = None;
        if let Some(pos) = stored_pos {
            let new = with_medium(&old, pos, medium.as_ref());
            if new != old {
                let mut merged = tree.clone();
                merge(&mut merged, &old, &new).map_err(VmError::from)?;
                if running && live_pos.is_none() {
                    // Only the next start has this drive: nothing to change live.
                    hv.define(&merged.to_xml())?;
                } else if running {
                    hv.update_device(uuid, &drive_xml(&merged, target)?, false)?;
                    defined_old = Some(drive_xml(&tree, target)?);
                } else {
                    hv.define(&merged.to_xml())?;
                }
            }
        }
        if let (Some(live), Some(pos)) = (&live, live_pos) {
            let (live_tree, live_def) = (&live.tree, &live.def);
            let new = with_medium(live_def, pos, medium.as_ref());
            if new != *live_def {
                let mut merged = live_tree.clone();
                merge(&mut merged, live_def, &new).map_err(VmError::from)?;
                if let Err(e) = hv.update_device(uuid, &drive_xml(&merged, target)?, true) {
                    if let Some(back) = defined_old {
                        if let Err(undo) = hv.update_device(uuid, &back, false) {
                            tracing::error!(%uuid, "cannot restore drive {target} of the persistent definition: {undo}");
                        }
                    }
                    return Err(e.into());
                }
            }
        }
        match (live_pos.is_some(), stored_pos.is_some()) {
            (true, false) if snap.persistent => warnings.push(format!(
                "{target} is not in the definition for the next start (it was removed while the VM runs): the medium was changed in the running VM only"
            )),
            (false, true) if running => warnings.push(format!(
                "{target} was added while the VM runs and is not in the running VM yet: the medium is there from its next start"
            )),
            _ => {}
        }
        Ok(Edited::written(vec![], warnings, false))
    }
}
