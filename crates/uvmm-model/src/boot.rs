//! "Set as boot medium" and the pygrub preflight.
//!
//! Xen PV guests boot through pygrub, which reads the *first* disk of the list: the chosen
//! drive moves to the front (only while the VM is shut off). libvirt keeps disks sorted by
//! bus and target name, so "first" means "lowest target": the chosen drive takes the first
//! target (`xvda`) and the drives before it move one target down. HVM guests get a
//! per-device boot order with the chosen drive first; every other device keeps its
//! relative order.
//!
//! The preflight reads an image's partition table (MBR boot flag, GPT legacy-BIOS-bootable
//! attribute). pygrub needs a bootable partition or the kernel on the first partition.

use crate::domain::DomainDef;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootError {
    #[error("the VM has no drive {0}")]
    NoDrive(String),
    #[error("the disk order of a Xen PV VM can only change while it is shut off")]
    Running,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootChange {
    /// The drive already was the boot medium.
    Unchanged,
    /// Per-device boot order changed (HVM).
    Changed,
    /// Targets were renamed (Xen PV): `(old, new)` pairs, to apply to the XML as they are
    /// so that every drive keeps its own settings.
    Retargeted(Vec<(String, String)>),
}

/// Make `target` the boot medium of `def`.
pub fn set_boot_medium(
    def: &mut DomainDef,
    target: &str,
    running: bool,
) -> Result<BootChange, BootError> {
    let pos = def
        .disks
        .iter()
        .position(|d| d.target == target)
        .ok_or_else(|| BootError::NoDrive(target.to_string()))?;
    if def.is_xen_pv() {
        let bus = def.disks[pos].bus.clone();
        // The drives of the same bus, in target order.
        let mut group: Vec<usize> = (0..def.disks.len())
            .filter(|i| def.disks[*i].bus == bus)
            .collect();
        group.sort_by_key(|i| target_rank(&def.disks[*i].target));
        if group.first() == Some(&pos) {
            return Ok(BootChange::Unchanged);
        }
        if running {
            return Err(BootError::Running);
        }
        let slots: Vec<String> = group.iter().map(|i| def.disks[*i].target.clone()).collect();
        let order: Vec<usize> = std::iter::once(pos)
            .chain(group.iter().copied().filter(|i| *i != pos))
            .collect();
        let mut renames = Vec::new();
        for (slot, idx) in slots.iter().zip(&order) {
            if def.disks[*idx].target != *slot {
                renames.push((def.disks[*idx].target.clone(), slot.clone()));
                def.disks[*idx].target = slot.clone();
            }
        }
        def.disks
            .sort_by_key(|d| (d.bus.clone(), target_rank(&d.target)));
        return Ok(BootChange::Retargeted(renames));
    }
    // HVM: the current effective order as a list of device references.
    // Every device with a boot order takes part (`<hostdev>`, `<redirdev>`, ... too):
    // libvirt refuses two devices with the same order.
    #[derive(PartialEq, Clone, Copy)]
    enum Dev {
        Disk(usize),
        Nic(usize),
        Other(usize),
    }
    let mut current: Vec<Dev> = Vec::new();
    let has_per_device = def.disks.iter().any(|d| d.boot_order.is_some())
        || def.nics.iter().any(|n| n.boot_order.is_some())
        || !def.other_boot.is_empty();
    if has_per_device {
        let mut ordered: Vec<(u32, Dev)> = def
            .disks
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.boot_order.map(|o| (o, Dev::Disk(i))))
            .chain(
                def.nics
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| n.boot_order.map(|o| (o, Dev::Nic(i)))),
            )
            .chain(
                def.other_boot
                    .iter()
                    .enumerate()
                    .map(|(i, b)| (b.order, Dev::Other(i))),
            )
            .collect();
        ordered.sort_by_key(|(o, _)| *o);
        current = ordered.into_iter().map(|(_, d)| d).collect();
    } else {
        for dev in &def.boot_devices {
            match dev.as_str() {
                "hd" => current.extend(
                    def.disks
                        .iter()
                        .enumerate()
                        .filter(|(_, d)| d.device == "disk")
                        .map(|(i, _)| Dev::Disk(i)),
                ),
                "cdrom" => current.extend(
                    def.disks
                        .iter()
                        .enumerate()
                        .filter(|(_, d)| d.device == "cdrom")
                        .map(|(i, _)| Dev::Disk(i)),
                ),
                "fd" => current.extend(
                    def.disks
                        .iter()
                        .enumerate()
                        .filter(|(_, d)| d.device == "floppy")
                        .map(|(i, _)| Dev::Disk(i)),
                ),
                "network" => current.extend((0..def.nics.len()).map(Dev::Nic)),
                _ => {}
            }
        }
    }
    if current.first() == Some(&Dev::Disk(pos)) {
        return Ok(BootChange::Unchanged);
    }
    current.retain(|d| *d != Dev::Disk(pos));
    current.insert(0, Dev::Disk(pos));
    for d in &mut def.disks {
        d.boot_order = None;
    }
    for n in &mut def.nics {
        n.boot_order = None;
    }
    for (dev, order) in current.iter().zip(1u32..) {
        match *dev {
            Dev::Disk(d) => def.disks[d].boot_order = Some(order),
            Dev::Nic(n) => def.nics[n].boot_order = Some(order),
            Dev::Other(o) => def.other_boot[o].order = order,
        }
    }
    // libvirt refuses <os><boot dev> together with per-device boot order.
    def.boot_devices.clear();
    Ok(BootChange::Changed)
}

/// Sort key of a target name: (prefix, index), so `xvdb` < `xvdaa`.
fn target_rank(target: &str) -> (String, usize) {
    for prefix in ["xvd", "vd", "sd", "hd", "fd"] {
        if let Some(rest) = target.strip_prefix(prefix) {
            if let Some(i) = crate::targets::suffix_to_index(rest) {
                return (prefix.to_string(), i);
            }
        }
    }
    (target.to_string(), usize::MAX)
}

/// What the partition table of an image says about booting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionTable {
    /// No MBR signature: a bare file system or an empty image.
    None,
    Mbr {
        partitions: Vec<Partition>,
    },
    Gpt {
        partitions: Vec<Partition>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// 1-based partition number.
    pub number: u32,
    pub bootable: bool,
}

/// Bytes the preflight needs from the start of the image (MBR, GPT header, 128 entries).
pub const INSPECT_BYTES: usize = 512 * 34;

fn u32le(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
}
fn u64le(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
}

/// Read the partition table from the first bytes of a disk image (see [`INSPECT_BYTES`]).
pub fn read_partition_table(b: &[u8]) -> PartitionTable {
    if b.len() < 512 || b[510] != 0x55 || b[511] != 0xAA {
        return PartitionTable::None;
    }
    let entries: Vec<(u8, u8)> = (0..4)
        .map(|i| (b[446 + i * 16], b[446 + i * 16 + 4]))
        .collect();
    if entries.iter().any(|(_, t)| *t == 0xEE) && b.get(512..520) == Some(b"EFI PART") {
        // Values beyond the address space are beyond the bytes read: the entries are
        // not there.
        let lba = usize::try_from(u64le(b, 512 + 72).unwrap_or(2)).unwrap_or(usize::MAX);
        let count = u32le(b, 512 + 80).unwrap_or(0).min(128);
        let size = usize::try_from(u32le(b, 512 + 84).unwrap_or(128)).unwrap_or(usize::MAX);
        let mut partitions = Vec::new();
        if (128..=512).contains(&size) {
            for (i, number) in (0..count).zip(1u32..) {
                let offset = usize::try_from(i).ok().and_then(|i| i.checked_mul(size));
                let entry = lba
                    .checked_mul(512)
                    .and_then(|start| start.checked_add(offset?))
                    .and_then(|at| b.get(at..at.checked_add(size)?));
                let Some(entry) = entry else { break };
                if entry[..16].iter().all(|x| *x == 0) {
                    continue;
                }
                let attrs = u64le(entry, 48).unwrap_or(0);
                partitions.push(Partition {
                    number,
                    bootable: attrs & (1 << 2) != 0,
                });
            }
        }
        return PartitionTable::Gpt { partitions };
    }
    let partitions = entries
        .iter()
        .zip(1u32..)
        .filter(|((_, t), _)| *t != 0)
        .map(|((flag, _), number)| Partition {
            number,
            bootable: *flag == 0x80,
        })
        .collect();
    PartitionTable::Mbr { partitions }
}

/// The pygrub preflight in words: `None` when a partition is marked bootable.
pub fn pygrub_warning(table: &PartitionTable) -> Option<String> {
    match table {
        PartitionTable::None => Some(
            "the image has no partition table: pygrub can only boot it if the image holds a file system with /boot on it"
                .into(),
        ),
        PartitionTable::Mbr { partitions } | PartitionTable::Gpt { partitions } => {
            let kind = if matches!(table, PartitionTable::Gpt { .. }) {
                "GPT legacy-BIOS-bootable attribute"
            } else {
                "MBR boot flag"
            };
            if partitions.is_empty() {
                Some("the partition table is empty: pygrub will find no kernel".into())
            } else if partitions.iter().any(|p| p.bootable) {
                None
            } else {
                Some(format!(
                    "no partition is marked bootable ({kind}): pygrub then needs the kernel on the first partition"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Disk, Nic};

    fn disk(target: &str, device: &str, bus: &str) -> Disk {
        Disk {
            device: device.into(),
            kind: "file".into(),
            target: target.into(),
            bus: Some(bus.into()),
            source: Some(format!("/img/{target}")),
            ..Disk::default()
        }
    }

    fn targets(d: &DomainDef) -> Vec<&str> {
        d.disks.iter().map(|x| x.target.as_str()).collect()
    }

    #[test]
    fn xen_pv_moves_the_disk_first() {
        let mut d = DomainDef {
            os_type: "linux".into(),
            disks: vec![
                disk("xvda", "disk", "xen"),
                disk("xvdb", "disk", "xen"),
                disk("xvdc", "disk", "xen"),
            ],
            ..DomainDef::default()
        };
        let change = set_boot_medium(&mut d, "xvdc", false).unwrap();
        assert_eq!(
            change,
            BootChange::Retargeted(vec![
                ("xvdc".into(), "xvda".into()),
                ("xvda".into(), "xvdb".into()),
                ("xvdb".into(), "xvdc".into())
            ])
        );
        // The image that was on xvdc is now first; the others moved down, in order.
        let sources: Vec<&str> = d
            .disks
            .iter()
            .map(|x| x.source.as_deref().unwrap())
            .collect();
        assert_eq!(targets(&d), ["xvda", "xvdb", "xvdc"]);
        assert_eq!(sources, ["/img/xvdc", "/img/xvda", "/img/xvdb"]);
        assert_eq!(
            set_boot_medium(&mut d, "xvda", true),
            Ok(BootChange::Unchanged)
        );
        assert_eq!(
            set_boot_medium(&mut d, "xvdb", true),
            Err(BootError::Running)
        );
        assert_eq!(
            set_boot_medium(&mut d, "xvdz", false),
            Err(BootError::NoDrive("xvdz".into()))
        );
    }

    #[test]
    fn every_device_with_a_boot_order_is_renumbered() {
        use crate::domain::DeviceBoot;
        let other = |element: &str, index: usize, order: u32| DeviceBoot {
            element: element.into(),
            index,
            order,
        };
        // (orders of vda, sda, hostdev#1, redirdev#1 before; target; wanted boot order)
        type Case = (
            [Option<u32>; 2],
            Vec<DeviceBoot>,
            &'static str,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            // A USB redirection and a passed-through device boot before the disk.
            (
                [Some(3), None],
                vec![other("redirdev", 0, 1), other("hostdev", 0, 2)],
                "sda",
                vec!["sda", "redirdev#1", "hostdev#1", "vda"],
            ),
            // Gaps in the numbering close up.
            (
                [Some(5), Some(9)],
                vec![other("hostdev", 1, 7)],
                "sda",
                vec!["sda", "vda", "hostdev#2"],
            ),
            // Only other devices had an order.
            (
                [None, None],
                vec![other("hostdev", 0, 1)],
                "vda",
                vec!["vda", "hostdev#1"],
            ),
        ];
        for (disk_orders, others, target, want) in cases {
            let mut d = DomainDef {
                os_type: "hvm".into(),
                disks: vec![disk("vda", "disk", "virtio"), disk("sda", "cdrom", "sata")],
                other_boot: others.clone(),
                ..DomainDef::default()
            };
            d.disks[0].boot_order = disk_orders[0];
            d.disks[1].boot_order = disk_orders[1];
            assert_eq!(
                set_boot_medium(&mut d, target, false),
                Ok(BootChange::Changed)
            );
            assert_eq!(d.boot_order(), want, "{others:?}");
            // Orders are 1..n without repeats: what libvirt insists on.
            let mut orders: Vec<u32> = d
                .disks
                .iter()
                .filter_map(|x| x.boot_order)
                .chain(d.other_boot.iter().map(|b| b.order))
                .collect();
            orders.sort();
            let expected: Vec<u32> = (1u32..).take(want.len()).collect();
            assert_eq!(orders, expected);
        }
    }

    #[test]
    fn hvm_gets_per_device_order() {
        let mut d = DomainDef {
            os_type: "hvm".into(),
            boot_devices: vec!["hd".into(), "cdrom".into(), "network".into()],
            disks: vec![
                disk("vda", "disk", "virtio"),
                disk("vdb", "disk", "virtio"),
                disk("sda", "cdrom", "sata"),
            ],
            nics: vec![Nic {
                kind: "network".into(),
                source: Some("default".into()),
                ..Nic::default()
            }],
            ..DomainDef::default()
        };
        set_boot_medium(&mut d, "sda", false).unwrap();
        assert!(d.boot_devices.is_empty());
        assert_eq!(d.boot_order(), ["sda", "vda", "vdb", "nic:?"]);
        // Again with per-device orders present: vdb first, the others keep their order.
        set_boot_medium(&mut d, "vdb", true).unwrap();
        assert_eq!(d.boot_order(), ["vdb", "sda", "vda", "nic:?"]);
        assert_eq!(
            set_boot_medium(&mut d, "vdb", true),
            Ok(BootChange::Unchanged)
        );
        // The disk list order itself is untouched for HVM.
        assert_eq!(targets(&d), ["vda", "vdb", "sda"]);
    }

    fn mbr(flags: &[(u8, u8)]) -> Vec<u8> {
        let mut b = vec![0u8; INSPECT_BYTES];
        for (i, (flag, kind)) in flags.iter().enumerate() {
            b[446 + i * 16] = *flag;
            b[446 + i * 16 + 4] = *kind;
        }
        b[510] = 0x55;
        b[511] = 0xAA;
        b
    }

    fn gpt(attrs: &[u64]) -> Vec<u8> {
        let mut b = mbr(&[(0, 0xEE)]);
        b[512..520].copy_from_slice(b"EFI PART");
        b[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
        b[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
        b[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        for (i, a) in attrs.iter().enumerate() {
            let at = 1024 + i * 128;
            b[at] = 0xAF; // non-zero type GUID
            b[at + 48..at + 56].copy_from_slice(&a.to_le_bytes());
        }
        b
    }

    #[test]
    fn partition_tables() {
        let table = [
            (vec![0u8; 512], PartitionTable::None),
            (
                mbr(&[(0x80, 0x83)]),
                PartitionTable::Mbr {
                    partitions: vec![Partition {
                        number: 1,
                        bootable: true,
                    }],
                },
            ),
            (
                mbr(&[(0, 0x83), (0, 0x82)]),
                PartitionTable::Mbr {
                    partitions: vec![
                        Partition {
                            number: 1,
                            bootable: false,
                        },
                        Partition {
                            number: 2,
                            bootable: false,
                        },
                    ],
                },
            ),
            (
                gpt(&[0, 4]),
                PartitionTable::Gpt {
                    partitions: vec![
                        Partition {
                            number: 1,
                            bootable: false,
                        },
                        Partition {
                            number: 2,
                            bootable: true,
                        },
                    ],
                },
            ),
            (
                gpt(&[1]),
                PartitionTable::Gpt {
                    partitions: vec![Partition {
                        number: 1,
                        bootable: false,
                    }],
                },
            ),
            (vec![0x55; 100], PartitionTable::None),
        ];
        for (bytes, want) in table {
            assert_eq!(read_partition_table(&bytes), want);
        }
        assert_eq!(
            pygrub_warning(&read_partition_table(&mbr(&[(0x80, 0x83)]))),
            None
        );
        assert!(pygrub_warning(&read_partition_table(&mbr(&[(0, 0x83)])))
            .unwrap()
            .contains("MBR boot flag"));
        assert!(pygrub_warning(&read_partition_table(&gpt(&[0])))
            .unwrap()
            .contains("GPT"));
        assert!(pygrub_warning(&PartitionTable::None)
            .unwrap()
            .contains("no partition table"));
        // A corrupt GPT header with an absurd entry location does not panic.
        let mut bad = gpt(&[4]);
        bad[512 + 72..512 + 80].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            read_partition_table(&bad),
            PartitionTable::Gpt { partitions: vec![] }
        );
    }
}
