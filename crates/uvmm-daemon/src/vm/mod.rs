//! Creating, editing and deleting VMs, their drives and NICs. Each operation runs as one
//! job on its host's worker, so operations on one host never interleave; the ETag check
//! and the change happen in the same job.

pub mod boot;
pub mod clone;
pub mod clone_move;
pub mod console;
pub mod create;
pub mod delete;
pub mod disks;
pub mod edit;
pub mod evacuate;
pub mod failover;
pub mod hotplug;
pub mod images;
pub mod lifecycle;
pub mod media;
pub mod migrate;
pub mod nics;
pub mod read;
pub mod snapshots;

use crate::cache::etag_of;
use crate::error::libvirt_message;
use crate::jobs::{Job, JobCtx};
use crate::storage::StorageError;
use uvmm_api::VmChangeResponse;
use uvmm_backup::Cause;
use uvmm_libvirt::{Hypervisor, LibvirtError};
use uvmm_model::domain::{domain_from_tree, DomainDef};
use uvmm_model::edit::merge;
use uvmm_model::edit::EditError;
use uvmm_model::generate::ResolveError;
use uvmm_model::memory::MemoryError;
use uvmm_model::state::TransitionError;
use uvmm_model::validate;
use uvmm_model::validate::Invalid;
use uvmm_model::xml;

const NEXT_BOOT: &str = "the VM is running: this change takes effect when it is next started (shut it down, then start it)";

/// What a VM operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// A VM, drive, interface, image, pool or network the request names does not exist.
    #[error("{what}")]
    NotFound { what: String },
    /// A value of the request is not acceptable, whatever the VM's state.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The request does not fit the VM or its host as they are now.
    #[error("{why}")]
    Conflict { why: String },
    /// `If-Match` names a version the VM no longer has.
    #[error("the VM was changed by someone else since you read it (ETag mismatch); reload and try again")]
    Stale,
    /// The action is not possible in the VM's state.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The API's policy (`[api]`) refuses a path or a definition.
    #[error("{why}")]
    Refused { why: String },
    /// A memory size the VM's definition cannot take.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// A change that cannot be written into the definition.
    #[error(transparent)]
    Merge(#[from] EditError),
    /// An unknown bus for a new drive.
    #[error(transparent)]
    Bus(uvmm_model::targets::TargetError),
    /// The bus has no free target name left.
    #[error(transparent)]
    NoFreeTarget(uvmm_model::targets::TargetError),
    /// A change the VM's definition cannot take (the model's pure step).
    #[error(transparent)]
    Change(#[from] uvmm_model::change::ChangeError),
    /// The host cannot run this kind of guest.
    #[error(transparent)]
    HostCannot(#[from] ResolveError),
    /// libvirt gave a definition the model cannot read.
    #[error("unreadable definition: {0}")]
    Unreadable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A broken invariant (a bug).
    #[error("{what}")]
    Internal { what: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Random(#[from] crate::ids::NoRandom),
    #[error("{}", libvirt_message(.0))]
    Libvirt(LibvirtError),
}

impl From<LibvirtError> for VmError {
    fn from(e: LibvirtError) -> Self {
        VmError::Libvirt(crate::error::from_libvirt(e))
    }
}

impl VmError {
    pub fn not_found(what: impl Into<String>) -> VmError {
        VmError::NotFound { what: what.into() }
    }
    pub fn conflict(why: impl Into<String>) -> VmError {
        VmError::Conflict { why: why.into() }
    }
    pub fn refused(why: impl Into<String>) -> VmError {
        VmError::Refused { why: why.into() }
    }
    pub fn internal(what: impl Into<String>) -> VmError {
        VmError::Internal { what: what.into() }
    }
}

/// An invalid value of a request, in the words given.
pub(crate) fn bad(msg: impl Into<String>) -> VmError {
    VmError::Invalid(Invalid(msg.into()))
}

/// `validate::definition`, with what the host cannot take as 409 rather than 400.
pub fn check_definition(
    new: &uvmm_model::domain::DomainDef,
    old: Option<&uvmm_model::domain::DomainDef>,
    host: validate::HostLimits,
) -> Result<(), VmError> {
    validate::definition_values(new, old)?;
    validate::host_limits(new, old, host).map_err(|e| VmError::conflict(e.0))
}

/// A definition as read for a change: the XML tree (with everything the model does not
/// know, and secrets) and the model's view of it.
pub(crate) struct Definition {
    pub tree: xml::Element,
    pub def: DomainDef,
}

/// A VM as a change finds it: its persistent definition, and what libvirt says about the
/// domain now (state, live XML).
pub struct Loaded {
    pub tree: xml::Element,
    pub def: DomainDef,
    pub snap: uvmm_libvirt::DomainSnapshot,
}

impl Loaded {
    pub fn running(&self) -> bool {
        self.snap.state.is_active()
    }
}

pub(crate) fn parse_tree(xml_text: &str) -> Result<Definition, VmError> {
    let tree = xml::parse_root(xml_text, "domain").map_err(|e| VmError::Unreadable(Box::new(e)))?;
    let def = domain_from_tree(&tree).map_err(|e| VmError::Unreadable(Box::new(e)))?;
    Ok(Definition { tree, def })
}

/// Read the persistent definition (with secrets) and check the ETag the client saw.
pub(crate) fn load(
    hv: &dyn Hypervisor,
    uuid: &str,
    if_match: Option<&str>,
) -> Result<Loaded, VmError> {
    let snap = hv
        .domain(uuid)?
        .ok_or_else(|| VmError::not_found(format!("no VM {uuid} on this host")))?;
    if let Some(tag) = if_match {
        // The same ETag the cache shows: live and persistent definition together.
        if etag_of(&snap.xml, snap.next_boot_xml.as_deref()) != tag && tag != "*" {
            return Err(VmError::Stale);
        }
    }
    let xml_text = match &snap.next_boot_xml {
        Some(x) => x.clone(),
        None => hv.domain_xml(uuid, true, true)?,
    };
    let Definition { tree, def } = parse_tree(&xml_text)?;
    Ok(Loaded { tree, def, snap })
}

/// What a change of a VM's definition did, for the answer: what it adapted (`notes`) and
/// what the user should know (`warnings`).
pub struct Edited {
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
    /// Whether the definition was written (only then is there a backup version to make).
    pub written: bool,
    /// Whether the change waits for the VM's next start (it runs): the answer says so.
    pub next_boot: bool,
}

impl Edited {
    /// A change that wrote the definition; `next_boot`: while the VM runs.
    pub fn written(notes: Vec<String>, warnings: Vec<String>, next_boot: bool) -> Edited {
        Edited {
            notes,
            warnings,
            written: true,
            next_boot,
        }
    }
}

/// A change of one VM's definition (settings, a drive, a medium, an interface, the boot
/// order): given the VM as it is now, change it. What is around every such change is
/// [`Edit`]'s, written once.
pub trait VmChange: Send + 'static {
    fn change(self, ctx: &JobCtx<'_>, vm: Loaded) -> Result<Edited, VmError>;
}

/// The job of a [`VmChange`]: the definition is loaded and checked against the
/// `If-Match` the client sent, changed, recorded as a backup version with the caller as
/// its user, and answered with the VM as the cache then has it (its new ETag).
pub struct Edit<C> {
    pub if_match: Option<String>,
    pub change: C,
}

impl<C> Edit<C> {
    pub fn new(if_match: Option<String>, change: C) -> Edit<C> {
        Edit { if_match, change }
    }
}

impl<C: VmChange> Job for Edit<C> {
    type Output = VmChangeResponse;
    type Error = VmError;

    fn run(self, ctx: &JobCtx<'_>) -> Result<VmChangeResponse, VmError> {
        let uuid = ctx.at.vm();
        let vm = load(ctx.hv, uuid, self.if_match.as_deref())?;
        let Edited {
            notes,
            mut warnings,
            written,
            next_boot,
        } = self.change.change(ctx, vm)?;
        if next_boot {
            warnings.push(NEXT_BOOT.into());
        }
        if written {
            warnings.extend(ctx.backup(uuid, Cause::Edit));
        }
        ctx.refresh(uuid);
        ctx.changed(uuid, notes, warnings)
    }
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
pub(crate) fn store(
    hv: &dyn Hypervisor,
    mut tree: xml::Element,
    old: &DomainDef,
    new: &DomainDef,
) -> Result<bool, VmError> {
    if old == new {
        return Ok(false);
    }
    merge(&mut tree, old, new)?;
    hv.define(&tree.to_xml())?;
    Ok(true)
}

pub(crate) fn ext_for(format: &str) -> &'static str {
    if format == "qcow2" {
        "qcow2"
    } else {
        "img"
    }
}
