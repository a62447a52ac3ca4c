//! A change request and the current definition give the new definition: the pure step of
//! every VM edit. The daemon's jobs read the definition from libvirt, check what needs
//! the host (networks, images, volumes), call these, and write the result with
//! [`crate::edit::merge`], which keeps everything the model does not know.

use crate::caps::HostCaps;
use crate::domain::{Disk, DomainDef, Graphics, Notes};
use crate::memory::{set_total, MemoryError};
use crate::state::VmState;
use crate::xml;

/// Why a change cannot be made. `Invalid`: the request's value is not acceptable for any
/// VM; `Conflict`: it does not fit this VM as it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChangeError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

/// The settings a VM edit may change (`VmPatch` of the API, less what is not part of the
/// definition: autostart is a libvirt flag, a VNC password lives in the XML tree only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub memory_kib: Option<u64>,
    pub vcpus: Option<u32>,
    /// Notes; empty clears.
    pub description: Option<String>,
    pub contact: Option<String>,
    pub os: Option<String>,
    /// `utc` or `localtime`.
    pub rtc: Option<String>,
    /// Empty: the hypervisor's default.
    pub cpu_model: Option<String>,
    /// HVM boot order (replaces per-device orders).
    pub boot: Option<Vec<String>>,
    pub vnc: Option<bool>,
    pub vnc_keymap: Option<String>,
    pub vnc_listen: Option<String>,
    /// A VNC password is to be set (it needs a VNC console).
    pub vnc_password: bool,
    /// `qemu` or `kvm`.
    pub domain_type: Option<String>,
}

/// What a change must know about the VM and its host now.
#[derive(Debug, Clone, Copy)]
pub struct Now<'a> {
    pub state: VmState,
    /// A managed-save image exists.
    pub managed_save: bool,
    pub caps: &'a HostCaps,
}

/// The new definition, and what the user should know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Changed {
    pub def: DomainDef,
    pub warnings: Vec<String>,
}

/// Empty text clears a note.
fn opt_text(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_string())
}

/// Apply `s` to `old`. Memory keeps NUMA cells, `<maxMemory>` and memory devices
/// consistent (or says why it cannot); a boot order replaces every per-device order.
pub fn apply_settings(old: &DomainDef, s: &Settings, now: Now) -> Result<Changed, ChangeError> {
    let mut new = old.clone();
    let mut warnings = Vec::new();
    if let Some(m) = s.memory_kib {
        set_total(&mut new, m)?;
    }
    if let Some(t) = &s.domain_type {
        warnings.extend(set_domain_type(&mut new, t, now)?);
    }
    if let Some(v) = s.vcpus {
        new.vcpus = v;
    }
    for (value, note) in [
        (&s.description, &mut new.notes.description),
        (&s.contact, &mut new.notes.contact),
        (&s.os, &mut new.notes.os),
    ] {
        if let Some(v) = value {
            *note = opt_text(v);
        }
    }
    if let Some(r) = &s.rtc {
        if !matches!(r.as_str(), "utc" | "localtime") {
            return Err(ChangeError::Invalid(format!(
                "rtc '{r}' (expected utc or localtime)"
            )));
        }
        new.rtc = Some(r.clone());
    }
    if let Some(c) = &s.cpu_model {
        new.cpu_model = opt_text(c);
    }
    if let Some(boot) = &s.boot {
        if old.is_xen_pv() {
            return Err(ChangeError::Conflict("Xen PV VMs boot from their first disk (pygrub); use `vm disk boot` instead of a boot order".into()));
        }
        new.boot_devices = boot.clone();
        for d in &mut new.disks {
            d.boot_order = None;
        }
        for n in &mut new.nics {
            n.boot_order = None;
        }
        // libvirt refuses <os><boot> next to any per-device order, <hostdev> ones too.
        new.other_boot.clear();
    }
    if let Some(on) = s.vnc {
        let has = new.graphics.iter().any(|g| g.kind == "vnc");
        if on && !has {
            new.graphics.push(Graphics {
                kind: "vnc".into(),
                autoport: true,
                listen: Some("127.0.0.1".into()),
                ..Graphics::default()
            });
        } else if !on {
            new.graphics.retain(|g| g.kind != "vnc");
        }
    }
    if s.vnc_keymap.is_some() || s.vnc_listen.is_some() || s.vnc_password {
        let g = new
            .graphics
            .iter_mut()
            .find(|g| g.kind == "vnc")
            .ok_or_else(|| {
                ChangeError::Conflict(
                    "the VM has no VNC console; turn it on with vnc=on first".into(),
                )
            })?;
        if let Some(k) = &s.vnc_keymap {
            g.keymap = opt_text(k);
        }
        if let Some(l) = &s.vnc_listen {
            g.listen = opt_text(l);
        }
    }
    Ok(Changed { def: new, warnings })
}

/// Switch a shut-off QEMU/KVM VM between `kvm` and `qemu` (TCG), where the host offers the
/// wanted type for the VM's OS type and architecture. Returns a warning when the CPU
/// model had to go (host-model and host-passthrough need KVM).
pub fn set_domain_type(
    new: &mut DomainDef,
    wanted: &str,
    now: Now,
) -> Result<Option<String>, ChangeError> {
    if !matches!(wanted, "kvm" | "qemu") {
        return Err(ChangeError::Invalid(format!(
            "domain type '{wanted}' (expected qemu or kvm)"
        )));
    }
    if new.domain_type == wanted {
        return Ok(None);
    }
    // Well-formed, but not for this VM: 409 (the status rule of docs/api.md).
    let conflict = |msg: String| Err(ChangeError::Conflict(msg));
    if !matches!(new.domain_type.as_str(), "kvm" | "qemu") {
        return conflict(format!(
            "{} is a {} domain: only QEMU/KVM VMs switch between kvm and qemu",
            new.name, new.domain_type
        ));
    }
    if now.state.is_active() {
        return conflict(format!(
            "{} is {}: its domain type changes only while it is shut off",
            new.name, now.state
        ));
    }
    if now.managed_save {
        return conflict(format!(
            "{} has a saved state (suspended) that belongs to its {} domain: start it and shut it down before changing the domain type",
            new.name, new.domain_type
        ));
    }
    let arch = new.arch.as_deref();
    let fits = |os: &str, a: &str| os == new.os_type && arch.is_none_or(|x| x == a);
    let offered = now
        .caps
        .guests
        .iter()
        .any(|g| fits(&g.os_type, &g.arch) && g.domain_types.iter().any(|t| t == wanted));
    if !offered {
        let what: Vec<String> = now
            .caps
            .guests
            .iter()
            .filter(|g| fits(&g.os_type, &g.arch))
            .flat_map(|g| g.domain_types.clone())
            .collect();
        return conflict(format!(
            "this host offers no {wanted} domains for {}/{} (it offers: {})",
            new.os_type,
            arch.unwrap_or("any architecture"),
            if what.is_empty() {
                "none".to_string()
            } else {
                what.join(", ")
            }
        ));
    }
    new.domain_type = wanted.to_string();
    // As for new VMs: these CPU models need KVM, emulation takes QEMU's default CPU.
    let cpu = new.cpu_model.clone();
    if wanted == "qemu" && matches!(cpu.as_deref(), Some("host-model" | "host-passthrough")) {
        new.cpu_model = None;
        return Ok(Some(format!(
            "CPU model {} needs KVM; the VM now gets the hypervisor's default CPU",
            cpu.unwrap_or_default()
        )));
    }
    Ok(None)
}

/// The project's metadata element for the notes of a running VM (`None`: no notes).
pub fn notes_element(n: &Notes) -> Option<String> {
    if n.description.is_none() && n.contact.is_none() && n.os.is_none() {
        return None;
    }
    let mut el = xml::Element::new("notes");
    for (k, v) in [
        ("description", &n.description),
        ("contact", &n.contact),
        ("os", &n.os),
    ] {
        if let Some(v) = v {
            el.push_child(xml::Element::new(k).with_text(v.clone()));
        }
    }
    Some(el.to_xml())
}

/// The bus of a new drive of `device` kind: the bus the VM's other such drives use, else
/// what the hypervisor's guests expect.
pub fn default_bus(def: &DomainDef, device: &str) -> String {
    if def.is_xen_pv() {
        return "xen".into();
    }
    let same = def
        .disks
        .iter()
        .filter(|d| d.device == device)
        .find_map(|d| d.bus.as_deref());
    if let Some(b) = same {
        return b.to_string();
    }
    match (device, def.domain_type.as_str()) {
        ("cdrom", "xen") => "ide".into(),
        ("cdrom", _) => "sata".into(),
        ("floppy", _) => "fdc".into(),
        (_, "xen") => "xen".into(),
        _ => "virtio".into(),
    }
}

/// The model of a new network interface: the one asked for, else the VM's other NICs',
/// else what its hypervisor's guests expect.
pub fn nic_model(def: &DomainDef, wanted: Option<&str>) -> Option<String> {
    wanted
        .map(str::to_string)
        .or_else(|| def.nics.first().and_then(|n| n.model.clone()))
        .or_else(|| match (def.is_xen_pv(), def.domain_type.as_str()) {
            (true, _) => Some("netfront".into()),
            (false, "kvm" | "qemu") => Some("virtio".into()),
            (false, "xen") => Some("e1000".into()),
            _ => None,
        })
}

/// A medium for a drive: its source kind (`file`, `block`, `volume`), source, and the
/// image's format when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Medium {
    pub kind: String,
    pub source: String,
    pub format: Option<String>,
}

/// The drive at `pos` with a new medium (`None`: ejected). The format is the image's
/// where the drive names one (a raw ISO in a drive that says qcow2 would not read); a
/// drive without `<driver type>` gets none, so insert and eject leave the definition as
/// it was.
pub fn with_medium(def: &DomainDef, pos: usize, medium: Option<&Medium>) -> DomainDef {
    let mut new = def.clone();
    let Some(drive): Option<&mut Disk> = new.disks.get_mut(pos) else {
        return new;
    };
    match medium {
        Some(m) => {
            drive.kind = m.kind.clone();
            drive.source = Some(m.source.clone());
            if drive.format.is_some() {
                // Pools call ISO images "iso"; QEMU reads them as raw.
                let f = match m.format.as_deref() {
                    Some("qcow2") => "qcow2",
                    _ => "raw",
                };
                drive.format = Some(f.into());
            }
        }
        None => {
            drive.source = None;
            drive.kind = "file".into();
        }
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::GuestCaps;
    use crate::domain::Nic;

    fn caps(types: &[&str]) -> HostCaps {
        HostCaps {
            host_arch: Some("x86_64".into()),
            guests: vec![GuestCaps {
                os_type: "hvm".into(),
                arch: "x86_64".into(),
                domain_types: types.iter().map(|t| t.to_string()).collect(),
                ..GuestCaps::default()
            }],
        }
    }

    fn vm() -> DomainDef {
        DomainDef {
            name: "web".into(),
            domain_type: "kvm".into(),
            os_type: "hvm".into(),
            arch: Some("x86_64".into()),
            memory_kib: 1 << 20,
            max_memory_kib: 1 << 20,
            vcpus: 1,
            cpu_model: Some("host-model".into()),
            notes: Notes {
                description: Some("old".into()),
                ..Notes::default()
            },
            ..DomainDef::default()
        }
    }

    #[derive(Debug)]
    enum Want {
        Ok(fn(&DomainDef) -> bool, usize),
        Invalid,
        Conflict,
        Memory,
    }

    fn off(caps: &HostCaps) -> Now<'_> {
        Now {
            state: VmState::Shutoff,
            managed_save: false,
            caps,
        }
    }

    #[test]
    fn settings_table() {
        let (kvm_qemu, qemu_only) = (&caps(&["qemu", "kvm"]), &caps(&["qemu"]));
        let running = Now {
            state: VmState::Running,
            ..off(kvm_qemu)
        };
        let saved = Now {
            managed_save: true,
            ..off(kvm_qemu)
        };
        let s = Settings::default;
        let pv = DomainDef {
            os_type: "xen".into(),
            domain_type: "xen".into(),
            ..vm()
        };
        // (definition, settings, now, wanted: a check of the result and its warnings)
        let table: Vec<(DomainDef, Settings, Now, Want)> = vec![
            (vm(), s(), off(kvm_qemu), Want::Ok(|d| *d == vm(), 0)),
            (
                vm(),
                Settings {
                    vcpus: Some(4),
                    description: Some(String::new()),
                    contact: Some("ops".into()),
                    ..s()
                },
                running,
                Want::Ok(
                    |d| {
                        d.vcpus == 4
                            && d.notes.description.is_none()
                            && d.notes.contact.as_deref() == Some("ops")
                    },
                    0,
                ),
            ),
            (
                vm(),
                Settings {
                    memory_kib: Some(2 << 20),
                    ..s()
                },
                off(kvm_qemu),
                Want::Ok(|d| d.memory_kib == 2 << 20, 0),
            ),
            (
                vm(),
                Settings {
                    memory_kib: Some(0),
                    ..s()
                },
                off(kvm_qemu),
                Want::Memory,
            ),
            // KVM to QEMU drops a CPU model that needs KVM, and says so.
            (
                vm(),
                Settings {
                    domain_type: Some("qemu".into()),
                    ..s()
                },
                off(kvm_qemu),
                Want::Ok(|d| d.domain_type == "qemu" && d.cpu_model.is_none(), 1),
            ),
            (
                vm(),
                Settings {
                    domain_type: Some("kvm".into()),
                    ..s()
                },
                off(kvm_qemu),
                Want::Ok(|d| *d == vm(), 0),
            ),
            (
                DomainDef {
                    domain_type: "qemu".into(),
                    ..vm()
                },
                Settings {
                    domain_type: Some("kvm".into()),
                    ..s()
                },
                off(qemu_only),
                Want::Conflict,
            ),
            (
                vm(),
                Settings {
                    domain_type: Some("qemu".into()),
                    ..s()
                },
                running,
                Want::Conflict,
            ),
            (
                vm(),
                Settings {
                    domain_type: Some("qemu".into()),
                    ..s()
                },
                saved,
                Want::Conflict,
            ),
            (
                vm(),
                Settings {
                    domain_type: Some("lxc".into()),
                    ..s()
                },
                off(kvm_qemu),
                Want::Invalid,
            ),
            (
                vm(),
                Settings {
                    rtc: Some("martian".into()),
                    ..s()
                },
                off(kvm_qemu),
                Want::Invalid,
            ),
            (
                pv.clone(),
                Settings {
                    boot: Some(vec!["hd".into()]),
                    ..s()
                },
                off(kvm_qemu),
                Want::Conflict,
            ),
            (
                vm(),
                Settings {
                    vnc_keymap: Some("de".into()),
                    ..s()
                },
                off(kvm_qemu),
                Want::Conflict,
            ),
            // VNC on and its settings in one change.
            (
                vm(),
                Settings {
                    vnc: Some(true),
                    vnc_keymap: Some("de".into()),
                    vnc_password: true,
                    ..s()
                },
                off(kvm_qemu),
                Want::Ok(
                    |d| d.graphics.len() == 1 && d.graphics[0].keymap.as_deref() == Some("de"),
                    0,
                ),
            ),
        ];
        for (old, settings, now, want) in table {
            let got = apply_settings(&old, &settings, now);
            match (&want, &got) {
                (Want::Ok(check, n), Ok(c)) => {
                    assert!(check(&c.def), "{settings:?}: {:?}", c.def);
                    assert_eq!(c.warnings.len(), *n, "{settings:?}: {:?}", c.warnings);
                }
                (Want::Invalid, Err(ChangeError::Invalid(_)))
                | (Want::Conflict, Err(ChangeError::Conflict(_)))
                | (Want::Memory, Err(ChangeError::Memory(_))) => {}
                _ => panic!("{settings:?} on {old:?}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn a_boot_order_replaces_per_device_orders() {
        let mut old = vm();
        old.disks.push(Disk {
            target: "vda".into(),
            boot_order: Some(1),
            ..Disk::default()
        });
        old.nics.push(Nic {
            boot_order: Some(2),
            ..Nic::default()
        });
        let s = Settings {
            boot: Some(vec!["cdrom".into(), "hd".into()]),
            ..Settings::default()
        };
        let caps = caps(&["kvm"]);
        let now = Now {
            state: VmState::Shutoff,
            managed_save: false,
            caps: &caps,
        };
        let c = apply_settings(&old, &s, now).unwrap();
        assert_eq!(c.def.boot_devices, ["cdrom", "hd"]);
        assert_eq!(c.def.disks[0].boot_order, None);
        assert_eq!(c.def.nics[0].boot_order, None);
    }

    #[test]
    fn buses_models_and_media() {
        let mut d = DomainDef {
            domain_type: "kvm".into(),
            os_type: "hvm".into(),
            ..DomainDef::default()
        };
        assert_eq!(default_bus(&d, "disk"), "virtio");
        assert_eq!(default_bus(&d, "cdrom"), "sata");
        assert_eq!(nic_model(&d, None).as_deref(), Some("virtio"));
        assert_eq!(nic_model(&d, Some("e1000")).as_deref(), Some("e1000"));
        d.disks.push(Disk {
            device: "cdrom".into(),
            bus: Some("ide".into()),
            target: "hdc".into(),
            format: Some("raw".into()),
            ..Disk::default()
        });
        assert_eq!(default_bus(&d, "cdrom"), "ide");
        assert_eq!(default_bus(&d, "disk"), "virtio");
        let iso = Medium {
            kind: "file".into(),
            source: "/iso/a.iso".into(),
            format: Some("iso".into()),
        };
        let inserted = with_medium(&d, 0, Some(&iso));
        assert_eq!(
            (
                inserted.disks[0].source.as_deref(),
                inserted.disks[0].format.as_deref()
            ),
            (Some("/iso/a.iso"), Some("raw"))
        );
        let ejected = with_medium(&inserted, 0, None);
        assert_eq!(ejected.disks[0].source, None);
        d.os_type = "linux".into();
        d.domain_type = "xen".into();
        assert_eq!(default_bus(&d, "cdrom"), "xen");
        assert_eq!(nic_model(&d, None).as_deref(), Some("netfront"));
        assert_eq!(
            notes_element(&Notes {
                os: Some("Debian".into()),
                ..Notes::default()
            })
            .as_deref(),
            Some("<notes><os>Debian</os></notes>")
        );
        assert_eq!(notes_element(&Notes::default()), None);
    }
}
