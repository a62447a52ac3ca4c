//! Creating, editing and deleting VMs, their drives and NICs. Each operation runs as one
//! job on its host's worker, so operations on one host never interleave; the ETag check
//! and the change happen in the same job.

use crate::cache::etag_of;
use crate::error::CoreError;
use crate::host::JobCtx;
use uvmm_api::{DiskSource, KeptVolume, VmPatch};
use uvmm_libvirt::{ErrorKind, Hypervisor, VolumeInfo};
use uvmm_model::boot::{
    pygrub_warning, read_partition_table, set_boot_medium, BootChange, INSPECT_BYTES,
};
use uvmm_model::caps::HostCaps;
use uvmm_model::domain::{domain_from_tree, Disk, DomainDef, Graphics, Nic, Notes};
use uvmm_model::edit::{merge, retarget_disks, set_graphics_password};
use uvmm_model::generate::{check_drive_slots, from_profile, generate, resolve, NewVm};
use uvmm_model::profile::{parse_network, Profile};
use uvmm_model::storage::{
    check_volume_size, delete_refusal, pool_is_shared, volume_xml, PoolRoom,
};
use uvmm_model::validate::{self, HostLimits};
use uvmm_model::xml;

const NEXT_BOOT: &str = "the VM is running: this change takes effect when it is next started (shut it down, then start it)";

fn bad(msg: impl Into<String>) -> CoreError {
    CoreError::BadRequest(msg.into())
}

fn invalid(e: validate::Invalid) -> CoreError {
    CoreError::BadRequest(e.0)
}

/// `validate::definition`, with what the host cannot take as 409 rather than 400.
pub fn check_definition(
    new: &uvmm_model::domain::DomainDef,
    old: Option<&uvmm_model::domain::DomainDef>,
    host: validate::HostLimits,
) -> Result<(), CoreError> {
    validate::definition_values(new, old).map_err(invalid)?;
    validate::host_limits(new, old, host).map_err(|e| CoreError::Conflict(e.0))
}

/// Random bytes from the kernel (MACs, UUIDs).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use std::io::Read;
    let mut buf = [0u8; N];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut buf);
    }
    buf
}

pub fn random_uuid() -> String {
    let mut b: [u8; 16] = random_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A locally administered-looking MAC in the hypervisor's usual range.
pub fn random_mac(domain_type: &str) -> String {
    let b: [u8; 3] = random_bytes();
    let prefix = if domain_type == "xen" {
        "00:16:3e"
    } else {
        "52:54:00"
    };
    format!("{prefix}:{:02x}:{:02x}:{:02x}", b[0] & 0x7f, b[1], b[2])
}

/// Everything a job needs to know about the host, taken from the cache beforehand.
#[derive(Clone)]
pub struct HostFacts {
    pub uri: String,
    pub host_id: String,
    pub local: bool,
    pub caps: HostCaps,
    pub limits: HostLimits,
    /// Disk sources of all VMs on this host: (path, "name@host-id").
    pub users_here: Vec<(String, String)>,
    /// Disk sources of VMs on every host (for shared pools).
    pub users_anywhere: Vec<(String, String)>,
    /// Directories below which client paths outside pools are accepted (`[api] image_dirs`).
    pub image_dirs: Vec<String>,
}

impl HostFacts {
    fn users_of(&self, path: &str, except: &str, shared: bool) -> Vec<String> {
        let list = if shared {
            &self.users_anywhere
        } else {
            &self.users_here
        };
        let mut users: Vec<String> = list
            .iter()
            .filter(|(p, who)| p == path && who != except)
            .map(|(_, who)| who.clone())
            .collect();
        users.sort();
        users.dedup();
        users
    }
}

/// Read the persistent definition (with secrets) and check the ETag the client saw.
fn load(
    hv: &dyn Hypervisor,
    uuid: &str,
    if_match: Option<&str>,
) -> Result<(xml::Element, DomainDef, bool), CoreError> {
    let (tree, def, snap) = load_with_snapshot(hv, uuid, if_match)?;
    Ok((tree, def, snap.state.is_active()))
}

fn parse_tree(xml_text: &str) -> Result<(xml::Element, DomainDef), CoreError> {
    let tree = xml::parse_root(xml_text, "domain")
        .map_err(|e| CoreError::Internal(format!("unreadable definition: {e}")))?;
    let def = domain_from_tree(&tree)
        .map_err(|e| CoreError::Internal(format!("unreadable definition: {e}")))?;
    Ok((tree, def))
}

/// [`load`], also returning what libvirt says about the domain now (state, live XML).
fn load_with_snapshot(
    hv: &dyn Hypervisor,
    uuid: &str,
    if_match: Option<&str>,
) -> Result<(xml::Element, DomainDef, uvmm_libvirt::DomainSnapshot), CoreError> {
    let snap = hv
        .domain(uuid)?
        .ok_or_else(|| CoreError::NotFound(format!("no VM {uuid} on this host")))?;
    if let Some(tag) = if_match {
        // The same ETag the cache shows: live and persistent definition together.
        if etag_of(&snap.xml, snap.next_boot_xml.as_deref()) != tag && tag != "*" {
            return Err(CoreError::Conflict(
                "the VM was changed by someone else since you read it (ETag mismatch); reload and try again".into(),
            ));
        }
    }
    let xml_text = match &snap.next_boot_xml {
        Some(x) => x.clone(),
        None => hv.domain_xml(uuid, true, true)?,
    };
    let (tree, def) = parse_tree(&xml_text)?;
    Ok((tree, def, snap))
}

/// What to tell someone whose KVM VM did not start: where KVM is advertised but does not
/// work, every profile picks it, and emulation is the way out.
pub fn kvm_start_hint(name: &str, domain_type: &str) -> Option<String> {
    (domain_type == "kvm").then(|| {
        format!(
            "{name} uses KVM: if KVM does not work on this host, switch it to QEMU emulation (TCG) with `uvmm vm set {name} type=qemu` (new VMs: `uvmm vm create --type qemu`)"
        )
    })
}

/// Merge `new` into `tree` and define it. Returns whether anything changed.
fn store(
    hv: &dyn Hypervisor,
    mut tree: xml::Element,
    old: &DomainDef,
    new: &DomainDef,
) -> Result<bool, CoreError> {
    if old == new {
        return Ok(false);
    }
    merge(&mut tree, old, new).map_err(|e| bad(e.to_string()))?;
    hv.define(&tree.to_xml())?;
    Ok(true)
}

fn ext_for(format: &str) -> &'static str {
    if format == "qcow2" {
        "qcow2"
    } else {
        "img"
    }
}

/// Create a volume; refuses to touch an existing one.
pub fn create_volume(
    hv: &dyn Hypervisor,
    pool: &str,
    name: &str,
    size: u64,
    format: &str,
    preallocate: bool,
) -> Result<VolumeInfo, CoreError> {
    validate::object_name("pool", pool).map_err(invalid)?;
    validate::volume_name(name).map_err(invalid)?;
    if size == 0 {
        return Err(bad("a disk size of zero is not a disk"));
    }
    if !matches!(format, "raw" | "qcow2") {
        return Err(bad(format!(
            "disk format '{format}' (expected raw or qcow2)"
        )));
    }
    let pools = hv.pools()?;
    let info = pools.iter().find(|p| p.def.name == pool).ok_or_else(|| {
        CoreError::NotFound(format!(
            "no storage pool '{pool}' on this host (it has: {})",
            pools
                .iter()
                .map(|p| p.def.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    if !info.active {
        return Err(CoreError::Conflict(format!(
            "storage pool '{pool}' is not active"
        )));
    }
    check_volume_size(size, Some(format), &room_of(info), preallocate)
        .map_err(|e| bad(e.to_string()))?;
    if hv.volumes(pool)?.iter().any(|v| v.def.name == name) {
        return Err(CoreError::Conflict(format!(
            "volume '{name}' already exists in pool '{pool}'; choose another name or attach it"
        )));
    }
    let vol = hv
        .create_volume(pool, &volume_xml(name, size, Some(format), !preallocate))
        .map_err(|e| match e.kind {
            // The XML is made from checked values: a refusal is about the pool (its space,
            // its type), so a conflict.
            ErrorKind::InvalidInput => CoreError::Conflict(format!(
                "cannot create volume '{name}' in pool '{pool}': {}",
                e.message
            )),
            _ => CoreError::from(e),
        })?;
    Ok(vol)
}

/// What a pool offers a new volume, for [`check_volume_size`].
pub fn room_of(info: &uvmm_libvirt::PoolInfo) -> PoolRoom {
    PoolRoom {
        name: info.def.name.clone(),
        capacity: info.capacity,
        available: info.available,
    }
}

/// Turn a volume into the disk source uvmm writes: file and block volumes by path,
/// network volumes (e.g. iscsi-direct) by pool reference.
fn source_of(vol: &VolumeInfo) -> (String, String) {
    match (vol.def.kind.as_str(), &vol.def.path) {
        ("block", Some(p)) => ("block".into(), p.clone()),
        ("file", Some(p)) => ("file".into(), p.clone()),
        _ => ("volume".into(), format!("{}/{}", vol.pool, vol.def.name)),
    }
}

/// Check a path a client gave for an image or block device. A volume of one of the
/// host's pools is returned as such. Any other path is accepted only below `[api]
/// image_dirs`, and is refused *before* anything looks at it: uvmmd runs as root, and an
/// answer that differed between an existing and a missing file in a root-only directory
/// would tell a client what is there (and attaching any host file to a VM would give it
/// the file). On the local host the resolved path (symbolic links followed) must stay
/// below those directories as well.
fn client_path(
    hv: &dyn Hypervisor,
    facts: &HostFacts,
    path: &str,
) -> Result<Option<VolumeInfo>, CoreError> {
    validate::host_path(path).map_err(invalid)?;
    if let Some(vol) = hv.volume_by_path(path)? {
        return Ok(Some(vol));
    }
    if !uvmm_model::hosts::path_under(path, &facts.image_dirs) {
        return Err(CoreError::Forbidden(format!(
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
                return Err(CoreError::Forbidden(format!(
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
) -> Result<(), CoreError> {
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
    Err(CoreError::Forbidden(format!(
        "this definition cannot be restored through the API:\n  - {}\n(an administrator can restore it with uvmm-restore --direct)",
        check.refused.join("\n  - ")
    )))
}

/// Resolve an image reference (`/path` or `POOL/VOLUME`) to (kind, source, format, warning).
fn resolve_image(
    hv: &dyn Hypervisor,
    facts: &HostFacts,
    spec: &str,
) -> Result<(String, String, Option<String>, Option<String>), CoreError> {
    if spec.starts_with('/') {
        if let Some(vol) = client_path(hv, facts, spec)? {
            let (k, s) = source_of(&vol);
            return Ok((k, s, vol.def.format.clone(), None));
        }
        if facts.local {
            let meta = std::fs::metadata(spec).map_err(|_| {
                CoreError::NotFound(format!(
                    "image {spec} does not exist on this host (it is neither a volume of a storage pool nor a file)"
                ))
            })?;
            if !meta.file_type().is_file() {
                return Ok(("block".into(), spec.into(), Some("raw".into()), None));
            }
            // Outside a pool nobody records the format; the header tells qcow2 from raw.
            let format = if has_qcow2_magic(std::path::Path::new(spec)) {
                "qcow2"
            } else {
                "raw"
            };
            return Ok(("file".into(), spec.into(), Some(format.into()), None));
        }
        return Ok((
            "file".into(),
            spec.into(),
            None,
            Some(format!("{spec} is outside every storage pool of this remote host and could not be verified")),
        ));
    }
    let (pool, name) = spec.split_once('/').ok_or_else(|| {
        bad(format!(
            "'{spec}' is neither an absolute path nor POOL/VOLUME"
        ))
    })?;
    validate::object_name("pool", pool).map_err(invalid)?;
    validate::volume_name(name).map_err(invalid)?;
    let vols = hv.volumes(pool).map_err(|e| match e.kind {
        ErrorKind::NotFound => {
            CoreError::NotFound(format!("no storage pool '{pool}' on this host"))
        }
        _ => CoreError::from(e),
    })?;
    let vol = vols
        .iter()
        .find(|v| v.def.name == name)
        .ok_or_else(|| CoreError::NotFound(format!("no volume '{name}' in pool '{pool}'")))?;
    let (k, s) = source_of(vol);
    Ok((k, s, vol.def.format.clone(), None))
}

fn has_qcow2_magic(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"QFI\xfb"
}

/// Check that a network or bridge exists on the host.
fn check_network(hv: &dyn Hypervisor, kind: &str, name: &str) -> Result<Option<String>, CoreError> {
    let nets = hv.networks().unwrap_or_default();
    match kind {
        "network" => {
            let net = nets.iter().find(|n| n.name == name).ok_or_else(|| {
                CoreError::NotFound(format!(
                    "no virtual network '{name}' on this host (it has: {})",
                    nets.iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            Ok((!net.active).then(|| {
                format!("virtual network '{name}' is not active: the VM cannot start until it is")
            }))
        }
        "bridge" | "direct" => {
            if nets.iter().any(|n| n.bridge.as_deref() == Some(name)) {
                return Ok(None);
            }
            match hv.interfaces() {
                Ok(ifaces) if ifaces.iter().any(|i| i == name) => Ok(None),
                Ok(ifaces) => Err(CoreError::NotFound(format!(
                    "no {kind} interface '{name}' on this host (it has: {})",
                    ifaces.join(", ")
                ))),
                Err(_) => Ok(Some(format!(
                    "could not verify that {kind} '{name}' exists on this host"
                ))),
            }
        }
        other => Err(bad(format!("unknown network kind '{other}'"))),
    }
}

pub struct CreatePlan {
    pub profile: Profile,
    pub req: uvmm_api::CreateVmRequest,
    pub facts: HostFacts,
}

/// The job of `POST /api/v1/vms`. Returns (uuid, notes, warnings).
pub fn create(
    ctx: &JobCtx<'_>,
    plan: CreatePlan,
) -> Result<(String, Vec<String>, Vec<String>), CoreError> {
    let hv = ctx.hv;
    let CreatePlan {
        profile: p,
        req,
        facts,
    } = plan;
    validate::vm_name(&req.name).map_err(invalid)?;
    let want_type = req
        .domain_type
        .clone()
        .unwrap_or_else(|| p.domain_type.clone());
    if !matches!(want_type.as_str(), "kvm" | "qemu" | "xen") {
        return Err(bad(format!(
            "domain_type '{want_type}' (expected kvm, qemu or xen)"
        )));
    }
    // The host cannot run this kind of guest: nothing wrong with the request as such.
    let resolved = resolve(&facts.caps, &want_type, &p.os_type, p.arch.as_deref())
        .map_err(|e| CoreError::Conflict(e.to_string()))?;
    if hv.list_domains()?.iter().any(|d| d.name == req.name) {
        return Err(CoreError::Conflict(format!(
            "a VM named '{}' already exists on this host",
            req.name
        )));
    }
    let mut warnings = Vec::new();
    if let Some(m) = req.memory_kib {
        if m == 0 {
            return Err(bad("memory must not be zero"));
        }
    }
    if req.vcpus == Some(0) {
        return Err(bad("a VM needs at least one vCPU"));
    }

    // Check networks first: nothing is created when a reference is wrong.
    let mut nics = Vec::new();
    let specs = match &req.networks {
        Some(list) => list.clone(),
        None => p.network.clone().into_iter().collect(),
    };
    for spec in specs {
        let (kind, name) = parse_network(&spec).ok_or_else(|| {
            bad(format!(
                "network '{spec}' (expected network=NAME or bridge=NAME)"
            ))
        })?;
        nics.push((kind, name, Some(random_mac(&resolved.domain_type))));
    }

    for (kind, name, _) in &nics {
        if let Some(w) = check_network(hv, kind, name)? {
            warnings.push(w);
        }
    }
    let cdrom = match &req.cdrom {
        Some(spec) => {
            let (_, src, _, w) = resolve_image(hv, &facts, spec)?;
            warnings.extend(w);
            Some(src)
        }
        None => None,
    };
    let driver_iso = match (&p.driver_iso, resolved.os_type.as_str()) {
        (Some(iso), "hvm") => match hv.volume_by_path(iso)? {
            Some(_) => Some(iso.clone()),
            None if facts.local && std::path::Path::new(iso).exists() => Some(iso.clone()),
            None => {
                warnings.push(format!(
                    "driver ISO {iso} is not on this host: an empty CD-ROM drive was added for it (insert it with `uvmm vm cdrom insert`)"
                ));
                None
            }
        },
        _ => None,
    };
    let disk_reqs: Vec<uvmm_api::NewVolume> = match &req.disks {
        Some(d) => d.clone(),
        None => p
            .disk_bytes()
            .map(|size| {
                vec![uvmm_api::NewVolume {
                    pool: "default".into(),
                    size_bytes: size,
                    format: None,
                    name: None,
                    preallocate: false,
                }]
            })
            .unwrap_or_default(),
    };
    // Validate every disk request before creating the first volume.
    let pools = hv.pools()?;
    let mut planned = Vec::new();
    for (i, d) in disk_reqs.iter().enumerate() {
        let format = d.format.clone().unwrap_or_else(|| p.disk_format.clone());
        let name = d.name.clone().unwrap_or_else(|| {
            if i == 0 {
                format!("{}.{}", req.name, ext_for(&format))
            } else {
                format!("{}-{i}.{}", req.name, ext_for(&format))
            }
        });
        validate::object_name("pool", &d.pool).map_err(invalid)?;
        validate::volume_name(&name).map_err(invalid)?;
        if d.size_bytes == 0 {
            return Err(bad("a disk size of zero is not a disk"));
        }
        if let Some(info) = pools.iter().find(|p| p.def.name == d.pool) {
            check_volume_size(d.size_bytes, Some(&format), &room_of(info), d.preallocate)
                .map_err(|e| bad(e.to_string()))?;
        }
        planned.push((d.pool.clone(), name, d.size_bytes, format, d.preallocate));
    }
    // A bus with too few slots (IDE: four) is refused before the first volume exists.
    check_drive_slots(&p, &resolved, planned.len(), cdrom.is_some()).map_err(bad)?;
    let notes_in = Notes {
        description: req.description.clone().filter(|s| !s.is_empty()),
        contact: req.contact.clone().filter(|s| !s.is_empty()),
        os: req.os.clone().filter(|s| !s.is_empty()),
    };
    // A dry run of the definition (no disks yet) catches bad names, memory and notes.
    let (dry, _) = from_profile(
        &p,
        &resolved,
        NewVm {
            name: req.name.clone(),
            uuid: Some(random_uuid()),
            memory_kib: req.memory_kib,
            vcpus: req.vcpus,
            notes: notes_in.clone(),
            ..NewVm::default()
        },
    );
    check_definition(&dry, None, facts.limits)?;

    let mut created: Vec<VolumeInfo> = Vec::new();
    let result = (|| {
        let mut disks = Vec::new();
        for (pool, name, size, format, prealloc) in &planned {
            let vol = create_volume(hv, pool, name, *size, format, *prealloc)?;
            let (kind, src) = source_of(&vol);
            created.push(vol);
            disks.push((kind, src, Some(format.clone())));
        }
        let (def, notes) = from_profile(
            &p,
            &resolved,
            NewVm {
                name: req.name.clone(),
                uuid: Some(random_uuid()),
                memory_kib: req.memory_kib,
                vcpus: req.vcpus,
                disks,
                cdrom: cdrom.clone(),
                driver_iso: driver_iso.clone(),
                nics: nics.clone(),
                notes: notes_in.clone(),
            },
        );
        check_definition(&def, None, facts.limits)?;
        let xml = generate(&def, &resolved).map_err(|e| bad(e.to_string()))?;
        let uuid = hv.define(&xml)?;
        Ok((uuid, notes))
    })();
    let (uuid, notes) = match result {
        Ok(v) => v,
        Err(e) => {
            // Nothing lost, nothing left behind: remove the volumes made for this VM.
            for v in &created {
                if let Err(del) = hv.delete_volume(&v.pool, &v.def.name) {
                    tracing::error!(pool = %v.pool, volume = %v.def.name, "cannot roll back volume: {del}");
                }
            }
            return Err(e);
        }
    };
    if req.autostart {
        if let Err(e) = hv.set_autostart(&uuid, true) {
            warnings.push(format!("could not enable autostart: {e}"));
        }
    }
    warnings.extend(ctx.backup(&uuid, "create"));
    if req.start {
        if let Err(e) = hv.action(&uuid, uvmm_model::Action::Start) {
            let hint = kvm_start_hint(&req.name, &resolved.domain_type)
                .map(|h| format!(". {h}"))
                .unwrap_or_default();
            warnings.push(format!(
                "the VM was created but could not be started: {e}{hint}"
            ));
        }
    }
    ctx.refresh(&uuid);
    // The pools' volume lists and figures (and their alerts) include the new volumes now,
    // not at the next pool round.
    if !created.is_empty() {
        ctx.refresh_pools();
    }
    Ok((uuid, notes, warnings))
}

fn notes_element(n: &Notes) -> Option<String> {
    if n.description.is_none() && n.contact.is_none() && n.os.is_none() {
        return None;
    }
    let mut el = xml::Element::new("notes");
    for (k, v) in [
        ("description", &n.description),
        ("contact", &n.contact),
        ("os", &n.os),
    ] {
        if let Some(v) = v {
            el.push_child(xml::Element::new(k).with_text(v.clone()));
        }
    }
    Some(el.to_xml())
}

fn opt_text(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_string())
}

/// Switch a shut-off QEMU/KVM VM between `kvm` and `qemu` (TCG), where the host offers
/// the wanted type for the VM's OS type and architecture. Returns a warning when the CPU
/// model had to go (host-model and host-passthrough need KVM).
fn set_domain_type(
    new: &mut DomainDef,
    wanted: &str,
    snap: &uvmm_libvirt::DomainSnapshot,
    caps: &HostCaps,
) -> Result<Option<String>, CoreError> {
    if !matches!(wanted, "kvm" | "qemu") {
        return Err(bad(format!(
            "domain type '{wanted}' (expected qemu or kvm)"
        )));
    }
    if new.domain_type == wanted {
        return Ok(None);
    }
    // Well-formed, but not for this VM: 409 (the status rule of docs/api.md).
    if !matches!(new.domain_type.as_str(), "kvm" | "qemu") {
        return Err(CoreError::Conflict(format!(
            "{} is a {} domain: only QEMU/KVM VMs switch between kvm and qemu",
            new.name, new.domain_type
        )));
    }
    if snap.state.is_active() {
        return Err(CoreError::Conflict(format!(
            "{} is {}: its domain type changes only while it is shut off",
            new.name, snap.state
        )));
    }
    if snap.managed_save {
        return Err(CoreError::Conflict(format!(
            "{} has a saved state (suspended) that belongs to its {} domain: start it and shut it down before changing the domain type",
            new.name, new.domain_type
        )));
    }
    let arch = new.arch.as_deref();
    let offered = caps.guests.iter().any(|g| {
        g.os_type == new.os_type
            && arch.is_none_or(|a| g.arch == a)
            && g.domain_types.iter().any(|t| t == wanted)
    });
    if !offered {
        let what: Vec<String> = caps
            .guests
            .iter()
            .filter(|g| g.os_type == new.os_type && arch.is_none_or(|a| g.arch == a))
            .flat_map(|g| g.domain_types.clone())
            .collect();
        return Err(CoreError::Conflict(format!(
            "this host offers no {wanted} domains for {}/{} (it offers: {})",
            new.os_type,
            arch.unwrap_or("any architecture"),
            if what.is_empty() {
                "none".to_string()
            } else {
                what.join(", ")
            }
        )));
    }
    new.domain_type = wanted.to_string();
    // As for new VMs: these CPU models need KVM, emulation takes QEMU's default CPU.
    let cpu = new.cpu_model.clone();
    if wanted == "qemu" && matches!(cpu.as_deref(), Some("host-model" | "host-passthrough")) {
        new.cpu_model = None;
        return Ok(Some(format!(
            "CPU model {} needs KVM; the VM now gets the hypervisor's default CPU",
            cpu.unwrap_or_default()
        )));
    }
    Ok(None)
}

/// The job of `PATCH /api/v1/vms/{uuid}`. Returns warnings.
pub fn edit(
    ctx: &JobCtx<'_>,
    uuid: &str,
    patch: VmPatch,
    if_match: Option<&str>,
    facts: &HostFacts,
) -> Result<Vec<String>, CoreError> {
    let hv = ctx.hv;
    let limits = facts.limits;
    let (mut tree, old, snap) = load_with_snapshot(hv, uuid, if_match)?;
    let running = snap.state.is_active();
    let mut new = old.clone();
    let mut warnings = Vec::new();
    if let Some(m) = patch.memory_kib {
        // Keeps NUMA cells, <maxMemory> and memory devices consistent with the new total,
        // or says why it cannot.
        uvmm_model::memory::set_total(&mut new, m).map_err(|e| bad(e.to_string()))?;
    }
    if let Some(t) = &patch.domain_type {
        warnings.extend(set_domain_type(&mut new, t, &snap, &facts.caps)?);
    }
    if let Some(v) = patch.vcpus {
        new.vcpus = v;
    }
    if let Some(d) = &patch.description {
        new.notes.description = opt_text(d);
    }
    if let Some(c) = &patch.contact {
        new.notes.contact = opt_text(c);
    }
    if let Some(o) = &patch.os {
        new.notes.os = opt_text(o);
    }
    if let Some(r) = &patch.rtc {
        if !matches!(r.as_str(), "utc" | "localtime") {
            return Err(bad(format!("rtc '{r}' (expected utc or localtime)")));
        }
        new.rtc = Some(r.clone());
    }
    if let Some(c) = &patch.cpu_model {
        new.cpu_model = opt_text(c);
    }
    if let Some(boot) = &patch.boot {
        if old.is_xen_pv() {
            return Err(CoreError::Conflict("Xen PV VMs boot from their first disk (pygrub); use `vm disk boot` instead of a boot order".into()));
        }
        new.boot_devices = boot.clone();
        for d in &mut new.disks {
            d.boot_order = None;
        }
        for n in &mut new.nics {
            n.boot_order = None;
        }
        // libvirt refuses <os><boot> next to any per-device order, <hostdev> ones too.
        new.other_boot.clear();
    }
    if let Some(on) = patch.vnc {
        let has = new.graphics.iter().any(|g| g.kind == "vnc");
        if on && !has {
            new.graphics.push(Graphics {
                kind: "vnc".into(),
                autoport: true,
                listen: Some("127.0.0.1".into()),
                ..Graphics::default()
            });
        } else if !on {
            new.graphics.retain(|g| g.kind != "vnc");
        }
    }
    if patch.vnc_keymap.is_some() || patch.vnc_listen.is_some() || patch.vnc_password.is_some() {
        let g = new
            .graphics
            .iter_mut()
            .find(|g| g.kind == "vnc")
            .ok_or_else(|| {
                CoreError::Conflict(
                    "the VM has no VNC console; turn it on with vnc=on first".into(),
                )
            })?;
        if let Some(k) = &patch.vnc_keymap {
            g.keymap = opt_text(k);
        }
        if let Some(l) = &patch.vnc_listen {
            g.listen = opt_text(l);
        }
    }
    check_definition(&new, Some(&old), limits)?;
    let password_changed = match &patch.vnc_password {
        Some(p) => {
            if p.chars().count() > 64 || p.chars().any(|c| c.is_control()) {
                return Err(bad("VNC passwords are at most 64 printable characters"));
            }
            set_graphics_password(&mut tree, "vnc", opt_text(p).as_deref())
        }
        None => false,
    };
    let xml_changed = if password_changed {
        merge(&mut tree, &old, &new).map_err(|e| bad(e.to_string()))?;
        hv.define(&tree.to_xml())?;
        true
    } else {
        store(hv, tree, &old, &new)?
    };
    if running && xml_changed {
        let only_notes = DomainDef {
            notes: old.notes.clone(),
            ..new.clone()
        } == old
            && !password_changed;
        if old.notes != new.notes {
            hv.set_live_notes(
                uuid,
                new.notes.description.as_deref(),
                notes_element(&new.notes).as_deref(),
            )?;
        }
        if !only_notes {
            warnings.push(NEXT_BOOT.into());
        }
    }
    if let Some(a) = patch.autostart {
        hv.set_autostart(uuid, a)?;
    }
    if xml_changed {
        warnings.extend(ctx.backup(uuid, "edit"));
    }
    ctx.refresh(uuid);
    Ok(warnings)
}

fn default_bus(def: &DomainDef, device: &str) -> String {
    if def.is_xen_pv() {
        return "xen".into();
    }
    let same: Vec<&str> = def
        .disks
        .iter()
        .filter(|d| d.device == device)
        .filter_map(|d| d.bus.as_deref())
        .collect();
    if let Some(b) = same.first() {
        return b.to_string();
    }
    match (device, def.domain_type.as_str()) {
        ("cdrom", "xen") => "ide".into(),
        ("cdrom", _) => "sata".into(),
        ("floppy", _) => "fdc".into(),
        (_, "xen") => "xen".into(),
        _ => "virtio".into(),
    }
}

fn add_target(def: &DomainDef, bus: &str) -> Result<String, CoreError> {
    let used: Vec<&str> = def.disks.iter().map(|d| d.target.as_str()).collect();
    // The bus is known by now: no free target is the VM's state, not the request's fault.
    uvmm_model::targets::first_free(bus, &used).map_err(|e| CoreError::Conflict(e.to_string()))
}

/// The job of `POST /api/v1/vms/{uuid}/disks`. Returns (target, warnings).
pub fn add_disk(
    ctx: &JobCtx<'_>,
    facts: &HostFacts,
    uuid: &str,
    req: uvmm_api::DiskAddRequest,
    if_match: Option<&str>,
) -> Result<(String, Vec<String>), CoreError> {
    let hv = ctx.hv;
    let (tree, old, running) = load(hv, uuid, if_match)?;
    let mut new = old.clone();
    let mut warnings = Vec::new();
    let device = if matches!(req.source, DiskSource::Cdrom { .. }) {
        "cdrom"
    } else {
        "disk"
    };
    let bus = req.bus.clone().unwrap_or_else(|| default_bus(&old, device));
    uvmm_model::targets::bus_prefix(&bus).map_err(|e| bad(e.to_string()))?;
    if old.is_xen_pv() && bus != "xen" {
        return Err(CoreError::Conflict(
            "Xen PV VMs use the xen bus only".into(),
        ));
    }
    let target = add_target(&old, &bus)?;
    let mut created = None;
    let disk = match &req.source {
        DiskSource::New {
            pool,
            size_bytes,
            format,
            name,
            preallocate,
        } => {
            let format = format.clone().unwrap_or_else(|| "qcow2".into());
            let name = name
                .clone()
                .unwrap_or_else(|| format!("{}-{target}.{}", old.name, ext_for(&format)));
            let vol = create_volume(hv, pool, &name, *size_bytes, &format, *preallocate)?;
            let (kind, src) = source_of(&vol);
            created = Some(vol);
            Disk {
                device: "disk".into(),
                kind,
                target: target.clone(),
                bus: Some(bus.clone()),
                source: Some(src),
                format: Some(format),
                ..Disk::default()
            }
        }
        DiskSource::Volume { volume } => {
            let (kind, src, format, w) = resolve_image(hv, facts, volume)?;
            warnings.extend(w);
            let users = facts.users_of(&src, "", false);
            if !users.is_empty() {
                warnings.push(format!(
                    "{src} is also used by {}: both VMs write to the same image",
                    users.join(", ")
                ));
            }
            Disk {
                device: "disk".into(),
                kind,
                target: target.clone(),
                bus: Some(bus.clone()),
                source: Some(src),
                format,
                ..Disk::default()
            }
        }
        DiskSource::Block { path } => {
            let volume = client_path(hv, facts, path)?;
            if facts.local && volume.is_none() && !std::path::Path::new(path).exists() {
                return Err(CoreError::NotFound(format!(
                    "block device {path} does not exist on this host"
                )));
            }
            Disk {
                device: "disk".into(),
                kind: "block".into(),
                target: target.clone(),
                bus: Some(bus.clone()),
                source: Some(path.clone()),
                format: Some("raw".into()),
                ..Disk::default()
            }
        }
        DiskSource::Cdrom { source } => {
            let src = match source {
                Some(s) => {
                    let (_, src, _, w) = resolve_image(hv, facts, s)?;
                    warnings.extend(w);
                    Some(src)
                }
                None => None,
            };
            let format = src.as_ref().map(|_| "raw".to_string());
            Disk {
                device: "cdrom".into(),
                kind: "file".into(),
                target: target.clone(),
                bus: Some(bus.clone()),
                source: src,
                format,
                readonly: true,
                ..Disk::default()
            }
        }
    };
    new.disks.push(disk);
    let stored = validate::definition(&new, Some(&old), HostLimits::default())
        .map_err(invalid)
        .and_then(|_| store(hv, tree, &old, &new));
    if let Err(e) = stored {
        if let Some(v) = created {
            let _ = hv.delete_volume(&v.pool, &v.def.name);
        }
        return Err(e);
    }
    if running {
        warnings.push(NEXT_BOOT.into());
    }
    warnings.extend(ctx.backup(uuid, "edit"));
    ctx.refresh(uuid);
    if created.is_some() {
        ctx.refresh_pools();
    }
    Ok((target, warnings))
}

/// Which volumes may go with a VM or drive: (deleted candidates, kept with reasons).
fn plan_deletion(
    hv: &dyn Hypervisor,
    facts: &HostFacts,
    who: &str,
    disks: &[&Disk],
) -> Result<(Vec<VolumeInfo>, Vec<KeptVolume>), CoreError> {
    let pools = hv.pools()?;
    let mut delete = Vec::new();
    let mut kept = Vec::new();
    for d in disks {
        let Some(src) = &d.source else { continue };
        let vol = match d.kind.as_str() {
            "volume" => {
                let (pool, name) = src.split_once('/').unwrap_or(("", src));
                hv.volumes(pool)
                    .ok()
                    .and_then(|vs| vs.into_iter().find(|v| v.def.name == name))
            }
            _ => hv.volume_by_path(src)?,
        };
        let path = vol
            .as_ref()
            .and_then(|v| v.def.path.clone())
            .unwrap_or_else(|| src.clone());
        let pool_kind = vol
            .as_ref()
            .and_then(|v| pools.iter().find(|p| p.def.name == v.pool))
            .map(|p| p.def.kind.clone());
        let shared = pool_kind.as_deref().is_some_and(pool_is_shared);
        let users = facts.users_of(&path, who, shared);
        match delete_refusal(pool_kind.as_deref(), &users) {
            None => delete.push(vol.expect("a pool kind implies a volume")),
            Some(reason) => kept.push(KeptVolume { path, reason }),
        }
    }
    Ok((delete, kept))
}

/// The job of `DELETE /api/v1/vms/{uuid}`: `volumes` is `all`, `none` or a list of paths.
pub fn delete(
    ctx: &JobCtx<'_>,
    facts: &HostFacts,
    uuid: &str,
    volumes: &str,
    if_match: Option<&str>,
) -> Result<uvmm_api::DeleteResponse, CoreError> {
    let hv = ctx.hv;
    let (_, def, running) = load(hv, uuid, if_match)?;
    if running {
        return Err(CoreError::Conflict(format!(
            "{} is running: stop it before deleting it",
            def.name
        )));
    }
    let mut kept = Vec::new();
    let chosen: Vec<&Disk> = match volumes {
        "none" | "" => {
            kept.extend(def.disks.iter().filter_map(|d| {
                d.source.clone().map(|p| KeptVolume {
                    path: p,
                    reason: "kept as asked (--volumes none)".into(),
                })
            }));
            vec![]
        }
        "all" => {
            for d in def.disks.iter().filter(|d| d.device != "disk") {
                if let Some(p) = &d.source {
                    kept.push(KeptVolume {
                        path: p.clone(),
                        reason: format!(
                            "{} media are not deleted by 'all'; name the path to delete it",
                            d.device
                        ),
                    });
                }
            }
            def.disks.iter().filter(|d| d.device == "disk").collect()
        }
        list => {
            let wanted: Vec<&str> = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            for w in &wanted {
                if !def.disks.iter().any(|d| d.source.as_deref() == Some(*w)) {
                    // Which paths are images depends on the VM: 409, like other
                    // requests that do not fit the VM as it is.
                    return Err(CoreError::Conflict(format!(
                        "{w} is not an image of {}",
                        def.name
                    )));
                }
            }
            for d in &def.disks {
                if let Some(p) = &d.source {
                    if !wanted.contains(&p.as_str()) {
                        kept.push(KeptVolume {
                            path: p.clone(),
                            reason: "not named in --volumes".into(),
                        });
                    }
                }
            }
            def.disks
                .iter()
                .filter(|d| d.source.as_deref().is_some_and(|s| wanted.contains(&s)))
                .collect()
        }
    };
    let (to_delete, refused) = plan_deletion(hv, facts, &who_of(&def, facts), &chosen)?;
    kept.extend(refused);
    // The last definition goes into the backup store before it goes from libvirt.
    let backup_warning = ctx.backup_deleted(uuid);
    // Undefine first: if that fails, no image is gone.
    hv.undefine(uuid)?;
    if let Some(w) = backup_warning {
        tracing::error!(%uuid, "{w}");
    }
    let mut deleted = Vec::new();
    for v in to_delete {
        let path = v
            .def
            .path
            .clone()
            .unwrap_or_else(|| format!("{}/{}", v.pool, v.def.name));
        match hv.delete_volume(&v.pool, &v.def.name) {
            Ok(()) => deleted.push(path),
            Err(e) => kept.push(KeptVolume {
                path,
                reason: format!("deleting failed: {e}"),
            }),
        }
    }
    ctx.refresh(uuid);
    if !deleted.is_empty() {
        ctx.refresh_pools();
    }
    Ok(uvmm_api::DeleteResponse {
        name: def.name,
        uuid: uuid.to_string(),
        deleted,
        kept,
    })
}

fn who_of(def: &DomainDef, facts: &HostFacts) -> String {
    format!("{}@{}", def.name, facts.host_id)
}

/// The job of `DELETE /api/v1/vms/{uuid}/disks/{target}`.
pub fn remove_disk(
    ctx: &JobCtx<'_>,
    facts: &HostFacts,
    uuid: &str,
    target: &str,
    delete_volume: bool,
    if_match: Option<&str>,
) -> Result<(uvmm_api::DeleteResponse, Vec<String>), CoreError> {
    let hv = ctx.hv;
    let (tree, old, running) = load(hv, uuid, if_match)?;
    let disk = old
        .disks
        .iter()
        .find(|d| d.target == target)
        .cloned()
        .ok_or_else(|| CoreError::NotFound(format!("{} has no drive {target}", old.name)))?;
    let mut new = old.clone();
    new.disks.retain(|d| d.target != target);
    let (to_delete, mut kept) = if delete_volume {
        plan_deletion(hv, facts, &who_of(&old, facts), &[&disk])?
    } else {
        (
            vec![],
            disk.source
                .iter()
                .map(|p| KeptVolume {
                    path: p.clone(),
                    reason: "kept (detached only)".into(),
                })
                .collect(),
        )
    };
    store(hv, tree, &old, &new)?;
    let mut deleted = Vec::new();
    for v in to_delete {
        let path = v.def.path.clone().unwrap_or_default();
        match hv.delete_volume(&v.pool, &v.def.name) {
            Ok(()) => deleted.push(path),
            Err(e) => kept.push(KeptVolume {
                path,
                reason: format!("deleting failed: {e}"),
            }),
        }
    }
    let mut warnings = Vec::new();
    if running {
        warnings.push(NEXT_BOOT.into());
    }
    warnings.extend(ctx.backup(uuid, "edit"));
    ctx.refresh(uuid);
    if !deleted.is_empty() {
        ctx.refresh_pools();
    }
    Ok((
        uvmm_api::DeleteResponse {
            name: old.name,
            uuid: uuid.to_string(),
            deleted,
            kept,
        },
        warnings,
    ))
}

/// Read the start of a disk image for the pygrub preflight.
fn inspect(hv: &dyn Hypervisor, facts: &HostFacts, disk: &Disk) -> Result<Vec<u8>, String> {
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
        let tmp = std::env::temp_dir().join(format!("uvmm-inspect-{}.raw", random_uuid()));
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

/// The job of `POST /api/v1/vms/{uuid}/disks/{target}/boot`. Returns warnings.
pub fn set_boot(
    ctx: &JobCtx<'_>,
    facts: &HostFacts,
    uuid: &str,
    target: &str,
    if_match: Option<&str>,
) -> Result<Vec<String>, CoreError> {
    let hv = ctx.hv;
    let (tree, old, running) = load(hv, uuid, if_match)?;
    let mut new = old.clone();
    let change = set_boot_medium(&mut new, target, running).map_err(|e| match e {
        uvmm_model::boot::BootError::NoDrive(_) => CoreError::NotFound(e.to_string()),
        uvmm_model::boot::BootError::Running => CoreError::Conflict(e.to_string()),
    })?;
    let mut warnings = Vec::new();
    if old.is_xen_pv() {
        let disk = new.disks[0].clone();
        match inspect(hv, facts, &disk) {
            Ok(bytes) => warnings.extend(pygrub_warning(&read_partition_table(&bytes))),
            Err(why) => warnings.push(format!(
                "the image of {target} could not be inspected for pygrub: {why}"
            )),
        }
    }
    match change {
        BootChange::Unchanged => {}
        BootChange::Changed => {
            store(hv, tree, &old, &new)?;
            if running {
                warnings.push(NEXT_BOOT.into());
            }
        }
        BootChange::Retargeted(renames) => {
            let mut tree = tree;
            retarget_disks(&mut tree, &renames);
            hv.define(&tree.to_xml())?;
        }
    }
    warnings.extend(ctx.backup(uuid, "edit"));
    ctx.refresh(uuid);
    Ok(warnings)
}

/// The drive `target` of `def` with a new medium (`None`: ejected). The format is the
/// image's where the drive names one (a raw ISO in a drive that says qcow2 would not
/// read); a drive without `<driver type>` gets none, so insert and eject leave the
/// definition as it was.
fn with_medium(
    def: &DomainDef,
    pos: usize,
    medium: Option<&(String, String, Option<String>)>,
) -> DomainDef {
    let mut new = def.clone();
    let drive = &mut new.disks[pos];
    match medium {
        Some((kind, src, format)) => {
            drive.kind = kind.clone();
            drive.source = Some(src.clone());
            if drive.format.is_some() {
                // Pools call ISO images "iso"; QEMU reads them as raw.
                let f = match format.as_deref() {
                    Some("qcow2") => "qcow2",
                    _ => "raw",
                };
                drive.format = Some(f.into());
            }
        }
        None => {
            drive.source = None;
            drive.kind = "file".into();
        }
    }
    new
}

/// The `<disk>` element of `target` in a domain tree, as XML for `update_device`.
fn drive_xml(tree: &xml::Element, target: &str) -> Result<String, CoreError> {
    tree.child("devices")
        .and_then(|d| {
            d.elements().find(|e| {
                e.name == "disk" && e.find("target").and_then(|t| t.attr("dev")) == Some(target)
            })
        })
        .map(|e| e.to_xml())
        .ok_or_else(|| CoreError::Internal("merged drive vanished".into()))
}

fn device_words(device: &str) -> &str {
    match device {
        "cdrom" => "a CD-ROM drive",
        "floppy" => "a floppy drive",
        "disk" => "a hard disk",
        other => other,
    }
}

/// The job of `PUT /api/v1/vms/{uuid}/disks/{target}/media`: insert or eject, also live.
///
/// A running VM has two definitions: the live one and the persistent one for its next
/// start, which may differ (a drive added or removed, a boot order changed while it
/// runs). Each is changed from its own XML: libvirt refuses a device taken from one into
/// the other ("per-device boot elements cannot be used together with os/boot elements").
/// A drive in only one of them is changed there, and the answer says so.
pub fn change_media(
    ctx: &JobCtx<'_>,
    facts: &HostFacts,
    uuid: &str,
    target: &str,
    source: Option<&str>,
    if_match: Option<&str>,
) -> Result<Vec<String>, CoreError> {
    let hv = ctx.hv;
    let (tree, old, snap) = load_with_snapshot(hv, uuid, if_match)?;
    let running = snap.state.is_active();
    let live = if running {
        Some(parse_tree(&snap.xml)?)
    } else {
        None
    };
    // A transient VM has no definition for a next start: only the running one changes.
    let stored_pos = old
        .disks
        .iter()
        .position(|d| d.target == target)
        .filter(|_| snap.persistent || !running);
    let live_pos = live
        .as_ref()
        .and_then(|(_, d)| d.disks.iter().position(|x| x.target == target));
    let stored_drive = stored_pos.map(|p| &old.disks[p]);
    let live_drive = live.as_ref().zip(live_pos).map(|((_, d), p)| &d.disks[p]);
    let drive = match (live_drive, stored_drive) {
        (None, None) => {
            return Err(CoreError::NotFound(format!(
                "{} has no drive {target}",
                old.name
            )))
        }
        (Some(l), Some(s)) if l.device != s.device => {
            return Err(CoreError::Conflict(format!(
                "{target} is {} in the running VM but {} in its definition for the next start; change the medium after a restart",
                device_words(&l.device),
                device_words(&s.device)
            )))
        }
        (Some(d), _) | (None, Some(d)) => d,
    };
    if !matches!(drive.device.as_str(), "cdrom" | "floppy") {
        return Err(CoreError::Conflict(format!(
            "{target} is a hard disk; media can only be changed in CD-ROM and floppy drives"
        )));
    }
    let mut warnings = Vec::new();
    let medium = match source {
        Some(s) => {
            let (kind, src, format, w) = resolve_image(hv, facts, s)?;
            warnings.extend(w);
            Some((kind, src, format))
        }
        None => None,
    };
    // The persistent definition first, then the running VM; if the running VM refuses
    // (a locked tray, say), the definition goes back to what it was.
    let mut defined_old = None;
    if let Some(pos) = stored_pos {
        let new = with_medium(&old, pos, medium.as_ref());
        if new != old {
            let mut merged = tree.clone();
            merge(&mut merged, &old, &new).map_err(|e| bad(e.to_string()))?;
            if running && live_pos.is_none() {
                // Only the next start has this drive: nothing to change live.
                hv.define(&merged.to_xml())?;
            } else if running {
                hv.update_device(uuid, &drive_xml(&merged, target)?, false)?;
                defined_old = Some(drive_xml(&tree, target)?);
            } else {
                hv.define(&merged.to_xml())?;
            }
        }
    }
    if let (Some((live_tree, live_def)), Some(pos)) = (&live, live_pos) {
        let new = with_medium(live_def, pos, medium.as_ref());
        if new != *live_def {
            let mut merged = live_tree.clone();
            merge(&mut merged, live_def, &new).map_err(|e| bad(e.to_string()))?;
            if let Err(e) = hv.update_device(uuid, &drive_xml(&merged, target)?, true) {
                if let Some(back) = defined_old {
                    if let Err(undo) = hv.update_device(uuid, &back, false) {
                        tracing::error!(%uuid, "cannot restore drive {target} of the persistent definition: {undo}");
                    }
                }
                return Err(e.into());
            }
        }
    }
    match (live_pos.is_some(), stored_pos.is_some()) {
        (true, false) if snap.persistent => warnings.push(format!(
            "{target} is not in the definition for the next start (it was removed while the VM runs): the medium was changed in the running VM only"
        )),
        (false, true) if running => warnings.push(format!(
            "{target} was added while the VM runs and is not in the running VM yet: the medium is there from its next start"
        )),
        _ => {}
    }
    warnings.extend(ctx.backup(uuid, "edit"));
    ctx.refresh(uuid);
    Ok(warnings)
}

/// The job of `POST /api/v1/vms/{uuid}/nics`. Returns (mac, warnings).
pub fn add_nic(
    ctx: &JobCtx<'_>,
    uuid: &str,
    req: uvmm_api::NicAddRequest,
    if_match: Option<&str>,
) -> Result<(String, Vec<String>), CoreError> {
    let hv = ctx.hv;
    let (tree, old, running) = load(hv, uuid, if_match)?;
    let (kind, name) = parse_network(&req.source).ok_or_else(|| {
        bad(format!(
            "network '{}' (expected network=NAME, bridge=NAME or direct=DEV)",
            req.source
        ))
    })?;
    let mut warnings = Vec::new();
    warnings.extend(check_network(hv, &kind, &name)?);
    let mac = match &req.mac {
        Some(m) => validate::mac(m).map_err(invalid)?,
        None => random_mac(&old.domain_type),
    };
    if old
        .nics
        .iter()
        .any(|n| n.mac.as_deref() == Some(mac.as_str()))
    {
        return Err(CoreError::Conflict(format!(
            "{} already has a network interface with MAC {mac}",
            old.name
        )));
    }
    let model = req
        .model
        .clone()
        .or_else(|| old.nics.first().and_then(|n| n.model.clone()))
        .or_else(|| match (old.is_xen_pv(), old.domain_type.as_str()) {
            (true, _) => Some("netfront".into()),
            (false, "kvm" | "qemu") => Some("virtio".into()),
            (false, "xen") => Some("e1000".into()),
            _ => None,
        });
    let mut new = old.clone();
    new.nics.push(Nic {
        kind,
        source: Some(name),
        mac: Some(mac.clone()),
        model,
        ..Nic::default()
    });
    validate::definition(&new, Some(&old), HostLimits::default()).map_err(invalid)?;
    store(hv, tree, &old, &new)?;
    if running {
        warnings.push(NEXT_BOOT.into());
    }
    warnings.extend(ctx.backup(uuid, "edit"));
    ctx.refresh(uuid);
    Ok((mac, warnings))
}

/// The job of `DELETE /api/v1/vms/{uuid}/nics/{mac}`.
pub fn remove_nic(
    ctx: &JobCtx<'_>,
    uuid: &str,
    mac: &str,
    if_match: Option<&str>,
) -> Result<Vec<String>, CoreError> {
    let hv = ctx.hv;
    let mac = validate::mac(mac).map_err(invalid)?;
    let (tree, old, running) = load(hv, uuid, if_match)?;
    let mut new = old.clone();
    new.nics.retain(|n| n.mac.as_deref() != Some(mac.as_str()));
    match old.nics.len() - new.nics.len() {
        0 => {
            return Err(CoreError::NotFound(format!(
                "{} has no network interface {mac}",
                old.name
            )))
        }
        1 => {}
        n => {
            return Err(CoreError::Conflict(format!(
                "{} has {n} network interfaces with MAC {mac} (a clone?), and a MAC is how uvmm tells them apart: give one of them another MAC (virsh edit) first",
                old.name
            )))
        }
    }
    store(hv, tree, &old, &new)?;
    ctx.refresh(uuid);
    let mut warnings: Vec<String> = ctx.backup(uuid, "edit").into_iter().collect();
    if running {
        warnings.push(NEXT_BOOT.into());
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_have_the_right_shape() {
        let u = random_uuid();
        assert!(uvmm_model::uuid::is_uuid(&u), "{u}");
        assert_eq!(&u[14..15], "4");
        assert_ne!(random_uuid(), random_uuid());
        let m = random_mac("kvm");
        assert!(m.starts_with("52:54:00:"));
        assert!(validate::mac(&m).is_ok());
        assert!(random_mac("xen").starts_with("00:16:3e:"));
    }

    #[test]
    fn default_buses() {
        let mut d = DomainDef {
            domain_type: "kvm".into(),
            os_type: "hvm".into(),
            ..DomainDef::default()
        };
        assert_eq!(default_bus(&d, "disk"), "virtio");
        assert_eq!(default_bus(&d, "cdrom"), "sata");
        d.disks.push(Disk {
            device: "disk".into(),
            bus: Some("ide".into()),
            target: "hda".into(),
            ..Disk::default()
        });
        assert_eq!(default_bus(&d, "disk"), "ide");
        d.os_type = "linux".into();
        assert_eq!(default_bus(&d, "cdrom"), "xen");
    }
}
