//! Pool figures keep up with the storage on a real libvirtd: data written into sparse
//! volumes of a dir pool from outside libvirt (dd) shows in check_uvmm, /metrics and
//! `uvmm pool list` within the configured interval, with no `pool refresh` by anyone; the
//! figures' age is in every answer, and figures older than the interval (the host is
//! gone) are never judged OK.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const MIB: u64 = 1 << 20;

/// A tmpfs of a fixed size: the pool's capacity is small and known.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mib: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount tmpfs (the tests run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Write MiB of data into a volume the way an administrator (or a guest) would, past
/// libvirt.
fn dd(path: &Path, mib: u64) {
    let out = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", path.display()))
        .args(["bs=1M", &format!("count={mib}"), "conv=notrunc,fsync"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_uvmm(d: &Daemon, args: &[&str]) -> (i32, String) {
    let out = Command::new(check_uvmm_bin())
        .args(args)
        .env("UVMM_SOCKET", &d.socket)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn small_pool(d: &Daemon) -> Value {
    d.cli_json(&["pool", "list", "--host", "localhost"])
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "small")
        .cloned()
        .unwrap()
}

/// The value of a metric sample with these labels.
fn metric(d: &Daemon, name: &str) -> Option<f64> {
    let (status, text) = http_raw(&d.socket, "GET", "/metrics", None);
    assert_eq!(status, 200);
    let prefix = format!("{name}{{host=\"localhost\",pool=\"small\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

#[test]
fn dir_pool_figures_follow_the_data_without_a_manual_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    // Mounted before libvirtd starts: its private mount namespace copies the mount.
    let _tmpfs = Tmpfs::mount(&small, 64);
    let lv = SystemLibvirtd::start(&dir.path().join("libvirt"));
    let uri = lv.uri();
    let config =
        "[monitoring]\npool_interval_secs = 2\nwarning = [\"50%\"]\ncritical = [\"75%\"]\n";
    let d = Daemon::start_with(std::slice::from_ref(&uri), &[], config);

    d.cli_json(&[
        "pool",
        "create",
        "small",
        "--host",
        "localhost",
        "--type",
        "dir",
        "--target",
        small.to_str().unwrap(),
    ]);
    for vol in ["disk1.img", "disk2.img"] {
        d.cli_json(&[
            "volume",
            "create",
            "small",
            vol,
            "40MiB",
            "--host",
            "localhost",
        ]);
    }
    let p = small_pool(&d);
    assert!(p["allocation"].as_u64().unwrap() < 4 * MIB, "sparse: {p}");
    assert_eq!(p["max_age_secs"], 2, "{p}");
    assert_eq!(p["stale"], false, "{p}");
    assert!(
        p["age_secs"].as_u64().is_some() && p["refreshed"].is_string(),
        "{p}"
    );
    let pools_check = [
        "pools",
        "-H",
        "localhost",
        "-P",
        "small",
        "-w",
        "50%",
        "-c",
        "75%",
    ];
    let (code, out) = check_uvmm(&d, &pools_check);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("s old)"), "the age is in the answer: {out}");

    // 36 MiB into one sparse volume, past libvirt: more than half of the pool.
    dd(&small.join("disk1.img"), 36);
    let out = wait_for(
        Duration::from_secs(30),
        "check_uvmm to see the data",
        || {
            let (code, out) = check_uvmm(&d, &pools_check);
            (code == 1).then_some(out)
        },
    );
    assert!(out.contains("localhost/small warning"), "{out}");
    let alloc = metric(&d, "uvmm_pool_allocation_bytes").unwrap();
    assert!(alloc >= (36 * MIB) as f64, "metrics: {alloc}");
    assert!(metric(&d, "uvmm_pool_figures_age_seconds").is_some());
    assert_eq!(metric(&d, "uvmm_pool_figures_max_age_seconds"), Some(2.0));
    assert!(metric(&d, "uvmm_pool_refresh_timestamp_seconds").unwrap() > 1.7e9);
    let p = small_pool(&d);
    assert!(
        p["allocation"].as_u64().unwrap() >= 36 * MIB,
        "pool list: {p}"
    );

    // And on into critical, still without anybody refreshing.
    dd(&small.join("disk2.img"), 16);
    wait_for(Duration::from_secs(30), "critical", || {
        (check_uvmm(&d, &pools_check).0 == 2).then_some(())
    });
    let table = String::from_utf8_lossy(&d.cli(&["pool", "list", "--host", "localhost"]).stdout)
        .into_owned();
    assert!(table.contains("AGE"), "{table}");
    let shown = String::from_utf8_lossy(
        &d.cli(&["pool", "show", "small", "--host", "localhost"])
            .stdout,
    )
    .into_owned();
    assert!(
        shown.contains("figures: refreshed") && shown.contains("before they are 2 s old"),
        "{shown}"
    );

    // The host goes away: the figures age, and check_uvmm stops vouching for them.
    // (Free the pool first so that the old figures themselves would say OK.)
    std::fs::remove_file(small.join("disk1.img")).unwrap();
    std::fs::remove_file(small.join("disk2.img")).unwrap();
    wait_for(Duration::from_secs(30), "OK again", || {
        (check_uvmm(&d, &pools_check).0 == 0).then_some(())
    });
    drop(lv);
    let out = wait_for(Duration::from_secs(30), "stale figures", || {
        let (code, out) = check_uvmm(&d, &pools_check);
        (code == 3).then_some(out)
    });
    assert!(
        out.contains("localhost/small UNKNOWN: figures") && out.contains("older than 2 s"),
        "{out}"
    );
    let p = small_pool(&d);
    assert_eq!(p["stale"], true, "{p}");
    let table = String::from_utf8_lossy(&d.cli(&["pool", "list"]).stdout).into_owned();
    assert!(table.contains("stale"), "{table}");
}
