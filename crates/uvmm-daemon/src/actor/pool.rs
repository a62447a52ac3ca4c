//! An elastic thread pool for jobs that may block (libvirt calls have no time limit).
//!
//! `core` threads are kept. A monitor adds a thread when the oldest queued job has waited
//! longer than `stall` while fewer than `core` threads are free to make progress, up to
//! `max`. A thread counts as blocked when its job has run longer than `stall` and the
//! thread is not runnable (it waits in the kernel: a libvirt call waiting for its answer);
//! a thread that is merely slow because the machine is loaded is runnable, and another
//! thread would not make the queue move faster. So a few hung calls (an unreachable host,
//! a libvirtd that never answers) get threads of their own while everything else keeps
//! `core` threads, and the number of threads follows the number of hung calls, not the
//! number of hosts. Threads beyond `core` free ones exit after `idle_exit` without work.
//! The monitor sleeps while the queue is empty: an idle pool wakes nobody.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// How a pool grows and shrinks.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Thread names start with this.
    pub name: &'static str,
    /// Threads kept while idle, and the number of free threads the monitor keeps.
    pub core: usize,
    /// Never more threads than this.
    pub max: usize,
    /// A job that has waited (or run) this long counts as stalled (or blocked).
    pub stall: Duration,
    /// Threads above `core` exit after this long without a job.
    pub idle_exit: Duration,
}

/// Figures about a pool, for tests and the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub threads: usize,
    pub peak: usize,
    pub queued: usize,
}

struct State {
    queue: VecDeque<(Instant, Job)>,
    threads: usize,
    peak: usize,
    idle: usize,
    /// Idle threads, the most recently idle last; a job wakes that one, so work stays on
    /// few threads and the others stay idle long enough to exit.
    sleepers: Vec<(u64, Arc<Condvar>)>,
    /// When each busy thread started its current job, and its kernel thread id (by
    /// thread number).
    busy: HashMap<u64, (Instant, libc::pid_t)>,
    next_thread: u64,
    /// The monitor waits for the queue to become non-empty.
    monitor_sleeping: bool,
}

struct Inner {
    config: PoolConfig,
    state: Mutex<State>,
    monitor: Condvar,
}

/// A pool; cheap to clone (all clones are the same pool).
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// A pool with its `core` threads and monitor running. Fails when not even the monitor
    /// and one thread can be started.
    pub fn new(config: PoolConfig) -> std::io::Result<Pool> {
        let pool = Pool {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    threads: 0,
                    peak: 0,
                    idle: 0,
                    sleepers: Vec::new(),
                    busy: HashMap::new(),
                    next_thread: 0,
                    monitor_sleeping: false,
                }),
                config,
                monitor: Condvar::new(),
            }),
        };
        let inner = pool.inner.clone();
        std::thread::Builder::new()
            .name(format!("{} monitor", pool.inner.config.name))
            .spawn(move || monitor(&inner))?;
        let mut st = pool.inner.lock();
        for _ in 0..pool.inner.config.core.max(1) {
            if let Err(e) = pool.inner.spawn_thread(&mut st) {
                if st.threads == 0 {
                    return Err(e);
                }
                tracing::error!("cannot start a {} thread: {e}", pool.inner.config.name);
            }
        }
        drop(st);
        Ok(pool)
    }

    /// Queue a job; it runs on one of the pool's threads.
    pub fn submit(&self, job: Job) {
        let mut st = self.inner.lock();
        st.queue.push_back((Instant::now(), job));
        if let Some((_, sleeper)) = st.sleepers.pop() {
            sleeper.notify_one();
        } else if st.monitor_sleeping {
            st.monitor_sleeping = false;
            self.inner.monitor.notify_one();
        }
    }

    pub fn stats(&self) -> PoolStats {
        let st = self.inner.lock();
        PoolStats {
            threads: st.threads,
            peak: st.peak,
            queued: st.queue.len(),
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spawn_thread(self: &Arc<Self>, st: &mut State) -> std::io::Result<()> {
        let id = st.next_thread;
        let inner = self.clone();
        std::thread::Builder::new()
            .name(format!("{} {id}", self.config.name))
            .spawn(move || inner.serve(id))?;
        st.next_thread += 1;
        st.threads += 1;
        st.peak = st.peak.max(st.threads);
        Ok(())
    }

    fn serve(&self, id: u64) {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let wake = Arc::new(Condvar::new());
        let mut st = self.lock();
        loop {
            st.busy.remove(&id);
            let Some((_, job)) = st.queue.pop_front() else {
                st.idle += 1;
                st.sleepers.push((id, wake.clone()));
                let above_core = st.threads > self.config.core;
                let timed_out = if above_core {
                    let (g, t) = wake
                        .wait_timeout(st, self.config.idle_exit)
                        .unwrap_or_else(|p| p.into_inner());
                    st = g;
                    t.timed_out()
                } else {
                    st = wake.wait(st).unwrap_or_else(|p| p.into_inner());
                    false
                };
                st.idle -= 1;
                // Still listed unless a job woke it (timeout, spurious wake-up).
                st.sleepers.retain(|(i, _)| *i != id);
                // Threads stuck in a long job do not count towards the core: the core's
                // worth of free threads stays while calls hang.
                let stuck = st
                    .busy
                    .values()
                    .filter(|(t, _)| t.elapsed() >= self.config.stall)
                    .count();
                if timed_out
                    && st.queue.is_empty()
                    && st.threads.saturating_sub(stuck) > self.config.core
                {
                    st.threads -= 1;
                    return;
                }
                continue;
            };
            st.busy.insert(id, (Instant::now(), tid));
            drop(st);
            // A panicking job must not take the thread (and the pool's count) with it; the
            // job itself decides what a panic means for its owner.
            if catch_unwind(AssertUnwindSafe(job)).is_err() {
                tracing::error!("a job of {} panicked", self.config.name);
            }
            st = self.lock();
        }
    }
}

/// Add threads while queued jobs wait too long and too few threads make progress.
fn monitor(inner: &Arc<Inner>) {
    let stall = inner.config.stall;
    let mut st = inner.lock();
    loop {
        let Some(waited) = st.queue.front().map(|(t, _)| t.elapsed()) else {
            st.monitor_sleeping = true;
            st = inner.monitor.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        if waited >= stall && st.idle == 0 && st.threads < inner.config.max {
            let blocked = st
                .busy
                .values()
                .filter(|(t, tid)| t.elapsed() >= stall && !runnable(*tid))
                .count();
            if st.threads - blocked.min(st.threads) < inner.config.core {
                if let Err(e) = inner.spawn_thread(&mut st) {
                    tracing::error!("cannot add a {} thread: {e}", inner.config.name);
                }
            }
        }
        // Look again when the oldest job would count as stalled, and not busily: a new
        // thread needs a moment to take its job.
        let wait = stall
            .saturating_sub(waited)
            .max(stall / 10)
            .max(Duration::from_millis(1));
        st = inner
            .monitor
            .wait_timeout(st, wait)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// Whether a thread of this process is running or waiting for a CPU (`R` in
/// /proc/self/task/TID/stat), as opposed to waiting in the kernel. Unknown counts as not.
fn runnable(tid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
        .ok()
        .and_then(|s| {
            let (_, after) = s.rsplit_once(')')?;
            after.trim_start().chars().next()
        })
        .is_some_and(|state| state == 'R')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn pool(core: usize, max: usize, idle_exit_ms: u64) -> Pool {
        Pool::new(PoolConfig {
            name: "test pool",
            core,
            max,
            stall: Duration::from_millis(50),
            idle_exit: Duration::from_millis(idle_exit_ms),
        })
        .unwrap()
    }

    fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < until, "timed out waiting: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn many_short_jobs_run_on_the_core_threads() {
        let p = pool(3, 50, 60_000);
        let (tx, rx) = mpsc::channel();
        for i in 0..2_000 {
            let tx = tx.clone();
            p.submit(Box::new(move || {
                let _ = tx.send(i);
            }));
        }
        let mut got: Vec<i32> = (0..2_000).map(|_| rx.recv().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..2_000).collect::<Vec<_>>());
        // Short jobs hardly ever count as blocked (only when the machine's load keeps a
        // thread off the CPU for a stall period).
        let s = p.stats();
        assert!(s.peak <= 10, "{s:?}");
    }

    /// Queue `n` jobs that hang until released (one send each).
    fn hang(p: &Pool, n: usize) -> mpsc::Sender<()> {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        for _ in 0..n {
            let r = release_rx.clone();
            p.submit(Box::new(move || {
                let _ = r.lock().unwrap().recv();
            }));
        }
        release_tx
    }

    #[test]
    fn blocked_jobs_get_new_threads_and_the_extra_threads_go_when_idle() {
        let p = pool(2, 20, 200);
        // Five jobs that hang until released: more than the core.
        let release_tx = hang(&p, 5);
        // Others still run, within a few stall periods.
        let (tx, rx) = mpsc::channel();
        for i in 0..10 {
            let tx = tx.clone();
            p.submit(Box::new(move || {
                let _ = tx.send(i);
            }));
        }
        for _ in 0..10 {
            rx.recv_timeout(Duration::from_secs(10))
                .expect("a job waited behind hung ones");
        }
        let grown = p.stats().threads;
        assert!(grown > 5, "{grown}");
        assert!(grown <= 20);
        for _ in 0..5 {
            release_tx.send(()).unwrap();
        }
        wait_until("extra threads exit", || p.stats().threads == 2);
    }

    #[test]
    fn extra_threads_exit_while_a_trickle_of_work_goes_on() {
        let p = pool(2, 20, 300);
        let release_tx = hang(&p, 6);
        wait_until("the pool grows", || p.stats().threads >= 6);
        for _ in 0..6 {
            release_tx.send(()).unwrap();
        }
        // A job every 20 ms: spread over all idle threads none would ever idle 300 ms;
        // handed to the most recently idle thread, the extra ones do and exit.
        let (tx, rx) = mpsc::channel();
        let until = Instant::now() + Duration::from_secs(20);
        while p.stats().threads > 2 + 1 {
            assert!(Instant::now() < until, "{:?}", p.stats());
            let tx = tx.clone();
            p.submit(Box::new(move || tx.send(()).unwrap()));
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn never_more_than_max_threads() {
        let p = pool(1, 4, 60_000);
        let release_tx = hang(&p, 10);
        wait_until("the pool reaches its cap", || p.stats().threads == 4);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(p.stats().threads, 4);
        assert_eq!(p.stats().queued, 6);
        for _ in 0..10 {
            release_tx.send(()).unwrap();
        }
        wait_until("every job ran", || p.stats().queued == 0);
    }

    #[test]
    fn busy_threads_are_not_replaced_only_waiting_ones() {
        let p = pool(1, 8, 60_000);
        let (tx, rx) = mpsc::channel();
        // A job that keeps its CPU busy for a while is runnable: no new thread for the
        // job queued behind it (another thread would compete for the same CPUs).
        p.submit(Box::new(|| {
            let until = Instant::now() + Duration::from_millis(400);
            let mut x = 0u64;
            while Instant::now() < until {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }));
        let t = tx.clone();
        p.submit(Box::new(move || t.send(()).unwrap()));
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        // The monitor might have seen the spinning thread off the CPU on a loaded
        // machine; at most a thread or two then.
        assert!(p.stats().peak <= 3, "{:?}", p.stats());
        assert!(runnable(
            // SAFETY: gettid has no preconditions.
            unsafe { libc::gettid() }
        ));
    }

    #[test]
    fn a_panicking_job_keeps_its_thread() {
        let p = pool(1, 1, 60_000);
        p.submit(Box::new(|| panic!("test panic")));
        let (tx, rx) = mpsc::channel();
        p.submit(Box::new(move || tx.send(()).unwrap()));
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(p.stats().threads, 1);
    }
}
