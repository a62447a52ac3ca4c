//! `uvmm snapshot create|list|revert|delete` and `uvmm vm rename`.

use crate::{print_json, resolve, task_cmd, VmRef};
use clap::Subcommand;
use hyper::Method;
use uvmm_api::{
    CloneRequest, CreateSnapshotRequest, RenameRequest, Snapshot, SnapshotDeleted,
    SnapshotKindName, VmChangeResponse,
};
use uvmm_cli::client::{Client, ClientError};
use uvmm_cli::paths;
use uvmm_cli::table::Table;

#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// Take a snapshot. Of a running VM an internal snapshot includes its memory and runs
    /// as a task (progress on a terminal; --no-wait returns at once).
    Create {
        #[command(flatten)]
        vm: VmRef,
        /// The snapshot's name.
        name: String,
        /// External (overlay images; also for raw disks) instead of internal (qcow2).
        #[arg(long)]
        external: bool,
        /// With the running VM's memory (external: written beside its first disk).
        #[arg(long)]
        memory: bool,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        no_wait: bool,
    },
    /// The snapshots as a tree; `*` marks the one the VM's current state descends from.
    List(VmRef),
    /// Go back to a snapshot (any of them; internal ones only on libvirt 9.0). A task
    /// that cannot be cancelled (progress on a terminal; --no-wait returns at once).
    Revert {
        #[command(flatten)]
        vm: VmRef,
        name: String,
        #[arg(long)]
        no_wait: bool,
    },
    /// Delete a snapshot; the data of other snapshots and of the current state stays (an
    /// external one is merged into its backing image, or the delete is refused). A task
    /// that cannot be cancelled (--no-wait returns at once).
    Delete {
        #[command(flatten)]
        vm: VmRef,
        name: String,
        #[arg(long)]
        no_wait: bool,
    },
}

fn encode(v: &impl serde::Serialize) -> Result<serde_json::Value, ClientError> {
    serde_json::to_value(v).map_err(|e| ClientError::Failed(e.to_string()))
}

pub async fn run(c: &Client, cmd: SnapshotCmd, json: bool) -> Result<(), ClientError> {
    match cmd {
        SnapshotCmd::Create {
            vm,
            name,
            external,
            memory,
            description,
            no_wait,
        } => {
            let (uuid, host) = resolve(c, &vm).await?;
            let req = CreateSnapshotRequest {
                name,
                description,
                kind: if external {
                    SnapshotKindName::External
                } else {
                    SnapshotKindName::Internal
                },
                memory,
            };
            let path = paths::vm_snapshots(&uuid, Some(&host), false);
            let body = encode(&req)?;
            let made: Option<Snapshot> =
                task_cmd::start_and_follow(c, &path, Some(&body), !no_wait, json).await?;
            if let Some(s) = made {
                if json {
                    print_json(&s);
                } else {
                    println!("snapshot {} of {} taken", s.name, vm.vm);
                }
            }
        }
        SnapshotCmd::List(vm) => {
            let (uuid, host) = resolve(c, &vm).await?;
            let path = paths::vm_snapshots(&uuid, Some(&host), true);
            let list: Vec<Snapshot> = c.call(Method::GET, &path, None).await?;
            if json {
                print_json(&list);
                return Ok(());
            }
            let mut t = Table::new(&["NAME", "KIND", "STATE", "MEMORY", "CREATED", "DESCRIPTION"]);
            for s in &list {
                let depth = usize::try_from(s.depth).unwrap_or(0);
                let mark = if s.current { "*" } else { " " };
                t.row(vec![
                    format!("{mark}{}{}", "  ".repeat(depth), s.name),
                    format!("{:?}", s.kind).to_lowercase(),
                    s.state.clone(),
                    if s.memory { "yes" } else { "no" }.into(),
                    s.created.clone(),
                    s.description.clone().unwrap_or_default(),
                ]);
            }
            print!("{}", t.render());
        }
        SnapshotCmd::Revert { vm, name, no_wait } => {
            let (uuid, host) = resolve(c, &vm).await?;
            let path = paths::vm_snapshot(&uuid, &name, Some(&host), true, false);
            let done: Option<VmChangeResponse> =
                task_cmd::start_and_follow(c, &path, None, !no_wait, json).await?;
            let Some(r) = done else { return Ok(()) };
            if json {
                print_json(&r);
            } else {
                println!("{} reverted to snapshot {name}", vm.vm);
            }
        }
        SnapshotCmd::Delete { vm, name, no_wait } => {
            let (uuid, host) = resolve(c, &vm).await?;
            let path = paths::vm_snapshot(&uuid, &name, Some(&host), false, false);
            let done: Option<SnapshotDeleted> =
                task_cmd::request_and_follow(c, Method::DELETE, &path, None, !no_wait, json)
                    .await?;
            let Some(r) = done else { return Ok(()) };
            if json {
                print_json(&r);
            } else {
                println!("snapshot {name} of {} {}", vm.vm, r.how);
            }
        }
    }
    Ok(())
}

pub async fn rename(c: &Client, vm: &VmRef, name: String, json: bool) -> Result<(), ClientError> {
    let (uuid, host) = resolve(c, vm).await?;
    let body = encode(&RenameRequest { name })?;
    let path = paths::vm_rename(&uuid, Some(&host));
    let r: VmChangeResponse = c.call(Method::POST, &path, Some(&body)).await?;
    if json {
        print_json(&r);
    } else {
        println!("{} is now called {}", vm.vm, r.vm.summary.name);
    }
    Ok(())
}

pub async fn clone(
    c: &Client,
    vm: &VmRef,
    req: CloneRequest,
    wait: bool,
    json: bool,
) -> Result<(), ClientError> {
    let (uuid, host) = resolve(c, vm).await?;
    let body = encode(&req)?;
    let path = paths::vm_clone(&uuid, Some(&host), false);
    let made: Option<VmChangeResponse> =
        task_cmd::start_and_follow(c, &path, Some(&body), wait, json).await?;
    let Some(r) = made else { return Ok(()) };
    if json {
        print_json(&r);
        return Ok(());
    }
    println!(
        "{} cloned to {} ({}) on {}",
        vm.vm, r.vm.summary.name, r.vm.summary.uuid, r.vm.summary.host_id
    );
    for n in &r.notes {
        println!("  {n}");
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
    Ok(())
}
