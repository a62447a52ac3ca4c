//! Checks for a whole definition that comes from a client (a restore with `xml`), not from
//! uvmm's own edits. uvmmd defines it with root's rights through libvirt, and libvirt acts
//! on what a definition names: `<emulator>` and a Xen `<bootloader>` are programs it runs,
//! `<qemu:commandline>` passes arbitrary arguments to QEMU, a `<hostdev>` or
//! `<filesystem>` hands host hardware or directories to the guest, and character devices
//! of type `file`, `dev`, `pipe` or `unix` open host paths. So a client definition may use
//! only what uvmm itself would write, plus what is harmless; host paths are returned for
//! the caller to check against the host's pools and permitted directories.
//!
//! Definitions recorded by uvmmd itself (its backups) are not subject to this: they were
//! read from libvirt, where an administrator put them.

use crate::xml::Element;

/// The outcome: what is refused (in words), and the host paths the definition opens.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ForeignCheck {
    pub refused: Vec<String>,
    /// (what, path) for every disk image, kernel or initrd outside libvirt's own files.
    pub paths: Vec<(String, String)>,
}

/// Devices a client definition may contain. Everything else (hostdev, filesystem,
/// smartcard, shmem, nvdimm memory, …) needs an administrator.
const DEVICES: [&str; 17] = [
    "emulator",
    "disk",
    "controller",
    "interface",
    "input",
    "graphics",
    "video",
    "sound",
    "audio",
    "console",
    "serial",
    "channel",
    "memballoon",
    "rng",
    "watchdog",
    "panic",
    "redirdev",
];

/// Character device types that open nothing on the host by a client-given path.
const CHAR_TYPES: [&str; 6] = ["pty", "null", "vc", "spicevmc", "spiceport", "qemu-vdagent"];

/// Check the `<domain>` tree. `emulators` are the host's emulators (from its capabilities);
/// `<emulator>` must be one of them.
pub fn check(root: &Element, emulators: &[String]) -> ForeignCheck {
    let mut out = ForeignCheck::default();
    let mut refuse = |m: String| out.refused.push(m);
    let mut paths = Vec::new();

    // Namespaced elements (qemu:commandline, xen:commandline, lxc:namespace, …) pass
    // arbitrary options to the hypervisor; only <metadata> may hold foreign elements.
    fn namespaced(e: &Element, found: &mut Vec<String>) {
        for c in e.elements() {
            if c.local_name() == "metadata" && !c.name.contains(':') {
                continue;
            }
            if c.name.contains(':') {
                found.push(c.name.clone());
            } else {
                namespaced(c, found);
            }
        }
    }
    let mut found = Vec::new();
    namespaced(root, &mut found);
    for name in found {
        refuse(format!(
            "<{name}> passes options to the hypervisor directly and needs an administrator"
        ));
    }

    if let Some(os) = root.child("os") {
        for (tag, what) in [
            ("kernel", "kernel"),
            ("initrd", "initrd"),
            ("dtb", "device tree"),
        ] {
            if let Some(p) = os.child_text(tag).filter(|p| !p.trim().is_empty()) {
                paths.push((what.to_string(), p.trim().to_string()));
            }
        }
        for tag in ["loader", "nvram"] {
            if let Some(p) = os.child_text(tag).filter(|p| !p.trim().is_empty()) {
                let p = p.trim();
                let firmware =
                    p.starts_with("/usr/share/") || p.starts_with("/var/lib/libvirt/qemu/nvram/");
                if !firmware || p.split('/').any(|s| s == "..") {
                    refuse(format!(
                        "<{tag}> {p} is not firmware from /usr/share or libvirt's nvram directory"
                    ));
                }
            }
        }
    }
    if let Some(b) = root
        .child_text("bootloader")
        .filter(|b| !b.trim().is_empty())
    {
        let b = b.trim();
        let pygrub =
            matches!(
                b,
                "/usr/bin/pygrub" | "/usr/lib/xen/bin/pygrub" | "/usr/lib/xen-common/bin/pygrub"
            ) || b.starts_with("/usr/lib/xen-") && b.ends_with("/bin/pygrub") && !b.contains("..");
        if !pygrub {
            refuse(format!(
                "<bootloader> {b} is a program uvmmd would run; only pygrub is accepted"
            ));
        }
    }

    let Some(devices) = root.child("devices") else {
        out.paths = paths;
        return out;
    };
    for d in devices.elements() {
        let kind = d.local_name();
        if !DEVICES.contains(&kind) {
            refuse(format!("<{kind}> devices need an administrator"));
            continue;
        }
        let typ = d.attr("type").unwrap_or("");
        match kind {
            "emulator" => {
                let e = d.text();
                let e = e.trim();
                if !emulators.iter().any(|x| x == e) {
                    refuse(format!(
                        "emulator {e} is not one of the host's ({})",
                        if emulators.is_empty() {
                            "none".to_string()
                        } else {
                            emulators.join(", ")
                        }
                    ));
                }
            }
            "disk" => {
                let target = d
                    .child("target")
                    .and_then(|t| t.attr("dev"))
                    .unwrap_or("?")
                    .to_string();
                let source = d.child("source");
                match typ {
                    "file" | "block" | "" => {
                        if let Some(p) = source.and_then(|s| s.attr("file").or(s.attr("dev"))) {
                            paths.push((format!("drive {target}"), p.to_string()));
                        }
                    }
                    "volume" => {}
                    "network" => {
                        let unix = source
                            .into_iter()
                            .flat_map(|s| s.children_named("host"))
                            .any(|h| {
                                h.attr("transport") == Some("unix") || h.attr("socket").is_some()
                            });
                        if unix {
                            refuse(format!("drive {target} connects to a local socket"));
                        }
                    }
                    other => refuse(format!(
                        "drive {target} of type '{other}' needs an administrator"
                    )),
                }
                if source.and_then(|s| s.child("dataStore")).is_some()
                    || d.child("backingStore")
                        .is_some_and(|b| b.child("source").is_some())
                {
                    refuse(format!(
                        "drive {target} names further images (backing or data store)"
                    ));
                }
            }
            "interface" => {
                if d.child("script").is_some() || d.child("downscript").is_some() {
                    refuse("a network interface with a script runs a program on the host".into());
                }
                if matches!(
                    typ,
                    "vhostuser"
                        | "ethernet"
                        | "hostdev"
                        | "vdpa"
                        | "server"
                        | "client"
                        | "mcast"
                        | "udp"
                ) {
                    refuse(format!(
                        "network interfaces of type '{typ}' need an administrator"
                    ));
                }
            }
            "input" => {
                if matches!(typ, "passthrough" | "evdev") {
                    refuse(format!("input devices of type '{typ}' read host devices"));
                }
            }
            "console" | "serial" | "channel" => {
                // No type means pty to libvirt.
                if !typ.is_empty() && !CHAR_TYPES.contains(&typ) {
                    refuse(format!(
                        "<{kind} type='{typ}'> opens something on the host (accepted: {})",
                        CHAR_TYPES.join(", ")
                    ));
                }
                if d.child("log").is_some() {
                    refuse(format!("<{kind}> with a log file writes on the host"));
                }
            }
            "redirdev" if typ != "spicevmc" => {
                refuse(format!("<redirdev type='{typ}'> needs an administrator"));
            }
            "rng" => {
                let backend = d.child("backend");
                let ok = backend.is_some_and(|b| {
                    b.attr("model") == Some("builtin")
                        || b.attr("model") == Some("random")
                            && matches!(
                                b.text().trim(),
                                "" | "/dev/urandom" | "/dev/random" | "/dev/hwrng"
                            )
                });
                if !ok {
                    refuse("an <rng> backend other than builtin or /dev/(u)random needs an administrator".into());
                }
            }
            _ => {}
        }
    }
    out.paths = paths;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml;

    fn run(devices: &str, extra: &str) -> ForeignCheck {
        let text = format!(
            "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><name>a</name><memory>65536</memory>{extra}<devices>{devices}</devices></domain>"
        );
        check(
            &xml::parse(&text).unwrap(),
            &["/usr/bin/qemu-system-x86_64".to_string()],
        )
    }

    #[test]
    fn accepted_definitions() {
        let ok = [
            ("<emulator>/usr/bin/qemu-system-x86_64</emulator>", ""),
            ("<disk type='volume' device='disk'><source pool='default' volume='a.qcow2'/><target dev='vda'/></disk>", ""),
            ("<interface type='network'><source network='default'/></interface>", ""),
            ("<interface type='bridge'><source bridge='br0'/></interface>", ""),
            ("<serial type='pty'/><console type='pty'/><channel type='spicevmc'/>", ""),
            ("<graphics type='vnc' port='-1'/><video><model type='vga'/></video>", ""),
            ("<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>", ""),
            ("", "<metadata><uvmm:notes xmlns:uvmm='urn:x'>x</uvmm:notes></metadata>"),
            ("", "<os><type>hvm</type><loader readonly='yes'>/usr/share/OVMF/OVMF_CODE.fd</loader></os>"),
            ("", "<bootloader>/usr/bin/pygrub</bootloader>"),
        ];
        for (devices, extra) in ok {
            let c = run(devices, extra);
            assert!(c.refused.is_empty(), "{devices}{extra}: {:?}", c.refused);
        }
    }

    #[test]
    fn refused_definitions() {
        let bad = [
            ("<emulator>/bin/sh</emulator>", ""),
            ("<hostdev mode='subsystem' type='pci'/>", ""),
            ("<filesystem type='mount'><source dir='/etc'/><target dir='etc'/></filesystem>", ""),
            ("<serial type='file'><source path='/etc/shadow'/></serial>", ""),
            ("<channel type='unix'><source mode='bind' path='/run/x'/></channel>", ""),
            ("<serial type='dev'><source path='/dev/ttyS0'/></serial>", ""),
            ("<console type='pty'><log file='/etc/passwd'/></console>", ""),
            ("<interface type='ethernet'><script path='/tmp/x'/></interface>", ""),
            ("<input type='evdev'><source dev='/dev/input/event0'/></input>", ""),
            ("<disk type='dir'><source dir='/etc'/><target dev='hda'/></disk>", ""),
            ("<disk type='network'><source protocol='nbd'><host transport='unix' socket='/run/x'/></source><target dev='vdb'/></disk>", ""),
            ("<disk type='file'><source file='/a.qcow2'/><backingStore type='file'><source file='/etc/shadow'/></backingStore><target dev='vda'/></disk>", ""),
            ("<rng model='virtio'><backend model='random'>/etc/shadow</backend></rng>", ""),
            ("<smartcard mode='passthrough' type='tcp'/>", ""),
            ("", "<qemu:commandline><qemu:arg value='-x'/></qemu:commandline>"),
            ("", "<os><type>hvm</type><loader>/etc/shadow</loader></os>"),
            ("", "<bootloader>/tmp/evil</bootloader>"),
        ];
        for (devices, extra) in bad {
            let c = run(devices, extra);
            assert!(!c.refused.is_empty(), "accepted: {devices}{extra}");
        }
    }

    #[test]
    fn paths_are_collected() {
        let c = run(
            "<disk type='file' device='disk'><source file='/var/lib/libvirt/images/a.img'/><target dev='vda'/></disk><disk type='block'><source dev='/dev/sdb'/><target dev='vdb'/></disk><disk type='file' device='cdrom'><target dev='hdc'/></disk>",
            "<os><type>hvm</type><kernel>/boot/vmlinuz</kernel></os>",
        );
        assert!(c.refused.is_empty(), "{:?}", c.refused);
        let paths: Vec<&str> = c.paths.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(
            paths,
            ["/boot/vmlinuz", "/var/lib/libvirt/images/a.img", "/dev/sdb"]
        );
    }
}
