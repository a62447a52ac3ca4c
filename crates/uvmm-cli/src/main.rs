//! uvmm: the command-line client of uvmmd.

mod access_cmd;
mod directory_cmd;
mod edit;
mod events_cmd;
mod move_cmd;
mod pending;
mod snapshot_cmd;
mod storage_cmd;
mod task_cmd;

use uvmm_cli::{client, table};

use clap::{Parser, Subcommand};
use client::{Client, ClientError, Target};
use hyper::Method;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use table::Table;
use uvmm_api::*;
use uvmm_cli::paths;
use uvmm_model::units::format_bytes;

/// uvmm - manage the virtual machines of every host uvmmd manages.
///
/// VM arguments are a name or a UUID. A name that exists on several hosts must be narrowed
/// with --host (a host id or URI). Every command prints a table for people, or JSON with
/// --json: list commands print an array, show commands one object, events one object per
/// line.
///
/// Exit codes: 0 success, 1 the operation failed, 2 usage error.
#[derive(Debug, Parser)]
#[command(name = "uvmm", version, about, long_about, max_term_width = 100)]
struct Cli {
    /// UNIX socket of uvmmd.
    #[arg(short = 'u', long = "socket", env = "UVMM_SOCKET", default_value = DEFAULT_SOCKET, global = true)]
    socket: PathBuf,

    /// Talk to uvmmd over the network instead: https://HOST[:PORT] (port 2106), or
    /// http://127.0.0.1:PORT on the daemon's machine. Authenticates with an API token
    /// (UVMM_TOKEN, --token-file) or the session of `uvmm --url URL login`.
    #[arg(long, env = "UVMM_URL", global = true)]
    url: Option<String>,

    /// File with an API token for --url (default: the session of `uvmm login`, else
    /// /var/lib/uvmm/api-token, uvmmd's legacy token, readable by root only).
    #[arg(long, env = "UVMM_TOKEN_FILE", global = true, value_name = "FILE")]
    token_file: Option<PathBuf>,

    /// Verify the server's certificate with these CA certificates (PEM) instead of a
    /// pinned fingerprint.
    #[arg(long, global = true, value_name = "FILE")]
    ca: Option<PathBuf>,

    /// The file of pinned server fingerprints (default ~/.config/uvmm/known_hosts).
    #[arg(long, global = true, value_name = "FILE")]
    known_hosts: Option<PathBuf>,

    /// Trust and pin the server whose certificate has this SHA-256 fingerprint (as
    /// `uvmmd --show-fingerprint` prints it on the server). Without it an unknown server
    /// is refused, or asked about on a terminal.
    #[arg(long, global = true, value_name = "FINGERPRINT")]
    accept_fingerprint: Option<String>,

    /// With --accept-fingerprint: replace the pinned fingerprint of a server whose
    /// certificate was changed on purpose (a changed certificate is refused otherwise).
    #[arg(long, global = true)]
    replace_pin: bool,

    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per run; boxing the big variant would buy nothing"
)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Managed virtualization hosts.
    #[command(subcommand)]
    Host(HostCmd),
    /// Virtual machines on all hosts.
    #[command(subcommand)]
    Vm(VmCmd),
    /// Storage pools.
    #[command(subcommand)]
    Pool(storage_cmd::PoolCmd),
    /// Storage volumes (disk images).
    #[command(subcommand)]
    Volume(storage_cmd::VolumeCmd),
    /// Versioned backups of VM definitions.
    #[command(subcommand)]
    Backup(edit::BackupCmd),
    /// VM profiles (templates for `vm create`).
    #[command(subcommand)]
    Profile(edit::ProfileCmd),
    /// The LDAP directory uvmmd follows (directory mode), or that it runs standalone.
    #[command(subcommand)]
    Directory(directory_cmd::DirectoryCmd),
    /// Long operations running in the background (a volume clone, a managed save).
    #[command(subcommand)]
    Task(task_cmd::TaskCmd),
    /// Log in to the uvmmd of --url with a local account of its machine (PAM); the
    /// session is kept (0600) in ~/.config/uvmm/sessions/ until it expires (30 minutes
    /// unused, 12 hours at most) or `uvmm logout`.
    Login {
        /// The account (default: $USER).
        #[arg(long)]
        user: Option<String>,
        /// Read the password from the first line of standard input instead of asking.
        #[arg(long)]
        password_stdin: bool,
    },
    /// End the session of `uvmm login` with the uvmmd of --url.
    Logout,
    /// Who uvmmd takes you for, and your roles.
    Whoami,
    /// API tokens for scripts and monitoring (admins).
    #[command(subcommand)]
    Token(access_cmd::TokenCmd),
    /// Snapshots of a VM: create, list (the tree), revert, delete.
    #[command(subcommand)]
    Snapshot(snapshot_cmd::SnapshotCmd),
    /// Follow changes of hosts and VMs as they happen (Ctrl-C to stop).
    ///
    /// When uvmmd stops, the command says so and exits 1; with --follow it reconnects
    /// (with back-off) and first prints a `resync` line: events in between were missed.
    Events {
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
        /// Keep going when uvmmd stops or restarts: reconnect and continue.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
enum HostCmd {
    /// List hosts with their connection status.
    List,
    /// Show one host with its capabilities.
    Show { host: String },
    /// Manage another host (persisted across restarts).
    Add { uri: String },
    /// Stop managing a host (persisted across restarts; its VMs are not touched).
    Remove { host: String },
    /// Move every VM off a host (maintenance): running ones live, shut-off ones offline.
    ///
    /// Each VM goes to the target with the most free memory that passes the checks, one
    /// after the other, as one task; the end lists every VM's outcome (exit 1 when one
    /// failed).
    Evacuate(move_cmd::EvacuateArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct VmRef {
    /// VM name or UUID.
    vm: String,
    /// Host id or URI, when the name exists on several hosts.
    #[arg(long)]
    host: Option<String>,
}

/// `vm clone --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CloneMode {
    Copy,
    Linked,
}

#[derive(Debug, Subcommand)]
enum VmCmd {
    /// List VMs of all hosts.
    List {
        /// Only VMs of this host (id or URI).
        #[arg(long)]
        host: Option<String>,
        /// Only VMs in this state (running, paused, shutoff, crashed, ...).
        #[arg(long)]
        state: Option<String>,
        /// Sort key: name, host, state, memory, vcpus, cpu (prefix - for descending).
        #[arg(long)]
        sort: Option<String>,
        /// Case-insensitive glob on name and description, e.g. "*web*".
        pattern: Option<String>,
    },
    /// Show a VM with disks, network interfaces, graphics and boot order.
    Show(VmRef),
    /// Boot the VM (or resume it from a managed-save image).
    Start(VmRef),
    /// Ask the guest to power off (ACPI).
    ///
    /// The guest decides when (or whether) it does: the command says "shutdown
    /// requested"; --wait waits until the VM is shut off and fails after --timeout seconds.
    Shutdown {
        #[command(flatten)]
        vm: VmRef,
        /// Wait until the VM is shut off.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up (exit 1) after this many seconds; the VM keeps running.
        #[arg(long, value_name = "SECS", default_value_t = 300, requires = "wait")]
        timeout: u64,
    },
    /// Power off immediately.
    Stop(VmRef),
    /// Freeze the VM in memory.
    Pause(VmRef),
    /// Continue a paused VM.
    Resume(VmRef),
    /// Save the VM's memory to disk and stop it; start resumes it.
    ///
    /// This runs as a task on uvmmd: the command shows its progress and waits for it,
    /// unless --no-wait (then it prints the task; `uvmm task wait|cancel ID` follow it).
    Suspend {
        #[command(flatten)]
        vm: VmRef,
        /// Start it and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Ask the guest to reboot.
    Reboot(VmRef),
    /// Hard reset.
    Reset(VmRef),
    /// Move the VM to another host: live when it runs, offline when it is shut off.
    ///
    /// uvmmd checks first (CPU, machine, memory, networks, storage on the target) and
    /// refuses with every reason before anything moves. Disks on storage both hosts see
    /// stay where they are; the others are copied. This runs as a task: a progress bar on a
    /// terminal, Ctrl-C leaves it running (`uvmm task cancel ID` aborts it; the VM keeps
    /// running on the source).
    Migrate(move_cmd::MigrateArgs),
    /// Define the VM of a host that is down on another host, from its last backup.
    ///
    /// Only when every disk image is on storage the other host sees, and only with
    /// --force: if the old host is not really off, both may run the VM on the same images
    /// (split brain), which destroys its file systems. The VM is defined shut off.
    Failover(move_cmd::FailoverArgs),
    /// Copy a shut-off VM: new name, UUID and MACs; every disk copied (a task with
    /// progress) or, with --mode linked, a qcow2 overlay on the source's image. On its host,
    /// or with --to on another managed host (full copies only: moved there offline with
    /// its disks).
    Clone {
        #[command(flatten)]
        vm: VmRef,
        /// The new VM's name.
        #[arg(long)]
        name: String,
        /// copy (default) or linked: instant, but the source must stay shut off and
        /// unchanged.
        #[arg(long, value_enum, default_value = "copy", conflicts_with = "linked")]
        mode: CloneMode,
        /// The same as --mode linked.
        #[arg(long)]
        linked: bool,
        /// The host (id or URI) to put the clone on (default: the VM's host; --host names
        /// the host the VM is on).
        #[arg(long, value_name = "HOST")]
        to: Option<String>,
        /// Keep the MAC addresses (for a clone that replaces its source).
        #[arg(long)]
        keep_macs: bool,
        #[arg(long)]
        no_wait: bool,
    },
    /// Give a shut-off VM another name (its UUID and backup history stay).
    Rename {
        #[command(flatten)]
        vm: VmRef,
        /// The new name.
        name: String,
    },
    #[command(flatten)]
    Edit(edit::EditCmd),
}

fn kib(v: u64) -> String {
    format_bytes(v.saturating_mul(1024))
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|x| x.to_string())
        .unwrap_or_else(|| "-".into())
}

fn host_table(hosts: &[HostSummary]) -> String {
    let mut t = Table::new(&[
        "ID", "STATUS", "VMS", "CPUS", "MEMORY", "DRIVER", "URI", "ERROR",
    ]);
    for h in hosts {
        t.row(vec![
            h.id.clone(),
            serde_json::to_value(h.status)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            format!("{}/{}", h.running_count, h.vm_count),
            opt(&h.cpus),
            h.memory_kib.map(kib).unwrap_or_else(|| "-".into()),
            opt(&h.driver),
            h.uri.clone(),
            h.last_error.clone().unwrap_or_default(),
        ]);
    }
    t.render()
}

fn state_text(v: &VmSummary) -> String {
    let mut s = v.state.to_string();
    if v.suspended {
        s.push_str(" (suspended)");
    }
    if !v.available {
        s.push_str(" (host unavailable)");
    }
    s
}

fn vm_table(vms: &[VmSummary]) -> String {
    let mut t = Table::new(&[
        "NAME",
        "HOST",
        "STATE",
        "VCPUS",
        "MEMORY",
        "CPU%",
        "VNC",
        "DESCRIPTION",
    ]);
    for v in vms {
        t.row(vec![
            v.name.clone(),
            v.host_id.clone(),
            state_text(v),
            v.vcpus.to_string(),
            kib(v.memory_kib),
            format!("{:.1}", v.cpu_usage),
            opt(&v.vnc_port),
            v.description.clone().unwrap_or_default(),
        ]);
    }
    t.render()
}

fn vm_detail_text(d: &VmDetail) -> String {
    let s = &d.summary;
    let p = d.pending.as_ref();
    let mut out = String::new();
    let mut kv = |k: &str, v: String| out.push_str(&format!("{k:<12} {v}\n"));
    kv("Name:", s.name.clone());
    kv("UUID:", s.uuid.clone());
    kv("Host:", format!("{} ({})", s.host_id, s.host));
    kv("State:", format!("{} ({})", state_text(s), s.reason));
    kv(
        "Type:",
        format!(
            "{} / {} / {}{}",
            s.domain_type,
            s.os_type,
            opt(&d.arch),
            pending::note(p.and_then(|p| p.domain_type.clone()))
        ),
    );
    if let Some(b) = &d.bootloader {
        kv("Bootloader:", b.clone());
    }
    kv(
        "vCPUs:",
        format!(
            "{}{}",
            s.vcpus,
            pending::note(p.and_then(|p| p.vcpus).map(|v| v.to_string()))
        ),
    );
    kv(
        "Memory:",
        format!(
            "{} (max {}){}",
            kib(s.memory_kib),
            kib(s.max_memory_kib),
            pending::memory(p)
        ),
    );
    kv("CPU usage:", format!("{:.1} %", s.cpu_usage));
    kv(
        "Autostart:",
        if s.autostart {
            "yes".into()
        } else {
            "no".into()
        },
    );
    kv(
        "RTC:",
        format!(
            "{}{}",
            opt(&d.rtc),
            pending::note(p.and_then(|p| p.rtc.clone()))
        ),
    );
    let cpu_text = |m: &str| {
        if m.is_empty() {
            "(hypervisor default)".to_string()
        } else {
            m.to_string()
        }
    };
    kv(
        "CPU model:",
        format!(
            "{}{}",
            cpu_text(d.cpu_model.as_deref().unwrap_or("")),
            pending::note(p.and_then(|p| p.cpu_model.as_deref().map(cpu_text)))
        ),
    );
    kv("ETag:", d.etag.clone());
    let order_text = |o: &[String]| {
        if o.is_empty() {
            "-".to_string()
        } else {
            o.join(", ")
        }
    };
    kv(
        "Boot order:",
        format!(
            "{}{}",
            order_text(&d.boot_order),
            pending::note(p.and_then(|p| p.boot_order.as_deref().map(order_text)))
        ),
    );
    kv("Description:", opt(&s.description));
    kv("Contact:", opt(&d.contact));
    kv("OS:", opt(&d.os));
    out.push_str("\nDrives:\n");
    out.push_str(&pending::disk_table(&d.disks, p, "  "));
    out.push_str("\nNetwork interfaces:\n");
    out.push_str(&pending::nic_table(&d.nics, p));
    if !d.graphics.is_empty() {
        out.push_str("\nGraphics:\n");
        for g in &d.graphics {
            out.push_str(&format!(
                "  {} port {} {}\n",
                g.kind,
                opt(&g.port),
                graphics_settings(g)
            ));
        }
    }
    if let Some(next) = p.and_then(|p| p.graphics.as_ref()) {
        let text: Vec<String> = next
            .iter()
            .map(|g| format!("{} {}", g.kind, graphics_settings(g)))
            .collect();
        out.push_str(&format!(
            "  (next boot: {})\n",
            if text.is_empty() {
                "no graphics".to_string()
            } else {
                text.join("; ")
            }
        ));
    }
    out
}

/// The settings of a display that a change can touch: the next-boot line must show the
/// one that differs (a new keymap alone read "vnc listen 0.0.0.0", as before).
fn graphics_settings(g: &uvmm_api::Graphics) -> String {
    format!(
        "listen {} keymap {}{}",
        opt(&g.listen),
        opt(&g.keymap),
        if g.password_set {
            " (password set)"
        } else {
            ""
        }
    )
}

/// What an action achieved, in words: shutdown and reboot only ask the guest, so a VM
/// that still runs afterwards was not "now running" because of them.
fn action_outcome(resp: &ActionResponse, asked_for: &str) -> String {
    let action = resp.action;
    match &resp.vm {
        Some(vm) if vm.state.is_active() && action == Action::Shutdown => format!(
            "shutdown requested for {} on {} (it is still {}; the guest powers off when it \
             is ready, --wait waits for that)",
            vm.name,
            vm.host_id,
            state_text(vm)
        ),
        Some(vm) if action == Action::Reboot => format!(
            "reboot requested for {} on {} (the guest restarts when it is ready)",
            vm.name, vm.host_id
        ),
        Some(vm) => format!(
            "{action}: {} on {} is now {}",
            vm.name,
            vm.host_id,
            state_text(vm)
        ),
        None => format!("{action}: done; {asked_for} no longer exists (it was transient)"),
    }
}

/// After a shutdown request: poll until the VM is off (or gone), or fail after `timeout`.
async fn wait_until_off(
    c: &Client,
    uuid: &str,
    host: &str,
    name: &str,
    timeout: std::time::Duration,
) -> Result<ActionResponse, ClientError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let path = paths::vm(uuid, Some(host));
    loop {
        match c.call::<VmDetail>(Method::GET, &path, None).await {
            Ok(d) if !d.summary.state.is_active() => {
                return Ok(ActionResponse {
                    action: Action::Shutdown,
                    vm: Some(d.summary),
                })
            }
            Ok(_) => {}
            // A transient VM is gone once it is off.
            Err(ClientError::Api { status, .. }) if status == hyper::StatusCode::NOT_FOUND => {
                return Ok(ActionResponse {
                    action: Action::Shutdown,
                    vm: None,
                })
            }
            Err(e) => return Err(e),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ClientError::Failed(format!(
                "{name} did not shut down within {} s and is still running (the guest may \
                 ignore the request; `uvmm vm stop {name}` powers it off)",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Turn a name or UUID into (uuid, host URI).
pub(crate) async fn resolve(c: &Client, r: &VmRef) -> Result<(String, String), ClientError> {
    if uvmm_model::uuid::is_uuid(&r.vm) {
        let path = paths::vm(&r.vm, r.host.as_deref());
        let d: VmDetail = c.call(Method::GET, &path, None).await?;
        return Ok((d.summary.uuid, d.summary.host));
    }
    let q = VmQuery {
        name: Some(r.vm.clone()),
        host: r.host.clone(),
        ..VmQuery::default()
    };
    let page: VmPage = c.call(Method::GET, &paths::vms(&q), None).await?;
    match page.items.len() {
        0 => Err(ClientError::Api {
            status: hyper::StatusCode::NOT_FOUND,
            body: ErrorBody {
                error: ErrorInfo {
                    code: "not_found".into(),
                    message: match &r.host {
                        Some(h) => format!("no VM named '{}' on host {h}", r.vm),
                        None => format!("no VM named '{}'", r.vm),
                    },
                    details: None,
                },
            },
        }),
        1 => {
            let v = &page.items[0];
            Ok((v.uuid.clone(), v.host.clone()))
        }
        _ => {
            let list: Vec<String> = page
                .items
                .iter()
                .map(|v| format!("  {} on {} ({}), {}", v.uuid, v.host_id, v.host, v.state))
                .collect();
            Err(ClientError::Api {
                status: hyper::StatusCode::CONFLICT,
                body: ErrorBody {
                    error: ErrorInfo {
                        code: "ambiguous".into(),
                        message: format!(
                            "VM name '{}' exists on {} hosts; choose one with --host ID or give the UUID:\n{}",
                            r.vm,
                            page.items.len(),
                            list.join("\n")
                        ),
                        details: None,
                    },
                },
            })
        }
    }
}

async fn run(cli: Cli) -> Result<(), ClientError> {
    let logging_in = matches!(cli.command, Command::Login { .. });
    let target = match &cli.url {
        Some(u) => {
            let opts = uvmm_cli::remote::TlsOptions {
                ca: cli.ca.clone(),
                known_hosts: cli.known_hosts.clone(),
                accept_fingerprint: cli.accept_fingerprint.clone(),
                replace_pin: cli.replace_pin,
            };
            let token_file = if logging_in {
                None
            } else {
                cli.token_file.as_deref()
            };
            uvmm_cli::remote::target(u, &opts, token_file, !logging_in).await?
        }
        None if logging_in || matches!(cli.command, Command::Logout) => {
            return Err(ClientError::Usage(
                "login and logout are for --url https://HOST: on the UNIX socket your account is who you are".into(),
            ))
        }
        None => Target::Unix(cli.socket.clone()),
    };
    let c = Client::new(target);
    let url = cli.url.clone().unwrap_or_default();
    match cli.command {
        Command::Login {
            user,
            password_stdin,
        } => access_cmd::login(&c, &url, user, password_stdin, cli.json).await?,
        Command::Logout => access_cmd::logout(&c, &url).await?,
        Command::Whoami => access_cmd::whoami(&c, cli.json).await?,
        Command::Token(cmd) => access_cmd::run_token(&c, cmd, cli.json).await?,
        Command::Host(cmd) => match cmd {
            HostCmd::List => {
                let hosts: Vec<HostSummary> = c.call(Method::GET, &paths::hosts(), None).await?;
                if cli.json {
                    print_json(&hosts)
                } else {
                    print!("{}", host_table(&hosts))
                }
            }
            HostCmd::Show { host } => {
                let h: HostDetail = c.call(Method::GET, &paths::host(&host), None).await?;
                if cli.json {
                    print_json(&h);
                } else {
                    print!("{}", host_table(std::slice::from_ref(&h.summary)));
                    println!(
                        "\nHostname: {}  libvirt {}  hypervisor {} {}",
                        opt(&h.summary.hostname),
                        opt(&h.summary.libvirt_version),
                        opt(&h.summary.driver),
                        opt(&h.summary.hypervisor_version)
                    );
                    println!(
                        "CPU: {} x {} ({} MHz)",
                        opt(&h.summary.cpus),
                        opt(&h.cpu_model),
                        opt(&h.cpu_mhz)
                    );
                    println!("\nGuest capabilities:");
                    let mut t = Table::new(&["  OS TYPE", "ARCH", "DOMAIN TYPES", "MACHINES"]);
                    for g in &h.capabilities {
                        let machines: Vec<&str> =
                            g.machines.iter().map(String::as_str).take(4).collect();
                        t.row(vec![
                            format!("  {}", g.os_type),
                            g.arch.clone(),
                            g.domain_types.join(","),
                            machines.join(","),
                        ]);
                    }
                    print!("{}", t.render());
                }
            }
            HostCmd::Add { uri } => {
                let h: HostSummary = c
                    .call(Method::POST, &paths::hosts(), Some(&json!({ "uri": uri })))
                    .await?;
                if cli.json {
                    print_json(&h)
                } else {
                    print!("{}", host_table(std::slice::from_ref(&h)))
                }
            }
            HostCmd::Remove { host } => {
                let h: HostSummary = c.call(Method::DELETE, &paths::host(&host), None).await?;
                if cli.json {
                    print_json(&h)
                } else {
                    println!("host {} ({}) is no longer managed", h.id, h.uri)
                }
            }
            HostCmd::Evacuate(e) => move_cmd::evacuate(&c, e, cli.json).await?,
        },
        Command::Vm(cmd) => {
            let action = |a: Action, r: VmRef| (a, r, None, true);
            let (action, r, wait, follow) = match cmd {
                VmCmd::List {
                    host,
                    state,
                    sort,
                    pattern,
                } => {
                    let q = VmQuery {
                        host,
                        state,
                        sort,
                        q: pattern,
                        ..VmQuery::default()
                    };
                    let page: VmPage = c.call(Method::GET, &paths::vms(&q), None).await?;
                    if cli.json {
                        print_json(&page.items)
                    } else {
                        print!("{}", vm_table(&page.items))
                    }
                    return Ok(());
                }
                VmCmd::Show(r) => {
                    let (uuid, host) = resolve(&c, &r).await?;
                    let d: VmDetail = c
                        .call(Method::GET, &paths::vm(&uuid, Some(&host)), None)
                        .await?;
                    if cli.json {
                        print_json(&d)
                    } else {
                        print!("{}", vm_detail_text(&d))
                    }
                    return Ok(());
                }
                VmCmd::Start(r) => action(Action::Start, r),
                VmCmd::Shutdown { vm, wait, timeout } => (
                    Action::Shutdown,
                    vm,
                    wait.then(|| std::time::Duration::from_secs(timeout)),
                    true,
                ),
                VmCmd::Stop(r) => action(Action::Stop, r),
                VmCmd::Pause(r) => action(Action::Pause, r),
                VmCmd::Resume(r) => action(Action::Resume, r),
                VmCmd::Suspend { vm, no_wait } => (Action::Suspend, vm, None, !no_wait),
                VmCmd::Reboot(r) => action(Action::Reboot, r),
                VmCmd::Reset(r) => action(Action::Reset, r),
                VmCmd::Edit(cmd) => return edit::run(&c, cmd, cli.json).await,
                VmCmd::Migrate(m) => return move_cmd::migrate(&c, m, cli.json).await,
                VmCmd::Failover(f) => return move_cmd::failover(&c, f, cli.json).await,
                VmCmd::Clone {
                    vm,
                    name,
                    mode,
                    linked,
                    to,
                    keep_macs,
                    no_wait,
                } => {
                    let req = CloneRequest {
                        name,
                        mode: if linked || mode == CloneMode::Linked {
                            CloneModeName::Linked
                        } else {
                            CloneModeName::Copy
                        },
                        keep_macs,
                        target_host: to,
                    };
                    return snapshot_cmd::clone(&c, &vm, req, !no_wait, cli.json).await;
                }
                VmCmd::Rename { vm, name } => {
                    return snapshot_cmd::rename(&c, &vm, name, cli.json).await
                }
            };
            let (uuid, host) = resolve(&c, &r).await?;
            // A managed save becomes a task on uvmmd: followed here, or left running.
            let path = paths::vm_action(&uuid, action, Some(&host), false);
            let started = task_cmd::start_and_follow(&c, &path, None, follow, cli.json).await?;
            let Some(resp): Option<ActionResponse> = started else {
                return Ok(());
            };
            let resp = match wait {
                Some(timeout) if resp.vm.as_ref().is_some_and(|v| v.state.is_active()) => {
                    wait_until_off(&c, &uuid, &host, &r.vm, timeout).await?
                }
                _ => resp,
            };
            if cli.json {
                print_json(&resp);
            } else {
                println!("{}", action_outcome(&resp, &r.vm));
            }
        }
        Command::Profile(cmd) => edit::run_profile(&c, cmd, cli.json).await?,
        Command::Task(cmd) => task_cmd::run(&c, cmd, cli.json).await?,
        Command::Snapshot(cmd) => snapshot_cmd::run(&c, cmd, cli.json).await?,
        Command::Directory(cmd) => directory_cmd::run(&c, cmd, cli.json).await?,
        Command::Backup(cmd) => edit::run_backup(&c, cmd, cli.json).await?,
        Command::Pool(cmd) => storage_cmd::run_pool(&c, cmd, cli.json).await?,
        Command::Volume(cmd) => storage_cmd::run_volume(&c, cmd, cli.json).await?,
        Command::Events { count, follow } => {
            events_cmd::run(&c, cli.json, count, follow).await?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // The package build writes the man pages and completions from this very definition.
    if let Some(code) = uvmm_docgen::generate_if_asked(<Cli as clap::CommandFactory>::command) {
        return code;
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("uvmm: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(ClientError::Usage(m)) => {
            eprintln!("uvmm: {m}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("uvmm: {e}");
            ExitCode::from(1)
        }
    }
}
