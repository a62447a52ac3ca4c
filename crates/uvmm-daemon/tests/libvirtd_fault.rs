//! Fault test against a real libvirtd: kill it, watch its host go unavailable while the
//! other host keeps working, restart it, watch the host come back resynchronised.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn killed_libvirtd_marks_its_host_unavailable_and_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let mut libvirtd = Libvirtd::start(&dir.path().join("libvirtd"));
    let remote = libvirtd.uri();
    // Fast back-off keeps the test short; the production default starts at 1 s too.
    let d = Daemon::start_with(
        &[remote.clone(), demo_uri("demo-kvm1")],
        &[],
        "reconnect_min_secs = 1\nreconnect_max_secs = 2\nkeepalive_interval_secs = 1\nkeepalive_count = 2\n",
    );
    let remote_host = d
        .get("/api/v1/hosts")
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["uri"] == remote.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        remote_host["status"],
        "connected",
        "{remote_host}\n{}",
        d.log()
    );
    let id = remote_host["id"].as_str().unwrap().to_string();
    // test:///default behind libvirtd has one running VM called "test".
    let vm = d.vm("test", &id);
    assert_eq!(vm["available"], true);
    let events = d.events();

    let killed_at = Instant::now();
    libvirtd.kill();
    let unavailable = wait_for(
        Duration::from_secs(5),
        "host unavailable within 5 s",
        || {
            let h = d.get(&format!("/api/v1/hosts/{id}"));
            (h["status"] == "unavailable").then_some(h)
        },
    );
    eprintln!(
        "host unavailable {:?} after libvirtd was killed",
        killed_at.elapsed()
    );
    assert_eq!(unavailable["available"], false);
    assert!(
        unavailable["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{unavailable}"
    );
    events.expect("host_unavailable", Duration::from_secs(5), |e| {
        e["kind"] == "host_unavailable" && e["host_id"] == id.as_str()
    });

    // Its VMs stay listed, marked unavailable; actions on them are refused with 503.
    let vm = d.vm("test", &id);
    assert_eq!(vm["available"], false);
    assert_eq!(vm["state"], "running", "last known state is kept");
    let (status, body) = d.http(
        "POST",
        &format!(
            "/api/v1/vms/{}/pause?host={id}",
            vm["uuid"].as_str().unwrap()
        ),
        None,
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "host_unavailable");

    // The other host keeps working.
    let out = d.cli(&["vm", "start", "build-old"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d.vm("build-old", "demo-kvm1")["state"], "running");
    assert_eq!(d.get("/api/v1/hosts/demo-kvm1")["status"], "connected");

    // Restart libvirtd: the daemon reconnects on its own and resynchronises.
    libvirtd.spawn();
    wait_for(Duration::from_secs(15), "reconnection", || {
        (d.get(&format!("/api/v1/hosts/{id}"))["status"] == "connected").then_some(())
    });
    events.expect("host_connected", Duration::from_secs(5), |e| {
        e["kind"] == "host_connected" && e["host_id"] == id.as_str()
    });
    let vm = d.vm("test", &id);
    assert_eq!(vm["available"], true);
    // Fully resynchronised: a change made after the restart is seen through events again.
    let out = d.cli(&["vm", "pause", "test", "--host", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    events.expect(
        "vm_state on the reconnected host",
        Duration::from_secs(5),
        |e| e["kind"] == "vm_state" && e["host_id"] == id.as_str() && e["state"] == "paused",
    );
}

#[test]
fn changes_made_by_another_libvirt_client_arrive_as_events() {
    let dir = tempfile::tempdir().unwrap();
    let libvirtd = Libvirtd::start(&dir.path().join("libvirtd"));
    let d = Daemon::start(&[libvirtd.uri()]);
    let events = d.events();
    // virsh is a second, independent libvirt client.
    let out = std::process::Command::new("virsh")
        .args(["-c", &libvirtd.uri(), "suspend", "test"])
        .output()
        .expect("virsh (libvirt-clients) must be installed by the test command");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = events.expect("vm_state from virsh", Duration::from_secs(5), |e| {
        e["kind"] == "vm_state" && e["name"] == "test"
    });
    assert_eq!(ev["state"], "paused");
    assert_eq!(d.vm("test", "default")["state"], "paused");
}
