//! Actors on a bounded pool: the host workers run here instead of on a thread each.
//!
//! An actor is its state plus a mailbox (an mpsc channel). Sending to the mailbox
//! schedules the actor on the [`pool`] unless it is scheduled already; one `step` handles a
//! bounded number of messages and the periodic work that is due, then says when it wants
//! to run again, which the one shared [`timer`] remembers. An actor never runs on two
//! threads at once, so its messages are handled in the order they were sent.
//!
//! Scheduling: `IDLE` →(wake)→ `QUEUED` →(a pool thread takes it)→ `RUNNING` →(step ends)→
//! `IDLE`. A wake while `RUNNING` leaves `NOTIFIED`, and the actor is queued again right
//! after its step, so a message sent while the step was draining the mailbox is never
//! lost. `DONE` ignores every wake.

pub mod pool;
pub mod timer;

use pool::{Pool, PoolConfig};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use timer::Timer;

/// What an actor wants after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run again when a message comes, or at this time.
    Wait(Option<Instant>),
    /// Messages are left: run again after the others in the pool's queue had their turn.
    More,
    /// The actor has ended; it is dropped.
    Done,
}

pub trait Actor: Send + 'static {
    fn step(&mut self) -> Next;
}

const IDLE: u8 = 0;
const QUEUED: u8 = 1;
const RUNNING: u8 = 2;
const NOTIFIED: u8 = 3;
const DONE: u8 = 4;

/// Where an actor lives: its state, its scheduling state and its pending timer alarm.
pub struct Cell {
    sched: AtomicU8,
    actor: Mutex<Option<Box<dyn Actor>>>,
    /// The deadline given to the timer and not fired yet.
    alarm_at: Mutex<Option<Instant>>,
    rt: Runtime,
}

impl Cell {
    fn wake(self: &Arc<Self>) {
        let mut s = self.sched.load(SeqCst);
        loop {
            let next = match s {
                IDLE => QUEUED,
                RUNNING => NOTIFIED,
                _ => return,
            };
            match self.sched.compare_exchange(s, next, SeqCst, SeqCst) {
                Ok(_) if next == QUEUED => return self.queue(),
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
    }

    fn queue(self: &Arc<Self>) {
        let cell = self.clone();
        self.rt.pool.submit(Box::new(move || cell.run()));
    }

    fn run(self: Arc<Self>) {
        self.sched.store(RUNNING, SeqCst);
        let mut guard = self.actor.lock().unwrap_or_else(|p| p.into_inner());
        let Some(actor) = guard.as_mut() else {
            self.sched.store(DONE, SeqCst);
            return;
        };
        let next = catch_unwind(AssertUnwindSafe(|| actor.step())).unwrap_or_else(|_| {
            tracing::error!("an actor panicked; it is stopped");
            Next::Done
        });
        match next {
            Next::Done => {
                self.sched.store(DONE, SeqCst);
                let ended = guard.take();
                drop(guard);
                drop(ended);
            }
            Next::More => {
                drop(guard);
                self.sched.store(QUEUED, SeqCst);
                self.queue();
            }
            Next::Wait(at) => {
                drop(guard);
                if let Some(at) = at {
                    self.set_alarm(at);
                }
                if self
                    .sched
                    .compare_exchange(RUNNING, IDLE, SeqCst, SeqCst)
                    .is_err()
                {
                    // Woken while running (NOTIFIED).
                    self.sched.store(QUEUED, SeqCst);
                    self.queue();
                }
            }
        }
    }

    /// One pending alarm per actor: an earlier one already pending covers a later one
    /// (the step it causes asks again).
    fn set_alarm(self: &Arc<Self>, at: Instant) {
        let at = self.rt.timer.round(at);
        let mut pending = self.alarm_at.lock().unwrap_or_else(|p| p.into_inner());
        if pending.is_some_and(|p| p <= at) {
            return;
        }
        *pending = Some(at);
        drop(pending);
        self.rt.timer.add(at, Arc::downgrade(self));
    }

    /// The timer fired `at`; stale alarms (replaced by an earlier one) are ignored.
    fn alarm(self: &Arc<Self>, at: Instant) {
        let mut pending = self.alarm_at.lock().unwrap_or_else(|p| p.into_inner());
        if *pending == Some(at) {
            *pending = None;
            drop(pending);
            self.wake();
        }
    }
}

/// Sends to an actor and schedules it.
pub struct Mailbox<M> {
    tx: mpsc::Sender<M>,
    cell: Arc<Cell>,
}

impl<M> Clone for Mailbox<M> {
    fn clone(&self) -> Self {
        Mailbox {
            tx: self.tx.clone(),
            cell: self.cell.clone(),
        }
    }
}

impl<M> Mailbox<M> {
    /// Queue `msg` for the actor; gives it back when the actor has ended.
    pub fn send(&self, msg: M) -> Result<(), M> {
        self.tx.send(msg).map_err(|e| e.0)?;
        self.cell.wake();
        Ok(())
    }

    /// Run the actor's step soon without a message (something it polls changed).
    pub fn wake(&self) {
        self.cell.wake();
    }
}

/// A pool and a timer that actors run on.
#[derive(Clone)]
pub struct Runtime {
    pool: Pool,
    timer: Timer,
}

impl Runtime {
    pub fn new(config: PoolConfig) -> std::io::Result<Runtime> {
        let timer = Timer::new(&format!("{} timer", config.name))?;
        Ok(Runtime {
            pool: Pool::new(config)?,
            timer,
        })
    }

    /// The runtime of the host workers (see docs/ARCHITECTURE.md): 8 threads kept, up to
    /// 256 while calls hang.
    pub fn hosts() -> Result<&'static Runtime, String> {
        static HOSTS: OnceLock<Result<Runtime, String>> = OnceLock::new();
        HOSTS
            .get_or_init(|| {
                Runtime::new(PoolConfig {
                    name: "hosts",
                    core: 8,
                    max: 256,
                    stall: Duration::from_millis(100),
                    idle_exit: Duration::from_secs(30),
                })
                .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A mailbox for an actor that is not started yet: messages wait until `start`.
    pub fn mailbox<M>(&self) -> (Mailbox<M>, mpsc::Receiver<M>) {
        let (tx, rx) = mpsc::channel();
        let cell = Arc::new(Cell {
            // Counts as queued until started, so no wake queues it before.
            sched: AtomicU8::new(QUEUED),
            actor: Mutex::new(None),
            alarm_at: Mutex::new(None),
            rt: self.clone(),
        });
        (Mailbox { tx, cell }, rx)
    }

    /// Start the actor behind `mailbox`: its first step runs soon.
    pub fn start<M>(&self, mailbox: &Mailbox<M>, actor: Box<dyn Actor>) {
        let cell = &mailbox.cell;
        *cell.actor.lock().unwrap_or_else(|p| p.into_inner()) = Some(actor);
        cell.queue();
    }

    /// Run a one-off job on the pool (e.g. a connection attempt).
    pub fn submit(&self, job: pool::Job) {
        self.pool.submit(job);
    }

    pub fn pool_stats(&self) -> pool::PoolStats {
        self.pool.stats()
    }

    pub fn timer(&self) -> &Timer {
        &self.timer
    }
}

#[cfg(test)]
mod tests;
