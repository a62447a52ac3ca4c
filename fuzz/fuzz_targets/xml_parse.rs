//! `uvmm_model::xml::parse` and the typed views read from it, on arbitrary text.
//! Properties: no panic; what we write is well-formed and reads back to the same tree
//! (so an edit never turns a definition into one libvirt — or we — cannot read).
#![no_main]

use libfuzzer_sys::fuzz_target;
use uvmm_model::{domain, storage, xml};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tree) = xml::parse(text) {
        let out = tree.to_xml();
        let again = xml::parse(&out)
            .unwrap_or_else(|e| panic!("our own output does not parse: {e}\n{out}"));
        assert_eq!(again, tree, "the tree changed on a round trip:\n{out}");
        let _ = domain::domain_from_tree(&tree);
    }
    let _ = domain::parse_domain(text);
    let _ = storage::parse_pool(text);
    let _ = storage::parse_volume(text);
});
