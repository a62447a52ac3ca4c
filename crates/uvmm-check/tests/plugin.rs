//! check_uvmm without a daemon: the plugin contract (one line, exit codes 0-3).

use std::process::Command;

fn check(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_check_uvmm"))
        .args(args)
        .env("UVMM_SOCKET", "/nonexistent/uvmm.sock")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn exit_codes_follow_the_plugin_guidelines() {
    // Usage errors are UNKNOWN (3), with a status line.
    let (code, out) = check(&["frobnicate"]);
    assert_eq!(code, 3);
    assert!(out.starts_with("UVMM UNKNOWN - "), "{out}");
    // The error is said once: in the status line, not again on standard error.
    let err = Command::new(env!("CARGO_BIN_EXE_check_uvmm"))
        .arg("frobnicate")
        .output()
        .unwrap()
        .stderr;
    let err = String::from_utf8_lossy(&err);
    assert!(
        !err.contains("frobnicate") && err.contains("Usage:"),
        "{err}"
    );
    // No thresholds: uvmmd's are used, and uvmmd does not answer here.
    let (code, out) = check(&["pools"]);
    assert_eq!(code, 3, "no daemon: {out}");
    assert!(out.contains("cannot read the pools"), "{out}");
    // With --direct there is no daemon to ask for thresholds.
    let (code, out) = check(&["pools", "--direct", "test:///default"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("with --direct give thresholds"), "{out}");
    // Swapped thresholds are refused before anything is read.
    for (w, c) in [("90%", "80%"), ("5GiB:", "10GiB:")] {
        let (code, out) = check(&["pools", "-w", w, "-c", c]);
        assert_eq!(code, 3, "{w} {c}: {out}");
        assert!(out.contains("swap -w and -c"), "{out}");
    }
    let (code, out) = check(&["pools", "--overcommit-warn", "3", "--overcommit-crit", "2"]);
    assert_eq!(code, 3, "{out}");
    let (code, out) = check(&["pools", "-w", "lots"]);
    assert_eq!(code, 3, "{out}");
    // A daemon that does not answer is CRITICAL for `daemon`, UNKNOWN for the others.
    let (code, out) = check(&["daemon", "-t", "2"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("UVMM DAEMON CRITICAL - uvmmd does not answer"),
        "{out}"
    );
    let (code, _) = check(&["hosts"]);
    assert_eq!(code, 3);
    assert_eq!(out.lines().count(), 1, "exactly one line");
}

#[test]
fn direct_mode_reads_libvirt() {
    let (code, out) = check(&[
        "pools",
        "--direct",
        "test:///default",
        "-w",
        "80%",
        "-c",
        "90%",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("'default-pool'=0B;"), "{out}");
    let (code, out) = check(&[
        "pools",
        "--direct",
        "test:///nonexistent/host.xml",
        "-w",
        "80%",
    ]);
    assert_eq!(code, 3, "{out}");
}

#[test]
fn help_keeps_one_example_per_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_check_uvmm"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = help.lines().map(str::trim).collect();
    for line in [
        "check_uvmm pools -w 80% -c 90%                          every pool of every host",
        "check_uvmm daemon                                       uvmmd answers in time",
        "check_uvmm hosts                                        all hosts connected",
    ] {
        assert!(
            lines.contains(&line),
            "help lacks the line '{line}':\n{help}"
        );
    }
}
