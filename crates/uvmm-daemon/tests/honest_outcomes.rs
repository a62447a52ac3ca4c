//! Honest outcomes on libvirt test-driver hosts: `uvmm events` does not end silently when
//! uvmmd stops (and `--follow` reconnects), a host whose connection hangs is shown as
//! unavailable with the reason instead of "connecting" for ever, a profile whose bus has
//! too few slots is refused with the reason, pool alerts name pool and level.
//! (The outcomes that need a real guest are in `real_outcomes.rs`.)

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `uvmm events` (text) in the background: every line it printed on standard output and
/// standard error (in arrival order; the order between the two streams is not
/// guaranteed), and its exit.
struct Follower {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Follower {
    fn start(d: &Daemon, extra: &[&str]) -> Follower {
        let mut child = Command::new(uvmm_bin())
            .arg("events")
            .args(extra)
            .env("UVMM_SOCKET", &d.socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        // Subscribed once the CLI is connected.
        std::thread::sleep(Duration::from_millis(500));
        Follower { child, lines }
    }

    /// Wait for a line from index `from` on that matches: its index and text.
    fn expect_from(
        &self,
        from: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> (usize, String) {
        wait_for(timeout, what, || {
            let lines = self.lines.lock().unwrap();
            lines
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, l)| pred(l))
                .map(|(i, l)| (i, l.clone()))
        })
    }

    fn expect(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        self.expect_from(0, what, timeout, pred).1
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        wait_for(timeout, "uvmm events to exit", || {
            self.child.try_wait().unwrap().map(|s| s.code())
        })
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn events_end_loudly_when_uvmmd_stops_and_follow_reconnects() {
    let mut d = Daemon::start(&[demo_uri("demo-kvm1")]);
    let mut plain = Follower::start(&d, &[]);
    let follow = Follower::start(&d, &["--follow"]);

    // A pool alert names pool and level: 80 GiB preallocated in the 100 GiB pool (15 GiB used).
    ok(
        d.cli(&[
            "volume",
            "create",
            "default",
            "big.img",
            "80GiB",
            "--preallocate",
            "--host",
            "demo-kvm1",
            "--json",
        ]),
        "fill the pool",
    );
    let line = plain.expect("pool alert", Duration::from_secs(10), |l| {
        l.contains("pool_alert")
    });
    assert!(
        line.contains("pool default@demo-kvm1 critical"),
        "pool and level in the line: {line}"
    );

    d.restart();
    // Without --follow: said, and exit 1.
    let code = plain.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(1));
    plain.expect("reason on stderr", Duration::from_secs(5), |l| {
        l.contains("uvmmd closed the event stream") && l.contains("--follow")
    });
    // With --follow: told that events were missed, then events again.
    let (resync, _) = follow.expect_from(0, "resync notice", Duration::from_secs(20), |l| {
        l.starts_with("resync:") && l.contains("missed")
    });
    follow.expect("reconnecting on stderr", Duration::from_secs(20), |l| {
        l.contains("reconnecting")
    });
    // Keep causing events until the reconnected follower sees one.
    wait_for(
        Duration::from_secs(30),
        "an event after the restart",
        || {
            let _ = d.cli(&["vm", "stop", "web-01", "--json"]);
            let _ = d.cli(&["vm", "start", "web-01", "--json"]);
            std::thread::sleep(Duration::from_millis(300));
            let lines = follow.lines.lock().unwrap();
            lines[resync..]
                .iter()
                .any(|l| l.contains("web-01@demo-kvm1"))
                .then_some(())
        },
    );
}

#[test]
fn a_hung_connection_attempt_times_out_with_the_reason_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts connections (the kernel's backlog) and never answers: libvirt's open blocks.
    let sock = dir.path().join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let hung = format!("qemu+unix:///system?socket={}", sock.display());
    let d = Daemon::start_with(
        &[demo_uri("demo-kvm1"), hung.clone()],
        &[],
        "connect_timeout_secs = 2\nreconnect_min_secs = 1\nreconnect_max_secs = 2\n",
    );
    let host = d
        .get("/api/v1/hosts")
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["uri"] == hung.as_str())
        .cloned()
        .unwrap();
    assert_eq!(host["status"], "unavailable", "{host}");
    let err = host["last_error"].as_str().unwrap();
    assert!(
        err.contains("no answer within") && err.contains("while connecting"),
        "{err}"
    );
    assert!(host["retry_in_secs"].is_u64(), "{host}");
    // The other host is not held up by it.
    assert_eq!(d.vms().len(), 5);
    let out = d.cli(&["host", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no answer within"));

    // It keeps retrying: once the silent listener is gone, the next attempt fails
    // differently, and that is shown.
    drop(listener);
    std::fs::remove_file(&sock).unwrap();
    wait_for(Duration::from_secs(20), "a fresh attempt's error", || {
        let hosts = d.get("/api/v1/hosts");
        let h = hosts
            .as_array()?
            .iter()
            .find(|h| h["uri"] == hung.as_str())?
            .clone();
        let e = h["last_error"].as_str()?.to_string();
        (!e.contains("no answer within")).then_some(e)
    });
}

#[test]
fn ide_has_four_slots_and_nothing_is_created_when_they_do_not_suffice() {
    let d = Daemon::start(&[demo_uri("demo-kvm1")]);
    let volumes = || {
        d.cli_json(&["volume", "list", "default", "--host", "demo-kvm1"])
            .as_array()
            .unwrap()
            .len()
    };
    let before = volumes();
    let disk = "pool=default,size=1GiB";
    let out = d.cli(&[
        "vm",
        "create",
        "--host",
        "demo-kvm1",
        "--profile",
        "Other",
        "--name",
        "ide5",
        "--disk",
        disk,
        "--disk",
        disk,
        "--disk",
        disk,
        "--disk",
        disk,
    ]);
    fails(out, "IDE bus, which has 4 slots (hda to hdd)");
    assert_eq!(volumes(), before, "no volume left behind");
    assert!(d.vms().iter().all(|v| v["name"] != "ide5"));
    // Three disks and the CD-ROM drive fit.
    let r = d.cli_json(&[
        "vm",
        "create",
        "--host",
        "demo-kvm1",
        "--profile",
        "Other",
        "--name",
        "ide4",
        "--disk",
        disk,
        "--disk",
        disk,
        "--disk",
        disk,
    ]);
    let targets: Vec<&str> = r["vm"]["disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["hda", "hdb", "hdc", "hdd"], "{r}");
}

#[test]
fn shutdown_wait_on_a_guest_that_stops() {
    let d = Daemon::start(&[demo_uri("demo-kvm1")]);
    // The test driver stops at once: --wait returns with the final state.
    let out = d.cli(&["vm", "shutdown", "web-01", "--wait", "--timeout", "30"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("web-01 on demo-kvm1 is now shutoff"),
        "{text}"
    );
    // --timeout without --wait is a usage error.
    let out = d.cli(&["vm", "shutdown", "db-01", "--timeout", "3"]);
    assert_eq!(out.status.code(), Some(2));
}
