//! Adding and removing drives.

use super::delete::{plan_deletion, who_of, Deletion};
use super::hotplug::{attach_live, detach_live, undo_define, Device};
use super::images::*;
use super::*;
use crate::jobs::Job;
use crate::jobs::JobCtx;
use crate::storage::volumes::make_volume;
use uvmm_api::{DeleteResponse, DiskAddRequest};
use uvmm_api::{DiskSource, KeptVolume};
use uvmm_backup::Cause;
use uvmm_model::change::default_bus;
use uvmm_model::domain::{Disk, DomainDef};
use uvmm_model::validate::{self, HostLimits};

pub(crate) fn add_target(def: &DomainDef, bus: &str) -> Result<String, VmError> {
    let used: Vec<&str> = def.disks.iter().map(|d| d.target.as_str()).collect();
    // The bus is known by now: no free target is the VM's state, not the request's fault.
    uvmm_model::targets::first_free(bus, &used).map_err(VmError::NoFreeTarget)
}

/// `POST /api/v1/vms/{uuid}/disks`: add a drive (a new volume, an existing one, a block
/// device or a CD-ROM).
pub struct AddDisk {
    pub req: DiskAddRequest,
}

impl VmChange for AddDisk {
    fn change(self, ctx: &JobCtx<'_>, vm: Loaded) -> Result<Edited, VmError> {
        let (facts, hv, req) = (ctx.facts(), ctx.hv, self.req);
        let running = vm.running();
        let (tree, old) = (vm.tree, vm.def);
        let mut new = old.clone();
        let mut warnings = Vec::new();
        let device = if matches!(req.source, DiskSource::Cdrom { .. }) {
            "cdrom"
        } else {
            "disk"
        };
        let bus = req.bus.clone().unwrap_or_else(|| default_bus(&old, device));
        uvmm_model::targets::bus_prefix(&bus).map_err(VmError::Bus)?;
        if old.is_xen_pv() && bus != "xen" {
            return Err(VmError::conflict("Xen PV VMs use the xen bus only"));
        }
        let target = add_target(&old, &bus)?;
        let mut created = None;
        let disk = match &req.source {
            DiskSource::New {
                pool,
                size_bytes,
                format,
                name,
                preallocate,
            } => {
                let (format, name) = match name {
                    Some(n) => {
                        let f = uvmm_model::storage::volume_format(n, format.as_deref(), "qcow2")
                            .map_err(|e| bad(e.0))?;
                        (f.to_string(), n.clone())
                    }
                    None => {
                        let f = format.clone().unwrap_or_else(|| "qcow2".into());
                        let n = format!("{}-{target}.{}", old.name, ext_for(&f));
                        (f, n)
                    }
                };
                let vol = make_volume(hv, pool, &name, *size_bytes, &format, *preallocate)?;
                let m = source_of(&vol);
                created = Some(vol);
                Disk {
                    device: "disk".into(),
                    kind: m.kind,
                    target: target.clone(),
                    bus: Some(bus.clone()),
                    source: Some(m.source),
                    format: Some(format),
                    ..Disk::default()
                }
            }
            DiskSource::Volume { volume } => {
                let Image { medium, warning } = resolve_image(hv, facts, volume)?;
                warnings.extend(warning);
                let src = medium.source;
                let users = facts.users_of(&src, "", false);
                let active: Vec<&String> = users
                    .iter()
                    .filter(|u| facts.active_here.contains(u))
                    .collect();
                if !active.is_empty() {
                    // Two VMs writing one image corrupt it; QEMU's image locking would only
                    // notice at the next start, after the change was stored.
                    return Err(VmError::conflict(format!(
                        "{src} is in use by the running VM {}: shut it down (or remove the \
                         drive from it) before giving the image to another VM",
                        active
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                if !users.is_empty() {
                    warnings.push(format!(
                        "{src} is also used by {}: both VMs write to the same image",
                        users.join(", ")
                    ));
                }
                Disk {
                    device: "disk".into(),
                    kind: medium.kind,
                    target: target.clone(),
                    bus: Some(bus.clone()),
                    source: Some(src),
                    format: medium.format,
                    ..Disk::default()
                }
            }
            DiskSource::Block { path } => {
                let volume = client_path(hv, facts, path)?;
                if facts.local && volume.is_none() && !std::path::Path::new(path).exists() {
                    return Err(VmError::not_found(format!(
                        "block device {path} does not exist on this host"
                    )));
                }
                Disk {
                    device: "disk".into(),
                    kind: "block".into(),
                    target: target.clone(),
                    bus: Some(bus.clone()),
                    source: Some(path.clone()),
                    format: Some("raw".into()),
                    ..Disk::default()
                }
            }
            DiskSource::Cdrom { source } => {
                let src = match source {
                    Some(s) => {
                        let image = resolve_image(hv, facts, s)?;
                        warnings.extend(image.warning);
                        Some(image.medium.source)
                    }
                    None => None,
                };
                let format = src.as_ref().map(|_| "raw".to_string());
                Disk {
                    device: "cdrom".into(),
                    kind: "file".into(),
                    target: target.clone(),
                    bus: Some(bus.clone()),
                    source: src,
                    format,
                    readonly: true,
                    ..Disk::default()
                }
            }
        };
        new.disks.push(disk);
        let before = tree.to_xml();
        let live = req.live && running;
        let stored = validate::definition(&new, Some(&old), HostLimits::default())
            .map_err(VmError::from)
            .and_then(|_| store(hv, tree, &old, &new))
            .and_then(|_| match live {
                true => attach_live(hv, ctx.at.vm(), Device::Disk(&target))
                    .map_err(|e| undo_define(hv, &before, e)),
                false => Ok(()),
            });
        if let Err(e) = stored {
            if let Some(v) = created {
                let _ = hv.delete_volume(&v.pool, &v.def.name);
            }
            return Err(e);
        }
        // The pool's listing and figures show the new volume with the answer, not a pool
        // round later.
        if created.is_some() {
            ctx.refresh_pools();
        }
        let added = vec![format!(
            "added drive {target}{}",
            if live {
                " (attached to the running VM)"
            } else {
                ""
            }
        )];
        Ok(Edited::written(added, warnings, running && !live))
    }
}

/// `DELETE /api/v1/vms/{uuid}/disks/{target}`: detach a drive, and delete its volume when
/// asked and allowed.
pub struct RemoveDisk {
    pub target: String,
    pub delete_volume: bool,
    /// Detach it from the running VM too (hot-unplug), first.
    pub live: bool,
    pub if_match: Option<String>,
}

impl Job for RemoveDisk {
    type Output = DeleteResponse;
    type Error = VmError;

    fn run(self, ctx: &JobCtx<'_>) -> Result<DeleteResponse, VmError> {
        let (facts, uuid) = (ctx.facts(), ctx.at.vm());
        let (target, if_match) = (self.target.as_str(), self.if_match.as_deref());
        let delete_volume = self.delete_volume;
        let hv = ctx.hv;
        let loaded = load(hv, uuid, if_match)?;
        let running = loaded.running();
        let (tree, old) = (loaded.tree, loaded.def);
        let disk = old
            .disks
            .iter()
            .find(|d| d.target == target)
            .cloned()
            .ok_or_else(|| VmError::not_found(format!("{} has no drive {target}", old.name)))?;
        let mut new = old.clone();
        new.disks.retain(|d| d.target != target);
        let Deletion {
            delete: to_delete,
            mut kept,
        } = if delete_volume {
            plan_deletion(hv, facts, &who_of(&old, facts), &[&disk])?
        } else {
            Deletion {
                delete: vec![],
                kept: disk
                    .source
                    .iter()
                    .map(|p| KeptVolume {
                        path: p.clone(),
                        reason: "kept (detached only)".into(),
                    })
                    .collect(),
            }
        };
        let live = self.live && running;
        if live {
            detach_live(hv, uuid, Device::Disk(target))?;
        }
        store(hv, tree, &old, &new)?;
        let mut deleted = Vec::new();
        for v in to_delete {
            let path = v.def.path.clone().unwrap_or_default();
            match hv.delete_volume(&v.pool, &v.def.name) {
                Ok(()) => deleted.push(path),
                Err(e) => kept.push(KeptVolume {
                    path,
                    reason: format!("deleting failed: {e}"),
                }),
            }
        }
        let mut warnings = Vec::new();
        if running && !live {
            warnings.push(NEXT_BOOT.into());
        }
        warnings.extend(ctx.backup(uuid, Cause::Edit));
        ctx.refresh(uuid);
        if !deleted.is_empty() {
            ctx.refresh_pools();
        }
        Ok(uvmm_api::DeleteResponse {
            name: old.name,
            uuid: uuid.to_string(),
            deleted,
            kept,
            warnings,
        })
    }
}
