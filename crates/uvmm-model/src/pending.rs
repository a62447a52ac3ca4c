//! What the next start of a running VM brings: changes stored in its persistent definition
//! while it ran (`vm set memory=…`, a disk added, "Set as boot medium", `virsh … --config`)
//! do not show in the live definition until then. This compares the two, leaving out what
//! only a running VM has (assigned ports, host-side NIC names, the CPU that `host-model`
//! expanded to).

use crate::domain::{Disk, DomainDef, Features, Graphics, Nic};
use serde::{Deserialize, Serialize};

/// The values the next start brings where they differ from what runs now; a field is
/// absent when it stays as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pending {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_kib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_kib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_type: Option<String>,
    /// The whole boot order of the next start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_order: Option<Vec<String>>,
    /// Every drive of the next start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disks: Option<Vec<Disk>>,
    /// Every network interface of the next start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nics: Option<Vec<Nic>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graphics: Option<Vec<Graphics>>,
    /// The CPU model of the next start; empty for the hypervisor's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Features>,
}

fn differ<T: PartialEq + Clone>(live: &T, next: &T) -> Option<T> {
    (live != next).then(|| next.clone())
}

/// NICs without what only a running VM has (the host-side device name).
fn nics_as_configured(nics: &[Nic]) -> Vec<Nic> {
    nics.iter()
        .map(|n| Nic {
            target: None,
            ..n.clone()
        })
        .collect()
}

/// Drives without what an empty drive does not have: a format (QEMU's persistent
/// definition says `raw` for an empty CD-ROM, the running VM shows none).
fn disks_as_configured(disks: &[Disk]) -> Vec<Disk> {
    disks
        .iter()
        .map(|d| Disk {
            format: d.source.as_ref().and(d.format.clone()),
            ..d.clone()
        })
        .collect()
}

/// Graphics without the port an automatic port assignment gave the running VM.
fn graphics_as_configured(graphics: &[Graphics]) -> Vec<Graphics> {
    graphics
        .iter()
        .map(|g| Graphics {
            port: if g.autoport { None } else { g.port },
            ..g.clone()
        })
        .collect()
}

/// The changes `next` (the persistent definition) brings to a VM running as `live`, or
/// `None` when the next start brings nothing new.
pub fn pending(live: &DomainDef, next: &DomainDef) -> Option<Pending> {
    // libvirt expands host-model into the host's named CPU when the VM starts: that is
    // the same setting, not a change.
    let cpu_same = live.cpu_model == next.cpu_model
        || (next.cpu_model.as_deref() == Some("host-model")
            && !matches!(
                live.cpu_model.as_deref(),
                None | Some("host-passthrough" | "maximum")
            ));
    let live_nics = nics_as_configured(&live.nics);
    let next_nics = nics_as_configured(&next.nics);
    let p = Pending {
        memory_kib: differ(&live.memory_kib, &next.memory_kib),
        max_memory_kib: differ(&live.max_memory_kib, &next.max_memory_kib),
        vcpus: differ(&live.vcpus, &next.vcpus),
        domain_type: differ(&live.domain_type, &next.domain_type),
        boot_order: differ(&live.boot_order(), &next.boot_order()),
        // The next start's drives as they are, when they differ in more than that.
        disks: (disks_as_configured(&live.disks) != disks_as_configured(&next.disks))
            .then(|| next.disks.clone()),
        nics: (live_nics != next_nics).then_some(next_nics),
        graphics: differ(
            &graphics_as_configured(&live.graphics),
            &graphics_as_configured(&next.graphics),
        ),
        cpu_model: (!cpu_same).then(|| next.cpu_model.clone().unwrap_or_default()),
        rtc: differ(&live.rtc, &next.rtc).map(Option::unwrap_or_default),
        features: differ(&live.features, &next.features),
    };
    (p != Pending::default()).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> DomainDef {
        DomainDef {
            name: "vm".into(),
            domain_type: "kvm".into(),
            max_memory_kib: 1 << 20,
            memory_kib: 1 << 20,
            vcpus: 2,
            boot_devices: vec!["hd".into()],
            cpu_model: Some("Skylake-Client-IBRS".into()),
            disks: vec![
                Disk {
                    device: "disk".into(),
                    kind: "file".into(),
                    target: "vda".into(),
                    bus: Some("virtio".into()),
                    source: Some("/img/vm.qcow2".into()),
                    format: Some("qcow2".into()),
                    ..Disk::default()
                },
                // An empty CD-ROM drive: QEMU's persistent XML says raw, the live one nothing.
                Disk {
                    device: "cdrom".into(),
                    kind: "file".into(),
                    target: "sda".into(),
                    bus: Some("sata".into()),
                    readonly: true,
                    ..Disk::default()
                },
            ],
            nics: vec![Nic {
                kind: "network".into(),
                source: Some("default".into()),
                mac: Some("52:54:00:00:00:01".into()),
                target: Some("vnet0".into()),
                ..Nic::default()
            }],
            graphics: vec![Graphics {
                kind: "vnc".into(),
                port: Some(5900),
                autoport: true,
                ..Graphics::default()
            }],
            ..DomainDef::default()
        }
    }

    /// The persistent definition of the same VM, as libvirt shows it while it runs.
    fn stored() -> DomainDef {
        let mut d = running();
        d.cpu_model = Some("host-model".into());
        d.nics[0].target = None;
        d.graphics[0].port = None;
        d.disks[1].format = Some("raw".into());
        d
    }

    #[test]
    fn only_real_changes_are_pending() {
        assert_eq!(pending(&running(), &stored()), None);
        type Edit = Box<dyn Fn(&mut DomainDef)>;
        let cases: Vec<(Edit, Pending)> = vec![
            (
                Box::new(|d| {
                    d.max_memory_kib = 2 << 20;
                    d.memory_kib = 2 << 20;
                }),
                Pending {
                    memory_kib: Some(2 << 20),
                    max_memory_kib: Some(2 << 20),
                    ..Pending::default()
                },
            ),
            (
                Box::new(|d| d.vcpus = 4),
                Pending {
                    vcpus: Some(4),
                    ..Pending::default()
                },
            ),
            (
                Box::new(|d| {
                    d.boot_devices.clear();
                    d.disks[0].boot_order = Some(1);
                }),
                Pending {
                    boot_order: Some(vec!["vda".into()]),
                    disks: Some({
                        let mut disks = stored().disks;
                        disks[0].boot_order = Some(1);
                        disks
                    }),
                    ..Pending::default()
                },
            ),
            (
                Box::new(|d| d.disks[1].source = Some("/iso/a.iso".into())),
                Pending {
                    disks: Some({
                        let mut disks = stored().disks;
                        disks[1].source = Some("/iso/a.iso".into());
                        disks
                    }),
                    ..Pending::default()
                },
            ),
            (
                Box::new(|d| d.nics.clear()),
                Pending {
                    nics: Some(vec![]),
                    ..Pending::default()
                },
            ),
            (
                Box::new(|d| d.cpu_model = None),
                Pending {
                    cpu_model: Some(String::new()),
                    ..Pending::default()
                },
            ),
            (
                Box::new(|d| d.cpu_model = Some("host-passthrough".into())),
                Pending {
                    cpu_model: Some("host-passthrough".into()),
                    ..Pending::default()
                },
            ),
            (
                Box::new(|d| d.rtc = Some("localtime".into())),
                Pending {
                    rtc: Some("localtime".into()),
                    ..Pending::default()
                },
            ),
            (
                Box::new(|d| d.graphics[0].keymap = Some("de".into())),
                Pending {
                    graphics: Some(vec![Graphics {
                        kind: "vnc".into(),
                        autoport: true,
                        keymap: Some("de".into()),
                        ..Graphics::default()
                    }]),
                    ..Pending::default()
                },
            ),
        ];
        for (f, want) in cases {
            let mut next = stored();
            f(&mut next);
            assert_eq!(pending(&running(), &next), Some(want));
        }
        // A named CPU model that is not running yet is a change too.
        let mut live = running();
        live.cpu_model = None;
        assert_eq!(
            pending(&live, &stored()).and_then(|p| p.cpu_model),
            Some("host-model".into())
        );
        // Pending values serialise without the fields that stay.
        let json = serde_json::to_value(Pending {
            vcpus: Some(4),
            ..Pending::default()
        })
        .unwrap();
        assert_eq!(json, serde_json::json!({"vcpus": 4}));
    }
}
