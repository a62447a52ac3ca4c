//! A host's worker: it owns the libvirt connection, turns libvirt events into cache
//! updates, refreshes statistics with one bulk call per interval, carries out requests,
//! and reconnects with exponential back-off when the connection is lost.
//!
//! Workers are actors on the hosts' bounded pool (`crate::actor`), not a thread each: a
//! worker runs when a message (an event, a request) arrives or its next periodic work is
//! due, handles a bounded number of messages and returns the thread. With 2,500 hosts that
//! is a handful of threads instead of 2,500 (plus one per connection attempt). libvirt
//! calls block without a time limit, so a slow or hung host holds a pool thread; the pool
//! adds threads while queued work waits behind such calls (up to 256) and drops them again
//! when idle, so a hung host still blocks only itself. The phases (connecting, serving,
//! away) are in `serve.rs`.

use super::shared::Shared;
use crate::actor::{Mailbox, Runtime};
use crate::backup::record::{record_resync, Resynced};
use crate::cache::PoolFreshness;
use crate::defwatch::DefWatch;
use crate::jobs::JobError;
use crate::jobs::Work;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;
use uvmm_libvirt::{HostEvent, Hypervisor, LibvirtError};

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
    /// `None` when the hosts' pool could not be started.
    tx: Option<Mailbox<HostMsg>>,
}

impl HostHandle {
    pub fn send(&self, msg: HostMsg) -> Result<(), JobError> {
        let stopped = || JobError::WorkerStopped {
            host: self.uri.clone(),
        };
        self.tx
            .as_ref()
            .ok_or_else(stopped)?
            .send(msg)
            .map_err(|_| stopped())
    }

    pub fn stop(&self) {
        let _ = self.send(HostMsg::Stop);
    }

    /// Let the worker look at its schedule again (the statistics rate changed).
    pub fn wake(&self) {
        if let Some(tx) = &self.tx {
            tx.wake();
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
    let rt = match Runtime::hosts() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(%uri, "cannot start host worker: no worker pool: {e}");
            return HostHandle { uri, tx: None };
        }
    };
    let (tx, rx) = rt.mailbox();
    let worker = Worker {
        shared,
        uri: uri.clone(),
        tx: tx.clone(),
        first_attempt,
        defs: RefCell::default(),
        pool_refresh: RefCell::default(),
    };
    rt.start(&tx, Box::new(super::serve::HostActor::new(worker, rx)));
    HostHandle { uri, tx: Some(tx) }
}

/// Milliseconds since `t`, for the log.
pub(super) fn millis(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A connection attempt running as a job on the pool; its events carry generation `gen`.
pub(super) struct Attempt {
    pub(super) gen: u64,
    pub(super) rx: mpsc::Receiver<Result<Arc<dyn Hypervisor>, LibvirtError>>,
    pub(super) started: Instant,
}

pub struct Worker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) uri: String,
    pub(crate) tx: Mailbox<HostMsg>,
    pub(crate) first_attempt: Option<oneshot::Sender<()>>,
    /// Definitions as last seen, to catch changes that come without an event.
    pub(crate) defs: RefCell<DefWatch>,
    /// When each pool's figures were last refreshed by libvirt, and why a refresh failed.
    pub(crate) pool_refresh: RefCell<HashMap<String, PoolFreshness>>,
}

impl Worker {
    /// Open a connection as a job on the pool: libvirt's open blocks without a time limit
    /// (an unreachable `qemu+ssh://` host, a libvirtd that accepts but never answers), and
    /// the worker must be able to give up, say why and retry. At most one attempt per host
    /// runs; a hung one is waited for again at the next retry instead of starting another
    /// next to it. The result wakes the worker.
    pub(super) fn start_attempt(&self, gen: u64) -> Attempt {
        let (tx, rx) = mpsc::channel();
        let events = self.tx.clone();
        let sink: uvmm_libvirt::EventSink = Arc::new(move |ev| {
            let _ = events.send(HostMsg::Event(gen, ev));
        });
        let connector = self.shared.connector.clone();
        let uri = self.uri.clone();
        let wake = self.tx.clone();
        let job = Box::new(move || {
            // When the worker has given up on this attempt (it stopped), the connection
            // is dropped here, which closes it.
            let _ = tx.send(connector.connect(&uri, sink));
            wake.wake();
        });
        match Runtime::hosts() {
            Ok(rt) => rt.submit(job),
            Err(e) => tracing::error!(uri = %self.uri, "cannot start a connection attempt: {e}"),
        }
        Attempt {
            gen,
            rx,
            started: Instant::now(),
        }
    }

    pub(super) fn signal_first_attempt(&mut self) {
        if let Some(tx) = self.first_attempt.take() {
            let _ = tx.send(());
        }
    }

    pub(super) fn mark_unavailable(&self, reason: &str, retry_in: Duration) {
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
    pub(super) fn sync(&self, hv: &Arc<dyn Hypervisor>, gen: u64) -> Result<(), LibvirtError> {
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
}
