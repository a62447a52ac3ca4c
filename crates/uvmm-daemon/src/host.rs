//! One worker thread per host. It owns the libvirt connection, turns libvirt events into
//! cache updates, refreshes statistics with one bulk call per interval, carries out
//! requests, and reconnects with exponential back-off when the connection is lost.
//!
//! A thread (not an async task) because libvirt calls block: a slow or hung host blocks its
//! own worker and nothing else.

use crate::bus::EventBus;
use crate::cache::Cache;
use crate::cache::PoolFreshness;
use crate::config::{Monitoring, Timing};
use crate::defwatch::{DefWatch, Seen};
use crate::error::CoreError;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;
use uvmm_backup::{BackupStore, Retention, VersionInput};
use uvmm_libvirt::{
    Connector, ErrorKind, HostEvent, Hypervisor, LibvirtError, Lifecycle, PoolAction,
};
use uvmm_model::domain::parse_domain;

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
    /// The rendered answer to `GET /api/v1/vms` without parameters (see `Manager`).
    pub list_render: Mutex<Option<ListRender>>,
    /// When the API was last asked anything.
    pub demand: Demand,
}

/// When the API was last used, so statistics can slow down while nobody is looking.
#[derive(Debug)]
pub struct Demand {
    epoch: Instant,
    last_ms: std::sync::atomic::AtomicU64,
}

impl Default for Demand {
    fn default() -> Self {
        Demand {
            epoch: Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Demand {
    pub fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms
            .fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
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

/// A piece of work for a host's worker: called with the live connection, or with `None`
/// when the host is unavailable (the job then answers with an error itself).
pub type Job = Box<dyn FnOnce(Option<&JobCtx<'_>>) + Send>;

/// What a job may use: the connection, and a way to bring the cache up to date at once.
pub struct JobCtx<'a> {
    pub hv: &'a dyn Hypervisor,
    worker: &'a Worker,
}

impl JobCtx<'_> {
    /// Re-read a domain into the cache (or drop it when it is gone); errors are logged,
    /// the next event or statistics round heals the cache anyway.
    pub fn refresh(&self, uuid: &str) {
        if let Err(e) = self.worker.refresh(self.hv, uuid) {
            tracing::warn!(uri = %self.worker.uri, %uuid, "refresh after change failed: {e}");
        }
    }

    pub fn uri(&self) -> &str {
        &self.worker.uri
    }

    /// Refresh and re-read the host's pools after a storage change.
    pub fn refresh_pools(&self) {
        if let Err(e) = self.worker.refresh_pools(self.hv) {
            tracing::warn!(uri = %self.worker.uri, "refreshing pools failed: {e}");
        }
    }

    /// Record the domain's definition in the backup store (when it changed); a failure is
    /// returned as a warning for the answer: the change itself has happened.
    pub fn backup(&self, uuid: &str, cause: &str) -> Option<String> {
        // Jobs only define persistent VMs.
        self.worker
            .record(self.hv, uuid, cause, false, Some(true))
            .err()
            .map(|e| format!("the backup of this change failed: {e}"))
    }

    /// Record the definition a VM has right before it is deleted.
    pub fn backup_deleted(&self, uuid: &str) -> Option<String> {
        self.worker
            .record(self.hv, uuid, "delete", true, Some(true))
            .err()
            .map(|e| format!("the backup of the deleted definition failed: {e}"))
    }

    /// Before a change through uvmm: catch a change made without an event (`virsh ...
    /// --config`) since the last look, so it is recorded as `external` and the cache is
    /// right, instead of the coming change's version claiming it.
    pub fn check_definition(&self, uuid: &str) {
        if let Err(e) = self.worker.check_definition(self.hv, uuid) {
            tracing::debug!(uri = %self.worker.uri, %uuid, "definition check failed: {e}");
        }
    }

    /// The reason the host is unavailable, for jobs that were not run.
    pub fn unavailable(worker_uri: &str, cache: &Cache) -> CoreError {
        CoreError::HostUnavailable {
            host: worker_uri.to_string(),
            reason: cache
                .host(worker_uri)
                .and_then(|h| h.last_error.clone())
                .unwrap_or_else(|| "not connected".into()),
        }
    }
}

pub enum HostMsg {
    /// A libvirt event from connection number `gen`.
    Event(u64, HostEvent),
    Job(Job),
    /// The backup resync of connection `gen` is done: the hash of every persistent VM's
    /// definition as it read it, and the VMs for which it recorded a new version (changed
    /// while uvmm was not looking; re-read them, the cache may predate the change).
    Baseline {
        gen: u64,
        hashes: Vec<(String, u64)>,
        changed: Vec<String>,
    },
    Stop,
}

/// The daemon's handle on a worker.
pub struct HostHandle {
    tx: mpsc::Sender<HostMsg>,
}

impl HostHandle {
    pub fn send(&self, msg: HostMsg) -> Result<(), CoreError> {
        self.tx
            .send(msg)
            .map_err(|_| CoreError::Internal("host worker has stopped".into()))
    }

    pub fn stop(&self) {
        let _ = self.tx.send(HostMsg::Stop);
    }
}

/// What recording a definition found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Hash of the persistent definition that was read (None: nothing read, e.g. the VM
    /// is gone or transient).
    pub hash: Option<u64>,
    /// A new backup version was written.
    pub new_version: bool,
}

/// Hash of a definition, as the cache hashes XML.
pub fn definition_hash(xml: &str) -> u64 {
    crate::cache::hash_str(xml)
}

/// Save the persistent definition of `uuid` as a new backup version if it changed; a
/// domain that is gone is recorded as deleted. Transient domains have no definition to
/// keep. `persistent` is passed when the caller knows it; otherwise the cache says.
/// Returns which definition it read (hashed) and whether it wrote a version; the
/// definition is read even without a backup store, since the definition watch compares
/// the hash.
pub fn record_definition(
    shared: &Shared,
    uri: &str,
    hv: &dyn Hypervisor,
    uuid: &str,
    cause: &str,
    deleting: bool,
    persistent: Option<bool>,
) -> Result<Recorded, String> {
    let mut input = VersionInput {
        host: uri.to_string(),
        cause: cause.to_string(),
        deleted: deleting,
        ..VersionInput::default()
    };
    let mark_deleted = |input: &VersionInput| match &shared.backups {
        None => Ok(Recorded::default()),
        Some(store) => store
            .mark_deleted(uuid, input)
            .map(|v| Recorded {
                hash: None,
                new_version: v.is_some(),
            })
            .map_err(|e| e.to_string()),
    };
    let persistent = persistent.or_else(|| {
        shared
            .read()
            .host(uri)
            .and_then(|h| h.vms().get(uuid))
            .map(|v| v.persistent)
    });
    match persistent {
        None => return mark_deleted(&input),
        Some(false) => return Ok(Recorded::default()),
        Some(true) => {}
    }
    let xml = match hv.domain_xml(uuid, true, true) {
        Ok(x) => x,
        Err(e) if e.kind == ErrorKind::NotFound => return mark_deleted(&input),
        Err(e) => return Err(e.to_string()),
    };
    let hash = Some(definition_hash(&xml));
    let Some(store) = &shared.backups else {
        return Ok(Recorded {
            hash,
            new_version: false,
        });
    };
    if let Ok(def) = parse_domain(&xml) {
        input.name = def.name;
        input.hypervisor = def.domain_type;
        input.os_type = def.os_type;
    }
    match store.save(uuid, &xml, &input) {
        Ok(Some(v)) => {
            tracing::debug!(%uri, %uuid, version = v, %cause, "definition backed up");
            if let Err(e) = store.prune_vm(uuid, shared.retention, SystemTime::now()) {
                tracing::warn!(%uuid, "pruning old versions failed: {e}");
            }
            Ok(Recorded {
                hash,
                new_version: true,
            })
        }
        Ok(None) => Ok(Recorded {
            hash,
            new_version: false,
        }),
        Err(e) => {
            tracing::error!(%uri, %uuid, "backup failed: {e}");
            Err(e.to_string())
        }
    }
}

/// Start the worker of `uri`. `first_attempt` fires once the first connection attempt has
/// finished, successfully or not.
pub fn spawn(
    shared: Arc<Shared>,
    uri: String,
    first_attempt: Option<oneshot::Sender<()>>,
) -> HostHandle {
    let (tx, rx) = mpsc::channel();
    let worker = Worker {
        shared,
        uri: uri.clone(),
        rx,
        tx: tx.clone(),
        first_attempt,
        defs: RefCell::default(),
        pool_refresh: RefCell::default(),
    };
    let name = format!("host {}", uri.chars().take(40).collect::<String>());
    if let Err(e) = std::thread::Builder::new()
        .name(name)
        .spawn(move || worker.run())
    {
        tracing::error!(%uri, "cannot start host worker: {e}");
    }
    HostHandle { tx }
}

enum Exit {
    Stop,
    Lost(String),
}

/// A connection attempt running on its own thread; its events carry generation `gen`.
struct Attempt {
    gen: u64,
    rx: mpsc::Receiver<Result<Arc<dyn Hypervisor>, LibvirtError>>,
    started: Instant,
}

struct Worker {
    shared: Arc<Shared>,
    uri: String,
    rx: mpsc::Receiver<HostMsg>,
    tx: mpsc::Sender<HostMsg>,
    first_attempt: Option<oneshot::Sender<()>>,
    /// Definitions as last seen, to catch changes that come without an event.
    defs: RefCell<DefWatch>,
    /// When each pool's figures were last refreshed by libvirt, and why a refresh failed.
    pool_refresh: RefCell<HashMap<String, PoolFreshness>>,
}

impl Worker {
    fn run(mut self) {
        let timing = self.shared.timing;
        let mut delay = timing.reconnect_min;
        let mut generation = 0u64;
        // A connection attempt that has not finished yet (see `Attempt`).
        let mut pending: Option<Attempt> = None;
        loop {
            let attempt = match pending.take() {
                Some(a) => a,
                None => {
                    generation += 1;
                    self.start_attempt(generation)
                }
            };
            let waited = attempt.started.elapsed();
            let outcome = attempt.rx.recv_timeout(
                timing
                    .connect_timeout
                    .saturating_sub(waited)
                    .max(Duration::from_millis(1)),
            );
            let gen = attempt.gen;
            let result = match outcome {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => {
                    let secs = attempt.started.elapsed().as_secs();
                    pending = Some(attempt);
                    Err(LibvirtError::new(
                        ErrorKind::Timeout,
                        format!(
                            "no answer within {secs} s while connecting (unreachable host, or \
                             a libvirtd that does not answer); still trying"
                        ),
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => Err(LibvirtError::new(
                    ErrorKind::Connection,
                    "the connection attempt ended without a result",
                )),
            };
            let started = Instant::now();
            match result.and_then(|hv| self.sync(&hv, gen).map(|_| hv)) {
                Ok(hv) => {
                    tracing::info!(uri = %self.uri, ms = started.elapsed().as_millis() as u64, "host connected and synchronised");
                    self.signal_first_attempt();
                    delay = timing.reconnect_min;
                    let exit = self.serve(&*hv, gen);
                    drop(hv);
                    match exit {
                        Exit::Stop => return,
                        Exit::Lost(reason) => {
                            tracing::warn!(uri = %self.uri, "connection lost: {reason}");
                            self.mark_unavailable(&reason, delay);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(uri = %self.uri, retry_in = ?delay, "cannot connect: {e}");
                    self.mark_unavailable(&e.message, delay);
                    self.signal_first_attempt();
                }
            }
            if let Exit::Stop = self.wait(delay) {
                return;
            }
            delay = (delay * 2).min(timing.reconnect_max);
        }
    }

    /// Open a connection on a thread of its own: libvirt's open blocks without a time
    /// limit (an unreachable `qemu+ssh://` host, a libvirtd that accepts but never
    /// answers), and the worker must be able to give up, say why and retry. At most one
    /// attempt per host runs; a hung one is waited for again at the next retry instead of
    /// starting another thread next to it.
    fn start_attempt(&self, gen: u64) -> Attempt {
        let (tx, rx) = mpsc::channel();
        let events = self.tx.clone();
        let sink: uvmm_libvirt::EventSink = Arc::new(move |ev| {
            let _ = events.send(HostMsg::Event(gen, ev));
        });
        let connector = self.shared.connector.clone();
        let uri = self.uri.clone();
        let spawned = std::thread::Builder::new()
            .name(format!(
                "connect {}",
                uri.chars().take(32).collect::<String>()
            ))
            .spawn(move || {
                // When the worker has given up on this attempt (it stopped), the
                // connection is dropped here, which closes it.
                let _ = tx.send(connector.connect(&uri, sink));
            });
        if let Err(e) = spawned {
            tracing::error!(uri = %self.uri, "cannot start a connection attempt: {e}");
        }
        Attempt {
            gen,
            rx,
            started: Instant::now(),
        }
    }

    fn signal_first_attempt(&mut self) {
        if let Some(tx) = self.first_attempt.take() {
            let _ = tx.send(());
        }
    }

    fn mark_unavailable(&self, reason: &str, retry_in: Duration) {
        let reason = &crate::error::client_safe(reason);
        let now = SystemTime::now();
        self.shared.update(|c| {
            (
                (),
                c.host_unavailable(&self.uri, reason, Some(now + retry_in), now),
            )
        });
    }

    /// Full read of the host after (re)connecting.
    fn sync(&self, hv: &Arc<dyn Hypervisor>, gen: u64) -> Result<(), LibvirtError> {
        let info = hv.host_info()?;
        let domains = hv.list_domains()?;
        let free = hv.free_memory_kib().ok();
        // A new connection: figures and definitions seen on the old one count for nothing.
        self.defs.borrow_mut().reset();
        self.pool_refresh.borrow_mut().clear();
        // Pools first: once the host shows as connected, everything about it is known.
        if let Err(e) = self.refresh_pools(hv.as_ref()) {
            tracing::warn!(uri = %self.uri, "reading storage pools failed: {e}");
        }
        let now = SystemTime::now();
        let persistent: Vec<String> = domains
            .iter()
            .filter(|d| d.persistent)
            .map(|d| d.uuid.clone())
            .collect();
        self.shared
            .update(|c| ((), c.host_synced(&self.uri, info, free, domains, now)));
        // Changes made while uvmm was not watching become versions now, on a thread of
        // their own: with thousands of VMs this takes a while, and the worker must answer
        // events and requests meanwhile. What it reads is also the baseline of the
        // definition watch.
        let (shared, uri, hv) = (self.shared.clone(), self.uri.clone(), hv.clone());
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new()
            .name("backup resync".into())
            .spawn(move || {
                let started = Instant::now();
                let (count, mut failed) = (persistent.len(), 0usize);
                let mut hashes = Vec::with_capacity(count);
                let mut changed = Vec::new();
                for uuid in persistent {
                    match record_definition(
                        &shared,
                        &uri,
                        hv.as_ref(),
                        &uuid,
                        "resync",
                        false,
                        Some(true),
                    ) {
                        Ok(r) => {
                            if let Some(h) = r.hash {
                                hashes.push((uuid.clone(), h));
                            }
                            if r.new_version {
                                changed.push(uuid);
                            }
                        }
                        Err(_) => failed += 1,
                    }
                }
                tracing::info!(
                    %uri,
                    vms = count,
                    failed,
                    ms = started.elapsed().as_millis() as u64,
                    "backups checked against the host's definitions"
                );
                let _ = tx.send(HostMsg::Baseline {
                    gen,
                    hashes,
                    changed,
                });
            });
        if let Err(e) = spawned {
            tracing::error!(uri = %self.uri, "cannot start the backup resync: {e}");
            // Without a baseline the watch would never start: let it learn instead.
            self.defs.borrow_mut().set_baseline([]);
        }
        Ok(())
    }

    /// Wait out the back-off, answering requests while the host is away.
    fn wait(&mut self, delay: Duration) -> Exit {
        let until = Instant::now() + delay;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Exit::Lost(String::new());
            }
            match self.rx.recv_timeout(left) {
                Ok(HostMsg::Stop) | Err(RecvTimeoutError::Disconnected) => return Exit::Stop,
                Ok(HostMsg::Job(job)) => job(None),
                // Events and results of a connection that is gone.
                Ok(HostMsg::Event(..) | HostMsg::Baseline { .. }) => {}
                Err(RecvTimeoutError::Timeout) => return Exit::Lost(String::new()),
            }
        }
    }

    fn serve(&mut self, hv: &dyn Hypervisor, gen: u64) -> Exit {
        let pool_period = self.shared.monitoring.refresh_period();
        let reconcile_interval = self.shared.timing.reconcile_interval;
        let fast = self.shared.timing.stats_interval;
        // The definition watch hands out slices of its cycle at every tick; ticks no
        // coarser than a tenth of the interval let it spread the cycle evenly.
        let defs_tick = fast
            .min(reconcile_interval / 10)
            .max(Duration::from_millis(100));
        let mut last_stats: Option<Instant> = None;
        // Statistics right away: primes CPU usage and catches changes made during sync.
        let mut next_check = Instant::now();
        let mut next_reconcile = Instant::now();
        let mut next_pools = Instant::now() + pool_period;
        let mut next_defs = Instant::now();
        loop {
            // Periodic work comes first in every round, not only when the channel is
            // quiet: a host with a steady stream of events must not starve its
            // statistics, pool figures or definition checks.
            let now = Instant::now();
            let mut result = Ok(());
            if now >= next_pools {
                next_pools = now + pool_period;
                result = self.refresh_pools(hv);
            }
            if result.is_ok() && now >= next_check {
                let interval = self.shared.stats_interval_now();
                match last_stats.filter(|t| now < *t + interval) {
                    // Wake at the fast rate even while idle: a returning reader gets fresh
                    // statistics within one fast interval, and an idle wake-up without a
                    // round costs nothing but the check.
                    Some(t) => next_check = (now + fast).min(t + interval),
                    None => {
                        last_stats = Some(now);
                        next_check = now + fast;
                        let complete = now >= next_reconcile;
                        if complete {
                            next_reconcile = now + reconcile_interval;
                        }
                        result = self.stats(hv, complete);
                    }
                }
            }
            if result.is_ok() && now >= next_defs {
                next_defs = now + defs_tick;
                result = self.sweep_definitions(hv, now);
            }
            if let Err(e) = result {
                if !hv.is_alive() {
                    return Exit::Lost(e.message);
                }
                tracing::warn!(uri = %self.uri, "periodic read failed: {e}");
            }
            let timeout = next_check
                .min(next_pools)
                .min(next_defs)
                .saturating_duration_since(Instant::now());
            let msg = match self.rx.recv_timeout(timeout) {
                Ok(m) => m,
                Err(RecvTimeoutError::Disconnected) => return Exit::Stop,
                Err(RecvTimeoutError::Timeout) => continue,
            };
            match msg {
                HostMsg::Stop => return Exit::Stop,
                HostMsg::Event(g, _) if g != gen => {}
                HostMsg::Event(_, HostEvent::Closed { reason }) => return Exit::Lost(reason),
                HostMsg::Event(
                    _,
                    HostEvent::Lifecycle {
                        uuid,
                        name,
                        event,
                        detail,
                    },
                ) => {
                    tracing::debug!(uri = %self.uri, %name, ?event, detail, "lifecycle event");
                    if let Err(e) = self.refresh(hv, &uuid) {
                        if !hv.is_alive() {
                            return Exit::Lost(e.message);
                        }
                    }
                    // A definition changed outside uvmm (uvmm's own changes were recorded
                    // by their job already, so this finds nothing new).
                    if matches!(event, Lifecycle::Defined | Lifecycle::Undefined) {
                        let _ = self.backup(hv, &uuid, "external", false);
                    }
                }
                HostMsg::Event(_, HostEvent::DomainChanged { uuid, .. }) => {
                    if let Err(e) = self.refresh(hv, &uuid) {
                        if !hv.is_alive() {
                            return Exit::Lost(e.message);
                        }
                    }
                    let _ = self.backup(hv, &uuid, "external", false);
                }
                HostMsg::Baseline { gen: g, .. } if g != gen => {}
                HostMsg::Baseline {
                    hashes, changed, ..
                } => {
                    self.defs.borrow_mut().set_baseline(hashes);
                    for uuid in changed {
                        if let Err(e) = self.refresh(hv, &uuid) {
                            if !hv.is_alive() {
                                return Exit::Lost(e.message);
                            }
                        }
                    }
                }
                HostMsg::Job(job) => {
                    job(Some(&JobCtx { hv, worker: self }));
                    if !hv.is_alive() {
                        return Exit::Lost("connection lost during a request".into());
                    }
                }
            }
        }
    }

    fn backup(
        &self,
        hv: &dyn Hypervisor,
        uuid: &str,
        cause: &str,
        deleting: bool,
    ) -> Result<(), String> {
        self.record(hv, uuid, cause, deleting, None)
    }

    /// Record a definition (see `record_definition`) and remember what was read, so the
    /// definition watch does not mistake a change it has just recorded for a new one.
    fn record(
        &self,
        hv: &dyn Hypervisor,
        uuid: &str,
        cause: &str,
        deleting: bool,
        persistent: Option<bool>,
    ) -> Result<(), String> {
        let r = record_definition(
            &self.shared,
            &self.uri,
            hv,
            uuid,
            cause,
            deleting,
            persistent,
        )?;
        let mut defs = self.defs.borrow_mut();
        match r.hash {
            Some(h) if !deleting => {
                defs.observe(uuid, h);
            }
            _ => defs.forget(uuid),
        }
        Ok(())
    }

    /// Compare one VM's persistent definition with the one seen last (before a change
    /// through uvmm). Only a broken connection is an error.
    fn check_definition(&self, hv: &dyn Hypervisor, uuid: &str) -> Result<(), LibvirtError> {
        match hv.domain_xml(uuid, true, true) {
            Ok(xml) => self.compare_definition(hv, uuid, &xml),
            Err(e) if e.kind == ErrorKind::NotFound => self.definition_gone(hv, uuid),
            Err(e) if e.kind == ErrorKind::Connection => Err(e),
            Err(e) => {
                tracing::debug!(uri = %self.uri, %uuid, "cannot read the definition: {e}");
                Ok(())
            }
        }
    }

    /// A definition read now against the one seen last: a change that came without an
    /// event is recorded as `external` and the VM re-read (its view and ETag).
    fn compare_definition(
        &self,
        hv: &dyn Hypervisor,
        uuid: &str,
        xml: &str,
    ) -> Result<(), LibvirtError> {
        let seen = self.defs.borrow_mut().observe(uuid, definition_hash(xml));
        match seen {
            Seen::Same => {}
            Seen::New => {
                let _ = self.record(hv, uuid, "external", false, None);
            }
            Seen::Changed => {
                tracing::info!(uri = %self.uri, %uuid, "definition changed without an event (e.g. virsh --config): recorded as external");
                // Version first: whoever sees the new view finds its version too.
                let _ = self.record(hv, uuid, "external", false, None);
                self.refresh(hv, uuid)?;
            }
        }
        Ok(())
    }

    /// No persistent definition any more, without an event (or the event is still
    /// queued): the cache learns, and the backup store records the deletion.
    fn definition_gone(&self, hv: &dyn Hypervisor, uuid: &str) -> Result<(), LibvirtError> {
        self.defs.borrow_mut().forget(uuid);
        self.refresh(hv, uuid)?;
        let _ = self.record(hv, uuid, "external", false, None);
        Ok(())
    }

    /// The slice of the definition watch's cycle that is due now.
    fn sweep_definitions(&self, hv: &dyn Hypervisor, now: Instant) -> Result<(), LibvirtError> {
        let interval = self.shared.timing.reconcile_interval;
        let due = self.defs.borrow_mut().due(now, interval, || {
            self.shared
                .read()
                .host(&self.uri)
                .map(|h| {
                    h.vms()
                        .values()
                        .filter(|v| v.persistent)
                        .map(|v| v.uuid.clone())
                        .collect()
                })
                .unwrap_or_default()
        });
        if due.is_empty() {
            return Ok(());
        }
        let read = hv.persistent_definitions(&due)?;
        for (uuid, xml) in &read {
            self.compare_definition(hv, uuid, xml)?;
        }
        let listed: std::collections::HashSet<&str> =
            read.iter().map(|(u, _)| u.as_str()).collect();
        for uuid in due.iter().filter(|u| !listed.contains(u.as_str())) {
            // Not listed as persistent: undefined, made transient, or unreadable; one
            // look at the domain tells which.
            match hv.domain(uuid)? {
                Some(s) if s.persistent => {}
                _ => self.definition_gone(hv, uuid)?,
            }
        }
        Ok(())
    }

    /// Re-read one domain after an event. Whatever the event said, libvirt's answer now is
    /// what counts: a domain may survive an UNDEFINED event (still running, transient).
    fn refresh(&self, hv: &dyn Hypervisor, uuid: &str) -> Result<(), LibvirtError> {
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
    fn refresh_pools(&self, hv: &dyn Hypervisor) -> Result<(), LibvirtError> {
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
    fn stats(&self, hv: &dyn Hypervisor, complete: bool) -> Result<(), LibvirtError> {
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
            let _ = self.backup(hv, &uuid, "resync", false);
        }
        Ok(())
    }
}
