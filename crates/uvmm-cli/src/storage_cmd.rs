//! `uvmm pool ...` and `uvmm volume ...`.

use crate::{opt, print_json};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::json;
use uvmm_api::*;
use uvmm_cli::client::{Client, ClientError};
use uvmm_cli::paths;
use uvmm_cli::table::Table;
use uvmm_model::units::{format_bytes, parse_size};

fn usage(msg: impl Into<String>) -> ClientError {
    ClientError::Usage(msg.into())
}

#[derive(Debug, Args)]
pub struct PoolRef {
    /// Pool name.
    pub pool: String,
    /// Host id or URI (needed when several hosts have a pool of this name).
    #[arg(long)]
    pub host: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PoolCmd {
    /// List storage pools with size, use and what sparse volumes could grow to.
    List {
        #[arg(long)]
        host: Option<String>,
    },
    /// Show a pool and its volumes.
    Show(PoolRef),
    /// Define a pool, build its storage, start it and mark it autostart.
    Create {
        name: String,
        #[arg(long)]
        host: String,
        /// dir, fs, netfs, logical, iscsi or iscsi-direct.
        #[arg(long = "type")]
        kind: String,
        /// Where the pool appears on the host (dir, fs, netfs).
        #[arg(long)]
        target: Option<String>,
        /// Storage server (netfs, iscsi, iscsi-direct).
        #[arg(long)]
        source_host: Option<String>,
        /// Exported directory (netfs) or block device (fs, logical).
        #[arg(long)]
        source_path: Option<String>,
        /// Volume group (logical) or target IQN (iscsi, iscsi-direct).
        #[arg(long)]
        source_name: Option<String>,
        /// File system type (fs, netfs).
        #[arg(long)]
        source_format: Option<String>,
        /// Initiator IQN (iscsi-direct).
        #[arg(long)]
        initiator: Option<String>,
        #[arg(long)]
        no_build: bool,
        #[arg(long)]
        no_start: bool,
        #[arg(long)]
        no_autostart: bool,
    },
    /// Start (activate) a pool.
    Start(PoolRef),
    /// Stop (deactivate) a pool; refused while running VMs use its volumes. A stopped pool
    /// marked autostart is reported as a WARNING.
    Stop(PoolRef),
    /// Re-read volumes and sizes from the storage.
    Refresh(PoolRef),
    /// Remove the pool's definition (refused while VMs use its volumes).
    Delete {
        #[command(flatten)]
        pool: PoolRef,
        /// Also remove its storage (e.g. the empty directory).
        #[arg(long)]
        delete_storage: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum VolumeCmd {
    /// List volumes: path, format, size, allocation on disk, used by.
    List {
        /// Only this pool (like `volume create POOL ...`; `--pool` says the same).
        #[arg(value_name = "POOL", conflicts_with = "pool")]
        pool_arg: Option<String>,
        /// Only this host (id or URI); default: every host.
        #[arg(long)]
        host: Option<String>,
        /// Only this pool.
        #[arg(long)]
        pool: Option<String>,
    },
    /// Create a volume (sparse unless --preallocate).
    Create {
        #[command(flatten)]
        pool: PoolRef,
        name: String,
        /// Size, e.g. 20GiB.
        size: String,
        /// raw or qcow2 (default: qcow2 for a name ending in .qcow2, else raw).
        #[arg(long)]
        format: Option<String>,
        /// Allocate the whole size now instead of a sparse image.
        #[arg(long)]
        preallocate: bool,
    },
    /// Copy a volume within its pool.
    ///
    /// The copy runs as a task on uvmmd: the command shows its progress and waits for
    /// it, unless --no-wait (then it prints the task; `uvmm task wait|cancel ID`).
    Clone {
        #[command(flatten)]
        pool: PoolRef,
        source: String,
        name: String,
        /// Start the copy and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Grow a volume (where the pool supports it).
    Resize {
        #[command(flatten)]
        pool: PoolRef,
        name: String,
        size: String,
    },
    /// Delete a volume (refused while a VM uses it).
    Delete {
        #[command(flatten)]
        pool: PoolRef,
        name: String,
    },
}

/// Find the host of a pool by name when --host is not given.
async fn host_of(c: &Client, r: &PoolRef) -> Result<String, ClientError> {
    if let Some(h) = &r.host {
        return Ok(h.clone());
    }
    let pools: Vec<PoolSummary> = c.call(Method::GET, &paths::pools(None), None).await?;
    let hits: Vec<&PoolSummary> = pools.iter().filter(|p| p.name == r.pool).collect();
    match hits.len() {
        0 => Err(ClientError::Failed(format!(
            "no storage pool named '{}'",
            r.pool
        ))),
        1 => Ok(hits[0].host_id.clone()),
        _ => Err(ClientError::Failed(format!(
            "storage pool '{}' exists on {} hosts ({}); choose one with --host",
            r.pool,
            hits.len(),
            hits.iter()
                .map(|p| p.host_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn pools_table(pools: &[PoolSummary]) -> String {
    let mut t = Table::new(&[
        "HOST",
        "POOL",
        "TYPE",
        "STATE",
        "SIZE",
        "USED",
        "FREE",
        "USE%",
        "PROVISIONED",
        "LEVEL",
        "AGE",
        "PATH/SOURCE",
    ]);
    for p in pools {
        let pct = if p.capacity > 0 {
            p.allocation as f64 * 100.0 / p.capacity as f64
        } else {
            0.0
        };
        t.row(vec![
            p.host_id.clone(),
            p.name.clone(),
            p.kind.clone(),
            if p.active {
                "active".into()
            } else {
                "inactive".into()
            },
            format_bytes(p.capacity),
            format_bytes(p.allocation),
            format_bytes(p.available),
            format!("{pct:.1}"),
            format_bytes(p.provisioned),
            p.level.as_str().to_string(),
            figures_age(p),
            p.target_path
                .clone()
                .or(p.source.clone())
                .unwrap_or_default(),
        ]);
    }
    t.render()
}

/// How old the figures are: `12s`, `stale 340s` when older than the daemon promises (the
/// level is then not to be trusted), `-` for inactive pools.
fn figures_age(p: &PoolSummary) -> String {
    match (p.active, p.age_secs, p.stale) {
        (false, _, _) => "-".into(),
        (true, None, _) => "stale (never refreshed)".into(),
        (true, Some(a), true) => format!("stale {a}s"),
        (true, Some(a), false) => format!("{a}s"),
    }
}

/// The line `pool show` adds about the figures.
fn figures_line(p: &PoolSummary) -> Option<String> {
    if !p.active {
        return None;
    }
    let mut line = match (p.age_secs, &p.refreshed) {
        (Some(a), Some(t)) => format!(
            "figures: refreshed {a} s ago ({t}); uvmmd refreshes them before they are {} s old",
            p.max_age_secs
        ),
        _ => "figures: never refreshed".to_string(),
    };
    if p.stale {
        line.push_str(" - STALE, do not judge the pool by them");
    }
    if let Some(e) = &p.refresh_error {
        line.push_str(&format!("; the last refresh failed: {e}"));
    }
    Some(line)
}

fn volumes_table(vols: &[VolumeSummary]) -> String {
    let rows: Vec<(Option<&str>, &VolumeSummary)> = vols.iter().map(|v| (None, v)).collect();
    volume_rows(&rows)
}

/// Volumes of several pools: a HOST column first when the rows name their host (pools of
/// the same name exist on every host).
fn volume_rows(vols: &[(Option<&str>, &VolumeSummary)]) -> String {
    let with_host = vols.iter().any(|(h, _)| h.is_some());
    let mut head = vec![
        "POOL", "VOLUME", "FORMAT", "SIZE", "ON DISK", "USED BY", "PATH",
    ];
    if with_host {
        head.insert(0, "HOST");
    }
    let mut t = Table::new(&head);
    for (host, v) in vols {
        let mut row = vec![
            v.pool.clone(),
            v.name.clone(),
            opt(&v.format),
            format_bytes(v.capacity),
            format_bytes(v.allocation),
            if v.used_by.is_empty() {
                "-".into()
            } else {
                v.used_by.join(",")
            },
            opt(&v.path),
        ];
        if with_host {
            row.insert(0, host.unwrap_or("-").to_string());
        }
        t.row(row);
    }
    t.render()
}

/// uvmmd names the API's fields in its refusals of a pool definition; here the user typed
/// options, so each field is followed by the option that sets it.
fn with_pool_flags(e: ClientError) -> ClientError {
    const FLAGS: [(&str, &str); 5] = [
        ("target_path", "--target"),
        ("source_host", "--source-host"),
        ("source_path", "--source-path"),
        ("source_name", "--source-name"),
        ("initiator_iqn", "--initiator"),
    ];
    match e {
        ClientError::Api { status, mut body } => {
            for (field, flag) in FLAGS {
                body.error.message = body
                    .error
                    .message
                    .replace(field, &format!("{field} ({flag})"));
            }
            ClientError::Api { status, body }
        }
        other => other,
    }
}

fn size(s: &str) -> Result<u64, ClientError> {
    parse_size(s).map_err(|e| usage(format!("size: {e}")))
}

pub async fn run_pool(c: &Client, cmd: PoolCmd, json: bool) -> Result<(), ClientError> {
    let show = |d: &PoolDetail| {
        if json {
            print_json(d);
        } else {
            print!("{}", pools_table(std::slice::from_ref(&d.summary)));
            if let Some(f) = figures_line(&d.summary) {
                println!("{f}");
            }
            for a in &d.summary.alerts {
                println!("alert: {a}");
            }
            println!();
            print!("{}", volumes_table(&d.volumes));
        }
    };
    match cmd {
        PoolCmd::List { host } => {
            let path = paths::pools(host.as_deref());
            let pools: Vec<PoolSummary> = c.call(Method::GET, &path, None).await?;
            if json {
                print_json(&pools);
            } else {
                print!("{}", pools_table(&pools));
            }
        }
        PoolCmd::Show(r) => {
            let host = host_of(c, &r).await?;
            let d: PoolDetail = c
                .call(Method::GET, &paths::pool(&host, &r.pool), None)
                .await?;
            show(&d);
        }
        PoolCmd::Create {
            name,
            host,
            kind,
            target,
            source_host,
            source_path,
            source_name,
            source_format,
            initiator,
            no_build,
            no_start,
            no_autostart,
        } => {
            let req = CreatePoolRequest {
                pool: NewPool {
                    name,
                    kind,
                    target_path: target,
                    source_host,
                    source_path,
                    source_name,
                    source_format,
                    initiator_iqn: initiator,
                },
                build: !no_build,
                start: !no_start,
                autostart: !no_autostart,
            };
            let body = serde_json::to_value(&req).map_err(|e| usage(e.to_string()))?;
            let created: PoolCreated = c
                .call(Method::POST, &paths::host_pools(&host), Some(&body))
                .await
                .map_err(with_pool_flags)?;
            if json {
                print_json(&created);
            } else {
                show(&created.pool);
                for w in &created.warnings {
                    println!("warning: {w}");
                }
            }
        }

        PoolCmd::Start(r) => pool_action(c, r, PoolCommand::Start, json).await?,
        PoolCmd::Stop(r) => pool_action(c, r, PoolCommand::Stop, json).await?,
        PoolCmd::Refresh(r) => pool_action(c, r, PoolCommand::Refresh, json).await?,
        PoolCmd::Delete {
            pool,
            delete_storage,
        } => {
            let host = host_of(c, &pool).await?;
            let path = paths::pool_delete(&host, &pool.pool, delete_storage);
            c.call_empty(Method::DELETE, &path).await?;
            if json {
                print_json(&json!({ "deleted": pool.pool, "host": host }));
            } else {
                println!("storage pool {} on {host} removed", pool.pool);
            }
        }
    }
    Ok(())
}

async fn pool_action(
    c: &Client,
    r: PoolRef,
    command: PoolCommand,
    json: bool,
) -> Result<(), ClientError> {
    let host = host_of(c, &r).await?;
    let path = paths::pool_command(&host, &r.pool, command);
    let d: PoolDetail = c.call(Method::POST, &path, None).await?;
    if json {
        print_json(&d);
    } else {
        print!("{}", pools_table(std::slice::from_ref(&d.summary)));
    }
    Ok(())
}

pub async fn run_volume(c: &Client, cmd: VolumeCmd, json: bool) -> Result<(), ClientError> {
    // Create, clone and resize all answer with the volume.
    let show = |v: VolumeSummary| {
        if json {
            print_json(&v);
        } else {
            print!("{}", volumes_table(std::slice::from_ref(&v)));
        }
    };
    let post = |path: String, body: serde_json::Value| async move {
        let v: VolumeSummary = c.call(Method::POST, &path, Some(&body)).await?;
        show(v);
        Ok::<(), ClientError>(())
    };
    match cmd {
        VolumeCmd::List {
            pool_arg,
            host,
            pool,
        } => {
            let pool = pool.or(pool_arg);
            let path = paths::pools(host.as_deref());
            let pools: Vec<PoolSummary> = c.call(Method::GET, &path, None).await?;
            let mut vols = Vec::new();
            let mut hosts = Vec::new();
            for p in pools
                .iter()
                .filter(|p| pool.as_deref().is_none_or(|n| n == p.name) && p.active)
            {
                let d: PoolDetail = c
                    .call(Method::GET, &paths::pool(&p.host_id, &p.name), None)
                    .await?;
                hosts.extend(std::iter::repeat_n(p.host_id.as_str(), d.volumes.len()));
                vols.extend(d.volumes);
            }
            if json {
                print_json(&vols);
            } else {
                let rows: Vec<(Option<&str>, &VolumeSummary)> =
                    hosts.iter().map(|h| Some(*h)).zip(vols.iter()).collect();
                print!("{}", volume_rows(&rows));
            }
        }
        VolumeCmd::Create {
            pool,
            name,
            size: s,
            format,
            preallocate,
        } => {
            let host = host_of(c, &pool).await?;
            let body = serde_json::to_value(CreateVolumeRequest {
                name,
                size_bytes: size(&s)?,
                format,
                preallocate,
            })
            .map_err(|e| usage(e.to_string()))?;
            post(paths::volumes(&host, &pool.pool), body).await?;
        }
        VolumeCmd::Clone {
            pool,
            source,
            name,
            no_wait,
        } => {
            let host = host_of(c, &pool).await?;
            let body = json!({ "name": name });
            // A copy becomes a task on uvmmd: followed here, or left running.
            let path = paths::volume_clone(&host, &pool.pool, &source, false);
            let copied =
                crate::task_cmd::start_and_follow(c, &path, Some(&body), !no_wait, json).await?;
            if let Some(v) = copied {
                show(v);
            }
        }
        VolumeCmd::Resize {
            pool,
            name,
            size: s,
        } => {
            let host = host_of(c, &pool).await?;
            let body = json!({ "size_bytes": size(&s)? });
            post(paths::volume_resize(&host, &pool.pool, &name), body).await?;
        }
        VolumeCmd::Delete { pool, name } => {
            let host = host_of(c, &pool).await?;
            c.call_empty(Method::DELETE, &paths::volume(&host, &pool.pool, &name))
                .await?;
            if json {
                print_json(&json!({ "deleted": name, "pool": pool.pool, "host": host }));
            } else {
                println!("volume {name} deleted from {} on {host}", pool.pool);
            }
        }
    }
    Ok(())
}
