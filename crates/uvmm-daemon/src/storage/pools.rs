//! Storage pools: create, start, stop, refresh, delete. What the cache knows (who uses a
//! volume) is decided before the job and passed in.

use super::{bad, StorageError};
use crate::jobs::JobCtx;
use uvmm_api::CreatePoolRequest;
use uvmm_libvirt::{ErrorKind, PoolAction};
use uvmm_model::storage::pool_xml;

pub fn create_pool(ctx: &JobCtx<'_>, req: CreatePoolRequest) -> Result<Vec<String>, StorageError> {
    let hv = ctx.hv;
    let xml = pool_xml(&req.pool)?;
    let name = req.pool.name.clone();
    if hv.pools()?.iter().any(|p| p.def.name == name) {
        return Err(StorageError::conflict(format!(
            "a storage pool named '{name}' already exists on this host"
        )));
    }
    hv.define_pool(&xml).map_err(|e| match e.kind {
        // The XML is made from checked values: libvirt refuses what clashes with the host
        // (another pool on the same target, an unsupported type).
        ErrorKind::InvalidInput => StorageError::refused("libvirt refused the pool", e),
        _ => StorageError::from(e),
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
            ErrorKind::NotSupported => StorageError::from(e),
            _ => StorageError::refused("the pool could not be set up", e),
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
) -> Result<(), StorageError> {
    let a = match action {
        "start" => PoolAction::Start,
        "stop" => {
            if !in_use_by_running.is_empty() {
                return Err(StorageError::conflict(format!(
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
        ErrorKind::InvalidOperation | ErrorKind::Other => StorageError::refused("", e),
        _ => StorageError::from(e),
    })?;
    ctx.refresh_pools();
    Ok(())
}

pub fn delete_pool(
    ctx: &JobCtx<'_>,
    pool: &str,
    delete_storage: bool,
    in_use: &[String],
) -> Result<(), StorageError> {
    if !in_use.is_empty() {
        return Err(StorageError::conflict(format!(
            "pool {pool} holds volumes in use by {}; detach or delete them first",
            in_use.join(", ")
        )));
    }
    let hv = ctx.hv;
    let info = hv
        .pools()?
        .into_iter()
        .find(|p| p.def.name == pool)
        .ok_or_else(|| StorageError::not_found(format!("no storage pool '{pool}'")))?;
    if info.active {
        hv.pool_action(pool, PoolAction::Stop)?;
    }
    if delete_storage {
        hv.pool_action(pool, PoolAction::DeleteStorage)
            .map_err(|e| {
                StorageError::refused("the pool's storage could not be removed (is it empty?)", e)
            })?;
    }
    if info.persistent {
        hv.pool_action(pool, PoolAction::Undefine)?;
    }
    ctx.refresh_pools();
    Ok(())
}
