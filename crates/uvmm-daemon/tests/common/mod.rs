//! Test support: start the real uvmmd binary, talk to it over raw HTTP and through the real
//! uvmm CLI, and start a real libvirtd.
#![allow(
    dead_code,
    reason = "each test binary uses its own part of the shared harness"
)]

pub mod browser;
pub mod proxy;
pub mod remote;
pub mod world;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn uvmmd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_uvmmd"))
}

/// The CLI is built by `cargo test --workspace` (uvmm-cli has integration tests, so its
/// binary is built next to uvmmd). Refuse to test a stale binary.
pub fn uvmm_bin() -> PathBuf {
    let bin = uvmmd_bin().with_file_name("uvmm");
    let newest_src = walk_newest(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../uvmm-cli/src"))
        .max(walk_newest(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../uvmm-api/src"),
        ));
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run the tests with `cargo test --workspace`",
                bin.display()
            )
        });
    assert!(
        built >= newest_src,
        "{} is older than its sources: run the tests with `cargo test --workspace`",
        bin.display()
    );
    bin
}

fn walk_newest(dir: &Path) -> std::time::SystemTime {
    let mut newest = std::time::UNIX_EPOCH;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let t = if p.is_dir() {
            walk_newest(&p)
        } else {
            e.metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH)
        };
        newest = newest.max(t);
    }
    newest
}

/// uvmm-restore, built next to uvmmd by `cargo test --workspace`.
pub fn uvmm_restore_bin() -> PathBuf {
    let bin = uvmmd_bin().with_file_name("uvmm-restore");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let newest = walk_newest(&root.join("../uvmm-restore/src"))
        .max(walk_newest(&root.join("../uvmm-backup/src")));
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run the tests with `cargo test --workspace`",
                bin.display()
            )
        });
    assert!(
        built >= newest,
        "{} is older than its sources: run `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// check_uvmm, built next to uvmmd by `cargo test --workspace`.
pub fn check_uvmm_bin() -> PathBuf {
    let bin = uvmmd_bin().with_file_name("check_uvmm");
    let newest = walk_newest(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../uvmm-check/src"));
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run the tests with `cargo test --workspace`",
                bin.display()
            )
        });
    assert!(
        built >= newest,
        "{} is older than its sources: run `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// A command that must succeed and print JSON (`--json`): that JSON.
pub fn ok(out: Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A command that must fail with exit code 1 and say `text`.
pub fn fails(out: Output, text: &str) {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(text), "expected '{text}' in: {err}");
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn demo_uri(name: &str) -> String {
    format!("test://{}/demo/hosts/{name}.xml", repo_root().display())
}

/// A configuration that lets API clients add the demo hosts (`[api] test_host_dirs`).
pub fn demo_runtime_config() -> String {
    format!(
        "[api]\ntest_host_dirs = [\"{}\"]\n",
        repo_root().join("demo/hosts").display()
    )
}

pub fn demo_uris() -> Vec<String> {
    ["demo-kvm1", "demo-kvm2", "demo-xen1"]
        .iter()
        .map(|n| demo_uri(n))
        .collect()
}

/// Poll `f` until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.0 request over a UNIX socket (HTTP/1.0: no chunked encoding, the server
/// closes the connection at the end).
pub fn http_raw(socket: &Path, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s =
        UnixStream::connect(socket).unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: uvmmd\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status: u16 = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {resp:?}"));
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub child: Option<Child>,
    pub args: Vec<String>,
    /// A command that runs uvmmd (e.g. `unshare --net …`); uvmmd is started directly when
    /// empty. The wrapper must exec uvmmd, so that the child is uvmmd itself.
    pub wrapper: Vec<String>,
}

impl Daemon {
    /// Start uvmmd on `hosts` with a fresh state directory and wait until every host has
    /// finished its first connection attempt.
    /// Start on `hosts`; API clients may add the demo hosts at runtime (their directory is
    /// the `[api] test_host_dirs` of the configuration).
    pub fn start(hosts: &[String]) -> Daemon {
        Self::start_with(hosts, &[], &demo_runtime_config())
    }

    pub fn start_with(hosts: &[String], extra: &[&str], config: &str) -> Daemon {
        Self::start_wrapped(&[], hosts, extra, config)
    }

    /// `start_with`, with uvmmd run by `wrapper` (see `Daemon::wrapper`).
    pub fn start_wrapped(
        wrapper: &[&str],
        hosts: &[String],
        extra: &[&str],
        config: &str,
    ) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("uvmm.sock");
        std::fs::write(dir.path().join("uvmmd.toml"), config).unwrap();
        // Standalone unless the test gives its own -b (directory mode).
        let standalone = !extra.contains(&"-b");
        let mut args: Vec<String> = if standalone {
            vec!["-b".into(), "".into()]
        } else {
            vec![]
        };
        args.extend::<Vec<String>>(vec![
            "-u".into(),
            socket.display().to_string(),
            "-c".into(),
            dir.path().join("state").display().to_string(),
            "--config".into(),
            dir.path().join("uvmmd.toml").display().to_string(),
            "--backup-dir".into(),
            dir.path().join("backups").display().to_string(),
            "--audit-log".into(),
            dir.path().join("audit.log").display().to_string(),
        ]);
        // A loopback TCP listener of these tests speaks plain HTTP unless the test asks
        // for TLS (`--tls` is the harness's word for "leave it to uvmmd").
        let tcp = extra.contains(&"-s");
        let tls = extra.contains(&"--tls");
        if tcp && !tls {
            args.push("--plain-http".into());
        }
        args.extend(
            extra
                .iter()
                .filter(|a| **a != "--tls")
                .map(|s| s.to_string()),
        );
        args.extend(hosts.iter().cloned());
        let mut d = Daemon {
            dir,
            socket,
            child: None,
            args,
            wrapper: wrapper.iter().map(|s| s.to_string()).collect(),
        };
        d.spawn();
        d.wait_hosts_settled();
        d
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("uvmmd.log")).unwrap();
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(uvmmd_bin());
                c
            }
            None => Command::new(uvmmd_bin()),
        };
        let child = cmd
            .args(&self.args)
            .env("UVMM_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start uvmmd");
        self.child = Some(child);
        let socket = self.socket.clone();
        wait_for(Duration::from_secs(20), "uvmmd to answer", || {
            UnixStream::connect(&socket).ok()?;
            let (status, _) = http_raw(&socket, "GET", "/api/v1/version", None);
            (status == 200).then_some(())
        });
    }

    pub fn wait_hosts_settled(&self) {
        wait_for(Duration::from_secs(30), "hosts to settle", || {
            let hosts = self.get("/api/v1/hosts");
            hosts
                .as_array()?
                .iter()
                .all(|h| h["status"] != "connecting")
                .then_some(())
        });
    }

    /// Stop with SIGTERM and start again with the same arguments and state directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
        self.wait_hosts_settled();
    }

    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("a pid fits pid_t"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let st = child.wait().ok();
                panic!(
                    "uvmmd did not stop within 10 s of SIGTERM ({st:?})\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The API token TCP clients need (made by uvmmd when it listens on TCP).
    pub fn token_file(&self) -> PathBuf {
        self.dir.path().join("state").join("api-token")
    }

    pub fn backup_dir(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    /// Kill -9: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again after a stop or kill, with the same arguments.
    pub fn respawn(&mut self) {
        self.spawn();
        self.wait_hosts_settled();
    }

    /// Run uvmm-restore against this daemon's socket and backup directory.
    pub fn restore(&self, args: &[&str]) -> Output {
        Command::new(uvmm_restore_bin())
            .args(args)
            .arg("--dir")
            .arg(self.backup_dir())
            .env("UVMM_SOCKET", &self.socket)
            .output()
            .expect("run uvmm-restore")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("uvmmd.log")).unwrap_or_default()
    }

    pub fn http(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let (status, text) = http_raw(&self.socket, method, path, body);
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        (status, json)
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, v) = self.http("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    pub fn vms(&self) -> Vec<Value> {
        self.get("/api/v1/vms")["items"].as_array().unwrap().clone()
    }

    /// The one VM called `name` on host id `host`.
    pub fn vm(&self, name: &str, host: &str) -> Value {
        self.vms()
            .into_iter()
            .find(|v| v["name"] == name && v["host_id"] == host)
            .unwrap_or_else(|| panic!("no VM {name} on {host}"))
    }

    /// The hosts (URIs) `GET /api/v1/vms` lists a VM called `name` on.
    pub fn listed_on(&self, name: &str) -> Vec<String> {
        self.vms()
            .iter()
            .filter(|v| v["name"] == name)
            .map(|v| v["host"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Run the real CLI against this daemon.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(uvmm_bin())
            .args(args)
            .env("UVMM_SOCKET", &self.socket)
            .output()
            .expect("run uvmm")
    }

    /// `uvmm <args> --json`, expecting success.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--json");
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "uvmm {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "uvmm {args:?}: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Follow `uvmm events --json` in the background.
    pub fn events(&self) -> EventFollower {
        let mut child = Command::new(uvmm_bin())
            .args(["events", "--json"])
            .env("UVMM_SOCKET", &self.socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run uvmm events");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        let follower = EventFollower { child, rx };
        // The subscription exists once the CLI is connected; a marker change proves it.
        std::thread::sleep(Duration::from_millis(300));
        follower
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct EventFollower {
    child: Child,
    rx: mpsc::Receiver<Value>,
}

impl EventFollower {
    /// Wait for the first event matching `pred`, skipping others.
    pub fn expect(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(ev) if pred(&ev) => return ev,
                Ok(_) => continue,
                Err(_) => panic!("no event '{what}' within {timeout:?}"),
            }
        }
    }
}

impl Drop for EventFollower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real libvirtd, run unprivileged (session mode) as `nobody` so that several can run
/// side by side without touching the system's /run/libvirt. It serves libvirt's test
/// driver to remote clients (`test+unix:///...?socket=...`).
pub struct Libvirtd {
    pub dir: PathBuf,
    pub child: Option<Child>,
}

impl Libvirtd {
    pub fn available() -> bool {
        Command::new("libvirtd")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    pub fn start(dir: &Path) -> Libvirtd {
        assert!(
            Self::available(),
            "libvirtd is not installed: run the README's test command, which installs it"
        );
        std::fs::create_dir_all(dir.join("run")).unwrap();
        std::fs::create_dir_all(dir.join("home")).unwrap();
        std::fs::write(
            dir.join("libvirtd.conf"),
            format!(
                "unix_sock_dir = \"{}\"\nunix_sock_rw_perms = \"0777\"\n",
                dir.join("run").display()
            ),
        )
        .unwrap();
        let _ = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(dir)
            .status();
        // Each path component must be traversable by nobody.
        let mut p = dir.to_path_buf();
        while let Some(parent) = p.parent() {
            let _ = Command::new("chmod").arg("o+x").arg(parent).status();
            p = parent.to_path_buf();
        }
        let mut d = Libvirtd {
            dir: dir.to_path_buf(),
            child: None,
        };
        d.spawn();
        d
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/libvirt-sock")
    }

    /// URI of the test driver's default host behind this libvirtd.
    pub fn uri(&self) -> String {
        format!("test+unix:///default?socket={}", self.socket().display())
    }

    /// libvirtd forgets test:///default when its last client disconnects; a test that
    /// stops uvmmd keeps the host's state with this connection.
    pub fn keeper(&self) -> std::sync::Arc<dyn uvmm_libvirt::Hypervisor> {
        use uvmm_libvirt::Connector;
        uvmm_libvirt::LibvirtConnector::default()
            .connect(&self.uri(), std::sync::Arc::new(|_| {}))
            .expect("keeper connection to libvirtd")
    }

    pub fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let log = std::fs::File::create(self.dir.join("libvirtd.log")).unwrap();
        let home = self.dir.join("home");
        let run = self.dir.join("run");
        let child = Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "env"])
            .arg(format!("HOME={}", home.display()))
            .arg(format!("XDG_RUNTIME_DIR={}", run.display()))
            .arg(format!("XDG_CONFIG_HOME={}/.config", home.display()))
            .arg(format!("XDG_CACHE_HOME={}/.cache", home.display()))
            .arg("libvirtd")
            .arg("--config")
            .arg(self.dir.join("libvirtd.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start libvirtd");
        self.child = Some(child);
        let sock = self.socket();
        wait_for(Duration::from_secs(20), "libvirtd socket", || {
            UnixStream::connect(&sock).ok().map(|_| ())
        });
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real system-mode libvirtd with the QEMU driver (qemu:///system), isolated in a private
/// mount namespace by tests/support/system-libvirtd.sh. Guests run under QEMU TCG.
pub struct SystemLibvirtd {
    pub dir: PathBuf,
    child: Option<Child>,
    /// Its guests' display ports, held until its QEMUs are gone (fields drop after
    /// `Drop::drop`).
    _ports: DisplayPorts,
    /// One at a time per test binary. It was how two of them stopped handing out the same
    /// VNC port to their guests (the second QEMU failed to start), which `DisplayPorts`
    /// now prevents across test binaries too; kept so that a binary's TCG guests still
    /// do not compete for the two cores. Released after the libvirtd.
    _exclusive: std::sync::MutexGuard<'static, ()>,
}

static SYSTEM_LIBVIRTD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A range of VNC/SPICE ports for one `SystemLibvirtd`'s guests alone, held with a lock
/// file machine-wide: scripts/run-tests.sh runs test binaries side by side, and two
/// libvirtds both starting at libvirt's default 5900 can give the same port to two
/// guests before either QEMU listens on it.
struct DisplayPorts {
    first: u16,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl DisplayPorts {
    const SLOTS: u16 = 64;
    /// As many as system-libvirtd.sh configures (remote_display_port_max).
    const PER_SLOT: u16 = 20;

    fn take() -> DisplayPorts {
        for slot in 0..Self::SLOTS {
            let path = std::env::temp_dir().join(format!("uvmm-tests-display-ports-{slot}.lock"));
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            if let Ok(lock) =
                nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            {
                return DisplayPorts {
                    first: 5900 + slot * Self::PER_SLOT,
                    _lock: lock,
                };
            }
        }
        panic!(
            "all {} display port ranges are held by other test libvirtds",
            Self::SLOTS
        );
    }
}

impl SystemLibvirtd {
    pub fn start(dir: &Path) -> SystemLibvirtd {
        // A test that failed while holding the lock poisoned it; the lock is still good.
        let exclusive = SYSTEM_LIBVIRTD
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/system-libvirtd.sh");
        let log = std::fs::File::create(dir.with_extension("log")).unwrap();
        let ports = DisplayPorts::take();
        let child = Command::new(script)
            .arg(dir)
            .arg(ports.first.to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start system libvirtd");
        let d = SystemLibvirtd {
            dir: dir.to_path_buf(),
            child: Some(child),
            _ports: ports,
            _exclusive: exclusive,
        };
        let sock = dir.join("sock/libvirt-sock");
        wait_for(Duration::from_secs(30), "system libvirtd socket", || {
            UnixStream::connect(&sock).ok().map(|_| ())
        });
        d
    }

    pub fn uri(&self) -> String {
        format!(
            "qemu+unix:///system?socket={}",
            self.dir.join("sock/libvirt-sock").display()
        )
    }

    pub fn images(&self) -> PathBuf {
        self.dir.join("images")
    }

    /// Run virsh against this libvirtd.
    pub fn virsh(&self, args: &[&str]) -> String {
        let out = Command::new("virsh")
            .arg("-c")
            .arg(self.uri())
            .args(args)
            .output()
            .expect("virsh");
        assert!(
            out.status.success(),
            "virsh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for SystemLibvirtd {
    fn drop(&mut self) {
        // QEMU processes outlive libvirtd: stop them first.
        if let Ok(out) = Command::new("virsh")
            .arg("-c")
            .arg(self.uri())
            .args(["list", "--name"])
            .output()
        {
            for name in String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                let _ = Command::new("virsh")
                    .arg("-c")
                    .arg(self.uri())
                    .args(["destroy", name.trim()])
                    .output();
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A tmpfs mounted for a test (they run as root), unmounted when dropped. Mount it before
/// a `SystemLibvirtd` starts: its private mount namespace copies the mounts it finds.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, mib: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount tmpfs (the tests run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
