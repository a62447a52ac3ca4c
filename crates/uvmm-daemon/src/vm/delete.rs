//! Deleting a VM and the images that go with it.

use super::*;
use crate::hosts::facts::HostFacts;
use crate::jobs::Job;
use crate::jobs::JobCtx;
use uvmm_api::KeptVolume;
use uvmm_libvirt::{Hypervisor, VolumeInfo};
use uvmm_model::domain::{Disk, DomainDef};
use uvmm_model::storage::{delete_refusal, pool_is_shared};

/// Which volumes may go with a VM or drive: (deleted candidates, kept with reasons).
/// Which volumes go with a VM or drive, and which stay (with the reason).
pub(crate) struct Deletion {
    pub delete: Vec<VolumeInfo>,
    pub kept: Vec<KeptVolume>,
}

pub(crate) fn plan_deletion(
    hv: &dyn Hypervisor,
    facts: &HostFacts,
    who: &str,
    disks: &[&Disk],
) -> Result<Deletion, VmError> {
    let pools = hv.pools()?;
    let mut delete = Vec::new();
    let mut kept = Vec::new();
    for d in disks {
        let Some(src) = &d.source else { continue };
        let vol = match d.kind.as_str() {
            "volume" => {
                let (pool, name) = src.split_once('/').unwrap_or(("", src));
                hv.volumes(pool)
                    .ok()
                    .and_then(|vs| vs.into_iter().find(|v| v.def.name == name))
            }
            _ => hv.volume_by_path(src)?,
        };
        let path = vol
            .as_ref()
            .and_then(|v| v.def.path.clone())
            .unwrap_or_else(|| src.clone());
        let pool_kind = vol
            .as_ref()
            .and_then(|v| pools.iter().find(|p| p.def.name == v.pool))
            .map(|p| p.def.kind.clone());
        let shared = pool_kind.as_deref().is_some_and(pool_is_shared);
        let users = facts.users_of(&path, who, shared);
        match delete_refusal(pool_kind.as_deref(), &users) {
            None => delete.push(vol.expect("a pool kind implies a volume")),
            Some(reason) => kept.push(KeptVolume { path, reason }),
        }
    }
    Ok(Deletion { delete, kept })
}

/// `DELETE /api/v1/vms/{uuid}`: `volumes` is `all`, `none` or a list of paths.
pub struct DeleteVm {
    pub volumes: String,
    pub if_match: Option<String>,
}

impl Job for DeleteVm {
    type Output = uvmm_api::DeleteResponse;
    type Error = VmError;

    fn run(self, ctx: &JobCtx<'_>) -> Result<uvmm_api::DeleteResponse, VmError> {
        let (facts, uuid) = (ctx.facts(), ctx.at.vm());
        let (volumes, if_match) = (self.volumes.as_str(), self.if_match.as_deref());
        let hv = ctx.hv;
        let loaded = load(hv, uuid, if_match)?;
        let (def, running) = (loaded.def.clone(), loaded.running());
        if running {
            return Err(VmError::conflict(format!(
                "{} is running: stop it before deleting it",
                def.name
            )));
        }
        let mut kept = Vec::new();
        let chosen: Vec<&Disk> = match volumes {
            "none" | "" => {
                kept.extend(def.disks.iter().filter_map(|d| {
                    d.source.clone().map(|p| KeptVolume {
                        path: p,
                        reason: "kept as asked (--volumes none)".into(),
                    })
                }));
                vec![]
            }
            "all" => {
                for d in def.disks.iter().filter(|d| d.device != "disk") {
                    if let Some(p) = &d.source {
                        kept.push(KeptVolume {
                            path: p.clone(),
                            reason: format!(
                                "{} media are not deleted by 'all'; name the path to delete it",
                                d.device
                            ),
                        });
                    }
                }
                def.disks.iter().filter(|d| d.device == "disk").collect()
            }
            list => {
                let wanted: Vec<&str> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                for w in &wanted {
                    if !def.disks.iter().any(|d| d.source.as_deref() == Some(*w)) {
                        // Which paths are images depends on the VM: 409, like other
                        // requests that do not fit the VM as it is.
                        return Err(VmError::conflict(format!(
                            "{w} is not an image of {}",
                            def.name
                        )));
                    }
                }
                for d in &def.disks {
                    if let Some(p) = &d.source {
                        if !wanted.contains(&p.as_str()) {
                            kept.push(KeptVolume {
                                path: p.clone(),
                                reason: "not named in --volumes".into(),
                            });
                        }
                    }
                }
                def.disks
                    .iter()
                    .filter(|d| d.source.as_deref().is_some_and(|s| wanted.contains(&s)))
                    .collect()
            }
        };
        let plan = plan_deletion(hv, facts, &who_of(&def, facts), &chosen)?;
        let to_delete = plan.delete;
        kept.extend(plan.kept);
        // The last definition goes into the backup store before it goes from libvirt.
        let backup_warning = ctx.backup_deleted(uuid);
        // Undefine first: if that fails, no image is gone.
        hv.undefine(uuid)?;
        if let Some(w) = &backup_warning {
            tracing::error!(%uuid, "{w}");
        }
        let mut deleted = Vec::new();
        for v in to_delete {
            let path = v
                .def
                .path
                .clone()
                .unwrap_or_else(|| format!("{}/{}", v.pool, v.def.name));
            match hv.delete_volume(&v.pool, &v.def.name) {
                Ok(()) => deleted.push(path),
                Err(e) => kept.push(KeptVolume {
                    path,
                    reason: format!("deleting failed: {e}"),
                }),
            }
        }
        ctx.refresh(uuid);
        if !deleted.is_empty() {
            ctx.refresh_pools();
        }
        Ok(uvmm_api::DeleteResponse {
            name: def.name,
            uuid: uuid.to_string(),
            deleted,
            kept,
            warnings: backup_warning.into_iter().collect(),
        })
    }
}

pub(crate) fn who_of(def: &DomainDef, facts: &HostFacts) -> String {
    format!("{}@{}", def.name, facts.host_id)
}
