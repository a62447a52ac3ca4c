//! The refresh loop a daemon runs: refresh every `poll_interval`, and report what changed
//! and when the directory goes away or comes back.

use crate::client::{error_chain, Directory, RefreshOutcome};
use std::sync::Arc;
use tokio::sync::{mpsc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryEvent {
    /// A refresh found changes or wrote queued note edits.
    Changed(Box<RefreshOutcome>),
    /// The directory could not be reached (sent once per outage); the state stays as it was.
    Degraded { error: String },
    /// The directory answers again (after [`DirectoryEvent::Degraded`]).
    Recovered,
    /// A refresh failed for a reason other than an outage (e.g. the service account was
    /// locked): logged and retried at the next interval.
    Failed { error: String },
}

/// Refresh `dir` every `poll_interval` until `events` is closed. The lock is held only
/// for one refresh at a time, so note writes and reads go on in between.
pub fn spawn_refresh_loop(
    dir: Arc<Mutex<Directory>>,
    events: mpsc::Sender<DirectoryEvent>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut online = dir.lock().await.status().online;
        loop {
            let interval = dir.lock().await.config().poll_interval();
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = events.closed() => return,
            }
            let result = dir.lock().await.refresh().await;
            let event = match result {
                Ok(o) => {
                    let was_online = std::mem::replace(&mut online, true);
                    if !was_online && events.send(DirectoryEvent::Recovered).await.is_err() {
                        return;
                    }
                    if o.changes.is_empty() && o.replay.is_empty() {
                        continue;
                    }
                    DirectoryEvent::Changed(Box::new(o))
                }
                Err(e) if e.is_unavailable() => {
                    if !std::mem::replace(&mut online, false) {
                        continue;
                    }
                    tracing::warn!(
                        "directory unavailable, running on the cache: {}",
                        error_chain(&e)
                    );
                    DirectoryEvent::Degraded {
                        error: error_chain(&e),
                    }
                }
                Err(e) => {
                    tracing::error!("directory refresh failed: {}", error_chain(&e));
                    DirectoryEvent::Failed {
                        error: error_chain(&e),
                    }
                }
            };
            if events.send(event).await.is_err() {
                return;
            }
        }
    })
}
