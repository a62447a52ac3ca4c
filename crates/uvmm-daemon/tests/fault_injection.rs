//! Faults injected through the `Connector`/`Hypervisor` traits around the real libvirt
//! test driver (`uvmm_libvirt::intercept`): refused connections, a dropped connection, a
//! host that hangs, lost events.

mod common;

use common::{demo_uri, wait_for};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use uvmm_api::{ActionResponse, HostDetail, VmPage};
use uvmm_api::{HostOrigin, HostStatus, VmQuery};
use uvmm_daemon::bus::EventBus;
use uvmm_daemon::caller::Caller;
use uvmm_daemon::config::Timing;
use uvmm_daemon::error::LookupError;
use uvmm_daemon::error::{Error, JobError};
use uvmm_daemon::hosts::shared::Shared;
use uvmm_daemon::hosts::source::ConfigHostSource;
use uvmm_daemon::jobs::VmRef;
use uvmm_daemon::ops::Ops;
use uvmm_daemon::vm::lifecycle::VmAction;
use uvmm_libvirt::intercept::{Hooks, InterceptConnector};
use uvmm_libvirt::{HostEvent, LibvirtConnector};
use uvmm_model::Action;

/// The daemon's operations as these tests use them, made when the hosts are known.
struct Manager {
    ops: std::sync::OnceLock<Ops>,
    shared: Arc<Shared>,
    dir: std::path::PathBuf,
}

impl Manager {
    fn start(&self, hosts: &[(String, HostOrigin)]) {
        let source = ConfigHostSource::new(hosts.to_vec(), self.dir.clone()).unwrap();
        let ops = Ops::new(
            self.shared.clone(),
            Box::new(source),
            vec![],
            Default::default(),
        );
        ops.hosts.start().unwrap();
        let _ = self.ops.set(ops);
    }
    fn ops(&self) -> &Ops {
        self.ops.get().expect("started")
    }
    fn host(&self, id: &str) -> Result<HostDetail, LookupError> {
        uvmm_daemon::hosts::show(&self.shared, id)
    }
    fn list_vms(&self, q: &VmQuery) -> Result<VmPage, LookupError> {
        uvmm_daemon::vm::read::list(&self.shared, q)
    }
    async fn vm_action(
        &self,
        uuid: &str,
        host: Option<&str>,
        action: Action,
    ) -> Result<ActionResponse, Error> {
        let root = Caller::unix_admin(0, None);
        let vm = VmRef {
            uuid: uuid.to_string(),
            host: host.map(str::to_string),
        };
        self.ops().run(&root, vm, VmAction::new(action)).await
    }
    fn shutdown(&self) {
        self.ops().shutdown()
    }
}

fn manager(faults: Arc<Hooks>) -> (Arc<Manager>, tempfile::TempDir) {
    manager_with(
        faults,
        Duration::from_millis(200),
        Duration::from_millis(200),
    )
}

fn manager_with(
    faults: Arc<Hooks>,
    stats_interval: Duration,
    idle_stats_interval: Duration,
) -> (Arc<Manager>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let shared = Arc::new(Shared {
        cache: RwLock::default(),
        bus: EventBus::default(),
        timing: Timing {
            stats_interval,
            idle_stats_interval,
            reconcile_interval: Duration::from_millis(1000),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_millis(400),
            call_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(5),
            keepalive_interval: 5,
            keepalive_count: 3,
        },
        connector: Arc::new(InterceptConnector {
            inner: Arc::new(LibvirtConnector::default()),
            hooks: faults,
        }),
        backups: None,
        retention: Default::default(),
        monitoring: Default::default(),
        list_render: Default::default(),
        demand: Default::default(),
    });
    (
        Arc::new(Manager {
            ops: Default::default(),
            shared,
            dir: dir.path().to_path_buf(),
        }),
        dir,
    )
}

fn status(m: &Manager, id: &str) -> HostStatus {
    m.host(id).unwrap().summary.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_then_dropped_connection_recovers_with_backoff() {
    let faults = Arc::new(Hooks::default());
    faults.refuse_connects.store(3, Ordering::SeqCst);
    let (m, _dir) = manager(faults.clone());
    m.start(&[(demo_uri("demo-kvm1"), HostOrigin::Cmdline)]);

    // Three refusals with back-off 100, 200, 400 ms, then connected.
    let h = wait_for(Duration::from_secs(3), "first refusal", || {
        let h = m.host("demo-kvm1").unwrap().summary;
        (h.status == HostStatus::Unavailable).then_some(h)
    });
    assert!(h.last_error.unwrap().contains("injected"));
    let started = Instant::now();
    wait_for(Duration::from_secs(5), "connected after refusals", || {
        (status(&m, "demo-kvm1") == HostStatus::Connected).then_some(())
    });
    assert_eq!(faults.connects.load(Ordering::SeqCst), 4);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "back-off must grow: {:?}",
        started.elapsed()
    );
    assert_eq!(m.list_vms(&VmQuery::default()).unwrap().total, 5);

    // Drop the connection: unavailable, VMs kept, then reconnected and resynchronised.
    let mut events = m.shared.bus.subscribe();
    let sink = faults.last_sink().unwrap();
    sink(HostEvent::Closed {
        reason: "injected: EOF".into(),
    });
    wait_for(Duration::from_secs(2), "unavailable after drop", || {
        (status(&m, "demo-kvm1") == HostStatus::Unavailable).then_some(())
    });
    let page = m.list_vms(&VmQuery::default()).unwrap();
    assert_eq!(page.total, 5);
    assert!(page.items.iter().all(|v| !v.available));
    wait_for(Duration::from_secs(3), "reconnected", || {
        (status(&m, "demo-kvm1") == HostStatus::Connected).then_some(())
    });
    assert!(m
        .list_vms(&VmQuery::default())
        .unwrap()
        .items
        .iter()
        .all(|v| v.available));
    let mut kinds = Vec::new();
    while let Ok(e) = events.try_recv() {
        kinds.push(e.kind());
    }
    assert!(
        kinds.contains(&uvmm_api::EventKind::HostUnavailable),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&uvmm_api::EventKind::HostConnected),
        "{kinds:?}"
    );
    // A stale Closed from the dropped connection must not break the new one.
    sink(HostEvent::Closed {
        reason: "late".into(),
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&m, "demo-kvm1"), HostStatus::Connected);
    m.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_host_costs_only_its_own_requests() {
    let faults = Arc::new(Hooks::default());
    let (m, _dir) = manager(faults.clone());
    m.start(&[
        (demo_uri("demo-kvm1"), HostOrigin::Cmdline),
        (demo_uri("demo-kvm2"), HostOrigin::Cmdline),
    ]);
    wait_for(Duration::from_secs(3), "both connected", || {
        (status(&m, "demo-kvm1") == HostStatus::Connected
            && status(&m, "demo-kvm2") == HostStatus::Connected)
            .then_some(())
    });
    let uuid_of = |name: &str| {
        m.list_vms(&VmQuery {
            name: Some(name.into()),
            ..Default::default()
        })
        .unwrap()
        .items[0]
            .uuid
            .clone()
    };
    let hung = demo_uri("demo-kvm1");
    faults.hang_while(move |uri, call| uri == hung && call == "action");
    let stuck = m
        .vm_action(&uuid_of("build-old"), None, Action::Start)
        .await;
    assert!(
        matches!(stuck, Err(Error::Job(JobError::Timeout { .. }))),
        "{stuck:?}"
    );
    // While demo-kvm1 hangs (it still does: the flag is set), reads answer from the cache
    // (a read that waited on the host would never return) and the other host works.
    assert_eq!(m.list_vms(&VmQuery::default()).unwrap().total, 9);
    let other = m
        .vm_action(&uuid_of("winxp-legacy"), None, Action::Start)
        .await
        .unwrap();
    assert_eq!(other.vm.unwrap().state, uvmm_model::VmState::Running);
    // Once the host answers again, its queued request completes and new ones flow.
    faults.clear();
    wait_for(Duration::from_secs(3), "queued start to complete", || {
        let vm = m
            .list_vms(&VmQuery {
                name: Some("build-old".into()),
                ..Default::default()
            })
            .unwrap()
            .items
            .remove(0);
        (vm.state == uvmm_model::VmState::Running).then_some(())
    });
    let r = m
        .vm_action(&uuid_of("build-old"), None, Action::Pause)
        .await
        .unwrap();
    assert_eq!(r.vm.unwrap().state, uvmm_model::VmState::Paused);
    m.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_events_are_caught_by_statistics_and_reconciliation() {
    let faults = Arc::new(Hooks::default());
    let (m, _dir) = manager(faults.clone());
    m.start(&[(demo_uri("demo-kvm1"), HostOrigin::Cmdline)]);
    wait_for(Duration::from_secs(3), "connected", || {
        (status(&m, "demo-kvm1") == HostStatus::Connected).then_some(())
    });
    let vm = |state: uvmm_model::VmState| {
        m.list_vms(&VmQuery::default())
            .unwrap()
            .items
            .into_iter()
            .find(|v| v.state == state)
            .expect("the demo host has running and shut-off VMs")
    };
    let running = vm(uvmm_model::VmState::Running);
    let shutoff = vm(uvmm_model::VmState::Shutoff);
    let state_of = |uuid: &str| {
        m.list_vms(&VmQuery::default())
            .unwrap()
            .items
            .into_iter()
            .find(|v| v.uuid == uuid)
            .map(|v| v.state)
    };
    let behind_our_back = faults.last_connection().unwrap();
    faults.lose_events.store(true, Ordering::SeqCst);

    // An active VM that changed: the next statistics read (active VMs) disagrees.
    behind_our_back
        .action(&running.uuid, Action::Pause)
        .unwrap();
    wait_for(Duration::from_secs(5), "paused VM noticed", || {
        (state_of(&running.uuid) == Some(uvmm_model::VmState::Paused)).then_some(())
    });
    // An active VM that stopped is missing from the read of active VMs.
    behind_our_back.action(&running.uuid, Action::Stop).unwrap();
    wait_for(Duration::from_secs(5), "stopped VM noticed", || {
        (state_of(&running.uuid) == Some(uvmm_model::VmState::Shutoff)).then_some(())
    });
    // Inactive VMs defined or undefined: only the complete read finds them.
    let ghost = behind_our_back
        .define(
            "<domain type='test'><name>ghost</name><memory>65536</memory>\
             <os><type>hvm</type></os></domain>",
        )
        .unwrap();
    behind_our_back.undefine(&shutoff.uuid).unwrap();
    wait_for(Duration::from_secs(5), "reconciliation", || {
        (state_of(&ghost) == Some(uvmm_model::VmState::Shutoff)
            && state_of(&shutoff.uuid).is_none())
        .then_some(())
    });
    m.shutdown();
}

/// Statistics are for people: while nobody watches (no event stream, no request for three
/// intervals) rounds come at the idle interval; an open stream or a request brings the
/// fast rate back. Margins are wide: fast is 100 ms, idle 5 s, windows 1.5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_slow_down_while_nobody_watches() {
    let faults = Arc::new(Hooks::default());
    let (m, _dir) = manager_with(
        faults.clone(),
        Duration::from_millis(100),
        Duration::from_secs(5),
    );
    m.start(&[(demo_uri("demo-kvm1"), HostOrigin::Cmdline)]);
    wait_for(Duration::from_secs(3), "connected", || {
        (status(&m, "demo-kvm1") == HostStatus::Connected).then_some(())
    });
    let calls_in = |window: Duration| {
        let faults = faults.clone();
        async move {
            let a = faults.calls("domain_stats");
            tokio::time::sleep(window).await;
            faults.calls("domain_stats") - a
        }
    };
    let window = Duration::from_millis(1500);

    tokio::time::sleep(Duration::from_millis(600)).await;
    let idle = calls_in(window).await;
    assert!(idle <= 1, "{idle} rounds in 1.5 s while nobody watched");

    let stream = m.shared.bus.subscribe();
    let watched = calls_in(window).await;
    assert!(
        watched >= 5,
        "{watched} rounds in 1.5 s with an event stream open"
    );
    drop(stream);

    tokio::time::sleep(Duration::from_millis(600)).await;
    let idle = calls_in(window).await;
    assert!(idle <= 1, "{idle} rounds in 1.5 s after the stream closed");

    // Requests count as watching.
    let touching = {
        let m = m.clone();
        tokio::spawn(async move {
            loop {
                m.shared.demand.touch();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let watched = calls_in(window).await;
    touching.abort();
    assert!(
        watched >= 5,
        "{watched} rounds in 1.5 s while requests came"
    );
    m.shutdown();
}
