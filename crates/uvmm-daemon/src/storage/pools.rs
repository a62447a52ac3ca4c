//! Storage pools: create, start, stop, refresh, delete. What the cache knows (who uses a
//! volume) is decided before the job and passed in.

use super::{pool_in, StorageError};
use crate::cache::{Cache, HostEntry, VmEntry};
use crate::error::Error;
use crate::jobs::{Job, JobCtx};
use uvmm_api::{CreatePoolRequest, PoolCommand, PoolCreated, PoolDetail};
use uvmm_libvirt::{ErrorKind, PoolAction};
use uvmm_model::storage::pool_xml;

fn create_pool(ctx: &JobCtx<'_>, req: CreatePoolRequest) -> Result<Vec<String>, StorageError> {
    let hv = ctx.hv;
    let xml = pool_xml(&req.pool)?;
    let name = req.pool.name.clone();
    let pools = hv.pools()?;
    if pools.iter().any(|p| p.def.name == name) {
        return Err(StorageError::conflict(format!(
            "a storage pool named '{name}' already exists on this host"
        )));
    }
    // Two pools on one directory would count and delete each other's volumes; libvirt
    // refuses it too, but with an "operation failed" that reads like a fault of the host.
    if let Some(wanted) = req.pool.target_path.as_deref().map(trim_dir) {
        if let Some(other) = pools
            .iter()
            .find(|p| p.def.target_path.as_deref().map(trim_dir) == Some(wanted))
        {
            return Err(StorageError::conflict(format!(
                "storage pool '{}' already uses {wanted}; choose another target path",
                other.def.name
            )));
        }
    }
    hv.define_pool(&xml).map_err(|e| match e.kind {
        // The XML is made from checked values: libvirt refuses what clashes with the host
        // (another pool on the same source, an unsupported type).
        ErrorKind::InvalidInput | ErrorKind::InvalidOperation | ErrorKind::Other => {
            StorageError::refused("libvirt refused the pool", e)
        }
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

/// A directory as pools compare it: `/a/b/` and `/a/b` are one place.
fn trim_dir(path: &str) -> &str {
    path.trim_end_matches('/')
}

/// `start`, `stop` or `refresh`. `in_use_by_running` names running VMs using its volumes.
fn pool_command(
    ctx: &JobCtx<'_>,
    pool: &str,
    command: PoolCommand,
    in_use_by_running: &[String],
) -> Result<(), StorageError> {
    let a = match command {
        PoolCommand::Start => PoolAction::Start,
        PoolCommand::Stop => {
            if !in_use_by_running.is_empty() {
                return Err(StorageError::conflict(format!(
                    "pool {pool} has volumes in use by running VMs ({}); stop them first",
                    in_use_by_running.join(", ")
                )));
            }
            PoolAction::Stop
        }
        PoolCommand::Refresh => PoolAction::Refresh,
    };
    ctx.hv.pool_action(pool, a).map_err(|e| match e.kind {
        ErrorKind::InvalidOperation | ErrorKind::Other => StorageError::refused("", e),
        _ => StorageError::from(e),
    })?;
    ctx.refresh_pools();
    Ok(())
}

fn delete_pool(
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

/// The pool as the cache has it after a job's change.
fn answer(ctx: &JobCtx<'_>, pool: &str) -> Result<PoolDetail, StorageError> {
    let cache = ctx.cache();
    let h = cache
        .host(ctx.uri())
        .ok_or_else(|| StorageError::not_found(format!("no host '{}'", ctx.uri())))?;
    pool_in(&cache, h, pool)
}

/// `POST /api/v1/hosts/{id}/pools`: define, build, start and autostart a pool.
pub struct CreatePool {
    pub req: CreatePoolRequest,
}

impl Job for CreatePool {
    type Output = PoolCreated;
    type Error = StorageError;

    fn prepare(&mut self, _: &Cache, _: &HostEntry, _: Option<&VmEntry>) -> Result<(), Error> {
        // Bad input is refused before the host is asked anything.
        pool_xml(&self.req.pool).map_err(StorageError::from)?;
        Ok(())
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<PoolCreated, StorageError> {
        let name = self.req.pool.name.clone();
        let warnings = create_pool(ctx, self.req)?;
        Ok(PoolCreated {
            pool: answer(ctx, &name)?,
            warnings,
        })
    }
}

/// `POST /api/v1/hosts/{id}/pools/{pool}/{action}`: start, stop or refresh.
pub struct RunPoolCommand {
    pub pool: String,
    pub command: PoolCommand,
    /// Running VMs using its volumes, as `name@host-id` (from the cache).
    running_users: Vec<String>,
}

impl RunPoolCommand {
    pub fn new(pool: String, command: PoolCommand) -> RunPoolCommand {
        RunPoolCommand {
            pool,
            command,
            running_users: vec![],
        }
    }
}

impl Job for RunPoolCommand {
    type Output = PoolDetail;
    type Error = StorageError;

    fn prepare(&mut self, cache: &Cache, h: &HostEntry, _: Option<&VmEntry>) -> Result<(), Error> {
        let detail = pool_in(cache, h, &self.pool)?;
        self.running_users = detail
            .volumes
            .iter()
            .flat_map(|v| v.used_by.iter())
            .filter(|who| {
                let (name, hid) = who.rsplit_once('@').unwrap_or((who, ""));
                cache.hosts().any(|h| {
                    h.id == hid
                        && h.vms()
                            .values()
                            .any(|vm| vm.name == name && vm.state.is_active())
                })
            })
            .cloned()
            .collect();
        Ok(())
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<PoolDetail, StorageError> {
        pool_command(ctx, &self.pool, self.command, &self.running_users)?;
        answer(ctx, &self.pool)
    }
}

/// `DELETE /api/v1/hosts/{id}/pools/{pool}`: refused while its volumes are in use.
pub struct DeletePool {
    pub pool: String,
    pub delete_storage: bool,
    /// Who uses its volumes (from the cache).
    in_use: Vec<String>,
}

impl DeletePool {
    pub fn new(pool: String, delete_storage: bool) -> DeletePool {
        DeletePool {
            pool,
            delete_storage,
            in_use: vec![],
        }
    }
}

impl Job for DeletePool {
    type Output = ();
    type Error = StorageError;

    fn prepare(&mut self, cache: &Cache, h: &HostEntry, _: Option<&VmEntry>) -> Result<(), Error> {
        let mut in_use: Vec<String> = pool_in(cache, h, &self.pool)?
            .volumes
            .into_iter()
            .flat_map(|v| v.used_by)
            .collect();
        in_use.sort();
        in_use.dedup();
        self.in_use = in_use;
        Ok(())
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<(), StorageError> {
        delete_pool(ctx, &self.pool, self.delete_storage, &self.in_use)
    }
}
