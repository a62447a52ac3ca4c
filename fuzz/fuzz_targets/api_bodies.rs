//! Every request body type of the API (`uvmm_api`), from arbitrary JSON, the way the
//! daemon reads them (serde_json), then through the model's checks and generators that
//! the daemon applies to them. Properties: no panic; what parses serialises and parses
//! back to the same value; XML we generate from a request is well-formed and names
//! what was asked.
//!
//! The first byte picks the type, the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use uvmm_api::*;
use uvmm_model::{hosts, storage, validate};

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + Debug>(body: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(body).ok()?;
    let text = serde_json::to_string(&value).expect("a parsed request serialises");
    let again: T =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text} does not parse back: {e}"));
    assert_eq!(again, value, "round trip changed the request: {text}");
    Some(value)
}

fn note(field: &str, v: &Option<String>) {
    if let Some(v) = v {
        let _ = validate::note(field, v);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 13 {
        0 => {
            if let Some(r) = round_trip::<AddHostRequest>(body) {
                if let Ok(uri) = hosts::HostUri::parse(&r.uri) {
                    let _ = uri.check_runtime(&hosts::RuntimeHostPolicy::default());
                    let _ = uri.default_id();
                }
            }
        }
        1 => {
            if let Some(r) = round_trip::<CreateVmRequest>(body) {
                let _ = validate::vm_name(&r.name);
                note("description", &r.description);
                note("contact", &r.contact);
                note("os", &r.os);
                for d in r.disks.iter().flatten() {
                    if let Some(n) = &d.name {
                        let _ = validate::volume_name(n);
                    }
                    let _ = validate::object_name("pool", &d.pool);
                }
                if let Some(c) = &r.cdrom {
                    let _ = validate::host_path(c);
                }
            }
        }
        2 => {
            if let Some(r) = round_trip::<VmPatch>(body) {
                note("description", &r.description);
                note("contact", &r.contact);
                note("os", &r.os);
            }
        }
        3 => {
            let _ = round_trip::<DiskAddRequest>(body);
        }
        4 => {
            if let Some(r) = round_trip::<MediaRequest>(body) {
                if let Some(s) = &r.source {
                    let _ = validate::host_path(s);
                }
            }
        }
        5 => {
            if let Some(r) = round_trip::<NicAddRequest>(body) {
                if let Some(m) = &r.mac {
                    if let Ok(norm) = validate::mac(m) {
                        assert_eq!(
                            validate::mac(&norm),
                            Ok(norm.clone()),
                            "MAC normalisation is not stable"
                        );
                    }
                }
            }
        }
        6 => {
            let _ = round_trip::<VmQuery>(body);
        }
        7 => {
            if let Some(r) = round_trip::<RestoreRequest>(body) {
                if let Some(x) = &r.xml {
                    let _ = uvmm_model::domain::parse_domain(x);
                }
            }
        }
        8 => {
            if let Some(r) = round_trip::<CreatePoolRequest>(body) {
                if let Ok(xml) = storage::pool_xml(&r.pool) {
                    let pool = storage::parse_pool(&xml).unwrap_or_else(|e| {
                        panic!("generated pool XML does not parse: {e}\n{xml}")
                    });
                    assert_eq!(pool.name, r.pool.name, "{xml}");
                }
            }
        }
        9 => {
            if let Some(r) = round_trip::<CreateVolumeRequest>(body) {
                if validate::volume_name(&r.name).is_ok() {
                    let xml = storage::volume_xml(
                        &r.name,
                        r.size_bytes,
                        r.format.as_deref(),
                        !r.preallocate,
                    );
                    let vol = storage::parse_volume(&xml).unwrap_or_else(|e| {
                        panic!("generated volume XML does not parse: {e}\n{xml}")
                    });
                    assert_eq!(vol.name, r.name, "{xml}");
                }
            }
        }
        10 => {
            if let Some(r) = round_trip::<CloneVolumeRequest>(body) {
                let _ = validate::volume_name(&r.name);
            }
        }
        11 => {
            let _ = round_trip::<ResizeVolumeRequest>(body);
        }
        _ => {
            let _ = round_trip::<uvmm_model::storage::NewPool>(body);
        }
    }
});
