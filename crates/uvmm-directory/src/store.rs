//! What survives a restart while the directory is down: the cache of the last directory
//! state (one JSON file, replaced atomically) and the journal of note writes not yet in the
//! directory (JSON lines, appended and fsynced before a write is acknowledged). Both 0600
//! in a 0700 directory: notes and group memberships are not for every local user.

use crate::error::{Error, Result};
use crate::model::{NoteEdit, NoteValues};
use crate::sync::RawSet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const CACHE_FILE: &str = "directory-cache.json";
pub const JOURNAL_FILE: &str = "notes-journal.jsonl";
const CACHE_VERSION: u32 = 1;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::CacheIo {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io_err(dir))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Write a file so that a reader (or a crash) sees either the old or the new content:
/// temporary file in the same directory, fsync, rename, fsync the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(path))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The cached directory state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheFile {
    pub version: u32,
    /// What the sets were read with (URI and searches); when the configuration changes,
    /// the cookies are no longer valid and are dropped (the data is still used while the
    /// directory is down).
    pub fingerprint: String,
    /// Unix seconds of the refresh that produced this state.
    pub saved_at: i64,
    /// Raw entries per kind (`hosts`, `profiles`, `notes`, `groups`).
    pub sets: BTreeMap<String, RawSet>,
}

pub(crate) fn load_cache(path: &Path) -> Result<Option<CacheFile>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let c: CacheFile = serde_json::from_slice(&text).map_err(|source| Error::CacheFormat {
        path: path.to_path_buf(),
        source,
    })?;
    if c.version != CACHE_VERSION {
        tracing::warn!(
            "directory cache {} has version {}, expected {CACHE_VERSION}; ignored",
            path.display(),
            c.version
        );
        return Ok(None);
    }
    Ok(Some(c))
}

pub(crate) fn save_cache(path: &Path, mut c: CacheFile) -> Result<()> {
    c.version = CACHE_VERSION;
    let bytes = serde_json::to_vec(&c).map_err(|source| Error::CacheFormat {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &bytes)
}

/// A note edit that is not in the directory yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEdit {
    /// Order of the edits; replay goes by it.
    pub seq: u64,
    pub uuid: String,
    pub edit: NoteEdit,
    /// The note as this client saw it when the edit was made (directory state plus earlier
    /// pending edits): a field the directory changed away from this value was changed by
    /// someone else meanwhile, which is a conflict.
    pub base: NoteValues,
    /// Wall-clock time of the edit, Unix milliseconds: the local side of the conflict rule.
    pub edited_at_ms: i64,
}

pub(crate) struct Journal {
    pub path: PathBuf,
}

impl Journal {
    /// All pending edits in order. A last line cut short by a crash during its write is
    /// dropped (that edit was never acknowledged); a bad line before the end is an error,
    /// since skipping it would lose an acknowledged edit.
    pub fn load(&self) -> Result<Vec<PendingEdit>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.path)(e)),
        };
        let complete = text.ends_with('\n');
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<PendingEdit>(line) {
                Ok(p) => out.push(p),
                Err(source) => {
                    if i + 1 == lines.len() && !complete {
                        tracing::warn!(
                            "note journal {}: dropping a write cut short by a crash",
                            self.path.display()
                        );
                        continue;
                    }
                    return Err(Error::JournalCorrupt {
                        path: self.path.clone(),
                        line: i + 1,
                        source,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Append one edit and fsync it: when this returns, the edit survives a crash.
    pub fn append(&self, p: &PendingEdit) -> Result<()> {
        let mut line = serde_json::to_vec(p).map_err(|source| Error::CacheFormat {
            path: self.path.clone(),
            source,
        })?;
        line.push(b'\n');
        let existed = self.path.exists();
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        f.write_all(&line).map_err(io_err(&self.path))?;
        f.sync_data().map_err(io_err(&self.path))?;
        if !existed {
            if let Some(dir) = self.path.parent() {
                sync_dir(dir)?;
            }
        }
        Ok(())
    }

    /// Replace the journal with what is still pending (atomically; removed when empty).
    pub fn rewrite(&self, pending: &[PendingEdit]) -> Result<()> {
        if pending.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Ok(()) => self.path.parent().map(sync_dir).unwrap_or(Ok(())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err(&self.path)(e)),
            };
        }
        let mut bytes = Vec::new();
        for p in pending {
            let line = serde_json::to_vec(p).map_err(|source| Error::CacheFormat {
                path: self.path.clone(),
                source,
            })?;
            bytes.extend(line);
            bytes.push(b'\n');
        }
        write_atomic(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(seq: u64, desc: &str) -> PendingEdit {
        PendingEdit {
            seq,
            uuid: "u1".into(),
            edit: NoteEdit {
                description: Some(desc.into()),
                ..Default::default()
            },
            base: NoteValues::default(),
            edited_at_ms: 1_700_000_000_000 + i64::try_from(seq).unwrap(),
        }
    }

    #[test]
    fn journal_appends_survive_and_torn_tails_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal {
            path: dir.path().join(JOURNAL_FILE),
        };
        assert!(j.load().unwrap().is_empty());
        j.append(&edit(1, "a")).unwrap();
        j.append(&edit(2, "b")).unwrap();
        let mode = std::fs::metadata(&j.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(j.load().unwrap(), [edit(1, "a"), edit(2, "b")]);

        // A crash in the middle of the third append leaves half a line.
        let mut f = OpenOptions::new().append(true).open(&j.path).unwrap();
        f.write_all(b"{\"seq\":3,\"uu").unwrap();
        assert_eq!(j.load().unwrap().len(), 2);

        // A bad line before the end is not skipped silently.
        std::fs::write(&j.path, "garbage\n{}\n").unwrap();
        let e = j.load().unwrap_err();
        assert!(matches!(e, Error::JournalCorrupt { line: 1, .. }), "{e}");

        j.rewrite(&[edit(2, "b")]).unwrap();
        assert_eq!(j.load().unwrap(), [edit(2, "b")]);
        j.rewrite(&[]).unwrap();
        assert!(!j.path.exists());
    }

    #[test]
    fn cache_files_are_private_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("cache");
        ensure_dir(&sub).unwrap();
        let path = sub.join(CACHE_FILE);
        assert_eq!(load_cache(&path).unwrap(), None);
        let mut c = CacheFile {
            fingerprint: "f".into(),
            saved_at: 5,
            ..Default::default()
        };
        c.sets.insert("hosts".into(), RawSet::default());
        save_cache(&path, c.clone()).unwrap();
        let back = load_cache(&path).unwrap().unwrap();
        assert_eq!(back.fingerprint, "f");
        assert_eq!(back.version, CACHE_VERSION);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(&sub).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 1);
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            load_cache(&path).unwrap_err(),
            Error::CacheFormat { .. }
        ));
    }
}
