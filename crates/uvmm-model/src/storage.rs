//! Storage pools and volumes: reading their libvirt XML, writing new volumes, and the one
//! rule that says whether a volume may be deleted.

use crate::units::{format_bytes, unit_bytes};
use crate::validate::{host_path, object_name, Invalid};
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

/// The largest qcow2 image with the cluster size libvirt creates (64 KiB): the L1 table
/// may take 32 MiB, so 4 Mi L2 tables of 8192 clusters of 64 KiB, 2 PiB.
pub const QCOW2_MAX_BYTES: u64 = 1 << 51;

/// The largest image QEMU opens: its block layer keeps lengths as signed 64-bit numbers
/// aligned to 1 GiB.
pub const QEMU_MAX_BYTES: u64 = (i64::MAX as u64) & !((1 << 30) - 1);

/// What a pool offers a new or growing volume (as the pool last reported it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRoom {
    pub name: String,
    /// Size of the whole pool in bytes; 0 when unknown (the checks then skip the pool).
    pub capacity: u64,
    pub available: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeSizeError {
    #[error("a disk size of zero is not a disk")]
    Zero,
    #[error("a disk of {} ({} bytes) is more than libvirt can represent (at most {} bytes)", format_bytes(*.0), .0, crate::units::LIBVIRT_MAX_BYTES)]
    Libvirt(u64),
    #[error("a {format} image holds at most {} ({max} bytes); {} ({size} bytes) does not fit", format_bytes(*max), format_bytes(*size))]
    Format { format: String, size: u64, max: u64 },
    #[error("pool '{pool}' holds {} in all: a disk of {} could never be filled", format_bytes(*capacity), format_bytes(*size))]
    Pool {
        pool: String,
        size: u64,
        capacity: u64,
    },
    #[error("pool '{pool}' has {} free: a fully allocated disk of {} does not fit", format_bytes(*available), format_bytes(*size))]
    Free {
        pool: String,
        size: u64,
        available: u64,
    },
}

/// Whether a volume of `size` bytes in `format` can be made in (or grown to in) `pool`.
/// Sparse volumes may overcommit the free space, but not the pool's whole capacity.
pub fn check_volume_size(
    size: u64,
    format: Option<&str>,
    pool: &PoolRoom,
    preallocate: bool,
) -> Result<(), VolumeSizeError> {
    if size == 0 {
        return Err(VolumeSizeError::Zero);
    }
    if size > crate::units::LIBVIRT_MAX_BYTES {
        return Err(VolumeSizeError::Libvirt(size));
    }
    let max = match format {
        Some("qcow2") => Some(QCOW2_MAX_BYTES),
        Some("raw") | None => Some(QEMU_MAX_BYTES),
        _ => None,
    };
    if let Some(max) = max.filter(|m| size > *m) {
        return Err(VolumeSizeError::Format {
            format: format.unwrap_or("raw").to_string(),
            size,
            max,
        });
    }
    if pool.capacity > 0 {
        if size > pool.capacity {
            return Err(VolumeSizeError::Pool {
                pool: pool.name.clone(),
                size,
                capacity: pool.capacity,
            });
        }
        if preallocate && size > pool.available {
            return Err(VolumeSizeError::Free {
                pool: pool.name.clone(),
                size,
                available: pool.available,
            });
        }
    }
    Ok(())
}

/// What a new pool is made of. Which fields are needed depends on the kind (see
/// [`pool_xml`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewPool {
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}$")
    )]
    pub name: String,
    /// `dir`, `fs`, `netfs`, `logical`, `iscsi` or `iscsi-direct`. Which other fields are
    /// needed depends on the kind: dir: `target_path`; fs: `source_path`, `target_path`;
    /// netfs: `source_host`, `source_path`, `target_path`; logical: `source_name`;
    /// iscsi: `source_host`, `source_name`; iscsi-direct: `source_host`, `source_name`,
    /// `initiator_iqn` (400 when one is missing).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^(dir|fs|netfs|logical|iscsi|iscsi-direct)$")
    )]
    pub kind: String,
    /// Where the pool appears on the host (dir, fs, netfs, logical, iscsi): an absolute
    /// path without `..` segments, at most 4096 bytes.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 4096,
            pattern = "^(/([^/\\x00-\\x1F\\x7F-\\x9F]*[^/.\\x00-\\x1F\\x7F-\\x9F][^/\\x00-\\x1F\\x7F-\\x9F]*|\\.?|\\.{3,}))+$"
        )
    )]
    pub target_path: Option<String>,
    /// Storage server (netfs, iscsi, iscsi-direct): `host` or `host:port`.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 259,
            pattern = "^([A-Za-z0-9.-]{1,253}|[A-Za-z0-9.-]{1,253}:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[0-5]?[0-9]{1,4})|[A-Za-z0-9.-]*:[A-Za-z0-9.-]*:[A-Za-z0-9.:-]*)$"
        )
    )]
    pub source_host: Option<String>,
    /// Exported directory (netfs) or block device (fs, logical): like `target_path`.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 4096,
            pattern = "^(/([^/\\x00-\\x1F\\x7F-\\x9F]*[^/.\\x00-\\x1F\\x7F-\\x9F][^/\\x00-\\x1F\\x7F-\\x9F]*|\\.?|\\.{3,}))+$"
        )
    )]
    pub source_path: Option<String>,
    /// Volume group (logical: a name like a pool's) or target IQN (iscsi, iscsi-direct:
    /// like `initiator_iqn`).
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._:-]{1,223}$"))]
    pub source_name: Option<String>,
    /// File system type: for fs one of `FS_FORMATS` (default auto), for netfs one of
    /// `NETFS_FORMATS` (default nfs), as libvirt knows them.
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = "^(auto|ext2|ext3|ext4|ufs|iso9660|udf|gfs|gfs2|vfat|hfs\\+|xfs|ocfs2|vmfs|nfs|cifs|glusterfs)$"
        )
    )]
    pub source_format: Option<String>,
    /// Initiator IQN (iscsi-direct: libiscsi logs in as this initiator):
    /// `iqn.YYYY-MM.domain:name` or `eui.…`.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^(iqn|eui)\\.[A-Za-z0-9.:-]{0,219}$")
    )]
    pub initiator_iqn: Option<String>,
}

fn need<'a>(v: &'a Option<String>, what: &str, kind: &str) -> Result<&'a str, Invalid> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Invalid(format!("a {kind} pool needs {what}")))
}

/// `host` or `host:port` (not for IPv6 literals, which have several colons).
fn host_element(spec: &str) -> Result<Element, Invalid> {
    let (name, port) = match spec.split_once(':') {
        Some((h, p)) if !p.contains(':') => {
            // Digits only: `parse` would also take a sign.
            let port: u16 = p
                .parse()
                .ok()
                .filter(|_| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| Invalid(format!("invalid port in '{spec}'")))?;
            (h, Some(port))
        }
        _ => (spec, None),
    };
    hostname(name)?;
    let mut el = Element::new("host").with_attr("name", name);
    if let Some(p) = port {
        el.set_attr("port", p.to_string());
    }
    Ok(el)
}

fn hostname(h: &str) -> Result<(), Invalid> {
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!("invalid host name '{h}'")))
    }
}

fn iqn(s: &str) -> Result<(), Invalid> {
    let ok = (s.starts_with("iqn.") || s.starts_with("eui."))
        && s.len() <= 223
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!(
            "invalid iSCSI name '{s}' (expected iqn.YYYY-MM.domain:name)"
        )))
    }
}

/// File system types of `fs` pools, as libvirt's storage driver names them.
pub const FS_FORMATS: [&str; 14] = [
    "auto", "ext2", "ext3", "ext4", "ufs", "iso9660", "udf", "gfs", "gfs2", "vfat", "hfs+", "xfs",
    "ocfs2", "vmfs",
];
/// File system types of `netfs` pools.
pub const NETFS_FORMATS: [&str; 4] = ["auto", "nfs", "cifs", "glusterfs"];

fn check_format(kind: &str, format: &str, known: &[&str]) -> Result<(), Invalid> {
    if known.contains(&format) {
        return Ok(());
    }
    Err(Invalid(format!(
        "source_format '{format}' for a {kind} pool (expected one of: {})",
        known.join(", ")
    )))
}

/// Every field that is given is checked, whether the kind uses it or not: a value that
/// could never be right is a mistake worth reporting, not something to ignore.
fn check_given_fields(p: &NewPool) -> Result<(), Invalid> {
    for path in [&p.target_path, &p.source_path].into_iter().flatten() {
        host_path(path)?;
    }
    if let Some(h) = &p.source_host {
        host_element(h)?;
    }
    if let Some(n) = &p.source_name {
        if object_name("volume group", n).is_err() && iqn(n).is_err() {
            return Err(Invalid(format!(
                "invalid source_name '{n}' (a volume group name or an iSCSI target IQN)"
            )));
        }
    }
    if let Some(f) = &p.source_format {
        match p.kind.as_str() {
            "fs" => check_format("fs", f, &FS_FORMATS)?,
            "netfs" => check_format("netfs", f, &NETFS_FORMATS)?,
            other => {
                let all: Vec<&str> = FS_FORMATS.iter().chain(&NETFS_FORMATS).copied().collect();
                check_format(other, f, &all)?
            }
        }
    }
    if let Some(i) = &p.initiator_iqn {
        iqn(i)?;
    }
    Ok(())
}

/// Generate the XML of a new pool, checking every field for its kind.
pub fn pool_xml(p: &NewPool) -> Result<String, Invalid> {
    object_name("pool", &p.name)?;
    check_given_fields(p)?;
    let mut root = Element::new("pool")
        .with_attr("type", p.kind.clone())
        .with_child(Element::new("name").with_text(p.name.clone()));
    let mut source = Element::new("source");
    let target_path = |needed: bool| -> Result<Option<Element>, Invalid> {
        match (&p.target_path, needed) {
            (Some(t), _) => {
                host_path(t)?;
                Ok(Some(
                    Element::new("target").with_child(Element::new("path").with_text(t.clone())),
                ))
            }
            (None, true) => Err(Invalid(format!("a {} pool needs target_path", p.kind))),
            (None, false) => Ok(None),
        }
    };
    let target = match p.kind.as_str() {
        "dir" => target_path(true)?,
        "fs" => {
            let dev = need(&p.source_path, "source_path (the block device)", "fs")?;
            host_path(dev)?;
            source.push_child(Element::new("device").with_attr("path", dev));
            source.push_child(Element::new("format").with_attr(
                "type",
                p.source_format.clone().unwrap_or_else(|| "auto".into()),
            ));
            target_path(true)?
        }
        "netfs" => {
            let host = need(&p.source_host, "source_host", "netfs")?;
            let host = host_element(host)?;
            let dir = need(
                &p.source_path,
                "source_path (the exported directory)",
                "netfs",
            )?;
            host_path(dir)?;
            source.push_child(host);
            source.push_child(Element::new("dir").with_attr("path", dir));
            source.push_child(Element::new("format").with_attr(
                "type",
                p.source_format.clone().unwrap_or_else(|| "nfs".into()),
            ));
            target_path(true)?
        }
        "logical" => {
            let vg = need(&p.source_name, "source_name (the volume group)", "logical")?;
            object_name("volume group", vg)?;
            if let Some(dev) = &p.source_path {
                host_path(dev)?;
                source.push_child(Element::new("device").with_attr("path", dev.clone()));
            }
            source.push_child(Element::new("name").with_text(vg));
            source.push_child(Element::new("format").with_attr("type", "lvm2"));
            Some(
                Element::new("target")
                    .with_child(Element::new("path").with_text(format!("/dev/{vg}"))),
            )
        }
        "iscsi" | "iscsi-direct" => {
            let host = need(
                &p.source_host,
                "source_host (the iSCSI portal, host or host:port)",
                &p.kind,
            )?;
            let host = host_element(host)?;
            let target = need(&p.source_name, "source_name (the target IQN)", &p.kind)?;
            iqn(target)?;
            source.push_child(host);
            source.push_child(Element::new("device").with_attr("path", target));
            if p.kind == "iscsi-direct" {
                let init = need(&p.initiator_iqn, "initiator_iqn", "iscsi-direct")?;
                iqn(init)?;
                source.push_child(
                    Element::new("initiator")
                        .with_child(Element::new("iqn").with_attr("name", init)),
                );
                None
            } else {
                Some(
                    Element::new("target").with_child(
                        Element::new("path").with_text(
                            p.target_path
                                .clone()
                                .unwrap_or_else(|| "/dev/disk/by-path".into()),
                        ),
                    ),
                )
            }
        }
        other => {
            return Err(Invalid(format!(
                "pool type '{other}' (expected dir, fs, netfs, logical, iscsi or iscsi-direct)"
            )))
        }
    };
    if source.elements().next().is_some() {
        root.push_child(source);
    }
    if let Some(t) = target {
        root.push_child(t);
    }
    Ok(root.to_xml())
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
        Some(_) if !users.is_empty() => Some(format!("it is used by {}", users.join(", "))),
        Some(_) => None,
    }
}

/// The format of a new volume: the one asked for, else the one its name says (`.qcow2` →
/// qcow2, `.img`/`.raw` → raw), else `default`. A raw image named `.qcow2` is refused:
/// every tool (and the next administrator) would take it for qcow2.
pub fn volume_format<'a>(
    name: &str,
    asked: Option<&'a str>,
    default: &'a str,
) -> Result<&'a str, Invalid> {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match (asked, ext.as_deref()) {
        (Some("raw"), Some("qcow2")) => Err(Invalid(format!(
            "'{name}' would be a raw image with a .qcow2 name: use format qcow2 or another name"
        ))),
        (Some(f), _) => Ok(f),
        (None, Some("qcow2")) => Ok("qcow2"),
        (None, Some("img" | "raw")) => Ok("raw"),
        (None, _) => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_volume_formats() {
        // (name, asked, default, result)
        let ok = [
            ("a.qcow2", None, "raw", "qcow2"),
            ("a.QCOW2", None, "raw", "qcow2"),
            ("a.img", None, "qcow2", "raw"),
            ("a.raw", None, "qcow2", "raw"),
            ("a", None, "raw", "raw"),
            ("a", None, "qcow2", "qcow2"),
            ("a.iso", None, "raw", "raw"),
            ("a.img", Some("qcow2"), "raw", "qcow2"),
            ("a.qcow2", Some("qcow2"), "raw", "qcow2"),
        ];
        for (name, asked, default, want) in ok {
            assert_eq!(
                volume_format(name, asked, default),
                Ok(want),
                "{name} {asked:?}"
            );
        }
        let err = volume_format("a.qcow2", Some("raw"), "raw").unwrap_err();
        assert!(err.0.contains("raw image with a .qcow2 name"), "{err}");
    }

    #[test]
    fn volume_sizes_at_the_edges() {
        const GIB: u64 = 1 << 30;
        let pool = PoolRoom {
            name: "default".into(),
            capacity: 100 * GIB,
            available: 10 * GIB,
        };
        let huge = PoolRoom {
            name: "huge".into(),
            capacity: u64::MAX,
            available: u64::MAX,
        };
        let unknown = PoolRoom {
            name: "lun".into(),
            capacity: 0,
            available: 0,
        };
        let i63 = i64::MAX as u64;
        type Want = Result<(), VolumeSizeError>;
        // (size, format, pool, preallocate, wanted)
        let table: Vec<(u64, Option<&str>, &PoolRoom, bool, Want)> = vec![
            (1, Some("raw"), &pool, false, Ok(())),
            (100 * GIB, Some("qcow2"), &pool, false, Ok(())),
            (10 * GIB, Some("raw"), &pool, true, Ok(())),
            (0, Some("raw"), &pool, false, Err(VolumeSizeError::Zero)),
            (
                100 * GIB + 1,
                Some("qcow2"),
                &pool,
                false,
                Err(VolumeSizeError::Pool {
                    pool: "default".into(),
                    size: 100 * GIB + 1,
                    capacity: 100 * GIB,
                }),
            ),
            (
                10 * GIB + 1,
                Some("raw"),
                &pool,
                true,
                Err(VolumeSizeError::Free {
                    pool: "default".into(),
                    size: 10 * GIB + 1,
                    available: 10 * GIB,
                }),
            ),
            // libvirt: 2^63 - 1 is a number it takes, 2^63 overflows.
            (
                1 << 63,
                Some("raw"),
                &huge,
                false,
                Err(VolumeSizeError::Libvirt(1 << 63)),
            ),
            (
                u64::MAX,
                None,
                &unknown,
                false,
                Err(VolumeSizeError::Libvirt(u64::MAX)),
            ),
            (
                i63,
                Some("raw"),
                &huge,
                false,
                Err(VolumeSizeError::Format {
                    format: "raw".into(),
                    size: i63,
                    max: QEMU_MAX_BYTES,
                }),
            ),
            (QEMU_MAX_BYTES, Some("raw"), &huge, false, Ok(())),
            (QCOW2_MAX_BYTES, Some("qcow2"), &huge, false, Ok(())),
            (
                QCOW2_MAX_BYTES + 1,
                Some("qcow2"),
                &huge,
                false,
                Err(VolumeSizeError::Format {
                    format: "qcow2".into(),
                    size: QCOW2_MAX_BYTES + 1,
                    max: QCOW2_MAX_BYTES,
                }),
            ),
            // A pool that does not say its size is not checked against it.
            (QEMU_MAX_BYTES, None, &unknown, true, Ok(())),
        ];
        for (size, format, room, prealloc, want) in table {
            assert_eq!(
                check_volume_size(size, format, room, prealloc),
                want,
                "{size} {format:?} in {}",
                room.name
            );
        }
        let msg = check_volume_size(1 << 63, Some("raw"), &huge, false)
            .unwrap_err()
            .to_string();
        assert_eq!(msg, "a disk of 8 EiB (9223372036854775808 bytes) is more than libvirt can represent (at most 9223372036854775807 bytes)");
    }

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
    fn pool_xml_per_kind() {
        let base = |kind: &str| NewPool {
            name: "p1".into(),
            kind: kind.into(),
            ..NewPool::default()
        };
        let ok = [
            NewPool {
                target_path: Some("/srv/images".into()),
                ..base("dir")
            },
            NewPool {
                source_path: Some("/dev/sdb1".into()),
                source_format: Some("ext4".into()),
                target_path: Some("/srv/fs".into()),
                ..base("fs")
            },
            NewPool {
                source_host: Some("nas.example.com".into()),
                source_path: Some("/export/vm".into()),
                target_path: Some("/mnt/nas".into()),
                ..base("netfs")
            },
            NewPool {
                source_name: Some("vg0".into()),
                ..base("logical")
            },
            NewPool {
                source_host: Some("127.0.0.1:3261".into()),
                source_name: Some("iqn.2026-11.de.example:vm".into()),
                ..base("iscsi")
            },
            NewPool {
                source_host: Some("127.0.0.1".into()),
                source_name: Some("iqn.2026-11.de.example:vm".into()),
                initiator_iqn: Some("iqn.2026-11.de.example:uvmm".into()),
                ..base("iscsi-direct")
            },
        ];
        for p in ok {
            let xml = pool_xml(&p).unwrap_or_else(|e| panic!("{}: {e}", p.kind));
            let back = parse_pool(&xml).unwrap();
            assert_eq!(
                (back.name.as_str(), back.kind.as_str()),
                ("p1", p.kind.as_str()),
                "{xml}"
            );
        }
        let bad = [
            (base("dir"), "target_path"),
            (
                NewPool {
                    target_path: Some("relative".into()),
                    ..base("dir")
                },
                "invalid path",
            ),
            (
                NewPool {
                    name: "a/b".into(),
                    ..base("dir")
                },
                "invalid pool name",
            ),
            (base("netfs"), "source_host"),
            (
                NewPool {
                    source_host: Some("h ost".into()),
                    source_path: Some("/e".into()),
                    target_path: Some("/m".into()),
                    ..base("netfs")
                },
                "invalid host name",
            ),
            (base("logical"), "volume group"),
            (
                NewPool {
                    source_host: Some("h".into()),
                    source_name: Some("target1".into()),
                    ..base("iscsi")
                },
                "invalid iSCSI name",
            ),
            (
                NewPool {
                    source_host: Some("h".into()),
                    source_name: Some("iqn.2026-11.x:y".into()),
                    ..base("iscsi-direct")
                },
                "initiator_iqn",
            ),
            (base("zfs2"), "pool type"),
        ];
        for (p, want) in bad {
            let e = pool_xml(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{p:?}: {e}");
        }
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
