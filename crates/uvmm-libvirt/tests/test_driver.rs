//! The real libvirt binding against libvirt's test driver (an in-process hypervisor).

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use uvmm_libvirt::{Connector, HostEvent, LibvirtConnector, Lifecycle};
use uvmm_model::{Action, VmState};

fn demo_uri() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo/hosts/demo-kvm1.xml");
    format!("test://{}", p.canonicalize().unwrap().display())
}

#[test]
fn reads_host_and_domains() {
    let (tx, _rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let host = LibvirtConnector::default()
        .connect(
            &demo_uri(),
            Arc::new(move |e| {
                let _ = tx.lock().unwrap().send(e);
            }),
        )
        .unwrap();
    let info = host.host_info().unwrap();
    assert_eq!(info.driver, "TEST");
    assert_eq!(info.cpus, 32);
    assert!(info.caps.guests.iter().any(|g| g.os_type == "hvm"));
    let doms = host.list_domains().unwrap();
    assert_eq!(doms.len(), 5);
    let web = doms.iter().find(|d| d.name == "web-01").unwrap();
    assert_eq!(web.state, VmState::Running);
    // Sizes come from bulk statistics; 0 means "not reported" (the cache then reads the
    // XML). The test driver reports no vCPU statistics.
    assert!(matches!(web.vcpus, 0 | 2), "{}", web.vcpus);
    let single = host.domain(&web.uuid).unwrap().unwrap();
    assert_eq!(single.vcpus, 2);
    assert!(web.xml.contains("<name>web-01</name>"));
    let old = doms.iter().find(|d| d.name == "build-old").unwrap();
    assert_eq!(old.state, VmState::Shutoff);
    assert!(host
        .domain("00000000-0000-0000-0000-000000000000")
        .unwrap()
        .is_none());
    let stats = host.domain_stats(false).unwrap();
    assert_eq!(stats.len(), 5);
    assert!(stats.iter().all(|s| s.state.is_some()));
    // UUIDs are formatted by us from the raw bytes: they must match libvirt's own.
    let mut from_stats: Vec<&str> = stats.iter().map(|s| s.uuid.as_str()).collect();
    let mut from_list: Vec<&str> = doms.iter().map(|d| d.uuid.as_str()).collect();
    from_stats.sort();
    from_list.sort();
    assert_eq!(from_stats, from_list);
    let active = host.domain_stats(true).unwrap();
    let running: Vec<&str> = doms
        .iter()
        .filter(|d| d.state.is_active())
        .map(|d| d.uuid.as_str())
        .collect();
    assert_eq!(active.len(), running.len());
    assert!(!active.is_empty() && active.len() < stats.len());
    assert!(active.iter().all(|s| running.contains(&s.uuid.as_str())));
}

#[test]
fn actions_raise_lifecycle_events() {
    let (tx, rx) = mpsc::channel::<HostEvent>();
    let tx = std::sync::Mutex::new(tx);
    let host = LibvirtConnector::default()
        .connect(
            &demo_uri(),
            Arc::new(move |e| {
                let _ = tx.lock().unwrap().send(e);
            }),
        )
        .unwrap();
    let doms = host.list_domains().unwrap();
    let vm = doms.iter().find(|d| d.name == "build-old").unwrap();
    host.action(&vm.uuid, Action::Start).unwrap();
    let ev = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("no event within 5 s");
    match ev {
        HostEvent::Lifecycle {
            uuid, name, event, ..
        } => {
            assert_eq!(uuid, vm.uuid);
            assert_eq!(name, "build-old");
            assert_eq!(event, Lifecycle::Started);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        host.domain(&vm.uuid).unwrap().unwrap().state,
        VmState::Running
    );
    // Pausing a shut-off VM is refused by libvirt too (the test driver calls it an internal
    // error, which is why the daemon checks transitions itself before calling libvirt).
    host.action(&vm.uuid, Action::Stop).unwrap();
    let err = host.action(&vm.uuid, Action::Pause).unwrap_err();
    assert!(err.message.contains("not running"), "{err:?}");
}

#[test]
fn bad_uri_is_a_connection_error() {
    let err = LibvirtConnector::default()
        .connect("test:///nonexistent/file.xml", Arc::new(|_| {}))
        .err()
        .expect("must fail");
    assert_eq!(err.kind, uvmm_libvirt::ErrorKind::Connection);
    assert!(!err.message.is_empty());
}
