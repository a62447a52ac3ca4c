//! uvmm-bench: N hosts x M VMs served by real libvirtd instances (libvirt's test driver
//! behind libvirtd, so every call crosses libvirt's RPC), uvmmd on top, and in the same run
//! the baselines an administrator has without uvmm: a virsh loop, and the floor of a raw
//! libvirt loop (ListAllDomains + GetInfo per VM).
//!
//! `--check` runs the same steps as a correctness test (every VM seen, every event
//! received, a stopped libvirtd does not block the others) and asserts no timings.

mod libvirtd;
mod measure;
mod report;
mod scale;
mod store;

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Parser, Clone)]
#[command(
    name = "uvmm-bench",
    about = "Scale benchmark of uvmmd against virsh and raw libvirt"
)]
pub struct Args {
    /// Number of hosts (each a libvirtd instance).
    #[arg(long, default_value_t = 200)]
    pub hosts: usize,
    /// VMs per host (half of them running).
    #[arg(long, default_value_t = 50)]
    pub vms: usize,
    /// Requests per (endpoint, concurrency) pair.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// State changes made by another libvirt client, measured until they arrive on SSE.
    #[arg(long, default_value_t = 200)]
    pub events: usize,
    /// Seconds of idle CPU measurement.
    #[arg(long, default_value_t = 60)]
    pub idle_secs: u64,
    /// Hosts covered by the virsh baseline (0: all). The others are extrapolated and the
    /// report says so.
    #[arg(long, default_value_t = 0)]
    pub virsh_hosts: usize,
    /// Skip the virsh baseline.
    #[arg(long)]
    pub skip_virsh: bool,
    /// Correctness mode for CI: assert results, report no timings.
    #[arg(long)]
    pub check: bool,
    /// uvmmd binary (default: next to this program).
    #[arg(long)]
    pub uvmmd: Option<PathBuf>,
    /// Where to write results (JSON and Markdown).
    #[arg(long, default_value = "bench/results")]
    pub out: PathBuf,
    /// Work directory (default: a new one under /tmp).
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// Only measure the start-up backup check of this many VMs on the backup store
    /// (no libvirt, no uvmmd); see `store.rs`.
    #[arg(long)]
    pub backup_store: Option<usize>,
    /// Threads of the backup-store measurement.
    #[arg(long, default_value_t = 4)]
    pub store_threads: usize,
    /// VMs per `save_batch` in the backup-store measurement (a host's resync).
    #[arg(long, default_value_t = 10)]
    pub store_batch: usize,
    /// Only measure the latency of GET `--load-path` on this uvmmd socket with
    /// `--load-clients` keep-alive clients and `--requests` requests (bench/scale.sh).
    #[arg(long)]
    pub load: Option<PathBuf>,
    #[arg(long, default_value = "/api/v1/vms")]
    pub load_path: String,
    #[arg(long, default_value_t = 1)]
    pub load_clients: usize,
    /// Only run the peers' loops (raw libvirt, virsh) on the first `--virsh-hosts` URIs
    /// of this file (bench/scale.sh).
    #[arg(long)]
    pub peers: Option<PathBuf>,
    /// Only open every URI of this file (one a line) through uvmm-libvirt, list each
    /// host's domains once as uvmmd's first synchronisation does, and print this process's
    /// RSS in KiB before and after: what libvirt's in-process test driver costs without
    /// uvmm's cache (bench/memory.sh).
    #[arg(long)]
    pub driver_rss: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    match run(args) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("uvmm-bench: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run(args: Args) -> Result<()> {
    if let Some(socket) = &args.load {
        return scale::load(socket, &args.load_path, args.load_clients, args.requests);
    }
    if let Some(file) = &args.peers {
        return scale::peers(file, args.virsh_hosts);
    }
    if let Some(file) = &args.driver_rss {
        return scale::driver_rss(file);
    }
    if let Some(vms) = args.backup_store {
        let work = args.work.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("uvmm-bench-{}", std::process::id()))
        });
        return store::run(vms, args.store_threads, args.store_batch, &work, &args.out);
    }
    let uvmmd = match &args.uvmmd {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("uvmmd"),
    };
    if !uvmmd.exists() {
        bail!(
            "{} not found: build it (cargo build --release) or pass --uvmmd",
            uvmmd.display()
        );
    }
    let work = match &args.work {
        Some(w) => w.clone(),
        None => std::env::temp_dir().join(format!("uvmm-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    eprintln!(
        "== {} hosts x {} VMs, work dir {}",
        args.hosts,
        args.vms,
        work.display()
    );

    let t = Instant::now();
    let mut fleet = libvirtd::Fleet::start(&work, args.hosts)?;
    eprintln!(
        "   {} libvirtd started in {:.1} s",
        args.hosts,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    fleet.populate(args.vms)?;
    eprintln!(
        "   {} VMs defined in {:.1} s",
        args.hosts * args.vms,
        t.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(measure::measure(&args, &uvmmd, &work, &mut fleet));
    drop(fleet);
    let results = result?;
    if args.check {
        eprintln!("CHECK OK: every VM seen, every event received, a stopped host did not block the others");
    } else {
        let (json, md) = report::write(&args, &results)?;
        eprintln!("results: {} and {}", json.display(), md.display());
        print!("{}", std::fs::read_to_string(&md)?);
    }
    if args.work.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}
