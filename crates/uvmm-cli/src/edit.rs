//! `uvmm vm create|set|delete|xml|disk|cdrom|nic` and `uvmm profile`.

use crate::{print_json, resolve, vm_detail_text, VmRef};
use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};
use uvmm_api::*;
use uvmm_cli::client::{Client, ClientError};
use uvmm_cli::paths;
use uvmm_cli::table::Table;
use uvmm_model::units::parse_size;

fn usage(msg: impl Into<String>) -> ClientError {
    ClientError::Usage(msg.into())
}

fn size(what: &str, s: &str) -> Result<u64, ClientError> {
    parse_size(s).map_err(|e| usage(format!("{what}: {e}")))
}

/// `pool=P,size=20GiB[,format=qcow2][,name=N][,preallocate]`
fn parse_new_volume(spec: &str) -> Result<NewVolume, ClientError> {
    let mut pool = None;
    let mut size_bytes = None;
    let mut format = None;
    let mut name = None;
    let mut preallocate = false;
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some(("pool", v)) => pool = Some(v.to_string()),
            Some(("size", v)) => size_bytes = Some(size("--disk size", v)?),
            Some(("format", v)) => format = Some(v.to_string()),
            Some(("name", v)) => name = Some(v.to_string()),
            None if part == "preallocate" => preallocate = true,
            _ => return Err(usage(format!("--disk '{spec}': unknown part '{part}' (expected pool=, size=, format=, name=, preallocate)"))),
        }
    }
    Ok(NewVolume {
        pool: pool.ok_or_else(|| usage(format!("--disk '{spec}' needs pool=")))?,
        size_bytes: size_bytes.ok_or_else(|| usage(format!("--disk '{spec}' needs size=")))?,
        format,
        name,
        preallocate,
    })
}

fn yes_no(key: &str, v: &str) -> Result<bool, ClientError> {
    match v {
        "yes" | "on" | "true" | "1" => Ok(true),
        "no" | "off" | "false" | "0" => Ok(false),
        _ => Err(usage(format!("{key}={v}: expected yes or no"))),
    }
}

/// `key=value` pairs of `uvmm vm set` as a patch.
pub fn parse_settings(pairs: &[String]) -> Result<VmPatch, ClientError> {
    let mut p = VmPatch::default();
    if pairs.is_empty() {
        return Err(usage("nothing to set: give key=value pairs (memory, vcpus, description, contact, os, autostart, rtc, cpu_model, boot, vnc, keymap, vnc_listen, vnc_password, type)"));
    }
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| usage(format!("'{pair}' is not key=value")))?;
        match k {
            "memory" => p.memory_kib = Some(size("memory", v)? / 1024),
            "vcpus" => p.vcpus = Some(v.parse().map_err(|_| usage(format!("vcpus={v}: not a number")))?),
            "description" => p.description = Some(v.to_string()),
            "contact" => p.contact = Some(v.to_string()),
            "os" => p.os = Some(v.to_string()),
            "autostart" => p.autostart = Some(yes_no(k, v)?),
            "rtc" => p.rtc = Some(v.to_string()),
            "cpu_model" => p.cpu_model = Some(v.to_string()),
            "boot" => p.boot = Some(v.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()),
            "vnc" => p.vnc = Some(yes_no(k, v)?),
            "keymap" | "vnc_keymap" => p.vnc_keymap = Some(v.to_string()),
            "vnc_listen" => p.vnc_listen = Some(v.to_string()),
            "vnc_password" => p.vnc_password = Some(v.to_string()),
            "type" | "domain_type" => p.domain_type = Some(v.to_string()),
            other => return Err(usage(format!("unknown key '{other}' (known: memory, vcpus, description, contact, os, autostart, rtc, cpu_model, boot, vnc, keymap, vnc_listen, vnc_password, type)"))),
        }
    }
    Ok(p)
}

#[derive(Debug, Subcommand)]
pub enum EditCmd {
    /// Create a VM from a profile (see `uvmm profile list`).
    Create {
        #[arg(long)]
        host: String,
        #[arg(long)]
        profile: String,
        #[arg(long)]
        name: String,
        /// Memory, e.g. 2GiB (default: the profile's).
        #[arg(long)]
        memory: Option<String>,
        #[arg(long)]
        vcpus: Option<u32>,
        /// A disk to create: pool=P,size=20GiB[,format=qcow2][,name=N][,preallocate]. Repeat
        /// for more disks; default: one disk of the profile's size in pool "default".
        #[arg(long = "disk")]
        disks: Vec<String>,
        /// Create no disk at all.
        #[arg(long, conflicts_with = "disks")]
        no_disk: bool,
        /// Installation medium: a path on the host or POOL/VOLUME.
        #[arg(long)]
        cdrom: Option<String>,
        /// network=NAME or bridge=NAME; repeat for more interfaces (default: the profile's).
        #[arg(long = "network")]
        networks: Vec<String>,
        /// Create the VM without a network interface.
        #[arg(long, conflicts_with = "networks")]
        no_network: bool,
        /// Force a domain type, e.g. qemu for emulation (TCG).
        #[arg(long = "type")]
        domain_type: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        contact: Option<String>,
        #[arg(long)]
        os: Option<String>,
        #[arg(long)]
        autostart: bool,
        /// Start the VM once it is created. If it does not start, the command fails (exit
        /// 1) and says why; the VM stays created, shut off.
        #[arg(long)]
        start: bool,
    },
    /// Change settings: memory=2GiB vcpus=2 description=... contact=... os=... autostart=yes
    /// rtc=localtime cpu_model=host-model boot=hd,cdrom vnc=on keymap=de vnc_password=...
    /// type=qemu (or kvm; shut-off VMs only: QEMU emulation where KVM does not work)
    Set {
        #[command(flatten)]
        vm: VmRef,
        /// key=value pairs.
        #[arg(required = true)]
        settings: Vec<String>,
        /// Refuse the change if the VM changed since this ETag (from `vm show --json`).
        #[arg(long)]
        if_match: Option<String>,
    },
    /// Delete a VM (it must be shut off). Images are kept unless --volumes says otherwise.
    Delete {
        #[command(flatten)]
        vm: VmRef,
        /// none (default), all (every deletable disk image), or PATH,PATH...
        #[arg(long, default_value = "none")]
        volumes: String,
    },
    /// Print the libvirt XML (the running definition; --inactive for the persistent one).
    Xml {
        #[command(flatten)]
        vm: VmRef,
        #[arg(long)]
        inactive: bool,
    },
    /// Drives: list, add, remove, make one the boot medium.
    #[command(subcommand)]
    Disk(DiskCmd),
    /// Insert or eject CD-ROM media, also while the VM runs.
    #[command(subcommand)]
    Cdrom(CdromCmd),
    /// Network interfaces.
    #[command(subcommand)]
    Nic(NicCmd),
}

#[derive(Debug, Subcommand)]
pub enum DiskCmd {
    /// List the VM's drives.
    List(VmRef),
    /// Add a drive: a new volume (pool=P,size=S[,format=F][,name=N]), an existing volume
    /// (--volume POOL/VOL), a host block device (--block PATH) or a CD-ROM (--cdrom [IMAGE]).
    Add {
        #[command(flatten)]
        vm: VmRef,
        /// New volume: pool=P,size=10GiB[,format=qcow2][,name=N][,preallocate]
        new: Option<String>,
        #[arg(long, conflicts_with_all = ["new", "block", "cdrom"])]
        volume: Option<String>,
        #[arg(long, conflicts_with_all = ["new", "cdrom"])]
        block: Option<String>,
        /// Add a CD-ROM drive, empty or with IMAGE.
        #[arg(long, num_args = 0..=1, default_missing_value = "", conflicts_with = "new")]
        cdrom: Option<String>,
        /// virtio, sata, ide, scsi, xen (default: like the VM's other drives).
        #[arg(long)]
        bus: Option<String>,
        /// Hot-plug: also attach it to (or detach it from) the running VM now.
        #[arg(long)]
        live: bool,
    },
    /// Detach a drive (by target, e.g. vdb); --delete-volume also deletes its volume when it
    /// is in a writable pool and no other VM uses it.
    Remove {
        #[command(flatten)]
        vm: VmRef,
        target: String,
        #[arg(long)]
        delete_volume: bool,
        /// Hot-plug: also attach it to (or detach it from) the running VM now.
        #[arg(long)]
        live: bool,
    },
    /// Set as boot medium: Xen PV moves the drive first (VM shut off; checks the image for
    /// pygrub), HVM boots from it first.
    Boot {
        #[command(flatten)]
        vm: VmRef,
        target: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CdromCmd {
    /// Insert IMAGE (a path on the host or POOL/VOLUME).
    Insert {
        #[command(flatten)]
        vm: VmRef,
        image: String,
        /// The drive (default: the first CD-ROM drive).
        #[arg(long)]
        drive: Option<String>,
    },
    /// Eject the medium.
    Eject {
        #[command(flatten)]
        vm: VmRef,
        #[arg(long)]
        drive: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NicCmd {
    /// Add an interface: network=NAME, bridge=NAME or direct=DEV.
    Add {
        #[command(flatten)]
        vm: VmRef,
        source: String,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        mac: Option<String>,
        /// Hot-plug: also attach it to (or detach it from) the running VM now.
        #[arg(long)]
        live: bool,
    },
    /// Remove the interface with this MAC address.
    Remove {
        #[command(flatten)]
        vm: VmRef,
        mac: String,
        /// Hot-plug: also attach it to (or detach it from) the running VM now.
        #[arg(long)]
        live: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfileCmd {
    /// List the VM profiles.
    List,
    /// Show one profile.
    Show { name: String },
}

/// How uvmmd words a failed `start` of `vm create` (the warning's prefix).
const START_FAILED: &str = "the VM was created but could not be started";

fn print_change(resp: &VmChangeResponse, json: bool) {
    if json {
        print_json(resp);
        return;
    }
    for n in &resp.notes {
        println!("note: {n}");
    }
    for w in &resp.warnings {
        println!("warning: {w}");
    }
    print!("{}", vm_detail_text(&resp.vm));
}

fn print_delete(resp: &DeleteResponse, json: bool) {
    if json {
        print_json(resp);
        return;
    }
    for d in &resp.deleted {
        println!("deleted: {d}");
    }
    for k in &resp.kept {
        println!("kept:    {} ({})", k.path, k.reason);
    }
    for w in &resp.warnings {
        println!("warning: {w}");
    }
}

async fn first_cdrom(c: &Client, uuid: &str, host: &str) -> Result<String, ClientError> {
    let d: VmDetail = c
        .call(Method::GET, &paths::vm(uuid, Some(host)), None)
        .await?;
    d.disks
        .iter()
        .find(|d| d.device == "cdrom")
        .map(|d| d.target.clone())
        .ok_or_else(|| {
            usage(format!(
                "{} has no CD-ROM drive; add one with `uvmm vm disk add {} --cdrom`",
                d.summary.name, d.summary.name
            ))
        })
}

pub async fn run(c: &Client, cmd: EditCmd, json: bool) -> Result<(), ClientError> {
    match cmd {
        EditCmd::Create {
            host,
            profile,
            name,
            memory,
            vcpus,
            disks,
            no_disk,
            cdrom,
            networks,
            no_network,
            domain_type,
            description,
            contact,
            os,
            autostart,
            start,
        } => {
            let disks = if no_disk {
                Some(vec![])
            } else if disks.is_empty() {
                None
            } else {
                Some(
                    disks
                        .iter()
                        .map(|d| parse_new_volume(d))
                        .collect::<Result<Vec<_>, _>>()?,
                )
            };
            let req = CreateVmRequest {
                host,
                profile,
                name,
                memory_kib: memory
                    .map(|m| size("--memory", &m).map(|b| b / 1024))
                    .transpose()?,
                vcpus,
                disks,
                cdrom,
                networks: if no_network {
                    Some(vec![])
                } else {
                    (!networks.is_empty()).then_some(networks)
                },
                domain_type,
                description,
                contact,
                os,
                autostart,
                start,
            };
            let body = serde_json::to_value(&req).map_err(|e| usage(e.to_string()))?;
            let resp: VmChangeResponse =
                c.call(Method::POST, &paths::new_vm(), Some(&body)).await?;
            if !start || resp.vm.summary.state.is_active() {
                print_change(&resp, json);
                return Ok(());
            }
            // Created, but --start did not get it running: not a success. The answer is
            // shown (the VM exists), the start failure becomes the error, said once.
            let (failed, rest): (Vec<&String>, Vec<&String>) = resp
                .warnings
                .iter()
                .partition(|w| w.starts_with(START_FAILED));
            let why = failed
                .first()
                .map(|w| {
                    w.trim_start_matches(START_FAILED)
                        .trim_start_matches(':')
                        .trim()
                })
                .unwrap_or("it is not running")
                .to_string();
            if json {
                print_change(&resp, json);
            } else {
                let mut shown = resp.clone();
                shown.warnings = rest.into_iter().cloned().collect();
                print_change(&shown, json);
            }
            let vm = &resp.vm.summary;
            return Err(ClientError::Failed(format!(
                "VM {} was created on {} but could not be started: {why}. It stays defined \
                 (shut off): fix the cause, then `uvmm vm start {} --host {}`, or remove it \
                 with `uvmm vm delete`",
                vm.name, vm.host_id, vm.name, vm.host_id
            )));
        }
        EditCmd::Set {
            vm,
            settings,
            if_match,
        } => {
            let patch = parse_settings(&settings)?;
            let (uuid, host) = resolve(c, &vm).await?;
            let body = serde_json::to_value(&patch).map_err(|e| usage(e.to_string()))?;
            let resp: VmChangeResponse = c
                .call_with(
                    Method::PATCH,
                    &paths::vm(&uuid, Some(&host)),
                    Some(&body),
                    if_match.as_deref(),
                )
                .await?;
            print_change(&resp, json);
        }
        EditCmd::Delete { vm, volumes } => {
            let (uuid, host) = resolve(c, &vm).await?;
            let path = paths::vm_delete(&uuid, Some(&host), &volumes);
            let resp: DeleteResponse = c.call(Method::DELETE, &path, None).await?;
            if !json {
                println!("deleted VM {} ({})", resp.name, resp.uuid);
            }
            print_delete(&resp, json);
        }
        EditCmd::Xml { vm, inactive } => {
            let (uuid, host) = resolve(c, &vm).await?;
            let path = paths::vm_xml(&uuid, Some(&host), inactive);
            let xml = c.call_text(Method::GET, &path).await?;
            if json {
                print_json(&json!({ "uuid": uuid, "host": host, "xml": xml }));
            } else {
                println!("{xml}");
            }
        }
        EditCmd::Disk(cmd) => match cmd {
            DiskCmd::List(vm) => {
                let (uuid, host) = resolve(c, &vm).await?;
                let d: VmDetail = c
                    .call(Method::GET, &paths::vm(&uuid, Some(&host)), None)
                    .await?;
                if json {
                    print_json(&crate::pending::disks_json(&d.disks, d.pending.as_ref()));
                } else {
                    print!(
                        "{}",
                        crate::pending::disk_table(&d.disks, d.pending.as_ref(), "")
                    );
                }
            }
            DiskCmd::Add {
                vm,
                new,
                volume,
                block,
                cdrom,
                bus,
                live,
            } => {
                let source = match (new, volume, block, cdrom) {
                    (Some(spec), None, None, None) => {
                        let v = parse_new_volume(&spec)?;
                        DiskSource::New { pool: v.pool, size_bytes: v.size_bytes, format: v.format, name: v.name, preallocate: v.preallocate }
                    }
                    (None, Some(volume), None, None) => DiskSource::Volume { volume },
                    (None, None, Some(path), None) => DiskSource::Block { path },
                    (None, None, None, Some(image)) => DiskSource::Cdrom { source: (!image.is_empty()).then_some(image) },
                    _ => return Err(usage("say what to add: pool=P,size=S | --volume POOL/VOL | --block PATH | --cdrom [IMAGE]")),
                };
                let (uuid, host) = resolve(c, &vm).await?;
                let body = serde_json::to_value(DiskAddRequest { source, bus, live })
                    .map_err(|e| usage(e.to_string()))?;
                let resp: VmChangeResponse = c
                    .call(
                        Method::POST,
                        &paths::vm_disks(&uuid, Some(&host)),
                        Some(&body),
                    )
                    .await?;
                print_change(&resp, json);
            }
            DiskCmd::Remove {
                vm,
                target,
                delete_volume,
                live,
            } => {
                let (uuid, host) = resolve(c, &vm).await?;
                let path = paths::vm_disk(&uuid, &target, Some(&host), delete_volume, live);
                let resp: DeleteResponse = c.call(Method::DELETE, &path, None).await?;
                if !json {
                    println!("detached {target} from {}", resp.name);
                }
                print_delete(&resp, json);
            }
            DiskCmd::Boot { vm, target } => {
                let (uuid, host) = resolve(c, &vm).await?;
                let resp: VmChangeResponse = c
                    .call(
                        Method::POST,
                        &paths::vm_disk_boot(&uuid, &target, Some(&host)),
                        None,
                    )
                    .await?;
                print_change(&resp, json);
            }
        },
        EditCmd::Cdrom(cmd) => {
            let (vm, drive, source) = match cmd {
                CdromCmd::Insert { vm, image, drive } => (vm, drive, Some(image)),
                CdromCmd::Eject { vm, drive } => (vm, drive, None),
            };
            let (uuid, host) = resolve(c, &vm).await?;
            let drive = match drive {
                Some(d) => d,
                None => first_cdrom(c, &uuid, &host).await?,
            };
            let body = json!({ "source": source });
            let resp: VmChangeResponse = c
                .call(
                    Method::PUT,
                    &paths::vm_disk_media(&uuid, &drive, Some(&host)),
                    Some(&body),
                )
                .await?;
            print_change(&resp, json);
        }
        EditCmd::Nic(cmd) => match cmd {
            NicCmd::Add {
                vm,
                source,
                model,
                mac,
                live,
            } => {
                let (uuid, host) = resolve(c, &vm).await?;
                let body = serde_json::to_value(NicAddRequest {
                    source,
                    model,
                    mac,
                    live,
                })
                .map_err(|e| usage(e.to_string()))?;
                let resp: VmChangeResponse = c
                    .call(
                        Method::POST,
                        &paths::vm_nics(&uuid, Some(&host)),
                        Some(&body),
                    )
                    .await?;
                print_change(&resp, json);
            }
            NicCmd::Remove { vm, mac, live } => {
                let (uuid, host) = resolve(c, &vm).await?;
                let resp: VmChangeResponse = c
                    .call(
                        Method::DELETE,
                        &paths::vm_nic(&uuid, &mac, Some(&host), live),
                        None,
                    )
                    .await?;
                print_change(&resp, json);
            }
        },
    }
    Ok(())
}

pub async fn run_profile(c: &Client, cmd: ProfileCmd, json: bool) -> Result<(), ClientError> {
    match cmd {
        ProfileCmd::List => {
            let profiles: Vec<Profile> = c.call(Method::GET, &paths::profiles(), None).await?;
            if json {
                print_json(&profiles);
            } else {
                let mut t = Table::new(&[
                    "NAME",
                    "TYPE",
                    "OS",
                    "VCPUS",
                    "MEMORY",
                    "DISK",
                    "DESCRIPTION",
                ]);
                for p in &profiles {
                    t.row(vec![
                        p.name.clone(),
                        p.domain_type.clone(),
                        p.os_type.clone(),
                        p.vcpus.to_string(),
                        p.memory.clone(),
                        p.disk_size
                            .clone()
                            .map(|d| format!("{d} {}", p.disk_format))
                            .unwrap_or_else(|| "-".into()),
                        p.description.clone().unwrap_or_default(),
                    ]);
                }
                print!("{}", t.render());
            }
        }
        ProfileCmd::Show { name } => {
            let p: Value = c.call(Method::GET, &paths::profile(&name), None).await?;
            if json {
                print_json(&p);
            } else if let Some(obj) = p.as_object() {
                for (k, v) in obj {
                    if !v.is_null() {
                        println!(
                            "{k:<16} {}",
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string())
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_table() {
        let p = parse_settings(&[
            "memory=2GiB".into(),
            "vcpus=2".into(),
            "autostart=yes".into(),
            "boot=hd,cdrom".into(),
            "description=a=b".into(),
            "type=qemu".into(),
        ])
        .unwrap();
        assert_eq!(p.domain_type.as_deref(), Some("qemu"));
        assert_eq!(p.memory_kib, Some(2 * 1024 * 1024));
        assert_eq!(p.vcpus, Some(2));
        assert_eq!(p.autostart, Some(true));
        assert_eq!(p.boot, Some(vec!["hd".into(), "cdrom".into()]));
        assert_eq!(p.description.as_deref(), Some("a=b"));
        for bad in [
            "memory=lots",
            "vcpus=two",
            "autostart=maybe",
            "colour=red",
            "novalue",
        ] {
            assert!(parse_settings(&[bad.to_string()]).is_err(), "{bad}");
        }
        assert!(parse_settings(&[]).is_err());
    }

    #[test]
    fn disk_specs() {
        let v =
            parse_new_volume("pool=default,size=20GiB,format=raw,name=x.img,preallocate").unwrap();
        assert_eq!(
            (
                v.pool.as_str(),
                v.size_bytes,
                v.format.as_deref(),
                v.name.as_deref(),
                v.preallocate
            ),
            ("default", 20 << 30, Some("raw"), Some("x.img"), true)
        );
        for bad in [
            "size=1G",
            "pool=p",
            "pool=p,size=big",
            "pool=p,size=1G,colour=red",
        ] {
            assert!(parse_new_volume(bad).is_err(), "{bad}");
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum BackupCmd {
    /// List backed-up VMs (also deleted ones), optionally narrowed by a name pattern.
    List { pattern: Option<String> },
    /// Show the versions of a VM's backup, or one version's XML with --version.
    Show {
        /// VM name or UUID.
        vm: String,
        #[arg(long)]
        version: Option<u32>,
    },
    /// Unified diff of two versions.
    Diff { vm: String, from: u32, to: u32 },
    /// Remove old versions by the retention policy (the latest version always stays).
    Prune,
}

pub async fn run_backup(c: &Client, cmd: BackupCmd, json: bool) -> Result<(), ClientError> {
    match cmd {
        BackupCmd::List { pattern } => {
            let path = paths::backups(pattern.as_deref());
            let list: Vec<BackupSummary> = c.call(Method::GET, &path, None).await?;
            if json {
                print_json(&list);
            } else {
                print!("{}", uvmm_cli::table::backup_table(&list));
            }
        }
        BackupCmd::Show {
            vm,
            version: Some(n),
        } => {
            let v: BackupVersion = c
                .call(Method::GET, &paths::backup_version(&vm, n), None)
                .await?;
            if json {
                print_json(&v);
            } else {
                println!("{}", v.xml);
            }
        }
        BackupCmd::Show { vm, version: None } => {
            let d: BackupDetail = c.call(Method::GET, &paths::backup(&vm), None).await?;
            if json {
                print_json(&d);
            } else {
                println!(
                    "{} ({}){}",
                    d.summary.name,
                    d.summary.uuid,
                    if d.summary.deleted { " - deleted" } else { "" }
                );
                let mut t = Table::new(&["VERSION", "TIME", "CAUSE", "HOST", "NAME", "TYPE"]);
                for v in &d.versions {
                    t.row(vec![
                        v.version.to_string(),
                        v.time.clone(),
                        v.cause.clone()
                            + if v.deleted { " (deleted)" } else { "" }
                            + &v.snapshot
                                .as_ref()
                                .map(|s| format!(" (snapshot {} {})", s.name, s.event))
                                .unwrap_or_default(),
                        v.host.clone(),
                        v.name.clone(),
                        format!("{}/{}", v.hypervisor, v.os_type),
                    ]);
                }
                print!("{}", t.render());
            }
        }
        BackupCmd::Diff { vm, from, to } => {
            let diff = c
                .call_text(Method::GET, &paths::backup_diff(&vm, from, to))
                .await?;
            if json {
                print_json(&json!({ "vm": vm, "from": from, "to": to, "diff": diff }));
            } else {
                print!("{diff}");
            }
        }
        BackupCmd::Prune => {
            let r: PruneResponse = c.call(Method::POST, &paths::backups_prune(), None).await?;
            if json {
                print_json(&r);
            } else {
                println!("removed {} old versions", r.removed);
            }
        }
    }
    Ok(())
}
