//! Helpers of bench/scale.sh (the 2,500 x 10 in-process test-driver scenario): a load
//! client in one process (keep-alive connections, no process per request, so the figure
//! is uvmmd's and not curl's start-up) and the peers' loops on a sample of the hosts.

use crate::measure::{latency, raw_libvirt_loop, virsh_loop};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// `clients` keep-alive connections sending `requests` GETs of `path` in all; prints
/// `p50 p99` in milliseconds on one line.
pub fn load(socket: &Path, path: &str, clients: usize, requests: usize) -> Result<()> {
    if clients == 0 || requests == 0 {
        bail!("--load needs at least one client and one request");
    }
    // One thread: the client must not take a core away from the uvmmd it measures.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let paths = [path.to_string()];
    // A first round warms the connections and the render.
    rt.block_on(latency(socket, path, &paths, clients, clients))?;
    let l = rt.block_on(latency(socket, path, &paths, clients, requests))?;
    println!("{:.2} {:.2}", l.p50_ms, l.p99_ms);
    Ok(())
}

/// Open every URI of `file` as uvmmd does (uvmm-libvirt's connector, events registered),
/// read each host's domains once and drop the snapshots; prints `VMS RSS_BEFORE_KIB
/// RSS_AFTER_KIB` with the connections still open.
pub fn driver_rss(file: &Path) -> Result<()> {
    use uvmm_libvirt::{Connector, LibvirtConnector};
    let text = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
    let before = rss_kib()?;
    let connector = LibvirtConnector::default();
    let sink: uvmm_libvirt::EventSink = std::sync::Arc::new(|_| {});
    let mut hosts = Vec::new();
    let mut vms = 0;
    for uri in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let host = connector.connect(uri, sink.clone())?;
        vms += host.list_domains()?.len();
        hosts.push(host);
    }
    println!("{vms} {before} {}", rss_kib()?);
    drop(hosts);
    Ok(())
}

fn rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/self/status")
}

/// The peers on the first `sample` URIs of `file` (one URI a line): prints the measured
/// seconds of the raw libvirt loop and of the virsh loop, and the number of hosts in the
/// file, for the caller to extrapolate (and say so).
pub fn peers(file: &Path, sample: usize) -> Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
    let uris: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let n = sample.clamp(1, uris.len().max(1));
    if uris.is_empty() {
        bail!("{}: no URIs", file.display());
    }
    let raw = raw_libvirt_loop(&uris[..n])?;
    let virsh = virsh_loop(&uris[..n])?;
    println!("{n} {} {raw:.3} {virsh:.3}", uris.len());
    Ok(())
}
