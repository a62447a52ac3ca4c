//! Disk target names (`vda`, `hdc`, `xvdb`, `sdaa`) per bus, as libvirt names them.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("unknown disk bus '{0}' (expected virtio, ide, sata, scsi, usb, xen or fdc)")]
    Bus(String),
    #[error("no free target name left on bus {0}")]
    Full(String),
    #[error("target '{target}' does not belong to bus {bus} (expected {prefix}a, {prefix}b, ...)")]
    Mismatch {
        target: String,
        bus: String,
        prefix: &'static str,
    },
}

/// Target name prefix and maximum number of devices of a bus.
pub fn bus_prefix(bus: &str) -> Result<(&'static str, usize), TargetError> {
    Ok(match bus {
        "virtio" => ("vd", 26 * 27),
        "xen" => ("xvd", 26 * 27),
        "sata" | "scsi" | "usb" => ("sd", 26 * 27),
        "ide" => ("hd", 4),
        "fdc" => ("fd", 2),
        other => return Err(TargetError::Bus(other.to_string())),
    })
}

/// `0 -> a`, `25 -> z`, `26 -> aa`, like libvirt's virDiskNameToIndex in reverse.
pub fn index_to_suffix(mut index: usize) -> String {
    let mut out = Vec::new();
    loop {
        // `index % 26` is below 26.
        out.push(b'a' + u8::try_from(index % 26).unwrap_or(0));
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII letters")
}

pub fn suffix_to_index(suffix: &str) -> Option<usize> {
    if suffix.is_empty() || suffix.len() > 3 || !suffix.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let mut idx: i64 = -1;
    for b in suffix.bytes() {
        idx = (idx + 1) * 26 + i64::from(b - b'a');
    }
    usize::try_from(idx).ok()
}

/// The first target name on `bus` not in `used`.
pub fn first_free(bus: &str, used: &[&str]) -> Result<String, TargetError> {
    let (prefix, max) = bus_prefix(bus)?;
    (0..max)
        .map(|i| format!("{prefix}{}", index_to_suffix(i)))
        .find(|t| !used.contains(&t.as_str()))
        .ok_or_else(|| TargetError::Full(bus.to_string()))
}

/// Check that a target name fits its bus (`vdb` on virtio, not on ide).
pub fn check_target(bus: &str, target: &str) -> Result<(), TargetError> {
    let (prefix, max) = bus_prefix(bus)?;
    let ok = target
        .strip_prefix(prefix)
        .and_then(suffix_to_index)
        .is_some_and(|i| i < max);
    // "xvda" also starts with... no other prefix; "sd" and "vd" cannot collide with "xvd".
    if ok {
        Ok(())
    } else {
        Err(TargetError::Mismatch {
            target: target.to_string(),
            bus: bus.to_string(),
            prefix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_round_trip() {
        for (i, s) in [
            (0, "a"),
            (1, "b"),
            (25, "z"),
            (26, "aa"),
            (27, "ab"),
            (51, "az"),
            (52, "ba"),
            (701, "zz"),
        ] {
            assert_eq!(index_to_suffix(i), s);
            assert_eq!(suffix_to_index(s), Some(i));
        }
        assert_eq!(suffix_to_index(""), None);
        assert_eq!(suffix_to_index("A"), None);
    }

    #[test]
    fn first_free_table() {
        let table: [(&str, &[&str], Result<&str, ()>); 7] = [
            ("virtio", &[], Ok("vda")),
            ("virtio", &["vda", "vdb"], Ok("vdc")),
            ("virtio", &["vdb"], Ok("vda")),
            ("xen", &["xvda"], Ok("xvdb")),
            ("sata", &["sda", "hdc"], Ok("sdb")),
            ("ide", &["hda", "hdb", "hdc", "hdd"], Err(())),
            ("floppy", &[], Err(())),
        ];
        for (bus, used, want) in table {
            assert_eq!(
                first_free(bus, used).map_err(|_| ()),
                want.map(String::from),
                "{bus} {used:?}"
            );
        }
    }

    #[test]
    fn target_checks() {
        assert!(check_target("virtio", "vdz").is_ok());
        assert!(check_target("xen", "xvdb").is_ok());
        assert!(check_target("ide", "hdd").is_ok());
        assert!(check_target("ide", "hde").is_err());
        assert!(check_target("virtio", "hda").is_err());
        assert!(check_target("sata", "sd").is_err());
        assert!(check_target("sata", "sda1").is_err());
    }
}
