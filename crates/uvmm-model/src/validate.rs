//! Validation of everything a user can put into a definition. Names, paths and values are
//! never trusted; the messages say what is wrong and what is expected.

use crate::domain::{Disk, DomainDef, Graphics, Nic};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid<T>(msg: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(msg.into()))
}

/// VM names: 1-64 characters of letters, digits, `.`, `_`, `-`, starting with a letter or
/// digit. Stricter than libvirt on purpose: names end up in file names and shell commands.
pub fn vm_name(name: &str) -> Result<(), Invalid> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 64 || !ok_chars || !ok_start {
        return invalid(format!(
            "invalid VM name '{}': use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            printable(name)
        ));
    }
    Ok(())
}

/// Volume names: no `/`, no `..`, no control characters, no leading dot, at most 255 bytes.
pub fn volume_name(name: &str) -> Result<(), Invalid> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '@' | ':'));
    if name.is_empty()
        || name.len() > 255
        || !ok_chars
        || name.starts_with('.')
        || name.contains("..")
    {
        return invalid(format!(
            "invalid volume name '{}': use letters, digits, '.', '_', '-', '+', '@', ':'; no '/', no '..', not starting with '.'",
            printable(name)
        ));
    }
    Ok(())
}

/// Pool and network names follow libvirt's object name rules minus the dangerous parts.
pub fn object_name(what: &str, name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
        && !name.starts_with('.');
    if !ok {
        return invalid(format!("invalid {what} name '{}'", printable(name)));
    }
    Ok(())
}

/// Absolute host paths for images and block devices.
pub fn host_path(path: &str) -> Result<(), Invalid> {
    let ok = path.starts_with('/')
        && path.len() <= 4096
        && !path.chars().any(|c| c.is_control())
        && !path.split('/').any(|seg| seg == "..");
    if !ok {
        return invalid(format!(
            "invalid path '{}': expected an absolute path without '..'",
            printable(path)
        ));
    }
    Ok(())
}

/// Unicast MAC address, `52:54:00:12:34:56`.
pub fn mac(mac: &str) -> Result<String, Invalid> {
    let parts: Vec<&str> = mac.split(':').collect();
    let hex_ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if !hex_ok {
        return invalid(format!("invalid MAC address '{}'", printable(mac)));
    }
    let first = u8::from_str_radix(parts[0], 16).unwrap_or(1);
    if first & 1 == 1 {
        return invalid(format!("MAC address {mac} is a multicast address"));
    }
    Ok(mac.to_ascii_lowercase())
}

fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(80)
        .collect()
}

/// Free text such as notes: any printable text, limited in size.
pub fn note(field: &str, text: &str) -> Result<(), Invalid> {
    // Characters, as JSON Schema's maxLength counts them.
    if text.chars().count() > 4096 {
        return invalid(format!("{field} is longer than 4096 characters"));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return invalid(format!("{field} contains control characters"));
    }
    Ok(())
}

fn disk(d: &Disk) -> Result<(), Invalid> {
    if !matches!(d.device.as_str(), "disk" | "cdrom" | "floppy") {
        return invalid(format!(
            "disk {}: device '{}' (expected disk, cdrom or floppy)",
            d.target, d.device
        ));
    }
    let bus = d.bus.as_deref().unwrap_or("");
    crate::targets::check_target(bus, &d.target)
        .map_err(|e| Invalid(format!("disk {}: {e}", d.target)))?;
    if let Some(f) = &d.format {
        if !matches!(f.as_str(), "raw" | "qcow2") {
            return invalid(format!(
                "disk {}: format '{f}' (expected raw or qcow2)",
                d.target
            ));
        }
    }
    if let Some(c) = &d.cache {
        if !matches!(
            c.as_str(),
            "default" | "none" | "writethrough" | "writeback" | "directsync" | "unsafe"
        ) {
            return invalid(format!(
                "disk {}: cache '{c}' (expected default, none, writethrough, writeback, directsync or unsafe)",
                d.target
            ));
        }
    }
    match (d.kind.as_str(), &d.source) {
        ("file" | "block", Some(p)) => host_path(p)?,
        ("file", None) if d.device != "disk" => {}
        ("volume", Some(v)) => {
            let (pool, vol) = v.split_once('/').ok_or_else(|| {
                Invalid(format!(
                    "disk {}: volume source must be POOL/VOLUME",
                    d.target
                ))
            })?;
            object_name("pool", pool)?;
            volume_name(vol)?;
        }
        (kind, None) => return invalid(format!("disk {}: a {kind} disk needs a source", d.target)),
        (kind, _) => {
            return invalid(format!(
                "disk {}: source kind '{kind}' (expected file, block or volume)",
                d.target
            ))
        }
    }
    Ok(())
}

fn nic(n: &Nic) -> Result<(), Invalid> {
    if !matches!(n.kind.as_str(), "bridge" | "network" | "direct" | "user") {
        return invalid(format!(
            "network interface type '{}' (expected bridge, network, direct or user)",
            n.kind
        ));
    }
    if n.kind != "user" {
        let src = n.source.as_deref().unwrap_or("");
        object_name(&n.kind, src)?;
    }
    if let Some(m) = &n.mac {
        mac(m)?;
    }
    if let Some(model) = &n.model {
        if !matches!(
            model.as_str(),
            "virtio" | "e1000" | "e1000e" | "rtl8139" | "netfront" | "ne2k_pci" | "pcnet"
        ) {
            return invalid(format!(
                "network model '{model}' (expected virtio, e1000, e1000e, rtl8139, netfront, ne2k_pci or pcnet)"
            ));
        }
    }
    Ok(())
}

fn graphics(g: &Graphics) -> Result<(), Invalid> {
    if !matches!(g.kind.as_str(), "vnc" | "spice") {
        return invalid(format!(
            "graphics type '{}' (expected vnc or spice)",
            g.kind
        ));
    }
    if let Some(l) = &g.listen {
        l.parse::<std::net::IpAddr>().map_err(|_| {
            Invalid(format!(
                "graphics listen address '{}' is not an IP address",
                printable(l)
            ))
        })?;
    }
    if let Some(k) = &g.keymap {
        if !KEYMAPS.contains(&k.as_str()) {
            return invalid(format!(
                "keymap '{}' (QEMU knows {})",
                printable(k),
                KEYMAPS.join(", ")
            ));
        }
    }
    Ok(())
}

/// The keymaps QEMU ships (/usr/share/qemu/keymaps, the same list from QEMU 2.x to 9.x):
/// any other name is accepted by libvirt and fails only when the VM starts.
pub const KEYMAPS: [&str; 34] = [
    "ar", "bepo", "cz", "da", "de", "de-ch", "en-gb", "en-us", "es", "et", "fi", "fo", "fr",
    "fr-be", "fr-ca", "fr-ch", "hr", "hu", "is", "it", "ja", "lt", "lv", "mk", "nl", "no", "pl",
    "pt", "pt-br", "ru", "sl", "sv", "th", "tr",
];

/// Limits of the host a definition is for.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostLimits {
    pub memory_kib: Option<u64>,
    pub cpus: Option<u32>,
}

/// Check `new`; when `old` is given (an edit), only what changed is checked, so that an odd
/// device libvirt accepted earlier does not block unrelated edits.
pub fn definition(
    new: &DomainDef,
    old: Option<&DomainDef>,
    host: HostLimits,
) -> Result<(), Invalid> {
    definition_values(new, old)?;
    host_limits(new, old, host)
}

/// The checks of `definition` that depend on the host: memory and vCPUs beyond what it
/// has. The API answers these with 409 (the request is fine, this host cannot take it),
/// the others with 400.
pub fn host_limits(
    new: &DomainDef,
    old: Option<&DomainDef>,
    host: HostLimits,
) -> Result<(), Invalid> {
    let changed = |f: &dyn Fn(&DomainDef) -> bool| old.is_none_or(|o| !f(o));
    if changed(&|o| o.name == new.name) {
        vm_name(&new.name)?;
    }
    if new.max_memory_kib < 16 * 1024 {
        return invalid("memory must be at least 16MiB");
    }
    if new.memory_kib > new.max_memory_kib {
        return invalid("current memory exceeds the maximum memory");
    }
    let memory_changed = changed(&|o| {
        o.max_memory_kib == new.max_memory_kib
            && o.numa_cells_kib == new.numa_cells_kib
            && o.hotplug_max_kib == new.hotplug_max_kib
            && o.memory_devices_kib == new.memory_devices_kib
    });
    if memory_changed {
        if let Some(why) = crate::memory::inconsistency(new) {
            return invalid(why);
        }
        if let Some(host_mem) = host.memory_kib.filter(|m| *m > 0) {
            if new.max_memory_kib > host_mem {
                return invalid(format!(
                    "memory {} is more than the host has ({})",
                    crate::units::format_kib(new.max_memory_kib),
                    crate::units::format_kib(host_mem)
                ));
            }
        }
    }
    if changed(&|o| o.vcpus == new.vcpus) {
        if let Some(cpus) = host.cpus.filter(|c| *c > 0) {
            if new.vcpus > cpus.saturating_mul(4) {
                return invalid(format!(
                    "{} vCPUs is far more than the host's {cpus} CPUs",
                    new.vcpus
                ));
            }
        }
    }
    Ok(())
}

/// The checks of `definition` that need nothing but the definition.
pub fn definition_values(new: &DomainDef, old: Option<&DomainDef>) -> Result<(), Invalid> {
    let changed = |f: &dyn Fn(&DomainDef) -> bool| old.is_none_or(|o| !f(o));
    if changed(&|o| o.name == new.name) {
        vm_name(&new.name)?;
    }
    if new.max_memory_kib < 16 * 1024 {
        return invalid("memory must be at least 16MiB");
    }
    if new.memory_kib > new.max_memory_kib {
        return invalid("current memory exceeds the maximum memory");
    }
    // libvirt keeps memory in bytes in 64 bits; say so before any arithmetic on it.
    if new.max_memory_kib > crate::units::LIBVIRT_MAX_MEMORY_KIB {
        return invalid(crate::memory::MemoryError::TooLarge(new.max_memory_kib).to_string());
    }
    if new.vcpus == 0 {
        return invalid("a VM needs at least one vCPU");
    }
    for (field, v) in [
        ("description", &new.notes.description),
        ("contact", &new.notes.contact),
        ("os", &new.notes.os),
    ] {
        if let Some(t) = v {
            note(field, t)?;
        }
    }
    if let Some(r) = &new.rtc {
        if !matches!(r.as_str(), "utc" | "localtime") && changed(&|o| o.rtc == new.rtc) {
            return invalid(format!("rtc '{r}' (expected utc or localtime)"));
        }
    }
    if let Some(c) = &new.cpu_model {
        let ok = c.len() <= 64
            && c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'));
        if !ok {
            return invalid(format!("CPU model '{}'", printable(c)));
        }
    }
    for b in &new.boot_devices {
        if !matches!(b.as_str(), "hd" | "cdrom" | "network" | "fd")
            && changed(&|o| o.boot_devices == new.boot_devices)
        {
            return invalid(format!(
                "boot device '{b}' (expected hd, cdrom, network or fd)"
            ));
        }
    }
    let mut targets = std::collections::HashSet::new();
    for d in &new.disks {
        if !targets.insert(d.target.as_str()) {
            return invalid(format!("two disks use target {}", d.target));
        }
        if old.is_none_or(|o| !o.disks.contains(d)) {
            disk(d)?;
        }
    }
    // A MAC shared by two NICs is refused only where this change makes (more of) it:
    // libvirt accepts shared MACs and clones often have them, and an unrelated edit must
    // not fail because of them.
    let mac_count = |d: &DomainDef, m: &str| {
        d.nics
            .iter()
            .filter(|n| n.mac.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(m)))
            .count()
    };
    for n in &new.nics {
        if let Some(m) = &n.mac {
            let now = mac_count(new, m);
            if now > 1 && old.is_none_or(|o| now > mac_count(o, m)) {
                return invalid(format!("two network interfaces use MAC {m}"));
            }
        }
        if old.is_none_or(|o| !o.nics.contains(n)) {
            nic(n)?;
        }
    }
    for g in &new.graphics {
        if old.is_none_or(|o| !o.graphics.contains(g)) {
            graphics(g)?;
        }
    }
    let mut orders = std::collections::HashSet::new();
    for o in new
        .disks
        .iter()
        .filter_map(|d| d.boot_order)
        .chain(new.nics.iter().filter_map(|n| n.boot_order))
        .chain(new.other_boot.iter().map(|b| b.order))
    {
        if !orders.insert(o) {
            return invalid(format!("boot order {o} is used twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["web-01", "a", "Win10.desk_2", &"x".repeat(64)] {
            assert!(vm_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-x",
            ".x",
            "a b",
            "a/b",
            "ä",
            "x\n",
            "<x>",
            &"x".repeat(65),
        ] {
            assert!(vm_name(bad).is_err(), "{bad:?}");
        }
        for ok in ["disk.qcow2", "web-01-data.raw", "a+b@c", "unit:0:0:1"] {
            assert!(volume_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a/b", "..", "../etc", "x..y", ".hidden", "a\u{7}", "a b",
        ] {
            assert!(volume_name(bad).is_err(), "{bad:?}");
        }
        for ok in ["/var/lib/libvirt/images/a.qcow2", "/dev/sdb"] {
            assert!(host_path(ok).is_ok());
        }
        for bad in ["relative", "/a/../etc/shadow", "/a\0b", ""] {
            assert!(host_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(mac("52:54:00:AB:cd:01").unwrap(), "52:54:00:ab:cd:01");
        for bad in [
            "52:54:00:ab:cd",
            "01:00:5e:00:00:01",
            "zz:54:00:ab:cd:01",
            "525400abcd01",
        ] {
            assert!(mac(bad).is_err(), "{bad}");
        }
    }

    fn base() -> DomainDef {
        DomainDef {
            name: "vm".into(),
            uuid: "00000000-0000-0000-0000-000000000001".into(),
            domain_type: "kvm".into(),
            os_type: "hvm".into(),
            max_memory_kib: 1 << 20,
            memory_kib: 1 << 20,
            vcpus: 1,
            disks: vec![Disk {
                device: "disk".into(),
                kind: "file".into(),
                target: "vda".into(),
                bus: Some("virtio".into()),
                source: Some("/img/vm.qcow2".into()),
                format: Some("qcow2".into()),
                ..Disk::default()
            }],
            ..DomainDef::default()
        }
    }

    #[test]
    fn definitions() {
        let host = HostLimits {
            memory_kib: Some(8 << 20),
            cpus: Some(4),
        };
        assert!(definition(&base(), None, host).is_ok());
        type Edit = Box<dyn Fn(&mut DomainDef)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|d| d.name = "bad name".into()), "invalid VM name"),
            (
                Box::new(|d| d.max_memory_kib = 100 << 20),
                "more than the host has",
            ),
            (Box::new(|d| d.max_memory_kib = 1024), "at least 16MiB"),
            (Box::new(|d| d.memory_kib = 2 << 20), "exceeds"),
            (Box::new(|d| d.vcpus = 0), "at least one vCPU"),
            (Box::new(|d| d.vcpus = 64), "far more"),
            (
                Box::new(|d| d.notes.description = Some("a\u{1b}[31m".into())),
                "control characters",
            ),
            (
                Box::new(|d| d.disks[0].target = "hda".into()),
                "does not belong to bus",
            ),
            (
                Box::new(|d| d.disks[0].source = Some("../x".into())),
                "invalid path",
            ),
            (
                Box::new(|d| d.disks[0].format = Some("vmdk".into())),
                "format",
            ),
            (
                Box::new(|d| {
                    let x = d.disks[0].clone();
                    d.disks.push(x);
                }),
                "two disks",
            ),
            (
                Box::new(|d| {
                    d.nics.push(Nic {
                        kind: "bridge".into(),
                        source: Some("br 0".into()),
                        ..Nic::default()
                    })
                }),
                "invalid bridge name",
            ),
            (
                Box::new(|d| {
                    d.nics.push(Nic {
                        kind: "bridge".into(),
                        source: Some("br0".into()),
                        model: Some("tulip".into()),
                        ..Nic::default()
                    })
                }),
                "network model",
            ),
            (
                Box::new(|d| {
                    d.graphics.push(Graphics {
                        kind: "vnc".into(),
                        listen: Some("everywhere".into()),
                        ..Graphics::default()
                    })
                }),
                "not an IP",
            ),
            (
                Box::new(|d| {
                    d.graphics.push(Graphics {
                        kind: "vnc".into(),
                        keymap: Some("DE".into()),
                        ..Graphics::default()
                    })
                }),
                "keymap",
            ),
            (
                // Well-formed, but QEMU has no such keymap: the VM would not start.
                Box::new(|d| {
                    d.graphics.push(Graphics {
                        kind: "vnc".into(),
                        keymap: Some("de-at".into()),
                        ..Graphics::default()
                    })
                }),
                "QEMU knows ar, bepo",
            ),
            (
                Box::new(|d| {
                    d.disks[0].boot_order = Some(1);
                    d.nics.push(Nic {
                        kind: "network".into(),
                        source: Some("default".into()),
                        boot_order: Some(1),
                        ..Nic::default()
                    });
                }),
                "used twice",
            ),
        ];
        for (f, want) in cases {
            let mut d = base();
            f(&mut d);
            let err = definition(&d, None, host).unwrap_err().to_string();
            assert!(err.contains(want), "{want}: got {err}");
        }
    }

    #[test]
    fn shared_macs_block_only_edits_that_add_to_them() {
        fn nic(mac: &str, source: &str) -> Nic {
            Nic {
                kind: "network".into(),
                source: Some(source.into()),
                mac: Some(mac.into()),
                ..Nic::default()
            }
        }
        let mut clone = base();
        clone.nics = vec![
            nic("52:54:00:aa:00:01", "default"),
            nic("52:54:00:aa:00:01", "other"),
        ];
        type Edit = Box<dyn Fn(&mut DomainDef)>;
        // (edit of the clone, refused?)
        let cases: Vec<(Edit, bool)> = vec![
            (Box::new(|d| d.notes.description = Some("x".into())), false),
            (Box::new(|d| d.memory_kib = 512 << 10), false),
            (Box::new(|d| d.nics[1].source = Some("third".into())), false),
            (
                Box::new(|d| d.nics.push(nic("52:54:00:00:00:02", "default"))),
                false,
            ),
            (
                Box::new(|d| {
                    d.nics.pop();
                }),
                false,
            ),
            // A third NIC with the same MAC is this edit's doing.
            (
                Box::new(|d| d.nics.push(nic("52:54:00:aa:00:01", "x"))),
                true,
            ),
            // So is a new pair.
            (
                Box::new(|d| {
                    d.nics.push(nic("52:54:00:00:00:02", "a"));
                    d.nics.push(nic("52:54:00:00:00:02", "b"));
                }),
                true,
            ),
            // MACs are compared without regard to case.
            (
                Box::new(|d| d.nics.push(nic("52:54:00:AA:00:01", "c"))),
                true,
            ),
        ];
        for (f, refused) in cases {
            let mut new = clone.clone();
            f(&mut new);
            let got = definition(&new, Some(&clone), HostLimits::default());
            assert_eq!(got.is_err(), refused, "{:?}: {got:?}", new.nics);
            if refused {
                assert!(got
                    .unwrap_err()
                    .0
                    .contains("two network interfaces use MAC"));
            }
        }
        // A new definition with a shared MAC is refused outright.
        assert!(definition(&clone, None, HostLimits::default()).is_err());
    }

    #[test]
    fn memory_checks_do_not_overflow() {
        let host = HostLimits {
            memory_kib: Some(8 << 20),
            cpus: None,
        };
        // (wanted KiB, part of the message); 2^54 KiB once came out as "memory 0 B".
        let table: [(u64, &str); 4] = [
            (1 << 54, "more than libvirt can represent"),
            (u64::MAX, "more than libvirt can represent"),
            (
                crate::units::LIBVIRT_MAX_MEMORY_KIB,
                "memory 8.0 EiB is more than the host has (8 GiB)",
            ),
            (16 << 20, "memory 16 GiB is more than the host has (8 GiB)"),
        ];
        for (kib, want) in table {
            let mut d = base();
            d.max_memory_kib = kib;
            let err = definition(&d, None, host).unwrap_err().0;
            assert!(err.contains(want), "{kib}: {err}");
            assert!(!err.contains(" 0 B"), "{err}");
        }
        // NUMA cells that do not add up are named, not passed to libvirt.
        let mut d = base();
        d.numa_cells_kib = vec![256 << 10, 256 << 10];
        let err = definition(&d, None, host).unwrap_err().0;
        assert!(err.contains("NUMA cells add up to 512 MiB"), "{err}");
        d.numa_cells_kib = vec![512 << 10, 512 << 10];
        assert_eq!(definition(&d, None, host), Ok(()));
    }

    #[test]
    fn edits_check_only_what_changed() {
        let mut odd = base();
        odd.nics.push(Nic {
            kind: "ethernet".into(),
            ..Nic::default()
        });
        let mut edited = odd.clone();
        edited.memory_kib = 512 << 10;
        assert!(definition(&edited, Some(&odd), HostLimits::default()).is_ok());
        assert!(definition(&odd, None, HostLimits::default()).is_err());
    }
}
