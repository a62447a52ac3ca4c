//! A host worker's phases as an actor (see `worker.rs`): connecting (the attempt runs as a
//! pool job and reports back; its time limit is a timer deadline), serving (events,
//! requests and the periodic reads), and away (the back-off, answering requests with
//! "unavailable"). Each step does what is due and says when it wants to run again; it
//! never waits.

use super::worker::{millis, Attempt, HostMsg, Worker};
use crate::actor::{Actor, Next};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uvmm_libvirt::{ErrorKind, HostEvent, Hypervisor, LibvirtError, Lifecycle};

/// Messages handled per step: enough to make a step worth its scheduling, few enough that
/// a host with a flood of events lets the others run in between.
const BUDGET: usize = 32;

enum Phase {
    Connecting(Attempt),
    Serving(Box<Serving>),
    /// Waiting out the back-off until `until`; `pending` is an attempt that did not finish
    /// in time, waited for again instead of starting another.
    Away {
        until: Instant,
        pending: Option<Attempt>,
    },
    Stopped,
}

/// A live connection and the schedule of its periodic reads.
struct Serving {
    hv: Arc<dyn Hypervisor>,
    gen: u64,
    last_stats: Option<Instant>,
    next_reconcile: Instant,
    next_pools: Instant,
    next_defs: Instant,
}

/// Why serving ended.
enum Exit {
    Stop,
    Lost(String),
}

pub(super) struct HostActor {
    w: Worker,
    rx: Receiver<HostMsg>,
    phase: Phase,
    delay: Duration,
    generation: u64,
}

impl HostActor {
    pub(super) fn new(w: Worker, rx: Receiver<HostMsg>) -> HostActor {
        let delay = w.shared.timing.reconnect_min;
        let attempt = w.start_attempt(1);
        HostActor {
            w,
            rx,
            phase: Phase::Connecting(attempt),
            delay,
            generation: 1,
        }
    }
}

impl Actor for HostActor {
    fn step(&mut self) -> Next {
        // Phase changes that need no waiting happen within one step.
        loop {
            let (phase, next) = match std::mem::replace(&mut self.phase, Phase::Stopped) {
                Phase::Connecting(a) => self.connecting(a),
                Phase::Serving(s) => self.serving(s),
                Phase::Away { until, pending } => self.away(until, pending),
                Phase::Stopped => (Phase::Stopped, Some(Next::Done)),
            };
            self.phase = phase;
            if let Some(next) = next {
                return next;
            }
        }
    }
}

/// A phase to go on with, and what to tell the pool (`None`: step the new phase now).
type Turn = (Phase, Option<Next>);

impl HostActor {
    fn connecting(&mut self, a: Attempt) -> Turn {
        let timing = self.w.shared.timing;
        let result = match a.rx.try_recv() {
            Ok(r) => r,
            Err(TryRecvError::Empty) => {
                let deadline = a.started + timing.connect_timeout;
                if Instant::now() < deadline {
                    return (Phase::Connecting(a), Some(Next::Wait(Some(deadline))));
                }
                let secs = a.started.elapsed().as_secs();
                let e = LibvirtError::new(
                    ErrorKind::Timeout,
                    format!(
                        "no answer within {secs} s while connecting (unreachable host, or \
                         a libvirtd that does not answer); still trying"
                    ),
                );
                return self.failed(&e, Some(a));
            }
            Err(TryRecvError::Disconnected) => Err(LibvirtError::new(
                ErrorKind::Connection,
                "the connection attempt ended without a result",
            )),
        };
        let (gen, started) = (a.gen, Instant::now());
        match result.and_then(|hv| self.w.sync(&hv, gen).map(|()| hv)) {
            Ok(hv) => {
                tracing::info!(uri = %self.w.uri, ms = millis(started), "host connected and synchronised");
                self.w.signal_first_attempt();
                self.delay = timing.reconnect_min;
                let now = Instant::now();
                let serving = Serving {
                    hv,
                    gen,
                    // Statistics right away: primes CPU usage and catches changes made
                    // during sync.
                    last_stats: None,
                    next_reconcile: now,
                    next_pools: now + self.w.shared.monitoring.refresh_period(),
                    next_defs: now,
                };
                (Phase::Serving(Box::new(serving)), None)
            }
            Err(e) => self.failed(&e, None),
        }
    }

    fn failed(&mut self, e: &LibvirtError, pending: Option<Attempt>) -> Turn {
        tracing::warn!(uri = %self.w.uri, retry_in = ?self.delay, "cannot connect: {e}");
        self.w.mark_unavailable(&e.message, self.delay);
        self.w.signal_first_attempt();
        self.away_for(pending)
    }

    fn away_for(&mut self, pending: Option<Attempt>) -> Turn {
        let until = Instant::now() + self.delay;
        (Phase::Away { until, pending }, None)
    }

    /// The back-off: requests are answered (the host is unavailable) until it is over.
    fn away(&mut self, until: Instant, pending: Option<Attempt>) -> Turn {
        for _ in 0..BUDGET {
            match self.rx.try_recv() {
                Ok(HostMsg::Stop) | Err(TryRecvError::Disconnected) => {
                    return (Phase::Stopped, Some(Next::Done))
                }
                Ok(HostMsg::Work(work)) => work(None),
                // Dropping the sender tells the task the host is unavailable.
                Ok(HostMsg::Connection(_)) => {}
                // Events and results of a connection that is gone.
                Ok(HostMsg::Event(..) | HostMsg::Baseline { .. }) => {}
                Err(TryRecvError::Empty) => {
                    if Instant::now() < until {
                        return (
                            Phase::Away { until, pending },
                            Some(Next::Wait(Some(until))),
                        );
                    }
                    let timing = self.w.shared.timing;
                    self.delay = (self.delay * 2).min(timing.reconnect_max);
                    let attempt = pending.unwrap_or_else(|| {
                        self.generation += 1;
                        self.w.start_attempt(self.generation)
                    });
                    return (Phase::Connecting(attempt), None);
                }
            }
        }
        (Phase::Away { until, pending }, Some(Next::More))
    }

    fn serving(&mut self, mut s: Box<Serving>) -> Turn {
        // Periodic work comes first in every step, not only when the mailbox is empty: a
        // host with a steady stream of events must not starve its statistics, pool figures
        // or definition checks.
        let now = Instant::now();
        let (result, next_due) = self.periodic(&mut s, now);
        let mut exit = None;
        if let Err(e) = result {
            if !s.hv.is_alive() {
                exit = Some(Exit::Lost(e.message));
            } else {
                tracing::warn!(uri = %self.w.uri, "periodic read failed: {e}");
            }
        }
        let mut next = Next::More;
        if exit.is_none() {
            for _ in 0..BUDGET {
                match self.rx.try_recv() {
                    Ok(msg) => exit = self.handle(&s, msg),
                    Err(TryRecvError::Empty) => {
                        next = Next::Wait(Some(next_due));
                        break;
                    }
                    Err(TryRecvError::Disconnected) => exit = Some(Exit::Stop),
                }
                if exit.is_some() {
                    break;
                }
            }
        }
        match exit {
            None => (Phase::Serving(s), Some(next)),
            Some(Exit::Stop) => (Phase::Stopped, Some(Next::Done)),
            Some(Exit::Lost(reason)) => {
                drop(s);
                tracing::warn!(uri = %self.w.uri, "connection lost: {reason}");
                self.w.mark_unavailable(&reason, self.delay);
                self.away_for(None)
            }
        }
    }

    /// The periodic reads that are due, and when the next one is. No reads are due while
    /// nothing changes but the clock, so an idle host costs one step per due read, not a
    /// poll: statistics at the rate of `Shared::stats_interval_now` (a reader's return
    /// wakes every worker, see `Registry::start`), the definition watch at its tick.
    fn periodic(&self, s: &mut Serving, now: Instant) -> (Result<(), LibvirtError>, Instant) {
        let shared = &self.w.shared;
        let hv = s.hv.as_ref();
        let reconcile_interval = shared.timing.reconcile_interval;
        let interval = shared.stats_interval_now();
        // The definition watch hands out slices of its cycle at every tick (its cost is
        // the definitions it reads, not the ticks). Ticks come at the statistics rate, so
        // that an idle host wakes less often, but no coarser than the part of the
        // interval its cycle leaves free (`defwatch::SPREAD`), so each VM is still read
        // once per interval.
        let defs_tick = interval
            .min(reconcile_interval.mul_f64(1.0 - crate::defwatch::SPREAD))
            .max(Duration::from_millis(100));
        let mut result = Ok(());
        if now >= s.next_pools {
            s.next_pools = now + shared.monitoring.refresh_period();
            result = self.w.refresh_pools(hv);
        }
        if result.is_ok() && s.last_stats.is_none_or(|t| now >= t + interval) {
            s.last_stats = Some(now);
            let complete = now >= s.next_reconcile;
            if complete {
                s.next_reconcile = now + reconcile_interval;
            }
            result = self.w.stats(hv, complete);
        }
        if result.is_ok() && now >= s.next_defs {
            s.next_defs = now + defs_tick;
            result = self.w.sweep_definitions(hv, now);
        }
        let next_stats = s.last_stats.map_or(now, |t| t + interval);
        (result, next_stats.min(s.next_pools).min(s.next_defs))
    }

    /// One message while connected; `Some` when serving ends.
    fn handle(&mut self, s: &Serving, msg: HostMsg) -> Option<Exit> {
        let hv = s.hv.as_ref();
        let lost = |e: LibvirtError| (!hv.is_alive()).then_some(Exit::Lost(e.message));
        match msg {
            HostMsg::Stop => return Some(Exit::Stop),
            HostMsg::Connection(tx) => {
                let _ = tx.send(s.hv.clone());
            }
            HostMsg::Event(g, _) if g != s.gen => {}
            HostMsg::Event(_, HostEvent::Closed { reason }) => return Some(Exit::Lost(reason)),
            HostMsg::Event(
                _,
                HostEvent::Lifecycle {
                    uuid,
                    name,
                    event,
                    detail,
                },
            ) => {
                tracing::debug!(uri = %self.w.uri, %name, ?event, detail, "lifecycle event");
                if let Err(e) = self.w.refresh(hv, &uuid) {
                    if let Some(exit) = lost(e) {
                        return Some(exit);
                    }
                }
                // A definition changed outside uvmm (uvmm's own changes were recorded
                // by their job already, so this finds nothing new).
                if matches!(event, Lifecycle::Defined | Lifecycle::Undefined) {
                    let _ = self.w.backup(hv, &uuid, uvmm_backup::Cause::External);
                }
            }
            HostMsg::Event(_, HostEvent::DomainChanged { uuid, .. }) => {
                if let Err(e) = self.w.refresh(hv, &uuid) {
                    if let Some(exit) = lost(e) {
                        return Some(exit);
                    }
                }
                let _ = self.w.backup(hv, &uuid, uvmm_backup::Cause::External);
            }
            HostMsg::Baseline { gen: g, .. } if g != s.gen => {}
            HostMsg::Baseline {
                hashes, changed, ..
            } => {
                self.w.defs.borrow_mut().set_baseline(hashes);
                for uuid in changed {
                    if let Err(e) = self.w.refresh(hv, &uuid) {
                        if let Some(exit) = lost(e) {
                            return Some(exit);
                        }
                    }
                }
            }
            HostMsg::Work(work) => {
                work(Some((&self.w, hv)));
                if !hv.is_alive() {
                    return Some(Exit::Lost("connection lost during a request".into()));
                }
            }
        }
        None
    }
}
