//! Host workers run on a bounded pool (issue 18): hundreds of hosts, some of them hung in
//! their connection attempt, take a few dozen threads of uvmmd, not one or two per host,
//! and the hung ones hold up nobody else.

mod common;

use common::*;
use std::time::Duration;

const HOSTS: usize = 300;
const VMS: usize = 2;
const HUNG: usize = 12;

/// A test-driver node file with `VMS` domains (the first running, the others shut off).
fn node_file(h: usize) -> String {
    let mut xml = String::from("<node>");
    for v in 0..VMS {
        let n = h * VMS + v;
        let state = if v == 0 {
            ""
        } else {
            "<test:runstate>5</test:runstate>"
        };
        xml.push_str(&format!(
            "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\
             <name>pool-{h:03}-{v}</name><uuid>5ca1ab1e-{h:04x}-4000-8000-{n:012x}</uuid>\
             <memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os>{state}\
             </domain>"
        ));
    }
    xml.push_str(
        "<cpu><mhz>2400</mhz><active>4</active><nodes>1</nodes><sockets>1</sockets>\
         <cores>4</cores><threads>1</threads></cpu><memory>8388608</memory></node>",
    );
    xml
}

/// uvmmd's threads, counted by name (a trailing number dropped: "hosts 3" is "hosts").
fn threads(d: &Daemon) -> (usize, std::collections::BTreeMap<String, usize>) {
    let pid = d.child.as_ref().unwrap().id();
    let mut names = std::collections::BTreeMap::new();
    let mut n = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let comm = std::fs::read_to_string(t.unwrap().path().join("comm")).unwrap_or_default();
        let name = comm
            .trim()
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .trim();
        *names.entry(name.to_string()).or_insert(0) += 1;
        n += 1;
    }
    (n, names)
}

#[test]
fn hundreds_of_hosts_run_on_far_fewer_threads_and_hung_ones_block_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let mut uris = Vec::new();
    for h in 0..HOSTS {
        let path = dir.path().join(format!("host-{h:03}.xml"));
        std::fs::write(&path, node_file(h)).unwrap();
        uris.push(format!("test://{}", path.display()));
    }
    // Accept connections (the kernel's backlog) and never answer: libvirt's open blocks
    // without a time limit, each holding a pool thread.
    let mut listeners = Vec::new();
    for i in 0..HUNG {
        let sock = dir.path().join(format!("silent-{i}.sock"));
        listeners.push(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        uris.push(format!("qemu+unix:///system?socket={}", sock.display()));
    }
    let d = Daemon::start_with(
        &uris,
        &[],
        "connect_timeout_secs = 2\nreconnect_min_secs = 1\nreconnect_max_secs = 2\n",
    );
    let hosts = d.get("/api/v1/hosts");
    let hosts = hosts.as_array().unwrap();
    let connected = hosts.iter().filter(|h| h["status"] == "connected").count();
    assert_eq!(connected, HOSTS, "every test-driver host connected");
    let hung: Vec<_> = hosts
        .iter()
        .filter(|h| h["uri"].as_str().unwrap().starts_with("qemu+unix"))
        .collect();
    assert_eq!(hung.len(), HUNG);
    for h in hung {
        assert_eq!(h["status"], "unavailable", "{h}");
        assert!(
            h["last_error"]
                .as_str()
                .unwrap()
                .contains("no answer within"),
            "{h}"
        );
    }
    assert_eq!(d.vms().len(), HOSTS * VMS);

    // Every host's worker is alive and serving: an action on the last host goes through
    // while the hung attempts are still pending.
    let name = format!("pool-{:03}-1", HOSTS - 1);
    let r = d.cli_json(&["vm", "start", &name]);
    assert_eq!(r["vm"]["state"], "running", "{r}");
    wait_for(Duration::from_secs(10), "the event of the start", || {
        d.vms()
            .iter()
            .any(|v| v["name"] == name.as_str() && v["state"] == "running")
            .then_some(())
    });

    // Bounded: the pool's core, one thread per hung call, the fixed threads of the
    // daemon (tokio, backup I/O, libvirt's event loop, timer, monitor). One thread per
    // host would be over 300.
    let (n, names) = threads(&d);
    eprintln!("uvmmd threads: {n} for {} hosts: {names:?}", HOSTS + HUNG);
    assert!(n < (HOSTS + HUNG) / 3, "{n} threads: {names:?}");
    drop(listeners);
}
