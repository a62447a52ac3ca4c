//! uvmm-restore's contract without a daemon or libvirt: help, usage errors, listing.

use std::process::Command;

fn restore(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_uvmm-restore"))
        .args(args)
        .env("UVMM_SOCKET", "/nonexistent/uvmm.sock")
        .output()
        .unwrap()
}

#[test]
fn help_is_a_manual() {
    let out = restore(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for text in [
        "-l, --list",
        "-p, --pattern",
        "-r, --restore",
        "-f, --force",
        "--version",
        "--host",
        "--dir",
        "--direct",
        "Exit codes",
        "*winxp*",
    ] {
        assert!(help.contains(text), "help lacks {text}");
    }
    // Examples and the list of checks keep their lines (they used to run together).
    let lines: Vec<&str> = help.lines().map(str::trim).collect();
    for line in [
        "uvmm-restore -l                      list all backups",
        "uvmm-restore -l -p \"*winxp*\"         only names matching the pattern",
        "- no other VM has the same UUID under another name;",
    ] {
        assert!(
            lines.contains(&line),
            "help lacks the line '{line}':\n{help}"
        );
    }
    // The original name works the same.
    let out = Command::new(env!(
        "CARGO_BIN_EXE_univention-virtual-machine-manager-restore"
    ))
    .arg("--help")
    .output()
    .unwrap();
    assert!(out.status.success());
}

#[test]
fn usage_errors_and_failures_have_distinct_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert_eq!(restore(&["--bogus"]).status.code(), Some(2));
    assert_eq!(
        restore(&["-l", "-r", "x", "--dir", d]).status.code(),
        Some(2)
    );
    // An empty directory lists nothing, successfully; a missing one is a failure.
    let out = restore(&["--dir", d]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no backups"));
    let out = restore(&["--dir", "/nonexistent/backups"]);
    assert_eq!(out.status.code(), Some(1));
    let out = restore(&["-r", "nothing", "--dir", d]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no backup of 'nothing'"));
}
