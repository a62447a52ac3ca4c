//! Where the list of managed hosts comes from. The registry asks its source for the hosts
//! to start with, tells it about hosts added or removed through the API (the source
//! keeps them, or refuses when its list is kept elsewhere), and follows the changes the
//! source makes on its own.
//!
//! [`ConfigHostSource`] is the first source: the command line and the configuration
//! file, plus the runtime changes in `<state_dir>/hosts.json`. The LDAP directory
//! (`uvmm-directory`, docs/directory.md "For the daemon") will be the second: its
//! `initial` is `dir.snapshot().host_uris()` (also from its disk cache while the
//! directory is down), its `changes` the `hosts_added`/`hosts_removed` of each refresh,
//! and `add`/`remove` refuse (hosts are managed in the directory), with the hosts of the
//! command line kept beside it.

use super::HostError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Mutex;
use tokio::sync::mpsc;
use uvmm_api::HostOrigin;
use uvmm_backup::atomic::write_atomic;

/// A change of the host list that the source itself makes (a directory refresh).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostChange {
    Added { uri: String, origin: HostOrigin },
    Removed { uri: String },
}

/// Where the managed hosts come from.
pub trait HostSource: Send + Sync {
    /// The hosts to manage at start. Hosts of origin `Runtime` were added through the API
    /// and are checked against today's rules again before they are connected.
    fn initial(&self) -> Result<Vec<(String, HostOrigin)>, HostError>;

    /// Keep a host added through the API (it survives a restart); refuse when this
    /// source's list is kept elsewhere.
    fn add(&self, uri: &str) -> Result<(), HostError>;

    /// Keep that a host was removed through the API.
    fn remove(&self, uri: &str) -> Result<(), HostError>;

    /// The changes this source makes on its own, once; `None` when it makes none.
    fn changes(&self) -> Option<mpsc::Receiver<HostChange>> {
        None
    }
}

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

/// The configured hosts (command line, configuration file) and the changes made through
/// the API (`hosts.json`).
pub struct ConfigHostSource {
    configured: Vec<(String, HostOrigin)>,
    changes: Mutex<HostChanges>,
    file: PathBuf,
}

impl ConfigHostSource {
    pub fn new(
        configured: Vec<(String, HostOrigin)>,
        state_dir: PathBuf,
    ) -> Result<ConfigHostSource, HostError> {
        let file = state_dir.join("hosts.json");
        let load = |why: String| HostError::Load {
            path: file.clone(),
            why,
        };
        let changes = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| load(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HostChanges::default(),
            Err(e) => return Err(load(e.to_string())),
        };
        Ok(ConfigHostSource {
            configured,
            changes: Mutex::new(changes),
            file,
        })
    }

    /// Change the kept list with `f` and save it; nothing changes when saving fails.
    fn change(&self, f: impl FnOnce(&mut HostChanges)) -> Result<(), HostError> {
        let mut changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = changes.clone();
        f(&mut next);
        let persist = |source: std::io::Error| HostError::Persist {
            path: self.file.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(&next).map_err(|e| persist(e.into()))?;
        write_atomic(&self.file, &json, 0o644).map_err(persist)?;
        *changes = next;
        Ok(())
    }
}

impl HostSource for ConfigHostSource {
    fn initial(&self) -> Result<Vec<(String, HostOrigin)>, HostError> {
        let changes = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<(String, HostOrigin)> = self
            .configured
            .iter()
            .filter(|(u, _)| !changes.removed.contains(u))
            .cloned()
            .collect();
        for uri in &changes.added {
            if !all.iter().any(|(u, _)| u == uri) {
                all.push((uri.clone(), HostOrigin::Runtime));
            }
        }
        Ok(all)
    }

    fn add(&self, uri: &str) -> Result<(), HostError> {
        self.change(|c| {
            c.removed.retain(|u| u != uri);
            if !c.added.iter().any(|u| u == uri) {
                c.added.push(uri.to_string());
            }
        })
    }

    fn remove(&self, uri: &str) -> Result<(), HostError> {
        self.change(|c| {
            let was_runtime = c.added.iter().any(|u| u == uri);
            c.added.retain(|u| u != uri);
            if !was_runtime && !c.removed.iter().any(|u| u == uri) {
                c.removed.push(uri.to_string());
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_changes_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let configured = vec![
            ("test:///a".to_string(), HostOrigin::Cmdline),
            ("test:///b".to_string(), HostOrigin::Config),
        ];
        let source = ConfigHostSource::new(configured.clone(), dir.path().into()).unwrap();
        source.add("test:///c").unwrap();
        source.remove("test:///a").unwrap();
        // Added and removed again: gone, and not remembered as a removed configured host.
        source.add("test:///d").unwrap();
        source.remove("test:///d").unwrap();
        let again = ConfigHostSource::new(configured, dir.path().into()).unwrap();
        assert_eq!(
            again.initial().unwrap(),
            [
                ("test:///b".to_string(), HostOrigin::Config),
                ("test:///c".to_string(), HostOrigin::Runtime)
            ]
        );
        // A removed configured host comes back when it is added again.
        again.add("test:///a").unwrap();
        assert!(again
            .initial()
            .unwrap()
            .contains(&("test:///a".to_string(), HostOrigin::Cmdline)));
        assert!(again.changes().is_none());
    }

    #[test]
    fn an_unreadable_list_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts.json"), "{not json").unwrap();
        assert!(matches!(
            ConfigHostSource::new(vec![], dir.path().into()),
            Err(HostError::Load { .. })
        ));
    }
}
