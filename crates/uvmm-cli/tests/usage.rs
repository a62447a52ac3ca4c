//! The CLI's contract without a daemon: help, usage errors (exit 2), and a clear message
//! when uvmmd cannot be reached (exit 1).

use std::process::Command;

fn uvmm(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_uvmm"))
        .args(args)
        .env("UVMM_SOCKET", "/nonexistent/uvmm.sock")
        .output()
        .unwrap()
}

#[test]
fn help_lists_the_commands() {
    let out = uvmm(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["host", "vm", "events", "--json", "--socket"] {
        assert!(text.contains(cmd), "--help lacks {cmd}");
    }
    let out = uvmm(&["vm", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "list", "show", "start", "shutdown", "stop", "pause", "resume", "suspend", "reboot",
        "reset",
    ] {
        assert!(text.contains(cmd), "vm --help lacks {cmd}");
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["frobnicate"],
        vec!["vm"],
        vec!["vm", "start"],
        vec!["--url", "ftp://h:2106", "vm", "list"],
        // Plain HTTP only to this machine: a token would cross the network.
        vec!["--url", "http://192.0.2.1:2106", "vm", "list"],
        vec!["--url", "https://h:2106", "--replace-pin", "vm", "list"],
        vec![
            "--url",
            "https://h:2106",
            "--accept-fingerprint",
            "xyz",
            "vm",
            "list",
        ],
        vec!["login"],
    ] {
        let out = uvmm(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn unreachable_daemon_is_a_clear_failure() {
    let out = uvmm(&["vm", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect to uvmmd at /nonexistent/uvmm.sock"),
        "{err}"
    );
    assert!(err.contains("UVMM_SOCKET"), "{err}");
}
