//! Cloning a VM's definition: the pure rewrite (new name and UUID, new or kept MACs, disks
//! pointed at their copies, VNC port chosen anew, per-VM files dropped) and the XML of the
//! cloned volumes. The libvirt side (copying the images) is in `uvmm-libvirt`.

use crate::storage::VolumeDef;
use crate::uuid::normalize_uuid;
use crate::xml::{self, Element, XmlError};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CloneError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("invalid clone name '{0}'")]
    Name(String),
    #[error("invalid UUID '{0}'")]
    Uuid(String),
    #[error("the definition is the source's own UUID; a clone needs a new one")]
    SameUuid,
    #[error("{needed} new MAC addresses are needed, {given} were given")]
    Macs { needed: usize, given: usize },
    #[error("invalid MAC address '{0}'")]
    Mac(String),
    #[error("disk {target} ({path}) has no copy: every writable disk needs a new image")]
    DiskNotMapped { target: String, path: String },
}

/// How the clone's definition differs from the source's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneSpec {
    pub name: String,
    pub uuid: String,
    /// `None` keeps the MACs (a clone that replaces its source); otherwise one new MAC per
    /// `<interface>`, in document order.
    pub new_macs: Option<Vec<String>>,
    /// Source image path → the clone's image path. Writable disks must all be mapped;
    /// read-only media (CD-ROMs) and shareable disks stay as they are when unmapped.
    pub disks: HashMap<String, String>,
}

/// What the rewrite did, for the caller's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneRewrite {
    pub xml: String,
    /// (old MAC, new MAC) per interface whose MAC changed.
    pub macs: Vec<(String, String)>,
    /// (target, old path, new path) per disk.
    pub disks: Vec<(String, String, String)>,
    /// What was dropped because it belongs to the source alone (e.g. `nvram`).
    pub dropped: Vec<String>,
}

/// A MAC address from QEMU's locally administered range `52:54:00` and three bytes the
/// caller chose at random.
pub fn qemu_mac(random: [u8; 3]) -> String {
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        random[0], random[1], random[2]
    )
}

fn valid_mac(m: &str) -> bool {
    let parts: Vec<&str> = m.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
        // Multicast addresses cannot be a NIC's.
        && u8::from_str_radix(parts[0], 16).is_ok_and(|b| b & 1 == 0)
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 200
        && !n.contains('/')
        && !n.chars().any(|c| c.is_control())
        && n.trim() == n
}

/// Rewrite the source's definition (inactive XML) into the clone's.
pub fn rewrite_for_clone(source_xml: &str, spec: &CloneSpec) -> Result<CloneRewrite, CloneError> {
    if !valid_name(&spec.name) {
        return Err(CloneError::Name(spec.name.clone()));
    }
    let uuid = normalize_uuid(&spec.uuid).map_err(|_| CloneError::Uuid(spec.uuid.clone()))?;
    let mut root = xml::parse_root(source_xml, "domain")?;
    if root
        .child_text("uuid")
        .and_then(|u| normalize_uuid(u.trim()).ok())
        .is_some_and(|u| u == uuid)
    {
        return Err(CloneError::SameUuid);
    }
    root.ensure_child("name").set_text(spec.name.clone());
    root.ensure_child("uuid").set_text(uuid);
    let mut dropped = Vec::new();
    // Per-VM files libvirt makes anew for the clone: the UEFI variable store.
    if let Some(os) = root.child_mut("os") {
        if os.remove_children(|e| e.local_name() == "nvram") > 0 {
            dropped.push("nvram".to_string());
        }
    }
    let mut macs = Vec::new();
    let mut disks = Vec::new();
    let Some(devices) = root.child_mut("devices") else {
        return Ok(CloneRewrite {
            xml: root.to_xml(),
            macs,
            disks,
            dropped,
        });
    };
    let nics = devices
        .elements()
        .filter(|e| e.local_name() == "interface")
        .count();
    if let Some(new) = &spec.new_macs {
        if new.len() < nics {
            return Err(CloneError::Macs {
                needed: nics,
                given: new.len(),
            });
        }
        if let Some(bad) = new.iter().find(|m| !valid_mac(m)) {
            return Err(CloneError::Mac(bad.clone()));
        }
    }
    let mut nic_index = 0;
    for dev in devices.elements_mut() {
        match dev.local_name() {
            "interface" => {
                if let Some(new) = &spec.new_macs {
                    let mac = new[nic_index].to_ascii_lowercase();
                    let el = dev.ensure_child("mac");
                    let old = el.attr("address").unwrap_or("").to_string();
                    el.set_attr("address", mac.clone());
                    macs.push((old, mac));
                }
                // The host-side device name (vnetN) belongs to the running source.
                dev.remove_children(|e| e.local_name() == "target");
                nic_index += 1;
            }
            "disk" => {
                let target = dev
                    .child("target")
                    .and_then(|t| t.attr("dev"))
                    .unwrap_or("")
                    .to_string();
                let readonly = dev.child("readonly").is_some()
                    || dev.child("shareable").is_some()
                    || matches!(dev.attr("device"), Some("cdrom" | "floppy"));
                let Some(source) = dev.child_mut("source") else {
                    continue;
                };
                let key = ["file", "dev"]
                    .into_iter()
                    .find(|k| source.attr(k).is_some());
                let Some(key) = key else { continue };
                let old = source.attr(key).unwrap_or("").to_string();
                match spec.disks.get(&old) {
                    Some(new) => {
                        source.set_attr(key, new.clone());
                        disks.push((target, old, new.clone()));
                        // The copy's own chain is what libvirt probes; a stale
                        // <backingStore> of the source would mislead it.
                        dev.remove_children(|e| e.local_name() == "backingStore");
                    }
                    None if readonly => {}
                    None => {
                        return Err(CloneError::DiskNotMapped { target, path: old });
                    }
                }
            }
            // Two VMs cannot listen on one port: the clone gets one when it starts.
            "graphics"
                if dev.attr("port").is_some_and(|p| p != "-1")
                    || dev.attr("autoport") == Some("no") =>
            {
                dev.set_attr("autoport", "yes");
                dev.remove_attr("port");
                dev.remove_attr("websocket");
                dropped.push("graphics port".to_string());
            }
            _ => {}
        }
    }
    Ok(CloneRewrite {
        xml: root.to_xml(),
        macs,
        disks,
        dropped,
    })
}

/// XML of a full copy of `source` named `name` (same capacity and format), for
/// `virStorageVolCreateXMLFrom`.
pub fn copy_volume_xml(name: &str, source: &VolumeDef) -> String {
    crate::storage::volume_xml(name, source.capacity, source.format.as_deref(), true)
}

/// XML of a linked clone: a qcow2 volume `name` of `capacity` bytes whose backing file is
/// `backing_path` (in `backing_format`).
pub fn linked_volume_xml(
    name: &str,
    capacity: u64,
    backing_path: &str,
    backing_format: &str,
) -> String {
    let mut root = xml::parse(&crate::storage::volume_xml(
        name,
        capacity,
        Some("qcow2"),
        true,
    ))
    .unwrap_or_else(|_| Element::new("volume"));
    root.push_child(
        Element::new("backingStore")
            .with_child(Element::new("path").with_text(backing_path))
            .with_child(Element::new("format").with_attr("type", backing_format)),
    );
    root.to_xml()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "<domain type='kvm'><name>web</name><uuid>11111111-2222-4333-8444-555555555555</uuid>\
<os><type>hvm</type><nvram>/var/lib/libvirt/qemu/nvram/web_VARS.fd</nvram></os>\
<devices>\
<disk type='file' device='disk'><source file='/p/web.qcow2'/><backingStore/><target dev='vda'/></disk>\
<disk type='file' device='cdrom'><source file='/iso/x.iso'/><target dev='sda'/><readonly/></disk>\
<interface type='bridge'><mac address='52:54:00:aa:bb:cc'/><source bridge='br0'/><target dev='vnet3'/></interface>\
<interface type='network'><mac address='52:54:00:aa:bb:cd'/><source network='default'/></interface>\
<graphics type='vnc' port='5901' autoport='no'/>\
</devices><metadata><uvmm:notes xmlns:uvmm='https://univention.de/uvmm/1'>keep me</uvmm:notes></metadata></domain>";

    fn spec() -> CloneSpec {
        CloneSpec {
            name: "web-clone".into(),
            uuid: "99999999-2222-4333-8444-555555555555".into(),
            new_macs: Some(vec!["52:54:00:01:02:03".into(), "52:54:00:01:02:04".into()]),
            disks: [("/p/web.qcow2".to_string(), "/p/web-clone.qcow2".to_string())]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn rewrite_cases() {
        type Check = fn(&Result<CloneRewrite, CloneError>);
        let cases: Vec<(&str, CloneSpec, Check)> = vec![
            ("full rewrite", spec(), |r| {
                let r = r.as_ref().unwrap();
                let x = &r.xml;
                assert!(x.contains("<name>web-clone</name>"), "{x}");
                assert!(x.contains("99999999-2222-4333-8444-555555555555"));
                assert!(!x.contains("11111111-2222"));
                assert!(x.contains("/p/web-clone.qcow2") && !x.contains("/p/web.qcow2"));
                assert!(x.contains("/iso/x.iso"), "read-only media stay");
                assert!(x.contains("52:54:00:01:02:03") && x.contains("52:54:00:01:02:04"));
                assert!(!x.contains("52:54:00:aa:bb:cc"));
                assert!(!x.contains("vnet3") && !x.contains("nvram") && !x.contains("5901"));
                assert!(!x.contains("backingStore"));
                assert!(
                    x.contains("autoport=") && x.contains("keep me"),
                    "notes copied"
                );
                assert_eq!(r.macs.len(), 2);
                assert_eq!(
                    r.disks,
                    vec![(
                        "vda".into(),
                        "/p/web.qcow2".into(),
                        "/p/web-clone.qcow2".into()
                    )]
                );
                assert_eq!(
                    r.dropped,
                    vec!["nvram".to_string(), "graphics port".to_string()]
                );
            }),
            (
                "kept MACs",
                CloneSpec {
                    new_macs: None,
                    ..spec()
                },
                |r| {
                    let r = r.as_ref().unwrap();
                    assert!(r.xml.contains("52:54:00:aa:bb:cc") && r.macs.is_empty());
                },
            ),
            (
                "too few MACs",
                CloneSpec {
                    new_macs: Some(vec!["52:54:00:01:02:03".into()]),
                    ..spec()
                },
                |r| {
                    assert_eq!(
                        r,
                        &Err(CloneError::Macs {
                            needed: 2,
                            given: 1
                        })
                    );
                },
            ),
            (
                "multicast MAC",
                CloneSpec {
                    new_macs: Some(vec!["01:00:5e:00:00:01".into(), "52:54:00:01:02:04".into()]),
                    ..spec()
                },
                |r| {
                    assert_eq!(r, &Err(CloneError::Mac("01:00:5e:00:00:01".into())));
                },
            ),
            (
                "unmapped disk",
                CloneSpec {
                    disks: HashMap::new(),
                    ..spec()
                },
                |r| {
                    assert!(
                        matches!(r, Err(CloneError::DiskNotMapped { target, .. }) if target == "vda")
                    );
                },
            ),
            (
                "same UUID",
                CloneSpec {
                    uuid: "11111111-2222-4333-8444-555555555555".into(),
                    ..spec()
                },
                |r| {
                    assert_eq!(r, &Err(CloneError::SameUuid));
                },
            ),
            (
                "bad UUID",
                CloneSpec {
                    uuid: "nope".into(),
                    ..spec()
                },
                |r| {
                    assert_eq!(r, &Err(CloneError::Uuid("nope".into())));
                },
            ),
            (
                "bad name",
                CloneSpec {
                    name: "a/b".into(),
                    ..spec()
                },
                |r| {
                    assert_eq!(r, &Err(CloneError::Name("a/b".into())));
                },
            ),
        ];
        for (what, spec, check) in cases {
            let r = rewrite_for_clone(SRC, &spec);
            eprintln!("case: {what}");
            check(&r);
        }
    }

    #[test]
    fn autoport_graphics_stay_untouched() {
        let src = "<domain><name>a</name><uuid>11111111-2222-4333-8444-555555555555</uuid><devices><graphics type='vnc' port='-1' autoport='yes'/></devices></domain>";
        let r = rewrite_for_clone(
            src,
            &CloneSpec {
                name: "b".into(),
                uuid: "21111111-2222-4333-8444-555555555555".into(),
                new_macs: Some(vec![]),
                disks: HashMap::new(),
            },
        )
        .unwrap();
        assert!(r.dropped.is_empty());
        assert!(
            r.xml.contains("port=\"-1\"") || r.xml.contains("port='-1'"),
            "{}",
            r.xml
        );
    }

    #[test]
    fn volume_xmls() {
        let v = VolumeDef {
            name: "a.qcow2".into(),
            kind: "file".into(),
            path: Some("/p/a.qcow2".into()),
            format: Some("qcow2".into()),
            capacity: 1 << 26,
            allocation: 1 << 20,
        };
        let c = crate::storage::parse_volume(&copy_volume_xml("b.qcow2", &v)).unwrap();
        assert_eq!(
            (c.name.as_str(), c.capacity, c.format.as_deref()),
            ("b.qcow2", 1 << 26, Some("qcow2"))
        );
        let l = linked_volume_xml("c.qcow2", 1 << 26, "/p/a.qcow2", "qcow2");
        assert!(l.contains("<backingStore><path>/p/a.qcow2</path>"), "{l}");
        let parsed = crate::storage::parse_volume(&l).unwrap();
        assert_eq!(parsed.format.as_deref(), Some("qcow2"));
        assert_eq!(qemu_mac([1, 0xab, 255]), "52:54:00:01:ab:ff");
    }
}
