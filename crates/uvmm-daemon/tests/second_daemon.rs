//! A second uvmmd started while one runs: it must refuse before it touches anything of the
//! running one (socket, pid file, state directory), leave nothing of its own behind, and
//! say why once.

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Run a second uvmmd in the foreground (it must exit on its own).
fn second(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(uvmmd_bin())
        .args(["-b", "", "--config", "/dev/null"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn inode(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().ino()
}

#[test]
fn a_second_daemon_refuses_and_leaves_everything_alone() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let first_dir = tempfile::tempdir().unwrap();
    let pidfile = first_dir.path().join("uvmmd.pid");
    let d = Daemon::start_with(
        &[demo_uri("demo-xen1")],
        &["-s", &listen, "-p", pidfile.to_str().unwrap()],
        "",
    );
    let state = d.dir.path().join("state");
    let pid_text = std::fs::read_to_string(&pidfile).unwrap();
    let socket_inode = inode(&d.socket);

    let other = tempfile::tempdir().unwrap();
    let o = |name: &str| other.path().join(name).display().to_string();
    let sock = d.socket.display().to_string();
    let pid = pidfile.display().to_string();
    let st = state.display().to_string();
    let other_port = format!("127.0.0.1:{}", free_port());
    // (what is shared with the running daemon, arguments, expected message)
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "pid file",
            vec![
                "-u".into(),
                o("a.sock"),
                "-p".into(),
                pid.clone(),
                "-c".into(),
                o("state-a"),
            ],
            "names running process",
        ),
        (
            "TCP port",
            vec![
                "-u".into(),
                o("b.sock"),
                "-p".into(),
                o("b.pid"),
                "-s".into(),
                listen.clone(),
                "-c".into(),
                o("state-b"),
            ],
            "cannot listen on",
        ),
        (
            "socket",
            vec![
                "-u".into(),
                sock.clone(),
                "-p".into(),
                o("c.pid"),
                "-c".into(),
                o("state-c"),
            ],
            "is in use",
        ),
        (
            "state directory",
            vec![
                "-u".into(),
                o("d.sock"),
                "-p".into(),
                o("d.pid"),
                "-s".into(),
                other_port.clone(),
                "-c".into(),
                st.clone(),
            ],
            "in use by another uvmmd",
        ),
        (
            "backup directory",
            vec![
                "-u".into(),
                o("e.sock"),
                "-p".into(),
                o("e.pid"),
                "-c".into(),
                o("state-e"),
                "--backup-dir".into(),
                d.backup_dir().display().to_string(),
            ],
            "backup directory",
        ),
    ];
    for (shared, args, message) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, err) = second(&args);
        assert_eq!(code, Some(1), "shared {shared}: {err}");
        assert!(err.contains(message), "shared {shared}: {err}");
        assert_eq!(
            err.matches(message).count(),
            1,
            "shared {shared}: the error is printed once: {err}"
        );
        // Nothing of its own left behind.
        for leftover in [
            "a.sock", "b.sock", "d.sock", "e.sock", "b.pid", "c.pid", "d.pid", "e.pid",
        ] {
            assert!(
                !other.path().join(leftover).exists(),
                "shared {shared}: {leftover} left behind"
            );
        }
        // Nothing of the running daemon touched, and it still answers.
        assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), pid_text);
        assert_eq!(
            inode(&d.socket),
            socket_inode,
            "shared {shared}: socket replaced"
        );
        let (status, _) = http_raw(&d.socket, "GET", "/api/v1/version", None);
        assert_eq!(status, 200, "shared {shared}");
        assert!(
            std::net::TcpStream::connect(&listen).is_ok(),
            "shared {shared}"
        );
    }
}
