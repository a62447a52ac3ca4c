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
/// that produces an event (state, definition, host) renders anew. Each render has its own
/// entity tag, so a client that still holds it gets `304 Not Modified` instead of the
/// body; with `gzip` the compressed body is made once per render and kept beside it.
pub fn list_all(shared: &Shared, gzip: bool) -> Result<ListAll, Error> {
    let mut slot = shared.list_render.lock().unwrap_or_else(|p| p.into_inner());
    let reusable = {
        let cache = shared.read();
        slot.as_ref().is_some_and(|r| {
            let fresh_stats = r.stats_generation == cache.stats_generation
                || r.at.elapsed() < shared.timing.stats_interval;
            r.generation == cache.generation && fresh_stats
        })
    };
    if !reusable {
        let (body, generation, stats_generation) = {
            let cache = shared.read();
            let page = cache.list_vms(&VmQuery::default())?;
            let body = serde_json::to_vec(&page).map_err(|e| Error::internal(e.to_string()))?;
            (body, cache.generation, cache.stats_generation)
        };
        // The page is gone before the lock on the render is taken over by the new
        // one: at 25,000 VMs only the bytes stay.
        *slot = Some(ListRender {
            generation,
            stats_generation,
            at: std::time::Instant::now(),
            body: bytes::Bytes::from(body),
            etag: format!(
                "W/\"{:x}-{generation}-{stats_generation}\"",
                process_nonce()
            ),
            gzip: None,
        });
    }
    let Some(r) = slot.as_mut() else {
        return Err(Error::internal("the list render vanished"));
    };
    let body = if gzip {
        if r.gzip.is_none() {
            r.gzip = Some(compress(&r.body)?);
        }
        r.gzip.clone()
    } else {
        None
    };
    Ok(ListAll {
        etag: r.etag.clone(),
        gzip: body.is_some(),
        body: body.unwrap_or_else(|| r.body.clone()),
    })
}

/// The answer to a full list request: the body (compressed when `gzip`) and its tag.
#[derive(Debug, Clone)]
pub struct ListAll {
    pub etag: String,
    pub body: bytes::Bytes,
    pub gzip: bool,
}

/// Random per process, so that a tag of an earlier uvmmd never matches a render of this
/// one (the generations start from zero again).
fn process_nonce() -> u64 {
    static NONCE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NONCE.get_or_init(|| {
        let mut b = [0u8; 8];
        if getrandom::fill(&mut b).is_err() {
            // No randomness: the start time still separates two runs.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            return u64::try_from(t.as_nanos() & u128::from(u64::MAX)).unwrap_or(0);
        }
        u64::from_le_bytes(b)
    })
}

/// gzip at the fastest level: the list is regular JSON and shrinks about tenfold even
/// so, and a render may be compressed once per statistics interval.
fn compress(body: &[u8]) -> Result<bytes::Bytes, Error> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::fast(),
    );
    enc.write_all(body)
        .and_then(|()| enc.finish())
        .map(bytes::Bytes::from)
        .map_err(|e| Error::internal(format!("compressing the VM list: {e}")))
}

/// One VM with its devices and, while it runs, what its next start brings.
pub fn show(shared: &Shared, uuid: &str, host: Option<&str>) -> Result<VmDetail, LookupError> {
    let cache = shared.read();
    let (h, v) = cache.resolve_vm(uuid, host)?;
    Ok(vm_detail(h, v))
}
