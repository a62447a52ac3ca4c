//! Generated XML for every shipped profile on QEMU/KVM, Xen and test-driver hosts: it must
//! pass libvirt's own schema check (`virt-xml-validate`, Debian libvirt-clients + xmllint)
//! and read back as what was asked for.

use std::path::Path;
use std::process::Command;
use uvmm_model::caps::parse_capabilities;
use uvmm_model::domain::{parse_domain, Notes};
use uvmm_model::generate::{from_profile, generate, resolve, NewVm};
use uvmm_model::profile::builtin;

fn caps(name: &str) -> uvmm_model::caps::HostCaps {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    parse_capabilities(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn validate(xml: &str, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("domain.xml");
    std::fs::write(&file, xml).unwrap();
    let out = Command::new("virt-xml-validate")
        .arg(&file)
        .arg("domain")
        .output()
        .expect("virt-xml-validate (Debian libvirt-clients, with libxml2-utils) must be installed: run the README's test command");
    assert!(
        out.status.success(),
        "{what}: generated XML fails libvirt's schema:\n{}\n{}{}",
        xml,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_profile_generates_valid_xml_on_every_host_kind() {
    let mut checked = 0;
    for host in ["caps-qemu.xml", "caps-xen.xml", "caps-test.xml"] {
        let c = caps(host);
        for p in builtin() {
            let r = match resolve(&c, &p.domain_type, &p.os_type, p.arch.as_deref()) {
                Ok(r) => r,
                Err(e) => {
                    // Only the mismatches the issue names may be refused.
                    let pv_on_kvm = p.is_xen_pv() && host == "caps-qemu.xml";
                    let kvm_on_xen =
                        !p.is_xen_pv() && host == "caps-xen.xml" && p.domain_type != "xen";
                    assert!(pv_on_kvm || kvm_on_xen, "{} on {host}: {e}", p.name);
                    continue;
                }
            };
            let new = NewVm {
                name: format!("{}test", p.name_prefix.clone().unwrap_or_default()),
                uuid: Some("c7a5fdbd-edaf-9455-926a-d65c16db1809".into()),
                disks: vec![(
                    "file".into(),
                    "/var/lib/libvirt/images/a.img".into(),
                    Some(p.disk_format.clone()),
                )],
                cdrom: Some("/var/lib/libvirt/images/install.iso".into()),
                driver_iso: p.driver_iso.clone(),
                notes: Notes {
                    description: Some("<b>&\"quoted\"</b>".into()),
                    contact: Some("ops".into()),
                    os: Some(p.name.clone()),
                },
                ..NewVm::default()
            };
            let (def, _notes) = from_profile(&p, &r, new);
            uvmm_model::validate::definition(&def, None, Default::default())
                .unwrap_or_else(|e| panic!("{} on {host}: {e}", p.name));
            let xml = generate(&def, &r).unwrap();
            validate(&xml, &format!("{} on {host}", p.name));
            let back = parse_domain(&xml).unwrap();
            assert_eq!(back.disks, def.disks, "{} on {host}", p.name);
            assert_eq!(back.nics, def.nics);
            assert_eq!(back.notes, def.notes);
            assert_eq!(back.domain_type, r.domain_type);
            if r.domain_type == "qemu" || r.domain_type == "kvm" {
                assert!(
                    back.features.acpi && back.features.apic,
                    "QEMU x86 needs <acpi/><apic/>: {xml}"
                );
            }
            if p.is_xen_pv() {
                assert_eq!(back.bootloader.as_deref(), Some("/usr/bin/pygrub"));
                assert!(back.disks.iter().all(|d| d.bus.as_deref() == Some("xen")));
            }
            checked += 1;
        }
    }
    // 4 profiles on QEMU minus Xen PV, 1 on Xen (the PV one; KVM ones are refused), 4 on test.
    assert_eq!(checked, 3 + 1 + 4);
}

#[test]
fn windows_profile_has_driver_cdrom_localtime_and_hyperv() {
    let p = builtin().into_iter().find(|p| p.name == "Windows").unwrap();
    let r = resolve(&caps("caps-qemu.xml"), "kvm", "hvm", None).unwrap();
    let (def, _) = from_profile(
        &p,
        &r,
        NewVm {
            name: "win-1".into(),
            disks: vec![("file".into(), "/img/win.qcow2".into(), Some("qcow2".into()))],
            driver_iso: Some("/iso/virtio-win.iso".into()),
            ..NewVm::default()
        },
    );
    let cds: Vec<_> = def.disks.iter().filter(|d| d.device == "cdrom").collect();
    assert_eq!(cds.len(), 2, "install CD-ROM and driver CD-ROM");
    assert_eq!(cds[0].source, None);
    assert_eq!(cds[1].source.as_deref(), Some("/iso/virtio-win.iso"));
    assert_eq!(def.rtc.as_deref(), Some("localtime"));
    assert!(def.features.hyperv);
    assert_eq!(def.disks[0].bus.as_deref(), Some("virtio"));
    assert_eq!(def.cpu_model.as_deref(), Some("host-model"));
    // On a TCG-only host: qemu, no host-model CPU, and the answer says so.
    let tcg = parse_capabilities(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/caps-qemu.xml"),
        )
        .unwrap()
        .replace("<domain type='kvm'/>", ""),
    )
    .unwrap();
    let r = resolve(&tcg, "kvm", "hvm", None).unwrap();
    let (def, notes) = from_profile(
        &p,
        &r,
        NewVm {
            name: "win-2".into(),
            ..NewVm::default()
        },
    );
    assert_eq!(def.domain_type, "qemu");
    assert_eq!(def.cpu_model, None);
    assert!(notes.iter().any(|n| n.contains("TCG")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("host-model")), "{notes:?}");
}
