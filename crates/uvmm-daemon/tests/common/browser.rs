//! What the browser tests (web_ui.rs, console.rs) need before they drive Chromium: the UI
//! built into this uvmmd, Node.js with web/node_modules, and Debian's Chromium. A missing
//! piece fails the test with what to do; it never passes silently.

use super::repo_root;
use std::path::Path;
use std::process::Command;

/// Check the prerequisites; the path of the Chromium to use (`CHROMIUM`, default
/// /usr/bin/chromium).
pub fn prerequisites() -> String {
    // A constant of this build: whether build.rs found web/dist.
    if !uvmm_daemon::http::web::UI_BUILT {
        panic!(
            "this uvmmd was built without the web UI: run `npm ci && npm run build` in web/ \
             (scripts/test.sh does), then the tests again"
        );
    }
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "node is missing: the browser tests need Node.js (scripts/test.sh installs it)"
    );
    assert!(
        repo_root()
            .join("web/node_modules/playwright-core")
            .is_dir(),
        "web/node_modules is missing: run `npm ci` in web/ (scripts/test.sh does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install chromium (scripts/test.sh does)"
    );
    chromium
}
