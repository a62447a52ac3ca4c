//! Storage pool and volume operations, each one job on its host's worker. What the cache
//! knows (who uses a volume) is decided before the job and passed in.

use crate::error::CoreError;
use crate::host::JobCtx;
use uvmm_api::{CreatePoolRequest, CreateVolumeRequest};
use uvmm_libvirt::{ErrorKind, PoolAction, VolumeInfo};
use uvmm_model::storage::{pool_xml, volume_xml};
use uvmm_model::validate;

fn bad(msg: impl Into<String>) -> CoreError {
    CoreError::BadRequest(msg.into())
}

pub fn create_pool(ctx: &JobCtx<'_>, req: CreatePoolRequest) -> Result<Vec<String>, CoreError> {
    let hv = ctx.hv;
    let xml = pool_xml(&req.pool).map_err(|e| bad(e.0))?;
    let name = req.pool.name.clone();
    let pools = hv.pools()?;
    if pools.iter().any(|p| p.def.name == name) {
        return Err(CoreError::Conflict(format!(
            "a storage pool named '{name}' already exists on this host"
        )));
    }
    // Two pools on one directory would count and delete each other's volumes; libvirt
    // refuses it too, but with an "operation failed" that reads like a fault of the host.
    let wanted = req
        .pool
        .target_path
        .as_deref()
        .map(|t| t.trim_end_matches('/'));
    if let Some(other) = pools.iter().find(|p| {
        wanted.is_some_and(|w| {
            p.def
                .target_path
                .as_deref()
                .map(|t| t.trim_end_matches('/'))
                == Some(w)
        })
    }) {
        return Err(CoreError::Conflict(format!(
            "storage pool '{}' already uses {}; choose another target path",
            other.def.name,
            wanted.unwrap_or_default()
        )));
    }
    hv.define_pool(&xml).map_err(|e| match e.kind {
        // The XML is made from checked values: libvirt refuses what clashes with the host
        // (another pool on the same source, an unsupported type).
        ErrorKind::InvalidInput | ErrorKind::InvalidOperation | ErrorKind::Other => {
            CoreError::Conflict(format!("libvirt refused the pool: {}", e.message))
        }
        _ => CoreError::from(e),
    })?;
    let mut warnings = Vec::new();
    let steps = (|| {
        if req.build {
            hv.pool_action(&name, PoolAction::Build)?;
        }
        if req.start {
            hv.pool_action(&name, PoolAction::Start)?;
        }
        if req.autostart {
            hv.pool_action(&name, PoolAction::Autostart(true))?;
        }
        Ok::<(), uvmm_libvirt::LibvirtError>(())
    })();
    if let Err(e) = steps {
        // A pool that cannot be built or started is not left half-made.
        let _ = hv.pool_action(&name, PoolAction::Undefine);
        return Err(match e.kind {
            ErrorKind::NotSupported => CoreError::Libvirt(e),
            _ => CoreError::Conflict(format!("the pool could not be set up: {}", e.message)),
        });
    }
    if !req.start {
        warnings.push("the pool is defined but not started".into());
    }
    ctx.refresh_pools();
    Ok(warnings)
}

/// `start`, `stop` or `refresh`. `in_use_by_running` names running VMs using its volumes.
pub fn pool_action(
    ctx: &JobCtx<'_>,
    pool: &str,
    action: &str,
    in_use_by_running: &[String],
) -> Result<(), CoreError> {
    let a = match action {
        "start" => PoolAction::Start,
        "stop" => {
            if !in_use_by_running.is_empty() {
                return Err(CoreError::Conflict(format!(
                    "pool {pool} has volumes in use by running VMs ({}); stop them first",
                    in_use_by_running.join(", ")
                )));
            }
            PoolAction::Stop
        }
        "refresh" => PoolAction::Refresh,
        other => {
            return Err(bad(format!(
                "unknown pool action '{other}' (expected start, stop or refresh)"
            )))
        }
    };
    ctx.hv.pool_action(pool, a).map_err(|e| match e.kind {
        ErrorKind::InvalidOperation | ErrorKind::Other => CoreError::Conflict(e.message),
        _ => CoreError::from(e),
    })?;
    ctx.refresh_pools();
    Ok(())
}

pub fn delete_pool(
    ctx: &JobCtx<'_>,
    pool: &str,
    delete_storage: bool,
    in_use: &[String],
) -> Result<(), CoreError> {
    if !in_use.is_empty() {
        return Err(CoreError::Conflict(format!(
            "pool {pool} holds volumes in use by {}; detach or delete them first",
            in_use.join(", ")
        )));
    }
    let hv = ctx.hv;
    let info = hv
        .pools()?
        .into_iter()
        .find(|p| p.def.name == pool)
        .ok_or_else(|| CoreError::NotFound(format!("no storage pool '{pool}'")))?;
    if info.active {
        hv.pool_action(pool, PoolAction::Stop)?;
    }
    if delete_storage {
        hv.pool_action(pool, PoolAction::DeleteStorage)
            .map_err(|e| {
                CoreError::Conflict(format!(
                    "the pool's storage could not be removed (is it empty?): {}",
                    e.message
                ))
            })?;
    }
    if info.persistent {
        hv.pool_action(pool, PoolAction::Undefine)?;
    }
    ctx.refresh_pools();
    Ok(())
}

pub fn create_volume(
    ctx: &JobCtx<'_>,
    pool: &str,
    req: CreateVolumeRequest,
) -> Result<VolumeInfo, CoreError> {
    let format = req.format.clone().unwrap_or_else(|| "raw".into());
    let vol = crate::vmops::create_volume(
        ctx.hv,
        pool,
        &req.name,
        req.size_bytes,
        &format,
        req.preallocate,
    )?;
    ctx.refresh_pools();
    Ok(vol)
}

pub fn clone_volume(
    ctx: &JobCtx<'_>,
    pool: &str,
    source: &str,
    name: &str,
) -> Result<VolumeInfo, CoreError> {
    let hv = ctx.hv;
    validate::volume_name(name).map_err(|e| bad(e.0))?;
    let vols = hv.volumes(pool).map_err(|e| match e.kind {
        ErrorKind::NotFound => CoreError::NotFound(format!("no storage pool '{pool}'")),
        _ => CoreError::from(e),
    })?;
    let src = vols
        .iter()
        .find(|v| v.def.name == source)
        .ok_or_else(|| CoreError::NotFound(format!("no volume '{source}' in pool '{pool}'")))?;
    if vols.iter().any(|v| v.def.name == name) {
        return Err(CoreError::Conflict(format!(
            "volume '{name}' already exists in pool '{pool}'"
        )));
    }
    let xml = volume_xml(name, src.def.capacity, src.def.format.as_deref(), true);
    let vol = hv.clone_volume(pool, source, &xml)?;
    ctx.refresh_pools();
    Ok(vol)
}

pub fn delete_volume(
    ctx: &JobCtx<'_>,
    pool: &str,
    name: &str,
    refusal: Option<String>,
) -> Result<(), CoreError> {
    if let Some(why) = refusal {
        return Err(CoreError::Conflict(format!(
            "volume {name} is not deleted: {why}"
        )));
    }
    ctx.hv.delete_volume(pool, name)?;
    ctx.refresh_pools();
    Ok(())
}

pub fn resize_volume(ctx: &JobCtx<'_>, pool: &str, name: &str, size: u64) -> Result<(), CoreError> {
    let vol = ctx
        .hv
        .volumes(pool)?
        .into_iter()
        .find(|v| v.def.name == name)
        .ok_or_else(|| CoreError::NotFound(format!("no volume '{name}' in pool '{pool}'")))?;
    if size <= vol.def.capacity {
        // Depends on the volume as it is now: a conflict, not a malformed request.
        return Err(CoreError::Conflict(format!(
            "volumes only grow: {name} has {} bytes, {size} is not more",
            vol.def.capacity
        )));
    }
    if let Some(info) = ctx.hv.pools()?.iter().find(|p| p.def.name == pool) {
        uvmm_model::storage::check_volume_size(
            size,
            vol.def.format.as_deref(),
            &crate::vmops::room_of(info),
            false,
        )
        .map_err(|e| bad(e.to_string()))?;
    }
    ctx.hv.resize_volume(pool, name, size)?;
    ctx.refresh_pools();
    Ok(())
}
