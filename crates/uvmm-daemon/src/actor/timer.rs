//! One timer thread for every actor: a heap of (deadline, actor). Deadlines are rounded up
//! to a `GRANULE` so that the deadlines of thousands of hosts fall together and the thread
//! wakes once per granule at most, firing them as a batch; a deadline never fires early.
//! While no deadline is pending the thread sleeps.

use super::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Deadlines are rounded up to a multiple of this (timer coalescing).
pub const GRANULE: Duration = Duration::from_millis(25);

struct Entry {
    at: Instant,
    seq: u64,
    cell: Weak<Cell>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct State {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    /// Times the thread woke up (for tests: an idle timer does not poll).
    wakeups: u64,
}

struct Inner {
    epoch: Instant,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Clone)]
pub struct Timer {
    inner: Arc<Inner>,
}

impl Timer {
    pub fn new(name: &str) -> std::io::Result<Timer> {
        let inner = Arc::new(Inner {
            epoch: Instant::now(),
            state: Mutex::new(State {
                heap: BinaryHeap::new(),
                seq: 0,
                wakeups: 0,
            }),
            changed: Condvar::new(),
        });
        let run = inner.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run.run())?;
        Ok(Timer { inner })
    }

    /// `at` rounded up to the timer's granule.
    pub fn round(&self, at: Instant) -> Instant {
        let since = at.saturating_duration_since(self.inner.epoch);
        let g = GRANULE.as_nanos();
        let rounded = since.as_nanos().div_ceil(g) * g;
        let extra = rounded - since.as_nanos();
        // `extra` is below one granule, so it fits.
        at + Duration::from_nanos(u64::try_from(extra).unwrap_or(0))
    }

    /// Wake `cell` at `at` (already rounded).
    pub(super) fn add(&self, at: Instant, cell: Weak<Cell>) {
        let mut st = self.inner.lock();
        let earliest = st.heap.peek().is_none_or(|Reverse(e)| at < e.at);
        st.seq += 1;
        let seq = st.seq;
        st.heap.push(Reverse(Entry { at, seq, cell }));
        if earliest {
            self.inner.changed.notify_one();
        }
    }

    pub fn wakeups(&self) -> u64 {
        self.inner.lock().wakeups
    }

    pub fn pending(&self) -> usize {
        self.inner.lock().heap.len()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run(&self) {
        let mut st = self.lock();
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while st.heap.peek().is_some_and(|Reverse(e)| e.at <= now) {
                if let Some(Reverse(e)) = st.heap.pop() {
                    due.push(e);
                }
            }
            if !due.is_empty() {
                drop(st);
                for e in due {
                    if let Some(cell) = e.cell.upgrade() {
                        cell.alarm(e.at);
                    }
                }
                st = self.lock();
                continue;
            }
            st = match st.heap.peek().map(|Reverse(e)| e.at) {
                None => self.changed.wait(st).unwrap_or_else(|p| p.into_inner()),
                Some(at) => {
                    self.changed
                        .wait_timeout(st, at.saturating_duration_since(now))
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
            st.wakeups += 1;
        }
    }
}
