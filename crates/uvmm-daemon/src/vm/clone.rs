//! `POST /api/v1/vms/{uuid}/clone`: a new VM from a shut-off one on the same host — every
//! writable disk copied (progress: the copies' allocation, read over a second connection)
//! or linked (a qcow2 overlay backed by the source's image) — with a new name, a new UUID
//! and new MACs (`uvmm_model::clone::rewrite_for_clone`: VNC port back to auto, per-VM
//! files dropped, notes kept). A task; cancelling lets the copy under way finish (libvirt
//! cannot interrupt it), then deletes every image made and defines nothing.
//!
//! With `target_host` (full copies only) the clone made on the source's host is then moved
//! there offline (`clone_move.rs`): the clone ends on one host or on none.

use super::VmError;
use crate::cache::{Cache, HostEntry, VmEntry};
use crate::error::Error;
use crate::ids::{random_mac, random_uuid};
use crate::jobs::tasks::Long;
use crate::jobs::{Job, JobCtx, JobError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uvmm_api::{CancelMode, CloneModeName, CloneRequest, TaskKind, VmChangeResponse};
use uvmm_backup::Cause;
use uvmm_libvirt::devices::{clone_volume_with_progress, linked_clone_volume};
use uvmm_libvirt::{Hypervisor, VolumeInfo};
use uvmm_model::clone::{rewrite_for_clone, CloneSpec};
use uvmm_model::{validate, VmState};

pub struct CloneVm {
    req: CloneRequest,
    /// From `prepare`: the writable disks (target, image path, format) and the NIC count.
    disks: Vec<(String, String, Option<String>)>,
    nics: usize,
    domain_type: String,
    /// The other host the clone goes to (its URI), from `prepare`.
    to: Option<String>,
}

impl CloneVm {
    pub fn new(req: CloneRequest) -> CloneVm {
        CloneVm {
            req,
            disks: vec![],
            nics: 0,
            domain_type: String::new(),
            to: None,
        }
    }
}

fn conflict(why: String) -> Error {
    VmError::Conflict { why }.into()
}

fn libvirt(e: uvmm_libvirt::LibvirtError) -> Error {
    VmError::Libvirt(crate::error::from_libvirt(e)).into()
}

impl Job for CloneVm {
    type Output = VmChangeResponse;
    type Error = Error;

    fn prepare(&mut self, cache: &Cache, h: &HostEntry, vm: Option<&VmEntry>) -> Result<(), Error> {
        let vm = vm.ok_or_else(|| VmError::internal("no VM"))?;
        validate::vm_name(&self.req.name).map_err(VmError::from)?;
        if vm.state != VmState::Shutoff || !vm.persistent {
            return Err(conflict(format!(
                "{} is {:?}: only a shut-off persistent VM is cloned (its images must not \
                 change while they are copied, or ever, for linked clones)",
                vm.name, vm.state
            )));
        }
        // The clone's name must be free where it is made and, for a move, where it ends.
        let name_free = |host: &HostEntry| {
            if host.vms().values().any(|v| v.name == self.req.name) {
                return Err(conflict(format!(
                    "a VM called {} exists on {} already",
                    self.req.name, host.id
                )));
            }
            Ok(())
        };
        name_free(h)?;
        if let Some(to) = &self.req.target_host {
            let t = cache.resolve_host(to)?;
            if t.uri != h.uri {
                if self.req.mode == CloneModeName::Linked {
                    return Err(conflict(format!(
                        "a linked clone's images are overlays backed by {}'s images on {}: \
                         it cannot be on another host; make a full copy (mode copy)",
                        vm.name, h.id
                    )));
                }
                t.ensure_available()?;
                name_free(t)?;
                self.to = Some(t.uri.clone());
            }
        }
        self.disks = vm
            .def
            .disks
            .iter()
            .filter(|d| d.device == "disk" && !d.readonly)
            .filter_map(|d| Some((d.target.clone(), d.source.clone()?, d.format.clone())))
            .collect();
        self.nics = vm.def.nics.len();
        self.domain_type = vm.def.domain_type.clone();
        Ok(())
    }

    fn long(&self) -> Option<Long> {
        let to = self
            .to
            .as_ref()
            .map_or(String::new(), |t| format!(" on {t}"));
        Some(Long {
            kind: TaskKind::VmClone,
            cancel: CancelMode::Undo,
            target: Some(format!("-> {}{to}", self.req.name)),
        })
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<VmChangeResponse, Error> {
        let (hv, uuid) = (ctx.hv, ctx.at.vm());
        // Every disk must be a pool volume: the copies are made by the pool.
        let mut sources = Vec::new();
        for (target, path, _) in &self.disks {
            let vol = hv.volume_by_path(path).map_err(libvirt)?.ok_or_else(|| {
                conflict(format!(
                    "{target} ({path}) is not a volume of a storage pool: uvmm clones pool \
                     volumes only"
                ))
            })?;
            sources.push((target.clone(), path.clone(), vol));
        }
        let total: u64 = sources
            .iter()
            .map(|(_, _, v)| v.def.allocation.max(1))
            .sum();
        let monitor = match self.req.mode {
            CloneModeName::Copy => Some(connect(ctx)?),
            CloneModeName::Linked => None,
        };
        let mut made: Vec<VolumeInfo> = Vec::new();
        let undo = |made: &[VolumeInfo]| {
            for v in made {
                if let Err(e) = hv.delete_volume(&v.pool, &v.def.name) {
                    tracing::error!(pool = %v.pool, volume = %v.def.name, "cannot delete a clone's image: {e}");
                }
            }
            ctx.refresh_pools();
        };
        let mut map = HashMap::new();
        let mut done_before = 0u64;
        for (target, path, src) in &sources {
            let ext = if src.def.format.as_deref() == Some("qcow2")
                || self.req.mode == CloneModeName::Linked
            {
                "qcow2"
            } else {
                "img"
            };
            let name = format!("{}-{target}.{ext}", self.req.name);
            let made_one = match &monitor {
                Some(mon) => clone_volume_with_progress(
                    hv,
                    mon.as_ref(),
                    &src.pool,
                    &src.def.name,
                    &name,
                    Duration::from_millis(500),
                    &mut |d, _| ctx.report(done_before + d, total, None),
                ),
                None => linked_clone_volume(hv, &src.pool, &src.def.name, &name),
            };
            match made_one {
                Ok(v) => {
                    map.insert(path.clone(), v.def.path.clone().unwrap_or_default());
                    made.push(v);
                }
                Err(e) => {
                    undo(&made);
                    return Err(libvirt(e));
                }
            }
            done_before += src.def.allocation.max(1);
            if ctx.cancelled() {
                undo(&made);
                return Err(JobError::Cancelled.into());
            }
        }
        let new_uuid = random_uuid().map_err(VmError::from)?;
        let new_macs = if self.req.keep_macs {
            None
        } else {
            let macs: Result<Vec<String>, _> = (0..self.nics)
                .map(|_| random_mac(&self.domain_type))
                .collect();
            Some(macs.map_err(VmError::from)?)
        };
        let defined = hv
            .domain_xml(uuid, true, true)
            .map_err(libvirt)
            .and_then(|xml| {
                let spec = CloneSpec {
                    name: self.req.name.clone(),
                    uuid: new_uuid.clone(),
                    new_macs,
                    disks: map,
                };
                rewrite_for_clone(&xml, &spec)
                    .map_err(|e| conflict(format!("cannot clone this definition: {e}")))
            })
            .and_then(|rw| hv.define(&rw.xml).map_err(libvirt).map(|_| rw));
        let rw = match defined {
            Ok(rw) => rw,
            Err(e) => {
                undo(&made);
                return Err(e);
            }
        };
        let mut notes: Vec<String> = rw
            .disks
            .iter()
            .map(|(t, _, new)| format!("{t}: {new}"))
            .collect();
        notes.extend(rw.macs.iter().map(|(o, n)| format!("MAC {o} -> {n}")));
        notes.extend(rw.dropped.iter().map(|d| format!("not copied: {d}")));
        if let Some(to) = &self.to {
            if ctx.cancelled() {
                super::clone_move::discard(ctx, &new_uuid, &made);
                return Err(JobError::Cancelled.into());
            }
            return super::clone_move::move_clone(ctx, to, &new_uuid, &made, notes);
        }
        let mut warnings: Vec<String> = ctx.backup(&new_uuid, Cause::Create).into_iter().collect();
        if self.req.mode == CloneModeName::Linked {
            warnings.push(format!(
                "{} reads the images of its source: keep the source shut off and its images \
                 unchanged (no start, no snapshot) as long as the clone exists",
                self.req.name
            ));
        }
        ctx.refresh(&new_uuid);
        ctx.refresh_pools();
        Ok(ctx.changed(&new_uuid, notes, warnings)?)
    }
}

fn connect(ctx: &JobCtx<'_>) -> Result<Arc<dyn Hypervisor>, Error> {
    let ignore: uvmm_libvirt::EventSink = Arc::new(|_| {});
    ctx.shared
        .connector
        .connect(ctx.uri(), ignore)
        .map_err(libvirt)
}
