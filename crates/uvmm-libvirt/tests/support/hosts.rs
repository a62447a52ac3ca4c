//! Test support: real libvirt hosts and tiny real QEMU (TCG) guests on one machine.
//!
//! Include it with `#[path = ".../uvmm-libvirt/tests/support/hosts.rs"] mod hosts;` from any
//! crate's tests or examples: it needs only `std`.
//!
//! - [`TestHost`]: one real libvirtd (`qemu:///system`) in a private mount namespace
//!   (`libvirtd-host.sh`), with its own host UUID, a UNIX socket and TCP without
//!   authentication on its own 127.0.0.1 port; killing and restarting it is supported.
//! - [`TwoHosts`]: two of them with a `shared` pool (a directory both see at the same path:
//!   shared storage) and a `local` pool on each (`/var/lib/libvirt/images`, a different
//!   directory per host: local storage, for copy-storage migration).
//! - [`guest_image`] builds the tiny guest once (`guest-image.sh`: Debian kernel + busybox
//!   initramfs) under the target directory; [`GuestSpec`] writes a domain definition for
//!   it; [`SerialLog`] reads the guest's serial console (a file), whose counter proves that
//!   the guest runs (and keeps running across a migration).
//!
//! Cleanup: dropping a host destroys its guests, kills libvirtd and any QEMU it left (by
//! the pid files under its directory) and removes the directory. A test binary that was
//! killed outright leaves its directory behind; the next start of any host sweeps those of
//! dead processes (`sweep_stale`), so nothing accumulates.
#![allow(
    dead_code,
    reason = "each test binary that includes the harness uses a part of it"
)]

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn support_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../uvmm-libvirt/tests/support")
}

/// The build's target directory (`target/`), where the guest image is cached.
pub fn target_dir() -> PathBuf {
    if let Some(tmp) = option_env!("CARGO_TARGET_TMPDIR") {
        if let Some(parent) = Path::new(tmp).parent() {
            return parent.to_path_buf();
        }
    }
    // Examples have no CARGO_TARGET_TMPDIR: target/<profile>/examples/<exe>.
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .find(|p| p.join("CACHEDIR.TAG").exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// Poll `f` until it returns Some, or panic after `timeout` saying what was awaited.
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

/// The tiny guest: kernel and initramfs.
#[derive(Debug, Clone)]
pub struct GuestImage {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// Build the guest image once (cached under `target/uvmm-test-guest`, rebuilt when the
/// script changes). A file lock keeps concurrent test binaries from building it twice.
pub fn guest_image() -> GuestImage {
    let out = target_dir().join("uvmm-test-guest");
    fs::create_dir_all(&out).expect("create guest image dir");
    // flock(1): concurrent test binaries build it once (std's File::lock is newer than
    // the project's minimum Rust).
    let st = Command::new("flock")
        .arg(out.join(".lock"))
        .arg(support_dir().join("guest-image.sh"))
        .arg(&out)
        .status()
        .expect("run guest-image.sh under flock");
    assert!(
        st.success(),
        "guest-image.sh failed (needs busybox-static and apt-get download)"
    );
    GuestImage {
        kernel: out.join("vmlinuz"),
        initrd: out.join("initrd.img"),
    }
}

fn qemu_caps_cache() -> PathBuf {
    target_dir().join("uvmm-test-guest/qemu-caps")
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique, short directory (UNIX socket paths must stay under 108 bytes).
fn fresh_dir(tag: &str) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("uvmm-hosts-{}-{n}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create host dir");
    dir
}

/// A process that exists and is not a zombie (a killed daemon's QEMU is reaped by init a
/// moment after it died).
fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
        Err(_) => false,
    }
}

fn kill9(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

/// Kill the QEMU processes a libvirtd started (its pid files in `run/qemu`); returns
/// their pids.
fn kill_guests_by_pidfile(dir: &Path) -> Vec<u32> {
    let mut killed = Vec::new();
    for e in fs::read_dir(dir.join("run/qemu"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "pid") {
            if let Some(pid) = fs::read_to_string(e.path())
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmd).contains("qemu") {
                    kill9(pid);
                    killed.push(pid);
                }
            }
        }
    }
    killed
}

/// Remove what killed test processes left behind: their libvirtds, guests and directories.
pub fn sweep_stale() {
    for e in fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("uvmm-hosts-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || pid_alive(pid) {
            continue;
        }
        for host in fs::read_dir(e.path()).into_iter().flatten().flatten() {
            let _ = kill_guests_by_pidfile(&host.path());
            if let Some(pid) = fs::read_to_string(host.path().join("libvirtd.pid"))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmd).contains("libvirtd") {
                    kill9(pid);
                }
            }
        }
        let _ = fs::remove_dir_all(e.path());
    }
}

/// A free TCP port on 127.0.0.1 (free now; libvirtd binds it a moment later).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A first port of 16 free ones for incoming migrations.
fn free_port_range() -> u16 {
    let seed = (u64::from(std::process::id()) * 7919
        + SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::from(d.subsec_nanos()))
            .unwrap_or(0))
        % 600;
    for i in 0..600u64 {
        let base = 49200 + ((seed + i) % 600) as u16 * 16;
        if (base..base + 16).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no free range of 16 ports for migrations");
}

fn random_uuid(n: u32) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let x = t ^ (u128::from(std::process::id()) << 64) ^ (u128::from(n) << 96);
    let h = format!("{:032x}", x);
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// One real libvirtd acting as a host.
pub struct TestHost {
    pub name: String,
    pub dir: PathBuf,
    pub tcp_port: u16,
    pub host_uuid: String,
    migration_port: u16,
    child: Option<Child>,
}

impl TestHost {
    /// Start a libvirtd in `dir` (a fresh directory) and wait until it answers.
    pub fn start(dir: &Path, name: &str) -> TestHost {
        let mut h = TestHost {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            tcp_port: free_port(),
            host_uuid: random_uuid(SEQ.fetch_add(1, Ordering::SeqCst)),
            migration_port: free_port_range(),
            child: None,
        };
        h.spawn();
        h
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .expect("libvirtd log");
        let caps = qemu_caps_cache();
        let child = Command::new(support_dir().join("libvirtd-host.sh"))
            .arg(&self.dir)
            .arg(self.tcp_port.to_string())
            .arg(&self.host_uuid)
            .arg(self.migration_port.to_string())
            .arg(&caps)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start libvirtd-host.sh");
        self.child = Some(child);
        let sock = self.dir.join("sock/libvirt-sock");
        let started = Instant::now();
        loop {
            if std::os::unix::net::UnixStream::connect(&sock).is_ok()
                && self.virsh_result(&["uri"]).is_ok()
            {
                break;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("libvirtd {} exited ({st}): {}", self.name, self.log());
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "libvirtd {} did not answer: {}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The first QEMU call probes QEMU (~12 s without a cache): do it now, and keep the
        // cache for the hosts started after this one.
        let _ = self.virsh_result(&["domcapabilities", "--virttype", "qemu"]);
        save_caps_cache(&self.dir.join("cache/qemu/capabilities"));
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default()
    }

    /// `qemu+unix:///system?socket=...`: how the test process talks to this host.
    pub fn uri(&self) -> String {
        format!(
            "qemu+unix:///system?socket={}",
            self.dir.join("sock/libvirt-sock").display()
        )
    }

    /// `qemu+tcp://127.0.0.1:PORT/system`: how another libvirtd reaches this host.
    pub fn tcp_uri(&self) -> String {
        format!("qemu+tcp://127.0.0.1:{}/system", self.tcp_port)
    }

    /// This host's `/var/lib/libvirt/images`, seen from outside its namespace.
    pub fn local_images(&self) -> PathBuf {
        self.dir.join("lib/images")
    }

    pub fn virsh_result(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("virsh")
            .arg("-q")
            .arg("-c")
            .arg(self.uri())
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Run virsh against this host; panics with virsh's message on failure.
    pub fn virsh(&self, args: &[&str]) -> String {
        self.virsh_result(args)
            .unwrap_or_else(|e| panic!("virsh {args:?} on {}: {e}", self.name))
    }

    /// Names of the domains: running ones, or all with `all`.
    pub fn domains(&self, all: bool) -> Vec<String> {
        let mut args = vec!["list", "--name"];
        if all {
            args.push("--all");
        }
        self.virsh_result(&args)
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// `virsh domstate NAME` (e.g. "running", "shut off"), None when undefined.
    pub fn domstate(&self, name: &str) -> Option<String> {
        self.virsh_result(&["domstate", name])
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Define a pool of type dir at `path` and start it.
    pub fn add_dir_pool(&self, name: &str, path: &str) {
        self.virsh(&["pool-define-as", name, "dir", "--target", path]);
        self.virsh(&["pool-start", name]);
    }

    /// SIGKILL libvirtd, as a crash would: its QEMU processes keep running.
    pub fn kill_libvirtd(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The host dies: libvirtd and every guest of it are killed (SIGKILL).
    pub fn crash(&mut self) {
        self.kill_libvirtd();
        let pids = kill_guests_by_pidfile(&self.dir);
        wait_for(Duration::from_secs(10), "killed guests to be gone", || {
            (!pids.iter().any(|p| pid_alive(*p))).then_some(())
        });
    }

    /// Whether a QEMU process of this host runs the guest `name` (by libvirt's pid file).
    pub fn qemu_running(&self, name: &str) -> bool {
        fs::read_to_string(self.dir.join(format!("run/qemu/{name}.pid")))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .is_some_and(pid_alive)
    }

    /// Start libvirtd again on the same directory (after `kill_libvirtd`): it reconnects
    /// to the QEMU processes it finds and recovers unfinished jobs.
    pub fn restart_libvirtd(&mut self) {
        self.kill_libvirtd();
        let _ = fs::remove_file(self.dir.join("sock/libvirt-sock"));
        self.spawn();
    }
}

fn save_caps_cache(from: &Path) {
    let to = qemu_caps_cache();
    if to.join("done").exists() {
        return;
    }
    let files: Vec<PathBuf> = fs::read_dir(from)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    if files.is_empty() {
        return;
    }
    let tmp = to.with_extension(format!("tmp{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    if fs::create_dir_all(&tmp).is_err() {
        return;
    }
    for f in &files {
        if let Some(n) = f.file_name() {
            let _ = fs::copy(f, tmp.join(n));
        }
    }
    let _ = fs::write(tmp.join("done"), "");
    // Atomic: another test binary sees all of it or nothing.
    if fs::rename(&tmp, &to).is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        // QEMU outlives libvirtd: destroy guests through libvirt first, then kill whatever
        // is left (a guest of a killed libvirtd).
        if self.child.is_some() {
            for name in self.domains(false) {
                let _ = self.virsh_result(&["destroy", &name]);
            }
        }
        let _ = kill_guests_by_pidfile(&self.dir);
        self.kill_libvirtd();
    }
}

/// Serialises the tests that start hosts within one test binary: two hosts and their TCG
/// guests already keep two cores busy.
static HOSTS_LOCK: Mutex<()> = Mutex::new(());

/// Two hosts with shared and local storage.
pub struct TwoHosts {
    pub a: TestHost,
    pub b: TestHost,
    /// The directory both hosts see at the same path (pool `shared` on both).
    pub shared: PathBuf,
    pub root: PathBuf,
    pub image: GuestImage,
    // Drop order matters: hosts (declared first) stop before the directory goes, and the
    // lock is released last.
    _dir: RemoveDir,
    _lock: MutexGuard<'static, ()>,
}

impl TwoHosts {
    /// Start two hosts; each has the pools `shared` (the same directory) and `local`
    /// (its own `/var/lib/libvirt/images`).
    pub fn start(tag: &str) -> TwoHosts {
        let lock = HOSTS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        sweep_stale();
        let image = guest_image();
        let root = fresh_dir(tag);
        let shared = root.join("shared");
        fs::create_dir_all(&shared).expect("shared dir");
        let a = TestHost::start(&root.join("a"), "a");
        let b = TestHost::start(&root.join("b"), "b");
        for h in [&a, &b] {
            h.add_dir_pool("shared", shared.to_str().unwrap());
            h.add_dir_pool("local", "/var/lib/libvirt/images");
        }
        TwoHosts {
            a,
            b,
            shared,
            root: root.clone(),
            image,
            _dir: RemoveDir(root),
            _lock: lock,
        }
    }

    /// Define `spec` on `host` (not started); returns its UUID.
    pub fn define(&self, host: &TestHost, spec: &GuestSpec) -> String {
        let f = self.root.join(format!("{}.xml", spec.name));
        fs::write(&f, spec.xml(&self.image)).expect("write guest XML");
        host.virsh(&["define", f.to_str().unwrap()]);
        host.virsh(&["domuuid", &spec.name]).trim().to_string()
    }

    /// Define and start `spec` on `host` and wait until it counts; returns its UUID.
    pub fn boot(&self, host: &TestHost, spec: &GuestSpec) -> String {
        let uuid = self.define(host, spec);
        host.virsh(&["start", &spec.name]);
        SerialLog(spec.serial.clone()).wait_booted();
        uuid
    }

    /// A serial log path in the test's directory (seen by both hosts).
    pub fn serial_path(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.serial"))
    }
}

/// Removes a directory when dropped (after the hosts using it: fields drop in order).
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A disk of a test guest.
#[derive(Debug, Clone)]
pub struct GuestDisk {
    pub path: String,
    /// `qcow2` or `raw`.
    pub format: String,
    pub target: String,
}

/// The definition of a tiny test guest (128 MiB, one vCPU, TCG, direct kernel boot).
#[derive(Debug, Clone)]
pub struct GuestSpec {
    pub name: String,
    pub disks: Vec<GuestDisk>,
    /// Keep rewriting this many MiB of guest memory (slows a migration down).
    pub dirty_mib: Option<u32>,
    pub serial: PathBuf,
    /// Extra `<devices>` content (e.g. an `<interface>`).
    pub extra_devices: String,
    /// Extra kernel command line (e.g. `acpi=off`: a guest that ignores hot-unplug).
    pub extra_cmdline: String,
}

impl GuestSpec {
    pub fn new(name: &str, serial: PathBuf) -> GuestSpec {
        GuestSpec {
            name: name.to_string(),
            disks: Vec::new(),
            dirty_mib: None,
            serial,
            extra_devices: String::new(),
            extra_cmdline: String::new(),
        }
    }

    pub fn disk(mut self, path: &str, format: &str) -> GuestSpec {
        let index = u8::try_from(self.disks.len()).expect("a test guest has a few disks");
        let target = format!("vd{}", char::from(b'a' + index));
        self.disks.push(GuestDisk {
            path: path.to_string(),
            format: format.to_string(),
            target,
        });
        self
    }

    pub fn xml(&self, image: &GuestImage) -> String {
        let mut cmdline = "console=ttyS0 quiet panic=-1".to_string();
        if let Some(n) = self.dirty_mib {
            cmdline.push_str(&format!(" uvmm.dirty={n}"));
        }
        if !self.extra_cmdline.is_empty() {
            cmdline.push(' ');
            cmdline.push_str(&self.extra_cmdline);
        }
        let disks: String = self
            .disks
            .iter()
            .map(|d| {
                format!(
                    "<disk type='file' device='disk'><driver name='qemu' type='{}' cache='none'/>\
                     <source file='{}'/><target dev='{}' bus='virtio'/></disk>",
                    d.format, d.path, d.target
                )
            })
            .collect();
        // cpu qemu64: a model TCG offers on every host, so the CPU check passes.
        // append='on': a guest migrated back to a host continues its old log.
        format!(
            "<domain type='qemu'><name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{kernel}</kernel>\
             <initrd>{initrd}</initrd><cmdline>{cmdline}</cmdline></os>\
             <features><acpi/><apic/></features>\
             <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model></cpu>\
             <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>\
             <devices>{disks}<serial type='file'><source path='{serial}' append='on'/><target port='0'/></serial>\
             <console type='file'><source path='{serial}' append='on'/><target type='serial' port='0'/></console>\
             {extra}<memballoon model='none'/></devices></domain>",
            name = self.name,
            kernel = image.kernel.display(),
            initrd = image.initrd.display(),
            serial = self.serial.display(),
            extra = self.extra_devices,
        )
    }
}

/// Create a qcow2 image whose first bytes are `marker` (the guest prints them at boot).
pub fn make_qcow2(path: &Path, size: &str, marker: &str) {
    run(&[
        "qemu-img",
        "create",
        "-q",
        "-f",
        "qcow2",
        path.to_str().unwrap(),
        size,
    ]);
    if !marker.is_empty() {
        write_marker(path, "qcow2", 0, marker);
    }
}

/// Write `marker` at `offset` into an image (the guest must be off).
pub fn write_marker(path: &Path, format: &str, offset: u64, marker: &str) {
    let pattern = path.with_extension(format!("marker{}", SEQ.fetch_add(1, Ordering::SeqCst)));
    fs::write(&pattern, marker).expect("marker file");
    run(&[
        "qemu-io",
        "-f",
        format,
        "-c",
        &format!("write -s {} {offset} {}", pattern.display(), marker.len()),
        path.to_str().unwrap(),
    ]);
    let _ = fs::remove_file(pattern);
}

/// Read `len` bytes at `offset` of an image's guest-visible content (the guest must be off).
pub fn read_image(path: &Path, offset: u64, len: u64) -> Vec<u8> {
    let raw = path.with_extension(format!("raw{}", SEQ.fetch_add(1, Ordering::SeqCst)));
    run(&[
        "qemu-img",
        "convert",
        "-O",
        "raw",
        path.to_str().unwrap(),
        raw.to_str().unwrap(),
    ]);
    let mut f = fs::File::open(&raw).expect("converted image");
    let mut all = Vec::new();
    f.read_to_end(&mut all).expect("read image");
    let _ = fs::remove_file(&raw);
    let at = |n: u64| usize::try_from(n).map_or(all.len(), |n| n.min(all.len()));
    let (start, end) = (at(offset), at(offset + len));
    all[start..end].to_vec()
}

/// Every byte of an image's guest-visible content (through its backing chain).
pub fn image_content(path: &Path) -> Vec<u8> {
    read_image(path, 0, u64::MAX / 2)
}

pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A guest's serial console log.
pub struct SerialLog(pub PathBuf);

impl SerialLog {
    pub fn text(&self) -> String {
        fs::read(&self.0)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The highest "tick N" printed so far.
    pub fn last_tick(&self) -> Option<u64> {
        self.text()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("uvmm-guest: tick "))
            .filter_map(|n| n.trim().parse().ok())
            .max()
    }

    /// Wait until the counter passes `after` (the guest runs and counts), returning it.
    pub fn wait_tick_after(&self, after: Option<u64>, timeout: Duration) -> u64 {
        wait_for(
            timeout,
            &format!("a tick after {after:?} in {}", self.0.display()),
            || {
                let t = self.last_tick()?;
                (after.is_none_or(|a| t > a)).then_some(t)
            },
        )
    }

    /// Wait until the guest booted and counts.
    pub fn wait_booted(&self) -> u64 {
        // TCG on two shared cores: a boot takes 2 s idle and much longer under load.
        self.wait_tick_after(None, Duration::from_secs(180))
    }

    /// What the guest printed about its disks at boot ("/dev/vda MARKER").
    pub fn disk_lines(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("uvmm-guest: disk "))
            .map(str::to_string)
            .collect()
    }
}
