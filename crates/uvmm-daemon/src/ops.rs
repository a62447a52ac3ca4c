//! The operations the API calls: reads come from the cache (each resource's module has
//! its own), changes are jobs run by [`Ops::run`], the one way to run any job on a host.

use crate::caller::Caller;
use crate::config::ApiPolicy;
use crate::config::{PeerUris, TaskRetention};
use crate::directory::DirectoryMode;
use crate::error::Error;
use crate::hosts::facts::HostFacts;
use crate::hosts::registry::Registry;
use crate::hosts::shared::Shared;
use crate::hosts::source::HostSource;
use crate::hosts::worker::{HostHandle, HostMsg};
use crate::jobs::tasks::{self, Long, Tasks};
use crate::jobs::{At, HostLink, Job, JobCtx, JobError, Target, Work};
use crate::profiles::ProfileSet;
use std::sync::Arc;
use tokio::sync::oneshot;
use uvmm_api::Profile;
use uvmm_api::Task;
use uvmm_libvirt::Hypervisor;
use uvmm_model::hosts::HostUri;
use uvmm_model::uuid::Uuid;

/// How a job started: done (a short job's answer), or running as a task (its state now,
/// and its answer when it ends).
pub enum Started<T> {
    Done(T),
    Task(Box<Task>, oneshot::Receiver<Result<T, Error>>),
}

/// A connection for a task: a new one through the connector, or the worker's own where
/// every connection opens a host of its own (the libvirt test driver with a node file).
fn task_connection(
    shared: &Shared,
    worker: &HostHandle,
    host: &HostUri,
) -> Result<Arc<dyn Hypervisor>, Error> {
    let uri = host.uri.as_str();
    let unavailable = |reason: String| JobError::HostUnavailable {
        host: uri.to_string(),
        reason,
    };
    if host.host_per_connection() {
        let (tx, rx) = std::sync::mpsc::channel();
        worker.send(HostMsg::Connection(tx))?;
        return rx
            .recv()
            .map_err(|_| unavailable("not connected".into()).into());
    }
    // Events of this connection are the worker's business (it has its own).
    let ignore: uvmm_libvirt::EventSink = Arc::new(|_| {});
    shared
        .connector
        .connect(uri, ignore)
        .map_err(|e| unavailable(crate::error::client_safe(&e.message)).into())
}

pub struct Ops {
    pub shared: Arc<Shared>,
    pub hosts: Arc<Registry>,
    pub tasks: Tasks,
    pub profiles: Arc<ProfileSet>,
    /// What API clients may ask for (see `ApiPolicy`).
    pub policy: ApiPolicy,
    /// How the hosts' libvirtds reach each other (migration).
    pub peers: PeerUris,
    /// Directory mode (`-b ldap://…`); `None` = standalone.
    pub directory: Option<Arc<DirectoryMode>>,
}

impl Ops {
    /// The operations over the hosts of `source` (started with `hosts.start()`).
    pub fn new(
        shared: Arc<Shared>,
        source: Box<dyn HostSource>,
        profiles: Vec<Profile>,
        policy: ApiPolicy,
    ) -> Ops {
        Ops {
            hosts: Arc::new(
                Registry::new(shared.clone(), source, policy.runtime_hosts.clone())
                    .trust_directory_hosts(policy.trust_directory_hosts),
            ),
            tasks: Tasks::new(shared.clone(), TaskRetention::default()),
            shared,
            profiles: Arc::new(ProfileSet::new(profiles)),
            policy,
            peers: PeerUris::default(),
            directory: None,
        }
    }

    /// How the hosts' libvirtds reach each other for migration.
    pub fn with_peer_uris(mut self, peers: PeerUris) -> Ops {
        self.peers = peers;
        self
    }

    /// Directory mode: follow `directory` (hosts through the source the registry was
    /// made with, `hosts` its directory side; profiles here).
    pub fn with_directory(
        mut self,
        directory: Arc<DirectoryMode>,
        hosts: crate::directory::source::DirectoryHosts,
    ) -> Ops {
        if let Ok(d) = directory.dir.try_lock() {
            self.profiles.merge_directory(d.snapshot());
            let notes = crate::directory::notes::all_notes(&d);
            self.shared.update(|c| ((), c.set_directory_notes(notes)));
        }
        directory.run(hosts, self.profiles.clone(), self.shared.clone());
        self.directory = Some(directory);
        self
    }

    /// Standalone, or the state of the directory connection.
    pub fn directory_status(&self) -> uvmm_api::DirectoryStatus {
        let Some(d) = &self.directory else {
            return uvmm_api::DirectoryStatus::standalone();
        };
        let mut status = d.status();
        status.refused_hosts = self.hosts.refused_directory_hosts();
        status
    }

    /// Run a job on its host and wait for its answer (a long job: for the end of its
    /// task).
    pub async fn run<J: Job>(
        &self,
        caller: &Caller,
        target: impl Into<Target>,
        job: J,
    ) -> Result<J::Output, Error> {
        match self.start(caller, target, job).await? {
            Started::Done(out) => Ok(out),
            Started::Task(_, done) => done
                .await
                .unwrap_or_else(|_| Err(Error::internal("a task ended without an answer"))),
        }
    }

    /// Start a job: a short one runs on its host's worker and its answer is waited for;
    /// a long one becomes a task (see `jobs::tasks`) that runs on, and is answered at
    /// once.
    ///
    /// The target is found in the cache first, and the job's own checks run there (404,
    /// 409, 503 before anything is queued). For a VM, a definition check is queued ahead
    /// of the job (the worker runs its queue in order): a change made without an event
    /// (`virsh ... --config`) since the last look is then recorded as `external` before
    /// the job records its own version, instead of being claimed by it.
    pub async fn start<J: Job>(
        &self,
        caller: &Caller,
        target: impl Into<Target>,
        mut job: J,
    ) -> Result<Started<J::Output>, Error> {
        let at = self.resolve(&target.into(), &mut job)?;
        if let Some(uuid) = at.uuid.clone() {
            let check: Work = Box::new(move |worker| {
                if let Some((w, hv)) = worker {
                    if let Err(e) = w.check_definition(hv, &uuid) {
                        tracing::debug!(uri = %w.uri, %uuid, "definition check failed: {e}");
                    }
                }
            });
            self.hosts.send(at.uri(), HostMsg::Work(check))?;
        }
        match job.long() {
            None => self.on_worker(caller, at, job).await.map(Started::Done),
            Some(long) => self.as_task(caller, at, job, &long),
        }
    }

    /// Run a short job on its host's worker and wait for it (504 after `call_timeout`).
    async fn on_worker<J: Job>(&self, caller: &Caller, at: At, job: J) -> Result<J::Output, Error> {
        let (tx, rx) = oneshot::channel();
        let shared = self.shared.clone();
        let (caller, uri) = (caller.clone(), at.uri().to_string());
        let work: Work = Box::new(move |worker| {
            let result = match worker {
                Some((w, hv)) => {
                    let ctx = JobCtx {
                        hv,
                        caller: &caller,
                        at: &at,
                        shared: &shared,
                        host: HostLink::Worker(w),
                        task: None,
                    };
                    job.run(&ctx)
                        .map_err(|e| Into::<Error>::into(e).on_host(&at.host_id, &at.host))
                }
                None => Err(JobCtx::unavailable(at.uri(), &shared.read()).into()),
            };
            let _ = tx.send(result);
        });
        self.hosts.send(&uri, HostMsg::Work(work))?;
        let timeout = self.shared.timing.call_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(JobError::Timeout {
                host: uri,
                secs: timeout.as_secs(),
            }
            .into()),
            Ok(Err(_)) => Err(JobError::WorkerStopped { host: uri }.into()),
            Ok(Ok(result)) => result,
        }
    }

    /// Run a long job as a task: its own thread, its own connection (the worker's where
    /// every connection opens a host of its own, `test:///FILE`), the worker reached
    /// through its queue.
    fn as_task<J: Job>(
        &self,
        caller: &Caller,
        at: At,
        job: J,
        long: &Long,
    ) -> Result<Started<J::Output>, Error> {
        let handle = self
            .hosts
            .handle(at.uri())
            .ok_or_else(|| JobError::NoWorker {
                host: at.uri().to_string(),
            })?;
        let link = self.tasks.begin(long, &at, caller);
        let task = link.snapshot();
        let (tx, rx) = oneshot::channel();
        let (shared, caller) = (self.shared.clone(), caller.clone());
        tasks::spawn(
            link,
            move |link| {
                let hv = task_connection(&shared, &handle, &at.host)?;
                let send = |work: Work| handle.send(HostMsg::Work(work)).is_ok();
                let ctx = JobCtx {
                    hv: hv.as_ref(),
                    caller: &caller,
                    at: &at,
                    shared: &shared,
                    host: HostLink::Queue(&send),
                    task: Some(link),
                };
                job.run(&ctx)
                    .map_err(|e| Into::<Error>::into(e).on_host(&at.host_id, &at.host))
            },
            tx,
        )?;
        Ok(Started::Task(Box::new(task), rx))
    }
    /// Find a job's target in the cache (its host must be connected) and let the job
    /// check itself against the cache.
    fn resolve<J: Job>(&self, target: &Target, job: &mut J) -> Result<At, Error> {
        let cache = self.shared.read();
        let (h, vm) = match target {
            Target::Vm(r) => {
                let (h, v) = cache.resolve_vm(&r.uuid, r.host.as_deref())?;
                (h, Some(v))
            }
            Target::Host(id) => (cache.resolve_host(id)?, None),
        };
        h.ensure_available()?;
        job.prepare(&cache, h, vm)?;
        let host = HostUri::parse(&h.uri).map_err(|e| Error::internal(e.to_string()))?;
        let uuid = vm
            .map(|v| Uuid::parse(&v.uuid))
            .transpose()
            .map_err(|e| Error::internal(e.to_string()))?;
        Ok(At {
            host,
            host_id: h.id.clone(),
            uuid,
            facts: HostFacts::of(&cache, h, &self.policy.image_dirs),
        })
    }

    /// How long finished tasks are kept (the default: an hour, at most 1000).
    pub fn with_task_retention(mut self, retention: TaskRetention) -> Ops {
        self.tasks = Tasks::new(self.shared.clone(), retention);
        self
    }

    pub fn profiles(&self) -> Vec<Profile> {
        self.profiles.all()
    }

    /// A profile by name (any capitalisation).
    pub fn profile(&self, name: &str) -> Result<Profile, Error> {
        self.profiles.find(name).ok_or_else(|| Error::NoProfile {
            what: format!("no profile '{name}'"),
        })
    }

    /// Prometheus text of everything the cache knows.
    pub fn metrics(&self) -> String {
        let mut text = crate::metrics::render(&self.shared.read());
        crate::metrics::render_directory(&mut text, &self.directory_status());
        text
    }

    /// Stop every worker (they finish their current libvirt call, then exit).
    pub fn shutdown(&self) {
        self.hosts.shutdown();
    }
}
