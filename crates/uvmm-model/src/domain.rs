//! Reading a libvirt domain definition into the typed view the daemon caches and the API
//! shows. Parsing is lenient about what it does not model (it is kept in the XML tree) and
//! strict about what it does: a domain without a name or UUID is an error.

use crate::units::libvirt_memory_kib;
use crate::uuid::normalize_uuid;
use crate::xml::{self, Element, XmlError};
use serde::{Deserialize, Serialize};

/// XML namespace of the project's own metadata inside `<metadata>`.
pub const UVMM_NS: &str = "https://univention.de/uvmm/1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DomainError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("domain definition has no <{0}>")]
    Missing(&'static str),
    #[error("invalid <{field}> in domain definition: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Disk {
    /// `disk`, `cdrom` or `floppy`.
    pub device: String,
    /// Source kind: `file`, `block`, `network`, `volume`.
    pub kind: String,
    /// Target device name, e.g. `vda`, `hdc`, `xvdb`.
    pub target: String,
    /// Bus: `virtio`, `ide`, `sata`, `scsi`, `xen`, `fdc`, `usb`.
    pub bus: Option<String>,
    /// File or device path, `pool/volume`, or `protocol://host/name` for network disks.
    pub source: Option<String>,
    /// Image format (driver type): `raw`, `qcow2`, ...
    pub format: Option<String>,
    pub cache: Option<String>,
    pub readonly: bool,
    /// Per-device boot order (`<boot order='N'/>`).
    pub boot_order: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Nic {
    /// `bridge`, `network`, `direct`, `user`, ...
    pub kind: String,
    /// Bridge, network or host device name.
    pub source: Option<String>,
    pub mac: Option<String>,
    /// `virtio`, `e1000`, `rtl8139`, `netfront`, ...
    pub model: Option<String>,
    /// Host-side device name while running (e.g. `vnet0`).
    pub target: Option<String>,
    pub boot_order: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Graphics {
    /// `vnc`, `spice`, `sdl`, ...
    pub kind: String,
    /// Port while running; `None` when not assigned.
    pub port: Option<u16>,
    pub autoport: bool,
    pub listen: Option<String>,
    pub keymap: Option<String>,
    /// Whether a password is set; the password itself is never exposed.
    pub password_set: bool,
}

/// The user-visible notes UVMM keeps for a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notes {
    pub description: Option<String>,
    pub contact: Option<String>,
    pub os: Option<String>,
}

/// The `<features>` uvmm manages; others are kept as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Features {
    pub acpi: bool,
    pub apic: bool,
    pub pae: bool,
    /// Hyper-V enlightenments (for Windows guests).
    pub hyperv: bool,
}

/// A device other than a disk or NIC that has a per-device boot order (`<hostdev>`,
/// `<redirdev>`, ...): uvmm does not model the device, but "Set as boot medium" must
/// renumber it, or libvirt refuses two devices with the same order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceBoot {
    /// Element name under `<devices>`, e.g. `hostdev`.
    pub element: String,
    /// Which element of that name (0-based, in document order).
    pub index: usize,
    pub order: u32,
}

impl DeviceBoot {
    /// How the device appears in a boot order list: `hostdev#1` is the first `<hostdev>`.
    pub fn label(&self) -> String {
        format!("{}#{}", self.element, self.index + 1)
    }
}

/// What the daemon knows about a domain from its XML.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DomainDef {
    pub name: String,
    pub uuid: String,
    pub title: Option<String>,
    /// Domain type attribute: `kvm`, `qemu`, `xen`, `test`, ...
    pub domain_type: String,
    /// `hvm`, `xen`/`linux` (Xen PV), `exe`, ...
    pub os_type: String,
    pub arch: Option<String>,
    pub machine: Option<String>,
    pub emulator: Option<String>,
    /// Boot loader for PV guests, e.g. `pygrub`.
    pub bootloader: Option<String>,
    pub bootloader_args: Option<String>,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
    /// `<os><boot dev=.../>` list, in order.
    pub boot_devices: Vec<String>,
    pub max_memory_kib: u64,
    pub memory_kib: u64,
    pub vcpus: u32,
    /// `host-model`, `host-passthrough`, or a named CPU model; `None` when not set.
    pub cpu_model: Option<String>,
    /// RTC offset: `utc` or `localtime` (`<clock offset>`).
    pub rtc: Option<String>,
    pub features: Features,
    pub notes: Notes,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    pub graphics: Vec<Graphics>,
    /// Memory of each NUMA cell in KiB (`<cpu><numa><cell memory>`, in document order).
    /// When there are cells, libvirt takes the VM's initial memory from their sum.
    pub numa_cells_kib: Vec<u64>,
    /// `<maxMemory>` in KiB: the limit for memory hot-plug.
    pub hotplug_max_kib: Option<u64>,
    /// Sum of the memory devices (`<devices><memory>`: DIMMs, NVDIMMs, ...) in KiB. They
    /// are part of `<memory>` but not of the NUMA cells.
    pub memory_devices_kib: u64,
    /// Devices other than disks and NICs with a boot order.
    pub other_boot: Vec<DeviceBoot>,
}

impl DomainDef {
    /// True for paravirtualised Xen guests (os type `xen`/`linux`), which boot through
    /// pygrub or a kernel instead of a BIOS boot order.
    pub fn is_xen_pv(&self) -> bool {
        matches!(self.os_type.as_str(), "xen" | "linux")
    }

    /// Effective boot order: per-device `<boot order>` when any device has one, otherwise
    /// the `<os><boot dev>` list.
    pub fn boot_order(&self) -> Vec<String> {
        let mut ordered: Vec<(u32, String)> = self
            .disks
            .iter()
            .filter_map(|d| d.boot_order.map(|o| (o, d.target.clone())))
            .chain(self.nics.iter().filter_map(|n| {
                n.boot_order.map(|o| {
                    (
                        o,
                        format!("nic:{}", n.mac.clone().unwrap_or_else(|| "?".into())),
                    )
                })
            }))
            .chain(self.other_boot.iter().map(|b| (b.order, b.label())))
            .collect();
        if ordered.is_empty() {
            return self.boot_devices.clone();
        }
        ordered.sort();
        ordered.into_iter().map(|(_, d)| d).collect()
    }

    /// The VNC port while the VM runs, when one is assigned.
    pub fn vnc_port(&self) -> Option<u16> {
        self.graphics
            .iter()
            .find(|g| g.kind == "vnc")
            .and_then(|g| g.port)
    }
}

/// Parse a domain definition.
pub fn parse_domain(input: &str) -> Result<DomainDef, DomainError> {
    let root = xml::parse_root(input, "domain")?;
    domain_from_tree(&root)
}

pub fn domain_from_tree(root: &Element) -> Result<DomainDef, DomainError> {
    let name = root
        .child_text("name")
        .filter(|n| !n.is_empty())
        .ok_or(DomainError::Missing("name"))?;
    // libvirt generates a UUID when none is given; a definition read back always has one.
    let uuid_raw = root
        .child_text("uuid")
        .ok_or(DomainError::Missing("uuid"))?;
    let uuid = normalize_uuid(&uuid_raw).map_err(|e| DomainError::Invalid {
        field: "uuid",
        message: e.to_string(),
    })?;

    let memory_kib = memory_field(root, "memory")?.unwrap_or(0);
    let current = memory_field(root, "currentMemory")?.unwrap_or(memory_kib);
    let vcpus = match root.child("vcpu") {
        Some(v) => {
            let text = v.attr("current").map(str::to_string).unwrap_or(v.text());
            text.trim().parse().map_err(|_| DomainError::Invalid {
                field: "vcpu",
                message: format!("'{}' is not a number", text.trim()),
            })?
        }
        None => 1,
    };

    let os = root.child("os");
    let os_type_el = os.and_then(|o| o.child("type"));
    let os_type = os_type_el
        .map(|t| t.text().trim().to_string())
        .filter(|t| !t.is_empty())
        // Old Xen PV definitions without <os> (pygrub only) are PV guests.
        .unwrap_or_else(|| {
            if root.child("bootloader").is_some() {
                "linux".into()
            } else {
                "hvm".into()
            }
        });
    let boot_devices = os
        .map(|o| {
            o.children_named("boot")
                .filter_map(|b| b.attr("dev").map(str::to_string))
                .collect()
        })
        .unwrap_or_default();

    let mut def = DomainDef {
        name,
        uuid,
        title: root.child_text("title"),
        domain_type: root.attr("type").unwrap_or("").to_string(),
        os_type,
        arch: os_type_el.and_then(|t| t.attr("arch")).map(str::to_string),
        machine: os_type_el
            .and_then(|t| t.attr("machine"))
            .map(str::to_string),
        emulator: root
            .find("devices/emulator")
            .map(|e| e.text().trim().to_string()),
        bootloader: root.child_text("bootloader").filter(|b| !b.is_empty()),
        bootloader_args: root.child_text("bootloader_args").filter(|b| !b.is_empty()),
        kernel: os.and_then(|o| o.child_text("kernel")),
        initrd: os.and_then(|o| o.child_text("initrd")),
        cmdline: os.and_then(|o| o.child_text("cmdline")),
        cpu_model: read_cpu_model(root),
        rtc: root
            .child("clock")
            .and_then(|c| c.attr("offset"))
            .map(str::to_string),
        features: read_features(root),
        boot_devices,
        max_memory_kib: memory_kib,
        memory_kib: current,
        vcpus,
        notes: read_notes(root),
        ..DomainDef::default()
    };

    def.numa_cells_kib = read_numa_cells(root)?;
    def.hotplug_max_kib = memory_field(root, "maxMemory")?;
    if let Some(devices) = root.child("devices") {
        let mut seen: Vec<(&str, usize)> = Vec::new();
        for dev in devices.elements() {
            let index = match seen.iter_mut().find(|(n, _)| *n == dev.name) {
                Some((_, count)) => {
                    *count += 1;
                    *count - 1
                }
                None => {
                    seen.push((&dev.name, 1));
                    0
                }
            };
            match dev.name.as_str() {
                "disk" => def.disks.push(read_disk(dev)),
                "interface" => def.nics.push(read_nic(dev)),
                "graphics" => def.graphics.push(read_graphics(dev)),
                "memory" => {
                    let size = dev.find("target/size").map(|s| {
                        libvirt_memory_kib(&s.text(), s.attr("unit")).map_err(|e| {
                            DomainError::Invalid {
                                field: "memory device",
                                message: e.to_string(),
                            }
                        })
                    });
                    if let Some(size) = size.transpose()? {
                        def.memory_devices_kib = def.memory_devices_kib.saturating_add(size);
                    }
                }
                _ => {
                    if let Some(order) = boot_order_of(dev) {
                        def.other_boot.push(DeviceBoot {
                            element: dev.name.clone(),
                            index,
                            order,
                        });
                    }
                }
            }
        }
    }
    Ok(def)
}

fn read_numa_cells(root: &Element) -> Result<Vec<u64>, DomainError> {
    let Some(numa) = root.find("cpu/numa") else {
        return Ok(Vec::new());
    };
    numa.children_named("cell")
        .map(|c| {
            let value = c.attr("memory").unwrap_or("");
            libvirt_memory_kib(value, c.attr("unit")).map_err(|e| DomainError::Invalid {
                field: "numa",
                message: format!("cell memory: {e}"),
            })
        })
        .collect()
}

fn read_cpu_model(root: &Element) -> Option<String> {
    let cpu = root.child("cpu")?;
    match cpu.attr("mode") {
        Some("host-model") => Some("host-model".into()),
        Some("host-passthrough") => Some("host-passthrough".into()),
        Some("maximum") => Some("maximum".into()),
        _ => cpu.child_text("model").filter(|m| !m.is_empty()),
    }
}

fn read_features(root: &Element) -> Features {
    let Some(f) = root.child("features") else {
        return Features::default();
    };
    Features {
        acpi: f.child("acpi").is_some(),
        apic: f.child("apic").is_some(),
        pae: f.child("pae").is_some(),
        hyperv: f.child("hyperv").is_some_and(|h| {
            h.attr("mode") == Some("passthrough") || h.elements().next().is_some()
        }),
    }
}

fn memory_field(root: &Element, name: &'static str) -> Result<Option<u64>, DomainError> {
    root.child(name)
        .map(|m| {
            libvirt_memory_kib(&m.text(), m.attr("unit")).map_err(|e| DomainError::Invalid {
                field: name,
                message: e.to_string(),
            })
        })
        .transpose()
}

fn boot_order_of(dev: &Element) -> Option<u32> {
    dev.child("boot")
        .and_then(|b| b.attr("order"))
        .and_then(|o| o.parse().ok())
}

pub(crate) fn read_disk(dev: &Element) -> Disk {
    let kind = dev.attr("type").unwrap_or("file").to_string();
    let src = dev.child("source");
    let source = src.and_then(|s| match kind.as_str() {
        "file" => s.attr("file").map(str::to_string),
        "block" => s.attr("dev").map(str::to_string),
        "dir" => s.attr("dir").map(str::to_string),
        "volume" => match (s.attr("pool"), s.attr("volume")) {
            (Some(p), Some(v)) => Some(format!("{p}/{v}")),
            _ => None,
        },
        "network" => {
            let proto = s.attr("protocol").unwrap_or("network");
            let host = s.child("host").and_then(|h| h.attr("name"));
            let name = s.attr("name").unwrap_or("");
            Some(match host {
                Some(h) => format!("{proto}://{h}/{name}"),
                None => format!("{proto}:{name}"),
            })
        }
        _ => None,
    });
    let target = dev.child("target");
    let driver = dev.child("driver");
    Disk {
        device: dev.attr("device").unwrap_or("disk").to_string(),
        kind,
        target: target.and_then(|t| t.attr("dev")).unwrap_or("").to_string(),
        bus: target.and_then(|t| t.attr("bus")).map(str::to_string),
        source,
        format: driver.and_then(|d| d.attr("type")).map(str::to_string),
        cache: driver.and_then(|d| d.attr("cache")).map(str::to_string),
        readonly: dev.child("readonly").is_some(),
        boot_order: boot_order_of(dev),
    }
}

pub(crate) fn read_nic(dev: &Element) -> Nic {
    let kind = dev.attr("type").unwrap_or("").to_string();
    let src = dev.child("source");
    // A running network NIC also names its bridge; the network is what was configured.
    let source = src.and_then(|s| {
        let preferred = match kind.as_str() {
            "network" => s.attr("network"),
            "bridge" => s.attr("bridge"),
            _ => None,
        };
        preferred
            .or_else(|| s.attr("dev"))
            .or_else(|| s.attr("network"))
            .or_else(|| s.attr("bridge"))
            .map(str::to_string)
    });
    Nic {
        kind,
        source,
        mac: dev
            .child("mac")
            .and_then(|m| m.attr("address"))
            .map(|m| m.to_ascii_lowercase()),
        model: dev
            .child("model")
            .and_then(|m| m.attr("type"))
            .map(str::to_string),
        target: dev
            .child("target")
            .and_then(|t| t.attr("dev"))
            .map(str::to_string),
        boot_order: boot_order_of(dev),
    }
}

pub(crate) fn read_graphics(dev: &Element) -> Graphics {
    let port = dev
        .attr("port")
        .and_then(|p| p.parse::<i32>().ok())
        .filter(|p| *p > 0)
        .and_then(|p| u16::try_from(p).ok());
    let listen = dev.attr("listen").map(str::to_string).or_else(|| {
        dev.child("listen")
            .and_then(|l| l.attr("address"))
            .map(str::to_string)
    });
    Graphics {
        kind: dev.attr("type").unwrap_or("").to_string(),
        port,
        autoport: dev.attr("autoport") == Some("yes"),
        listen,
        keymap: dev.attr("keymap").map(str::to_string),
        password_set: dev.attr("passwd").is_some(),
    }
}

/// Notes live under `<metadata><uvmm:notes xmlns:uvmm=UVMM_NS>`; a plain `<description>`
/// (set by virsh or an older UVMM) is the fallback for the description.
fn read_notes(root: &Element) -> Notes {
    let mut notes = Notes::default();
    if let Some(meta) = root.child("metadata") {
        for el in meta.elements() {
            let ns_ok = el
                .attrs
                .iter()
                .any(|(k, v)| k.starts_with("xmlns") && v == UVMM_NS);
            if el.local_name() == "notes" && ns_ok {
                let prefix = el.name.split_once(':').map(|(p, _)| format!("{p}:"));
                let get = |local: &str| {
                    let qname = format!("{}{local}", prefix.as_deref().unwrap_or(""));
                    el.child_text(&qname).filter(|t| !t.is_empty())
                };
                notes.description = get("description");
                notes.contact = get("contact");
                notes.os = get("os");
            }
        }
    }
    if notes.description.is_none() {
        notes.description = root.child_text("description").filter(|d| !d.is_empty());
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    const HVM: &str = r#"<domain type='kvm'>
  <name>win10</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <title>Windows</title>
  <description>old description</description>
  <metadata>
    <app:x xmlns:app="urn:other">keep</app:x>
    <uvmm:notes xmlns:uvmm="https://univention.de/uvmm/1">
      <uvmm:description>Accounting &amp; HR</uvmm:description>
      <uvmm:contact>ops@example.com</uvmm:contact>
      <uvmm:os>Windows 10</uvmm:os>
    </uvmm:notes>
  </metadata>
  <memory unit='GiB'>4</memory>
  <currentMemory unit='MiB'>2048</currentMemory>
  <vcpu placement='static' current='2'>4</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type><boot dev='cdrom'/><boot dev='hd'/></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/var/lib/libvirt/images/win10.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <boot order='2'/>
    </disk>
    <disk type='volume' device='cdrom'>
      <source pool='iso' volume='virtio-win.iso'/>
      <target dev='sdb' bus='sata'/>
      <readonly/>
      <boot order='1'/>
    </disk>
    <disk type='network' device='disk'>
      <source protocol='iscsi' name='iqn.2013-07.com.example:iscsi-pool/1'><host name='example.com' port='3260'/></source>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <interface type='bridge'>
      <mac address='52:54:00:AB:CD:EF'/><source bridge='br0'/><model type='virtio'/><target dev='vnet3'/>
    </interface>
    <interface type='network'>
      <mac address='52:54:00:AB:CD:F0'/><source network='isolated' portid='x' bridge='virbr9'/>
    </interface>
    <graphics type='vnc' port='5901' autoport='yes' listen='0.0.0.0' keymap='de' passwd='secret'/>
    <hostdev mode='subsystem' type='pci'/>
  </devices>
</domain>"#;

    #[test]
    fn parses_hvm() {
        let d = parse_domain(HVM).unwrap();
        assert_eq!(d.name, "win10");
        assert_eq!(d.uuid, "4dea22b3-1d52-d8f3-2516-782e98ab3fa0");
        assert_eq!(d.domain_type, "kvm");
        assert_eq!(d.os_type, "hvm");
        assert!(!d.is_xen_pv());
        assert_eq!(d.arch.as_deref(), Some("x86_64"));
        assert_eq!(d.max_memory_kib, 4 * 1024 * 1024);
        assert_eq!(d.memory_kib, 2048 * 1024);
        assert_eq!(d.vcpus, 2);
        assert_eq!(d.notes.description.as_deref(), Some("Accounting & HR"));
        assert_eq!(d.notes.contact.as_deref(), Some("ops@example.com"));
        assert_eq!(d.notes.os.as_deref(), Some("Windows 10"));
        assert_eq!(d.disks.len(), 3);
        assert_eq!(d.disks[0].format.as_deref(), Some("qcow2"));
        assert_eq!(d.disks[1].source.as_deref(), Some("iso/virtio-win.iso"));
        assert!(d.disks[1].readonly);
        assert_eq!(
            d.disks[2].source.as_deref(),
            Some("iscsi://example.com/iqn.2013-07.com.example:iscsi-pool/1")
        );
        assert_eq!(d.nics[0].mac.as_deref(), Some("52:54:00:ab:cd:ef"));
        assert_eq!(d.nics[0].source.as_deref(), Some("br0"));
        assert_eq!(d.nics[1].source.as_deref(), Some("isolated"));
        assert_eq!(d.vnc_port(), Some(5901));
        assert!(d.graphics[0].password_set);
        assert_eq!(d.boot_order(), vec!["sdb", "vda"]);
    }

    #[test]
    fn parses_xen_pv_and_fallbacks() {
        let pv = r#"<domain type='xen'><name>pv</name><uuid>EF86180145B911CB88E3AFBFE5370493</uuid>
            <bootloader>/usr/bin/pygrub</bootloader><memory>261072</memory>
            <description>plain</description>
            <os><type>linux</type></os>
            <devices><graphics type='vnc' port='-1' autoport='yes'/></devices></domain>"#;
        let d = parse_domain(pv).unwrap();
        assert!(d.is_xen_pv());
        assert_eq!(d.uuid, "ef861801-45b9-11cb-88e3-afbfe5370493");
        assert_eq!(d.bootloader.as_deref(), Some("/usr/bin/pygrub"));
        assert_eq!(d.vcpus, 1);
        assert_eq!(d.memory_kib, 261072);
        assert_eq!(d.notes.description.as_deref(), Some("plain"));
        assert_eq!(d.vnc_port(), None);
        assert!(d.boot_order().is_empty());
    }

    #[test]
    fn rejects_invalid() {
        let table: [(&str, DomainError); 5] = [
            ("<domain><uuid>x</uuid></domain>", DomainError::Missing("name")),
            ("<domain><name>a</name></domain>", DomainError::Missing("uuid")),
            (
                "<pool><name>a</name></pool>",
                DomainError::Xml(XmlError::WrongRoot {
                    expected: "domain".into(),
                    found: "pool".into(),
                }),
            ),
            (
                "<domain><name>a</name><uuid>zz</uuid></domain>",
                DomainError::Invalid {
                    field: "uuid",
                    message: "'zz' is not a UUID".into(),
                },
            ),
            (
                "<domain><name>a</name><uuid>4dea22b31d52d8f32516782e98ab3fa0</uuid><vcpu>two</vcpu></domain>",
                DomainError::Invalid {
                    field: "vcpu",
                    message: "'two' is not a number".into(),
                },
            ),
        ];
        for (xml, want) in table {
            assert_eq!(parse_domain(xml), Err(want), "{xml}");
        }
    }
}
