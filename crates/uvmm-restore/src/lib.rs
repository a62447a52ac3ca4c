//! uvmm-restore (also installed as univention-virtual-machine-manager-restore): list the
//! backups of VM definitions and bring a VM back, through uvmmd when it runs and directly
//! through libvirt when it does not.

use clap::Parser;
use hyper::Method;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use uvmm_api::{BackupDetail, BackupSummary, RestoreReport, VersionInfo, DEFAULT_SOCKET};
use uvmm_backup::restore::{restore, Existing, RestoreError};
use uvmm_backup::store::{BackupStore, DEFAULT_DIR, OLD_UVMM_DIR};
use uvmm_backup::VersionInput;
use uvmm_cli::client::{Client, ClientError, Target};
use uvmm_cli::paths;
use uvmm_libvirt::{Connector, LibvirtConnector};
use uvmm_model::hosts::HostUri;

/// uvmmd's configuration file, where its backup directory is set.
pub const UVMMD_CONFIG: &str = "/etc/uvmm/uvmmd.toml";

/// Restore a virtual machine from its backup.
///
/// uvmmd saves every change of a VM definition as a new version in its backup directory.
/// This tool lists those backups and restores a VM that is gone (or was changed badly),
/// after checking that it can work:
///
///   - every disk and CD-ROM image the definition uses exists on the target host (the
///     refusal lists every drive that is missing);
///   - the target host runs the same kind of VM (a Xen PV backup is not restored on KVM,
///     nor a KVM one on Xen);
///   - no other VM has the same UUID under another name;
///   - no VM of the same name exists, unless -f is given (it is then redefined); a
///     different VM of that name (another UUID) is only undefined with --replace.
///
/// It works through uvmmd when it runs (-u/UVMM_SOCKET, as uvmm does): backups are then
/// uvmmd's, wherever its backup directory is. When uvmmd is down (or with --direct) it
/// reads the directory named by backup_dir in uvmmd's configuration file (--config,
/// default /etc/uvmm/uvmmd.toml), else /var/backups/uvmm, and talks to libvirt directly.
/// --dir reads another directory, e.g. the original UVMM's
/// /var/backups/univention-virtual-machine-manager-daemon.
///
/// Examples:
///   uvmm-restore -l                      list all backups
///   uvmm-restore -l -p "*winxp*"         only names matching the pattern
///   uvmm-restore -r winxp                restore the latest version
///   uvmm-restore -r winxp --version 3    restore an older version
///   uvmm-restore -r winxp -f             redefine the existing VM winxp (same UUID)
///   uvmm-restore -r winxp --replace      put it in place of another VM named winxp
///
/// Exit codes: 0 restored (or listed), 1 refused or failed, 2 usage error.
#[derive(Debug, Parser)]
// `--version` selects a backup version here, as in the interface; the program
// version is not a flag.
// The examples and the check list are laid out by hand: keep the line breaks.
#[command(
    name = "uvmm-restore",
    about,
    long_about,
    verbatim_doc_comment,
    max_term_width = 100
)]
pub struct Args {
    /// List the backups (the default when nothing else is asked).
    #[arg(short = 'l', long = "list", conflicts_with = "restore")]
    pub list: bool,
    /// Only backups whose VM name matches this glob (case-insensitive), e.g. "*winxp*".
    #[arg(short = 'p', long = "pattern", value_name = "PATTERN")]
    pub pattern: Option<String>,
    /// Restore the VM with this name or UUID.
    #[arg(short = 'r', long = "restore", value_name = "NAME|UUID")]
    pub restore: Option<String>,
    /// Redefine the VM if it exists with the same name and UUID. A different VM of that
    /// name is not touched: that needs --replace.
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Undefine a different VM (another UUID) with the same name, keeping its images, and
    /// restore the backup in its place. It must be shut off.
    #[arg(long)]
    pub replace: bool,
    /// Version to restore (default: the latest; see `uvmm backup show NAME`).
    #[arg(long, value_name = "N")]
    pub version: Option<u32>,
    /// Target host: libvirt URI (or, through uvmmd, its host id). Default: the host the
    /// backup came from.
    #[arg(long, value_name = "URI")]
    pub host: Option<String>,
    /// Read the backups from this directory instead of uvmmd's.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// uvmmd's configuration file: its backup_dir is used when uvmmd does not answer.
    #[arg(long, value_name = "FILE", default_value = UVMMD_CONFIG)]
    pub config: PathBuf,
    /// uvmmd's UNIX socket.
    #[arg(short = 'u', long = "socket", env = "UVMM_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Do not use uvmmd even if it runs: talk to libvirt directly.
    #[arg(long)]
    pub direct: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    fn existing(&self) -> Existing {
        match (self.force, self.replace) {
            (_, true) => Existing::Replace,
            (true, false) => Existing::Redefine,
            (false, false) => Existing::Refuse,
        }
    }
}

#[derive(Debug)]
enum Failure {
    Usage(String),
    Failed(String),
}

fn failed(e: impl std::fmt::Display) -> Failure {
    Failure::Failed(e.to_string())
}

pub fn main() -> ExitCode {
    // The package build writes the man pages and completions from this very definition.
    if let Some(code) = uvmm_docgen::generate_if_asked(<Args as clap::CommandFactory>::command) {
        return code;
    }
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("uvmm-restore: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(m)) => {
            eprintln!("uvmm-restore: {m}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Args) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(failed)?;
    // uvmmd knows its own backup directory: ask it, unless told to read one.
    if args.dir.is_none() && !args.direct {
        if let Some(c) = daemon(&rt, &args.socket) {
            return match &args.restore {
                None => list_via_daemon(&rt, &c, &args),
                Some(vm) => restore_via_daemon(&rt, &c, vm, &args),
            };
        }
    }
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => configured_dir(&args.config, args.config != Path::new(UVMMD_CONFIG))
            .map_err(failed)?
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR)),
    };
    if args.dir.is_none() && !args.direct {
        eprintln!(
            "uvmm-restore: uvmmd does not answer at {}: reading the backups in {}",
            args.socket.display(),
            dir.display()
        );
    }
    let store = BackupStore::new(&dir);
    if !dir.is_dir() {
        let hint = if dir == Path::new(DEFAULT_DIR) && Path::new(OLD_UVMM_DIR).is_dir() {
            format!(" (the original UVMM's backups are in {OLD_UVMM_DIR}: use --dir)")
        } else {
            String::new()
        };
        return Err(failed(format!(
            "backup directory {} does not exist{hint}",
            dir.display()
        )));
    }
    match &args.restore {
        None => list(&store, &args),
        Some(vm) => restore_vm(&rt, &store, vm, &args),
    }
}

/// `backup_dir` of uvmmd's configuration file. A missing default file means "not set";
/// a file given with --config must exist and parse.
fn configured_dir(config: &Path, explicit: bool) -> Result<Option<PathBuf>, String> {
    let text = match std::fs::read_to_string(config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", config.display())),
    };
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", config.display()))?;
    match table.get("backup_dir") {
        None => Ok(None),
        Some(toml::Value::String(d)) => Ok(Some(PathBuf::from(d))),
        Some(_) => Err(format!(
            "{}: backup_dir must be a path (a string)",
            config.display()
        )),
    }
}

fn api_failure(e: ClientError) -> Failure {
    match e {
        ClientError::Api { body, .. } => Failure::Failed(body.error.message),
        other => failed(other),
    }
}

fn print_list(all: &[BackupSummary], args: &Args) {
    if args.json {
        println!("{}", serde_json::to_string_pretty(all).unwrap_or_default());
    } else if all.is_empty() {
        println!(
            "no backups{}",
            args.pattern
                .as_ref()
                .map(|p| format!(" matching {p}"))
                .unwrap_or_default()
        );
    } else {
        print!("{}", uvmm_cli::table::backup_table(all));
    }
}

fn list_via_daemon(rt: &tokio::runtime::Runtime, c: &Client, args: &Args) -> Result<(), Failure> {
    let path = paths::backups(args.pattern.as_deref());
    let all: Vec<BackupSummary> = rt
        .block_on(c.call(Method::GET, &path, None))
        .map_err(api_failure)?;
    print_list(&all, args);
    Ok(())
}

/// Restore from uvmmd's own store: the daemon reads the version and runs the checks.
fn restore_via_daemon(
    rt: &tokio::runtime::Runtime,
    c: &Client,
    vm: &str,
    args: &Args,
) -> Result<(), Failure> {
    let detail: BackupDetail = rt
        .block_on(c.call(Method::GET, &paths::backup(vm), None))
        .map_err(api_failure)?;
    let version = args.version.unwrap_or(detail.summary.latest);
    let mut body = json!({
        "backup": detail.summary.uuid,
        "version": version,
        "force": args.force,
        "replace": args.replace,
    });
    if let Some(h) = &args.host {
        body["host"] = json!(h);
    }
    let report: RestoreReport = rt
        .block_on(c.call(Method::POST, &paths::restore(), Some(&body)))
        .map_err(api_failure)?;
    let hint = start_hint(rt, c, &report);
    print_report(&report, version, &hint, args);
    Ok(())
}

fn start_hint(rt: &tokio::runtime::Runtime, c: &Client, report: &RestoreReport) -> String {
    let host_id = rt
        .block_on(c.call::<serde_json::Value>(Method::GET, &paths::host(&report.host), None))
        .ok()
        .and_then(|h| h["id"].as_str().map(str::to_string))
        .unwrap_or_else(|| report.host.clone());
    uvmm_cli::shell::command(&["uvmm", "vm", "start", &report.name, "--host", &host_id])
}

fn print_report(report: &RestoreReport, version: u32, start_hint: &str, args: &Args) {
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "restored": report, "version": version, "start": start_hint })
            )
            .unwrap_or_default()
        );
    } else {
        for w in &report.warnings {
            println!("warning: {w}");
        }
        println!(
            "restored {} ({}) version {version} on {}",
            report.name, report.uuid, report.host
        );
        println!("start it with: {start_hint}");
    }
}

fn list(store: &BackupStore, args: &Args) -> Result<(), Failure> {
    let mut all: Vec<BackupSummary> = store.list().map_err(failed)?;
    if let Some(p) = &args.pattern {
        all.retain(|b| uvmm_model::glob::matches(p, &b.name));
    }
    print_list(&all, args);
    Ok(())
}

/// Is uvmmd answering on its socket?
fn daemon(rt: &tokio::runtime::Runtime, socket: &std::path::Path) -> Option<Client> {
    let c = Client::new(Target::Unix(socket.to_path_buf()));
    let up = rt.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            c.call::<VersionInfo>(Method::GET, &paths::version(), None),
        )
        .await
    });
    matches!(up, Ok(Ok(_))).then_some(c)
}

/// Does uvmmd keep this very version (same time and size), i.e. is the directory its own?
fn same_version_in_daemon(
    rt: &tokio::runtime::Runtime,
    c: &Client,
    store: &BackupStore,
    uuid: &str,
    version: u32,
) -> bool {
    let Ok(local) = store.versions(uuid) else {
        return false;
    };
    let Some(mine) = local.iter().find(|m| m.version == version) else {
        return false;
    };
    let theirs: Result<BackupDetail, _> =
        rt.block_on(c.call(Method::GET, &paths::backup(uuid), None));
    theirs.is_ok_and(|d| {
        d.versions
            .iter()
            .any(|m| m.version == version && m.time == mine.time && m.xml_bytes == mine.xml_bytes)
    })
}

/// Restore from a directory's backup: through uvmmd when it answers (by reference when
/// the version is uvmmd's own, else with the XML), otherwise directly through libvirt.
fn restore_vm(
    rt: &tokio::runtime::Runtime,
    store: &BackupStore,
    vm: &str,
    args: &Args,
) -> Result<(), Failure> {
    let summary = store.find(vm).map_err(failed)?;
    let version = args.version.unwrap_or(summary.latest);
    let xml = store.version_xml(&summary.uuid, version).map_err(failed)?;
    let host = args
        .host
        .clone()
        .or_else(|| Some(summary.host.clone()).filter(|h| !h.is_empty()))
        .ok_or_else(|| Failure::Usage(format!("the backup of {} does not say which host it came from (original UVMM layout): give --host URI", summary.name)))?;
    let via_daemon = if args.direct {
        None
    } else {
        daemon(rt, &args.socket)
    };
    let (report, start_hint) = match via_daemon {
        Some(c) => {
            // A version uvmmd keeps itself (the directory is uvmmd's) is restored by
            // reference: uvmmd trusts it as the definition libvirt had. A definition from
            // elsewhere (another directory, the original UVMM's layout) is sent along and
            // passes the checks of a client's definition (docs/security.md).
            let mut body = if same_version_in_daemon(rt, &c, store, &summary.uuid, version) {
                json!({ "backup": summary.uuid, "version": version })
            } else {
                json!({ "xml": xml })
            };
            body["host"] = json!(host);
            body["force"] = json!(args.force);
            body["replace"] = json!(args.replace);
            let report: RestoreReport = rt
                .block_on(c.call(Method::POST, &paths::restore(), Some(&body)))
                .map_err(api_failure)?;
            let hint = start_hint(rt, &c, &report);
            (report, hint)
        }
        None => {
            if !args.direct {
                eprintln!("uvmm-restore: uvmmd is not reachable at {}; restoring directly through libvirt", args.socket.display());
            }
            let parsed = HostUri::parse(&host).map_err(|e| {
                Failure::Usage(format!(
                    "--host: {e} (without uvmmd the host must be a libvirt URI)"
                ))
            })?;
            let hv = LibvirtConnector::default()
                .connect(&parsed.uri, Arc::new(|_| {}))
                .map_err(|e| failed(format!("cannot connect to {host}: {e}")))?;
            let mut report = restore(hv.as_ref(), &xml, args.existing(), parsed.is_local())
                .map_err(|e| match e {
                    RestoreError::Refused(_)
                    | RestoreError::Invalid(_)
                    | RestoreError::Libvirt(_) => failed(e),
                })?;
            // Record the restore like uvmmd would (not in the original UVMM's directory).
            if !store.is_old_layout() {
                let def = uvmm_model::domain::parse_domain(&xml).ok();
                let input = VersionInput {
                    host: parsed.uri.clone(),
                    name: report.name.clone(),
                    cause: uvmm_backup::Cause::Restore,
                    // Who ran uvmm-restore, as uvmmd records its callers.
                    user: Some(local_user()),
                    hypervisor: def
                        .as_ref()
                        .map(|d| d.domain_type.clone())
                        .unwrap_or_default(),
                    os_type: def.as_ref().map(|d| d.os_type.clone()).unwrap_or_default(),
                    ..VersionInput::default()
                };
                if let Err(e) = store.save(&report.uuid, &xml, &input) {
                    report.warnings.push(format!(
                        "the restore could not be recorded in the backup store: {e}"
                    ));
                }
            }
            let hint =
                uvmm_cli::shell::command(&["virsh", "-c", &parsed.uri, "start", &report.name]);
            (report, hint)
        }
    };
    print_report(&report, version, &start_hint, args);
    Ok(())
}

/// The account running this program (getpwuid_r), or `uid:N`.
fn local_user() -> String {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => format!("uid:{uid}"),
    }
}
