//! What the daemon's parts share: the cache, the event bus, timing, the connector, the
//! backup store, and how much anybody is watching.

use crate::bus::EventBus;
use crate::cache::Cache;
use crate::config::{Monitoring, Timing};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};
use uvmm_backup::{BackupStore, Retention};
use uvmm_libvirt::Connector;

/// What the daemon's parts share.
pub struct Shared {
    pub cache: RwLock<Cache>,
    pub bus: EventBus,
    pub timing: Timing,
    pub connector: Arc<dyn Connector>,
    /// Where every definition change is recorded (None: no backups, for tests).
    pub backups: Option<Arc<BackupStore>>,
    pub retention: Retention,
    pub monitoring: Monitoring,
    /// The rendered answer to `GET /api/v1/vms` without parameters (see `vm::read::list_all`).
    pub list_render: Mutex<Option<ListRender>>,
    /// When the API was last asked anything.
    pub demand: Demand,
}

/// When the API was last used, so statistics can slow down while nobody is looking.
pub struct Demand {
    epoch: Instant,
    last_ms: std::sync::atomic::AtomicU64,
    /// Called when a request comes after a pause of at least the given length (a reader
    /// returns): the host workers sleep until their next due read and are woken by it
    /// rather than polling for a changed rate.
    on_return: OnceLock<(Duration, ReturnHook)>,
}

type ReturnHook = Box<dyn Fn() + Send + Sync>;

impl std::fmt::Debug for Demand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demand")
            .field("idle_for", &self.idle_for())
            .finish_non_exhaustive()
    }
}

impl Default for Demand {
    fn default() -> Self {
        Demand {
            epoch: Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
            on_return: OnceLock::new(),
        }
    }
}

impl Demand {
    pub fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let before = self
            .last_ms
            .fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
        if let Some((pause, hook)) = self.on_return.get() {
            if Duration::from_millis(ms.saturating_sub(before)) >= *pause {
                hook();
            }
        }
    }

    /// Call `hook` when a request comes after `pause` without one (set once).
    pub fn on_return(&self, pause: Duration, hook: ReturnHook) {
        let _ = self.on_return.set((pause, hook));
    }

    /// Time since the last request (since start when there was none).
    pub fn idle_for(&self) -> Duration {
        let last = self.last_ms.load(std::sync::atomic::Ordering::Relaxed);
        self.epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }
}

/// A rendered full VM list and the cache state it shows.
pub struct ListRender {
    pub generation: u64,
    pub stats_generation: u64,
    pub at: Instant,
    pub body: bytes::Bytes,
    /// The weak entity tag of `body` (see `vm::read::list_all`).
    pub etag: String,
    /// `body` gzip-compressed, made on the first request that accepts it.
    pub gzip: Option<bytes::Bytes>,
}

impl Shared {
    /// Apply a cache change and publish its events under one lock, keeping event order
    /// equal to change order.
    pub fn update<R>(&self, f: impl FnOnce(&mut Cache) -> (R, Vec<uvmm_api::Event>)) -> R {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        let (r, events) = f(&mut cache);
        if !events.is_empty() {
            cache.generation += 1;
        }
        self.bus.publish(events);
        r
    }

    /// The statistics interval to use now. Statistics are read for people (CPU and
    /// memory on a page, metrics) and cost each host one libvirt call per round, which at
    /// 200 hosts is most of an idle daemon's CPU. So while nobody watches — no event
    /// stream open and no request for three intervals — rounds come every
    /// `idle_stats_interval` instead; the first request after that brings the fast rate
    /// back from the next round on.
    pub fn stats_interval_now(&self) -> Duration {
        let t = &self.timing;
        let watched = self.bus.subscribers() > 0 || self.demand.idle_for() < t.stats_interval * 3;
        if watched {
            t.stats_interval
        } else {
            t.idle_stats_interval.max(t.stats_interval)
        }
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(|p| p.into_inner())
    }
}
