//! uvmmd as a Unix daemon: options, detaching, pid and log files, signals, sockets.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

fn uvmmd(args: &[&str]) -> std::process::Output {
    Command::new(uvmmd_bin()).args(args).output().unwrap()
}

#[test]
fn help_documents_every_option() {
    let out = uvmmd(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "-u, --socket",
        "-s, --listen",
        "-d, --detach",
        "-p, --pidfile",
        "-l, --logfile",
        "-v, --verbose",
        "-b, --ldap",
        "-c, --state-dir",
        "--backup-dir",
        "--config",
        "[URI]...",
    ] {
        assert!(help.contains(opt), "uvmmd --help lacks {opt}:\n{help}");
    }
}

#[test]
fn refusals_are_clear_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s");
    let sock = sock.to_str().unwrap();
    let bad_config = dir.path().join("bad.toml");
    std::fs::write(&bad_config, "stats_intervall_secs = 3\n").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        // Plain HTTP only on loopback: passwords and tokens would cross the network.
        (
            vec!["-b", "", "-u", sock, "-s", "0.0.0.0", "--plain-http"],
            "only allowed on loopback",
        ),
        (
            vec!["-b", "", "-u", sock, "-s", "192.0.2.1:2106", "--plain-http"],
            "only allowed on loopback",
        ),
        (
            vec!["-b", "ldap://dc.example.com", "-u", sock],
            "a base DN is needed",
        ),
        (
            vec!["-b", "", "-u", sock, "http://example.com/"],
            "unknown hypervisor driver",
        ),
        (
            vec!["-b", "", "-u", sock, "--config", "/nonexistent/uvmmd.toml"],
            "cannot read configuration file",
        ),
        (
            vec![
                "-b",
                "",
                "-u",
                sock,
                "--config",
                bad_config.to_str().unwrap(),
            ],
            "unknown field",
        ),
        (vec!["--no-such-option"], "unexpected argument"),
    ];
    for (args, text) in cases {
        let out = uvmmd(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "uvmmd {args:?}: {err}");
        assert!(err.contains(text), "uvmmd {args:?}: {err}");
    }
    assert!(
        !dir.path().join("s").exists(),
        "a refused start must not leave a socket"
    );
}

#[test]
fn detach_pidfile_sighup_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("run/uvmm.sock");
    let pidfile = dir.path().join("run/uvmmd.pid");
    let log = dir.path().join("log/uvmmd.log");
    let state = dir.path().join("state");
    let demo = demo_uri("demo-xen1");
    let out = uvmmd(&[
        "-d",
        "-b",
        "",
        "-u",
        sock.to_str().unwrap(),
        "-p",
        pidfile.to_str().unwrap(),
        "-l",
        log.to_str().unwrap(),
        "-c",
        state.to_str().unwrap(),
        "--config",
        "/dev/null",
        &demo,
    ]);
    assert!(
        out.status.success(),
        "uvmmd -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The parent returns only once the socket answers.
    let (status, _) = http_raw(&sock, "GET", "/api/v1/version", None);
    assert_eq!(status, 200);
    // Open to every local account, which then gets what its groups' roles allow
    // ([api] socket_mode; docs/security.md).
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(pid);
    assert!(
        nix::sys::signal::kill(pid, None).is_ok(),
        "daemon not alive"
    );

    // A second daemon on the same socket is refused with a clear message.
    let out = uvmmd(&[
        "-d",
        "-b",
        "",
        "-u",
        sock.to_str().unwrap(),
        "-c",
        state.to_str().unwrap(),
        "--config",
        "/dev/null",
        "-l",
        dir.path().join("second.log").to_str().unwrap(),
        "-p",
        dir.path().join("second.pid").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // SIGHUP reopens the log file (logrotate moved the old one away).
    wait_for(Duration::from_secs(5), "startup logged", || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("ready"))
            .map(|_| ())
    });
    std::fs::rename(&log, dir.path().join("log/uvmmd.log.1")).unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_for(Duration::from_secs(5), "log reopened", || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("log file reopened"))
            .map(|_| ())
    });

    // SIGTERM: clean shutdown removes socket and pid file.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    wait_for(Duration::from_secs(10), "daemon to exit", || {
        nix::sys::signal::kill(pid, None).is_err().then_some(())
    });
    assert!(!sock.exists(), "socket left behind");
    assert!(!pidfile.exists(), "pid file left behind");
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("uvmmd stopped"));
}

#[test]
fn stale_socket_is_replaced_and_tcp_listener_serves_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut d = Daemon::start_with(&[demo_uri("demo-xen1")], &["-s", &listen], "");
    // Also talk over TCP, through the CLI, which needs the API token.
    let url = format!("http://{listen}");
    let refused = Command::new(uvmm_bin())
        .args(["--url", &url, "--token-file", "/nonexistent", "vm", "list"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "no token is a usage error");
    let token = d.token_file();
    let out = Command::new(uvmm_bin())
        .args(["--url", &url, "--token-file", token.to_str().unwrap()])
        .args(["vm", "list", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vms: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(vms.as_array().unwrap().len(), 3);
    let status = d.stop().unwrap();
    assert!(status.success(), "SIGTERM exit: {status:?}");
    assert!(!d.socket.exists());

    // A socket file nobody listens on any more is replaced at start.
    let mut args = d.args.clone();
    let pos = args.iter().position(|a| a == "-u").unwrap();
    args[pos + 1] = stale.display().to_string();
    let mut child = Command::new(uvmmd_bin())
        .args(&args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        Duration::from_secs(10),
        "daemon on the stale socket path",
        || {
            std::os::unix::net::UnixStream::connect(&stale)
                .ok()
                .map(|_| ())
        },
    );
    let (status, _) = http_raw(&stale, "GET", "/api/v1/version", None);
    assert_eq!(status, 200);
    let _ = child.kill();
    let _ = child.wait();
}
