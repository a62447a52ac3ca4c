//! What a worker reads from its host: one domain after an event, the pools with their
//! freshness, and the bulk statistics.

use super::worker::Worker;
use crate::cache::PoolFreshness;
use std::time::{Instant, SystemTime};
use uvmm_libvirt::{ErrorKind, Hypervisor, LibvirtError, PoolAction};

impl Worker {
    /// Re-read one domain after an event. Whatever the event said, libvirt's answer now is
    /// what counts: a domain may survive an UNDEFINED event (still running, transient).
    pub(crate) fn refresh(&self, hv: &dyn Hypervisor, uuid: &str) -> Result<(), LibvirtError> {
        match hv.domain(uuid)? {
            Some(snap) => self.shared.update(|c| ((), c.vm_upsert(&self.uri, snap))),
            None => self.shared.update(|c| ((), c.vm_remove(&self.uri, uuid))),
        }
        Ok(())
    }

    /// Refresh every active pool and read every pool (and the volumes of active ones); the
    /// cache judges them. libvirt reports a pool's size and allocation as of its last
    /// refresh (for a dir pool: data written into sparse volumes is not seen before), so
    /// each read asks libvirt to re-read the storage first (virStoragePoolRefresh) and
    /// records when that succeeded: the figures' age is part of every answer.
    pub(crate) fn refresh_pools(&self, hv: &dyn Hypervisor) -> Result<(), LibvirtError> {
        let list = |hv: &dyn Hypervisor| match hv.pools() {
            Ok(p) => Ok(Some(p)),
            // Hosts without a storage driver have no pools; that is not a failure.
            Err(e) if e.kind == ErrorKind::NotSupported => Ok(None),
            Err(e) => Err(e),
        };
        let Some(mut pools) = list(hv)? else {
            return Ok(());
        };
        let mut refreshed_any = false;
        {
            let mut fresh = self.pool_refresh.borrow_mut();
            for p in pools.iter().filter(|p| p.active) {
                let name = &p.def.name;
                let started = SystemTime::now();
                let prev = fresh.get(name).cloned().unwrap_or_default();
                let now = match hv.pool_action(name, PoolAction::Refresh) {
                    Ok(()) => {
                        refreshed_any = true;
                        PoolFreshness {
                            refreshed_at: Some(started),
                            error: None,
                        }
                    }
                    Err(e) if e.kind == ErrorKind::Connection => return Err(e),
                    // Gone or stopped meanwhile: the read below shows it.
                    Err(e) if e.kind == ErrorKind::NotFound => continue,
                    Err(e) => {
                        if prev.error.as_deref() != Some(e.message.as_str()) {
                            tracing::warn!(uri = %self.uri, pool = %name, "refreshing the pool failed (its figures get older): {e}");
                        }
                        PoolFreshness {
                            refreshed_at: prev.refreshed_at,
                            error: Some(e.message),
                        }
                    }
                };
                fresh.insert(name.clone(), now);
            }
            fresh.retain(|name, _| pools.iter().any(|p| p.active && &p.def.name == name));
        }
        if refreshed_any {
            pools = list(hv)?.unwrap_or_default();
        }
        let fresh = self.pool_refresh.borrow();
        let mut read = Vec::with_capacity(pools.len());
        for p in pools {
            let volumes = if p.active {
                match hv.volumes(&p.def.name) {
                    Ok(v) => v.into_iter().map(|v| v.def).collect(),
                    Err(e) if e.kind == ErrorKind::NotFound => vec![],
                    Err(e) => return Err(e),
                }
            } else {
                vec![]
            };
            let freshness = if p.active {
                fresh.get(&p.def.name).cloned().unwrap_or_default()
            } else {
                PoolFreshness::default()
            };
            read.push((p, volumes, freshness));
        }
        drop(fresh);
        if let Ok(free) = hv.free_memory_kib() {
            let mut cache = self.shared.cache.write().unwrap_or_else(|p| p.into_inner());
            cache.set_free_memory(&self.uri, free);
        }
        let monitoring = &self.shared.monitoring;
        self.shared.update(|c| {
            (
                (),
                c.pools_updated(
                    &self.uri,
                    read,
                    monitoring.pool_interval,
                    &|id, uri, pool| monitoring.for_pool(id, uri, pool),
                ),
            )
        });
        Ok(())
    }

    /// Statistics of the active VMs, or with `complete` of every VM: events keep the
    /// inactive ones current, and the complete read (every `reconcile_interval`) is the
    /// safety net that catches a change whose event was lost.
    pub(crate) fn stats(&self, hv: &dyn Hypervisor, complete: bool) -> Result<(), LibvirtError> {
        let stats = hv.domain_stats(!complete)?;
        // Free host memory changes slowly; it is read with the pools (refresh_pools).
        let free = None;
        let now = Instant::now();
        let stale = {
            let mut cache = self.shared.cache.write().unwrap_or_else(|p| p.into_inner());
            cache.apply_stats(&self.uri, &stats, free, now, complete)
        };
        for uuid in stale {
            tracing::debug!(uri = %self.uri, %uuid, "cache disagreed with libvirt; re-reading");
            self.refresh(hv, &uuid)?;
            let _ = self.backup(hv, &uuid, uvmm_backup::Cause::Resync);
        }
        Ok(())
    }
}
