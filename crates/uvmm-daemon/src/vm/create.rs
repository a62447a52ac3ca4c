//! Creating a VM from a profile.

use super::images::*;
use super::nics::check_network;
use super::*;
use crate::cache::{Cache, HostEntry, VmEntry};
use crate::error::Error;
use crate::hosts::facts::HostFacts;
use crate::ids::{random_mac, random_uuid};
use crate::jobs::Job;
use crate::jobs::JobCtx;
use crate::ops::Ops;
use crate::storage::volumes::{make_volume, room_of};
use uvmm_api::{CreateVmRequest, VmChangeResponse};
use uvmm_backup::Cause;
use uvmm_libvirt::VolumeInfo;
use uvmm_model::domain::Notes;
use uvmm_model::generate::{check_drive_slots, from_profile, generate, resolve, NewVm};
use uvmm_model::profile::{parse_network, Profile};
use uvmm_model::storage::check_volume_size;
use uvmm_model::validate::{self};

/// A VM made: its UUID, how the request was adapted to the host, what to know.
pub struct Created {
    pub uuid: String,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

pub struct CreatePlan {
    pub profile: Profile,
    pub req: uvmm_api::CreateVmRequest,
    pub facts: HostFacts,
}

/// The work of `POST /api/v1/vms` (see `CreateVm`).
pub fn create(ctx: &JobCtx<'_>, plan: CreatePlan) -> Result<Created, VmError> {
    let hv = ctx.hv;
    let CreatePlan {
        profile: p,
        req,
        facts,
    } = plan;
    validate::vm_name(&req.name)?;
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
    let resolved = resolve(&facts.caps, &want_type, &p.os_type, p.arch.as_deref())?;
    if hv.list_domains()?.iter().any(|d| d.name == req.name) {
        return Err(VmError::conflict(format!(
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
        nics.push((kind, name, Some(random_mac(&resolved.domain_type)?)));
    }

    for (kind, name, _) in &nics {
        if let Some(w) = check_network(hv, kind, name)? {
            warnings.push(w);
        }
    }
    let cdrom = match &req.cdrom {
        Some(spec) => {
            let image = resolve_image(hv, &facts, spec)?;
            warnings.extend(image.warning);
            Some(image.medium.source)
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
        validate::object_name("pool", &d.pool)?;
        validate::volume_name(&name)?;
        if d.size_bytes == 0 {
            return Err(bad("a disk size of zero is not a disk"));
        }
        if let Some(info) = pools.iter().find(|p| p.def.name == d.pool) {
            check_volume_size(d.size_bytes, Some(&format), &room_of(info), d.preallocate)
                .map_err(StorageError::from)?;
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
    let new_vm = NewVm {
        name: req.name.clone(),
        uuid: Some(random_uuid()?),
        memory_kib: req.memory_kib,
        vcpus: req.vcpus,
        notes: notes_in,
        ..NewVm::default()
    };
    // A dry run of the definition (no disks yet) catches bad names, memory and notes.
    let (dry, _) = from_profile(&p, &resolved, new_vm.clone());
    check_definition(&dry, None, facts.limits)?;

    let mut created: Vec<VolumeInfo> = Vec::new();
    let result = (|| {
        let mut disks = Vec::new();
        for (pool, name, size, format, prealloc) in &planned {
            let vol = make_volume(hv, pool, name, *size, format, *prealloc)?;
            let m = source_of(&vol);
            created.push(vol);
            disks.push((m.kind, m.source, Some(format.clone())));
        }
        let (def, notes) = from_profile(
            &p,
            &resolved,
            NewVm {
                disks,
                cdrom: cdrom.clone(),
                driver_iso: driver_iso.clone(),
                nics: nics.clone(),
                ..new_vm.clone()
            },
        );
        check_definition(&def, None, facts.limits)?;
        let xml = generate(&def, &resolved).map_err(VmError::from)?;
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
    warnings.extend(ctx.backup(&uuid, Cause::Create));
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
    Ok(Created {
        uuid,
        notes,
        warnings,
    })
}

/// `POST /api/v1/vms`: a VM from a profile.
pub struct CreateVm {
    req: CreateVmRequest,
    profile: Profile,
}

impl CreateVm {
    /// The request with its profile. A profile name that refers to nothing is a 404, like
    /// an unknown path: the request is well-formed (the schema's `minLength`), the thing
    /// is missing.
    pub fn new(ops: &Ops, req: CreateVmRequest) -> Result<CreateVm, Error> {
        let profile = ops.profile(&req.profile).map_err(|_| Error::NoProfile {
            what: format!(
                "no profile '{}' (known: {})",
                req.profile,
                ops.profiles()
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        validate::vm_name(&req.name).map_err(VmError::from)?;
        Ok(CreateVm { req, profile })
    }
}

impl Job for CreateVm {
    type Output = VmChangeResponse;
    type Error = VmError;

    fn prepare(&mut self, _: &Cache, h: &HostEntry, _: Option<&VmEntry>) -> Result<(), Error> {
        if h.vms().values().any(|v| v.name == self.req.name) {
            return Err(VmError::conflict(format!(
                "a VM named '{}' already exists on {}",
                self.req.name, h.id
            ))
            .into());
        }
        Ok(())
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<VmChangeResponse, VmError> {
        let plan = CreatePlan {
            profile: self.profile,
            req: self.req,
            facts: ctx.facts().clone(),
        };
        let c = create(ctx, plan)?;
        ctx.changed(&c.uuid, c.notes, c.warnings)
    }
}
