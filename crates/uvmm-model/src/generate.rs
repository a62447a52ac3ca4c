//! New VM definitions: choose domain type, architecture, machine and emulator from what the
//! host offers, and generate the XML (a skeleton merged with the wanted definition).

use crate::caps::{GuestCaps, HostCaps};
use crate::domain::{DomainDef, Features};
use crate::edit::{merge, EditError};
use crate::xml::Element;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// `kvm`, `qemu`, `xen` or `test`.
    pub domain_type: String,
    /// `hvm`, or `xen` for paravirtualised Xen guests.
    pub os_type: String,
    pub arch: String,
    pub machine: Option<String>,
    pub emulator: Option<String>,
    /// What was chosen differently from what was asked, in words for the user.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("this host cannot run {wanted} guests; it offers: {offered}")]
    OsType { wanted: String, offered: String },
    #[error("this host offers no {arch} {os_type} guests; it offers: {offered}")]
    Arch {
        arch: String,
        os_type: String,
        offered: String,
    },
    #[error("this host cannot run {wanted} domains for {os_type}/{arch}; it offers: {offered}")]
    DomainType {
        wanted: String,
        os_type: String,
        arch: String,
        offered: String,
    },
}

fn describe(caps: &HostCaps) -> String {
    if caps.guests.is_empty() {
        return "nothing".into();
    }
    caps.guests
        .iter()
        .map(|g| format!("{}/{} ({})", g.os_type, g.arch, g.domain_types.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

fn os_label(os: &str) -> &str {
    match os {
        "xen" | "linux" => "Xen paravirtualised (PV)",
        _ => "fully virtualised (HVM)",
    }
}

/// Pick what a new VM of `os_type` (`hvm`/`xen`) with `domain_type` (`kvm`/`qemu`/`xen`)
/// on `arch` becomes on a host with `caps`.
pub fn resolve(
    caps: &HostCaps,
    domain_type: &str,
    os_type: &str,
    arch: Option<&str>,
) -> Result<Resolved, ResolveError> {
    let want_os: &[&str] = if os_type == "xen" {
        &["xen", "linux"]
    } else {
        &["hvm"]
    };
    let candidates: Vec<&GuestCaps> = caps
        .guests
        .iter()
        .filter(|g| want_os.contains(&g.os_type.as_str()))
        .collect();
    if candidates.is_empty() {
        return Err(ResolveError::OsType {
            wanted: os_label(os_type).to_string(),
            offered: describe(caps),
        });
    }
    let mut notes = Vec::new();
    let is_test = candidates
        .iter()
        .all(|g| g.domain_types.iter().all(|t| t == "test"));
    let want_arch = arch
        .map(str::to_string)
        .or_else(|| caps.host_arch.clone())
        .unwrap_or_else(|| "x86_64".into());
    let guest = match candidates.iter().find(|g| g.arch == want_arch) {
        Some(g) => *g,
        None if is_test => {
            let g = candidates[0];
            notes.push(format!(
                "libvirt test-driver host: architecture {} instead of {want_arch}",
                g.arch
            ));
            g
        }
        None => {
            return Err(ResolveError::Arch {
                arch: want_arch,
                os_type: os_type.to_string(),
                offered: describe(caps),
            })
        }
    };
    let offered = &guest.domain_types;
    let chosen = if offered.iter().any(|t| t == domain_type) {
        domain_type.to_string()
    } else if domain_type == "kvm" && offered.iter().any(|t| t == "qemu") {
        notes.push("KVM is not available on this host: the VM uses QEMU emulation (TCG), which is much slower".into());
        "qemu".to_string()
    } else if offered.iter().any(|t| t == "test") {
        notes.push(format!(
            "libvirt test-driver host: domain type test instead of {domain_type}"
        ));
        "test".to_string()
    } else {
        return Err(ResolveError::DomainType {
            wanted: domain_type.to_string(),
            os_type: os_type.to_string(),
            arch: guest.arch.clone(),
            offered: describe(caps),
        });
    };
    let machine = if os_type == "xen" && chosen == "xen" {
        Some("xenpv".to_string())
    } else {
        // "pc" is QEMU's alias for the newest i440fx machine; otherwise the host's first.
        guest
            .machines
            .iter()
            .find(|m| *m == "pc")
            .or_else(|| guest.machines.first())
            .cloned()
    };
    Ok(Resolved {
        domain_type: chosen,
        os_type: if os_type == "xen" {
            guest.os_type.clone()
        } else {
            "hvm".into()
        },
        arch: guest.arch.clone(),
        machine,
        emulator: guest.emulator.clone(),
        notes,
    })
}

/// The features a new VM gets: ACPI and APIC always on x86 with QEMU/KVM (QEMU 10 with
/// libvirt 9 refuses to start a guest without ACPI), PAE for 32-bit guests.
pub fn default_features(resolved: &Resolved, hyperv: bool, pae: bool) -> Features {
    let x86 = matches!(resolved.arch.as_str(), "x86_64" | "i686");
    let hvm = resolved.os_type == "hvm";
    Features {
        acpi: hvm && x86,
        apic: hvm && x86,
        pae: pae || (hvm && resolved.arch == "i686"),
        hyperv: hyperv && matches!(resolved.domain_type.as_str(), "kvm" | "qemu"),
    }
}

fn skeleton(def: &DomainDef, r: &Resolved) -> Element {
    let mut type_el = Element::new("type").with_attr("arch", r.arch.clone());
    if let Some(m) = &r.machine {
        type_el.set_attr("machine", m.clone());
    }
    let type_el = type_el.with_text(r.os_type.clone());
    let mut devices = Element::new("devices");
    if let Some(e) = &r.emulator {
        if r.domain_type != "test" {
            devices.push_child(Element::new("emulator").with_text(e.clone()));
        }
    }
    let mut root = Element::new("domain")
        .with_attr("type", r.domain_type.clone())
        .with_child(Element::new("name").with_text(def.name.clone()));
    if !def.uuid.is_empty() {
        root.push_child(Element::new("uuid").with_text(def.uuid.clone()));
    }
    root = root
        .with_child(
            Element::new("memory")
                .with_attr("unit", "KiB")
                .with_text(def.max_memory_kib.to_string()),
        )
        .with_child(
            Element::new("currentMemory")
                .with_attr("unit", "KiB")
                .with_text(def.memory_kib.to_string()),
        )
        .with_child(
            Element::new("vcpu")
                .with_attr("placement", "static")
                .with_text(def.vcpus.to_string()),
        )
        .with_child(Element::new("os").with_child(type_el))
        .with_child(Element::new("on_poweroff").with_text("destroy"))
        .with_child(Element::new("on_reboot").with_text("restart"))
        .with_child(Element::new("on_crash").with_text("destroy"));
    if matches!(r.domain_type.as_str(), "kvm" | "qemu") {
        devices.push_child(Element::new("console").with_attr("type", "pty"));
        if def
            .graphics
            .iter()
            .any(|g| g.kind == "vnc" || g.kind == "spice")
        {
            // An absolute pointer keeps the VNC mouse in sync with the guest's.
            devices.push_child(
                Element::new("input")
                    .with_attr("type", "tablet")
                    .with_attr("bus", "usb"),
            );
        }
    }
    root.push_child(devices);
    root
}

/// Generate the XML of a new VM. `def` carries everything wanted (name, notes, memory,
/// devices, boot, features ...); `resolved` what the host runs it as.
pub fn generate(def: &DomainDef, resolved: &Resolved) -> Result<String, EditError> {
    let mut tree = skeleton(def, resolved);
    // What the skeleton holds, as merge's "old" side (it may lack a UUID: libvirt then
    // generates one).
    let base = DomainDef {
        name: def.name.clone(),
        uuid: def.uuid.clone(),
        domain_type: resolved.domain_type.clone(),
        max_memory_kib: def.max_memory_kib,
        memory_kib: def.memory_kib,
        vcpus: def.vcpus,
        ..DomainDef::default()
    };
    let mut want = def.clone();
    want.domain_type = resolved.domain_type.clone();
    // Memory and vCPUs are already in the skeleton, in their final form.
    want.max_memory_kib = base.max_memory_kib;
    want.memory_kib = base.memory_kib;
    want.vcpus = base.vcpus;
    merge(&mut tree, &base, &want)?;
    Ok(tree.to_xml())
}

/// What a create request adds to a profile. Disk sources are decided by the caller (it
/// creates volumes through libvirt); targets are assigned here.
#[derive(Debug, Clone, Default)]
pub struct NewVm {
    pub name: String,
    pub uuid: Option<String>,
    pub memory_kib: Option<u64>,
    pub vcpus: Option<u32>,
    /// Hard disks: `(kind, source, format)`, e.g. `("file", "/img/a.qcow2", Some("qcow2"))`.
    pub disks: Vec<(String, String, Option<String>)>,
    /// Installation medium for the first CD-ROM (an empty drive is added for HVM guests
    /// that boot from CD-ROM anyway).
    pub cdrom: Option<String>,
    /// Source of the driver CD-ROM, when the profile wants one and the image exists.
    pub driver_iso: Option<String>,
    /// `(kind, source, mac)` of every network interface.
    pub nics: Vec<(String, String, Option<String>)>,
    pub notes: crate::domain::Notes,
}

/// What a drive of a new VM is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drive {
    Disk,
    /// The installation medium (an empty drive for HVM profiles that boot from CD-ROM).
    Install,
    /// The profile's driver CD-ROM.
    Driver,
}

/// A new VM's drives with their bus, in the order `from_profile` adds them.
fn drive_buses(
    p: &crate::profile::Profile,
    r: &Resolved,
    disks: usize,
    cdrom: bool,
) -> Vec<(Drive, String)> {
    let pv = r.os_type != "hvm";
    let (disk_bus, cdrom_bus) = if pv {
        ("xen".to_string(), "xen".to_string())
    } else {
        (
            p.disk_bus.clone(),
            p.cdrom_bus.clone().unwrap_or_else(|| "sata".into()),
        )
    };
    let mut out = vec![(Drive::Disk, disk_bus); disks];
    if cdrom || (!pv && p.boot.iter().any(|b| b == "cdrom")) {
        out.push((Drive::Install, cdrom_bus.clone()));
    }
    if p.driver_iso.is_some() && !pv {
        out.push((Drive::Driver, cdrom_bus));
    }
    out
}

/// Refuse, before anything is created, a new VM that needs more drives on a bus than the
/// bus has slots: IDE has four (hda to hdd), so the `Other` profile takes at most four
/// drives, CD-ROMs included.
pub fn check_drive_slots(
    p: &crate::profile::Profile,
    r: &Resolved,
    disks: usize,
    cdrom: bool,
) -> Result<(), String> {
    let drives = drive_buses(p, r, disks, cdrom);
    let mut buses: Vec<&str> = drives.iter().map(|(_, b)| b.as_str()).collect();
    buses.sort_unstable();
    buses.dedup();
    for bus in buses {
        let Ok((prefix, slots)) = crate::targets::bus_prefix(bus) else {
            continue;
        };
        let on_bus = |cdroms: bool| {
            drives
                .iter()
                .filter(|(d, b)| (*d != Drive::Disk) == cdroms && b == bus)
                .count()
        };
        let (hd, cd) = (on_bus(false), on_bus(true));
        if hd + cd <= slots {
            continue;
        }
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let last = crate::targets::index_to_suffix(slots - 1);
        let mut need = vec![];
        if hd > 0 {
            need.push(plural(hd, "disk"));
        }
        if cd > 0 {
            need.push(plural(cd, "CD-ROM drive"));
        }
        let spare = slots.saturating_sub(cd);
        return Err(format!(
            "profile {} puts its drives on the {} bus, which has {slots} slots ({prefix}a to \
             {prefix}{last}): {} need {}. Create the VM with at most {} and add further \
             disks afterwards on another bus (uvmm vm disk add VM pool=P,size=S --bus sata)",
            p.name,
            bus.to_uppercase(),
            need.join(" and "),
            hd + cd,
            plural(spare, "disk"),
        ));
    }
    Ok(())
}

/// Build the definition of a new VM from a profile and a request, for the resolved target.
pub fn from_profile(
    p: &crate::profile::Profile,
    r: &Resolved,
    new: NewVm,
) -> (DomainDef, Vec<String>) {
    use crate::domain::{Disk, Graphics, Nic};
    let mut notes = r.notes.clone();
    let pv = r.os_type != "hvm";
    let mut disks: Vec<Disk> = Vec::new();
    let mut used: Vec<String> = Vec::new();
    let mut hard_disks = new.disks.iter();
    for (drive, bus) in drive_buses(p, r, new.disks.len(), new.cdrom.is_some()) {
        let (device, kind, source, format) = match drive {
            Drive::Disk => {
                let (kind, source, format) = hard_disks.next().cloned().unwrap_or_default();
                ("disk", kind, Some(source), format)
            }
            Drive::Install => (
                "cdrom",
                "file".to_string(),
                new.cdrom.clone(),
                Some("raw".to_string()).filter(|_| new.cdrom.is_some()),
            ),
            Drive::Driver => (
                "cdrom",
                "file".to_string(),
                new.driver_iso.clone(),
                Some("raw".to_string()).filter(|_| new.driver_iso.is_some()),
            ),
        };
        let refs: Vec<&str> = used.iter().map(String::as_str).collect();
        // check_drive_slots refuses what does not fit before anything is created; a
        // caller that skipped it gets a target libvirt refuses rather than a panic.
        let target = crate::targets::first_free(&bus, &refs).unwrap_or_else(|_| format!("{bus}?"));
        used.push(target.clone());
        disks.push(Disk {
            device: device.into(),
            kind,
            target,
            bus: Some(bus),
            source,
            format,
            readonly: device == "cdrom",
            ..Disk::default()
        });
    }
    let nics = new
        .nics
        .into_iter()
        .map(|(kind, source, mac)| Nic {
            kind,
            source: Some(source),
            mac,
            model: p.nic_model.clone(),
            ..Nic::default()
        })
        .collect();
    let graphics = if p.vnc {
        vec![Graphics {
            kind: "vnc".into(),
            autoport: true,
            listen: Some(p.vnc_listen.clone()),
            keymap: p.keymap.clone(),
            ..Graphics::default()
        }]
    } else {
        vec![]
    };
    let mut cpu_model = p.cpu_model.clone();
    if matches!(
        cpu_model.as_deref(),
        Some("host-model" | "host-passthrough")
    ) && r.domain_type != "kvm"
    {
        notes.push(format!(
            "CPU model {} needs KVM; the VM gets the hypervisor's default CPU",
            cpu_model.as_deref().unwrap_or_default()
        ));
        cpu_model = None;
    }
    let memory = new.memory_kib.unwrap_or_else(|| p.memory_kib());
    let def = DomainDef {
        name: new.name,
        uuid: new.uuid.unwrap_or_default(),
        domain_type: r.domain_type.clone(),
        os_type: r.os_type.clone(),
        arch: Some(r.arch.clone()),
        machine: r.machine.clone(),
        emulator: r.emulator.clone(),
        bootloader: if pv { p.bootloader.clone() } else { None },
        bootloader_args: if pv { p.bootloader_args.clone() } else { None },
        boot_devices: if pv { vec![] } else { p.boot.clone() },
        max_memory_kib: memory,
        memory_kib: memory,
        vcpus: new.vcpus.unwrap_or(p.vcpus),
        cpu_model,
        rtc: Some(p.rtc.clone()),
        features: default_features(r, p.hyperv, p.pae),
        notes: new.notes,
        disks,
        nics,
        graphics,
        ..DomainDef::default()
    };
    (def, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::parse_capabilities;

    fn caps(guests: &[(&str, &str, &[&str])]) -> HostCaps {
        HostCaps {
            host_arch: Some("x86_64".into()),
            guests: guests
                .iter()
                .map(|(os, arch, types)| GuestCaps {
                    os_type: os.to_string(),
                    arch: arch.to_string(),
                    domain_types: types.iter().map(|t| t.to_string()).collect(),
                    machines: vec!["pc-i440fx-7.2".into(), "pc".into(), "q35".into()],
                    emulator: Some("/usr/bin/qemu-system-x86_64".into()),
                })
                .collect(),
        }
    }

    #[test]
    fn resolution_table() {
        let kvm = caps(&[
            ("hvm", "x86_64", &["qemu", "kvm"]),
            ("hvm", "i686", &["qemu", "kvm"]),
        ]);
        let tcg = caps(&[("hvm", "x86_64", &["qemu"])]);
        let xen = caps(&[("hvm", "x86_64", &["xen"]), ("xen", "x86_64", &["xen"])]);
        let test = caps(&[("hvm", "i686", &["test"]), ("xen", "i686", &["test"])]);
        // (caps, domain type, os type, want type, want arch, note expected)
        let ok: [(&HostCaps, &str, &str, &str, &str, bool); 7] = [
            (&kvm, "kvm", "hvm", "kvm", "x86_64", false),
            (&tcg, "kvm", "hvm", "qemu", "x86_64", true),
            (&tcg, "qemu", "hvm", "qemu", "x86_64", false),
            (&xen, "xen", "xen", "xen", "x86_64", false),
            (&xen, "xen", "hvm", "xen", "x86_64", false),
            (&test, "kvm", "hvm", "test", "i686", true),
            (&test, "xen", "xen", "test", "i686", true),
        ];
        for (c, dt, os, want_dt, want_arch, note) in ok {
            let r = resolve(c, dt, os, None).unwrap_or_else(|e| panic!("{dt}/{os}: {e}"));
            assert_eq!(
                (r.domain_type.as_str(), r.arch.as_str()),
                (want_dt, want_arch),
                "{dt}/{os}"
            );
            assert_eq!(!r.notes.is_empty(), note, "{dt}/{os}: {:?}", r.notes);
        }
        assert_eq!(
            resolve(&kvm, "kvm", "hvm", None)
                .unwrap()
                .machine
                .as_deref(),
            Some("pc")
        );
        assert_eq!(
            resolve(&xen, "xen", "xen", None)
                .unwrap()
                .machine
                .as_deref(),
            Some("xenpv")
        );
        // Refusals.
        let e = resolve(&kvm, "xen", "xen", None).unwrap_err().to_string();
        assert!(e.contains("cannot run Xen paravirtualised"), "{e}");
        assert!(resolve(&kvm, "kvm", "hvm", Some("aarch64")).is_err());
        assert!(resolve(&tcg, "xen", "hvm", None).is_err());
    }

    #[test]
    fn qemu_x86_always_gets_acpi_and_apic() {
        let r = resolve(&caps(&[("hvm", "x86_64", &["qemu"])]), "kvm", "hvm", None).unwrap();
        let f = default_features(&r, true, false);
        assert!(f.acpi && f.apic && f.hyperv && !f.pae);
        let pv = resolve(&caps(&[("xen", "x86_64", &["xen"])]), "xen", "xen", None).unwrap();
        let f = default_features(&pv, true, false);
        assert!(!f.acpi && !f.hyperv);
        // The real caps parser feeds the resolver too.
        let c = parse_capabilities("<capabilities><host><cpu><arch>x86_64</arch></cpu></host><guest><os_type>hvm</os_type><arch name='x86_64'><machine>pc</machine><domain type='qemu'/></arch></guest></capabilities>").unwrap();
        assert_eq!(resolve(&c, "kvm", "hvm", None).unwrap().domain_type, "qemu");
    }

    #[test]
    fn drive_slots_per_bus() {
        let all = crate::profile::builtin();
        let profile = |n: &str| all.iter().find(|p| p.name == n).unwrap().clone();
        let hvm = resolve(&caps(&[("hvm", "x86_64", &["qemu"])]), "qemu", "hvm", None).unwrap();
        let pv = resolve(&caps(&[("xen", "x86_64", &["xen"])]), "xen", "xen", None).unwrap();
        // (profile, resolved, disks, installation medium, refusal expected)
        let table: [(&str, &Resolved, usize, bool, Option<&str>); 7] = [
            ("Other", &hvm, 3, true, None),
            // Other boots from CD-ROM: it always has a (maybe empty) CD-ROM drive.
            ("Other", &hvm, 4, false, Some("1 CD-ROM drive need 5")),
            (
                "Other",
                &hvm,
                4,
                true,
                Some("IDE bus, which has 4 slots (hda to hdd): 4 disks and 1 CD-ROM drive need 5"),
            ),
            ("Other", &hvm, 5, false, Some("at most 3 disks")),
            ("Linux", &hvm, 30, true, None),
            ("Windows", &hvm, 8, true, None),
            ("Linux Xen PV", &pv, 12, true, None),
        ];
        for (name, r, disks, cdrom, refusal) in table {
            let p = profile(name);
            let got = check_drive_slots(&p, r, disks, cdrom);
            match refusal {
                None => assert!(got.is_ok(), "{name} {disks} {cdrom}: {got:?}"),
                Some(text) => {
                    let e = got.as_ref().unwrap_err();
                    assert!(e.contains(text), "{name} {disks} {cdrom}: {e}");
                }
            }
            if got.is_ok() {
                // What passes the check gets real targets, never a placeholder.
                let (def, _) = from_profile(
                    &p,
                    r,
                    NewVm {
                        name: "x".into(),
                        disks: vec![("file".into(), "/i".into(), None); disks],
                        cdrom: cdrom.then(|| "/c.iso".into()),
                        ..NewVm::default()
                    },
                );
                assert!(
                    def.disks.iter().all(|d| !d.target.ends_with('?')),
                    "{name}: {:?}",
                    def.disks
                );
                assert_eq!(
                    def.disks.iter().filter(|d| d.device == "disk").count(),
                    disks
                );
            }
        }
        // The driver CD-ROM keeps its own medium when no installation medium is given.
        let win = profile("Windows");
        let (def, _) = from_profile(
            &win,
            &hvm,
            NewVm {
                name: "w".into(),
                driver_iso: Some("/drivers.iso".into()),
                ..NewVm::default()
            },
        );
        let sources: Vec<Option<&str>> = def
            .disks
            .iter()
            .filter(|d| d.device == "cdrom")
            .map(|d| d.source.as_deref())
            .collect();
        assert_eq!(
            sources.last(),
            Some(&Some("/drivers.iso")),
            "{:?}",
            def.disks
        );
    }
}
