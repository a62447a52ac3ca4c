//! Process plumbing of a Unix daemon: detaching, the pid file, a log file that SIGHUP
//! reopens.

use nix::unistd::{fork, setsid, ForkResult};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The child's side of a detach: tells the waiting parent how start-up went.
pub struct Detached {
    pipe: File,
}

impl Detached {
    pub fn ready(mut self) {
        let _ = self.pipe.write_all(b"OK\n");
    }

    pub fn failed(mut self, message: &str) {
        let _ = self.pipe.write_all(message.as_bytes());
    }
}

/// Fork into the background. The parent waits until the child reports that its sockets
/// are ready (exit 0) or why it failed (message, exit 1), so `uvmmd -d` fails visibly.
/// Must run before any thread is started.
pub fn detach() -> std::io::Result<Detached> {
    let (read_end, write_end): (OwnedFd, OwnedFd) = nix::unistd::pipe()?;
    // SAFETY: called from main before the runtime, the logger or libvirt start threads.
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => {
            drop(write_end);
            let mut answer = String::new();
            let _ = File::from(read_end).read_to_string(&mut answer);
            if answer.starts_with("OK") {
                std::process::exit(0);
            }
            let answer = answer.trim();
            if answer.is_empty() {
                eprintln!("uvmmd: the daemon exited during start-up; see its log file");
            } else {
                eprintln!("uvmmd: {answer}");
            }
            std::process::exit(1);
        }
        ForkResult::Child => {
            drop(read_end);
            setsid()?;
            std::env::set_current_dir("/")?;
            let devnull = OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?;
            for fd in [0, 1, 2] {
                // SAFETY: both descriptors are open; dup2 atomically replaces the target.
                if unsafe { libc::dup2(devnull.as_raw_fd(), fd) } < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(Detached {
                pipe: File::from(write_end),
            })
        }
    }
}

/// A pid file that is removed again when dropped.
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Refuse when the pid file names a live process, without touching the file: a second
    /// daemon must fail before it changes anything of the running one.
    pub fn check(path: &Path) -> Result<(), String> {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse::<i32>() {
                let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
                if alive && u32::try_from(pid).ok() != Some(std::process::id()) {
                    return Err(format!(
                        "pid file {} names running process {pid}: is uvmmd already running?",
                        path.display()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Create the pid file; refuses when it names a live process.
    pub fn create(path: &Path) -> Result<PidFile, String> {
        Self::check(path)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("cannot write pid file {}: {e}", path.display()))?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// An exclusive lock on the state directory, held for the daemon's lifetime: two daemons
/// on one state directory would overwrite each other's `hosts.json`. The kernel drops the
/// lock when the process ends, however it ends; the file itself stays (removing a lock
/// file races with the next daemon taking it).
pub struct StateLock {
    _lock: nix::fcntl::Flock<File>,
}

impl StateLock {
    pub const FILE: &'static str = "uvmmd.lock";

    pub fn acquire(state_dir: &Path) -> Result<StateLock, String> {
        Self::acquire_dir(state_dir, "state directory")
    }

    /// The same lock on another directory a daemon must not share (the backup directory:
    /// two daemons recording versions of the same VMs would interleave them).
    pub fn acquire_dir(dir: &Path, what: &str) -> Result<StateLock, String> {
        let state_dir = dir;
        let path = state_dir.join(Self::FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                // The holder's PID, for the administrator and for the refusal below. Only
                // the holder writes, after it has the lock.
                use std::io::{Seek, Write};
                let pid = std::process::id();
                lock.set_len(0)
                    .and_then(|()| lock.rewind())
                    .and_then(|()| writeln!(lock, "{pid}"))
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                Ok(StateLock { _lock: lock })
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok())
                    .map(|pid| format!(" (pid {pid})"))
                    .unwrap_or_default();
                Err(format!(
                    "{what} {} is in use by another uvmmd{holder}",
                    state_dir.display()
                ))
            }
            Err((_, e)) => Err(format!("cannot lock {}: {e}", path.display())),
        }
    }
}

/// A log file shared by all tracing writers; `reopen` swaps in a fresh handle after
/// logrotate moved the old file away.
#[derive(Clone)]
pub struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // Not world-readable: libvirt's messages can quote what it read, and the log names
    // every client's changes.
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)?;
    let mode = file.metadata()?.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o770))?;
    }
    Ok(file)
}

/// Keeps each log record on one line: a message with line breaks (libvirt's often have
/// them) would otherwise let its later lines pass for records of their own. The formatter
/// hands over a whole record per write; its final newline stays, inner ones become `\n`.
pub struct OneLine<W: Write>(pub W);

impl<W: Write> Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let body = buf.strip_suffix(b"\n").unwrap_or(buf);
        if !body.contains(&b'\n') && !body.contains(&b'\r') {
            self.0.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut out = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b => out.push(b),
            }
        }
        if body.len() < buf.len() {
            out.push(b'\n');
        }
        self.0.write_all(&out)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl LogFile {
    pub fn open(path: &Path) -> std::io::Result<LogFile> {
        Ok(LogFile {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(open_append(path)?)),
        })
    }

    pub fn reopen(&self) -> std::io::Result<()> {
        let fresh = open_append(&self.path)?;
        *self.file.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }
}

pub struct FileWriter(Arc<Mutex<File>>);

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).flush()
    }
}

pub type LogWriter = OneLine<FileWriter>;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFile {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> Self::Writer {
        OneLine(FileWriter(self.file.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_records_stay_on_one_line() {
        let table: [(&[u8], &[u8]); 5] = [
            (b"plain\n", b"plain\n"),
            (b"a\nb\n", b"a\\nb\n"),
            (b"a\r\nb", b"a\\r\\nb"),
            (b"", b""),
            (b"\n", b"\n"),
        ];
        for (input, want) in table {
            let mut w = OneLine(Vec::new());
            w.write_all(input).unwrap();
            assert_eq!(w.0, want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn log_file_is_not_world_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("uvmmd.log");
        LogFile::open(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        // A log left world-readable by an older version is tightened.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        LogFile::open(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    #[test]
    fn log_reopen_follows_rotation() {
        let dir = std::env::temp_dir().join(format!("uvmm-log-{}", std::process::id()));
        let path = dir.join("uvmmd.log");
        let log = LogFile::open(&path).unwrap();
        use tracing_subscriber::fmt::MakeWriter;
        log.make_writer().write_all(b"first\n").unwrap();
        std::fs::rename(&path, dir.join("uvmmd.log.1")).unwrap();
        log.reopen().unwrap();
        log.make_writer().write_all(b"second\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second\n");
        assert_eq!(
            std::fs::read_to_string(dir.join("uvmmd.log.1")).unwrap(),
            "first\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn state_lock_is_exclusive_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(dir.path()).unwrap();
        let second = StateLock::acquire(dir.path());
        assert!(
            second
                .as_ref()
                .is_err_and(|e| e.contains("in use by another uvmmd")),
            "{:?}",
            second.err()
        );
        drop(first);
        assert!(StateLock::acquire(dir.path()).is_ok());
    }

    #[test]
    fn pid_file_refuses_live_process_and_cleans_up() {
        let dir = std::env::temp_dir().join(format!("uvmm-pid-{}", std::process::id()));
        let path = dir.join("uvmmd.pid");
        std::fs::create_dir_all(&dir).unwrap();
        // PID 1 is always alive.
        std::fs::write(&path, "1\n").unwrap();
        assert!(PidFile::check(&path).is_err());
        assert!(PidFile::create(&path).is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "1\n",
            "a refused pid file is not touched"
        );
        // A stale pid is replaced.
        std::fs::write(&path, "999999999\n").unwrap();
        let pf = PidFile::create(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        drop(pf);
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
