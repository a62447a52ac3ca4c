//! [`Directory`]: the one object the daemon holds in directory mode. It keeps the last
//! directory state (from the server, or from the disk cache while the server is down),
//! refreshes it, writes notes (through a durable journal) and checks logins.

use crate::config::{join_dn, ChangeDetection, DirectoryConfig, LdapUrl};
use crate::conflict::{merge, Conflict};
use crate::conn::{bind, connect, offers_sync, result_error, search, timed};
use crate::diff::{diff, ChangeSet};
use crate::error::{Error, Result};
use crate::escape::{dn_value, filter_value};
use crate::model::{
    norm_dn, Note, NoteEdit, NoteValues, Snapshot, ATTR_UUID, GROUP_ATTRIBUTES, HOST_ATTRIBUTES,
    NOTE_ATTRIBUTES, PROFILE_ATTRIBUTES,
};
use crate::store::{
    ensure_dir, load_cache, save_cache, CacheFile, Journal, PendingEdit, CACHE_FILE, JOURNAL_FILE,
};
use crate::sync::{refresh_poll, refresh_sync, Query, RawSet};
use ldap3::{Ldap, Mod, Scope};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const KIND_HOSTS: &str = "hosts";
pub const KIND_PROFILES: &str = "profiles";
pub const KIND_NOTES: &str = "notes";
pub const KIND_GROUPS: &str = "groups";

/// unavailableCriticalExtension: this part of the tree does not do sync; poll it.
const UNAVAILABLE_CRITICAL_EXTENSION: u32 = 12;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// How the daemon should present the directory connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The last refresh reached the directory.
    pub online: bool,
    /// Why not, when not (the error chain of the last attempt).
    pub degraded_reason: Option<String>,
    /// Unix seconds since when it is degraded.
    pub degraded_since: Option<i64>,
    /// The state in use came from the disk cache, not from the server (since the start).
    pub from_cache: bool,
    /// Unix seconds of the directory state in use (last successful refresh, possibly by an
    /// earlier run).
    pub state_time: Option<i64>,
    /// Note edits waiting in the journal.
    pub pending_writes: usize,
    /// How changes are followed with the current server (`None` before first contact).
    pub method: Option<ChangeDetection>,
}

/// What one refresh found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshOutcome {
    pub changes: ChangeSet,
    /// Queued note edits written before reading (after an outage).
    pub replay: ReplayReport,
    /// Entries skipped because they could not be read.
    pub problems: Vec<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayReport {
    /// `(uuid, seq)` of the edits that reached the directory (possibly partly, see
    /// conflicts).
    pub applied: Vec<(String, u64)>,
    pub conflicts: Vec<Conflict>,
    /// Edits the directory refused for good (e.g. a schema violation), with the reason;
    /// they are dropped from the queue, reported here and logged, never retried forever.
    pub rejected: Vec<(PendingEdit, String)>,
}

impl ReplayReport {
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.conflicts.is_empty() && self.rejected.is_empty()
    }
}

/// Result of a note write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum NoteWrite {
    /// In the directory now (with whatever was queued before it).
    Applied { report: ReplayReport },
    /// The directory is unreachable; the edit is in the journal and will be written when
    /// it is back. `pending` counts all queued edits.
    Queued { pending: usize },
}

/// A user who proved their password to the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub uid: String,
    pub dn: String,
    /// Names (`cn`) of the groups the user is in, nested groups included.
    pub groups: BTreeSet<String>,
}

/// How the client started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    Online(Box<RefreshOutcome>),
    /// Directory unreachable: running on the cache (or on nothing, if there is none).
    Degraded {
        error: String,
        from_cache: bool,
    },
}

pub struct Directory {
    cfg: DirectoryConfig,
    url: LdapUrl,
    password: Option<String>,
    sets: BTreeMap<String, RawSet>,
    snapshot: Snapshot,
    pending: Vec<PendingEdit>,
    journal: Journal,
    conn: Option<Ldap>,
    method: Option<ChangeDetection>,
    /// Kinds whose part of the tree refused the sync control: polled instead.
    poll_only: BTreeSet<&'static str>,
    status: Status,
    fingerprint: String,
}

/// Render an error with its causes, for status and logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl Directory {
    /// Load the cache and the journal, then try the directory. A directory that cannot be
    /// reached is not an error: the client runs on the cache and says so
    /// ([`Opened::Degraded`]). A wrong configuration, an unreadable password file, a
    /// refused service bind or a corrupt journal are errors.
    pub async fn open(cfg: DirectoryConfig) -> Result<(Directory, Opened)> {
        let url = cfg.validate()?;
        let password = cfg.read_password()?;
        ensure_dir(&cfg.cache_dir)?;
        let journal = Journal {
            path: cfg.cache_dir.join(JOURNAL_FILE),
        };
        let pending = journal.load()?;
        let fingerprint = fingerprint(&cfg, &url);
        let cache_path = cfg.cache_dir.join(CACHE_FILE);
        let cache = match load_cache(&cache_path) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("{}; starting without it", error_chain(&e));
                None
            }
        };
        let from_cache = cache.is_some();
        let (sets, state_time) = match cache {
            Some(mut c) => {
                if c.fingerprint != fingerprint {
                    // Other server or searches: the cookies mean nothing there.
                    for s in c.sets.values_mut() {
                        s.cookie = None;
                    }
                }
                (c.sets, Some(c.saved_at))
            }
            None => (BTreeMap::new(), None),
        };
        let mut d = Directory {
            snapshot: Snapshot::default(),
            status: Status {
                online: false,
                degraded_reason: None,
                degraded_since: None,
                from_cache,
                state_time,
                pending_writes: pending.len(),
                method: None,
            },
            cfg,
            url,
            password,
            sets,
            pending,
            journal,
            conn: None,
            method: None,
            poll_only: BTreeSet::new(),
            fingerprint,
        };
        d.snapshot = d.build_snapshot();
        match d.refresh().await {
            Ok(o) => Ok((d, Opened::Online(Box::new(o)))),
            Err(e) if e.is_unavailable() => Ok((
                d,
                Opened::Degraded {
                    error: error_chain(&e),
                    from_cache,
                },
            )),
            Err(e) => Err(e),
        }
    }

    pub fn config(&self) -> &DirectoryConfig {
        &self.cfg
    }

    /// The directory state in use (server or cache). Notes here are as the directory has
    /// them; [`Directory::note`] adds this client's queued edits.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn status(&self) -> Status {
        Status {
            pending_writes: self.pending.len(),
            method: self.method,
            ..self.status.clone()
        }
    }

    pub fn pending(&self) -> &[PendingEdit] {
        &self.pending
    }

    /// A VM's note as this client should show it: the directory's values with this
    /// client's queued edits applied. `None` if there is neither.
    pub fn note(&self, uuid: &str) -> Option<NoteValues> {
        let mut v = self.snapshot.note(uuid).map(|n| n.values.clone());
        for p in self
            .pending
            .iter()
            .filter(|p| p.uuid.eq_ignore_ascii_case(uuid))
        {
            v = Some(v.unwrap_or_default().apply(&p.edit));
        }
        v
    }

    /// Group names of a user from the cached state (for a user known by a token while
    /// the directory is down).
    pub fn cached_groups_of(&self, uid: &str, dn: Option<&str>) -> BTreeSet<String> {
        self.snapshot.groups_of(uid, dn)
    }

    fn queries(&self) -> Vec<Query> {
        let base = &self.url.base;
        vec![
            Query {
                kind: KIND_HOSTS,
                base: join_dn(&self.cfg.hosts.base, base),
                filter: self.cfg.host_filter(),
                attrs: host_attrs(&self.cfg),
            },
            Query {
                kind: KIND_PROFILES,
                base: join_dn(&self.cfg.profiles.base, base),
                filter: self.cfg.profiles.filter.clone(),
                attrs: owned(&PROFILE_ATTRIBUTES),
            },
            Query {
                kind: KIND_NOTES,
                base: join_dn(&self.cfg.notes.base, base),
                filter: "(objectClass=univentionVirtualMachine)".into(),
                attrs: owned(&NOTE_ATTRIBUTES),
            },
            Query {
                kind: KIND_GROUPS,
                base: join_dn(&self.cfg.users.group_base, base),
                filter: self.cfg.group_filter(),
                attrs: owned(&GROUP_ATTRIBUTES),
            },
        ]
    }

    fn build_snapshot(&self) -> Snapshot {
        let get = |k: &str| {
            self.sets
                .get(k)
                .map(|s| s.entries.values())
                .into_iter()
                .flatten()
        };
        Snapshot::build(
            &self.cfg,
            get(KIND_HOSTS),
            get(KIND_PROFILES),
            get(KIND_NOTES),
            get(KIND_GROUPS),
        )
    }

    async fn open_bound(&self) -> Result<Ldap> {
        let mut ldap = connect(&self.cfg, &self.url).await?;
        if let (Some(dn), Some(pw)) = (&self.cfg.bind_dn, &self.password) {
            bind(&mut ldap, dn, pw, self.cfg.timeout())
                .await
                .map_err(|e| match e {
                    // The service account's password is configuration, not a user's login.
                    Error::InvalidCredentials => Error::Bind {
                        dn: dn.clone(),
                        rc: 49,
                        message: "invalid credentials (check password_file)".into(),
                    },
                    other => other,
                })?;
        }
        Ok(ldap)
    }

    async fn ensure_conn(&mut self) -> Result<()> {
        if self.conn.as_mut().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        self.conn = None;
        let mut ldap = self.open_bound().await?;
        let method = match self.cfg.change_detection {
            ChangeDetection::Poll => ChangeDetection::Poll,
            wanted => {
                let offered = offers_sync(&mut ldap, self.cfg.timeout()).await?;
                match (wanted, offered) {
                    (_, true) => ChangeDetection::Sync,
                    (ChangeDetection::Sync, false) => {
                        return Err(Error::Config(format!(
                            "change_detection = \"sync\", but {} does not offer the content synchronisation control",
                            self.url.server_url()
                        )))
                    }
                    _ => ChangeDetection::Poll,
                }
            }
        };
        if self.method != Some(method) {
            tracing::info!(
                "directory {}: following changes by {:?}",
                self.url.server_url(),
                method
            );
        }
        self.method = Some(method);
        self.conn = Some(ldap);
        Ok(())
    }

    fn mark_degraded(&mut self, e: &Error) {
        self.conn = None;
        if self.status.online || self.status.degraded_reason.is_none() {
            self.status.degraded_since = Some(now_ms() / 1000);
        }
        self.status.online = false;
        self.status.degraded_reason = Some(error_chain(e));
    }

    /// Bring the state up to date: write queued note edits, then re-read every kind and
    /// report what changed. On an unreachable directory the state stays as it was, the
    /// status turns degraded and the error is returned (`is_unavailable()`).
    pub async fn refresh(&mut self) -> Result<RefreshOutcome> {
        let started = Instant::now();
        // A whole refresh may take several operations; each has its own timeout, and this
        // bounds the sum so one refresh can never hang the caller.
        let limit = self.cfg.timeout() * 8 + self.cfg.connect_timeout();
        let r = match tokio::time::timeout(limit, self.refresh_inner()).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                op: "refresh".into(),
                secs: limit.as_secs(),
            }),
        };
        match r {
            Ok(mut o) => {
                o.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                self.status.online = true;
                self.status.degraded_reason = None;
                self.status.degraded_since = None;
                self.status.from_cache = false;
                self.status.state_time = Some(now_ms() / 1000);
                for p in &o.problems {
                    tracing::warn!("directory: {p}");
                }
                Ok(o)
            }
            Err(e) => {
                if e.is_unavailable() {
                    self.mark_degraded(&e);
                } else {
                    // Keep the connection only for errors that say nothing about it.
                    self.conn = None;
                }
                Err(e)
            }
        }
    }

    async fn refresh_inner(&mut self) -> Result<RefreshOutcome> {
        self.ensure_conn().await?;
        let replay = self.replay().await?;
        for q in self.queries() {
            self.refresh_kind(&q).await?;
        }
        let new = self.build_snapshot();
        let changes = diff(&self.snapshot, &new);
        let problems = new.problems.clone();
        self.snapshot = new;
        self.save_cache()?;
        Ok(RefreshOutcome {
            changes,
            replay,
            problems,
            duration_ms: 0,
        })
    }

    async fn refresh_kind(&mut self, q: &Query) -> Result<()> {
        let limit = self.cfg.timeout();
        let old = self.sets.get(q.kind).cloned().unwrap_or_default();
        let use_sync =
            self.method == Some(ChangeDetection::Sync) && !self.poll_only.contains(q.kind);
        let ldap = self
            .conn
            .as_mut()
            .ok_or_else(|| Error::Protocol("no connection".into()))?;
        let new = if use_sync {
            match refresh_sync(ldap, limit, q, &old).await {
                Err(Error::Result { rc, .. }) if rc == UNAVAILABLE_CRITICAL_EXTENSION => {
                    tracing::info!("directory {}: no sync below {}; polling it", q.kind, q.base);
                    self.poll_only.insert(q.kind);
                    refresh_poll(ldap, limit, q, &old).await?
                }
                other => other?,
            }
        } else {
            refresh_poll(ldap, limit, q, &old).await?
        };
        self.sets.insert(q.kind.to_string(), new);
        Ok(())
    }

    fn save_cache(&self) -> Result<()> {
        save_cache(
            &self.cfg.cache_dir.join(CACHE_FILE),
            CacheFile {
                version: 0,
                fingerprint: self.fingerprint.clone(),
                saved_at: now_ms() / 1000,
                sets: self.sets.clone(),
            },
        )
    }

    /// Set fields of a VM's note (creating the note if needed). The edit is first put in
    /// the journal and fsynced, then written to the directory together with anything queued
    /// before it. With the directory down it stays queued ([`NoteWrite::Queued`]) and is
    /// written by a later refresh or write, in order.
    pub async fn set_note(&mut self, uuid: &str, edit: NoteEdit) -> Result<NoteWrite> {
        check_note_key(uuid)?;
        if edit.is_empty() {
            return Ok(NoteWrite::Applied {
                report: ReplayReport::default(),
            });
        }
        let base = self.note(uuid).unwrap_or_default();
        let seq = self.pending.iter().map(|p| p.seq).max().unwrap_or(0) + 1;
        let p = PendingEdit {
            seq,
            uuid: uuid.to_string(),
            edit,
            base,
            edited_at_ms: now_ms(),
        };
        self.journal.append(&p)?;
        self.pending.push(p);
        let attempt = async {
            self.ensure_conn().await?;
            let report = self.replay().await?;
            // Read the notes back so `note()` and the snapshot show what is stored now.
            let q = self
                .queries()
                .into_iter()
                .find(|q| q.kind == KIND_NOTES)
                .ok_or_else(|| Error::Protocol("no notes query".into()))?;
            self.refresh_kind(&q).await?;
            self.snapshot = self.build_snapshot();
            self.save_cache()?;
            Ok::<_, Error>(report)
        };
        match attempt.await {
            Ok(report) => {
                // This caller's own edit refused for good (e.g. a schema violation): an
                // error for them, not a success with a footnote. Earlier queued edits that
                // were refused stay in the report.
                if let Some((_, reason)) = report.rejected.iter().find(|(r, _)| r.seq == seq) {
                    return Err(Error::NoteRejected {
                        uuid: uuid.to_string(),
                        reason: reason.clone(),
                    });
                }
                Ok(NoteWrite::Applied { report })
            }
            Err(e) if e.is_unavailable() => {
                self.mark_degraded(&e);
                Ok(NoteWrite::Queued {
                    pending: self.pending.len(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Write the queued edits in order. Stops at the first "directory unavailable" and
    /// keeps the rest queued; an edit the directory refuses for good is dropped and
    /// reported. Re-running after a crash is safe: an edit whose values are already in the
    /// directory writes nothing.
    async fn replay(&mut self) -> Result<ReplayReport> {
        let mut report = ReplayReport::default();
        if self.pending.is_empty() {
            return Ok(report);
        }
        let notes_base = join_dn(&self.cfg.notes.base, &self.url.base);
        let limit = self.cfg.timeout();
        let ucs = self.cfg.notes.ucs_object_type;
        let mut done = 0;
        let mut failure = None;
        for p in &self.pending {
            let Some(ldap) = self.conn.as_mut() else {
                failure = Some(Error::Protocol("no connection".into()));
                break;
            };
            match apply_edit(ldap, limit, &notes_base, ucs, p).await {
                Ok(conflicts) => {
                    for c in &conflicts {
                        tracing::warn!(
                            "note conflict on VM {} field {:?}: directory {:?}, local {:?} (edited at {} ms); {:?} wins",
                            c.uuid, c.field, c.directory, c.local, c.edited_at_ms, c.winner
                        );
                    }
                    report.conflicts.extend(conflicts);
                    report.applied.push((p.uuid.clone(), p.seq));
                }
                Err(e) if e.is_unavailable() => {
                    failure = Some(e);
                    break;
                }
                Err(e) => {
                    tracing::error!(
                        "note edit {} of VM {} refused by the directory, dropped: {}",
                        p.seq,
                        p.uuid,
                        error_chain(&e)
                    );
                    report.rejected.push((p.clone(), error_chain(&e)));
                }
            }
            done += 1;
        }
        let rest: Vec<PendingEdit> = self.pending[done..].to_vec();
        self.journal.rewrite(&rest)?;
        self.pending = rest;
        match failure {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Check a user's password by binding as them, and list their groups. The user is
    /// found by `uid` with the service account; the bind is made on a separate connection,
    /// so the service connection is never re-bound as a user.
    pub async fn authenticate(&self, uid: &str, password: &str) -> Result<User> {
        if uid.is_empty() || password.is_empty() || uid.len() > 256 {
            return Err(Error::InvalidCredentials);
        }
        let limit = self.cfg.timeout();
        let mut svc = self.open_bound().await?;
        let users_base = join_dn(&self.cfg.users.base, &self.url.base);
        let filter = self.cfg.user_filter(uid)?;
        let (items, res) = search(
            &mut svc,
            limit,
            &users_base,
            Scope::Subtree,
            &filter,
            &["uid"],
            Vec::new(),
        )
        .await?;
        if res.rc != 0 {
            return Err(result_error("user search", &res));
        }
        let users: Vec<_> = items
            .into_iter()
            .filter(|r| !r.is_ref() && !r.is_intermediate())
            .map(|r| crate::ber::entry_from_tag(r.0).map_err(Error::Protocol))
            .collect::<Result<_>>()?;
        let user = match users.as_slice() {
            [] => return Err(Error::UnknownUser),
            [u] => u.clone(),
            _ => {
                return Err(Error::Login(format!(
                    "{} entries match user {uid:?}; refusing an ambiguous login",
                    users.len()
                )))
            }
        };
        let mut as_user = connect(&self.cfg, &self.url).await?;
        bind(&mut as_user, &user.dn, password, limit).await?;
        let _ = as_user.unbind().await;
        let groups = self.live_groups(&mut svc, uid, &user.dn).await?;
        let _ = svc.unbind().await;
        Ok(User {
            uid: user.first("uid").unwrap_or(uid).to_string(),
            dn: user.dn,
            groups,
        })
    }

    async fn live_groups(&self, ldap: &mut Ldap, uid: &str, dn: &str) -> Result<BTreeSet<String>> {
        let base = join_dn(&self.cfg.users.group_base, &self.url.base);
        let limit = self.cfg.timeout();
        let mut names = BTreeSet::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut frontier = vec![(Some(uid.to_string()), dn.to_string())];
        // Nested groups: a group's DN as member of another group; bounded depth against
        // cycles and runaway directories.
        for _ in 0..8 {
            if frontier.is_empty() {
                break;
            }
            let mut next = Vec::new();
            for (uid, member_dn) in frontier.drain(..) {
                let by_uid = uid
                    .map(|u| format!("(memberUid={})", filter_value(&u)))
                    .unwrap_or_default();
                let d = filter_value(&member_dn);
                let filter = format!(
                    "(&{}(|{by_uid}(member={d})(uniqueMember={d})))",
                    self.cfg.users.group_filter
                );
                let (items, res) = search(
                    ldap,
                    limit,
                    &base,
                    Scope::Subtree,
                    &filter,
                    &["cn"],
                    Vec::new(),
                )
                .await?;
                if res.rc != 0 && res.rc != 32 {
                    return Err(result_error("group search", &res));
                }
                for r in items
                    .into_iter()
                    .filter(|r| !r.is_ref() && !r.is_intermediate())
                {
                    let g = crate::ber::entry_from_tag(r.0).map_err(Error::Protocol)?;
                    if seen.insert(norm_dn(&g.dn)) {
                        if let Some(cn) = g.first("cn") {
                            names.insert(cn.to_string());
                        }
                        next.push((None, g.dn.clone()));
                    }
                }
            }
            frontier = next;
        }
        Ok(names)
    }

    /// Drop the connection (e.g. before shutting down).
    pub async fn close(&mut self) {
        if let Some(mut c) = self.conn.take() {
            let _ = c.unbind().await;
        }
    }
}

/// Only the attributes uvmm uses are requested (never `*`): what is read ends up in the
/// cache file, and host entries in UCS carry secrets (Kerberos keys, password hashes).
fn host_attrs(cfg: &DirectoryConfig) -> Vec<String> {
    let mut a = owned(&HOST_ATTRIBUTES);
    a.push(cfg.hosts.service_attribute.clone());
    a
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn fingerprint(cfg: &DirectoryConfig, url: &LdapUrl) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}",
        url.server_url(),
        url.base,
        cfg.host_filter(),
        cfg.hosts.base,
        cfg.profiles.filter,
        cfg.notes.base,
        cfg.group_filter()
    )
}

/// A note key must be usable in the IA5 attribute and a DN: printable ASCII, bounded.
/// Escaping makes any value safe; this refuses values the schema would reject anyway, with
/// a clear message instead of an LDAP error code.
pub fn check_note_key(uuid: &str) -> Result<()> {
    let bad = |reason: &str| Error::NoteKey {
        key: uuid.to_string(),
        reason: reason.to_string(),
    };
    if uuid.is_empty() {
        return Err(bad("empty"));
    }
    if uuid.len() > 128 {
        return Err(bad("longer than 128 characters"));
    }
    if !uuid.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(bad("only printable ASCII is allowed (IA5 string)"));
    }
    Ok(())
}

async fn find_note(
    ldap: &mut Ldap,
    limit: Duration,
    notes_base: &str,
    uuid: &str,
) -> Result<Option<Note>> {
    let filter = format!(
        "(&(objectClass=univentionVirtualMachine)({ATTR_UUID}={}))",
        filter_value(uuid)
    );
    let mut attrs = NOTE_ATTRIBUTES.to_vec();
    attrs.push("modifyTimestamp");
    let (items, res) = search(
        ldap,
        limit,
        notes_base,
        Scope::Subtree,
        &filter,
        &attrs,
        Vec::new(),
    )
    .await?;
    if res.rc == 32 {
        return Ok(None);
    }
    if res.rc != 0 {
        return Err(result_error("note search", &res));
    }
    let mut notes = Vec::new();
    for r in items
        .into_iter()
        .filter(|r| !r.is_ref() && !r.is_intermediate())
    {
        let e = crate::ber::entry_from_tag(r.0).map_err(Error::Protocol)?;
        notes.push(crate::model::note_from_entry(&e).map_err(Error::Protocol)?);
    }
    // The equality match is case-insensitive (caseIgnoreIA5Match); more than one entry
    // would be a directory made by hand. Take the exact spelling if there is one.
    notes.sort_by_key(|n| n.uuid != uuid);
    Ok(notes.into_iter().next())
}

async fn apply_edit(
    ldap: &mut Ldap,
    limit: Duration,
    notes_base: &str,
    ucs: bool,
    p: &PendingEdit,
) -> Result<Vec<Conflict>> {
    let current = find_note(ldap, limit, notes_base, &p.uuid).await?;
    let m = merge(p, current.as_ref());
    if m.writes.is_empty() {
        return Ok(m.conflicts);
    }
    match &current {
        Some(n) => {
            let mods: Vec<Mod<String>> = m
                .writes
                .iter()
                .map(|(f, v)| {
                    Mod::Replace(
                        f.attribute().to_string(),
                        v.iter().cloned().collect::<HashSet<String>>(),
                    )
                })
                .collect();
            let dn = n.dn.clone();
            let res = timed("note modify", limit, async {
                ldap.modify(&dn, mods).await.map_err(|source| Error::Ldap {
                    op: format!("modify {dn}"),
                    source: Box::new(source),
                })
            })
            .await?;
            if res.rc != 0 {
                return Err(result_error(&format!("modify {dn}"), &res));
            }
        }
        None => {
            let dn = format!("{ATTR_UUID}={},{notes_base}", dn_value(&p.uuid));
            let mut classes: HashSet<String> =
                ["top", "univentionVirtualMachine"].map(String::from).into();
            let mut attrs: Vec<(String, HashSet<String>)> =
                vec![(ATTR_UUID.to_string(), HashSet::from([p.uuid.clone()]))];
            if ucs {
                classes.insert("univentionObject".into());
                attrs.push((
                    "univentionObjectType".into(),
                    HashSet::from(["uvmm/info".to_string()]),
                ));
            }
            attrs.push(("objectClass".into(), classes));
            for (f, v) in &m.writes {
                if let Some(v) = v {
                    attrs.push((f.attribute().to_string(), HashSet::from([v.clone()])));
                }
            }
            let res = timed("note add", limit, async {
                ldap.add(&dn, attrs).await.map_err(|source| Error::Ldap {
                    op: format!("add {dn}"),
                    source: Box::new(source),
                })
            })
            .await?;
            if res.rc != 0 {
                return Err(result_error(&format!("add {dn}"), &res));
            }
        }
    }
    Ok(m.conflicts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_keys() {
        for ok in [
            "6f3b0c1e-2d4a-4b8e-9c7f-1a2b3c4d5e6f",
            "x)(cn=*",
            "a,b+c=d\\e",
        ] {
            check_note_key(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            ("", "empty"),
            ("nul\0", "printable"),
            ("tab\t", "printable"),
            ("Jürgen", "printable"),
        ] {
            let e = check_note_key(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(check_note_key(&"a".repeat(129)).is_err());
    }

    #[test]
    fn error_chains_show_causes() {
        let e = Error::CacheIo {
            path: "/x".into(),
            source: std::io::Error::other("disk on fire"),
        };
        assert_eq!(error_chain(&e), "directory cache /x: disk on fire");
    }
}
