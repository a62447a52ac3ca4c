//! Network interfaces.

use super::hotplug::{attach_live, detach_live, undo_define, Device};
use super::*;
use crate::ids::random_mac;
use crate::jobs::JobCtx;
use uvmm_api::NicAddRequest;
use uvmm_libvirt::Hypervisor;
use uvmm_model::domain::Nic;
use uvmm_model::profile::parse_network;
use uvmm_model::validate::{self, HostLimits};

/// Check that a network or bridge exists on the host.
pub(crate) fn check_network(
    hv: &dyn Hypervisor,
    kind: &str,
    name: &str,
) -> Result<Option<String>, VmError> {
    let nets = hv.networks().unwrap_or_default();
    match kind {
        "network" => {
            let net = nets.iter().find(|n| n.name == name).ok_or_else(|| {
                VmError::not_found(format!(
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
                Ok(ifaces) => Err(VmError::not_found(format!(
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

/// `POST /api/v1/vms/{uuid}/nics`: add a network interface.
pub struct AddNic {
    pub req: NicAddRequest,
}

impl VmChange for AddNic {
    fn change(self, ctx: &JobCtx<'_>, vm: Loaded) -> Result<Edited, VmError> {
        let (hv, req) = (ctx.hv, self.req);
        let running = vm.running();
        let (tree, old) = (vm.tree, vm.def);
        let (kind, name) = parse_network(&req.source).ok_or_else(|| {
            bad(format!(
                "network '{}' (expected network=NAME, bridge=NAME or direct=DEV)",
                req.source
            ))
        })?;
        let mut warnings = Vec::new();
        warnings.extend(check_network(hv, &kind, &name)?);
        let mac = match &req.mac {
            Some(m) => validate::mac(m)?,
            None => random_mac(&old.domain_type)?,
        };
        if old
            .nics
            .iter()
            .any(|n| n.mac.as_deref() == Some(mac.as_str()))
        {
            return Err(VmError::conflict(format!(
                "{} already has a network interface with MAC {mac}",
                old.name
            )));
        }
        let model = uvmm_model::change::nic_model(&old, req.model.as_deref());
        let mut new = old.clone();
        new.nics.push(Nic {
            kind,
            source: Some(name),
            mac: Some(mac.clone()),
            model,
            ..Nic::default()
        });
        validate::definition(&new, Some(&old), HostLimits::default())?;
        let before = tree.to_xml();
        store(hv, tree, &old, &new)?;
        let live = req.live && running;
        if live {
            attach_live(hv, ctx.at.vm(), Device::Nic(&mac))
                .map_err(|e| undo_define(hv, &before, e))?;
        }
        let added = vec![format!(
            "added network interface {mac}{}",
            if live {
                " (attached to the running VM)"
            } else {
                ""
            }
        )];
        Ok(Edited::written(added, warnings, running && !live))
    }
}

/// `DELETE /api/v1/vms/{uuid}/nics/{mac}`: refused when two interfaces share the MAC.
pub struct RemoveNic {
    pub mac: String,
    /// Detach it from the running VM too (hot-unplug), first.
    pub live: bool,
}

impl VmChange for RemoveNic {
    fn change(self, ctx: &JobCtx<'_>, vm: Loaded) -> Result<Edited, VmError> {
        let hv = ctx.hv;
        let mac = validate::mac(&self.mac)?;
        let running = vm.running();
        let (tree, old) = (vm.tree, vm.def);
        let mut new = old.clone();
        new.nics.retain(|n| n.mac.as_deref() != Some(mac.as_str()));
        match old.nics.len() - new.nics.len() {
            0 => {
                return Err(VmError::not_found(format!(
                    "{} has no network interface {mac}",
                    old.name
                )))
            }
            1 => {}
            n => {
                return Err(VmError::conflict(format!(
                    "{} has {n} network interfaces with MAC {mac} (a clone?), and a MAC is how uvmm tells them apart: give one of them another MAC (virsh edit) first",
                    old.name
                )))
            }
        }
        let live = self.live && running;
        if live {
            detach_live(hv, ctx.at.vm(), Device::Nic(&mac))?;
        }
        store(hv, tree, &old, &new)?;
        Ok(Edited::written(vec![], vec![], running && !live))
    }
}
