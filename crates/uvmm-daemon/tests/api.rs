//! End-to-end: the real uvmmd binary on libvirt test-driver hosts, driven through the real
//! uvmm CLI and raw HTTP.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

const EVENT_WAIT: Duration = Duration::from_secs(10);

#[test]
fn lists_every_vm_of_every_demo_host() {
    let d = Daemon::start(&demo_uris());
    let vms = d.cli_json(&["vm", "list"]);
    let vms = vms.as_array().expect("vm list --json prints an array");
    assert_eq!(vms.len(), 12, "{vms:?}");
    for field in [
        "name",
        "uuid",
        "host",
        "state",
        "suspended",
        "available",
        "memory_kib",
        "vcpus",
        "cpu_usage",
    ] {
        assert!(
            vms.iter().all(|v| v.get(field).is_some()),
            "field {field} missing"
        );
    }
    let hosts: std::collections::BTreeSet<&str> =
        vms.iter().map(|v| v["host"].as_str().unwrap()).collect();
    assert_eq!(hosts.len(), 3);
    assert!(vms.iter().all(|v| v["available"] == true));

    let hosts = d.cli_json(&["host", "list"]);
    assert_eq!(hosts.as_array().unwrap().len(), 3);
    assert!(hosts
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["status"] == "connected"));

    // Filters: state, host, pattern (case-insensitive glob on name and description).
    let paused = d.cli_json(&["vm", "list", "--state", "paused"]);
    assert_eq!(paused.as_array().unwrap().len(), 1);
    assert_eq!(paused[0]["name"], "win10-desk");
    let xen = d.cli_json(&["vm", "list", "--host", "demo-xen1"]);
    assert_eq!(xen.as_array().unwrap().len(), 3);
    let winxp = d.cli_json(&["vm", "list", "*WINXP*"]);
    assert_eq!(winxp.as_array().unwrap().len(), 1);
    let by_desc = d.cli_json(&["vm", "list", "*postgres*"]);
    assert_eq!(by_desc[0]["name"], "db-01");

    // Server-side paging with a stable order.
    let page = d.get("/api/v1/vms?sort=-memory&offset=1&limit=2");
    assert_eq!(page["total"], 12);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["name"], "ci-runner");

    // Show: full detail from the cache.
    let show = d.cli_json(&["vm", "show", "db-01"]);
    assert_eq!(show["disks"][0]["target"], "vda");
    assert_eq!(show["nics"][0]["source"], "default");
    assert_eq!(show["contact"], "admin@example.com");
    assert_eq!(show["boot_order"], serde_json::json!(["hd", "cdrom"]));
    let pv = d.cli_json(&["vm", "show", "dns-pv"]);
    assert_eq!(pv["bootloader"], "/usr/bin/pygrub");
    assert_eq!(pv["os_type"], "xen");
}

fn state_of(d: &Daemon, name: &str, host: &str) -> (String, bool) {
    let v = d.vm(name, host);
    (
        v["state"].as_str().unwrap().to_string(),
        v["suspended"].as_bool().unwrap(),
    )
}

#[test]
fn every_lifecycle_action_is_reflected_and_evented() {
    let d = Daemon::start(&demo_uris());
    let events = d.events();
    let uuid = d.vm("build-old", "demo-kvm1")["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    // (action, expected state, expected managed-save flag, state change expected)
    let steps = [
        ("start", "running", false, true),
        ("pause", "paused", false, true),
        ("resume", "running", false, true),
        ("suspend", "shutoff", true, true),
        ("start", "running", false, true),
        ("reboot", "running", false, false),
        ("reset", "running", false, false),
        ("shutdown", "shutoff", false, true),
        ("start", "running", false, true),
        ("stop", "shutoff", false, true),
    ];
    for (action, want, suspended, changes) in steps {
        let out = d.cli(&["vm", action, "build-old"]);
        assert!(
            out.status.success(),
            "uvmm vm {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The answer comes after the cache was updated: the very next list shows it.
        assert_eq!(
            state_of(&d, "build-old", "demo-kvm1"),
            (want.to_string(), suspended),
            "after {action}"
        );
        if changes {
            let ev = events.expect(&format!("vm_state after {action}"), EVENT_WAIT, |e| {
                e["kind"] == "vm_state" && e["uuid"] == uuid.as_str() && e["state"] == want
            });
            assert_eq!(ev["vm"]["suspended"], suspended, "{ev}");
            assert_eq!(ev["host_id"], "demo-kvm1");
        }
    }
}

#[test]
fn raw_sse_stream_carries_changes() {
    use std::io::{BufRead, BufReader, Write};
    let d = Daemon::start(&[demo_uri("demo-kvm1")]);
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    write!(s, "GET /api/v1/events HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    s.set_read_timeout(Some(EVENT_WAIT)).unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("200"), "{line}");
    // Wait for the subscription marker, then cause a change.
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.starts_with(": subscribed") {
            break;
        }
    }
    let uuid = d.vm("web-02", "demo-kvm1")["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = d.http("POST", &format!("/api/v1/vms/{uuid}/pause"), None);
    assert_eq!(status, 200);
    let mut saw_event_name = false;
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream ended");
        if line.trim() == "event: vm_state" {
            saw_event_name = true;
        }
        if let Some(data) = line.strip_prefix("data: ") {
            let ev: Value = serde_json::from_str(data).unwrap();
            if ev["uuid"] == uuid.as_str() {
                assert!(saw_event_name);
                assert_eq!(ev["state"], "paused");
                assert_eq!(ev["previous_state"], "running");
                assert!(ev["seq"].as_u64().unwrap() > 0);
                break;
            }
        }
    }
}

fn encode(s: &str) -> String {
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

#[test]
fn hosts_added_and_removed_at_runtime_survive_a_restart() {
    let mut d = Daemon::start(&[demo_uri("demo-kvm1")]);
    let events = d.events();

    let added = d.cli_json(&["host", "add", &demo_uri("demo-kvm2")]);
    assert_eq!(added["status"], "connected", "{added}");
    assert_eq!(added["origin"], "runtime");
    assert_eq!(added["vm_count"], 4);
    events.expect("host_added", EVENT_WAIT, |e| {
        e["kind"] == "host_added" && e["host_id"] == "demo-kvm2"
    });
    assert_eq!(d.vms().len(), 9);

    // An unreachable host is accepted (it may come up later) and reported unavailable.
    let missing = format!(
        r#"{{"uri":"test://{}/missing-host.xml"}}"#,
        repo_root().join("demo/hosts").display()
    );
    let (status, gone) = d.http("POST", "/api/v1/hosts", Some(&missing));
    assert_eq!(status, 201);
    assert_eq!(gone["status"], "unavailable", "{gone}");
    assert!(gone["last_error"].as_str().unwrap().len() > 3);
    assert!(gone["retry_in_secs"].is_u64());

    // Remove a configured (command line) host: persisted as removed.
    let out = d.cli(&["host", "remove", "demo-kvm1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    events.expect("host_removed", EVENT_WAIT, |e| {
        e["kind"] == "host_removed" && e["host_id"] == "demo-kvm1"
    });
    assert_eq!(d.vms().len(), 4);

    d.restart();
    let ids: Vec<String> = d
        .get("/api/v1/hosts")
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        vec!["demo-kvm2", "missing-host"],
        "runtime changes must survive a restart"
    );

    // Remove by URI, then add the removed command-line host back.
    let missing_uri = format!(
        "test://{}/missing-host.xml",
        repo_root().join("demo/hosts").display()
    );
    let (status, _) = d.http(
        "DELETE",
        &format!("/api/v1/hosts/{}", encode(&missing_uri)),
        None,
    );
    assert_eq!(status, 200);
    let back = d.cli_json(&["host", "add", &demo_uri("demo-kvm1")]);
    assert_eq!(back["id"], "demo-kvm1");
    d.restart();
    assert_eq!(d.get("/api/v1/hosts").as_array().unwrap().len(), 2);
    assert_eq!(d.vms().len(), 9);
}

fn snapshot(d: &Daemon) -> (Value, Vec<(String, String, String)>) {
    let hosts = d.get("/api/v1/hosts");
    let mut vms: Vec<(String, String, String)> = d
        .vms()
        .iter()
        .map(|v| {
            (
                v["uuid"].as_str().unwrap().into(),
                v["host_id"].as_str().unwrap().into(),
                v["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    vms.sort();
    let hosts: Vec<Value> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| serde_json::json!([h["id"], h["uri"], h["status"]]))
        .collect();
    (Value::Array(hosts), vms)
}

#[test]
fn bad_input_gets_the_documented_status_and_changes_nothing() {
    // A second copy of demo-kvm1 under another path: same UUIDs on two hosts.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy-kvm1.xml");
    std::fs::copy(repo_root().join("demo/hosts/demo-kvm1.xml"), &copy).unwrap();
    let mut hosts = demo_uris();
    hosts.push(format!("test://{}", copy.display()));
    let d = Daemon::start(&hosts);
    let before = snapshot(&d);
    let db = d.vm("db-01", "demo-kvm1");
    let duplicate_host = format!("{{\"uri\": \"{}\"}}", demo_uri("demo-kvm1"));
    let db_uuid = db["uuid"].as_str().unwrap().to_string();
    let stopped = d.vm("winxp-legacy", "demo-kvm2")["uuid"]
        .as_str()
        .unwrap()
        .to_string();

    let table: Vec<(&str, String, Option<&str>, u16, &str)> = vec![
        (
            "GET",
            "/api/v1/vms/00000000-0000-0000-0000-000000000000".into(),
            None,
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/vms/00000000-0000-0000-0000-000000000000/start".into(),
            None,
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/vms/not-a-uuid".into(),
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            format!("/api/v1/vms/{db_uuid}"),
            None,
            409,
            "ambiguous",
        ),
        (
            "POST",
            format!("/api/v1/vms/{db_uuid}/stop"),
            None,
            409,
            "ambiguous",
        ),
        (
            "POST",
            format!("/api/v1/vms/{stopped}/pause"),
            None,
            409,
            "invalid_transition",
        ),
        (
            "POST",
            format!("/api/v1/vms/{stopped}/resume"),
            None,
            409,
            "invalid_transition",
        ),
        (
            "POST",
            format!("/api/v1/vms/{stopped}/shutdown"),
            None,
            409,
            "invalid_transition",
        ),
        (
            "POST",
            format!("/api/v1/vms/{stopped}/explode"),
            None,
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("/api/v1/vms/{stopped}/start"),
            Some("{\"force\": true}"),
            400,
            "bad_request",
        ),
        (
            "POST",
            format!("/api/v1/vms/{stopped}/start?host=nowhere"),
            None,
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/hosts".into(),
            Some("{\"uri\": "),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/hosts".into(),
            Some("[]"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/hosts".into(),
            Some("{\"uri\": \"test:///default\", \"name\": \"x\"}"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/hosts".into(),
            Some("{\"uri\": \"http://example.com/\"}"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/hosts".into(),
            Some("{\"uri\": \"qemu:///sys tem\"}"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/hosts".into(),
            Some(duplicate_host.as_str()),
            409,
            "conflict",
        ),
        (
            "DELETE",
            "/api/v1/hosts/nowhere".into(),
            None,
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/vms?state=runing".into(),
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/vms?sort=size".into(),
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/vms?limit=-1".into(),
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/vms?colour=red".into(),
            None,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/vms?host=nowhere".into(),
            None,
            404,
            "not_found",
        ),
        ("GET", "/api/v1/nothing".into(), None, 404, "not_found"),
    ];
    for (method, path, body, status, code) in table {
        let (got, json) = d.http(method, &path, body);
        assert_eq!(got, status, "{method} {path} {body:?}: {json}");
        assert_eq!(json["error"]["code"], code, "{method} {path}: {json}");
        assert!(json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // The ambiguity names both hosts.
    let (_, amb) = d.http("GET", &format!("/api/v1/vms/{db_uuid}"), None);
    assert_eq!(
        amb["error"]["details"]["candidates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The CLI: unknown VM, ambiguous name, invalid transition -> exit 1; usage -> exit 2.
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["vm", "start", "no-such-vm"], 1, "no VM named"),
        (vec!["vm", "stop", "web-01"], 1, "exists on"),
        (vec!["vm", "pause", "winxp-legacy"], 1, "not running"),
        (
            vec!["vm", "explode", "web-01"],
            2,
            "unrecognized subcommand",
        ),
        (vec!["vm", "list", "--state"], 2, "a value is required"),
        (
            vec!["host", "add", "http://x/"],
            1,
            "unknown hypervisor driver",
        ),
        (vec!["host", "show", "nowhere"], 1, "no host"),
    ];
    for (args, code, text) in cases {
        let out = d.cli(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "uvmm {args:?}: {stderr}");
        assert!(stderr.contains(text), "uvmm {args:?}: {stderr}");
    }
    // ... and the ambiguous name lists both hosts.
    let out = d.cli(&["vm", "stop", "web-01"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("demo-kvm1") && stderr.contains("demo-kvm2"),
        "{stderr}"
    );

    assert_eq!(snapshot(&d), before, "bad input must not change anything");
    // With --host the name is unambiguous.
    let out = d.cli(&["vm", "show", "web-01", "--host", "demo-kvm2"]);
    assert!(out.status.success());
}

#[test]
fn openapi_document_describes_the_api() {
    let d = Daemon::start(&[demo_uri("demo-xen1")]);
    let doc = d.get("/api/v1/openapi.json");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/hosts",
        "/api/v1/hosts/{id}",
        "/api/v1/vms",
        "/api/v1/vms/{uuid}",
        "/api/v1/vms/{uuid}/{action}",
        "/api/v1/events",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
    for schema in [
        "VmSummary",
        "VmDetail",
        "HostSummary",
        "Event",
        "ErrorBody",
        "VmState",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema} missing"
        );
    }
    let props = &doc["components"]["schemas"]["VmSummary"]["properties"];
    for field in [
        "name",
        "uuid",
        "host",
        "state",
        "suspended",
        "available",
        "memory_kib",
        "vcpus",
        "cpu_usage",
    ] {
        assert!(props.get(field).is_some(), "VmSummary.{field} missing");
    }
}

/// One raw exchange over the UNIX socket: the whole answer, headers included.
fn raw_exchange(d: &Daemon, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    // The server may answer (413) and close before it has read everything.
    let _ = s.write_all(request);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    String::from_utf8_lossy(&resp).into_owned()
}

/// Every answer that is not a success is the JSON envelope (issue 10), whatever produced
/// it; the one exception is a request that is not HTTP, which the HTTP library answers.
#[test]
fn every_error_is_the_json_envelope() {
    let d = Daemon::start(&[demo_uri("demo-kvm1")]);
    let uuid = d.vm("build-old", "demo-kvm1")["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let big = format!("{{\"uri\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    // (request line and headers, body, status, code)
    let table: Vec<(String, String, u16, &str)> = vec![
        (
            "OPTIONS /api/v1/vms".into(),
            String::new(),
            405,
            "method_not_allowed",
        ),
        (
            "TRACE /api/v1/vms".into(),
            String::new(),
            405,
            "method_not_allowed",
        ),
        (
            "PUT /api/v1/version".into(),
            String::new(),
            405,
            "method_not_allowed",
        ),
        (
            "GET /api/v1/vms/a/b/c/d".into(),
            String::new(),
            404,
            "not_found",
        ),
        (
            "GET /api/v1/vms/%ZZ".into(),
            String::new(),
            400,
            "bad_request",
        ),
        (
            "GET /api/v1/backups/x/versions/99999999999".into(),
            String::new(),
            400,
            "bad_request",
        ),
        ("POST /api/v1/hosts".into(), big, 413, "too_large"),
        (
            "POST /api/v1/hosts".into(),
            "{\"uri\": 5}".into(),
            400,
            "bad_request",
        ),
        (
            format!("POST /api/v1/vms/{uuid}/pause"),
            String::new(),
            409,
            "invalid_transition",
        ),
    ];
    for (line, body, status, code) in table {
        let req = format!(
            "{line} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let resp = raw_exchange(&d, req.as_bytes());
        let (head, text) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        assert!(
            head.starts_with(&format!("HTTP/1.0 {status} ")),
            "{line}: {head}"
        );
        let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{line}: {e}: {text}"));
        assert_eq!(v["error"]["code"], code, "{line}: {v}");
        if status == 405 {
            assert!(head.to_ascii_lowercase().contains("\nallow: "), "{head}");
        }
    }
    // An action's body may be nothing, `null` or `{}`, and numbers with a zero fraction are
    // integers (JSON Schema says so too).
    for body in ["", "null", "{}"] {
        let (status, v) = d.http("POST", &format!("/api/v1/vms/{uuid}/start"), Some(body));
        assert!(status == 200 || status == 409, "{body:?}: {status} {v}");
        let _ = d.http("POST", &format!("/api/v1/vms/{uuid}/stop"), None);
    }
    let (status, v) = d.http(
        "PATCH",
        &format!("/api/v1/vms/{uuid}"),
        Some(r#"{"vcpus": 2.0}"#),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["vm"]["vcpus"], 2);
    // Not HTTP at all: the HTTP library's bare 400, no body, connection closed (docs/api.md).
    let resp = raw_exchange(&d, b"GARBAGE\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 400 "), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("content-length: 0"),
        "{resp}"
    );
}
