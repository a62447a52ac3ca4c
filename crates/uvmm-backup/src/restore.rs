//! Bringing a VM back from a backup: the checks the original tool only documented, then
//! the definition. Runs against any `Hypervisor`, so uvmmd (in a host job) and
//! uvmm-restore (directly through libvirt when uvmmd is down) share it.

use uvmm_libvirt::{ErrorKind, Hypervisor, LibvirtError};
use uvmm_model::domain::{parse_domain, DomainDef};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// One line per failed check.
    #[error("restore refused:\n  - {}", .0.join("\n  - "))]
    Refused(Vec<String>),
    #[error("the backup is not a readable definition: {0}")]
    Invalid(String),
    #[error("libvirt: {0}")]
    Libvirt(#[from] LibvirtError),
}

pub use uvmm_api::RestoreReport;

fn is_pv(os: &str) -> bool {
    matches!(os, "xen" | "linux")
}

/// Check the images of `def` on the host; failures and warnings in words. Only a broken
/// connection is an error: anything libvirt says about one image (e.g. a volume it still
/// lists although its file was removed behind its back, so reading it fails) becomes that
/// drive's line in the list.
fn check_images(
    hv: &dyn Hypervisor,
    def: &DomainDef,
    local: bool,
    failures: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<(), LibvirtError> {
    for d in &def.disks {
        let Some(src) = &d.source else { continue };
        let what = format!("{} image {src} (drive {})", d.device, d.target);
        match d.kind.as_str() {
            "volume" => {
                let (pool, name) = src.split_once('/').unwrap_or(("", src));
                match hv.volumes(pool) {
                    Ok(vols) if vols.iter().any(|v| v.def.name == name) => {}
                    Ok(_) => failures.push(format!("{what} is missing on the target host")),
                    Err(e) if e.kind == ErrorKind::NotFound => {
                        failures.push(format!("{what} is missing on the target host"))
                    }
                    Err(e) if e.kind == ErrorKind::Connection => return Err(e),
                    Err(e) => failures.push(format!(
                        "{what} could not be checked on the target host: {}",
                        e.message
                    )),
                }
            }
            "file" | "block" => {
                let unreadable = match hv.volume_by_path(src) {
                    Ok(Some(_)) => continue,
                    Ok(None) => None,
                    Err(e) if e.kind == ErrorKind::Connection => return Err(e),
                    Err(e) => Some(e.message),
                };
                if local {
                    if !std::path::Path::new(src).exists() {
                        failures.push(format!("{what} does not exist on the target host"));
                    } else if let Some(m) = unreadable {
                        warnings.push(format!("{what} exists, but libvirt cannot read it: {m}"));
                    }
                } else if let Some(m) = unreadable {
                    failures.push(format!("{what} cannot be read on the target host: {m}"));
                } else {
                    warnings.push(format!("{what} is outside every storage pool of the remote target host and could not be verified"));
                }
            }
            other => warnings.push(format!("{what} is a {other} source and was not verified")),
        }
    }
    Ok(())
}

/// How a restore treats a VM that already has the backup's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Existing {
    /// Refuse.
    #[default]
    Refuse,
    /// Redefine it when it is the same VM (same UUID); refuse a different VM.
    Redefine,
    /// Also undefine a different VM of that name (its images are kept) to make room.
    Replace,
}

/// Check a backup against the target host and define it. `local` says whether the host's
/// file system is this machine's (paths outside pools can then be checked directly).
pub fn restore(
    hv: &dyn Hypervisor,
    xml: &str,
    existing: Existing,
    local: bool,
) -> Result<RestoreReport, RestoreError> {
    let def = parse_domain(xml).map_err(|e| RestoreError::Invalid(e.to_string()))?;
    let mut failures = Vec::new();
    let mut warnings = Vec::new();

    // Same hypervisor and OS type (Xen PV is not restored on KVM and vice versa).
    let caps = hv.host_info()?.caps;
    let fits = caps.guests.iter().any(|g| {
        is_pv(&g.os_type) == is_pv(&def.os_type)
            && g.domain_types.contains(&def.domain_type)
            && def.arch.as_deref().is_none_or(|a| a == g.arch)
    });
    if !fits {
        let offered: Vec<String> = caps
            .guests
            .iter()
            .map(|g| format!("{}/{} ({})", g.os_type, g.arch, g.domain_types.join(", ")))
            .collect();
        failures.push(format!(
            "the backup is a {} {} guest{}; the target host offers {}",
            def.domain_type,
            if is_pv(&def.os_type) { "Xen PV" } else { "HVM" },
            def.arch
                .as_deref()
                .map(|a| format!(" for {a}"))
                .unwrap_or_default(),
            if offered.is_empty() {
                "nothing".into()
            } else {
                offered.join("; ")
            }
        ));
    }

    check_images(hv, &def, local, &mut failures, &mut warnings)?;

    // Who already exists with this UUID or name.
    let domains = hv.list_domains()?;
    let same_uuid = domains.iter().find(|d| d.uuid == def.uuid);
    let same_name = domains.iter().find(|d| d.name == def.name);
    if let Some(d) = same_uuid {
        if d.name != def.name {
            failures.push(format!(
                "a VM with the same UUID exists under another name ({}); rename or delete it first",
                d.name
            ));
        }
    }
    let mut replaced = None;
    if let Some(d) = same_name {
        if existing == Existing::Refuse && d.uuid == def.uuid {
            failures.push(format!(
                "a VM named {} already exists on the target host; use -f to redefine it",
                def.name
            ));
        } else if existing == Existing::Refuse {
            // -f would be refused next (it only redefines the same VM): name the way out.
            failures.push(format!(
                "a different VM named {} exists on the target host (UUID {}, the backup is \
                 {}); use --replace to undefine it (its images are kept) and restore this \
                 one in its place",
                def.name, d.uuid, def.uuid
            ));
        } else if d.uuid != def.uuid && existing != Existing::Replace {
            // Redefining would not touch that VM: it would need to be undefined, which
            // is more than -f promises.
            failures.push(format!(
                "the VM named {} on the target host is a different VM (UUID {}, the backup \
                 is {}); -f only redefines the same VM: use --replace to undefine the other \
                 one (its images are kept) and restore this one in its place",
                def.name, d.uuid, def.uuid
            ));
        } else if d.uuid != def.uuid {
            if d.state.is_active() {
                failures.push(format!(
                    "the existing VM {} (UUID {}) is running; stop it before replacing it",
                    d.name, d.uuid
                ));
            } else {
                replaced = Some(d.uuid.clone());
            }
        }
    }
    if !failures.is_empty() {
        return Err(RestoreError::Refused(failures));
    }
    if let Some(old) = &replaced {
        hv.undefine(old)?;
        warnings.push(format!(
            "the other VM named {} (UUID {old}) was undefined to make room; its images were kept",
            def.name
        ));
    }
    let uuid = hv.define(xml)?;
    Ok(RestoreReport {
        name: def.name,
        uuid,
        forced: same_name.is_some(),
        replaced,
        warnings,
        host: hv.uri().to_string(),
    })
}
