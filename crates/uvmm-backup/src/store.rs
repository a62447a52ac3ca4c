//! The backup store.
//!
//! ```text
//! <dir>/<uuid>.xml                 latest definition (the original UVMM's file name)
//! <dir>/<uuid>/000001.xml          every version, oldest first
//! <dir>/<uuid>/000001.meta.json    its record: time, host, hypervisor, name, cause, user
//! ```
//!
//! A version counts once its metadata record exists; the record is written last, each file
//! atomically (temporary file, fsync, rename, directory fsync), so a crash leaves either the
//! old state or a complete new version, never a partial one. Files are 0600 in 0700
//! directories: definitions carry secrets such as VNC passwords.
//!
//! The original UVMM's directory (`/var/backups/univention-virtual-machine-manager-daemon`)
//! is read as well: `<uuid>.xml` or `<uuid>..xml`, and their `.save` variants holding the
//! previous definition.

use crate::atomic::{sync_dir, write_renamed};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::hash::BuildHasher;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, SystemTime};
pub use uvmm_api::{BackupSummary, SnapshotRecord, VersionMeta};
use uvmm_model::domain::parse_domain;
use uvmm_model::uuid::normalize_uuid;

pub const DEFAULT_DIR: &str = "/var/backups/uvmm";
pub const OLD_UVMM_DIR: &str = "/var/backups/univention-virtual-machine-manager-daemon";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("backup store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no backup of '{0}'")]
    NotFound(String),
    #[error("'{name}' matches backups of {} VMs ({}): use the UUID", .uuids.len(), .uuids.join(", "))]
    Ambiguous { name: String, uuids: Vec<String> },
    #[error("backup of {uuid} has no version {version}")]
    NoVersion { uuid: String, version: u32 },
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Why a version was recorded (a version's `cause`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Cause {
    /// A VM made through uvmm.
    Create,
    /// A change made through uvmm.
    #[default]
    Edit,
    /// The last definition of a VM deleted through uvmm.
    Delete,
    /// A restore (through uvmmd or `uvmm-restore`).
    Restore,
    /// A change made outside uvmm (virsh), seen through an event or the definition watch.
    External,
    /// A change found on (re)connection or by a statistics round.
    Resync,
    /// The VM moved to this version's host (live or offline migration, failover); the
    /// versions before it record the VM on its previous host.
    Migrate,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Create => "create",
            Cause::Edit => "edit",
            Cause::Delete => "delete",
            Cause::Restore => "restore",
            Cause::External => "external",
            Cause::Resync => "resync",
            Cause::Migrate => "migrate",
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the daemon knows about a change when it records it.
#[derive(Debug, Clone, Default)]
pub struct VersionInput {
    pub host: String,
    pub name: String,
    /// Domain type: kvm, qemu, xen, test.
    pub hypervisor: String,
    pub os_type: String,
    pub cause: Cause,
    /// Who made the change (`uvmmd`'s caller, see its `caller.rs`); none for changes
    /// made outside uvmm.
    pub user: Option<String>,
    /// The VM was deleted with this change (its definition is the last one it had).
    pub deleted: bool,
    /// A snapshot taken or deleted with this change: the version is written even when
    /// the domain's definition is the same (an internal snapshot does not change it).
    pub snapshot: Option<SnapshotNote>,
}

/// A snapshot to record with a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotNote {
    pub name: String,
    pub event: SnapshotEvent,
}

/// What happened to the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotEvent {
    /// Taken, with its definition (`virDomainSnapshotGetXMLDesc`, secrets included like
    /// the domain's: the files are private and clients see them redacted).
    Created {
        xml: String,
    },
    Deleted,
}

/// How long versions are kept. The latest version of a VM is never pruned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    /// Keep at most this many versions per VM (0: no limit).
    pub keep_versions: u32,
    /// Drop versions older than this (None: no age limit).
    pub max_age: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_versions: 100,
            max_age: None,
        }
    }
}

pub struct BackupStore {
    pub(crate) dir: PathBuf,
    /// Writers of one UUID go one after the other (several host workers may record the
    /// same UUID); different VMs never wait for each other, so a batch of many VMs does
    /// not hold up the writers of others.
    claims: Claims,
    /// What this process knows of each VM's latest version, so that checking an unchanged
    /// definition (every VM at start, every statistics round) costs a hash comparison
    /// instead of a directory listing and two file reads. Filled from disk on the first
    /// save of a UUID, updated by every version this process writes.
    latest: Mutex<HashMap<String, Latest>>,
    /// Keyed with random keys per process: a definition crafted to collide with the
    /// previous one (and so skip its backup) would need the keys.
    pub(crate) hasher: std::hash::RandomState,
    /// Group commit of the top directory's fsync (see `sync_top`).
    top_sync: TopSync,
    /// How `save_batch` syncs (see `batch.rs`).
    pub(crate) batch_sync: crate::batch::BatchSync,
}

/// Tickets for syncing the top directory: `issued` counts the requests, `covered` the
/// requests whose renames a finished fsync made durable.
#[derive(Default)]
struct TopSync {
    tickets: Mutex<(u64, u64)>,
    /// One fsync of the top directory at a time; those who waited are often covered.
    running: Mutex<()>,
}

/// The UUIDs being written.
#[derive(Default)]
struct Claims {
    busy: Mutex<HashSet<String>>,
    freed: Condvar,
}

/// UUIDs claimed for writing; released when dropped.
pub(crate) struct Claim<'a> {
    claims: &'a Claims,
    uuids: Vec<String>,
}

impl Claims {
    /// Wait until none of `uuids` is claimed, then claim them all at once: taking all or
    /// nothing, claimers of overlapping sets cannot deadlock.
    fn claim(&self, uuids: Vec<String>) -> Claim<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while uuids.iter().any(|u| busy.contains(u)) {
            busy = self.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        busy.extend(uuids.iter().cloned());
        Claim {
            claims: self,
            uuids,
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut busy = self.claims.busy.lock().unwrap_or_else(|p| p.into_inner());
        for u in &self.uuids {
            busy.remove(u);
        }
        drop(busy);
        self.claims.freed.notify_all();
    }
}

/// The latest version of one VM as `save` compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Latest {
    pub(crate) hash: u64,
    pub(crate) len: usize,
    pub(crate) deleted: bool,
}

/// The file of a version's snapshot definition, beside its `xml` and `meta.json`.
pub(crate) const SNAPSHOT_EXT: &str = "snapshot.xml";

pub(crate) fn version_file(dir: &Path, uuid: &str, n: u32, ext: &str) -> PathBuf {
    dir.join(uuid).join(format!("{n:06}.{ext}"))
}

/// Temporary files of writers that died (a crash between write and rename) are removed;
/// those of this process may belong to a write in progress and stay.
pub(crate) fn remove_stale_temp_files(dir: &Path) {
    let own = format!(".tmp.{}.", std::process::id());
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp.") && !name.contains(&own) {
            let _ = fs::remove_file(e.path());
        }
    }
}

pub(crate) fn mkdir_private(path: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

impl BackupStore {
    pub fn new(dir: impl Into<PathBuf>) -> BackupStore {
        BackupStore {
            dir: dir.into(),
            claims: Claims::default(),
            latest: Mutex::new(HashMap::new()),
            hasher: std::hash::RandomState::new(),
            top_sync: TopSync::default(),
            batch_sync: crate::batch::BatchSync::default(),
        }
    }

    /// The same store with batches synced the way `sync` says.
    pub fn with_batch_sync(mut self, sync: crate::batch::BatchSync) -> BackupStore {
        self.batch_sync = sync;
        self
    }

    /// Make the renames and new directories this thread made in the top directory
    /// durable. Many VMs get their first version at once (a first start): an fsync that
    /// started after a caller's request covers it too, so the callers queued behind one
    /// running fsync share the next one instead of each running its own.
    fn sync_top(&self) -> std::io::Result<()> {
        let tickets = |f: &mut dyn FnMut(&mut (u64, u64))| {
            f(&mut self
                .top_sync
                .tickets
                .lock()
                .unwrap_or_else(|p| p.into_inner()));
        };
        let mut mine = 0;
        tickets(&mut |t| {
            t.0 += 1;
            mine = t.0;
        });
        let _running = self
            .top_sync
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (mut covered, mut upto) = (false, 0);
        tickets(&mut |t| {
            covered = t.1 >= mine;
            upto = t.0;
        });
        if covered {
            return Ok(());
        }
        // Every request issued so far was issued after its renames: this fsync covers it.
        sync_dir(&self.dir)?;
        tickets(&mut |t| t.1 = t.1.max(upto));
        Ok(())
    }

    fn known_latest(&self, uuid: &str) -> Option<Latest> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uuid)
            .copied()
    }

    pub(crate) fn remember_latest(&self, uuid: &str, latest: Latest) {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uuid.to_string(), latest);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self, uuid: &str) -> Claim<'_> {
        self.claims.claim(vec![uuid.to_string()])
    }

    /// Claim several UUIDs for writing (a batch); the same UUID twice is claimed once.
    pub(crate) fn claim(&self, mut uuids: Vec<String>) -> Claim<'_> {
        uuids.sort();
        uuids.dedup();
        self.claims.claim(uuids)
    }

    /// Remove what writers killed mid-write left behind (temporary files); called when the
    /// daemon starts, before anything else writes.
    pub fn clean_up(&self) {
        remove_stale_temp_files(&self.dir);
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                remove_stale_temp_files(&e.path());
            }
        }
    }

    /// True when the directory holds the original UVMM's flat layout only.
    pub fn is_old_layout(&self) -> bool {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return false;
        };
        let mut old = false;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() && normalize_uuid(&name).is_ok() {
                return false;
            }
            if old_layout_uuid(&name).is_some() {
                old = true;
            }
        }
        old
    }

    /// Versions of one UUID, oldest first (complete versions only).
    pub fn versions(&self, uuid: &str) -> Result<Vec<VersionMeta>, BackupError> {
        let uuid = normalize_uuid(uuid).map_err(|e| BackupError::Invalid(e.to_string()))?;
        if self.is_old_layout() {
            return Ok(old_versions(&self.dir, &uuid));
        }
        let vdir = self.dir.join(&uuid);
        let rd = match fs::read_dir(&vdir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io(&vdir)(e)),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(n) = name
                .strip_suffix(".meta.json")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(text) = fs::read(e.path()) else {
                continue;
            };
            let Ok(meta) = serde_json::from_slice::<VersionMeta>(&text) else {
                tracing::warn!(file = %e.path().display(), "unreadable backup record skipped");
                continue;
            };
            let xml_ok = fs::metadata(version_file(&self.dir, &uuid, n, "xml"))
                .is_ok_and(|m| m.len() == meta.xml_bytes);
            if meta.version == n && xml_ok {
                out.push(meta);
            }
        }
        out.sort_by_key(|m| m.version);
        Ok(out)
    }

    /// The XML of a version.
    pub fn version_xml(&self, uuid: &str, version: u32) -> Result<String, BackupError> {
        let uuid = normalize_uuid(uuid).map_err(|e| BackupError::Invalid(e.to_string()))?;
        if self.is_old_layout() {
            return old_version_xml(&self.dir, &uuid, version)
                .ok_or(BackupError::NoVersion { uuid, version });
        }
        if !self.versions(&uuid)?.iter().any(|m| m.version == version) {
            return Err(BackupError::NoVersion { uuid, version });
        }
        let path = version_file(&self.dir, &uuid, version, "xml");
        fs::read_to_string(&path).map_err(io(&path))
    }

    /// The definition of the snapshot a version records as taken (`None`: the version
    /// records no snapshot taken).
    pub fn version_snapshot_xml(
        &self,
        uuid: &str,
        version: u32,
    ) -> Result<Option<String>, BackupError> {
        let uuid = normalize_uuid(uuid).map_err(|e| BackupError::Invalid(e.to_string()))?;
        let meta = self
            .versions(&uuid)?
            .into_iter()
            .find(|m| m.version == version)
            .ok_or_else(|| BackupError::NoVersion {
                uuid: uuid.clone(),
                version,
            })?;
        if meta.snapshot.and_then(|s| s.xml_bytes).is_none() {
            return Ok(None);
        }
        let path = version_file(&self.dir, &uuid, version, SNAPSHOT_EXT);
        fs::read_to_string(&path).map(Some).map_err(io(&path))
    }

    pub fn latest(&self, uuid: &str) -> Result<Option<(VersionMeta, String)>, BackupError> {
        let Some(meta) = self.versions(uuid)?.pop() else {
            return Ok(None);
        };
        let xml = self.version_xml(uuid, meta.version)?;
        Ok(Some((meta, xml)))
    }

    /// True when `xml` is the latest (not deleted) version of `uuid` this process knows:
    /// `save` would write nothing. Lets a caller skip preparing a version (parsing the
    /// definition for its record) in the common case; false means "look closer", not
    /// "changed".
    pub fn unchanged(&self, uuid: &str, xml: &str) -> bool {
        let Ok(uuid) = normalize_uuid(uuid) else {
            return false;
        };
        self.known_latest(&uuid).is_some_and(|k| {
            !k.deleted && k.len == xml.len() && k.hash == self.hasher.hash_one(xml)
        })
    }

    /// The number of the version to write for `xml` (claimed by the caller), or `None`
    /// when it equals the latest one (a deletion is always recorded).
    pub(crate) fn plan(
        &self,
        uuid: &str,
        xml: &str,
        input: &VersionInput,
        hash: u64,
    ) -> Result<Option<u32>, BackupError> {
        // The fast path: the same definition as the latest version this process knows.
        // A version written meanwhile by another process (uvmm-restore --direct) is
        // found below as soon as the definition differs from the one known here. A move
        // compares hosts, which only the records on disk know.
        if let Some(known) = self
            .known_latest(uuid)
            .filter(|_| input.cause != Cause::Migrate && input.snapshot.is_none())
        {
            if known.hash == hash && known.len == xml.len() && known.deleted == input.deleted {
                return Ok(None);
            }
        }
        let existing = self.versions(uuid)?;
        if let Some(last) = existing.last() {
            let last_xml = fs::read_to_string(version_file(&self.dir, uuid, last.version, "xml"))
                .unwrap_or_default();
            // A move is a version of its own even with the same definition: the history
            // then says where the VM went.
            let moved = input.cause == Cause::Migrate && last.host != input.host;
            // Only the layout differs (libvirt re-indented it, or the version was written
            // under a libvirt that indents differently): the same definition, no version
            // with a cause it does not have.
            let same = last_xml == xml
                || uvmm_model::xml::without_layout(&last_xml)
                    == uvmm_model::xml::without_layout(xml);
            if same
                && input.deleted == last.deleted
                && (input.deleted || !moved)
                && input.snapshot.is_none()
            {
                self.remember_latest(
                    uuid,
                    Latest {
                        hash,
                        len: xml.len(),
                        deleted: last.deleted,
                    },
                );
                return Ok(None);
            }
        }
        Ok(Some(existing.last().map(|m| m.version + 1).unwrap_or(1)))
    }

    /// Record `xml` as the newest version of `uuid`, unless it equals the latest one (a
    /// deletion is always recorded). Returns the new version number.
    pub fn save(
        &self,
        uuid: &str,
        xml: &str,
        input: &VersionInput,
    ) -> Result<Option<u32>, BackupError> {
        let uuid = normalize_uuid(uuid).map_err(|e| BackupError::Invalid(e.to_string()))?;
        let _guard = self.lock(&uuid);
        let hash = self.hasher.hash_one(xml);
        let Some(n) = self.plan(&uuid, xml, input, hash)? else {
            return Ok(None);
        };
        let vdir = self.dir.join(&uuid);
        // Temporary files of dead writers in the top directory are removed once at start
        // (`clean_up`): listing 25,000 entries per new version made the first start
        // quadratic. The VM's own directory is small.
        remove_stale_temp_files(&vdir);
        let new_vm = !vdir.is_dir();
        mkdir_private(&self.dir).map_err(io(&self.dir))?;
        mkdir_private(&vdir).map_err(io(&vdir))?;
        let xml_path = version_file(&self.dir, &uuid, n, "xml");
        write_renamed(&xml_path, xml.as_bytes(), 0o600).map_err(io(&xml_path))?;
        if let Some(snap) = snapshot_xml(input) {
            let path = version_file(&self.dir, &uuid, n, SNAPSHOT_EXT);
            write_renamed(&path, snap.as_bytes(), 0o600).map_err(io(&path))?;
        }
        let meta = version_meta(n, xml, input);
        let meta_path = version_file(&self.dir, &uuid, n, "meta.json");
        let json = meta_json(&meta)?;
        write_renamed(&meta_path, &json, 0o600).map_err(io(&meta_path))?;
        // One directory fsync for both names: a version whose record or XML did not make
        // it counts as absent (see `versions`).
        sync_dir(&vdir).map_err(io(&vdir))?;
        // The copy under the original UVMM's name is replaced atomically; its rename is
        // made durable by the next sync of the top directory, which happens only when a
        // VM gets its directory (that name must survive a crash: the versions are in it).
        // After a power loss the copy may show the previous version; the versions never
        // lag (see docs/performance.md, "durability").
        let latest = self.dir.join(format!("{uuid}.xml"));
        write_renamed(&latest, xml.as_bytes(), 0o600).map_err(io(&latest))?;
        if new_vm {
            self.sync_top().map_err(io(&self.dir))?;
        }
        self.remember_latest(
            &uuid,
            Latest {
                hash,
                len: xml.len(),
                deleted: input.deleted,
            },
        );
        Ok(Some(n))
    }

    /// Record that a VM was deleted: its latest definition again, marked deleted.
    pub fn mark_deleted(
        &self,
        uuid: &str,
        input: &VersionInput,
    ) -> Result<Option<u32>, BackupError> {
        let Some((last, xml)) = self.latest(uuid)? else {
            return Ok(None);
        };
        if last.deleted {
            return Ok(None);
        }
        let mut input = input.clone();
        input.deleted = true;
        if input.name.is_empty() {
            input.name = last.name.clone();
        }
        if input.hypervisor.is_empty() {
            input.hypervisor = last.hypervisor.clone();
            input.os_type = last.os_type.clone();
        }
        self.save(uuid, &xml, &input)
    }

    /// Every VM with backups.
    pub fn list(&self) -> Result<Vec<BackupSummary>, BackupError> {
        if self.is_old_layout() {
            return Ok(old_list(&self.dir));
        }
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !e.path().is_dir() || normalize_uuid(&name).is_err() {
                continue;
            }
            let versions = self.versions(&name)?;
            if let Some(last) = versions.last() {
                out.push(BackupSummary {
                    uuid: name.clone(),
                    name: last.name.clone(),
                    host: last.host.clone(),
                    hypervisor: last.hypervisor.clone(),
                    os_type: last.os_type.clone(),
                    version_count: u32::try_from(versions.len()).unwrap_or(u32::MAX),
                    latest: last.version,
                    last_change: last.time.clone(),
                    last_cause: last.cause.clone(),
                    deleted: last.deleted,
                    old_layout: false,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.uuid.cmp(&b.uuid)));
        Ok(out)
    }

    /// Find the backup of a VM by UUID or name (latest name); an ambiguous name is an error.
    pub fn find(&self, name_or_uuid: &str) -> Result<BackupSummary, BackupError> {
        let all = self.list()?;
        if let Ok(uuid) = normalize_uuid(name_or_uuid) {
            return all
                .into_iter()
                .find(|b| b.uuid == uuid)
                .ok_or_else(|| BackupError::NotFound(name_or_uuid.into()));
        }
        let mut hits: Vec<BackupSummary> =
            all.into_iter().filter(|b| b.name == name_or_uuid).collect();
        match hits.len() {
            0 => Err(BackupError::NotFound(name_or_uuid.into())),
            1 => Ok(hits.remove(0)),
            _ => Err(BackupError::Ambiguous {
                name: name_or_uuid.into(),
                uuids: hits.iter().map(|b| b.uuid.clone()).collect(),
            }),
        }
    }

    /// Apply the retention policy to every VM, deleted ones included; returns how many
    /// versions were removed.
    pub fn prune(&self, policy: Retention, now: SystemTime) -> Result<usize, BackupError> {
        if self.is_old_layout() {
            return Err(BackupError::Invalid(
                "the original UVMM's backup directory is read-only for uvmm".into(),
            ));
        }
        let mut removed = 0;
        for b in self.list()? {
            let _guard = self.lock(&b.uuid);
            removed += self.prune_unlocked(&b.uuid, policy, now)?;
        }
        Ok(removed)
    }

    /// Apply the retention policy to one VM (done after each new version of it).
    pub fn prune_vm(
        &self,
        uuid: &str,
        policy: Retention,
        now: SystemTime,
    ) -> Result<usize, BackupError> {
        let key = normalize_uuid(uuid).unwrap_or_else(|_| uuid.to_string());
        let _guard = self.lock(&key);
        self.prune_unlocked(uuid, policy, now)
    }

    fn prune_unlocked(
        &self,
        uuid: &str,
        policy: Retention,
        now: SystemTime,
    ) -> Result<usize, BackupError> {
        let uuid = normalize_uuid(uuid).map_err(|e| BackupError::Invalid(e.to_string()))?;
        let versions = self.versions(&uuid)?;
        let count = versions.len();
        let mut removed = 0;
        // The latest version always stays.
        for (i, v) in versions.iter().enumerate().take(count.saturating_sub(1)) {
            let too_many = policy.keep_versions > 0 && count - i > policy.keep_versions as usize;
            let too_old = policy.max_age.is_some_and(|age| {
                humantime::parse_rfc3339(&v.time)
                    .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > age)
            });
            if too_many || too_old {
                // The record goes first: without it the version no longer counts.
                let meta = version_file(&self.dir, &uuid, v.version, "meta.json");
                fs::remove_file(&meta).map_err(io(&meta))?;
                let _ = fs::remove_file(version_file(&self.dir, &uuid, v.version, "xml"));
                let _ = fs::remove_file(version_file(&self.dir, &uuid, v.version, SNAPSHOT_EXT));
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Unified diff between two versions.
    pub fn diff(&self, uuid: &str, from: u32, to: u32) -> Result<String, BackupError> {
        self.diff_with(uuid, from, to, |x| x)
    }

    /// The diff of two versions after `view` (e.g. secrets redacted) is applied to each.
    pub fn diff_with(
        &self,
        uuid: &str,
        from: u32,
        to: u32,
        view: impl Fn(String) -> String,
    ) -> Result<String, BackupError> {
        let a = view(self.version_xml(uuid, from)?);
        let b = view(self.version_xml(uuid, to)?);
        Ok(similar::TextDiff::from_lines(&a, &b)
            .unified_diff()
            .context_radius(3)
            .header(&format!("version {from}"), &format!("version {to}"))
            .to_string())
    }
}

/// The definition of the snapshot a version records as taken.
pub(crate) fn snapshot_xml(input: &VersionInput) -> Option<&str> {
    match input.snapshot.as_ref().map(|s| &s.event) {
        Some(SnapshotEvent::Created { xml }) => Some(xml),
        _ => None,
    }
}

/// The record of version `n` of `xml`.
pub(crate) fn version_meta(n: u32, xml: &str, input: &VersionInput) -> VersionMeta {
    let snapshot = input.snapshot.as_ref().map(|note| {
        let (event, xml_bytes) = match &note.event {
            SnapshotEvent::Created { xml } => ("created", Some(xml.len() as u64)),
            SnapshotEvent::Deleted => ("deleted", None),
        };
        SnapshotRecord {
            name: note.name.clone(),
            event: event.into(),
            xml_bytes,
        }
    });
    VersionMeta {
        version: n,
        time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        host: input.host.clone(),
        name: input.name.clone(),
        hypervisor: input.hypervisor.clone(),
        os_type: input.os_type.clone(),
        cause: input.cause.to_string(),
        user: input.user.clone(),
        deleted: input.deleted,
        xml_bytes: xml.len() as u64,
        snapshot,
    }
}

pub(crate) fn meta_json(meta: &VersionMeta) -> Result<Vec<u8>, BackupError> {
    serde_json::to_vec_pretty(meta).map_err(|e| BackupError::Invalid(e.to_string()))
}

// ----- the original UVMM's layout -----

/// `<uuid>.xml`, `<uuid>..xml` and their `.save` variants -> (uuid, is_save).
fn old_layout_uuid(file: &str) -> Option<(String, bool)> {
    let (stem, save) = match file.strip_suffix(".save") {
        Some(s) => (s, true),
        None => (file, false),
    };
    let base = stem
        .strip_suffix("..xml")
        .or_else(|| stem.strip_suffix(".xml"))?;
    normalize_uuid(base).ok().map(|u| (u, save))
}

fn old_files(dir: &Path) -> BTreeMap<String, (Option<PathBuf>, Option<PathBuf>)> {
    let mut map: BTreeMap<String, (Option<PathBuf>, Option<PathBuf>)> = BTreeMap::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some((uuid, save)) = old_layout_uuid(&name) {
            let slot = map.entry(uuid).or_default();
            let target = if save { &mut slot.0 } else { &mut slot.1 };
            // The newer "..xml" name wins over ".xml" when both exist.
            if target.is_none() || name.contains("..xml") {
                *target = Some(e.path());
            }
        }
    }
    map
}

/// The record of an old-layout file; `save` says it is a `.save` file (the definition
/// before the latest one), which is the only thing that makes it "previous".
fn old_meta(path: &Path, version: u32, save: bool) -> Option<VersionMeta> {
    let xml = fs::read_to_string(path).ok()?;
    let def = parse_domain(&xml).ok()?;
    let mtime = fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Some(VersionMeta {
        version,
        time: humantime::format_rfc3339_seconds(mtime).to_string(),
        host: String::new(),
        name: def.name,
        hypervisor: def.domain_type,
        os_type: def.os_type,
        cause: if save {
            "previous (.save)".into()
        } else {
            "latest".into()
        },
        user: None,
        deleted: false,
        xml_bytes: xml.len() as u64,
        snapshot: None,
    })
}

fn old_entries(dir: &Path, uuid: &str) -> Vec<(VersionMeta, PathBuf)> {
    let files = old_files(dir);
    let Some((save, latest)) = files.get(uuid) else {
        return vec![];
    };
    let mut out = Vec::new();
    if let Some(p) = save {
        if let Some(m) = old_meta(p, 1, true) {
            out.push((m, p.clone()));
        }
    }
    if let Some(p) = latest {
        let n = u32::try_from(out.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        if let Some(m) = old_meta(p, n, false) {
            out.push((m, p.clone()));
        }
    }
    out
}

fn old_versions(dir: &Path, uuid: &str) -> Vec<VersionMeta> {
    old_entries(dir, uuid).into_iter().map(|(m, _)| m).collect()
}

fn old_version_xml(dir: &Path, uuid: &str, version: u32) -> Option<String> {
    let (_, path) = old_entries(dir, uuid)
        .into_iter()
        .find(|(m, _)| m.version == version)?;
    fs::read_to_string(path).ok()
}

fn old_list(dir: &Path) -> Vec<BackupSummary> {
    let mut out: Vec<BackupSummary> = old_files(dir)
        .keys()
        .filter_map(|uuid| {
            let versions = old_versions(dir, uuid);
            let last = versions.last()?;
            Some(BackupSummary {
                uuid: uuid.clone(),
                name: last.name.clone(),
                host: String::new(),
                hypervisor: last.hypervisor.clone(),
                os_type: last.os_type.clone(),
                version_count: u32::try_from(versions.len()).unwrap_or(u32::MAX),
                latest: last.version,
                last_change: last.time.clone(),
                last_cause: last.cause.clone(),
                deleted: false,
                old_layout: true,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BatchItem;

    const U: &str = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0";

    fn xml(name: &str, mem: u32) -> String {
        format!("<domain type='kvm'><name>{name}</name><uuid>{U}</uuid><memory>{mem}</memory><os><type>hvm</type></os></domain>")
    }

    fn input(cause: Cause) -> VersionInput {
        VersionInput {
            host: "qemu:///system".into(),
            name: "vm".into(),
            hypervisor: "kvm".into(),
            os_type: "hvm".into(),
            cause,
            ..VersionInput::default()
        }
    }

    /// What this process remembers of the latest versions (the fast path for unchanged
    /// definitions) never hides a version another process wrote, nor a deletion.
    #[test]
    fn remembered_latest_agrees_with_other_writers_and_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let a = BackupStore::new(dir.path().join("b"));
        let b = BackupStore::new(dir.path().join("b"));
        let (one, two) = (xml("vm", 1024), xml("vm", 2048));
        let save = |s: &BackupStore, x: &str| s.save(U, x, &input(Cause::Resync)).unwrap();
        assert_eq!(save(&a, &one), Some(1));
        // Another process (uvmm-restore --direct) records a new definition.
        assert_eq!(save(&b, &two), Some(2));
        assert_eq!(save(&a, &two), None, "the other writer's version is found");
        assert_eq!(save(&a, &one), Some(3), "numbered after the other writer's");
        assert_eq!(save(&b, &one), None);
        // A restart: a new store value knows nothing and reads the disk once.
        let c = BackupStore::new(dir.path().join("b"));
        assert!(
            !c.unchanged(U, &one),
            "nothing known before the first check"
        );
        assert_eq!(save(&c, &one), None);
        assert!(c.unchanged(U, &one) && !c.unchanged(U, &two));
        assert_eq!(c.mark_deleted(U, &input(Cause::Delete)).unwrap(), Some(4));
        // The same definition defined again after the deletion is a version of its own.
        assert_eq!(save(&c, &one), Some(5));
        assert_eq!(save(&c, &one), None);
        // A move with the same definition is a version, though the hash is known.
        let moved = VersionInput {
            host: "qemu+ssh://other/system".into(),
            ..input(Cause::Migrate)
        };
        assert_eq!(c.save(U, &one, &moved).unwrap(), Some(6));
        assert_eq!(c.save(U, &one, &moved).unwrap(), None);
        let deleted: Vec<bool> = c.versions(U).unwrap().iter().map(|m| m.deleted).collect();
        assert_eq!(deleted, [false, false, false, true, false, false]);
    }

    /// A definition that differs from the latest version only in its layout (re-indented
    /// by libvirt, or stored under a libvirt that indents differently) is no version, by
    /// `save` and by `save_batch`, in this process and after a restart; text content and
    /// attributes still count.
    #[test]
    fn a_reindented_definition_is_no_version() {
        let dir = tempfile::tempdir().unwrap();
        let a = BackupStore::new(dir.path().join("b"));
        let flat = xml("vm", 1024);
        let indented = flat.replace("><", ">\n    <");
        assert_ne!(flat, indented);
        let save = |s: &BackupStore, x: &str| s.save(U, x, &input(Cause::External)).unwrap();
        assert_eq!(save(&a, &flat), Some(1));
        assert_eq!(save(&a, &indented), None, "re-indented");
        assert!(
            a.unchanged(U, &indented),
            "remembered: no disk read next time"
        );
        let restarted = BackupStore::new(dir.path().join("b"));
        let batch = |s: &BackupStore, x: &str| {
            let inp = input(Cause::Resync);
            let item = BatchItem {
                uuid: U,
                xml: x,
                input: &inp,
            };
            s.save_batch(&[item]).pop().unwrap().unwrap()
        };
        assert_eq!(
            batch(&restarted, &indented.replace("    <", "\t<")),
            None,
            "after a restart"
        );
        assert_eq!(save(&a, &xml("vm ", 1024)), Some(2), "text content counts");
        assert_eq!(
            batch(&restarted, &xml("vm", 2048)),
            Some(3),
            "a real change"
        );
    }

    /// A snapshot taken is a version of its own although the domain's definition is the
    /// same, with the snapshot's definition kept beside it; a deletion is noted without
    /// one; pruning the version removes its snapshot file too.
    #[test]
    fn snapshots_are_recorded_with_their_definitions() {
        let dir = tempfile::tempdir().unwrap();
        let store = BackupStore::new(dir.path().join("b"));
        let one = xml("vm", 1024);
        assert_eq!(store.save(U, &one, &input(Cause::Edit)).unwrap(), Some(1));
        let snap_xml = "<domainsnapshot><name>s1</name></domainsnapshot>";
        let taken = VersionInput {
            snapshot: Some(SnapshotNote {
                name: "s1".into(),
                event: SnapshotEvent::Created {
                    xml: snap_xml.into(),
                },
            }),
            ..input(Cause::Edit)
        };
        assert_eq!(store.save(U, &one, &taken).unwrap(), Some(2));
        let gone = VersionInput {
            snapshot: Some(SnapshotNote {
                name: "s1".into(),
                event: SnapshotEvent::Deleted,
            }),
            ..input(Cause::Edit)
        };
        assert_eq!(store.save(U, &one, &gone).unwrap(), Some(3));
        assert_eq!(store.save(U, &one, &input(Cause::Edit)).unwrap(), None);
        let records: Vec<Option<(String, String, Option<u64>)>> = store
            .versions(U)
            .unwrap()
            .into_iter()
            .map(|m| m.snapshot.map(|s| (s.name, s.event, s.xml_bytes)))
            .collect();
        assert_eq!(
            records,
            [
                None,
                Some(("s1".into(), "created".into(), Some(snap_xml.len() as u64))),
                Some(("s1".into(), "deleted".into(), None)),
            ]
        );
        assert_eq!(
            store.version_snapshot_xml(U, 2).unwrap().as_deref(),
            Some(snap_xml)
        );
        assert_eq!(store.version_snapshot_xml(U, 3).unwrap(), None);
        assert_eq!(store.version_snapshot_xml(U, 1).unwrap(), None);
        assert!(store.version_snapshot_xml(U, 9).is_err());
        let policy = Retention {
            keep_versions: 1,
            max_age: None,
        };
        assert_eq!(store.prune_vm(U, policy, SystemTime::now()).unwrap(), 2);
        let file = version_file(&store.dir, &normalize_uuid(U).unwrap(), 2, SNAPSHOT_EXT);
        assert!(!file.exists(), "pruned with its version");
    }

    /// First versions of many VMs from several threads share syncs of the top directory
    /// (`sync_top`); every one of them is complete and listed.
    #[test]
    fn concurrent_first_versions_are_all_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let store = BackupStore::new(dir.path().join("b"));
        std::thread::scope(|s| {
            for t in 0..8u32 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..25u32 {
                        let uuid = format!("4dea22b3-1d52-d8f3-2516-{:012x}", t * 100 + i);
                        let x = xml(&format!("vm{t}-{i}"), 1024);
                        assert_eq!(
                            store.save(&uuid, &x, &input(Cause::Resync)).unwrap(),
                            Some(1)
                        );
                    }
                });
            }
        });
        assert_eq!(store.list().unwrap().len(), 200);
        let t = store.top_sync.tickets.lock().unwrap();
        assert_eq!((t.0, t.1), (200, 200), "every request issued and covered");
    }

    #[test]
    fn versions_dedupe_diff_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let store = BackupStore::new(dir.path().join("b"));
        assert_eq!(
            store
                .save(U, &xml("vm", 1024), &input(Cause::Create))
                .unwrap(),
            Some(1)
        );
        assert_eq!(
            store
                .save(U, &xml("vm", 1024), &input(Cause::Resync))
                .unwrap(),
            None,
            "unchanged XML makes no version"
        );
        assert_eq!(
            store
                .save(U, &xml("vm", 2048), &input(Cause::Edit))
                .unwrap(),
            Some(2)
        );
        let v = store.versions(U).unwrap();
        assert_eq!(
            v.iter().map(|m| m.cause.as_str()).collect::<Vec<_>>(),
            ["create", "edit"]
        );
        let diff = store.diff(U, 1, 2).unwrap();
        assert!(
            diff.contains("-<domain type='kvm'><name>vm</name>")
                && diff.contains("<memory>2048</memory>"),
            "{diff}"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join(format!("b/{U}.xml"))).unwrap(),
            xml("vm", 2048)
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("b")), 0o700);
        assert_eq!(mode(&dir.path().join(format!("b/{U}"))), 0o700);
        assert_eq!(mode(&dir.path().join(format!("b/{U}/000002.xml"))), 0o600);
        assert_eq!(mode(&dir.path().join(format!("b/{U}.xml"))), 0o600);
        // Deletion is always recorded, once.
        assert_eq!(
            store.mark_deleted(U, &input(Cause::Delete)).unwrap(),
            Some(3)
        );
        assert_eq!(store.mark_deleted(U, &input(Cause::Delete)).unwrap(), None);
        let list = store.list().unwrap();
        assert_eq!(list.len(), 1);
        assert!(list[0].deleted);
        assert_eq!(store.find("vm").unwrap().uuid, U);
        assert_eq!(store.find(&U.to_uppercase()).unwrap().uuid, U);
        assert!(matches!(store.find("nope"), Err(BackupError::NotFound(_))));
        assert!(matches!(
            store.version_xml(U, 9),
            Err(BackupError::NoVersion { .. })
        ));
    }

    #[test]
    fn partial_versions_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = BackupStore::new(dir.path());
        store.save(U, &xml("vm", 1), &input(Cause::Create)).unwrap();
        // A crash after the XML but before the record, and a truncated XML: both ignored.
        fs::write(dir.path().join(format!("{U}/000002.xml")), xml("vm", 2)).unwrap();
        store.save(U, &xml("vm", 3), &input(Cause::Edit)).unwrap();
        let v = store.versions(U).unwrap();
        assert_eq!(v.iter().map(|m| m.version).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(store.version_xml(U, 2).unwrap(), xml("vm", 3));
        fs::write(dir.path().join(format!("{U}/000002.xml")), "<dom").unwrap();
        assert_eq!(store.versions(U).unwrap().len(), 1);
    }

    #[test]
    fn prune_keeps_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let store = BackupStore::new(dir.path());
        for m in 1..=5 {
            store.save(U, &xml("vm", m), &input(Cause::Edit)).unwrap();
        }
        let removed = store
            .prune(
                Retention {
                    keep_versions: 2,
                    max_age: None,
                },
                SystemTime::now(),
            )
            .unwrap();
        assert_eq!(removed, 3);
        assert_eq!(
            store
                .versions(U)
                .unwrap()
                .iter()
                .map(|m| m.version)
                .collect::<Vec<_>>(),
            [4, 5]
        );
        // Everything is "too old" in a year: only the latest survives.
        let later = SystemTime::now() + Duration::from_secs(365 * 86400);
        store
            .prune(
                Retention {
                    keep_versions: 0,
                    max_age: Some(Duration::from_secs(86400)),
                },
                later,
            )
            .unwrap();
        assert_eq!(
            store
                .versions(U)
                .unwrap()
                .iter()
                .map(|m| m.version)
                .collect::<Vec<_>>(),
            [5]
        );
        // New versions continue the numbering.
        assert_eq!(
            store.save(U, &xml("vm", 9), &input(Cause::Edit)).unwrap(),
            Some(6)
        );
    }

    #[test]
    fn old_uvmm_layout_in_all_four_name_forms() {
        let dir = tempfile::tempdir().unwrap();
        let u2 = "c7a5fdbd-edaf-9455-926a-d65c16db1809";
        let x2 = |mem: u32| {
            format!("<domain type='xen'><name>winxp</name><uuid>{u2}</uuid><memory>{mem}</memory><os><type>hvm</type></os></domain>")
        };
        fs::write(dir.path().join(format!("{U}.xml")), xml("old-a", 1)).unwrap();
        fs::write(dir.path().join(format!("{U}.xml.save")), xml("old-a", 0)).unwrap();
        fs::write(dir.path().join(format!("{u2}..xml")), x2(2)).unwrap();
        fs::write(dir.path().join(format!("{u2}..xml.save")), x2(1)).unwrap();
        fs::write(dir.path().join("unrelated.txt"), "x").unwrap();
        let store = BackupStore::new(dir.path());
        assert!(store.is_old_layout());
        let list = store.list().unwrap();
        assert_eq!(
            list.iter()
                .map(|b| (b.name.as_str(), b.version_count))
                .collect::<Vec<_>>(),
            [("old-a", 2), ("winxp", 2)]
        );
        assert!(list.iter().all(|b| b.old_layout));
        assert_eq!(
            store.version_xml(u2, 1).unwrap(),
            x2(1),
            ".save is the previous definition"
        );
        assert_eq!(store.version_xml(u2, 2).unwrap(), x2(2));
        assert_eq!(store.find("winxp").unwrap().hypervisor, "xen");
        let causes = |u: &str| -> Vec<String> {
            store
                .versions(u)
                .unwrap()
                .into_iter()
                .map(|m| m.cause)
                .collect()
        };
        assert_eq!(causes(u2), ["previous (.save)", "latest"]);
        // A lone <uuid>.xml is the latest definition, not a previous one.
        let u3 = "0f0e0d0c-0b0a-0908-0706-050403020100";
        fs::write(
            dir.path().join(format!("{u3}.xml")),
            format!("<domain type='kvm'><name>lone</name><uuid>{u3}</uuid><os><type>hvm</type></os></domain>"),
        )
        .unwrap();
        assert_eq!(causes(u3), ["latest"]);
        assert_eq!(store.find("lone").unwrap().last_cause, "latest");
        // A lone .save file is all there is: still the previous definition.
        let u4 = "1f0e0d0c-0b0a-0908-0706-050403020100";
        fs::write(
            dir.path().join(format!("{u4}.xml.save")),
            format!("<domain type='kvm'><name>saved</name><uuid>{u4}</uuid><os><type>hvm</type></os></domain>"),
        )
        .unwrap();
        assert_eq!(causes(u4), ["previous (.save)"]);
        assert!(
            store
                .prune(Retention::default(), SystemTime::now())
                .is_err(),
            "old layout is read-only"
        );
    }
}
