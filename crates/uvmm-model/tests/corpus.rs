//! Real libvirt XML from the shared corpus (libvirt's own test files). The corpus is not part
//! of the project: when it is absent the test says so and checks the project's own fixtures.

use std::path::{Path, PathBuf};
use uvmm_model::{domain, xml};

fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("UVMM_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/libvirt-xml")
        });
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "NOTE: shared corpus not found at {} - only project fixtures are checked",
            dir.display()
        );
        None
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
