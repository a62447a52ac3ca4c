//! A fleet of libvirtd instances, each serving libvirt's test driver, run unprivileged
//! (session mode as `nobody`) so that many can run side by side.

use anyhow::{bail, Context, Result};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uvmm_libvirt::{Connector, Hypervisor, LibvirtConnector};
use uvmm_model::Action;

pub struct Host {
    pub dir: PathBuf,
    pub child: Option<Child>,
    /// Keeps libvirtd's test:///default alive (it is reset when its last client leaves),
    /// and is the "other libvirt client" that makes changes.
    pub keeper: Option<Arc<dyn Hypervisor>>,
    /// (name, uuid, running)
    pub vms: Vec<(String, String, bool)>,
}

impl Host {
    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/libvirt-sock")
    }

    pub fn uri(&self) -> String {
        format!("test+unix:///default?socket={}", self.socket().display())
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok())
    }
}

pub struct Fleet {
    pub hosts: Vec<Host>,
}

fn spawn_libvirtd(dir: &Path) -> Result<Child> {
    std::fs::create_dir_all(dir.join("run"))?;
    std::fs::create_dir_all(dir.join("home"))?;
    std::fs::write(
        dir.join("libvirtd.conf"),
        format!(
            "unix_sock_dir = \"{}\"\nunix_sock_rw_perms = \"0777\"\nmax_clients = 100\nmax_workers = 4\nmin_workers = 1\n",
            dir.join("run").display()
        ),
    )?;
    let status = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(dir)
        .status()?;
    if !status.success() {
        bail!(
            "chown {} failed (the benchmark runs as root)",
            dir.display()
        );
    }
    let home = dir.join("home");
    let run = dir.join("run");
    let log = std::fs::File::create(dir.join("libvirtd.log"))?;
    let child = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "env"])
        .arg(format!("HOME={}", home.display()))
        .arg(format!("XDG_RUNTIME_DIR={}", run.display()))
        .arg(format!("XDG_CONFIG_HOME={}/.config", home.display()))
        .arg(format!("XDG_CACHE_HOME={}/.cache", home.display()))
        .arg("libvirtd")
        .arg("--config")
        .arg(dir.join("libvirtd.conf"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("start libvirtd (Debian libvirt-daemon)")?;
    Ok(child)
}

fn wait_socket(path: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while UnixStream::connect(path).is_err() {
        if Instant::now() > deadline {
            bail!("libvirtd socket {} did not appear", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Deterministic UUID for VM `j` of host `i`.
fn uuid(i: usize, j: usize) -> String {
    format!("b0000000-0000-4000-8000-{:06x}{:06x}", i, j)
}

fn domain_xml(i: usize, j: usize) -> String {
    let name = format!("h{i:03}-vm{j:02}");
    format!(
        "<domain type='test'><name>{name}</name><uuid>{}</uuid><description>bench VM {j} of host {i}</description>\
         <memory unit='MiB'>{}</memory><vcpu>{}</vcpu><os><type>hvm</type></os>\
         <devices><disk type='file' device='disk'><source file='/var/lib/bench/{name}.img'/><target dev='vda' bus='virtio'/></disk>\
         <interface type='network'><mac address='52:54:{:02x}:{:02x}:{:02x}:{:02x}'/><source network='default'/></interface>\
         <graphics type='vnc' port='-1' autoport='yes'/></devices></domain>",
        uuid(i, j),
        256 * (1 + j % 4),
        1 + j % 4,
        (i >> 8) & 0xff,
        i & 0xff,
        (j >> 8) & 0xff,
        j & 0xff
    )
}

impl Fleet {
    pub fn start(work: &Path, n: usize) -> Result<Fleet> {
        // Every libvirtd (all as user nobody) takes an inotify instance; the kernel's
        // default of 128 per user stops the 128th.
        let limit = "/proc/sys/fs/inotify/max_user_instances";
        let current: usize = std::fs::read_to_string(limit)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(128);
        if current < n * 2 + 64 {
            std::fs::write(limit, format!("{}", n * 2 + 64)).with_context(|| {
                format!("raise {limit} to run {n} libvirtd as one user (needs root)")
            })?;
        }
        // nobody must be able to reach the work directory.
        let _ = Command::new("chmod").arg("o+x").arg(work).status();
        let mut hosts = Vec::with_capacity(n);
        for i in 0..n {
            let dir = work.join(format!("lv{i:03}"));
            let child = spawn_libvirtd(&dir)?;
            hosts.push(Host {
                dir,
                child: Some(child),
                keeper: None,
                vms: vec![],
            });
        }
        for h in &hosts {
            wait_socket(&h.socket())?;
        }
        Ok(Fleet { hosts })
    }

    /// Define `m` VMs per host (every other one running) and remove the test driver's
    /// default VM, through keeper connections, in parallel.
    pub fn populate(&mut self, m: usize) -> Result<()> {
        type Populated = Result<(Arc<dyn Hypervisor>, Vec<(String, String, bool)>)>;
        let results: Vec<Populated> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .hosts
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let uri = h.uri();
                    s.spawn(move || -> Result<_> {
                        let hv = LibvirtConnector::default().connect(&uri, Arc::new(|_| {}))?;
                        for d in hv.list_domains()? {
                            if d.state.is_active() {
                                hv.action(&d.uuid, Action::Stop)?;
                            }
                            hv.undefine(&d.uuid)?;
                        }
                        let mut vms = Vec::with_capacity(m);
                        for j in 0..m {
                            let id = hv.define(&domain_xml(i, j))?;
                            let running = j % 2 == 0;
                            if running {
                                hv.action(&id, Action::Start)?;
                            }
                            vms.push((format!("h{i:03}-vm{j:02}"), id, running));
                        }
                        Ok((hv, vms))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("populate thread"))
                .collect()
        });
        for (h, r) in self.hosts.iter_mut().zip(results) {
            let (hv, vms) = r?;
            h.keeper = Some(hv);
            h.vms = vms;
        }
        Ok(())
    }

    /// The keeper of host `i`, reconnected if libvirt dropped it (e.g. its keepalive gave up
    /// while the host was stopped with SIGSTOP).
    pub fn keeper(&mut self, i: usize) -> Result<Arc<dyn Hypervisor>> {
        let h = &mut self.hosts[i];
        if let Some(k) = &h.keeper {
            if k.is_alive() {
                return Ok(k.clone());
            }
        }
        let k = LibvirtConnector::default().connect(&h.uri(), Arc::new(|_| {}))?;
        h.keeper = Some(k.clone());
        Ok(k)
    }

    pub fn uris(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.uri()).collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            h.keeper = None;
            if let Some(mut c) = h.child.take() {
                // A host stopped with SIGSTOP must be woken to die.
                let pid = nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap_or(i32::MAX));
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
