//! Live-migration time and downtime of the tiny test guest (128 MiB, TCG, shared storage)
//! through uvmm's `migrate::migrate_live` against `virsh migrate` in the same run, on two
//! real libvirtds started for the purpose (the test harness of `tests/support`).
//!
//!   cargo run --release -p uvmm-libvirt --example migration_bench [-- HOPS]
//!
//! Each round migrates the guest A→B and B→A with uvmm, then A→B and B→A with virsh
//! (`--live --p2p --persistent --undefinesource --unsafe`, the same flags uvmm sets), so
//! both see the same guest, hosts and directions. uvmm's time includes its compatibility
//! check (CPU comparison, pools, networks, a shared-storage probe) — the overhead a user
//! sees; "call" is the libvirt migration call alone. Downtime is what the target's libvirt
//! reports for the completed job (`virDomainGetJobStats(COMPLETED)`, `virsh domjobinfo
//! --completed`). Prints a Markdown table and one JSON line. Needs root (see the harness).
//! Before measuring, both hosts answer one capabilities request and one check (a fresh
//! libvirtd takes seconds for its first capabilities; uvmmd's hosts are long warm).

#[path = "../tests/support/hosts.rs"]
mod hosts;

use hosts::*;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uvmm_libvirt::migrate::{migrate_live, MigrateOptions, MigrationEvent};
use uvmm_libvirt::{Connector, Hypervisor, LibvirtConnector};

fn connect(uri: &str) -> Arc<dyn Hypervisor> {
    LibvirtConnector::default()
        .connect(uri, Arc::new(|_| {}))
        .unwrap_or_else(|e| panic!("connect {uri}: {e}"))
}

#[derive(Default)]
struct Series {
    total_ms: Vec<f64>,
    call_ms: Vec<f64>,
    downtime_ms: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    }
}

fn virsh_downtime(host: &TestHost, name: &str) -> Option<f64> {
    let out = host.virsh(&["domjobinfo", name, "--completed"]);
    out.lines()
        .find(|l| l.trim_start().starts_with("Total downtime:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
}

fn main() {
    let hops: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(6);
    let hosts = TwoHosts::start("bench");
    let disk = hosts.shared.join("bench.qcow2");
    make_qcow2(&disk, "64M", "marker-bench");
    for h in [&hosts.a, &hosts.b] {
        h.virsh(&["pool-refresh", "shared"]);
    }
    let spec =
        GuestSpec::new("bench", hosts.serial_path("bench")).disk(disk.to_str().unwrap(), "qcow2");
    let uuid = hosts.boot(&hosts.a, &spec);
    let log = SerialLog(spec.serial.clone());
    // Persistent connections, as uvmmd keeps them (two per source: call and progress).
    let conns = [
        (connect(&hosts.a.uri()), connect(&hosts.a.uri())),
        (connect(&hosts.b.uri()), connect(&hosts.b.uri())),
    ];
    let host = |i: usize| if i == 0 { &hosts.a } else { &hosts.b };
    // Warm-up, not measured: a freshly started libvirtd computes its host capabilities on
    // the first request for them (seconds); uvmmd's long-lived hosts have long done that.
    for (from, to) in [(0usize, 1usize), (1, 0)] {
        let _ = conns[from].0.host_info();
        let _ = conns[to].0.host_info();
        let _ = uvmm_libvirt::migrate::check_migration(
            &*conns[from].0,
            &*conns[to].0,
            &uuid,
            false,
            uvmm_libvirt::migrate::CopyStorage::Auto,
        );
    }
    let mut ours = Series::default();
    let mut theirs = Series::default();
    let mut at = 0usize; // where the guest is
    let rounds = hops.div_ceil(2);
    for _ in 0..rounds {
        // uvmm: there and back.
        for _ in 0..2 {
            let to = 1 - at;
            let mut opts = MigrateOptions::new(host(to).tcp_uri());
            opts.trust_proven_shared_storage = true;
            let t = Instant::now();
            let r = migrate_live(
                &*conns[at].0,
                &*conns[at].1,
                &*conns[to].0,
                &uuid,
                &opts,
                &mut |_: MigrationEvent| {},
                &AtomicBool::new(false),
            )
            .unwrap_or_else(|e| panic!("uvmm migration: {e}"));
            ours.total_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            ours.call_ms.push(r.duration.as_secs_f64() * 1000.0);
            if let Some(d) = r.completed.and_then(|c| c.downtime_ms) {
                ours.downtime_ms.push(d as f64);
            }
            at = to;
        }
        // virsh: there and back.
        for _ in 0..2 {
            let to = 1 - at;
            let t = Instant::now();
            let out = Command::new("virsh")
                .args([
                    "-c",
                    &host(at).uri(),
                    "migrate",
                    "--live",
                    "--p2p",
                    "--persistent",
                ])
                .args(["--undefinesource", "--unsafe", "bench", &host(to).tcp_uri()])
                .output()
                .expect("virsh");
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            assert!(
                out.status.success(),
                "virsh migrate: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            theirs.total_ms.push(ms);
            theirs.call_ms.push(ms);
            if let Some(d) = virsh_downtime(host(to), "bench") {
                theirs.downtime_ms.push(d);
            }
            at = to;
        }
    }
    // The guest kept counting all along.
    let t = log.last_tick().unwrap_or(0);
    log.wait_tick_after(Some(t), Duration::from_secs(30));
    let _ = host(at).virsh_result(&["destroy", "bench"]);

    let row = |name: &str, s: &Series| {
        format!(
            "| {name} | {} | {:.0} | {:.0} | {:.0} |",
            s.total_ms.len(),
            median(&s.total_ms),
            median(&s.call_ms),
            median(&s.downtime_ms)
        )
    };
    println!("| tool | migrations | total ms (median) | migration call ms (median) | downtime ms (median) |");
    println!("|---|---|---|---|---|");
    println!("{}", row("uvmm migrate_live", &ours));
    println!("{}", row("virsh migrate", &theirs));
    let ratio = median(&ours.total_ms) / median(&theirs.total_ms);
    println!("\nuvmm/virsh total time ratio: {ratio:.2}");
    println!(
        "{{\"uvmm_total_ms\":{:?},\"uvmm_call_ms\":{:?},\"uvmm_downtime_ms\":{:?},\"virsh_total_ms\":{:?},\"virsh_downtime_ms\":{:?},\"ratio\":{ratio:.3}}}",
        ours.total_ms, ours.call_ms, ours.downtime_ms, theirs.total_ms, theirs.downtime_ms
    );
}
