//! The measurements: cache fill, request latency under concurrency, event propagation,
//! a stopped host, idle CPU and memory, and the baselines.

use crate::libvirtd::Fleet;
use crate::Args;
use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use uvmm_model::Action;

#[derive(Debug, Clone, Serialize, Default)]
pub struct Latency {
    pub endpoint: String,
    pub clients: usize,
    pub requests: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub per_second: f64,
    pub bytes_per_response: usize,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Results {
    pub hosts: usize,
    pub vms_per_host: usize,
    pub total_vms: usize,
    pub libvirtd_start_s: f64,
    pub cache_full_s: f64,
    pub backups_done_s: Option<f64>,
    pub latencies: Vec<Latency>,
    /// list-all p99 while one libvirtd was stopped with SIGSTOP.
    pub list_p99_with_stopped_host_ms: f64,
    pub event_count: usize,
    pub event_p50_ms: f64,
    pub event_p99_ms: f64,
    pub event_max_ms: f64,
    pub idle_secs: u64,
    pub idle_cpu_percent: f64,
    pub rss_mb: f64,
    pub peak_rss_mb: f64,
    pub virsh_hosts_measured: usize,
    pub virsh_measured_s: Option<f64>,
    pub virsh_all_hosts_s: Option<f64>,
    pub raw_libvirt_s: f64,
    pub uvmmd_threads: usize,
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a rounded percentile position within 0..len (p is 0-100)"
    )]
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One keep-alive HTTP/1.1 connection to uvmmd's socket.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl Conn {
    async fn open(socket: &Path) -> Result<Conn> {
        let stream = UnixStream::connect(socket).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Conn { sender })
    }

    async fn get(&mut self, path: &str) -> Result<(u16, Bytes)> {
        let req = Request::get(path)
            .header("host", "uvmmd")
            .body(Empty::new())?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

async fn get_json(socket: &Path, path: &str) -> Result<serde_json::Value> {
    let mut c = Conn::open(socket).await?;
    let (status, body) = c.get(path).await?;
    if status != 200 {
        bail!("GET {path}: {status} {}", String::from_utf8_lossy(&body));
    }
    Ok(serde_json::from_slice(&body)?)
}

pub async fn latency(
    socket: &Path,
    endpoint: &str,
    paths: &[String],
    clients: usize,
    requests: usize,
) -> Result<Latency> {
    let per_client = requests.div_ceil(clients);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let socket = socket.to_path_buf();
        let paths = paths.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&socket).await?;
            let mut times = Vec::with_capacity(per_client);
            let mut bytes = 0;
            for i in 0..per_client {
                let path = &paths[(c * per_client + i) % paths.len()];
                let t = Instant::now();
                let (status, body) = conn.get(path).await?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                if status != 200 {
                    bail!("GET {path}: {status}");
                }
                bytes = body.len();
            }
            anyhow::Ok((times, bytes))
        }));
    }
    let mut all = Vec::new();
    let mut bytes = 0;
    for t in tasks {
        let (times, b) = t.await??;
        all.extend(times);
        bytes = b;
    }
    let wall = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    Ok(Latency {
        endpoint: endpoint.into(),
        clients,
        requests: all.len(),
        p50_ms: percentile(&all, 50.0),
        p95_ms: percentile(&all, 95.0),
        p99_ms: percentile(&all, 99.0),
        max_ms: all.last().copied().unwrap_or(0.0),
        per_second: all.len() as f64 / wall,
        bytes_per_response: bytes,
    })
}

/// Follow /api/v1/events; every `vm_state` event goes to the channel as (uuid, state, at).
async fn follow_events(
    socket: PathBuf,
    tx: tokio::sync::mpsc::UnboundedSender<(String, String, Instant)>,
) -> Result<()> {
    let mut s = UnixStream::connect(&socket).await?;
    s.write_all(b"GET /api/v1/events HTTP/1.0\r\nHost: uvmmd\r\n\r\n")
        .await?;
    let mut lines = BufReader::new(s).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(data) = line.strip_prefix("data: ") {
            let at = Instant::now();
            if let Ok(ev) = serde_json::from_str::<serde_json::Value>(data) {
                if ev["kind"] == "vm_state" {
                    let uuid = ev["uuid"].as_str().unwrap_or_default().to_string();
                    let state = ev["state"].as_str().unwrap_or_default().to_string();
                    let _ = tx.send((uuid, state, at));
                }
            }
        }
    }
    Ok(())
}

fn proc_cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

fn proc_status(pid: u32, key: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .context("no such field")?;
    let kib: f64 = line.split_whitespace().nth(1).context("value")?.parse()?;
    Ok(kib)
}

pub async fn measure(args: &Args, uvmmd: &Path, work: &Path, fleet: &mut Fleet) -> Result<Results> {
    let mut r = Results {
        hosts: args.hosts,
        vms_per_host: args.vms,
        total_vms: args.hosts * args.vms,
        ..Results::default()
    };
    let socket = work.join("uvmm.sock");
    std::fs::write(work.join("uvmmd.toml"), "")?;
    let mut cmd = Command::new(uvmmd);
    cmd.args(["-b", "", "-u"])
        .arg(&socket)
        .arg("-c")
        .arg(work.join("state"))
        .arg("--backup-dir")
        .arg(work.join("backups"))
        .arg("--config")
        .arg(work.join("uvmmd.toml"))
        .args(fleet.uris())
        .env("UVMM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join("uvmmd.log"))?);
    let started = Instant::now();
    let daemon = Daemon {
        child: cmd.spawn().context("start uvmmd")?,
        socket: socket.clone(),
    };
    let pid = daemon.child.id();

    // 1. Until every VM is in the cache.
    let total = r.total_vms as u64;
    loop {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the cache did not fill within 10 minutes");
        }
        if let Ok(page) = get_json(&daemon.socket, "/api/v1/vms?limit=0").await {
            if page["total"].as_u64() == Some(total) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.cache_full_s = started.elapsed().as_secs_f64();
    eprintln!("   cache full after {:.2} s", r.cache_full_s);
    let hosts = get_json(&daemon.socket, "/api/v1/hosts").await?;
    let connected = hosts
        .as_array()
        .map(|a| a.iter().filter(|h| h["status"] == "connected").count())
        .unwrap_or(0);
    if connected != args.hosts {
        bail!("{connected} of {} hosts connected", args.hosts);
    }
    // Every VM of every host, by name.
    let all = get_json(&daemon.socket, "/api/v1/vms").await?;
    let names: std::collections::HashSet<String> = all["items"]
        .as_array()
        .context("items")?
        .iter()
        .map(|v| v["name"].as_str().unwrap_or_default().to_string())
        .collect();
    for h in &fleet.hosts {
        for (name, _, _) in &h.vms {
            if !names.contains(name) {
                bail!("VM {name} is not in uvmmd's list");
            }
        }
    }

    // 2. The first start backs up every definition; measure once that is done.
    let backups = work.join("backups");
    loop {
        let n = std::fs::read_dir(&backups)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .count()
            })
            .unwrap_or(0);
        if n >= r.total_vms {
            r.backups_done_s = Some(started.elapsed().as_secs_f64());
            break;
        }
        if started.elapsed() > Duration::from_secs(900) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "   backups of every VM after {:.1} s",
        r.backups_done_s.unwrap_or(-1.0)
    );
    r.uvmmd_threads = std::fs::read_dir(format!("/proc/{pid}/task"))?.count();

    // 3. Latency and throughput.
    let uuids: Vec<String> = fleet
        .hosts
        .iter()
        .flat_map(|h| h.vms.iter().map(|(_, u, _)| u.clone()))
        .collect();
    let show: Vec<String> = uuids
        .iter()
        .step_by(7)
        .map(|u| format!("/api/v1/vms/{u}"))
        .collect();
    let list = vec!["/api/v1/vms".to_string()];
    // vm0..vm4 each match 10 names per host (VMs are vm00..vm49), so no page is empty.
    let page: Vec<String> = (0..5)
        .map(|i| format!("/api/v1/vms?state=running&q=*vm{i}*&sort=-memory&limit=50"))
        .collect();
    let requests = if args.check { 64 } else { args.requests };
    for clients in [1usize, 16, 64] {
        for (name, paths) in [
            ("list all VMs", &list),
            ("50-row filtered, sorted page", &page),
            ("show one VM", &show),
        ] {
            let l = latency(&daemon.socket, name, paths, clients, requests).await?;
            eprintln!(
                "   {name:<30} {clients:>2} clients: p50 {:.2} ms  p99 {:.2} ms  {:.0}/s",
                l.p50_ms, l.p99_ms, l.per_second
            );
            r.latencies.push(l);
        }
    }

    // 4. A host whose libvirtd is frozen (SIGSTOP) costs its own requests only.
    let frozen = fleet.hosts[0].pid().context("libvirtd pid")?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(frozen),
        nix::sys::signal::Signal::SIGSTOP,
    )?;
    let l = latency(
        &daemon.socket,
        "list all (host 0 frozen)",
        &list,
        1,
        requests.min(200),
    )
    .await?;
    r.list_p99_with_stopped_host_ms = l.p99_ms;
    // An action on another host still goes through.
    let (_, other_uuid, other_running) = fleet.hosts[1].vms[0].clone();
    let action = if other_running { "pause" } else { "start" };
    let mut c = Conn::open(&daemon.socket).await?;
    let req = Request::post(format!("/api/v1/vms/{other_uuid}/{action}"))
        .header("host", "uvmmd")
        .body(Empty::new())?;
    c.sender.ready().await?;
    let resp = c.sender.send_request(req).await?;
    let ok = resp.status().is_success();
    let _ = resp.into_body().collect().await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(frozen),
        nix::sys::signal::Signal::SIGCONT,
    )?;
    if !ok {
        bail!("an action on host 1 failed while host 0's libvirtd was stopped");
    }
    fleet.hosts[1].vms[0].2 = !other_running;
    eprintln!(
        "   with host 0 frozen: list p99 {:.2} ms, action on host 1 ok",
        r.list_p99_with_stopped_host_ms
    );

    // 5. Event propagation: changes made by another libvirt client (the keepers).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let follower = tokio::spawn(follow_events(socket.clone(), tx));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = if args.check {
        args.events.min(args.hosts * 2).max(10)
    } else {
        args.events
    };
    let mut lat = Vec::with_capacity(events);
    let mut cursor: HashMap<usize, usize> = HashMap::new();
    for k in 0..events {
        let hi = k % fleet.hosts.len();
        let host = &mut fleet.hosts[hi];
        let j = {
            let c = cursor.entry(hi).or_insert(0);
            *c = (*c + 1) % host.vms.len();
            *c
        };
        let (_, uuid, running) = host.vms[j].clone();
        let (action, want) = if running {
            (Action::Pause, "paused")
        } else {
            (Action::Start, "running")
        };
        let keeper = fleet.keeper(hi)?;
        let host = &mut fleet.hosts[hi];
        let t0 = Instant::now();
        let u = uuid.clone();
        tokio::task::spawn_blocking(move || keeper.action(&u, action)).await??;
        host.vms[j].2 = !running;
        let deadline = t0 + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some((eu, state, at))) if eu == uuid && state == want => {
                    lat.push(at.duration_since(t0).as_secs_f64() * 1000.0);
                    break;
                }
                Ok(Some(_)) => continue,
                _ => bail!("event {k}: no {want} event for {uuid} within 10 s"),
            }
        }
        if want == "paused" {
            // Keep the fleet's notion simple: a paused VM is resumed right away, and that
            // change is not measured.
            let keeper = fleet.keeper(hi)?;
            let u = uuid.clone();
            tokio::task::spawn_blocking(move || keeper.action(&u, Action::Resume)).await??;
            fleet.hosts[hi].vms[j].2 = true;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, rx.recv()).await {
                    Ok(Some((eu, state, _))) if eu == uuid && state == "running" => break,
                    Ok(Some(_)) => continue,
                    _ => bail!("no resume event for {uuid}"),
                }
            }
        }
    }
    follower.abort();
    lat.sort_by(|a, b| a.total_cmp(b));
    r.event_count = lat.len();
    r.event_p50_ms = percentile(&lat, 50.0);
    r.event_p99_ms = percentile(&lat, 99.0);
    r.event_max_ms = lat.last().copied().unwrap_or(0.0);
    eprintln!(
        "   {} events: p50 {:.2} ms  p99 {:.2} ms",
        r.event_count, r.event_p50_ms, r.event_p99_ms
    );
    if r.event_count != events {
        bail!("{} of {events} events arrived", r.event_count);
    }

    // 6. Idle CPU and memory.
    if !args.check {
        let ticks_per_s =
            nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as f64;
        let a = proc_cpu_ticks(pid)?;
        tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
        let b = proc_cpu_ticks(pid)?;
        r.idle_secs = args.idle_secs;
        r.idle_cpu_percent = (b - a) as f64 / ticks_per_s / args.idle_secs as f64 * 100.0;
    }
    r.rss_mb = proc_status(pid, "VmRSS:")? / 1024.0;
    r.peak_rss_mb = proc_status(pid, "VmHWM:")? / 1024.0;
    eprintln!(
        "   idle CPU {:.2} % of a core over {} s, RSS {:.0} MB (peak {:.0} MB)",
        r.idle_cpu_percent, r.idle_secs, r.rss_mb, r.peak_rss_mb
    );
    drop(daemon);

    // 7. Baselines, same hosts, same run.
    if !args.check {
        r.raw_libvirt_s = raw_libvirt_loop(&fleet.uris())?;
        eprintln!("   raw libvirt loop: {:.2} s", r.raw_libvirt_s);
        if !args.skip_virsh {
            let n = if args.virsh_hosts == 0 {
                args.hosts
            } else {
                args.virsh_hosts.min(args.hosts)
            };
            let t = virsh_loop(&fleet.uris()[..n])?;
            r.virsh_hosts_measured = n;
            r.virsh_measured_s = Some(t);
            r.virsh_all_hosts_s = Some(t * args.hosts as f64 / n as f64);
            eprintln!("   virsh loop over {n} hosts: {t:.1} s");
        }
    }
    Ok(r)
}

/// What an administrator does without uvmm: `virsh list --all` and `virsh dominfo` for
/// every VM, one process per call.
pub fn virsh_loop(uris: &[String]) -> Result<f64> {
    let started = Instant::now();
    for uri in uris {
        let out = Command::new("virsh")
            .args(["-c", uri, "list", "--all", "--name"])
            .output()
            .context("virsh")?;
        let names = String::from_utf8_lossy(&out.stdout);
        for name in names.lines().map(str::trim).filter(|n| !n.is_empty()) {
            let out = Command::new("virsh")
                .args(["-c", uri, "dominfo", name])
                .output()?;
            if !out.status.success() {
                bail!(
                    "virsh dominfo {name}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The floor of a cold read: one connection per host, ListAllDomains, GetInfo per VM.
pub fn raw_libvirt_loop(uris: &[String]) -> Result<f64> {
    virt::error::clear_error_callback();
    let started = Instant::now();
    let mut n = 0;
    for uri in uris {
        let conn = virt::connect::Connect::open(Some(uri))?;
        for d in conn.list_all_domains(0)? {
            let _ = d.info()?;
            n += 1;
        }
        drop(conn);
    }
    let t = started.elapsed().as_secs_f64();
    if n == 0 {
        bail!("the raw loop saw no VMs");
    }
    Ok(t)
}
