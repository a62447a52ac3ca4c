//! Directory mode (`-b ldap://…`, docs/directory.md): one `uvmm_directory::Directory`,
//! refreshed every `poll_interval_secs`; each refresh feeds the host source (`source`)
//! and the profiles, and the state of the connection is kept for the API, `/metrics` and
//! `check_uvmm`. While the directory is down everything runs on its disk cache.

pub mod notes;
pub mod source;

use crate::config::DirectorySettings;
use crate::hosts::shared::Shared;
use crate::profiles::ProfileSet;
use source::DirectoryHosts;
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, Mutex};
use uvmm_api::DirectoryStatus;
use uvmm_directory::{
    error_chain, spawn_refresh_loop, Directory, DirectoryEvent, Opened, RefreshOutcome,
};

pub struct DirectoryMode {
    pub dir: Arc<Mutex<Directory>>,
    uri: String,
    interval_secs: u64,
    /// The last known state: the API must not wait behind a refresh that holds `dir`
    /// until the directory's timeout.
    status: RwLock<DirectoryStatus>,
}

impl DirectoryMode {
    /// Open the directory (or its cache, when it cannot be reached) and return the host
    /// URIs it names. A configuration the directory refuses (bind, password file) stops
    /// the start; an unreachable directory does not.
    pub async fn open(
        settings: &DirectorySettings,
    ) -> Result<(Arc<DirectoryMode>, BTreeSet<String>), uvmm_directory::Error> {
        let (dir, opened) = Directory::open(settings.config.clone()).await?;
        match &opened {
            Opened::Online(o) => {
                tracing::info!(uri = %settings.config.uri, ms = o.duration_ms, "directory online");
                log_outcome(o);
            }
            Opened::Degraded { error, from_cache } => tracing::warn!(
                uri = %settings.config.uri,
                from_cache,
                "directory unavailable, running degraded on {}: {error}",
                if *from_cache { "its disk cache" } else { "no cached state" }
            ),
        }
        let hosts = dir.snapshot().host_uris();
        let mode = DirectoryMode {
            uri: settings.config.uri.clone(),
            interval_secs: settings.config.poll_interval_secs,
            status: RwLock::new(DirectoryStatus::standalone()),
            dir: Arc::new(Mutex::new(dir)),
        };
        {
            let d = mode.dir.lock().await;
            mode.store_status(&d);
        }
        Ok((Arc::new(mode), hosts))
    }

    pub fn status(&self) -> DirectoryStatus {
        // Fresh when no refresh or note write holds the directory (a quiet refresh sends
        // no event, but moves `state_time`); else the state after the last event.
        if let Ok(d) = self.dir.try_lock() {
            self.store_status(&d);
        }
        self.status
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn store_status(&self, d: &Directory) {
        let s = d.status();
        let snap = d.snapshot();
        let status = DirectoryStatus {
            mode: "directory".into(),
            uri: Some(self.uri.clone()),
            online: s.online,
            degraded: !s.online,
            degraded_reason: s.degraded_reason,
            degraded_since: s.degraded_since,
            from_cache: s.from_cache,
            state_time: s.state_time,
            pending_writes: s.pending_writes,
            method: s.method.map(|m| format!("{m:?}").to_lowercase()),
            refresh_interval_secs: Some(self.interval_secs),
            hosts: snap.host_uris().len(),
            profiles: snap.profiles.len(),
            refused_hosts: Vec::new(),
        };
        *self.status.write().unwrap_or_else(|p| p.into_inner()) = status;
    }

    /// Follow the directory: refresh every interval, hand host changes to `hosts` and
    /// profile changes to `profiles`.
    pub fn run(
        self: &Arc<Self>,
        hosts: DirectoryHosts,
        profiles: Arc<ProfileSet>,
        shared: Arc<Shared>,
    ) {
        let (tx, mut rx) = mpsc::channel(16);
        spawn_refresh_loop(self.dir.clone(), tx);
        let me = self.clone();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                match &event {
                    DirectoryEvent::Changed(o) => {
                        log_outcome(o);
                        hosts.update(&o.changes.hosts_added, &o.changes.hosts_removed);
                    }
                    DirectoryEvent::Degraded { error } => {
                        tracing::warn!("directory unavailable, serving from the cache: {error}");
                        me.announce(&shared, false, error.clone());
                    }
                    DirectoryEvent::Recovered => {
                        tracing::info!("directory back online");
                        me.announce(&shared, true, "the directory answers again".into());
                    }
                    DirectoryEvent::Failed { error } => {
                        tracing::error!("directory refresh failed: {error}");
                    }
                }
                let d = me.dir.lock().await;
                if let DirectoryEvent::Changed(o) = &event {
                    let c = &o.changes;
                    if !(c.profiles_added.is_empty()
                        && c.profiles_changed.is_empty()
                        && c.profiles_removed.is_empty())
                    {
                        profiles.merge_directory(d.snapshot());
                    }
                    // Notes changed by others, and queued edits written (their values may
                    // have met a conflict): show the directory's now.
                    let mut uuids: Vec<String> = c
                        .notes
                        .iter()
                        .map(|n| n.uuid.to_ascii_lowercase())
                        .collect();
                    uuids.extend(o.replay.applied.iter().map(|(u, _)| u.to_ascii_lowercase()));
                    uuids.sort();
                    uuids.dedup();
                    let now: Vec<_> = uuids
                        .into_iter()
                        .map(|u| {
                            let n = d.note(&u).map(notes::shown);
                            (u, n)
                        })
                        .collect();
                    if !now.is_empty() {
                        shared.update(|cache| ((), cache.set_directory_notes(now)));
                    }
                }
                me.store_status(&d);
            }
        });
    }
}

impl DirectoryMode {
    /// A `directory_state` event for `/api/v1/events`.
    fn announce(&self, shared: &Shared, online: bool, message: String) {
        let event = uvmm_api::Event::new(
            &self.uri,
            "directory",
            Some(online),
            uvmm_api::Change::DirectoryState { online, message },
        );
        shared.bus.publish(vec![event]);
    }
}

fn log_outcome(o: &RefreshOutcome) {
    let c = &o.changes;
    if !c.hosts_added.is_empty() || !c.hosts_removed.is_empty() {
        tracing::info!(added = ?c.hosts_added, removed = ?c.hosts_removed, "directory hosts changed");
    }
    for p in &o.problems {
        tracing::warn!("directory entry skipped: {p}");
    }
    log_replay(&o.replay);
}

fn log_replay(r: &uvmm_directory::ReplayReport) {
    for (uuid, seq) in &r.applied {
        tracing::info!(%uuid, seq, "queued note edit written to the directory");
    }
    for c in &r.conflicts {
        tracing::warn!(
            uuid = %c.uuid, field = ?c.field, winner = ?c.winner,
            "note conflict: changed in the directory and here; local {:?}, directory {:?}",
            c.local, c.directory
        );
    }
    for (edit, why) in &r.rejected {
        tracing::error!(uuid = %edit.uuid, "queued note edit refused by the directory, dropped: {why}");
    }
}

/// For logs and errors: the chain of a directory error.
pub fn describe(e: &uvmm_directory::Error) -> String {
    error_chain(e)
}
