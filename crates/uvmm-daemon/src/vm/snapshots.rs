//! Snapshots (`/api/v1/vms/{uuid}/snapshots`) and rename (`POST .../rename`). The libvirt
//! half (`uvmm_libvirt::snapshot`, `Hypervisor::snapshot_*`) does the work and keeps the
//! promise that a delete loses no data of another snapshot or of the current state (an
//! external one is merged, or the delete is refused); these jobs check against the cache,
//! record the definition afterwards (an external snapshot re-points the disks) and answer.
//!
//! A snapshot with memory runs as a task (the memory is written out); cancelling it lets
//! libvirt finish and deletes the snapshot again (libvirt cannot interrupt it). Revert and
//! delete always run as tasks (a revert loads memory, a delete may merge images); they
//! cannot be cancelled (`CancelMode::None`).

use super::VmError;
use crate::cache::{Cache, HostEntry, VmEntry};
use crate::error::Error;
use crate::jobs::tasks::{Long, Watch};
use crate::jobs::{Job, JobCtx, JobError};
use std::time::Duration;
use uvmm_api::{
    CancelMode, CreateSnapshotRequest, Snapshot, SnapshotDeleted, SnapshotKindName, TaskKind,
    VmChangeResponse,
};
use uvmm_backup::{Cause, SnapshotEvent, SnapshotNote};
use uvmm_libvirt::snapshot::{parents_first, SnapshotKind};
use uvmm_libvirt::{SnapshotDeleteOutcome, SnapshotInfo, SnapshotSpec};
use uvmm_model::{validate, VmState};

fn view(list: &[SnapshotInfo]) -> Vec<Snapshot> {
    let ordered = parents_first(list);
    let mut depth: std::collections::HashMap<String, u32> = Default::default();
    ordered
        .into_iter()
        .map(|s| {
            let d = s
                .parent
                .as_ref()
                .and_then(|p| depth.get(p))
                .map_or(0, |d| d + 1);
            depth.insert(s.name.clone(), d);
            Snapshot {
                created: humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH
                        + Duration::from_secs(u64::try_from(s.created).unwrap_or(0)),
                )
                .to_string(),
                kind: match s.kind {
                    SnapshotKind::Internal => SnapshotKindName::Internal,
                    SnapshotKind::External => SnapshotKindName::External,
                },
                name: s.name,
                parent: s.parent,
                current: s.current,
                state: s.state,
                description: s.description,
                memory: s.memory,
                depth: d,
            }
        })
        .collect()
}

/// The longest an own merge (uvmm's block commit, for a libvirt that cannot delete an
/// external snapshot) may take before it is aborted with nothing lost.
const MERGE_LIMIT: Duration = Duration::from_secs(3600);

fn libvirt(e: uvmm_libvirt::LibvirtError) -> VmError {
    VmError::Libvirt(crate::error::from_libvirt(e))
}

/// Refuse a transient VM (snapshots and renames need a persistent definition).
fn persistent(vm: Option<&VmEntry>) -> Result<&VmEntry, Error> {
    let vm = vm.ok_or_else(|| VmError::internal("no VM"))?;
    if !vm.persistent {
        return Err(VmError::Conflict {
            why: format!("{} is transient: it has no stored definition", vm.name),
        }
        .into());
    }
    Ok(vm)
}

/// `GET /api/v1/vms/{uuid}/snapshots`: the tree, parents first, with the current one.
pub struct ListSnapshots;

impl Job for ListSnapshots {
    type Output = Vec<Snapshot>;
    type Error = VmError;

    fn run(self, ctx: &JobCtx<'_>) -> Result<Vec<Snapshot>, VmError> {
        let list = ctx.hv.snapshots(ctx.at.vm()).map_err(libvirt)?;
        Ok(view(&list))
    }
}

/// `POST /api/v1/vms/{uuid}/snapshots`.
pub struct CreateSnapshot {
    pub req: CreateSnapshotRequest,
    /// From `prepare`: where an external snapshot's memory goes.
    memory_file: Option<String>,
    running: bool,
}

impl CreateSnapshot {
    pub fn new(req: CreateSnapshotRequest) -> CreateSnapshot {
        CreateSnapshot {
            req,
            memory_file: None,
            running: false,
        }
    }
}

impl Job for CreateSnapshot {
    type Output = Snapshot;
    type Error = Error;

    fn prepare(&mut self, _: &Cache, _: &HostEntry, vm: Option<&VmEntry>) -> Result<(), Error> {
        let vm = persistent(vm)?;
        validate::vm_name(&self.req.name).map_err(VmError::from)?;
        if let Some(d) = &self.req.description {
            validate::note("description", d).map_err(VmError::from)?;
        }
        self.running = vm.state == VmState::Running;
        if self.req.memory && !self.running {
            return Err(VmError::Conflict {
                why: format!("{} is not running: there is no memory to capture", vm.name),
            }
            .into());
        }
        if self.req.memory && self.req.kind == SnapshotKindName::External {
            let first = vm
                .def
                .disks
                .iter()
                .find(|d| d.device == "disk" && d.kind == "file")
                .and_then(|d| d.source.clone())
                .ok_or_else(|| VmError::Conflict {
                    why: "an external snapshot with memory needs a file disk to put the memory \
                          image beside"
                        .into(),
                })?;
            self.memory_file = Some(format!("{first}.{}.mem", self.req.name));
        }
        Ok(())
    }

    fn long(&self) -> Option<Long> {
        // Writing the memory out takes as long as the VM is big.
        (self.running && (self.req.memory || self.req.kind == SnapshotKindName::Internal)).then(
            || Long {
                kind: TaskKind::SnapshotCreate,
                cancel: CancelMode::Undo,
                target: Some(self.req.name.clone()),
            },
        )
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<Snapshot, Error> {
        let uuid = ctx.at.vm();
        let taken = ctx.hv.snapshots(uuid).map_err(libvirt)?;
        if taken.iter().any(|s| s.name == self.req.name) {
            return Err(VmError::Conflict {
                why: format!("a snapshot called {} exists already", self.req.name),
            }
            .into());
        }
        let spec = SnapshotSpec {
            name: self.req.name.clone(),
            description: self.req.description.clone(),
            kind: match self.req.kind {
                SnapshotKindName::Internal => SnapshotKind::Internal,
                SnapshotKindName::External => SnapshotKind::External,
            },
            // libvirt cannot leave the memory out of an internal snapshot of a running VM.
            memory: self.req.memory
                || (self.running && self.req.kind == SnapshotKindName::Internal),
            memory_file: self.memory_file.clone(),
        };
        let name = ctx.hv.snapshot_create(uuid, &spec).map_err(libvirt)?;
        if ctx.cancelled() {
            let undo = ctx
                .hv
                .snapshot_delete(uuid, &name, ctx.shared.timing.call_timeout);
            if let Err(e) = undo {
                tracing::error!(%uuid, snapshot = %name, "cannot delete a cancelled snapshot: {e}");
            }
            ctx.refresh(uuid);
            return Err(JobError::Cancelled.into());
        }
        let list = ctx.hv.snapshots(uuid).map_err(libvirt)?;
        // The version keeps the snapshot's definition, and the domain's (an external
        // snapshot re-points the disks at the overlays).
        if let Some(taken) = list.iter().find(|s| s.name == name) {
            let event = SnapshotEvent::Created {
                xml: taken.xml.clone(),
            };
            let _ = ctx.backup_snapshot(
                uuid,
                SnapshotNote {
                    name: name.clone(),
                    event,
                },
            );
        }
        ctx.refresh(uuid);
        view(&list)
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| VmError::internal(format!("snapshot {name} is not listed")).into())
    }
}

/// A task that libvirt can neither interrupt nor undo (a revert, a delete): its progress
/// is the domain job's where libvirt reports one (a revert with memory loads it).
fn uninterruptible(kind: TaskKind, name: &str) -> Option<Long> {
    Some(Long {
        kind,
        cancel: CancelMode::None,
        target: Some(name.to_string()),
    })
}

/// Run a snapshot call watched: its progress read from libvirt's job statistics.
fn watched<T>(ctx: &JobCtx<'_>, work: impl FnOnce() -> T) -> T {
    let (hv, uuid) = (ctx.hv, ctx.at.vm());
    let poll = || {
        let p = hv.job_progress(uuid, false).ok().flatten()?;
        Some((p.data_processed?, p.data_total.unwrap_or(0)))
    };
    let how = Watch {
        poll: &poll,
        abort: None,
    };
    ctx.watch(how, work)
}

/// `POST /api/v1/vms/{uuid}/snapshots/{name}/revert`: a task (a running VM's memory is
/// loaded back), which cannot be cancelled.
pub struct RevertSnapshot {
    pub name: String,
}

impl Job for RevertSnapshot {
    type Output = VmChangeResponse;
    type Error = VmError;

    fn prepare(&mut self, _: &Cache, _: &HostEntry, vm: Option<&VmEntry>) -> Result<(), Error> {
        persistent(vm).map(|_| ())
    }

    fn long(&self) -> Option<Long> {
        uninterruptible(TaskKind::SnapshotRevert, &self.name)
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<VmChangeResponse, VmError> {
        let uuid = ctx.at.vm();
        watched(ctx, || ctx.hv.snapshot_revert(uuid, &self.name, false)).map_err(libvirt)?;
        let warnings = ctx.backup(uuid, Cause::Edit).into_iter().collect();
        ctx.refresh(uuid);
        ctx.changed(
            uuid,
            vec![format!("reverted to snapshot {}", self.name)],
            warnings,
        )
    }
}

/// `DELETE /api/v1/vms/{uuid}/snapshots/{name}`: never loses data of another snapshot or
/// of the current state (an external snapshot is merged, or the delete is refused). A
/// task (a merge copies data), which cannot be cancelled: libvirt 9.0 merges an external
/// snapshot itself and has no abort for it.
pub struct DeleteSnapshot {
    pub name: String,
}

impl Job for DeleteSnapshot {
    type Output = SnapshotDeleted;
    type Error = VmError;

    fn long(&self) -> Option<Long> {
        uninterruptible(TaskKind::SnapshotDelete, &self.name)
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<SnapshotDeleted, VmError> {
        let uuid = ctx.at.vm();
        // As a task it has no request waiting on it: a big disk's merge may take long; the
        // limit only bounds a block job that is stuck.
        let timeout = MERGE_LIMIT.max(ctx.shared.timing.call_timeout);
        let outcome =
            watched(ctx, || ctx.hv.snapshot_delete(uuid, &self.name, timeout)).map_err(libvirt)?;
        let note = SnapshotNote {
            name: self.name.clone(),
            event: SnapshotEvent::Deleted,
        };
        let _ = ctx.backup_snapshot(uuid, note);
        ctx.refresh(uuid);
        let (how, overlays, memory_file) = match outcome {
            SnapshotDeleteOutcome::Deleted => ("deleted", vec![], None),
            SnapshotDeleteOutcome::MergedByLibvirt {
                removed_overlays,
                memory_file,
            } => ("merged", removed_overlays, memory_file),
            SnapshotDeleteOutcome::Merged {
                unused_overlays, ..
            } => ("merged", unused_overlays, None),
        };
        Ok(SnapshotDeleted {
            name: self.name,
            how: how.into(),
            overlays,
            memory_file,
        })
    }
}

/// `POST /api/v1/vms/{uuid}/rename`: a shut-off VM; the UUID, and so its backup history,
/// stay (the next version records the new name).
pub struct RenameVm {
    pub name: String,
}

impl Job for RenameVm {
    type Output = VmChangeResponse;
    type Error = VmError;

    fn prepare(&mut self, _: &Cache, h: &HostEntry, vm: Option<&VmEntry>) -> Result<(), Error> {
        let vm = persistent(vm)?;
        validate::vm_name(&self.name).map_err(VmError::from)?;
        if vm.state != VmState::Shutoff {
            return Err(VmError::Conflict {
                why: format!(
                    "{} is {:?}: only a shut-off VM can be renamed",
                    vm.name, vm.state
                ),
            }
            .into());
        }
        if h.vms().values().any(|v| v.name == self.name) {
            return Err(VmError::Conflict {
                why: format!("a VM called {} exists on {} already", self.name, h.id),
            }
            .into());
        }
        Ok(())
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<VmChangeResponse, VmError> {
        let uuid = ctx.at.vm();
        ctx.hv.rename(uuid, &self.name).map_err(libvirt)?;
        let warnings = ctx.backup(uuid, Cause::Edit).into_iter().collect();
        ctx.refresh(uuid);
        ctx.changed(uuid, vec![], warnings)
    }
}
