//! One worker thread per host. It owns the libvirt connection, turns libvirt events into
//! cache updates, refreshes statistics with one bulk call per interval, carries out
//! requests, and reconnects with exponential back-off when the connection is lost.
//!
//! A thread (not an async task) because libvirt calls block: a slow or hung host blocks its
//! own worker and nothing else.

use super::shared::Shared;
use crate::backup::record::{record_resync, Resynced};
use crate::cache::PoolFreshness;
use crate::defwatch::DefWatch;
use crate::jobs::JobError;
use crate::jobs::Work;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;
use uvmm_libvirt::{ErrorKind, HostEvent, Hypervisor, LibvirtError, Lifecycle};

pub enum HostMsg {
    /// A libvirt event from connection number `gen`.
    Event(u64, HostEvent),
    /// Work of a job (see `jobs`).
    Work(Work),
    /// The worker's connection, for a task on a host where every connection opens a
    /// host of its own (`HostUri::host_per_connection`); dropped when unavailable.
    Connection(mpsc::Sender<Arc<dyn Hypervisor>>),
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
#[derive(Clone)]
pub struct HostHandle {
    uri: String,
    tx: mpsc::Sender<HostMsg>,
}

impl HostHandle {
    pub fn send(&self, msg: HostMsg) -> Result<(), JobError> {
        self.tx.send(msg).map_err(|_| JobError::WorkerStopped {
            host: self.uri.clone(),
        })
    }

    pub fn stop(&self) {
        let _ = self.tx.send(HostMsg::Stop);
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
    HostHandle { uri, tx }
}

/// Milliseconds since `t`, for the log.
fn millis(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

enum Exit {
    Stop,
    Lost(String),
}

/// A connection attempt running on its own thread; its events carry generation `gen`.
struct Attempt {
    gen: u64,
    pub(crate) rx: mpsc::Receiver<Result<Arc<dyn Hypervisor>, LibvirtError>>,
    started: Instant,
}

pub struct Worker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) uri: String,
    pub(crate) rx: mpsc::Receiver<HostMsg>,
    pub(crate) tx: mpsc::Sender<HostMsg>,
    pub(crate) first_attempt: Option<oneshot::Sender<()>>,
    /// Definitions as last seen, to catch changes that come without an event.
    pub(crate) defs: RefCell<DefWatch>,
    /// When each pool's figures were last refreshed by libvirt, and why a refresh failed.
    pub(crate) pool_refresh: RefCell<HashMap<String, PoolFreshness>>,
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
                    tracing::info!(uri = %self.uri, ms = millis(started), "host connected and synchronised");
                    self.signal_first_attempt();
                    delay = timing.reconnect_min;
                    let exit = self.serve(&hv, gen);
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
        // Changes made while uvmm was not watching become versions now, on the bounded
        // backup pool (`pool.rs`): with thousands of VMs this takes a while, and the
        // worker must answer events and requests meanwhile. What it reads is also the
        // baseline of the definition watch.
        let (shared, uri, hv) = (self.shared.clone(), self.uri.clone(), hv.clone());
        let tx = self.tx.clone();
        let spawned = super::pool::submit(Box::new(move || {
            let started = Instant::now();
            let count = persistent.len();
            let Resynced {
                hashes,
                changed,
                failed,
            } = record_resync(&shared, &uri, hv.as_ref(), persistent);
            tracing::info!(
                %uri,
                vms = count,
                failed,
                ms = millis(started),
                "backups checked against the host's definitions"
            );
            let _ = tx.send(HostMsg::Baseline {
                gen,
                hashes,
                changed,
            });
        }));
        if spawned.is_err() {
            tracing::error!(uri = %self.uri, "cannot start the backup resync: no backup I/O thread");
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
                Ok(HostMsg::Work(work)) => work(None),
                // Dropping the sender tells the task the host is unavailable.
                Ok(HostMsg::Connection(_)) => {}
                // Events and results of a connection that is gone.
                Ok(HostMsg::Event(..) | HostMsg::Baseline { .. }) => {}
                Err(RecvTimeoutError::Timeout) => return Exit::Lost(String::new()),
            }
        }
    }

    fn serve(&mut self, conn: &Arc<dyn Hypervisor>, gen: u64) -> Exit {
        let hv = conn.as_ref();
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
                HostMsg::Connection(tx) => {
                    let _ = tx.send(conn.clone());
                }
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
                        let _ = self.backup(hv, &uuid, uvmm_backup::Cause::External);
                    }
                }
                HostMsg::Event(_, HostEvent::DomainChanged { uuid, .. }) => {
                    if let Err(e) = self.refresh(hv, &uuid) {
                        if !hv.is_alive() {
                            return Exit::Lost(e.message);
                        }
                    }
                    let _ = self.backup(hv, &uuid, uvmm_backup::Cause::External);
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
                HostMsg::Work(work) => {
                    work(Some((self, hv)));
                    if !hv.is_alive() {
                        return Exit::Lost("connection lost during a request".into());
                    }
                }
            }
        }
    }
}
