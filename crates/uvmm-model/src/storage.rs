//! Storage pools and volumes: reading their libvirt XML, writing new volumes, and the one
//! rule that says whether a volume may be deleted.

use crate::units::unit_bytes;
use crate::xml::{self, Element, XmlError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PoolDef {
    pub name: String,
    pub uuid: Option<String>,
    /// `dir`, `fs`, `netfs`, `logical`, `iscsi`, `iscsi-direct`, `disk`, `rbd`, ...
    pub kind: String,
    pub target_path: Option<String>,
    /// Where the pool's storage comes from (device, host:dir, iSCSI IQN ...), for display.
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VolumeDef {
    pub name: String,
    /// `file`, `block`, `dir`, `network`, `netdir`, `ploop`.
    pub kind: String,
    pub path: Option<String>,
    pub format: Option<String>,
    pub capacity: u64,
    pub allocation: u64,
}

/// `<capacity unit='GiB'>20</capacity>` in bytes; libvirt's default unit here is bytes.
fn bytes_of(el: Option<&Element>) -> u64 {
    el.and_then(|e| {
        let n: u64 = e.text().trim().parse().ok()?;
        n.checked_mul(unit_bytes(e.attr("unit").unwrap_or("bytes"))?)
    })
    .unwrap_or(0)
}

pub fn parse_pool(input: &str) -> Result<PoolDef, XmlError> {
    let root = xml::parse_root(input, "pool")?;
    let src = root.child("source");
    let source = src.and_then(|s| {
        let host = s.child("host").and_then(|h| h.attr("name"));
        let dir = s.child("dir").and_then(|d| d.attr("path"));
        let dev = s.child("device").and_then(|d| d.attr("path"));
        let name = s.child_text("name");
        let iqn = s
            .child("initiator")
            .and_then(|i| i.child("iqn"))
            .and_then(|i| i.attr("name"));
        match (host, dir, dev, name) {
            (Some(h), Some(d), _, _) => Some(format!("{h}:{d}")),
            (Some(h), None, Some(d), _) => Some(format!("{h}:{d}")),
            (Some(h), None, None, Some(n)) => Some(format!("{h}/{n}")),
            (None, _, Some(d), _) => Some(d.to_string()),
            (None, _, None, Some(n)) => Some(n),
            (Some(h), None, None, None) => Some(
                iqn.map(|i| format!("{h} ({i})"))
                    .unwrap_or_else(|| h.to_string()),
            ),
            _ => None,
        }
    });
    Ok(PoolDef {
        name: root.child_text("name").unwrap_or_default(),
        uuid: root.child_text("uuid"),
        kind: root.attr("type").unwrap_or("").to_string(),
        target_path: root
            .find("target/path")
            .map(|p| p.text().trim().to_string()),
        source,
    })
}

pub fn parse_volume(input: &str) -> Result<VolumeDef, XmlError> {
    let root = xml::parse_root(input, "volume")?;
    Ok(VolumeDef {
        name: root.child_text("name").unwrap_or_default(),
        kind: root.attr("type").unwrap_or("file").to_string(),
        path: root
            .find("target/path")
            .map(|p| p.text().trim().to_string()),
        format: root
            .find("target/format")
            .and_then(|f| f.attr("type"))
            .map(str::to_string),
        capacity: bytes_of(root.child("capacity")),
        allocation: bytes_of(root.child("allocation")),
    })
}

/// XML for a new volume. `sparse` volumes start with allocation 0 and grow on demand.
pub fn volume_xml(name: &str, capacity: u64, format: Option<&str>, sparse: bool) -> String {
    let mut root = Element::new("volume")
        .with_child(Element::new("name").with_text(name))
        .with_child(
            Element::new("capacity")
                .with_attr("unit", "bytes")
                .with_text(capacity.to_string()),
        )
        .with_child(
            Element::new("allocation")
                .with_attr("unit", "bytes")
                .with_text(if sparse {
                    "0".to_string()
                } else {
                    capacity.to_string()
                }),
        );
    let mut target = Element::new("target");
    if let Some(f) = format {
        target.push_child(Element::new("format").with_attr("type", f));
    }
    root.push_child(target);
    root.to_xml()
}

/// Pool types whose volumes uvmm may delete: the storage is files or logical volumes the
/// pool itself manages. LUNs of iSCSI/SCSI/multipath pools belong to the storage system.
pub fn pool_allows_delete(kind: &str) -> bool {
    matches!(
        kind,
        "dir" | "fs" | "netfs" | "logical" | "disk" | "zfs" | "rbd" | "gluster" | "vstorage"
    )
}

/// Pool types whose storage several hosts can reach at once.
pub fn pool_is_shared(kind: &str) -> bool {
    matches!(
        kind,
        "netfs" | "iscsi" | "iscsi-direct" | "rbd" | "gluster" | "sheepdog" | "mpath" | "scsi"
    )
}

/// Why a volume must not be deleted, or `None` when it may be. `users` are the VMs other
/// than the one being deleted that reference the volume's path.
pub fn delete_refusal(pool_kind: Option<&str>, users: &[String]) -> Option<String> {
    match pool_kind {
        None => Some("it is not in any storage pool (uvmm deletes only pool volumes)".into()),
        Some(k) if !pool_allows_delete(k) => Some(format!(
            "its pool is of type {k}, whose volumes uvmm does not delete"
        )),
        Some(_) if !users.is_empty() => Some(format!("it is also used by {}", users.join(", "))),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_and_volumes_parse() {
        let p = parse_pool(
            "<pool type='netfs'><name>nfs</name><source><host name='nas'/><dir path='/export'/><format type='nfs'/></source><target><path>/mnt/nfs</path></target></pool>",
        )
        .unwrap();
        assert_eq!(
            (
                p.kind.as_str(),
                p.target_path.as_deref(),
                p.source.as_deref()
            ),
            ("netfs", Some("/mnt/nfs"), Some("nas:/export"))
        );
        let v = parse_volume(
            "<volume type='file'><name>a.qcow2</name><capacity unit='GiB'>20</capacity><allocation unit='bytes'>4096</allocation><target><path>/img/a.qcow2</path><format type='qcow2'/></target></volume>",
        )
        .unwrap();
        assert_eq!(v.capacity, 20 << 30);
        assert_eq!(v.allocation, 4096);
        assert_eq!(v.format.as_deref(), Some("qcow2"));
        assert!(parse_volume("<pool/>").is_err());
    }

    #[test]
    fn new_volume_xml_round_trips() {
        let xml = volume_xml("disk<1>.raw", 1 << 30, Some("raw"), true);
        let v = parse_volume(&xml).unwrap();
        assert_eq!(
            (v.name.as_str(), v.capacity, v.allocation),
            ("disk<1>.raw", 1 << 30, 0)
        );
        let full = parse_volume(&volume_xml("b", 4096, None, false)).unwrap();
        assert_eq!(full.allocation, 4096);
    }

    #[test]
    fn deletion_rule() {
        assert_eq!(delete_refusal(Some("dir"), &[]), None);
        assert!(delete_refusal(None, &[])
            .unwrap()
            .contains("not in any storage pool"));
        assert!(delete_refusal(Some("iscsi"), &[])
            .unwrap()
            .contains("iscsi"));
        assert!(delete_refusal(Some("dir"), &["web-02@kvm1".into()])
            .unwrap()
            .contains("web-02@kvm1"));
    }
}
