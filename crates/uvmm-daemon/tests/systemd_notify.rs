//! uvmmd under a service manager: the sd_notify readiness datagram and `-d` under
//! `Type=notify`, with the real binary and a notify socket of the test's own (the packaging
//! tests repeat this under a real systemd); and `--check-config` as scripts use it.

mod common;

use common::*;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn receive(sock: &UnixDatagram, within: Duration) -> Option<String> {
    sock.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    sock.recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn with_notify_socket_d_stays_in_the_foreground_and_reports_ready_once_the_socket_answers() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let api = dir.path().join("uvmm.sock");
    let mut child = Command::new(uvmmd_bin())
        .args(["-d", "-b", "", "-u"])
        .arg(&api)
        .arg("-c")
        .arg(dir.path().join("state"))
        .arg("--backup-dir")
        .arg(dir.path().join("backups"))
        .arg("-l")
        .arg(dir.path().join("uvmmd.log"))
        .arg("-p")
        .arg(dir.path().join("uvmmd.pid"))
        .args(["--config", "/dev/null", "test:///default"])
        .arg("--audit-log")
        .arg(dir.path().join("audit.log"))
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();

    let msg = receive(&notify, Duration::from_secs(30)).expect("no READY=1 within 30 s");
    // READY=1 comes after the sockets are bound: a client connects at once.
    assert!(
        UnixStream::connect(&api).is_ok(),
        "socket not ready at READY=1"
    );
    assert!(msg.starts_with("READY=1\n"), "{msg}");
    assert!(msg.contains(&format!("MAINPID={}", child.id())), "{msg}");
    assert!(msg.contains("STATUS=serving 1 configured hosts"), "{msg}");
    // -d did not fork: the process systemd started is the daemon, still running.
    assert!(
        child.try_wait().unwrap().is_none(),
        "uvmmd exited: it detached"
    );
    let pid = std::fs::read_to_string(dir.path().join("uvmmd.pid")).unwrap();
    assert_eq!(pid.trim(), child.id().to_string());

    // SIGHUP right after READY=1 (systemctl reload) must not end the daemon.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let log = dir.path().join("uvmmd.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("log file reopened")
    {
        assert!(Instant::now() < deadline, "SIGHUP not handled");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(child.try_wait().unwrap().is_none(), "SIGHUP ended uvmmd");
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("-d does not detach"));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn check_config_exits_0_or_1_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("uvmmd.toml");
    std::fs::write(&config, "hosts = [\"test:///default\"]\n").unwrap();
    let run = |args: &[&str]| {
        Command::new(uvmmd_bin())
            .arg("--check-config")
            .arg("--config")
            .arg(&config)
            .arg("-c")
            .arg(dir.path().join("state"))
            .args(args)
            .output()
            .unwrap()
    };
    // (extra options, exit code, text on stdout or stderr)
    let table: [(&[&str], i32, &str); 6] = [
        (&["-s", "127.0.0.1", "-d"], 0, "configuration OK"),
        (&["-d", "-b", ""], 0, "hosts: 1 (test:///default)"),
        (&["-s", "0.0.0.0", "-d"], 0, "tcp: 0.0.0.0:2106 (HTTPS)"),
        (&["-b", "ldap://dc"], 1, "a base DN is needed"),
        (
            &["-s", "0.0.0.0", "--plain-http"],
            1,
            "only allowed on loopback",
        ),
        // A mistyped option in DAEMON_OPTS is 1 too (scripts test for non-zero).
        (&["--no-such-option"], 1, "unexpected argument"),
    ];
    for (args, code, text) in table {
        let out = run(args);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(code), "{args:?}: {all}");
        assert!(all.contains(text), "{args:?}: {all}");
    }
    // Nothing was started or made.
    assert!(!dir.path().join("state").exists());
}
