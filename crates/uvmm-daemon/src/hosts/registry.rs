//! Which hosts are managed and their workers: the configured hosts and the changes made
//! through the API (kept in `<state_dir>/hosts.json`), started, added and removed at
//! runtime.

use super::shared::Shared;
use super::worker::{self, HostHandle, HostMsg};
use super::HostError;
use crate::cache::host_summary;
use crate::error::Error;
use crate::jobs::JobError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::oneshot;
use uvmm_api::{HostOrigin, HostSummary};
use uvmm_backup::atomic::write_atomic;
use uvmm_model::hosts::{HostUri, RuntimeHostPolicy};

/// How long `POST /hosts` waits for the first connection attempt before answering.
const ADD_WAIT: Duration = Duration::from_secs(10);

/// Runtime changes to the host list, kept in `<state_dir>/hosts.json` so they survive a
/// restart: hosts added through the API, and configured hosts removed through it.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostChanges {
    #[serde(default)]
    pub added: Vec<String>,
    #[serde(default)]
    pub removed: Vec<String>,
}

/// The managed hosts and their workers.
pub struct Registry {
    shared: Arc<Shared>,
    workers: Mutex<HashMap<String, HostHandle>>,
    changes: Mutex<HostChanges>,
    changes_file: PathBuf,
    /// The rules for hosts added through the API.
    policy: RuntimeHostPolicy,
}

impl Registry {
    pub fn new(
        shared: Arc<Shared>,
        state_dir: PathBuf,
        policy: RuntimeHostPolicy,
    ) -> Result<Registry, HostError> {
        let changes_file = state_dir.join("hosts.json");
        let changes = match std::fs::read(&changes_file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| HostError::Load {
                path: changes_file.clone(),
                why: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HostChanges::default(),
            Err(e) => {
                return Err(HostError::Load {
                    path: changes_file,
                    why: e.to_string(),
                })
            }
        };
        Ok(Registry {
            shared,
            workers: Mutex::new(HashMap::new()),
            changes: Mutex::new(changes),
            changes_file,
            policy,
        })
    }

    /// Start managing the configured hosts plus the runtime changes.
    pub fn start(&self, configured: &[(String, HostOrigin)]) {
        let changes = self
            .changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut all: Vec<(String, HostOrigin)> = configured
            .iter()
            .filter(|(u, _)| !changes.removed.contains(u))
            .cloned()
            .collect();
        for uri in &changes.added {
            if all.iter().any(|(u, _)| u == uri) {
                continue;
            }
            // Saved by an API client, perhaps before today's rules: check again, since
            // libvirt acts on the URI with uvmmd's rights at every (re)connection.
            if let Err(e) = self.check_runtime_uri(uri) {
                tracing::error!(%uri, "not connecting to a host added through the API: {e}");
                continue;
            }
            all.push((uri.clone(), HostOrigin::Runtime));
        }
        for (uri, origin) in all {
            self.spawn(&uri, origin, None);
        }
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

    fn save_changes(&self, changes: &HostChanges) -> Result<(), HostError> {
        let json = serde_json::to_vec_pretty(changes).map_err(|e| HostError::Persist {
            path: self.changes_file.clone(),
            source: e.into(),
        })?;
        write_atomic(&self.changes_file, &json, 0o644).map_err(|e| HostError::Persist {
            path: self.changes_file.clone(),
            source: e,
        })
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
            // Hold the changes lock across check, persist and spawn: two concurrent adds of
            // one URI must not both succeed.
            let mut changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
            if self.shared.read().host(uri).is_some() {
                return Err(HostError::AlreadyManaged {
                    uri: uri.to_string(),
                }
                .into());
            }
            let mut next = changes.clone();
            next.removed.retain(|u| u != uri);
            if !next.added.iter().any(|u| u == uri) {
                next.added.push(uri.to_string());
            }
            self.save_changes(&next)?;
            *changes = next;
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
        let mut changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let (uri, summary) = {
            let cache = self.shared.read();
            let h = cache.resolve_host(id)?;
            (h.uri.clone(), host_summary(h, SystemTime::now()))
        };
        let mut next = changes.clone();
        let was_runtime = next.added.contains(&uri);
        next.added.retain(|u| *u != uri);
        if !was_runtime && !next.removed.contains(&uri) {
            next.removed.push(uri.clone());
        }
        self.save_changes(&next)?;
        *changes = next;
        if let Some(handle) = self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&uri)
        {
            handle.stop();
        }
        self.shared.update(|c| ((), c.remove_host(&uri)));
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
