//! Changing a VM's settings (`VmPatch`).

use super::*;
use crate::jobs::JobCtx;
use uvmm_api::VmPatch;
use uvmm_model::change::{apply_settings, notes_element, Changed, Now, Settings};
use uvmm_model::domain::DomainDef;
use uvmm_model::edit::{merge, set_graphics_password};

/// The settings of a patch the definition holds (the model's side of `VmPatch`).
fn settings(p: &VmPatch) -> Settings {
    Settings {
        memory_kib: p.memory_kib,
        vcpus: p.vcpus,
        description: p.description.clone(),
        contact: p.contact.clone(),
        os: p.os.clone(),
        rtc: p.rtc.clone(),
        cpu_model: p.cpu_model.clone(),
        boot: p.boot.clone(),
        vnc: p.vnc,
        vnc_keymap: p.vnc_keymap.clone(),
        vnc_listen: p.vnc_listen.clone(),
        vnc_password: p.vnc_password.is_some(),
        domain_type: p.domain_type.clone(),
    }
}

/// `PATCH /api/v1/vms/{uuid}`: change settings (`VmPatch`), merged into the stored
/// definition; what a running VM cannot take waits for its next start (warning).
pub struct EditVm {
    pub patch: VmPatch,
}

impl VmChange for EditVm {
    fn change(self, ctx: &JobCtx<'_>, vm: Loaded) -> Result<Edited, VmError> {
        let (facts, hv, uuid) = (ctx.facts(), ctx.hv, ctx.at.vm());
        let (patch, limits) = (self.patch, facts.limits);
        let Loaded {
            mut tree,
            def: old,
            snap,
        } = vm;
        let running = snap.state.is_active();
        let now = Now {
            state: snap.state,
            managed_save: snap.managed_save,
            caps: &facts.caps,
        };
        let Changed { def: new, warnings } = apply_settings(&old, &settings(&patch), now)?;
        check_definition(&new, Some(&old), limits)?;
        let password_changed = match &patch.vnc_password {
            Some(p) => {
                if p.chars().count() > 64 || p.chars().any(|c| c.is_control()) {
                    return Err(bad("VNC passwords are at most 64 printable characters"));
                }
                set_graphics_password(&mut tree, "vnc", (!p.is_empty()).then_some(p.as_str()))
            }
            None => false,
        };
        let xml_changed = if password_changed {
            merge(&mut tree, &old, &new).map_err(VmError::from)?;
            hv.define(&tree.to_xml())?;
            true
        } else {
            store(hv, tree, &old, &new)?
        };
        let mut next_boot = false;
        if running && xml_changed {
            let only_notes = DomainDef {
                notes: old.notes.clone(),
                ..new.clone()
            } == old
                && !password_changed;
            if old.notes != new.notes {
                hv.set_live_notes(
                    uuid,
                    new.notes.description.as_deref(),
                    notes_element(&new.notes).as_deref(),
                )?;
            }
            next_boot = !only_notes;
        }
        if let Some(a) = patch.autostart {
            hv.set_autostart(uuid, a)?;
        }
        Ok(Edited {
            notes: vec![],
            warnings,
            written: xml_changed,
            next_boot,
        })
    }
}
