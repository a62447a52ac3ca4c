//! Changing a VM's settings (`VmPatch`).

use super::*;
use crate::jobs::Job;
use crate::jobs::JobCtx;
use uvmm_api::VmChangeResponse;
use uvmm_api::VmPatch;
use uvmm_backup::Cause;
use uvmm_model::caps::HostCaps;
use uvmm_model::domain::{DomainDef, Graphics, Notes};
use uvmm_model::edit::{merge, set_graphics_password};
use uvmm_model::xml;

pub(crate) fn notes_element(n: &Notes) -> Option<String> {
    if n.description.is_none() && n.contact.is_none() && n.os.is_none() {
        return None;
    }
    let mut el = xml::Element::new("notes");
    for (k, v) in [
        ("description", &n.description),
        ("contact", &n.contact),
        ("os", &n.os),
    ] {
        if let Some(v) = v {
            el.push_child(xml::Element::new(k).with_text(v.clone()));
        }
    }
    Some(el.to_xml())
}

pub(crate) fn opt_text(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_string())
}

/// Switch a shut-off QEMU/KVM VM between `kvm` and `qemu` (TCG), where the host offers
/// the wanted type for the VM's OS type and architecture. Returns a warning when the CPU
/// model had to go (host-model and host-passthrough need KVM).
pub(crate) fn set_domain_type(
    new: &mut DomainDef,
    wanted: &str,
    snap: &uvmm_libvirt::DomainSnapshot,
    caps: &HostCaps,
) -> Result<Option<String>, VmError> {
    if !matches!(wanted, "kvm" | "qemu") {
        return Err(bad(format!(
            "domain type '{wanted}' (expected qemu or kvm)"
        )));
    }
    if new.domain_type == wanted {
        return Ok(None);
    }
    // Well-formed, but not for this VM: 409 (the status rule of docs/api.md).
    if !matches!(new.domain_type.as_str(), "kvm" | "qemu") {
        return Err(VmError::conflict(format!(
            "{} is a {} domain: only QEMU/KVM VMs switch between kvm and qemu",
            new.name, new.domain_type
        )));
    }
    if snap.state.is_active() {
        return Err(VmError::conflict(format!(
            "{} is {}: its domain type changes only while it is shut off",
            new.name, snap.state
        )));
    }
    if snap.managed_save {
        return Err(VmError::conflict(format!(
            "{} has a saved state (suspended) that belongs to its {} domain: start it and shut it down before changing the domain type",
            new.name, new.domain_type
        )));
    }
    let arch = new.arch.as_deref();
    let offered = caps.guests.iter().any(|g| {
        g.os_type == new.os_type
            && arch.is_none_or(|a| g.arch == a)
            && g.domain_types.iter().any(|t| t == wanted)
    });
    if !offered {
        let what: Vec<String> = caps
            .guests
            .iter()
            .filter(|g| g.os_type == new.os_type && arch.is_none_or(|a| g.arch == a))
            .flat_map(|g| g.domain_types.clone())
            .collect();
        return Err(VmError::conflict(format!(
            "this host offers no {wanted} domains for {}/{} (it offers: {})",
            new.os_type,
            arch.unwrap_or("any architecture"),
            if what.is_empty() {
                "none".to_string()
            } else {
                what.join(", ")
            }
        )));
    }
    new.domain_type = wanted.to_string();
    // As for new VMs: these CPU models need KVM, emulation takes QEMU's default CPU.
    let cpu = new.cpu_model.clone();
    if wanted == "qemu" && matches!(cpu.as_deref(), Some("host-model" | "host-passthrough")) {
        new.cpu_model = None;
        return Ok(Some(format!(
            "CPU model {} needs KVM; the VM now gets the hypervisor's default CPU",
            cpu.unwrap_or_default()
        )));
    }
    Ok(None)
}

/// `PATCH /api/v1/vms/{uuid}`: change settings (`VmPatch`), merged into the stored
/// definition; what a running VM cannot take waits for its next start (warning).
pub struct EditVm {
    pub patch: VmPatch,
    pub if_match: Option<String>,
}

impl Job for EditVm {
    type Output = VmChangeResponse;
    type Error = VmError;

    fn run(self, ctx: &JobCtx<'_>) -> Result<VmChangeResponse, VmError> {
        let (facts, uuid) = (ctx.facts(), ctx.at.vm());
        let (patch, if_match) = (self.patch, self.if_match.as_deref());
        let hv = ctx.hv;
        let limits = facts.limits;
        let (mut tree, old, snap) = load_with_snapshot(hv, uuid, if_match)?;
        let running = snap.state.is_active();
        let mut new = old.clone();
        let mut warnings = Vec::new();
        if let Some(m) = patch.memory_kib {
            // Keeps NUMA cells, <maxMemory> and memory devices consistent with the new total,
            // or says why it cannot.
            uvmm_model::memory::set_total(&mut new, m).map_err(VmError::from)?;
        }
        if let Some(t) = &patch.domain_type {
            warnings.extend(set_domain_type(&mut new, t, &snap, &facts.caps)?);
        }
        if let Some(v) = patch.vcpus {
            new.vcpus = v;
        }
        if let Some(d) = &patch.description {
            new.notes.description = opt_text(d);
        }
        if let Some(c) = &patch.contact {
            new.notes.contact = opt_text(c);
        }
        if let Some(o) = &patch.os {
            new.notes.os = opt_text(o);
        }
        if let Some(r) = &patch.rtc {
            if !matches!(r.as_str(), "utc" | "localtime") {
                return Err(bad(format!("rtc '{r}' (expected utc or localtime)")));
            }
            new.rtc = Some(r.clone());
        }
        if let Some(c) = &patch.cpu_model {
            new.cpu_model = opt_text(c);
        }
        if let Some(boot) = &patch.boot {
            if old.is_xen_pv() {
                return Err(VmError::conflict("Xen PV VMs boot from their first disk (pygrub); use `vm disk boot` instead of a boot order"));
            }
            new.boot_devices = boot.clone();
            for d in &mut new.disks {
                d.boot_order = None;
            }
            for n in &mut new.nics {
                n.boot_order = None;
            }
            // libvirt refuses <os><boot> next to any per-device order, <hostdev> ones too.
            new.other_boot.clear();
        }
        if let Some(on) = patch.vnc {
            let has = new.graphics.iter().any(|g| g.kind == "vnc");
            if on && !has {
                new.graphics.push(Graphics {
                    kind: "vnc".into(),
                    autoport: true,
                    listen: Some("127.0.0.1".into()),
                    ..Graphics::default()
                });
            } else if !on {
                new.graphics.retain(|g| g.kind != "vnc");
            }
        }
        if patch.vnc_keymap.is_some() || patch.vnc_listen.is_some() || patch.vnc_password.is_some()
        {
            let g = new
                .graphics
                .iter_mut()
                .find(|g| g.kind == "vnc")
                .ok_or_else(|| {
                    VmError::conflict("the VM has no VNC console; turn it on with vnc=on first")
                })?;
            if let Some(k) = &patch.vnc_keymap {
                g.keymap = opt_text(k);
            }
            if let Some(l) = &patch.vnc_listen {
                g.listen = opt_text(l);
            }
        }
        check_definition(&new, Some(&old), limits)?;
        let password_changed = match &patch.vnc_password {
            Some(p) => {
                if p.chars().count() > 64 || p.chars().any(|c| c.is_control()) {
                    return Err(bad("VNC passwords are at most 64 printable characters"));
                }
                set_graphics_password(&mut tree, "vnc", opt_text(p).as_deref())
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
            if !only_notes {
                warnings.push(NEXT_BOOT.into());
            }
        }
        if let Some(a) = patch.autostart {
            hv.set_autostart(uuid, a)?;
        }
        if xml_changed {
            warnings.extend(ctx.backup(uuid, Cause::Edit));
        }
        ctx.refresh(uuid);
        ctx.changed(uuid, vec![], warnings)
    }
}
