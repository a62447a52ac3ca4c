//! Many versions at once: the resync of a host after (re)connecting checks every one of its
//! VMs, and on a first start every one is new. [`BackupStore::save`] pays four to five
//! fsyncs per version (its XML, its record, the VM's directory, the compatibility copy and
//! the top directory); a batch pays two `syncfs` calls in all, whatever its size:
//!
//! 1. every version's XML (and snapshot definition) is written and named, its record and
//!    the compatibility copy `<uuid>.xml` are written under temporary names;
//! 2. `syncfs`: all of that content, the new directories and the XML names are durable;
//! 3. the records and the compatibility copies get their names (renames only);
//! 4. `syncfs`: the records are durable, the batch returns.
//!
//! A version counts once its record exists (see `store.rs`); a record is named only after
//! its XML and its own content are durable, so a crash at any point leaves each version of
//! the batch either complete or not counting, and no name pointing at a partial file. The
//! temporary files of a crash are removed at the next start (`BackupStore::clean_up`).

use crate::atomic::{stage, sync_dir, sync_file, sync_fs, Staged};
use crate::store::{
    io, meta_json, mkdir_private, remove_stale_temp_files, snapshot_xml, version_file,
    version_meta, BackupError, BackupStore, Latest, VersionInput, SNAPSHOT_EXT,
};
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::path::PathBuf;
use uvmm_model::uuid::normalize_uuid;

/// One definition of a batch, as [`BackupStore::save`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    pub uuid: &'a str,
    pub xml: &'a str,
    pub input: &'a VersionInput,
}

/// How a batch makes its writes durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BatchSync {
    /// `syncfs` of the store's filesystem, twice per batch: the fewest calls, but each
    /// flushes whatever else is dirty on that filesystem too.
    Filesystem,
    /// `fdatasync` of each file and `fsync` of each directory the batch touched, the top
    /// directory once per step: only the batch's own data, more calls.
    #[default]
    Files,
}

/// A version written up to its record, which waits under a temporary name.
struct Pending {
    item: usize,
    /// The version's files named in step 1 (XML, snapshot definition).
    named: Vec<PathBuf>,
    uuid: String,
    n: u32,
    latest: Latest,
    record: Staged,
    compat: Staged,
}

type Outcome = Result<Option<u32>, BackupError>;

/// The same I/O error for every version a failed sync concerned.
fn shared_error(e: &BackupError) -> BackupError {
    match e {
        BackupError::Io { path, source } => BackupError::Io {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        other => BackupError::Invalid(other.to_string()),
    }
}

/// Where the crash test's child process dies (`tests::crash_child`): like a kill -9, no
/// destructor runs, the staged files stay as they are.
#[cfg(test)]
fn crash_point(step: &str) {
    if std::env::var("UVMM_BATCH_CRASH_AT").is_ok_and(|s| s == step) {
        std::process::abort();
    }
}

#[cfg(not(test))]
fn crash_point(_: &str) {}

impl BackupStore {
    /// [`save`](Self::save) for each item, with the same results (version numbers, records,
    /// files), durable together: two `syncfs` calls for the whole batch instead of fsyncs
    /// per version. An item that fails does not hold up the others; a UUID given twice is
    /// saved a second time after the batch, in order.
    pub fn save_batch(&self, items: &[BatchItem<'_>]) -> Vec<Outcome> {
        let mut results: Vec<Option<Outcome>> = items.iter().map(|_| None).collect();
        let mut first = Vec::with_capacity(items.len());
        let mut again = Vec::new();
        let mut seen = HashSet::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match normalize_uuid(item.uuid) {
                Err(e) => results[i] = Some(Err(BackupError::Invalid(e.to_string()))),
                Ok(uuid) if seen.insert(uuid.clone()) => first.push((i, uuid)),
                Ok(_) => again.push(i),
            }
        }
        {
            let _claim = self.claim(first.iter().map(|(_, u)| u.clone()).collect());
            let mut pending = Vec::new();
            let mut top_ready = false;
            for (i, uuid) in first {
                let item = &items[i];
                let hash = self.hasher.hash_one(item.xml);
                let staged = self
                    .plan(&uuid, item.xml, item.input, hash)
                    .and_then(|n| match n {
                        None => Ok(None),
                        Some(n) => {
                            if !top_ready {
                                mkdir_private(&self.dir).map_err(io(&self.dir))?;
                                top_ready = true;
                            }
                            self.stage_version(i, uuid, n, hash, item).map(Some)
                        }
                    });
                match staged {
                    Ok(Some(p)) => pending.push(p),
                    Ok(None) => results[i] = Some(Ok(None)),
                    Err(e) => results[i] = Some(Err(e)),
                }
            }
            for (i, outcome) in self.commit(pending) {
                results[i] = Some(outcome);
            }
        }
        for i in again {
            let item = &items[i];
            results[i] = Some(self.save(item.uuid, item.xml, item.input));
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(BackupError::Invalid("not recorded".into()))))
            .collect()
    }

    /// Step 1 for one version: its XML named, its record and compatibility copy staged.
    fn stage_version(
        &self,
        item: usize,
        uuid: String,
        n: u32,
        hash: u64,
        it: &BatchItem<'_>,
    ) -> Result<Pending, BackupError> {
        let vdir = self.dir.join(&uuid);
        remove_stale_temp_files(&vdir);
        mkdir_private(&vdir).map_err(io(&vdir))?;
        // Named now: without its record the XML does not count.
        let xml_path = version_file(&self.dir, &uuid, n, "xml");
        stage(&xml_path, it.xml.as_bytes(), 0o600, false)
            .and_then(Staged::commit)
            .map_err(io(&xml_path))?;
        let mut named = vec![xml_path];
        if let Some(snap) = snapshot_xml(it.input) {
            let path = version_file(&self.dir, &uuid, n, SNAPSHOT_EXT);
            stage(&path, snap.as_bytes(), 0o600, false)
                .and_then(Staged::commit)
                .map_err(io(&path))?;
            named.push(path);
        }
        let meta = version_meta(n, it.xml, it.input);
        let meta_path = version_file(&self.dir, &uuid, n, "meta.json");
        let record = stage(&meta_path, &meta_json(&meta)?, 0o600, false).map_err(io(&meta_path))?;
        let compat_path = self.dir.join(format!("{uuid}.xml"));
        let compat =
            stage(&compat_path, it.xml.as_bytes(), 0o600, false).map_err(io(&compat_path))?;
        Ok(Pending {
            item,
            named,
            uuid,
            n,
            latest: Latest {
                hash,
                len: it.xml.len(),
                deleted: it.input.deleted,
            },
            record,
            compat,
        })
    }

    /// Step 2: every file of the batch, named or staged, and every directory it made.
    fn sync_staged(&self, pending: &[Pending]) -> Result<(), BackupError> {
        if self.batch_sync == BatchSync::Filesystem {
            return sync_fs(&self.dir).map_err(io(&self.dir));
        }
        for p in pending {
            let files = p.named.iter().map(PathBuf::as_path);
            for f in files.chain([p.record.tmp(), p.compat.tmp()]) {
                sync_file(f).map_err(io(f))?;
            }
            let vdir = self.dir.join(&p.uuid);
            sync_dir(&vdir).map_err(io(&vdir))?;
        }
        sync_dir(&self.dir).map_err(io(&self.dir))
    }

    /// Step 4: the names given to the records (in the VMs' directories) and to the
    /// compatibility copies (in the top directory).
    fn sync_named(&self, named: &[(usize, String, u32, Latest)]) -> Result<(), BackupError> {
        if self.batch_sync == BatchSync::Filesystem {
            return sync_fs(&self.dir).map_err(io(&self.dir));
        }
        for (_, uuid, ..) in named {
            let vdir = self.dir.join(uuid);
            sync_dir(&vdir).map_err(io(&vdir))?;
        }
        sync_dir(&self.dir).map_err(io(&self.dir))
    }

    /// Steps 2 to 4: sync, name the records and copies, sync.
    fn commit(&self, pending: Vec<Pending>) -> Vec<(usize, Outcome)> {
        if pending.is_empty() {
            return Vec::new();
        }
        let fail_all = |pending: Vec<(usize, String, u32, Latest)>, e: &BackupError| {
            pending
                .into_iter()
                .map(|(i, ..)| (i, Err(shared_error(e))))
                .collect()
        };
        let synced = self.sync_staged(&pending);
        crash_point("synced");
        if let Err(e) = synced {
            // The staged records are dropped with `pending`: removed, nothing counts.
            return fail_all(
                pending
                    .into_iter()
                    .map(|p| (p.item, p.uuid, p.n, p.latest))
                    .collect(),
                &e,
            );
        }
        let mut named = Vec::with_capacity(pending.len());
        let mut out = Vec::new();
        let half = pending.len() / 2;
        for (k, p) in pending.into_iter().enumerate() {
            if k == half {
                crash_point("half-named");
            }
            let path = version_file(&self.dir, &p.uuid, p.n, "meta.json");
            match p.record.commit().map_err(io(&path)) {
                Ok(()) => {
                    // The copy may lag behind the versions, never the reverse.
                    let copy = self.dir.join(format!("{}.xml", p.uuid));
                    if let Err(e) = p.compat.commit() {
                        tracing::warn!(file = %copy.display(), "compatibility copy not replaced: {e}");
                    }
                    named.push((p.item, p.uuid, p.n, p.latest));
                }
                Err(e) => out.push((p.item, Err(e))),
            }
        }
        if let Err(e) = self.sync_named(&named) {
            out.extend(fail_all(named, &e));
            return out;
        }
        for (i, uuid, n, latest) in named {
            self.remember_latest(&uuid, latest);
            out.push((i, Ok(Some(n))));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Cause, SnapshotEvent, SnapshotNote, VersionMeta};
    use std::path::Path;

    fn uuid(i: u32) -> String {
        format!("4dea22b3-1d52-d8f3-2516-{i:012x}")
    }

    fn xml(i: u32, generation: u32) -> String {
        let u = uuid(i);
        format!("<domain type='kvm'><name>vm{i}</name><uuid>{u}</uuid><memory>{generation}</memory><os><type>hvm</type></os></domain>")
    }

    fn input(cause: Cause, host: &str) -> VersionInput {
        VersionInput {
            host: host.into(),
            name: "vm".into(),
            hypervisor: "kvm".into(),
            os_type: "hvm".into(),
            cause,
            ..VersionInput::default()
        }
    }

    /// What a store holds for `uuid`: the records without their times, each version's
    /// XML and snapshot definition, and the compatibility copy.
    type Held = (
        Vec<VersionMeta>,
        Vec<String>,
        Vec<Option<String>>,
        Option<String>,
    );

    fn held(store: &BackupStore, uuid: &str) -> Held {
        let metas: Vec<VersionMeta> = store
            .versions(uuid)
            .unwrap()
            .into_iter()
            .map(|m| VersionMeta {
                time: String::new(),
                ..m
            })
            .collect();
        let xmls = metas
            .iter()
            .map(|m| store.version_xml(uuid, m.version).unwrap())
            .collect();
        let snaps = metas
            .iter()
            .map(|m| store.version_snapshot_xml(uuid, m.version).unwrap())
            .collect();
        let copy = std::fs::read_to_string(store.dir().join(format!("{uuid}.xml"))).ok();
        (metas, xmls, snaps, copy)
    }

    /// A batch gives what one `save` per item gives, item by item: the same results, the
    /// same versions with the same records, files and compatibility copies.
    #[test]
    fn a_batch_records_what_single_saves_record() {
        let snap = VersionInput {
            snapshot: Some(SnapshotNote {
                name: "s1".into(),
                event: SnapshotEvent::Created {
                    xml: "<domainsnapshot><name>s1</name></domainsnapshot>".into(),
                },
            }),
            ..input(Cause::Edit, "h1")
        };
        let deleted = VersionInput {
            deleted: true,
            ..input(Cause::Delete, "h1")
        };
        let (resync, moved) = (input(Cause::Resync, "h1"), input(Cause::Migrate, "h2"));
        let (u1, u2, u3) = (uuid(1), uuid(2), uuid(3));
        let upper = uuid(3).to_uppercase();
        let (x1, x1b, x2, x3) = (xml(1, 1), xml(1, 2), xml(2, 1), xml(3, 1));
        let item = |uuid: &'static str, xml: &'static str, input: &'static VersionInput| {
            BatchItem { uuid, xml, input }
        };
        // Leaked: the table's rows borrow them for the whole test.
        let s = |v: String| -> &'static str { Box::leak(v.into_boxed_str()) };
        let i = |v: VersionInput| -> &'static VersionInput { Box::leak(Box::new(v)) };
        let (u1, u2, u3, upper) = (s(u1), s(u2), s(u3), s(upper));
        let (x1, x1b, x2, x3) = (s(x1), s(x1b), s(x2), s(x3));
        let (resync, moved, snap, deleted) = (i(resync), i(moved), i(snap), i(deleted));
        let rounds: Vec<(&str, Vec<BatchItem<'static>>)> = vec![
            (
                "first versions",
                vec![item(u1, x1, resync), item(u2, x2, resync)],
            ),
            (
                "unchanged and changed",
                vec![item(u1, x1, resync), item(u2, xml_leak(2, 2), resync)],
            ),
            (
                "not a UUID",
                vec![item("nope", x1, resync), item(u3, x3, resync)],
            ),
            (
                "a UUID twice, in another spelling",
                vec![
                    item(u1, x1b, resync),
                    item(upper, x3, resync),
                    item(u1, x1, resync),
                ],
            ),
            ("a move with the same definition", vec![item(u1, x1, moved)]),
            (
                "a snapshot, same definition",
                vec![item(u2, xml_leak(2, 2), snap)],
            ),
            ("a deletion", vec![item(u3, x3, deleted)]),
            (
                "defined again after the deletion",
                vec![item(u3, x3, resync)],
            ),
            ("empty", vec![]),
        ];
        let dir = tempfile::tempdir().unwrap();
        let single = BackupStore::new(dir.path().join("single"));
        let batch = BackupStore::new(dir.path().join("batch"));
        for (what, items) in &rounds {
            let one_by_one: Vec<Result<Option<u32>, String>> = items
                .iter()
                .map(|it| {
                    single
                        .save(it.uuid, it.xml, it.input)
                        .map_err(|e| e.to_string())
                })
                .collect();
            let batched: Vec<Result<Option<u32>, String>> = batch
                .save_batch(items)
                .into_iter()
                .map(|r| r.map_err(|e| e.to_string()))
                .collect();
            assert_eq!(batched, one_by_one, "{what}");
            for u in [u1, u2, u3] {
                assert_eq!(held(&batch, u), held(&single, u), "{what}: {u}");
            }
        }
        let versions = |u| held(&batch, u).0.len();
        assert_eq!((versions(u1), versions(u2), versions(u3)), (4, 3, 3));
        assert_eq!(batch.list().unwrap().len(), 3);
        assert!(
            temp_files(&dir.path().join("batch")).is_empty(),
            "nothing staged is left"
        );
    }

    fn xml_leak(i: u32, generation: u32) -> &'static str {
        Box::leak(xml(i, generation).into_boxed_str())
    }

    fn temp_files(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(temp_files(&p));
            } else if e.file_name().to_string_lossy().contains(".tmp.") {
                out.push(p);
            }
        }
        out
    }

    const CRASH_VMS: u32 = 10;

    /// The batch of the crash test: VMs 0..5 get their second version, 5..10 their first.
    fn crash_batch(store: &BackupStore) -> Vec<Outcome> {
        let input = input(Cause::Resync, "h1");
        let (uuids, xmls): (Vec<String>, Vec<String>) =
            (0..CRASH_VMS).map(|i| (uuid(i), xml(i, 2))).unzip();
        let items: Vec<BatchItem<'_>> = uuids
            .iter()
            .zip(&xmls)
            .map(|(uuid, xml)| BatchItem {
                uuid,
                xml,
                input: &input,
            })
            .collect();
        store.save_batch(&items)
    }

    /// Not a test of its own: the body of the child process `a_killed_batch_...` starts,
    /// which dies at `UVMM_BATCH_CRASH_AT` (without it, it does nothing).
    #[test]
    fn crash_child() {
        let Ok(dir) = std::env::var("UVMM_BATCH_CRASH_DIR") else {
            return;
        };
        let _ = crash_batch(&BackupStore::new(dir));
    }

    /// A batch whose process dies after its files are written and synced but before its
    /// records are named leaves no new version that counts; one that dies halfway through
    /// naming them leaves complete versions for the first half only. No named file is
    /// partial, the next start removes the staged files, and the next batch numbers the
    /// versions as if nothing had happened.
    #[test]
    fn a_killed_batch_leaves_complete_versions_or_none() {
        for (step, counted) in [("synced", 0), ("half-named", CRASH_VMS / 2)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("b");
            let before = BackupStore::new(&path);
            for i in 0..CRASH_VMS / 2 {
                let r = before.save(&uuid(i), &xml(i, 1), &input(Cause::Resync, "h1"));
                assert_eq!(r.unwrap(), Some(1));
            }
            use std::os::unix::process::ExitStatusExt;
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "batch::tests::crash_child", "--test-threads=1"])
                .env("UVMM_BATCH_CRASH_DIR", &path)
                .env("UVMM_BATCH_CRASH_AT", step)
                .output()
                .unwrap()
                .status;
            assert_eq!(status.signal(), Some(6), "{step}: the child died there");
            assert!(
                !temp_files(&path).is_empty(),
                "{step}: it left staged files"
            );
            let after = BackupStore::new(&path);
            after.clean_up();
            assert!(temp_files(&path).is_empty(), "{step}: removed at start");
            // Versions that count, per VM: the first half had one before the batch.
            let counts: Vec<usize> = (0..CRASH_VMS)
                .map(|i| after.versions(&uuid(i)).unwrap().len())
                .collect();
            let expected: Vec<usize> = (0..CRASH_VMS)
                .map(|i| usize::from(i < CRASH_VMS / 2) + usize::from(i < counted))
                .collect();
            assert_eq!(counts, expected, "{step}");
            // Every named file is complete: records parse and match their XML, which
            // parses, and so does every compatibility copy.
            for i in 0..CRASH_VMS {
                for m in after.versions(&uuid(i)).unwrap() {
                    let x = after.version_xml(&uuid(i), m.version).unwrap();
                    assert_eq!(x, xml(i, m.version), "{step}: vm {i} version {}", m.version);
                }
                let copy = path.join(format!("{}.xml", uuid(i)));
                if let Ok(c) = std::fs::read_to_string(&copy) {
                    assert!(c == xml(i, 1) || c == xml(i, 2), "{step}: {c:?}");
                }
                for e in std::fs::read_dir(path.join(uuid(i))).into_iter().flatten() {
                    let f = e.unwrap().path();
                    let text = std::fs::read_to_string(&f).unwrap();
                    assert!(!text.is_empty(), "{step}: {} is empty", f.display());
                }
            }
            // The next batch records what is missing, numbered after what counts.
            let again = crash_batch(&after);
            let got: Vec<Option<u32>> = again.into_iter().map(Result::unwrap).collect();
            let want: Vec<Option<u32>> = expected
                .iter()
                .map(|&have| (have < 2).then(|| u32::try_from(have).unwrap() + 1))
                .collect();
            assert_eq!(got, want, "{step}");
            for i in 0..CRASH_VMS {
                let last = after.latest(&uuid(i)).unwrap().unwrap();
                assert_eq!(last.1, xml(i, 2), "{step}: vm {i}");
            }
        }
    }
}
