//! Disk images a client names: pool volumes, paths below `[api] image_dirs`, and the
//! checks of a definition brought by a client.

use super::*;
use crate::hosts::facts::HostFacts;
use crate::ids::random_uuid;
use uvmm_libvirt::{ErrorKind, Hypervisor, VolumeInfo};
use uvmm_model::boot::INSPECT_BYTES;
use uvmm_model::change::Medium;
use uvmm_model::domain::Disk;
use uvmm_model::validate::{self};
use uvmm_model::xml;

/// Turn a volume into the disk source uvmm writes: file and block volumes by path,
/// network volumes (e.g. iscsi-direct) by pool reference.
pub(crate) fn source_of(vol: &VolumeInfo) -> Medium {
    let (kind, source) = match (vol.def.kind.as_str(), &vol.def.path) {
        ("block", Some(p)) => ("block", p.clone()),
        ("file", Some(p)) => ("file", p.clone()),
        _ => ("volume", format!("{}/{}", vol.pool, vol.def.name)),
    };
    Medium {
        kind: kind.into(),
        source,
        format: vol.def.format.clone(),
    }
}

/// An image a client named, and what the user should know about it.
pub(crate) struct Image {
    pub medium: Medium,
    /// E.g. a path on a remote host that could not be verified.
    pub warning: Option<String>,
}

impl From<Medium> for Image {
    fn from(medium: Medium) -> Image {
        Image {
            medium,
            warning: None,
        }
    }
}

/// Check a path a client gave for an image or block device. A volume of one of the
/// host's pools is returned as such. Any other path is accepted only below `[api]
/// image_dirs`, and is refused *before* anything looks at it: uvmmd runs as root, and an
/// answer that differed between an existing and a missing file in a root-only directory
/// would tell a client what is there (and attaching any host file to a VM would give it
/// the file). On the local host the resolved path (symbolic links followed) must stay
/// below those directories as well.
pub(crate) fn client_path(
    hv: &dyn Hypervisor,
    facts: &HostFacts,
    path: &str,
) -> Result<Option<VolumeInfo>, VmError> {
    validate::host_path(path)?;
    if let Some(vol) = hv.volume_by_path(path)? {
        return Ok(Some(vol));
    }
    if !uvmm_model::hosts::path_under(path, &facts.image_dirs) {
        return Err(VmError::refused(format!(
            "{path} is not a volume of a storage pool on this host; paths outside pools are \
             accepted only below the directories in [api] image_dirs ({})",
            if facts.image_dirs.is_empty() {
                "none configured".to_string()
            } else {
                facts.image_dirs.join(", ")
            }
        )));
    }
    if facts.local {
        if let Ok(real) = std::fs::canonicalize(path) {
            if !uvmm_model::hosts::path_under(&real.to_string_lossy(), &facts.image_dirs) {
                return Err(VmError::refused(format!(
                    "{path} leads outside the directories in [api] image_dirs"
                )));
            }
        }
    }
    Ok(None)
}

/// The host-facing checks of a definition a client wants restored (see
/// `uvmm_model::foreign`): nothing that runs programs or opens host paths beyond pool
/// volumes and `[api] image_dirs`.
pub fn check_client_definition(
    hv: &dyn Hypervisor,
    facts: &HostFacts,
    xml_text: &str,
) -> Result<(), VmError> {
    let tree = xml::parse_root(xml_text, "domain")
        .map_err(|e| bad(format!("not a domain definition: {e}")))?;
    let emulators: Vec<String> = facts
        .caps
        .guests
        .iter()
        .filter_map(|g| g.emulator.clone())
        .collect();
    let mut check = uvmm_model::foreign::check(&tree, &emulators);
    for (what, path) in &check.paths {
        if let Err(e) = client_path(hv, facts, path) {
            check.refused.push(format!("{what}: {e}"));
        }
    }
    if check.refused.is_empty() {
        return Ok(());
    }
    Err(VmError::refused(format!(
        "this definition cannot be restored through the API:\n  - {}\n(an administrator can restore it with uvmm-restore --direct)",
        check.refused.join("\n  - ")
    )))
}

/// Resolve an image reference (`/path` or `POOL/VOLUME`).
pub(crate) fn resolve_image(
    hv: &dyn Hypervisor,
    facts: &HostFacts,
    spec: &str,
) -> Result<Image, VmError> {
    let path = |kind: &str, format: Option<&str>| Medium {
        kind: kind.into(),
        source: spec.into(),
        format: format.map(str::to_string),
    };
    if spec.starts_with('/') {
        if let Some(vol) = client_path(hv, facts, spec)? {
            return Ok(source_of(&vol).into());
        }
        if facts.local {
            let meta = std::fs::metadata(spec).map_err(|_| {
                VmError::not_found(format!(
                    "image {spec} does not exist on this host (it is neither a volume of a storage pool nor a file)"
                ))
            })?;
            if !meta.file_type().is_file() {
                return Ok(path("block", Some("raw")).into());
            }
            // Outside a pool nobody records the format; the header tells qcow2 from raw.
            let format = if has_qcow2_magic(std::path::Path::new(spec)) {
                "qcow2"
            } else {
                "raw"
            };
            return Ok(path("file", Some(format)).into());
        }
        return Ok(Image {
            medium: path("file", None),
            warning: Some(format!("{spec} is outside every storage pool of this remote host and could not be verified")),
        });
    }
    let (pool, name) = spec.split_once('/').ok_or_else(|| {
        bad(format!(
            "'{spec}' is neither an absolute path nor POOL/VOLUME"
        ))
    })?;
    validate::object_name("pool", pool)?;
    validate::volume_name(name)?;
    let vols = hv.volumes(pool).map_err(|e| match e.kind {
        ErrorKind::NotFound => VmError::not_found(format!("no storage pool '{pool}' on this host")),
        _ => VmError::from(e),
    })?;
    let vol = vols
        .iter()
        .find(|v| v.def.name == name)
        .ok_or_else(|| VmError::not_found(format!("no volume '{name}' in pool '{pool}'")))?;
    Ok(source_of(vol).into())
}

pub(crate) fn has_qcow2_magic(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"QFI\xfb"
}

/// Read the start of a disk image for the pygrub preflight.
pub(crate) fn inspect(
    hv: &dyn Hypervisor,
    facts: &HostFacts,
    disk: &Disk,
) -> Result<Vec<u8>, String> {
    let Some(src) = &disk.source else {
        return Err("the drive has no image".into());
    };
    let path = match disk.kind.as_str() {
        "file" | "block" => src.clone(),
        _ => return Err(format!("{} images cannot be inspected", disk.kind)),
    };
    if disk.format.as_deref() == Some("qcow2") {
        if !facts.local {
            return Err(
                "qcow2 images can only be inspected on the local host (with qemu-img)".into(),
            );
        }
        if !std::path::Path::new(&path).exists() {
            return Err(format!("{path} does not exist"));
        }
        let name = random_uuid().map_err(|e| e.to_string())?;
        let tmp = std::env::temp_dir().join(format!("uvmm-inspect-{name}.raw"));
        let out = std::process::Command::new("qemu-img")
            .args([
                "dd",
                "-f",
                "qcow2",
                "-O",
                "raw",
                &format!("bs={INSPECT_BYTES}"),
                "count=1",
            ])
            .arg(format!("if={path}"))
            .arg(format!("of={}", tmp.display()))
            .output()
            .map_err(|e| {
                format!("qemu-img (Debian qemu-utils) is needed to read qcow2 images: {e}")
            })?;
        let data = std::fs::read(&tmp);
        let _ = std::fs::remove_file(&tmp);
        if !out.status.success() {
            return Err(format!(
                "qemu-img could not read {path}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        return data.map_err(|e| e.to_string());
    }
    if facts.local {
        if let Ok(mut f) = std::fs::File::open(&path) {
            use std::io::Read;
            let mut buf = Vec::new();
            let _ = f.by_ref().take(INSPECT_BYTES as u64).read_to_end(&mut buf);
            return Ok(buf);
        }
    }
    match hv.volume_by_path(&path) {
        Ok(Some(v)) => hv
            .read_volume(&v.pool, &v.def.name, INSPECT_BYTES as u64)
            .map_err(|e| format!("reading it through libvirt failed: {e}")),
        _ if facts.local => Err(format!("{path} does not exist or is not readable")),
        _ => Err(format!(
            "{path} is outside every storage pool of this remote host"
        )),
    }
}
