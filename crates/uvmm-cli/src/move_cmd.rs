//! `uvmm vm migrate`, `uvmm host evacuate`: moving VMs to other hosts, followed as tasks.

use crate::{print_json, resolve, task_cmd, VmRef};
use hyper::Method;
use uvmm_api::{
    CopyStorageMode, EvacuateRequest, EvacuateResult, FailoverRequest, FailoverResult,
    MigrateRequest, MigrateResult, TaskState,
};
use uvmm_cli::client::{Client, ClientError};
use uvmm_cli::paths;
use uvmm_model::units::format_bytes;

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    vm: VmRef,
    /// The target host (id or URI).
    #[arg(long, value_name = "HOST")]
    to: String,
    /// Only an offline move: refused unless the VM is shut off.
    #[arg(long)]
    offline: bool,
    /// Copy every writable disk, even those on shared storage (default: only the disks
    /// the target does not share).
    #[arg(long, conflicts_with = "no_copy_storage")]
    copy_storage: bool,
    /// Switch to post-copy after this many seconds (a host failure after the switch loses
    /// the running guest).
    #[arg(long, value_name = "SECS")]
    post_copy_after: Option<u64>,
    #[command(flatten)]
    how: Transfer,
}

/// What migrations and evacuations share.
#[derive(Debug, clap::Args)]
struct Transfer {
    /// Copy no disk: a VM whose disks are not all on shared storage is refused.
    #[arg(long)]
    no_copy_storage: bool,
    /// Bandwidth limit per migration, MiB/s.
    #[arg(long, value_name = "MIB_S")]
    bandwidth: Option<u64>,
    /// Slow the guest down when it dirties memory faster than it can be sent.
    #[arg(long)]
    auto_converge: bool,
    /// Abort a migration not done after this many seconds (the VM keeps running on the
    /// source).
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Start it and return at once (prints the task).
    #[arg(long)]
    no_wait: bool,
}

pub async fn migrate(c: &Client, m: MigrateArgs, json: bool) -> Result<(), ClientError> {
    let (uuid, host) = resolve(c, &m.vm).await?;
    let req = MigrateRequest {
        to: m.to,
        offline: m.offline,
        copy_storage: if m.copy_storage {
            CopyStorageMode::All
        } else if m.how.no_copy_storage {
            CopyStorageMode::Never
        } else {
            CopyStorageMode::Auto
        },
        bandwidth_mib_s: m.how.bandwidth,
        auto_converge: m.how.auto_converge,
        post_copy_after_secs: m.post_copy_after,
        timeout_secs: m.how.timeout,
    };
    let body = serde_json::to_value(&req).map_err(|e| ClientError::Failed(e.to_string()))?;
    let path = paths::vm_migrate(&uuid, Some(&host), false);
    let done: Option<MigrateResult> =
        task_cmd::start_and_follow(c, &path, Some(&body), !m.how.no_wait, json).await?;
    let Some(r) = done else { return Ok(()) };
    if json {
        print_json(&r);
        return Ok(());
    }
    println!("{}", outcome(&r));
    for n in &r.notes {
        println!("note: {n}");
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
    Ok(())
}

fn outcome(r: &MigrateResult) -> String {
    let mut s = format!(
        "{} moved {} from {} to {} in {:.1} s",
        r.name,
        if r.live { "live" } else { "offline" },
        r.from,
        r.to,
        r.duration_ms as f64 / 1000.0
    );
    if let Some(d) = r.downtime_ms {
        s.push_str(&format!(", downtime {d} ms"));
    }
    if let Some(b) = r.data_transferred {
        s.push_str(&format!(", {} transferred", format_bytes(b)));
    }
    if !r.copied_disks.is_empty() {
        s.push_str(&format!(", disks copied: {}", r.copied_disks.join(", ")));
    }
    s
}

#[derive(Debug, clap::Args)]
pub struct EvacuateArgs {
    /// The host to empty (id or URI).
    host: String,
    /// Target hosts (repeat; default: every other connected host).
    #[arg(long, value_name = "HOST")]
    to: Vec<String>,
    /// How many VMs move at the same time (1-16; default 2).
    #[arg(long, value_name = "N")]
    max_parallel: Option<u32>,
    #[command(flatten)]
    how: Transfer,
}

pub async fn evacuate(c: &Client, e: EvacuateArgs, json: bool) -> Result<(), ClientError> {
    let req = EvacuateRequest {
        to: e.to,
        copy_storage: if e.how.no_copy_storage {
            CopyStorageMode::Never
        } else {
            CopyStorageMode::Auto
        },
        bandwidth_mib_s: e.how.bandwidth,
        auto_converge: e.how.auto_converge,
        timeout_secs: e.how.timeout,
        max_parallel: e.max_parallel,
    };
    let body = serde_json::to_value(&req).map_err(|e| ClientError::Failed(e.to_string()))?;
    let path = paths::host_evacuate(&e.host, false);
    let Some(task) =
        task_cmd::start_and_follow_task(c, &path, Some(&body), !e.how.no_wait, json).await?
    else {
        return Ok(());
    };
    // A cancelled evacuation still reports what it did.
    let cancelled = task.state == TaskState::Cancelled;
    let r: EvacuateResult = match task.result.clone().filter(|_| cancelled) {
        Some(v) => serde_json::from_value(v).map_err(|e| ClientError::Failed(e.to_string()))?,
        None => task_cmd::outcome(task)?,
    };
    if json {
        print_json(&r);
    } else {
        for v in &r.vms {
            let to = v.to.as_deref().unwrap_or("-");
            let why = v
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            println!("{} {} -> {to}{why}", v.name, v.outcome);
        }
        for v in &r.vms {
            if let Some(t) = &v.task {
                println!("  {}: task {t}", v.name);
            }
        }
        println!(
            "{}: {} moved, {} failed, {} skipped ({} at a time)",
            r.host, r.moved, r.failed, r.skipped, r.max_parallel
        );
    }
    if cancelled {
        return Err(ClientError::Failed(format!(
            "the evacuation of {} was cancelled",
            r.host
        )));
    }
    if r.failed > 0 {
        return Err(ClientError::Failed(format!(
            "{} of {} VMs could not be moved off {}",
            r.failed,
            r.vms.len(),
            r.host
        )));
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct FailoverArgs {
    #[command(flatten)]
    vm: VmRef,
    /// The host to define it on (id or URI).
    #[arg(long, value_name = "HOST")]
    to: String,
    /// Confirm that the VM's host is really off.
    #[arg(long)]
    force: bool,
}

pub async fn failover(c: &Client, f: FailoverArgs, json: bool) -> Result<(), ClientError> {
    let (uuid, host) = resolve(c, &f.vm).await?;
    let req = FailoverRequest {
        to: f.to,
        force: f.force,
    };
    let body = serde_json::to_value(&req).map_err(|e| ClientError::Failed(e.to_string()))?;
    let path = paths::vm_failover(&uuid, Some(&host));
    let r: FailoverResult = c.call(Method::POST, &path, Some(&body)).await?;
    if json {
        print_json(&r);
        return Ok(());
    }
    println!(
        "{} is defined on {} (shut off), from backup version {}",
        r.name, r.to, r.from_version
    );
    for w in &r.warnings {
        println!("warning: {w}");
    }
    Ok(())
}
