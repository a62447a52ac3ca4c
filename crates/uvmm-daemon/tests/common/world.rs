//! Snapshots of everything a refused request could have changed (VM definitions, hosts,
//! volumes, backups), to compare before and after an attack.

use super::*;

/// Everything an attack could change, to compare before and after.
pub fn world(d: &Daemon) -> Value {
    let mut vms: Vec<Value> = Vec::new();
    for v in d.vms() {
        let uuid = v["uuid"].as_str().unwrap().to_string();
        let host = v["host"].as_str().unwrap_or_default().to_string();
        let (_, xml) = http_raw(
            &d.socket,
            "GET",
            &format!("/api/v1/vms/{uuid}/xml?inactive=true&host={}", enc(&host)),
            None,
        );
        vms.push(serde_json::json!({ "uuid": uuid, "xml": xml }));
    }
    vms.sort_by_key(|v| v["uuid"].as_str().unwrap_or_default().to_string());
    let hosts: Vec<Value> = d
        .get("/api/v1/hosts")
        .as_array()
        .unwrap()
        .iter()
        .map(|h| serde_json::json!([h["id"], h["uri"]]))
        .collect();
    let pools = d.get("/api/v1/pools");
    let mut volumes = Vec::new();
    for p in pools.as_array().unwrap() {
        let (_, detail) = d.http(
            "GET",
            &format!(
                "/api/v1/hosts/{}/pools/{}",
                p["host_id"].as_str().unwrap(),
                p["name"].as_str().unwrap()
            ),
            None,
        );
        assert!(detail["volumes"].is_array(), "{detail}");
        volumes.push(detail["volumes"].clone());
    }
    serde_json::json!({
        "hosts": hosts,
        "vms": vms,
        "volumes": volumes,
        "backups": d.get("/api/v1/backups"),
        "hosts_json": std::fs::read_to_string(d.dir.path().join("state/hosts.json")).unwrap_or_default(),
    })
}

/// Compare two snapshots of `world` and name what differs (the snapshots are large).
pub fn assert_unchanged(before: &Value, after: &Value, what: &str) {
    for key in before.as_object().unwrap().keys() {
        let (a, b) = (&before[key], &after[key]);
        if a == b {
            continue;
        }
        let detail = match (a.as_array(), b.as_array()) {
            (Some(x), Some(y)) if x.len() == y.len() => x
                .iter()
                .zip(y)
                .find(|(p, q)| p != q)
                .map(|(p, q)| format!("first difference:\n  before: {p}\n  after:  {q}"))
                .unwrap_or_default(),
            (Some(x), Some(y)) => format!("{} entries before, {} after", x.len(), y.len()),
            _ => format!("before: {a}\nafter: {b}"),
        };
        panic!("{what}: {key} changed; {detail}");
    }
}

/// Wait until the startup's backup resync has recorded every VM, so that the snapshots
/// compare requests, not the daemon's own start.
pub fn settled(d: &Daemon) {
    let vms = d.vms().len();
    wait_for(Duration::from_secs(20), "the backup resync", || {
        (d.get("/api/v1/backups").as_array()?.len() >= vms).then_some(())
    });
}

pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
