//! The full VM list (`GET /api/v1/vms` without parameters) over the real uvmmd on
//! test-driver hosts: its entity tag answers `If-None-Match` with 304 until something
//! changes, and gzip (when asked for) decodes to the very same JSON.

mod common;

use common::*;
use serde_json::Value;
use std::io::{Read, Write};

/// One HTTP/1.0 exchange with extra headers: (status, headers in lower case, raw body).
fn get(d: &Daemon, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: uvmmd\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of the headers");
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, resp[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn full_list_is_conditional_and_compressed_on_request() {
    let d = Daemon::start(&demo_uris());
    let (status, h, plain) = get(&d, "/api/v1/vms", &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-encoding"), None, "{h:?}");
    let etag = header(&h, "etag").expect("an ETag").to_string();
    let json: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(json["total"], 12, "{json}");

    // Unchanged: 304 and no body, as long as the same render is served.
    let (status, h, body) = get(&d, "/api/v1/vms", &[("If-None-Match", &etag)]);
    if status == 304 {
        assert!(body.is_empty(), "{} bytes", body.len());
        assert_eq!(header(&h, "etag"), Some(etag.as_str()));
    } else {
        // Statistics came in between (a new render, a new tag): never the old one on 200.
        assert_eq!(status, 200);
        assert_ne!(header(&h, "etag"), Some(etag.as_str()));
    }

    // gzip decodes to the JSON of the same render.
    let (status, h, zipped) = get(&d, "/api/v1/vms", &[("Accept-Encoding", "gzip")]);
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-encoding"), Some("gzip"), "{h:?}");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(zipped.as_slice())
        .read_to_end(&mut unzipped)
        .expect("a gzip body");
    let gz_tag = header(&h, "etag").expect("an ETag").to_string();
    let (_, h2, plain2) = get(&d, "/api/v1/vms", &[]);
    if header(&h2, "etag") == Some(gz_tag.as_str()) {
        assert_eq!(unzipped, plain2, "same tag, same JSON");
    }
    let unzipped: Value = serde_json::from_slice(&unzipped).unwrap();
    assert_eq!(unzipped["total"], 12);
    // q=0 refuses gzip.
    let (_, h, _) = get(&d, "/api/v1/vms", &[("Accept-Encoding", "gzip;q=0")]);
    assert_eq!(header(&h, "content-encoding"), None, "{h:?}");

    // A change: the tag held before it no longer matches, and the body shows the change.
    let (_, h, _) = get(&d, "/api/v1/vms", &[]);
    let before = header(&h, "etag").unwrap().to_string();
    let out = d.cli(&["vm", "start", "build-old"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, h, body) = get(&d, "/api/v1/vms", &[("If-None-Match", &before)]);
    assert_eq!(status, 200, "a stale tag gets the body");
    assert_ne!(header(&h, "etag"), Some(before.as_str()));
    let json: Value = serde_json::from_slice(&body).unwrap();
    let vm = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "build-old" && v["host_id"] == "demo-kvm1")
        .expect("build-old listed");
    assert_eq!(vm["state"], "running", "{vm}");

    // Filtered lists and pages are not tagged this way (they are small; the fast path).
    let (status, h, _) = get(&d, "/api/v1/vms?limit=5", &[("If-None-Match", "*")]);
    assert_eq!(status, 200);
    assert_eq!(header(&h, "etag"), None);
}
