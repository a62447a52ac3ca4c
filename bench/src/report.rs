//! Results as JSON and as a Markdown table, with the machine, the versions, the goals and
//! the ratios against the baselines measured in the same run.

use crate::measure::Results;
use crate::Args;
use anyhow::Result;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::Command;

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
                    / 1024
                    / 1024
            })
        })
        .unwrap_or(0);
    serde_json::json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": cpu,
        "memory_gib": mem,
        "kernel": sh("uname", &["-r"]),
        "libvirt": sh("libvirtd", &["--version"]),
        "uvmm_commit": sh("git", &["rev-parse", "--short", "HEAD"]),
    })
}

pub fn write(args: &Args, r: &Results) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(&args.out)?;
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let stem = format!("{}-{}x{}", &date[..10], r.hosts, r.vms_per_host);
    let m = machine();
    let find = |ep: &str, c: usize| {
        r.latencies
            .iter()
            .find(|l| l.endpoint == ep && l.clients == c)
            .cloned()
            .unwrap_or_default()
    };
    let list1 = find("list all VMs", 1);
    let list_p99 = r
        .latencies
        .iter()
        .filter(|l| l.endpoint == "list all VMs")
        .map(|l| l.p99_ms)
        .fold(0.0, f64::max);
    let page_p99 = r
        .latencies
        .iter()
        .filter(|l| l.endpoint.starts_with("50-row"))
        .map(|l| l.p99_ms)
        .fold(0.0, f64::max);
    let vs_virsh = r.virsh_all_hosts_s.map(|v| v * 1000.0 / list1.p50_ms);
    let vs_raw = r.raw_libvirt_s * 1000.0 / list1.p50_ms;
    let json = serde_json::json!({
        "date": date,
        "machine": m,
        "config": { "hosts": r.hosts, "vms_per_host": r.vms_per_host, "requests": args.requests, "events": args.events, "idle_secs": args.idle_secs },
        "results": r,
        "ratios": { "virsh_loop_over_uvmm_list_p50": vs_virsh, "raw_libvirt_over_uvmm_list_p50": vs_raw },
    });
    let jpath = args.out.join(format!("{stem}.json"));
    std::fs::write(&jpath, serde_json::to_string_pretty(&json)?)?;

    let mut md = String::new();
    let _ = writeln!(
        md,
        "# uvmm benchmark: {} hosts x {} VMs ({} VMs)\n",
        r.hosts, r.vms_per_host, r.total_vms
    );
    let _ = writeln!(
        md,
        "{date}; {} CPUs ({}), {} GiB RAM, kernel {}, {}, uvmm {}.\n",
        m["cpus"],
        m["cpu_model"].as_str().unwrap_or(""),
        m["memory_gib"],
        m["kernel"].as_str().unwrap_or(""),
        m["libvirt"].as_str().unwrap_or(""),
        m["uvmm_commit"].as_str().unwrap_or("")
    );
    let _ = writeln!(md, "Every host is a libvirtd (test driver) reached over its UNIX socket; uvmmd, the libvirtds and the clients share the machine.\n");
    let _ = writeln!(
        md,
        "## Goals\n\n| goal | target | measured | met |\n| --- | --- | --- | --- |"
    );
    let mut goal = |name: &str, target: &str, value: String, met: bool| {
        let _ = writeln!(
            md,
            "| {name} | {target} | {value} | {} |",
            if met { "yes" } else { "**no**" }
        );
    };
    goal(
        "full cache after start",
        "<= 5 s",
        format!("{:.2} s", r.cache_full_s),
        r.cache_full_s <= 5.0,
    );
    goal(
        "list all VMs, p99 (1/16/64 clients, worst)",
        "<= 20 ms",
        format!("{list_p99:.2} ms"),
        list_p99 <= 20.0,
    );
    goal(
        "50-row page, p99 (worst)",
        "<= 2 ms",
        format!("{page_p99:.2} ms"),
        page_p99 <= 2.0,
    );
    goal(
        "event -> SSE, p99",
        "<= 50 ms",
        format!("{:.2} ms ({} events)", r.event_p99_ms, r.event_count),
        r.event_p99_ms <= 50.0,
    );
    goal(
        "idle CPU",
        "<= 2 % of a core",
        format!("{:.2} % over {} s", r.idle_cpu_percent, r.idle_secs),
        r.idle_cpu_percent <= 2.0,
    );
    goal(
        "RSS",
        "<= 200 MB",
        format!("{:.0} MB (peak {:.0} MB)", r.rss_mb, r.peak_rss_mb),
        r.rss_mb <= 200.0,
    );
    match vs_virsh {
        Some(x) => goal(
            "list all vs virsh loop",
            ">= 50x faster",
            format!("{x:.0}x"),
            x >= 50.0,
        ),
        None => goal(
            "list all vs virsh loop",
            ">= 50x faster",
            "not measured".into(),
            false,
        ),
    }
    let _ = writeln!(md, "\n## Requests over the UNIX socket\n\n| request | clients | p50 ms | p95 ms | p99 ms | max ms | req/s | bytes |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for l in &r.latencies {
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {} |",
            l.endpoint,
            l.clients,
            l.p50_ms,
            l.p95_ms,
            l.p99_ms,
            l.max_ms,
            l.per_second,
            l.bytes_per_response
        );
    }
    let _ = writeln!(md, "\n## Other figures\n");
    let _ = writeln!(
        md,
        "- every VM's definition backed up after {}",
        r.backups_done_s
            .map(|s| format!("{s:.1} s"))
            .unwrap_or("-".into())
    );
    let _ = writeln!(md, "- list all p99 while one libvirtd was stopped with SIGSTOP: {:.2} ms (an action on another host went through)", r.list_p99_with_stopped_host_ms);
    let _ = writeln!(md, "- events: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} changes made with another libvirt connection", r.event_p50_ms, r.event_p99_ms, r.event_max_ms, r.event_count);
    let _ = writeln!(md, "- uvmmd threads: {}", r.uvmmd_threads);
    let _ = writeln!(md, "\n## Baselines (same hosts, same run)\n");
    let _ = writeln!(
        md,
        "| what | time | uvmm list-all p50 is faster by |\n| --- | ---: | ---: |"
    );
    let _ = writeln!(
        md,
        "| uvmm `GET /api/v1/vms` (p50, 1 client) | {:.2} ms | 1x |",
        list1.p50_ms
    );
    let _ = writeln!(
        md,
        "| raw libvirt loop (ListAllDomains + GetInfo per VM, all hosts) | {:.2} s | {:.0}x |",
        r.raw_libvirt_s, vs_raw
    );
    match (r.virsh_measured_s, r.virsh_all_hosts_s) {
        (Some(m), Some(_)) if r.virsh_hosts_measured == r.hosts => {
            let _ = writeln!(
                md,
                "| virsh list + dominfo per VM, all hosts | {m:.1} s | {:.0}x |",
                vs_virsh.unwrap_or(0.0)
            );
        }
        (Some(m), Some(all)) => {
            let _ = writeln!(md, "| virsh list + dominfo per VM, {} hosts measured ({m:.1} s), extrapolated to {} | {all:.1} s | {:.0}x |", r.virsh_hosts_measured, r.hosts, vs_virsh.unwrap_or(0.0));
        }
        _ => {
            let _ = writeln!(md, "| virsh loop | not measured | - |");
        }
    }
    let _ = writeln!(md, "\n50-row page: `/api/v1/vms?state=running&q=*vmN*&sort=-memory&limit=50`; show: `/api/v1/vms/{{uuid}}`.");
    let mpath = args.out.join(format!("{stem}.md"));
    std::fs::write(&mpath, md)?;
    Ok((jpath, mpath))
}
