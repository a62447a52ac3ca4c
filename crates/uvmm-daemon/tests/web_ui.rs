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
use std::path::Path;
use std::process::Command;

#[test]
fn web_ui_in_chromium() {
    // A constant of this build: whether build.rs found web/dist.
    if !uvmm_daemon::web::UI_BUILT {
        panic!(
            "this uvmmd was built without the web UI: run `npm ci && npm run build` in web/ \
             (scripts/test.sh does), then the tests again"
        );
    }
    let web = repo_root().join("web");
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "node is missing: the browser tests need Node.js (scripts/test.sh installs it)"
    );
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "web/node_modules is missing: run `npm ci` in web/ (scripts/test.sh does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install chromium (scripts/test.sh does)"
    );

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
