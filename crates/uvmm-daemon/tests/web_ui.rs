//! The web UI in a real browser: `web/tests/run.mjs` drives Debian's Chromium (headless,
//! through npm's playwright-core) against the uvmmd of this build, on the demo test-driver
//! hosts plus a real libvirtd (test driver, run as nobody) for the changes that must come
//! from outside uvmm (virsh) and for a host outage.
//!
//! It needs what `scripts/test.sh` installs and builds first: Node.js, `npm ci` in `web/`
//! (playwright-core), Debian's `chromium`, and the UI built into uvmmd (`npm run build`
//! before cargo). A missing piece fails the test with what to do; it never passes silently.

mod common;

use common::*;
use std::process::Command;

#[test]
fn web_ui_in_chromium() {
    let chromium = browser::prerequisites();
    let web = repo_root().join("web");
    let dir = tempfile::tempdir().unwrap();
    let libvirtd = Libvirtd::start(&dir.path().join("libvirtd"));
    let pid = libvirtd
        .child
        .as_ref()
        .map(|c| c.id())
        .expect("libvirtd runs");
    let out = Command::new("node")
        .arg(web.join("tests/run.mjs"))
        .current_dir(&web)
        .env("UVMMD_BIN", uvmmd_bin())
        .env("DEMO_HOSTS", repo_root().join("demo/hosts"))
        .env("LIBVIRT_URI", libvirtd.uri())
        // setpriv and env exec libvirtd: the child's pid is libvirtd's.
        .env("LIBVIRTD_PID", pid.to_string())
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "browser tests failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(" 0 failed, 0 skipped"),
        "every browser test must run here (none skipped):\n{stdout}"
    );
}

/// One HTTP/1.0 request over TCP: (status, headers in lower case, body).
fn tcp_request(port: u16, raw_head: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(raw_head.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// The UI's files need no token (a browser cannot send one with a page load), and that is
/// the only difference: the API, /metrics and everything but GET/HEAD keep every check.
#[test]
fn ui_files_are_served_without_weakening_the_api_guard() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let d = Daemon::start_with(&[demo_uri("demo-kvm1")], &["-s", &listen], "");
    let token = std::fs::read_to_string(d.token_file()).unwrap();
    let get = |path: &str, host: &str, extra: &str| {
        tcp_request(
            port,
            &format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n{extra}\r\n"),
        )
    };
    let ui_status = if uvmm_daemon::http::web::UI_BUILT {
        200
    } else {
        503
    };
    // Pages of the UI: index.html, with its security headers, without a token.
    for path in ["/", "/storage", "/vms/demo-kvm1/some-uuid/drives"] {
        let (status, head, body) = get(path, &listen, "");
        assert_eq!(status, ui_status, "{path}: {head}");
        assert!(head.contains("content-type: text/html"), "{path}: {head}");
        assert!(body.contains("<html"), "{path}");
        if uvmm_daemon::http::web::UI_BUILT {
            assert!(head.contains("frame-ancestors 'none'"), "{head}");
            assert!(head.contains("x-content-type-options: nosniff"), "{head}");
        }
    }
    if uvmm_daemon::http::web::UI_BUILT {
        // A missing asset is a 404, not HTML; traversal finds nothing.
        for path in [
            "/assets/nope.js",
            "/../Cargo.toml",
            "/assets/%2e%2e/%2e%2e/Cargo.toml",
        ] {
            let (status, _, body) = get(path, &listen, "");
            assert_eq!(status, 404, "{path}: {body}");
            assert!(body.contains("\"error\""), "{path}: {body}");
        }
    }
    // DNS rebinding: a foreign Host gets nothing, UI or not.
    let (status, _, _) = get("/", "evil.example:2106", "");
    assert_eq!(status, 403);
    // The API and /metrics still need the token ...
    for path in [
        "/api/v1/hosts",
        "/api/v1/version",
        "/metrics",
        "/api/v1/nope",
        "/api",
    ] {
        let (status, _, body) = get(path, &listen, "");
        assert_eq!(status, 401, "{path}: {body}");
    }
    // ... and take it as before; unknown API paths stay JSON 404s.
    let auth = format!("Authorization: Bearer {}\r\n", token.trim());
    let (status, _, _) = get("/api/v1/hosts", &listen, &auth);
    assert_eq!(status, 200);
    let (status, _, body) = get("/api/v1/nope", &listen, &auth);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no such API path"), "{body}");
    // Anything but GET/HEAD outside the API is not the UI's: the guard answers.
    let (status, _, _) = tcp_request(
        port,
        &format!("POST / HTTP/1.0\r\nHost: {listen}\r\nContent-Length: 0\r\n\r\n"),
    );
    assert_eq!(status, 401);
    // HEAD: the headers of GET, no body.
    let (status, head, body) =
        tcp_request(port, &format!("HEAD / HTTP/1.0\r\nHost: {listen}\r\n\r\n"));
    assert_eq!(status, ui_status);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(body.is_empty());
}
