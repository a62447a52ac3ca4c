//! Durable, atomic file writes: a crash leaves either the old or the new content, never a
//! partial or empty file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Write `data` to `path` via a temporary file in the same directory, fsync it, rename it
/// over the target and fsync the directory.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    write_renamed(path, data, mode)?;
    sync_dir(
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
}

/// Make renames in `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Like [`write_atomic`] without the directory fsync: for several files in one directory
/// followed by one [`sync_dir`]. Until then the new name may be lost in a crash, never
/// the content (the file is complete before it gets its name).
pub fn write_renamed(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let staged = stage(path, data, mode, true)?;
    staged.commit()
}

/// A complete file under a temporary name beside its target, not renamed yet: a batch
/// writes many, makes them durable with one [`sync_fs`] and only then gives them their
/// names, so no name ever points at content a crash could lose. Dropped uncommitted, the
/// temporary file is removed.
#[derive(Debug)]
pub struct Staged {
    tmp: std::path::PathBuf,
    target: std::path::PathBuf,
    committed: bool,
}

impl Staged {
    /// The temporary file, until committed.
    pub fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// Rename the file to its target (no fsync: see [`sync_fs`] and [`sync_dir`]).
    pub fn commit(mut self) -> std::io::Result<()> {
        fs::rename(&self.tmp, &self.target)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Write `data` to a temporary file beside `path` (creating the directory), fsynced when
/// `sync` says so.
pub fn stage(path: &Path, data: &[u8], mode: u32, sync: bool) -> std::io::Result<Staged> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("path has no file name"))?
        .to_string_lossy();
    // Unique per process and call: two threads may write the same file at once.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Built before anything is created: from here on the value removes the file if a
    // step fails.
    let staged = Staged {
        tmp: dir.join(format!(".{name}.tmp.{}.{n}", std::process::id())),
        target: path.to_path_buf(),
        committed: false,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&staged.tmp)?;
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(data)?;
    if sync {
        f.sync_all()?;
    }
    Ok(staged)
}

/// Make a file's content durable (`fdatasync`).
pub fn sync_file(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_data()
}

/// Flush everything written to the filesystem holding `dir` (`syncfs(2)`): file contents,
/// new names and new directories, in one call instead of one fsync per file and
/// directory.
pub fn sync_fs(dir: &Path) -> std::io::Result<()> {
    let f = File::open(dir)?;
    nix::unistd::syncfs(&f).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replaces_and_sets_mode() {
        let dir = std::env::temp_dir().join(format!("uvmm-persist-{}", std::process::id()));
        let file = dir.join("sub/state.json");
        write_atomic(&file, b"one", 0o600).unwrap();
        write_atomic(&file, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(file.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
