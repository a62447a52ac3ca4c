//! Live hot-plug of drives and NICs (`live: true` on `POST .../disks`, `POST .../nics`,
//! `?live=true` on their `DELETE`). The stored definition is changed the usual way (the
//! `Edit` frame, or `store`); the running VM gets the same device through libvirt's
//! attach/detach on its live state only, so both always describe one device.
//!
//! Attach: after the definition was stored, its `<disk>`/`<interface>` element (as
//! libvirt completed it) is attached live; if that fails the definition is put back, so a
//! refused hot-plug changes nothing. Detach: first from the running VM, waiting up to
//! `DETACH_TIMEOUT` for the guest to release it (the guest must cooperate: ACPI PCI
//! hot-plug); only then the definition. A guest that does not release it gets a 409 that
//! says so, and nothing else was changed (QEMU keeps the unplug request pending, so the
//! device may still go later; the definition still has it).

use super::VmError;
use std::time::Duration;
use uvmm_libvirt::{DetachOutcome, Hypervisor};
use uvmm_model::xml;

/// How long a guest has to release a device.
pub const DETACH_TIMEOUT: Duration = Duration::from_secs(10);

/// A device of a domain XML: a `<disk>` by its target or an `<interface>` by its MAC.
#[derive(Debug, Clone, Copy)]
pub enum Device<'a> {
    Disk(&'a str),
    Nic(&'a str),
}

impl Device<'_> {
    fn describe(&self) -> String {
        match self {
            Device::Disk(t) => format!("drive {t}"),
            Device::Nic(m) => format!("interface {m}"),
        }
    }
}

/// The device's element in a domain XML, as XML.
fn element(domain_xml: &str, dev: Device<'_>) -> Result<String, VmError> {
    let root =
        xml::parse_root(domain_xml, "domain").map_err(|e| VmError::Unreadable(Box::new(e)))?;
    let devices = root.child("devices");
    let found = devices
        .into_iter()
        .flat_map(|d| d.elements())
        .find(|e| match dev {
            Device::Disk(t) => {
                e.local_name() == "disk" && e.child("target").and_then(|t| t.attr("dev")) == Some(t)
            }
            Device::Nic(m) => {
                e.local_name() == "interface"
                    && e.child("mac")
                        .and_then(|a| a.attr("address"))
                        .is_some_and(|a| a.eq_ignore_ascii_case(m))
            }
        });
    found
        .map(|e| e.to_xml())
        .ok_or_else(|| VmError::internal(format!("{} is not in the definition", dev.describe())))
}

fn libvirt(e: uvmm_libvirt::LibvirtError) -> VmError {
    VmError::Libvirt(crate::error::from_libvirt(e))
}

/// Attach the device the stored definition now has to the running VM.
pub fn attach_live(hv: &dyn Hypervisor, uuid: &str, dev: Device<'_>) -> Result<(), VmError> {
    let stored = hv.domain_xml(uuid, true, true).map_err(libvirt)?;
    let device = element(&stored, dev)?;
    hv.attach_device(uuid, &device, true, false)
        .map_err(libvirt)
}

/// Put the stored definition back after a refused hot-plug; returns the hot-plug's error
/// (or says that the definition could not be put back either).
pub fn undo_define(hv: &dyn Hypervisor, before: &str, e: VmError) -> VmError {
    match hv.define(before) {
        Ok(_) => e,
        Err(u) => VmError::internal(format!(
            "{e}; and putting the definition back failed ({u}): the drive or interface is \
             in the definition for the next start"
        )),
    }
}

/// Detach the device from the running VM; a guest that does not release it in time is a
/// conflict (the device stays attached, the definition unchanged).
pub fn detach_live(hv: &dyn Hypervisor, uuid: &str, dev: Device<'_>) -> Result<(), VmError> {
    let live = hv.domain_xml(uuid, false, true).map_err(libvirt)?;
    let device = element(&live, dev)?;
    match hv
        .detach_device(uuid, &device, true, false, DETACH_TIMEOUT)
        .map_err(libvirt)?
    {
        DetachOutcome::Removed => Ok(()),
        DetachOutcome::TimedOut { .. } => Err(VmError::Conflict {
            why: format!(
                "the guest did not release {} within {} s (it needs ACPI PCI hot-plug and must \
                 not be busy with it); it is still attached to the running VM and still in \
                 its definition. QEMU keeps the request: it may go later. Shut the VM down \
                 to remove it for sure.",
                dev.describe(),
                DETACH_TIMEOUT.as_secs()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = "<domain><name>a</name><devices>\
        <disk type='file' device='disk'><source file='/i/a.img'/><target dev='vda' bus='virtio'/></disk>\
        <interface type='network'><mac address='52:54:00:AA:bb:cc'/><source network='default'/></interface>\
        </devices></domain>";

    #[test]
    fn finds_devices_by_target_and_mac() {
        let cases = [
            (Device::Disk("vda"), Some("/i/a.img")),
            (Device::Disk("vdb"), None),
            (Device::Nic("52:54:00:aa:BB:cc"), Some("default")),
            (Device::Nic("52:54:00:00:00:01"), None),
        ];
        for (dev, want) in cases {
            let got = element(XML, dev).ok();
            assert_eq!(got.is_some(), want.is_some(), "{dev:?}");
            if let (Some(g), Some(w)) = (got, want) {
                assert!(g.contains(w), "{g}");
            }
        }
    }
}
