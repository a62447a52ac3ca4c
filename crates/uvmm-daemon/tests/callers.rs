//! The caller of every change (`caller.rs`): the UNIX socket peer by its account, the TCP
//! client by the API token. It is written into every backup version made through uvmm
//! (`user`) and into the change's log line; versions uvmm did not make have none.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The versions of a VM, newest last.
fn versions(d: &Daemon, vm: &str) -> Vec<Value> {
    let show = d.cli_json(&["backup", "show", vm]);
    show["versions"].as_array().unwrap().clone()
}

#[test]
fn backup_versions_and_change_logs_name_the_caller() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let d = Daemon::start_with(
        &[demo_uri("demo-kvm1")],
        &["-s", &listen],
        &demo_runtime_config(),
    );
    // The resync at start records what it finds: not made by anybody through uvmm.
    let first = wait_for(Duration::from_secs(20), "the start's backup resync", || {
        let v = d.cli(&["backup", "show", "web-01", "--json"]);
        v.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&v.stdout).unwrap())
    });
    assert_eq!(first["versions"][0]["user"], Value::Null, "{first}");

    // Through the UNIX socket: these tests run as root (uid 0).
    ok(
        d.cli(&[
            "vm",
            "set",
            "web-01",
            "--host",
            "demo-kvm1",
            "description=by root",
            "--json",
        ]),
        "edit over the socket",
    );
    let last = versions(&d, "web-01").pop().unwrap();
    assert_eq!(
        (&last["cause"], &last["user"]),
        (&"edit".into(), &"root".into()),
        "{last}"
    );

    // Over TCP with the token.
    let url = format!("http://{listen}");
    let out = std::process::Command::new(uvmm_bin())
        .args([
            "--url",
            &url,
            "--token-file",
            d.token_file().to_str().unwrap(),
            "vm",
            "set",
            "web-01",
            "--host",
            "demo-kvm1",
            "description=by token",
            "--json",
        ])
        .output()
        .unwrap();
    ok(out, "edit over TCP");
    let last = versions(&d, "web-01").pop().unwrap();
    assert_eq!(last["user"], "token:api", "{last}");

    // Each change's log line says who.
    let log = d.log();
    let line = |user: &str| {
        log.lines()
            .any(|l| l.contains("change") && l.contains(&format!("user={user}")))
    };
    assert!(line("root") && line("token:api"), "{log}");
}
