//! Which hosts are managed and their workers: the hosts of the source (`source.rs`),
//! started, added and removed at runtime.

use super::shared::Shared;
use super::source::{HostChange, HostSource};
use super::worker::{self, HostHandle, HostMsg};
use super::HostError;
use crate::cache::host_summary;
use crate::error::Error;
use crate::jobs::JobError;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::oneshot;
use uvmm_api::{HostOrigin, HostSummary};
use uvmm_model::hosts::{HostUri, RuntimeHostPolicy};

/// How long `POST /hosts` waits for the first connection attempt before answering.
const ADD_WAIT: Duration = Duration::from_secs(10);

/// The managed hosts and their workers.
pub struct Registry {
    shared: Arc<Shared>,
    workers: Mutex<HashMap<String, HostHandle>>,
    /// Where the host list comes from, and where changes through the API are kept.
    source: Box<dyn HostSource>,
    /// Held across check, keep and spawn of an add or remove: two concurrent adds of one
    /// URI must not both succeed.
    changing: Mutex<()>,
    /// The rules for hosts added through the API.
    policy: RuntimeHostPolicy,
    /// Connect to the directory's hosts without those rules (`[directory] trust_host_uris`).
    trust_directory: bool,
    /// Directory hosts refused by those rules, with the reason (`GET /api/v1/directory`).
    refused: Mutex<BTreeMap<String, String>>,
}

impl Registry {
    pub fn new(
        shared: Arc<Shared>,
        source: Box<dyn HostSource>,
        policy: RuntimeHostPolicy,
    ) -> Registry {
        Registry {
            shared,
            workers: Mutex::new(HashMap::new()),
            source,
            changing: Mutex::new(()),
            policy,
            trust_directory: false,
            refused: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whoever can write host entries in the directory is trusted like the configuration
    /// file (docs/security.md); by default directory hosts meet the API's rules.
    pub fn trust_directory_hosts(mut self, trust: bool) -> Registry {
        self.trust_directory = trust;
        self
    }

    /// Whether a host of this origin may be connected: hosts saved by API clients and
    /// (unless trusted) hosts named by the directory meet the runtime host policy, since
    /// libvirt acts on the URI with uvmmd's rights at every (re)connection.
    fn admit(&self, uri: &str, origin: HostOrigin) -> bool {
        let checked = match origin {
            HostOrigin::Runtime => true,
            HostOrigin::Directory => !self.trust_directory,
            HostOrigin::Cmdline | HostOrigin::Config => false,
        };
        if !checked {
            return true;
        }
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        match self.check_runtime_uri(uri) {
            Ok(_) => {
                refused.remove(uri);
                true
            }
            Err(e) => {
                tracing::error!(%uri, ?origin, "not connecting to this host: {e}");
                if origin == HostOrigin::Directory {
                    refused.insert(uri.to_string(), e.to_string());
                }
                false
            }
        }
    }

    /// The directory's hosts that are not connected because the runtime host policy
    /// refuses their URI: (URI, reason), for `GET /api/v1/directory`.
    pub fn refused_directory_hosts(&self) -> Vec<uvmm_api::RefusedHost> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(uri, reason)| uvmm_api::RefusedHost {
                uri: uri.clone(),
                reason: reason.clone(),
            })
            .collect()
    }

    /// Start managing the source's hosts, and follow the changes it makes on its own.
    pub fn start(self: &Arc<Self>) -> Result<(), HostError> {
        // Workers sleep until their next due read; when a reader returns after the pause
        // that slows statistics down (`Shared::stats_interval_now`), they look again now.
        let registry = Arc::downgrade(self);
        self.shared.demand.on_return(
            self.shared.timing.stats_interval * 3,
            Box::new(move || {
                if let Some(r) = registry.upgrade() {
                    r.wake_all();
                }
            }),
        );
        for (uri, origin) in self.source.initial()? {
            // Saved by an API client perhaps before today's rules, or named by the
            // directory: checked again.
            if self.admit(&uri, origin) {
                self.spawn(&uri, origin, None);
            }
        }
        if let Some(mut changes) = self.source.changes() {
            let registry = Arc::downgrade(self);
            tokio::spawn(async move {
                while let Some(change) = changes.recv().await {
                    let Some(r) = registry.upgrade() else { break };
                    r.apply(change);
                }
            });
        }
        Ok(())
    }

    /// A change the source made on its own.
    fn apply(&self, change: HostChange) {
        let _changing = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        match change {
            HostChange::Added { uri, origin } => {
                if self.shared.read().host(&uri).is_none() && self.admit(&uri, origin) {
                    self.spawn(&uri, origin, None);
                }
            }
            HostChange::Removed { uri } => {
                self.refused
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&uri);
                self.stop(&uri)
            }
        }
    }

    /// Stop a host's worker and forget the host (its VMs are untouched).
    fn stop(&self, uri: &str) {
        if let Some(handle) = self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uri)
        {
            handle.stop();
        }
        self.shared.update(|c| ((), c.remove_host(uri)));
    }

    fn spawn(&self, uri: &str, origin: HostOrigin, first: Option<oneshot::Sender<()>>) {
        let parsed = HostUri::parse(uri)
            .map(|u| u.default_id())
            .unwrap_or_else(|_| "host".into());
        let now = SystemTime::now();
        self.shared.update(|c| {
            let id = c.free_id(&parsed);
            ((), c.add_host(uri, &id, origin, now))
        });
        let handle = worker::spawn(self.shared.clone(), uri.to_string(), first);
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uri.to_string(), handle);
    }

    /// The rules for hosts added through the API (see `RuntimeHostPolicy`).
    fn check_runtime_uri(&self, uri: &str) -> Result<HostUri, HostError> {
        let parsed = HostUri::parse(uri)?;
        parsed
            .check_runtime(&self.policy)
            .map_err(|e| HostError::Refused { why: e.to_string() })?;
        if parsed.driver == "test" && parsed.path != "/default" {
            // The path is below a permitted directory; so must be what it resolves to (a
            // symbolic link in there must not lead libvirt elsewhere).
            // A node file that does not exist yet may come later (the host then connects):
            // its directory must resolve below the permitted ones.
            let path = std::path::Path::new(&parsed.path);
            let real = match std::fs::canonicalize(path) {
                Ok(r) => Some(r),
                Err(_) => path
                    .parent()
                    .and_then(|p| std::fs::canonicalize(p).ok())
                    .map(|p| p.join(path.file_name().unwrap_or_default())),
            };
            let inside = real.is_some_and(|r| {
                uvmm_model::hosts::path_under(&r.to_string_lossy(), &self.policy.test_dirs)
            });
            if !inside {
                return Err(HostError::Refused {
                    why: format!("{} leads outside the permitted directories", parsed.path),
                });
            }
        }
        Ok(parsed)
    }

    /// Manage another host (added through the API; persisted). Answers after its first
    /// connection attempt when that comes within `ADD_WAIT`.
    pub async fn add(&self, uri: &str) -> Result<HostSummary, Error> {
        let parsed = self.check_runtime_uri(uri)?;
        let (tx, rx) = oneshot::channel();
        {
            let _changing = self.changing.lock().unwrap_or_else(|p| p.into_inner());
            if self.shared.read().host(uri).is_some() {
                return Err(HostError::AlreadyManaged {
                    uri: uri.to_string(),
                }
                .into());
            }
            self.source.add(uri)?;
            self.spawn(&parsed.uri, HostOrigin::Runtime, Some(tx));
        }
        // Answer with the outcome of the first attempt when it comes quickly; otherwise the
        // host is reported as still connecting.
        let _ = tokio::time::timeout(ADD_WAIT, rx).await;
        let now = SystemTime::now();
        let cache = self.shared.read();
        cache
            .host(uri)
            .map(|h| host_summary(h, now))
            .ok_or_else(|| HostError::Vanished.into())
    }

    /// Stop managing a host (its VMs are untouched); persisted.
    pub fn remove(&self, id: &str) -> Result<HostSummary, Error> {
        let _changing = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        let (uri, summary) = {
            let cache = self.shared.read();
            let h = cache.resolve_host(id)?;
            (h.uri.clone(), host_summary(h, SystemTime::now()))
        };
        self.source.remove(&uri)?;
        self.stop(&uri);
        Ok(summary)
    }

    /// The handle on the worker of `uri` (for a task that sends it work).
    pub fn handle(&self, uri: &str) -> Option<HostHandle> {
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uri)
            .cloned()
    }

    /// Send to the worker of `uri`.
    pub fn send(&self, uri: &str, msg: HostMsg) -> Result<(), JobError> {
        let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        workers
            .get(uri)
            .ok_or_else(|| JobError::NoWorker {
                host: uri.to_string(),
            })?
            .send(msg)
    }

    /// Let every worker look at its schedule again.
    fn wake_all(&self) {
        let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        for handle in workers.values() {
            handle.wake();
        }
    }

    /// Stop every worker (they finish their current libvirt call, then exit).
    pub fn shutdown(&self) {
        for (_, handle) in self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            handle.stop();
        }
    }
}
