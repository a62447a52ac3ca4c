//! Reading VMs: everything comes from the cache, nothing asks libvirt.

use crate::cache::{vm_detail, LookupError};
use crate::error::Error;
use crate::hosts::shared::{ListRender, Shared};
use uvmm_api::{VmDetail, VmPage, VmQuery};

/// A page of the VM list: filters, sort, paging.
pub fn list(shared: &Shared, q: &VmQuery) -> Result<VmPage, LookupError> {
    shared.read().list_vms(q)
}

/// `GET /api/v1/vms` without parameters, the most frequent and largest read: rendered
/// once and reused until something changes. Statistics (CPU, memory) are sampled every
/// interval anyway, so a render is reused for up to one interval after them; any change
/// that produces an event (state, definition, host) renders anew.
pub fn list_all_json(shared: &Shared) -> Result<bytes::Bytes, Error> {
    let mut slot = shared.list_render.lock().unwrap_or_else(|p| p.into_inner());
    let cache = shared.read();
    if let Some(r) = slot.as_ref() {
        let fresh_stats = r.stats_generation == cache.stats_generation
            || r.at.elapsed() < shared.timing.stats_interval;
        if r.generation == cache.generation && fresh_stats {
            return Ok(r.body.clone());
        }
    }
    let page = cache.list_vms(&VmQuery::default())?;
    let body =
        bytes::Bytes::from(serde_json::to_vec(&page).map_err(|e| Error::internal(e.to_string()))?);
    *slot = Some(ListRender {
        generation: cache.generation,
        stats_generation: cache.stats_generation,
        at: std::time::Instant::now(),
        body: body.clone(),
    });
    Ok(body)
}

/// One VM with its devices and, while it runs, what its next start brings.
pub fn show(shared: &Shared, uuid: &str, host: Option<&str>) -> Result<VmDetail, LookupError> {
    let cache = shared.read();
    let (h, v) = cache.resolve_vm(uuid, host)?;
    Ok(vm_detail(h, v))
}
