//! Volumes: creation (also for new VM disks: VM code calls `make_volume`), clone, resize,
//! delete.

use super::{bad, volume_in, StorageError};
use crate::cache::{Cache, HostEntry, VmEntry};
use crate::error::Error;
use crate::jobs::tasks::{Long, Watch};
use crate::jobs::{Job, JobCtx, JobError};
use uvmm_api::{CancelMode, TaskKind};
use uvmm_api::{CreateVolumeRequest, VolumeSummary};
use uvmm_libvirt::{ErrorKind, Hypervisor, VolumeInfo};
use uvmm_model::storage::{check_volume_size, volume_xml, PoolRoom};
use uvmm_model::validate;

/// Create a volume; refuses to touch an existing one.
pub fn make_volume(
    hv: &dyn Hypervisor,
    pool: &str,
    name: &str,
    size: u64,
    format: &str,
    preallocate: bool,
) -> Result<VolumeInfo, StorageError> {
    validate::object_name("pool", pool)?;
    validate::volume_name(name)?;
    if size == 0 {
        return Err(bad("a disk size of zero is not a disk"));
    }
    if !matches!(format, "raw" | "qcow2") {
        return Err(bad(format!(
            "disk format '{format}' (expected raw or qcow2)"
        )));
    }
    let pools = hv.pools()?;
    let info = pools.iter().find(|p| p.def.name == pool).ok_or_else(|| {
        StorageError::not_found(format!(
            "no storage pool '{pool}' on this host (it has: {})",
            pools
                .iter()
                .map(|p| p.def.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    if !info.active {
        return Err(StorageError::conflict(format!(
            "storage pool '{pool}' is not active"
        )));
    }
    check_volume_size(size, Some(format), &room_of(info), preallocate)?;
    if hv.volumes(pool)?.iter().any(|v| v.def.name == name) {
        return Err(StorageError::conflict(format!(
            "volume '{name}' already exists in pool '{pool}'; choose another name or attach it"
        )));
    }
    let vol = hv
        .create_volume(pool, &volume_xml(name, size, Some(format), !preallocate))
        .map_err(|e| match e.kind {
            // The XML is made from checked values: a refusal is about the pool (its space,
            // its type), so a conflict.
            ErrorKind::InvalidInput => {
                StorageError::refused(format!("cannot create volume '{name}' in pool '{pool}'"), e)
            }
            _ => StorageError::from(e),
        })?;
    Ok(vol)
}

/// What a pool offers a new volume, for [`check_volume_size`].
pub fn room_of(info: &uvmm_libvirt::PoolInfo) -> PoolRoom {
    PoolRoom {
        name: info.def.name.clone(),
        capacity: info.capacity,
        available: info.available,
    }
}

/// The volume as the cache has it after a job's change.
fn answer(ctx: &JobCtx<'_>, pool: &str, name: &str) -> Result<VolumeSummary, StorageError> {
    let cache = ctx.cache();
    let h = cache
        .host(ctx.uri())
        .ok_or_else(|| StorageError::not_found(format!("no host '{}'", ctx.uri())))?;
    volume_in(&cache, h, pool, name)
}

/// `POST /api/v1/hosts/{id}/pools/{pool}/volumes`: a new volume (sparse unless
/// `preallocate`).
pub struct CreateVolume {
    pub pool: String,
    pub req: CreateVolumeRequest,
}

impl Job for CreateVolume {
    type Output = VolumeSummary;
    type Error = StorageError;

    fn run(self, ctx: &JobCtx<'_>) -> Result<VolumeSummary, StorageError> {
        let (pool, req) = (self.pool, self.req);
        let format = uvmm_model::storage::volume_format(&req.name, req.format.as_deref(), "raw")?;
        let size = req.size_bytes;
        make_volume(ctx.hv, &pool, &req.name, size, format, req.preallocate)?;
        ctx.refresh_pools();
        answer(ctx, &pool, &req.name)
    }
}

/// `POST .../volumes/{volume}/clone`: a copy of a volume in the same pool. A task (a
/// large copy takes minutes): progress is the copy's allocation against the source's;
/// libvirt cannot interrupt the copy, so a cancelled clone is deleted once it is done.
pub struct CloneVolume {
    pub pool: String,
    pub source: String,
    pub name: String,
}

impl Job for CloneVolume {
    type Output = VolumeSummary;
    type Error = Error;

    fn long(&self) -> Option<Long> {
        Some(Long {
            kind: TaskKind::VolumeClone,
            cancel: CancelMode::Undo,
            target: Some(format!("{}/{} -> {}", self.pool, self.source, self.name)),
        })
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<VolumeSummary, Error> {
        let (hv, pool, source, name) = (ctx.hv, &self.pool, &self.source, &self.name);
        validate::volume_name(name).map_err(StorageError::from)?;
        let vols = hv.volumes(pool).map_err(|e| match e.kind {
            ErrorKind::NotFound => StorageError::not_found(format!("no storage pool '{pool}'")),
            _ => StorageError::from(e),
        })?;
        let src = vols.iter().find(|v| v.def.name == *source).ok_or_else(|| {
            StorageError::not_found(format!("no volume '{source}' in pool '{pool}'"))
        })?;
        if vols.iter().any(|v| v.def.name == *name) {
            return Err(StorageError::conflict(format!(
                "volume '{name}' already exists in pool '{pool}'"
            ))
            .into());
        }
        let xml = volume_xml(name, src.def.capacity, src.def.format.as_deref(), true);
        // What has to be copied: the source's data (a sparse source copies sparse).
        let total = match src.def.allocation {
            0 => src.def.capacity,
            n => n,
        };
        let poll = || {
            let copy = hv.volume(pool, name).ok().flatten()?;
            Some((copy.def.allocation, total))
        };
        let how = Watch {
            poll: &poll,
            abort: None,
        };
        let copied = ctx.watch(how, || hv.clone_volume(pool, source, &xml));
        copied.map_err(StorageError::from)?;
        if ctx.cancelled() {
            if let Err(e) = hv.delete_volume(pool, name) {
                tracing::error!(%pool, volume = %name, "cannot delete the copy of a cancelled clone: {e}");
            }
            ctx.refresh_pools();
            return Err(JobError::Cancelled.into());
        }
        ctx.refresh_pools();
        Ok(answer(ctx, pool, name)?)
    }
}

/// `DELETE .../volumes/{volume}`: refused while in use, and for pools whose volumes uvmm
/// does not delete.
pub struct DeleteVolume {
    pub pool: String,
    pub name: String,
    /// Why not, from the cache (the same rule as for deleting VMs).
    refusal: Option<String>,
}

impl DeleteVolume {
    pub fn new(pool: String, name: String) -> DeleteVolume {
        DeleteVolume {
            pool,
            name,
            refusal: None,
        }
    }
}

impl Job for DeleteVolume {
    type Output = ();
    type Error = StorageError;

    fn prepare(&mut self, cache: &Cache, h: &HostEntry, _: Option<&VmEntry>) -> Result<(), Error> {
        self.refusal = volume_in(cache, h, &self.pool, &self.name)?.keep_reason;
        Ok(())
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<(), StorageError> {
        if let Some(why) = self.refusal {
            return Err(StorageError::conflict(format!(
                "volume {} is not deleted: {why}",
                self.name
            )));
        }
        ctx.hv.delete_volume(&self.pool, &self.name)?;
        ctx.refresh_pools();
        Ok(())
    }
}

/// `POST .../volumes/{volume}/resize`: grow a volume (where the pool can).
pub struct ResizeVolume {
    pub pool: String,
    pub name: String,
    pub size_bytes: u64,
}

impl Job for ResizeVolume {
    type Output = VolumeSummary;
    type Error = StorageError;

    fn run(self, ctx: &JobCtx<'_>) -> Result<VolumeSummary, StorageError> {
        let (hv, pool, name, size) = (ctx.hv, &self.pool, &self.name, self.size_bytes);
        let vol = hv
            .volumes(pool)?
            .into_iter()
            .find(|v| v.def.name == *name)
            .ok_or_else(|| {
                StorageError::not_found(format!("no volume '{name}' in pool '{pool}'"))
            })?;
        if size <= vol.def.capacity {
            // Depends on the volume as it is now: a conflict, not a malformed request.
            return Err(StorageError::conflict(format!(
                "volumes only grow: {name} has {}, {} is not more",
                uvmm_model::units::format_bytes(vol.def.capacity),
                uvmm_model::units::format_bytes(size)
            )));
        }
        if let Some(info) = hv.pools()?.iter().find(|p| p.def.name == *pool) {
            check_volume_size(size, vol.def.format.as_deref(), &room_of(info), false)?;
        }
        hv.resize_volume(pool, name, size)?;
        ctx.refresh_pools();
        answer(ctx, pool, name)
    }
}
