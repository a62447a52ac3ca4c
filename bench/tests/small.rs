//! The benchmark's small configuration as a correctness test (CI): 10 hosts x 20 VMs on
//! real libvirtd instances; every VM is seen, every event received, a host whose libvirtd
//! is stopped with SIGSTOP does not block the others. No timing is asserted.

use std::path::{Path, PathBuf};
use std::process::Command;

fn newest(dir: &Path) -> std::time::SystemTime {
    let mut t = std::time::UNIX_EPOCH;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let m = if p.is_dir() {
            newest(&p)
        } else {
            e.metadata().and_then(|m| m.modified()).unwrap_or(t)
        };
        t = t.max(m);
    }
    t
}

fn uvmmd() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_uvmm-bench")).with_file_name("uvmmd");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/uvmm-daemon/src");
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} missing: run `cargo test --workspace`", bin.display()));
    assert!(
        built >= newest(&src),
        "{} is stale: run `cargo test --workspace`",
        bin.display()
    );
    bin
}

#[test]
fn ten_hosts_twenty_vms_every_vm_and_event_seen() {
    let out = Command::new(env!("CARGO_BIN_EXE_uvmm-bench"))
        .args([
            "--check", "--hosts", "10", "--vms", "20", "--events", "40", "--uvmmd",
        ])
        .arg(uvmmd())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("CHECK OK"), "{err}");
}
