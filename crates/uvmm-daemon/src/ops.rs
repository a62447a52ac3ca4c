//! The operations the API calls: reads come from the cache (each resource's module has
//! its own), changes are jobs run by [`Ops::run`], the one way to run any job on a host.

use crate::caller::Caller;
use crate::config::ApiPolicy;
use crate::error::Error;
use crate::hosts::facts::HostFacts;
use crate::hosts::registry::Registry;
use crate::hosts::shared::Shared;
use crate::hosts::worker::HostMsg;
use crate::hosts::HostError;
use crate::jobs::{At, HostLink, Job, JobCtx, JobError, Target, Work};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;
use uvmm_api::Profile;

pub struct Ops {
    pub shared: Arc<Shared>,
    pub hosts: Registry,
    profiles: Vec<Profile>,
    /// What API clients may ask for (see `ApiPolicy`).
    pub policy: ApiPolicy,
}

impl Ops {
    pub fn new(
        shared: Arc<Shared>,
        state_dir: PathBuf,
        profiles: Vec<Profile>,
        policy: ApiPolicy,
    ) -> Result<Ops, HostError> {
        Ok(Ops {
            hosts: Registry::new(shared.clone(), state_dir, policy.runtime_hosts.clone())?,
            shared,
            profiles,
            policy,
        })
    }

    /// Run a job on its host and wait for its answer.
    ///
    /// The target is found in the cache first, and the job's own checks run there (404,
    /// 409, 503 before anything is queued). For a VM, a definition check is queued ahead
    /// of the job (the worker runs its queue in order): a change made without an event
    /// (`virsh ... --config`) since the last look is then recorded as `external` before
    /// the job records its own version, instead of being claimed by it.
    pub async fn run<J: Job>(
        &self,
        caller: &Caller,
        target: impl Into<Target>,
        mut job: J,
    ) -> Result<J::Output, Error> {
        let at = self.resolve(&target.into(), &mut job)?;
        if let Some(uuid) = at.uuid.clone() {
            let check: Work = Box::new(move |worker| {
                if let Some((w, hv)) = worker {
                    if let Err(e) = w.check_definition(hv, &uuid) {
                        tracing::debug!(uri = %w.uri, %uuid, "definition check failed: {e}");
                    }
                }
            });
            self.hosts.send(&at.uri, HostMsg::Work(check))?;
        }
        let (tx, rx) = oneshot::channel();
        let shared = self.shared.clone();
        let (caller, uri) = (caller.clone(), at.uri.clone());
        let work: Work = Box::new(move |worker| {
            let result = match worker {
                Some((w, hv)) => {
                    let ctx = JobCtx {
                        hv,
                        caller: &caller,
                        at: &at,
                        shared: &shared,
                        host: HostLink::Worker(w),
                    };
                    job.run(&ctx).map_err(Into::into)
                }
                None => Err(JobCtx::unavailable(&at.uri, &shared.read()).into()),
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
        Ok(At {
            uri: h.uri.clone(),
            host_id: h.id.clone(),
            uuid: vm.map(|v| v.uuid.clone()),
            facts: HostFacts::of(&cache, h, &self.policy.image_dirs),
        })
    }

    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    /// A profile by name (any capitalisation).
    pub fn profile(&self, name: &str) -> Result<Profile, Error> {
        self.profiles
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .cloned()
            .ok_or_else(|| Error::NoProfile {
                what: format!("no profile '{name}'"),
            })
    }

    /// Prometheus text of everything the cache knows.
    pub fn metrics(&self) -> String {
        crate::metrics::render(&self.shared.read())
    }

    /// Stop every worker (they finish their current libvirt call, then exit).
    pub fn shutdown(&self) {
        self.hosts.shutdown();
    }
}
