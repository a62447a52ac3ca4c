//! Merging an edit into arbitrary XML (`uvmm_model::edit::merge`): the input is a domain
//! definition, a NUL byte, and bytes that drive changes to the typed definition (memory,
//! vCPUs, title, notes, CPU, clock, features, boot order, disks, NICs, graphics), as the
//! daemon's edits make them. Properties: no panic; the merged XML is well-formed, is
//! still a domain, and reads back with the changed values that the model writes as given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uvmm_model::domain::{domain_from_tree, Disk, DomainDef, Graphics, Nic};
use uvmm_model::{edit, xml};

struct Ops<'a>(&'a [u8]);

impl Ops<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn text(&mut self) -> String {
        let n = usize::from(self.byte().unwrap_or(0) % 24);
        let take = n.min(self.0.len());
        let (s, rest) = self.0.split_at(take);
        self.0 = rest;
        String::from_utf8_lossy(s).into_owned()
    }
    fn word(&mut self, words: &[&str]) -> String {
        let b = usize::from(self.byte().unwrap_or(0));
        if b % 5 == 4 {
            self.text()
        } else {
            words[b % words.len()].to_string()
        }
    }
    fn opt(&mut self, words: &[&str]) -> Option<String> {
        if self.byte().unwrap_or(0) % 4 == 0 {
            None
        } else {
            Some(self.word(words))
        }
    }
    fn num(&mut self) -> u64 {
        let mut v = 0u64;
        for _ in 0..4 {
            v = (v << 8) | u64::from(self.byte().unwrap_or(0));
        }
        v
    }
}

const BUSES: &[&str] = &["virtio", "ide", "sata", "scsi", "xen", "fdc", "usb"];
const DEVICES: &[&str] = &["disk", "cdrom", "floppy", "lun"];
const KINDS: &[&str] = &["file", "block", "volume", "network"];
const TARGETS: &[&str] = &["vda", "vdb", "hda", "hdc", "sda", "xvda", "fda"];
const SOURCES: &[&str] = &[
    "/var/lib/libvirt/images/a.qcow2",
    "default/b.raw",
    "/dev/sdb",
    "pool/vol",
];

fn edit(def: &mut DomainDef, ops: &mut Ops) {
    while let Some(op) = ops.byte() {
        match op % 16 {
            0 => def.memory_kib = ops.num(),
            1 => def.max_memory_kib = ops.num(),
            2 => def.vcpus = ops.num() as u32,
            // The API has no free-text title; the words test escaping.
            3 => {
                let b = usize::from(ops.byte().unwrap_or(0));
                def.title = [None, Some("web server"), Some("a & b < c"), Some("x\"y'z")][b % 4]
                    .map(str::to_string);
            }
            4 => def.notes.description = ops.opt(&["notes", "]]>", "<tag>"]),
            5 => def.cpu_model = ops.opt(&["host-model", "host-passthrough", "Haswell"]),
            6 => def.rtc = ops.opt(&["utc", "localtime"]),
            7 => {
                let b = ops.byte().unwrap_or(0);
                def.features.acpi = b & 1 != 0;
                def.features.apic = b & 2 != 0;
                def.features.pae = b & 4 != 0;
                def.features.hyperv = b & 8 != 0;
            }
            8 => {
                def.boot_devices = (0..ops.byte().unwrap_or(0) % 4)
                    .map(|_| ops.word(&["hd", "cdrom", "network", "fd"]))
                    .collect()
            }
            9 => def.disks.push(Disk {
                device: ops.word(DEVICES),
                kind: ops.word(KINDS),
                target: ops.word(TARGETS),
                bus: ops.opt(BUSES),
                source: ops.opt(SOURCES),
                format: ops.opt(&["raw", "qcow2"]),
                cache: ops.opt(&["none", "writeback"]),
                readonly: ops.byte().unwrap_or(0) % 2 == 0,
                boot_order: (ops.byte().unwrap_or(0) % 3 == 0)
                    .then(|| u32::from(ops.byte().unwrap_or(1))),
            }),
            10 => {
                let i = usize::from(ops.byte().unwrap_or(0));
                if !def.disks.is_empty() {
                    let n = def.disks.len();
                    def.disks.remove(i % n);
                }
            }
            11 => {
                let i = usize::from(ops.byte().unwrap_or(0));
                let n = def.disks.len();
                if n > 0 {
                    let d = &mut def.disks[i % n];
                    match ops.byte().unwrap_or(0) % 4 {
                        0 => d.source = ops.opt(SOURCES),
                        1 => d.bus = ops.opt(BUSES),
                        2 => d.boot_order = Some(u32::from(ops.byte().unwrap_or(1))),
                        _ => d.readonly = !d.readonly,
                    }
                }
            }
            12 => def.nics.push(Nic {
                kind: ops.word(&["network", "bridge", "direct", "user"]),
                source: ops.opt(&["default", "br0", "eth0"]),
                mac: ops.opt(&["52:54:00:12:34:56", "52:54:00:ab:cd:ef"]),
                model: ops.opt(&["virtio", "e1000", "rtl8139"]),
                target: None,
                boot_order: None,
            }),
            13 => {
                let i = usize::from(ops.byte().unwrap_or(0));
                if !def.nics.is_empty() {
                    let n = def.nics.len();
                    def.nics.remove(i % n);
                }
            }
            14 => {
                def.graphics = vec![Graphics {
                    kind: ops.word(&["vnc", "spice"]),
                    port: None,
                    autoport: true,
                    listen: ops.opt(&["127.0.0.1", "0.0.0.0"]),
                    keymap: ops.opt(&["de", "en-us"]),
                    password_set: false,
                }]
            }
            _ => def.graphics.clear(),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let Ok(text) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let Ok(mut tree) = xml::parse_root(text, "domain") else {
        return;
    };
    let Ok(old) = domain_from_tree(&tree) else {
        return;
    };
    let mut new = old.clone();
    let mut ops = Ops(data.get(split + 1..).unwrap_or(&[]));
    edit(&mut new, &mut ops);
    // The daemon checks an edit before merging it; what it refuses never reaches merge.
    if uvmm_model::validate::definition_values(&new, Some(&old)).is_err() {
        return;
    }
    if edit::merge(&mut tree, &old, &new).is_err() {
        return;
    }
    let out = tree.to_xml();
    let reread = xml::parse_root(&out, "domain")
        .unwrap_or_else(|e| panic!("merged XML does not parse: {e}\n{out}"));
    let Ok(back) = domain_from_tree(&reread) else {
        // A value the model writes but refuses to read (e.g. a zero memory) is the
        // validator's business (`validate::definition`), which the daemon runs before
        // merging; not a merge defect.
        return;
    };
    // What the model writes as given must read back as given.
    assert_eq!(back.vcpus, new.vcpus, "{out}");
    assert_eq!(back.title, new.title, "{out}");
    assert_eq!(back.name, old.name, "{out}");
    assert_eq!(back.uuid, old.uuid, "{out}");
    // Merging the same edit again changes nothing.
    let mut twice = reread.clone();
    if edit::merge(&mut twice, &back, &new).is_ok() {
        let again = domain_from_tree(&twice).expect("a second merge keeps the domain readable");
        assert_eq!(again.vcpus, new.vcpus);
    }
});
