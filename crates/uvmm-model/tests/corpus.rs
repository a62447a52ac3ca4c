//! Real libvirt XML from the shared corpus (libvirt's own test files). The corpus is not part
//! of the project: when it is absent the test says so and checks the project's own fixtures.

use std::path::{Path, PathBuf};
use uvmm_model::{domain, xml};

/// The corpus lives beside the repository (`../shared/corpus/libvirt-xml`); `UVMM_CORPUS`
/// points elsewhere.
fn corpus_dir() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("UVMM_CORPUS") {
        Some(p) => vec![PathBuf::from(p)],
        None => vec![
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/libvirt-xml"),
            PathBuf::from("/work/shared/corpus/libvirt-xml"),
        ],
    };
    match candidates.iter().find(|d| d.is_dir()) {
        Some(d) => Some(d.clone()),
        None => {
            eprintln!("NOTE: shared corpus not found at {candidates:?} - only project fixtures are checked");
            None
        }
    }
}

fn xml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    out.sort();
    out
}

#[test]
fn every_corpus_file_round_trips_through_the_tree() {
    let Some(dir) = corpus_dir() else { return };
    let mut n = 0;
    for sub in [
        "domain-qemu",
        "domain-xen",
        "storage-pool",
        "storage-vol",
        "test-driver",
    ] {
        for file in xml_files(&dir.join(sub)) {
            let text = std::fs::read_to_string(&file).unwrap();
            let tree = xml::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let again = xml::parse(&tree.to_xml()).unwrap();
            assert_eq!(tree, again, "{}", file.display());
            n += 1;
        }
    }
    assert!(n >= 100, "only {n} corpus files found");
}

#[test]
fn every_corpus_domain_parses() {
    let Some(dir) = corpus_dir() else { return };
    let mut n = 0;
    for sub in ["domain-qemu", "domain-xen"] {
        for file in xml_files(&dir.join(sub)) {
            let text = std::fs::read_to_string(&file).unwrap();
            let d =
                domain::parse_domain(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(!d.name.is_empty());
            n += 1;
        }
    }
    assert_eq!(n, 70, "expected the 54 QEMU and 16 Xen files");
}

#[test]
fn project_demo_hosts_parse() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo/hosts");
    let mut domains = 0;
    for file in xml_files(&demo) {
        let text = std::fs::read_to_string(&file).unwrap();
        let node =
            xml::parse_root(&text, "node").unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for d in node.children_named("domain") {
            domain::domain_from_tree(d).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            domains += 1;
        }
    }
    assert!(
        domains >= 12,
        "demo hosts should hold a dozen VMs, found {domains}"
    );
}

fn corpus_domains() -> Vec<(PathBuf, String)> {
    let Some(dir) = corpus_dir() else {
        return vec![];
    };
    ["domain-qemu", "domain-xen"]
        .iter()
        .flat_map(|sub| xml_files(&dir.join(sub)))
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f, text)
        })
        .collect()
}

/// Remove the named top-level children, for comparing "everything else".
fn without(mut el: xml::Element, names: &[&str]) -> xml::Element {
    el.remove_children(|e| names.contains(&e.name.as_str()));
    el
}

#[test]
fn merging_an_unchanged_definition_changes_nothing() {
    for (file, text) in corpus_domains() {
        let tree = xml::parse(&text).unwrap();
        let def = domain::domain_from_tree(&tree).unwrap();
        let mut merged = tree.clone();
        uvmm_model::edit::merge(&mut merged, &def, &def).unwrap();
        assert_eq!(merged, tree, "{}", file.display());
    }
}

#[test]
fn a_memory_edit_changes_only_memory() {
    for (file, text) in corpus_domains() {
        let tree = xml::parse(&text).unwrap();
        let old = domain::domain_from_tree(&tree).unwrap();
        let mut new = old.clone();
        new.max_memory_kib = old.max_memory_kib + 1024;
        let mut merged = tree.clone();
        uvmm_model::edit::merge(&mut merged, &old, &new).unwrap();
        assert_eq!(
            domain::domain_from_tree(&merged).unwrap().max_memory_kib,
            new.max_memory_kib
        );
        assert_eq!(
            without(merged, &["memory"]),
            without(tree, &["memory"]),
            "{}",
            file.display()
        );
    }
}

#[test]
fn notes_edit_changes_only_notes() {
    for (file, text) in corpus_domains() {
        let tree = xml::parse(&text).unwrap();
        let old = domain::domain_from_tree(&tree).unwrap();
        let mut new = old.clone();
        new.notes.contact = Some("ops@example.com <24/7>".into());
        let mut merged = tree.clone();
        uvmm_model::edit::merge(&mut merged, &old, &new).unwrap();
        let back = domain::domain_from_tree(&xml::parse(&merged.to_xml()).unwrap()).unwrap();
        assert_eq!(back.notes.contact, new.notes.contact, "{}", file.display());
        // Other metadata (e.g. libosinfo) is kept.
        let other_meta = |t: &xml::Element| -> Vec<xml::Element> {
            t.child("metadata")
                .map(|m| {
                    m.elements()
                        .filter(|e| e.local_name() != "notes")
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(other_meta(&merged), other_meta(&tree), "{}", file.display());
        assert_eq!(
            without(merged, &["metadata"]),
            without(tree, &["metadata"]),
            "{}",
            file.display()
        );
    }
}

#[test]
fn adding_a_disk_keeps_every_other_device() {
    for (file, text) in corpus_domains() {
        let tree = xml::parse(&text).unwrap();
        let old = domain::domain_from_tree(&tree).unwrap();
        let mut new = old.clone();
        let used: Vec<&str> = old.disks.iter().map(|d| d.target.as_str()).collect();
        let bus = if old.is_xen_pv() || old.domain_type == "xen" {
            "xen"
        } else {
            "virtio"
        };
        let target = uvmm_model::targets::first_free(bus, &used).unwrap();
        new.disks.push(domain::Disk {
            device: "disk".into(),
            kind: "file".into(),
            target: target.clone(),
            bus: Some(bus.into()),
            source: Some("/var/lib/libvirt/images/extra.qcow2".into()),
            format: Some("qcow2".into()),
            ..Default::default()
        });
        let mut merged = tree.clone();
        uvmm_model::edit::merge(&mut merged, &old, &new).unwrap();
        let back = domain::domain_from_tree(&merged).unwrap();
        assert_eq!(back.disks.len(), old.disks.len() + 1, "{}", file.display());
        assert!(back.disks.iter().any(|d| d.target == target));
        // Every other device element is unchanged and in the same order.
        let others = |t: &xml::Element| -> Vec<xml::Element> {
            t.child("devices")
                .map(|d| {
                    d.elements()
                        .filter(|e| {
                            !(e.name == "disk"
                                && e.find("target").and_then(|t| t.attr("dev"))
                                    == Some(target.as_str()))
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(others(&merged), others(&tree), "{}", file.display());
        assert_eq!(
            without(merged, &["devices"]),
            without(tree, &["devices"]),
            "{}",
            file.display()
        );
    }
}

#[test]
fn memory_changes_keep_numa_cells_and_dimms_consistent() {
    let mut with_cells = 0;
    for (file, text) in corpus_domains() {
        let tree = xml::parse(&text).unwrap();
        let old = domain::domain_from_tree(&tree).unwrap();
        let mut new = old.clone();
        let wanted = old.max_memory_kib + 256 * 1024;
        match uvmm_model::memory::set_total(&mut new, wanted) {
            Ok(()) => {}
            // The corpus has hot-plug limits that leave no room: refused, nothing changed.
            Err(uvmm_model::memory::MemoryError::AboveHotplugMax { .. }) => {
                assert_eq!(new, old, "{}", file.display());
                continue;
            }
            Err(e) => panic!("{}: {e}", file.display()),
        }
        let mut merged = tree.clone();
        uvmm_model::edit::merge(&mut merged, &old, &new).unwrap();
        let back = domain::domain_from_tree(&xml::parse(&merged.to_xml()).unwrap()).unwrap();
        assert_eq!(back.max_memory_kib, wanted, "{}", file.display());
        assert_eq!(
            uvmm_model::memory::inconsistency(&back),
            None,
            "{}",
            file.display()
        );
        if !old.numa_cells_kib.is_empty() {
            with_cells += 1;
            let sum: u64 = back.numa_cells_kib.iter().sum();
            assert_eq!(sum + back.memory_devices_kib, wanted, "{}", file.display());
        }
        // Nothing but memory, current memory and the cells' sizes changed.
        let strip = |mut t: xml::Element| {
            if let Some(cells) = t.child_mut("cpu").and_then(|c| c.child_mut("numa")) {
                for cell in cells.elements_mut() {
                    cell.remove_attr("memory");
                    cell.remove_attr("unit");
                }
            }
            without(t, &["memory", "currentMemory"])
        };
        assert_eq!(strip(merged), strip(tree), "{}", file.display());
    }
    if corpus_dir().is_some() {
        assert!(
            with_cells >= 2,
            "the corpus has NUMA definitions: {with_cells}"
        );
    }
}

#[test]
fn set_as_boot_medium_leaves_every_boot_order_unique() {
    for (file, text) in corpus_domains() {
        let tree = xml::parse(&text).unwrap();
        let old = domain::domain_from_tree(&tree).unwrap();
        if old.is_xen_pv() {
            continue;
        }
        for disk in &old.disks {
            let mut new = old.clone();
            let change = uvmm_model::boot::set_boot_medium(&mut new, &disk.target, false).unwrap();
            if change == uvmm_model::boot::BootChange::Unchanged {
                continue;
            }
            let mut merged = tree.clone();
            uvmm_model::edit::merge(&mut merged, &old, &new).unwrap();
            let back = domain::domain_from_tree(&merged).unwrap();
            assert_eq!(back.boot_order().first(), Some(&disk.target));
            // What libvirt checks: every <boot order> under <devices> differs, and no
            // <os><boot dev> is left next to them.
            let orders: Vec<String> = merged
                .child("devices")
                .map(|d| {
                    d.elements()
                        .filter_map(|e| e.child("boot").and_then(|b| b.attr("order")))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let mut unique = orders.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), orders.len(), "{}: {orders:?}", file.display());
            if !orders.is_empty() {
                assert!(
                    merged.child("os").is_none_or(|o| o.child("boot").is_none()),
                    "{}",
                    file.display()
                );
            }
        }
    }
}
