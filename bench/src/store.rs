//! `--backup-store N`: the start-up backup check of N VMs, measured on the backup store
//! itself (no libvirt): what uvmmd does after connecting to every host is one
//! `BackupStore::save` per persistent VM, from a bounded number of threads. Three rounds:
//! a first start (every VM new: one version each), a restart with the existing directory
//! (a new store value, every definition unchanged: no write expected) and a restart where
//! 1 % of the definitions changed. Each round is timed and printed next to the goal (every
//! backup checked within 30 s of the start, issue 18). The rounds run twice in the same
//! run, over fresh directories: once with one `save` per VM (as uvmmd did before batching)
//! and once with `save_batch` per host (`--store-batch` VMs, as uvmmd's resync does now),
//! and the report gives the ratio.

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use uvmm_backup::{BackupStore, BatchItem, BatchSync, Cause, VersionInput};

/// A test-driver-sized definition (about 1.5 KB, as `virsh dumpxml` of the bench's VMs).
fn definition(i: usize, uuid: &str, generation: u32) -> String {
    format!(
        "<domain type='test'>\n  <name>vm-{i:05}</name>\n  <uuid>{uuid}</uuid>\n  \
         <description>generation {generation}</description>\n  \
         <memory unit='KiB'>1048576</memory>\n  <currentMemory unit='KiB'>1048576</currentMemory>\n  \
         <vcpu placement='static'>2</vcpu>\n  <os>\n    <type arch='x86_64'>hvm</type>\n    \
         <boot dev='hd'/>\n  </os>\n  <clock offset='utc'/>\n  <on_poweroff>destroy</on_poweroff>\n  \
         <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n  <devices>\n    \
         <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      \
         <source file='/var/lib/libvirt/images/vm-{i:05}.qcow2'/>\n      \
         <target dev='vda' bus='virtio'/>\n    </disk>\n    <interface type='network'>\n      \
         <mac address='52:54:00:{:02x}:{:02x}:{:02x}'/>\n      <source network='default'/>\n      \
         <model type='virtio'/>\n    </interface>\n    \
         <graphics type='vnc' port='-1' autoport='yes' passwd='secret{i}'/>\n    \
         <memballoon model='virtio'/>\n  </devices>\n</domain>\n",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

fn uuid(i: usize) -> String {
    format!("6b1e2a3c-0000-4000-8000-{i:012x}")
}

fn input(i: usize, batch: usize) -> VersionInput {
    VersionInput {
        host: format!("test:///bench/host-{:04}.xml", i / batch.max(10)),
        name: format!("vm-{i:05}"),
        hypervisor: "test".into(),
        os_type: "hvm".into(),
        cause: Cause::Resync,
        ..VersionInput::default()
    }
}

/// One round: every VM saved once from `threads` threads, one `save` each (`batch` 0) or
/// `batch` VMs per `save_batch`; returns (seconds, new versions).
fn round(
    dir: &Path,
    vms: usize,
    threads: usize,
    batch: usize,
    sync: BatchSync,
    changed: impl Fn(usize) -> u32 + Sync,
) -> Result<(f64, usize)> {
    // A new store value per round: a restart starts without anything in memory.
    let store = BackupStore::new(dir).with_batch_sync(sync);
    store.clean_up();
    let next = AtomicUsize::new(0);
    let written = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let step = batch.max(1);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let first = next.fetch_add(step, Ordering::Relaxed);
                if first >= vms {
                    break;
                }
                let range = first..(first + step).min(vms);
                let uuids: Vec<String> = range.clone().map(uuid).collect();
                let xmls: Vec<String> = range
                    .clone()
                    .zip(&uuids)
                    .map(|(i, id)| definition(i, id, changed(i)))
                    .collect();
                let inputs: Vec<VersionInput> = range.map(|i| input(i, batch)).collect();
                let results = if batch == 0 {
                    vec![store.save(&uuids[0], &xmls[0], &inputs[0])]
                } else {
                    let items: Vec<BatchItem<'_>> = uuids
                        .iter()
                        .zip(&xmls)
                        .zip(&inputs)
                        .map(|((uuid, xml), input)| BatchItem { uuid, xml, input })
                        .collect();
                    store.save_batch(&items)
                };
                for r in results {
                    match r {
                        Ok(Some(_)) => {
                            written.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(None) => {}
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    let secs = t.elapsed().as_secs_f64();
    if failed.load(Ordering::Relaxed) > 0 {
        bail!("{} saves failed", failed.load(Ordering::Relaxed));
    }
    Ok((secs, written.load(Ordering::Relaxed)))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

type Rounds = [(&'static str, (f64, usize), usize, String); 3];

/// The three rounds over a fresh directory; each with the load average after it.
fn rounds(dir: &Path, vms: usize, threads: usize, batch: usize, sync: BatchSync) -> Result<Rounds> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let first = round(dir, vms, threads, batch, sync, |_| 1)?;
    let first_load = load_average();
    let restart = round(dir, vms, threads, batch, sync, |_| 1)?;
    let restart_load = load_average();
    let changed = round(dir, vms, threads, batch, sync, |i| {
        if i % 100 == 0 {
            2
        } else {
            1
        }
    })?;
    let _ = std::fs::remove_dir_all(dir);
    Ok([
        ("first start (every VM new)", first, vms, first_load),
        ("restart, all unchanged", restart, 0, restart_load),
        (
            "restart, 1 % changed",
            changed,
            vms.div_ceil(100),
            load_average(),
        ),
    ])
}

/// The modes one after the other (the single saves again at the end: how much the
/// machine drifted meanwhile), and the report.
pub fn run(vms: usize, threads: usize, batch: usize, work: &Path, out: &Path) -> Result<()> {
    let dir = work.join("backups");
    let load_before = load_average();
    let batch = batch.max(1);
    let modes = [
        (
            "one `save` per VM (before)".to_string(),
            0,
            BatchSync::Files,
        ),
        (
            format!("`save_batch` of {batch}, fdatasync per file (after)"),
            batch,
            BatchSync::Files,
        ),
        (
            format!("`save_batch` of {batch}, syncfs"),
            batch,
            BatchSync::Filesystem,
        ),
        (
            "one `save` per VM (before, again)".to_string(),
            0,
            BatchSync::Files,
        ),
    ];
    let mut results = Vec::new();
    for (name, b, sync) in &modes {
        results.push((name, rounds(&dir, vms, threads, *b, *sync)?));
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Start-up backup check on the store: {vms} VMs, {threads} threads\n"
    );
    let _ = writeln!(
        md,
        "Load average before: {load_before}; after: {}. Commit {}.\n",
        load_average(),
        std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    );
    let _ = writeln!(
        md,
        "| writes | round | seconds | per VM | new versions | goal | load after |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    let per_vm = |s: f64| {
        let n = f64::from(u32::try_from(vms.max(1)).unwrap_or(u32::MAX));
        format!("{:.0} µs", s * 1e6 / n)
    };
    for (mode, rows) in &results {
        for (name, (secs, written), want, load) in rows {
            let _ = writeln!(
                md,
                "| {mode} | {name} | {secs:.2} | {} | {written} (expected {want}) | ≤ 30 s: {} | {load} |",
                per_vm(*secs),
                if *secs <= 30.0 { "met" } else { "NOT met" }
            );
        }
    }
    let _ = writeln!(md);
    // Against the mean of the two single-save runs (before and after the batches).
    for k in 0..3 {
        let base = (results[0].1[k].1 .0 + results[3].1[k].1 .0) / 2.0;
        for (mode, rows) in &results[1..3] {
            let _ = writeln!(
                md,
                "- {}: single saves (mean of both runs) / {mode} = {:.2}x",
                rows[k].0,
                base / rows[k].1 .0.max(1e-9)
            );
        }
    }
    print!("{md}");
    std::fs::create_dir_all(out)?;
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let path = out.join(format!("{}-backup-store-{vms}.md", &date[..10]));
    // A second run on the same day is added to the first one's file.
    let mut all = std::fs::read_to_string(&path).unwrap_or_default();
    if !all.is_empty() {
        all.push('\n');
    }
    all.push_str(&md);
    std::fs::write(&path, &all)?;
    eprintln!("results: {}", path.display());
    let _ = std::fs::remove_dir(work);
    Ok(())
}
