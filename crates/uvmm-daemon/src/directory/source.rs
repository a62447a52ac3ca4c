//! The hosts of directory mode: the directory's host entries, beside the hosts of the
//! command line, the configuration file and the API (`ConfigHostSource`, kept as in
//! standalone mode — the issue asks that hosts given as arguments are kept too).
//!
//! A directory host cannot be removed through the API (its entry would bring it back at
//! the next refresh): remove the entry. A host both configured locally and named by the
//! directory stays when the entry goes.

use crate::hosts::source::{ConfigHostSource, HostChange, HostSource};
use crate::hosts::HostError;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use uvmm_api::HostOrigin;

struct State {
    local: ConfigHostSource,
    /// The host URIs the directory names now.
    directory: Mutex<BTreeSet<String>>,
    tx: mpsc::UnboundedSender<HostChange>,
}

impl State {
    fn is_local(&self, uri: &str) -> bool {
        self.local
            .initial()
            .is_ok_and(|l| l.iter().any(|(u, _)| u == uri))
    }
}

/// The host source of directory mode (see the module).
pub struct DirectoryHostSource {
    state: Arc<State>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<HostChange>>>,
}

/// The directory's side of [`DirectoryHostSource`]: what each refresh found.
#[derive(Clone)]
pub struct DirectoryHosts(Arc<State>);

impl DirectoryHostSource {
    pub fn new(
        local: ConfigHostSource,
        directory: BTreeSet<String>,
    ) -> (DirectoryHostSource, DirectoryHosts) {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            local,
            directory: Mutex::new(directory),
            tx,
        });
        (
            DirectoryHostSource {
                state: state.clone(),
                rx: Mutex::new(Some(rx)),
            },
            DirectoryHosts(state),
        )
    }
}

impl DirectoryHosts {
    /// Host entries added to and removed from the directory.
    pub fn update(&self, added: &[String], removed: &[String]) {
        let s = &self.0;
        let mut dir = s.directory.lock().unwrap_or_else(|p| p.into_inner());
        for uri in removed {
            if dir.remove(uri) && !s.is_local(uri) {
                let _ = s.tx.send(HostChange::Removed { uri: uri.clone() });
            }
        }
        for uri in added {
            if dir.insert(uri.clone()) && !s.is_local(uri) {
                let _ = s.tx.send(HostChange::Added {
                    uri: uri.clone(),
                    origin: HostOrigin::Directory,
                });
            }
        }
    }

    /// How many hosts the directory names now.
    pub fn count(&self) -> usize {
        self.0
            .directory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

impl HostSource for DirectoryHostSource {
    fn initial(&self) -> Result<Vec<(String, HostOrigin)>, HostError> {
        let mut all = self.state.local.initial()?;
        let dir = self
            .state
            .directory
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for uri in dir.iter() {
            if !all.iter().any(|(u, _)| u == uri) {
                all.push((uri.clone(), HostOrigin::Directory));
            }
        }
        Ok(all)
    }

    fn add(&self, uri: &str) -> Result<(), HostError> {
        self.state.local.add(uri)
    }

    fn remove(&self, uri: &str) -> Result<(), HostError> {
        let named = self
            .state
            .directory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(uri);
        if named {
            return Err(HostError::Refused {
                why: format!(
                    "{uri} is a host entry of the directory: remove it there (uvmmd drops the \
                     host at the next refresh)"
                ),
            });
        }
        self.state.local.remove(uri)
    }

    fn changes(&self) -> Option<mpsc::Receiver<HostChange>> {
        // The registry takes a bounded receiver; relay the unbounded one into it so that
        // a refresh never waits on the registry.
        let mut rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        let (tx, out) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Some(c) = rx.recv().await {
                if tx.send(c).await.is_err() {
                    break;
                }
            }
        });
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn directory_hosts_beside_local_ones() {
        let dir = tempfile::tempdir().unwrap();
        let local = ConfigHostSource::new(
            vec![("test:///a".into(), HostOrigin::Cmdline)],
            dir.path().into(),
        )
        .unwrap();
        let (source, hosts) = DirectoryHostSource::new(local, set(&["test:///a", "test:///d1"]));
        assert_eq!(
            source.initial().unwrap(),
            [
                ("test:///a".to_string(), HostOrigin::Cmdline),
                ("test:///d1".to_string(), HostOrigin::Directory)
            ]
        );
        let mut changes = source.changes().unwrap();
        assert!(
            source.changes().is_none(),
            "the changes are handed out once"
        );
        // Entry of a local host removed: the host stays; d1 removed, d2 added.
        hosts.update(
            &["test:///d2".into()],
            &["test:///a".into(), "test:///d1".into()],
        );
        assert_eq!(
            changes.recv().await.unwrap(),
            HostChange::Removed {
                uri: "test:///d1".into()
            }
        );
        assert_eq!(
            changes.recv().await.unwrap(),
            HostChange::Added {
                uri: "test:///d2".into(),
                origin: HostOrigin::Directory
            }
        );
        assert_eq!(hosts.count(), 1);
        // A directory host is removed in the directory, not through the API.
        assert!(matches!(
            source.remove("test:///d2"),
            Err(HostError::Refused { .. })
        ));
        source.add("test:///r").unwrap();
        source.remove("test:///r").unwrap();
        source.remove("test:///a").unwrap();
        assert_eq!(
            source.initial().unwrap(),
            [("test:///d2".to_string(), HostOrigin::Directory)]
        );
    }
}
