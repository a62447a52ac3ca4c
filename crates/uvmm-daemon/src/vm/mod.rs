//! Creating, editing and deleting VMs, their drives and NICs. Each operation runs as one
//! job on its host's worker, so operations on one host never interleave; the ETag check
//! and the change happen in the same job.

pub mod boot;
pub mod create;
pub mod delete;
pub mod disks;
pub mod edit;
pub mod images;
pub mod media;
pub mod nics;

use crate::cache::etag_of;
use crate::error::CoreError;
use uvmm_libvirt::Hypervisor;
use uvmm_model::domain::{domain_from_tree, DomainDef};
use uvmm_model::edit::merge;
use uvmm_model::validate;
use uvmm_model::xml;

const NEXT_BOOT: &str = "the VM is running: this change takes effect when it is next started (shut it down, then start it)";

pub(crate) fn bad(msg: impl Into<String>) -> CoreError {
    CoreError::BadRequest(msg.into())
}

pub(crate) fn invalid(e: validate::Invalid) -> CoreError {
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

/// Read the persistent definition (with secrets) and check the ETag the client saw.
pub(crate) fn load(
    hv: &dyn Hypervisor,
    uuid: &str,
    if_match: Option<&str>,
) -> Result<(xml::Element, DomainDef, bool), CoreError> {
    let (tree, def, snap) = load_with_snapshot(hv, uuid, if_match)?;
    Ok((tree, def, snap.state.is_active()))
}

pub(crate) fn parse_tree(xml_text: &str) -> Result<(xml::Element, DomainDef), CoreError> {
    let tree = xml::parse_root(xml_text, "domain")
        .map_err(|e| CoreError::Internal(format!("unreadable definition: {e}")))?;
    let def = domain_from_tree(&tree)
        .map_err(|e| CoreError::Internal(format!("unreadable definition: {e}")))?;
    Ok((tree, def))
}

/// [`load`], also returning what libvirt says about the domain now (state, live XML).
pub(crate) fn load_with_snapshot(
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
pub(crate) fn store(
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

pub(crate) fn ext_for(format: &str) -> &'static str {
    if format == "qcow2" {
        "qcow2"
    } else {
        "img"
    }
}
