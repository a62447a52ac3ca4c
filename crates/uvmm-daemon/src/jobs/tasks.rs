//! Tasks: long jobs (a volume clone, a managed save) run on a thread of their own with a
//! libvirt connection of their own, so the host's worker keeps serving events,
//! statistics and other requests meanwhile. A task gets an id at once, reports progress
//! and its end on the event stream (`task_progress`, `task_done`), can be cancelled
//! where libvirt allows, and keeps its result for a while (`TaskRetention`).
//!
//! Cancelling (`DELETE /api/v1/tasks/{id}`) does what the task's `CancelMode` says:
//! `Abort` asks libvirt to abort the job (`virDomainAbortJob`; a managed save stops and
//! the VM keeps running); `Undo` is for work libvirt cannot interrupt (a volume copy):
//! it runs to its end, then what it made is deleted; `None` (a snapshot revert): the
//! request is refused. Either way the task ends `cancelled`, or `succeeded` if the work
//! had finished before the request came.

use crate::cache::rfc3339;
use crate::caller::Caller;
use crate::config::TaskRetention;
use crate::error::Error;
use crate::hosts::shared::Shared;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};
use uvmm_api::{CancelMode, Change, Event, Task, TaskKind, TaskState};

/// How often a running task looks at its progress (and at a cancel request).
const POLL: Duration = Duration::from_millis(500);

/// How a task's blocking libvirt call is watched.
pub struct Watch<'a> {
    /// Its progress: bytes done and total, where they can be read.
    pub poll: &'a (dyn Fn() -> Option<(u64, u64)> + Sync),
    /// libvirt's abort of it; `None`: it cannot be interrupted.
    pub abort: Option<&'a (dyn Fn() + Sync)>,
}

/// What makes a job long (see `Job::long`).
#[derive(Debug, Clone)]
pub struct Long {
    pub kind: TaskKind,
    pub cancel: CancelMode,
    /// What it acts on, for people; `None`: the VM's UUID.
    pub target: Option<String>,
}

/// What cancelling or finding a task can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("no task {0}")]
    NotFound(String),
    #[error("task {id} has ended ({state:?}); there is nothing to cancel")]
    Ended { id: String, state: TaskState },
    /// Its work cannot be interrupted nor undone (`CancelMode::None`).
    #[error("task {id} ({kind:?}) cannot be cancelled: libvirt can neither interrupt nor undo it; it runs to its end")]
    NotCancellable { id: String, kind: TaskKind },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One task, shared by its thread, the registry and whoever waits for it.
pub struct TaskLink {
    task: Mutex<Task>,
    cancel: Mutex<bool>,
    /// Wakes the task's watcher: a cancel request, or the end of the work.
    woken: Condvar,
    last_event: Mutex<Option<(Instant, Option<u64>)>>,
    shared: Arc<Shared>,
    /// The registry, for child tasks (an evacuation's migrations).
    registry: Weak<TaskList>,
    /// The work stopped early on a cancel request and still has a result (an
    /// evacuation's report): it ends `cancelled` with that result.
    stopped_early: AtomicBool,
}

impl TaskLink {
    /// A child task (an evacuation's migration of one VM): registered and announced like
    /// any task, with `parent` set; its work runs in the parent's, which ends it with
    /// `end`. Cancelling the child alone cancels only its work.
    pub fn child(&self, long: &Long, uuid: Option<String>) -> Arc<TaskLink> {
        let parent = self.snapshot();
        let task = Task {
            id: crate::ids::random_uuid().unwrap_or_else(|_| format!("{:?}", Instant::now())),
            kind: long.kind,
            target: long
                .target
                .clone()
                .or_else(|| uuid.clone())
                .unwrap_or_default(),
            uuid,
            started: rfc3339(SystemTime::now()),
            cancel: long.cancel,
            parent: Some(parent.id.clone()),
            ..parent
        };
        let link = TaskLink::new(task, self.shared.clone(), self.registry.clone());
        if let Some(r) = self.registry.upgrade() {
            r.add(link.clone());
        }
        link.publish(|task| Change::TaskProgress { task });
        link
    }

    fn new(task: Task, shared: Arc<Shared>, registry: Weak<TaskList>) -> Arc<TaskLink> {
        Arc::new(TaskLink {
            task: Mutex::new(task),
            cancel: Mutex::new(false),
            woken: Condvar::new(),
            last_event: Mutex::default(),
            shared,
            registry,
            stopped_early: AtomicBool::new(false),
        })
    }

    /// Ask the task to stop (see the module's doc); what `DELETE /api/v1/tasks/{id}`
    /// does, and what an evacuation does to its running children when it is cancelled.
    pub fn request_cancel(&self) -> Result<(), TaskError> {
        {
            let mut t = lock(&self.task);
            if t.state.ended() {
                return Err(TaskError::Ended {
                    id: t.id.clone(),
                    state: t.state,
                });
            }
            if t.cancel == CancelMode::None {
                return Err(TaskError::NotCancellable {
                    id: t.id.clone(),
                    kind: t.kind,
                });
            }
            t.state = TaskState::Cancelling;
        }
        *lock(&self.cancel) = true;
        self.wake();
        self.publish(|task| Change::TaskProgress { task });
        Ok(())
    }

    /// The work honoured a cancel request part-way and returns what it did: the task
    /// ends `cancelled`, its result kept.
    pub fn stopped_early(&self) {
        self.stopped_early.store(true, Ordering::SeqCst);
    }

    /// End a child task with its work's outcome (a task spawned by `spawn` is ended
    /// there).
    pub fn end<T: serde::Serialize>(&self, outcome: &Result<T, Error>) {
        match outcome {
            Ok(v) => self.finish(Ok(serde_json::to_value(v).unwrap_or_default())),
            Err(e) => self.finish(Err(e)),
        }
    }

    pub fn snapshot(&self) -> Task {
        lock(&self.task).clone()
    }

    fn publish(&self, change: fn(Box<Task>) -> Change) {
        let task = self.snapshot();
        let (host, host_id) = (task.host.clone(), task.host_id.clone());
        let event = Event::new(&host, &host_id, None, change(Box::new(task)));
        self.shared.bus.publish(vec![event]);
    }

    /// How far the task has come: bytes done of a total (0: unknown). Published when it
    /// changed, at most once per `POLL`.
    pub fn progress(&self, done: u64, total: u64) {
        let percent = (total > 0).then(|| (done.min(total) as f64 * 100.0 / total as f64).floor());
        {
            let mut t = lock(&self.task);
            t.bytes_done = Some(done);
            t.bytes_total = (total > 0).then_some(total);
            t.percent = percent;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a whole percentage, 0-100"
        )]
        let whole = percent.map(|p| p as u64);
        let mut last = lock(&self.last_event);
        let due = match *last {
            None => true,
            Some((at, prev)) => prev != whole && at.elapsed() >= POLL,
        };
        if due {
            *last = Some((Instant::now(), whole));
            drop(last);
            self.publish(|task| Change::TaskProgress { task });
        }
    }

    /// A migration's figures, kept in the task (published with the next progress).
    pub fn migration(&self, m: uvmm_api::MigrationProgress) {
        lock(&self.task).migration = Some(m);
    }

    /// Whether somebody asked the task to stop.
    pub fn cancelled(&self) -> bool {
        *lock(&self.cancel)
    }

    /// Wait up to `timeout` for a cancel request or a wake-up; true when cancelled.
    fn wait(&self, timeout: Duration) -> bool {
        let guard = lock(&self.cancel);
        let (guard, _) = self
            .woken
            .wait_timeout_while(guard, timeout, |c| !*c)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }

    fn wake(&self) {
        self.woken.notify_all();
    }

    /// Run `work` (a blocking libvirt call) while a watcher thread reports its progress
    /// and, once the task is cancelled, calls the abort (libvirt's: `work` then fails as
    /// aborted) until `work` has returned: an abort sent before libvirt started the job
    /// would otherwise be lost.
    pub fn watch<T>(&self, how: Watch<'_>, work: impl FnOnce() -> T) -> T {
        let Watch { poll, abort } = how;
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    if let Some((d, t)) = poll() {
                        self.progress(d, t);
                    }
                    let cancelled = self.wait(POLL);
                    if cancelled && !done.load(Ordering::SeqCst) {
                        if let Some(a) = abort {
                            a();
                        }
                        // Not again at once: give libvirt its time.
                        std::thread::sleep(POLL.min(Duration::from_millis(200)));
                    }
                }
            });
            let out = work();
            done.store(true, Ordering::SeqCst);
            self.wake();
            out
        })
    }

    /// The end: the result (as JSON) or the error, published as `task_done`.
    fn finish(&self, outcome: Result<serde_json::Value, &Error>) {
        {
            let mut t = lock(&self.task);
            t.ended = Some(rfc3339(SystemTime::now()));
            match outcome {
                Ok(value) => {
                    t.state = if self.stopped_early.load(Ordering::SeqCst) {
                        TaskState::Cancelled
                    } else {
                        TaskState::Succeeded
                    };
                    t.result = Some(value);
                    if t.bytes_total.is_some() {
                        t.percent = Some(100.0);
                        t.bytes_done = t.bytes_total;
                    }
                }
                Err(e) => {
                    t.state = if *lock(&self.cancel) {
                        TaskState::Cancelled
                    } else {
                        TaskState::Failed
                    };
                    t.error = Some(crate::http::error::body(e).error);
                }
            }
        }
        self.wake();
        self.publish(|task| Change::TaskDone { task });
    }
}

/// The tasks kept, oldest first, and how long.
pub struct TaskList {
    list: Mutex<VecDeque<Arc<TaskLink>>>,
    retention: TaskRetention,
}

impl TaskList {
    fn add(&self, link: Arc<TaskLink>) {
        let mut list = lock(&self.list);
        self.expire(&mut list);
        list.push_back(link);
    }
}

/// Every task of this daemon's run, the running ones and the recently finished ones.
pub struct Tasks {
    list: Arc<TaskList>,
    shared: Arc<Shared>,
}

impl Tasks {
    pub fn new(shared: Arc<Shared>, retention: TaskRetention) -> Tasks {
        Tasks {
            list: Arc::new(TaskList {
                list: Mutex::default(),
                retention,
            }),
            shared,
        }
    }

    /// A new running task, announced on the event stream.
    pub fn begin(&self, long: &Long, at: &super::At, caller: &Caller) -> Arc<TaskLink> {
        let task = Task {
            id: crate::ids::random_uuid().unwrap_or_else(|_| format!("{:?}", Instant::now())),
            kind: long.kind,
            state: TaskState::Running,
            host: at.uri().to_string(),
            host_id: at.host_id.clone(),
            target: long.target.clone().unwrap_or_else(|| at.vm().to_string()),
            uuid: at.uuid.as_ref().map(|u| u.to_string()),
            user: caller.user().to_string(),
            started: rfc3339(SystemTime::now()),
            ended: None,
            percent: None,
            bytes_done: None,
            bytes_total: None,
            cancel: long.cancel,
            result: None,
            error: None,
            migration: None,
            parent: None,
        };
        let link = TaskLink::new(task, self.shared.clone(), Arc::downgrade(&self.list));
        self.list.add(link.clone());
        link.publish(|task| Change::TaskProgress { task });
        link
    }
}

impl TaskList {
    /// Drop finished tasks that are too old, and the oldest beyond the limit.
    fn expire(&self, list: &mut VecDeque<Arc<TaskLink>>) {
        let now = SystemTime::now();
        let ended_at = |l: &TaskLink| {
            lock(&l.task)
                .ended
                .as_deref()
                .and_then(|e| humantime::parse_rfc3339(e).ok())
        };
        list.retain(|l| {
            ended_at(l).is_none_or(|e| {
                now.duration_since(e).unwrap_or_default() <= self.retention.keep_for
            })
        });
        let mut finished = list.iter().filter(|l| ended_at(l).is_some()).count();
        list.retain(|l| {
            if finished > self.retention.keep_max && ended_at(l).is_some() {
                finished -= 1;
                return false;
            }
            true
        });
    }
}

impl Tasks {
    /// Every task kept, oldest first.
    pub fn list(&self) -> Vec<Task> {
        let mut list = lock(&self.list.list);
        self.list.expire(&mut list);
        list.iter().map(|l| l.snapshot()).collect()
    }

    fn find(&self, id: &str) -> Result<Arc<TaskLink>, TaskError> {
        let mut list = lock(&self.list.list);
        self.list.expire(&mut list);
        list.iter()
            .find(|l| lock(&l.task).id == id)
            .cloned()
            .ok_or_else(|| TaskError::NotFound(id.to_string()))
    }

    pub fn get(&self, id: &str) -> Result<Task, TaskError> {
        self.find(id).map(|l| l.snapshot())
    }

    /// Ask a running task to stop (see the module's doc for what that does).
    pub fn cancel(&self, id: &str) -> Result<Task, TaskError> {
        let link = self.find(id)?;
        link.request_cancel()?;
        Ok(link.snapshot())
    }
}

/// Run a task's work on its own thread and record its end. `run` gets the task's link;
/// the typed outcome goes to `done` (whoever waits), the JSON form into the task.
pub fn spawn<T: serde::Serialize + Send + 'static>(
    link: Arc<TaskLink>,
    run: impl FnOnce(&TaskLink) -> Result<T, Error> + Send + 'static,
    done: tokio::sync::oneshot::Sender<Result<T, Error>>,
) -> Result<(), Error> {
    let id = link.snapshot().id;
    let name = format!("task {}", id.chars().take(8).collect::<String>());
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let outcome = run(&link);
            link.end(&outcome);
            let _ = done.send(outcome);
        })
        .map(|_| ())
        .map_err(|e| Error::internal(format!("cannot start a task: {e}")))
}
