//! Live-migration time and downtime of the tiny test guest (128 MiB, TCG, shared storage)
//! **through uvmmd** (`POST /api/v1/vms/{uuid}/migrate`, answered when the move is done)
//! against `virsh migrate` in the same run, on two real libvirtds managed by one real
//! uvmmd (the harnesses of `tests/common` and uvmm-libvirt's `tests/support`).
//!
//!   cargo bench -p uvmm-daemon --bench migration [--profile dev] [-- HOPS]
//!
//! Each round migrates the guest A→B and B→A through uvmmd, then A→B and B→A with virsh
//! (`--live --p2p --persistent --undefinesource --unsafe`, the flags uvmm's libvirt half
//! sets). uvmmd's time is the request's wall time: its check job (CPU, machine, memory,
//! networks, a shared-storage probe), the task with its own connections and progress
//! polling, the cache swap and the backup version — what an API client waits for.
//! Downtime is what the target's libvirt reports for the completed job. Before each uvmmd
//! migration the benchmark waits (unmeasured) until uvmmd lists the guest where virsh left
//! it. One warm-up round of each is not measured (a fresh libvirtd's first capabilities
//! answer takes seconds). Prints a Markdown table and one JSON line.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../../uvmm-libvirt/tests/support/hosts.rs"]
mod hosts;

use common::Daemon;
use hosts::{make_qcow2, GuestSpec, SerialLog, TestHost, TwoHosts};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Series {
    total_ms: Vec<f64>,
    downtime_ms: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn virsh_downtime(host: &TestHost, name: &str) -> Option<f64> {
    host.virsh(&["domjobinfo", name, "--completed"])
        .lines()
        .find(|l| l.trim_start().starts_with("Total downtime:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
}

fn via_uvmmd(d: &Daemon, uuid: &str, from: &TestHost, to: &TestHost) -> (f64, Option<f64>) {
    common::wait_for(Duration::from_secs(60), "uvmmd to list the guest", || {
        (d.listed_on("bench") == [from.uri()]).then_some(())
    });
    let body = json!({ "to": to.uri() }).to_string();
    let t = Instant::now();
    let (status, r): (u16, Value) =
        d.http("POST", &format!("/api/v1/vms/{uuid}/migrate"), Some(&body));
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(status, 200, "uvmmd migration: {r}");
    #[allow(clippy::cast_precision_loss, reason = "milliseconds, far below 2^52")]
    let downtime = r["downtime_ms"].as_u64().map(|d| d as f64);
    (ms, downtime)
}

fn via_virsh(from: &TestHost, to: &TestHost) -> (f64, Option<f64>) {
    let t = Instant::now();
    let out = Command::new("virsh")
        .args([
            "-c",
            &from.uri(),
            "migrate",
            "--live",
            "--p2p",
            "--persistent",
        ])
        .args(["--undefinesource", "--unsafe", "bench", &to.tcp_uri()])
        .output()
        .expect("virsh");
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    assert!(
        out.status.success(),
        "virsh migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (ms, virsh_downtime(to, "bench"))
}

fn main() {
    // `cargo bench` passes `--bench`; the first number is the hop count.
    let hops: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(6);
    let hosts = TwoHosts::start("dbench");
    let config = format!(
        "[migration]\npeer_uris = {{ \"{}\" = \"{}\", \"{}\" = \"{}\" }}\n",
        hosts.a.uri(),
        hosts.a.tcp_uri(),
        hosts.b.uri(),
        hosts.b.tcp_uri()
    );
    let d = Daemon::start_with(&[hosts.a.uri(), hosts.b.uri()], &[], &config);
    let disk = hosts.shared.join("bench.qcow2");
    make_qcow2(&disk, "64M", "marker-bench");
    for h in [&hosts.a, &hosts.b] {
        h.virsh(&["pool-refresh", "shared"]);
    }
    let spec =
        GuestSpec::new("bench", hosts.serial_path("bench")).disk(disk.to_str().unwrap(), "qcow2");
    let uuid = hosts.boot(&hosts.a, &spec);
    let log = SerialLog(spec.serial.clone());
    let (a, b) = (&hosts.a, &hosts.b);
    // Warm-up (not measured): there and back with each.
    via_uvmmd(&d, &uuid, a, b);
    via_uvmmd(&d, &uuid, b, a);
    via_virsh(a, b);
    via_virsh(b, a);
    let (mut ours, mut theirs) = (Series::default(), Series::default());
    for _ in 0..hops.div_ceil(2) {
        for (from, to) in [(a, b), (b, a)] {
            let (ms, down) = via_uvmmd(&d, &uuid, from, to);
            ours.total_ms.push(ms);
            ours.downtime_ms.extend(down);
        }
        for (from, to) in [(a, b), (b, a)] {
            let (ms, down) = via_virsh(from, to);
            theirs.total_ms.push(ms);
            theirs.downtime_ms.extend(down);
        }
    }
    // The guest kept counting all along, and booted once.
    let t = log.last_tick().unwrap_or(0);
    log.wait_tick_after(Some(t), Duration::from_secs(30));
    assert_eq!(
        log.text().matches("booted").count(),
        1,
        "the guest never rebooted"
    );
    let _ = a.virsh_result(&["destroy", "bench"]);

    let row = |name: &str, s: &Series| {
        format!(
            "| {name} | {} | {:.0} | {:.0} |",
            s.total_ms.len(),
            median(&s.total_ms),
            median(&s.downtime_ms)
        )
    };
    println!("| tool | migrations | total ms (median) | downtime ms (median) |");
    println!("|---|---|---|---|");
    println!("{}", row("uvmmd POST /vms/{uuid}/migrate", &ours));
    println!("{}", row("virsh migrate", &theirs));
    let ratio = median(&ours.total_ms) / median(&theirs.total_ms);
    println!("\nuvmmd/virsh total time ratio: {ratio:.2}");
    println!(
        "{{\"uvmmd_total_ms\":{:?},\"uvmmd_downtime_ms\":{:?},\"virsh_total_ms\":{:?},\"virsh_downtime_ms\":{:?},\"ratio\":{ratio:.3}}}",
        ours.total_ms, ours.downtime_ms, theirs.total_ms, theirs.downtime_ms
    );
}
