//! A daemon's operations on in-memory fake hosts (`uvmm_libvirt::fake`), shared by the
//! fake-hypervisor job tests (`jobs_fake.rs`, `jobs_fake_moves.rs`).
#![allow(
    dead_code,
    reason = "each test binary uses its own part of the fake world"
)]

use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::broadcast::Receiver;
use uvmm_api::{Change, Event, HostOrigin, HostStatus};
use uvmm_daemon::bus::EventBus;
use uvmm_daemon::caller::Caller;
use uvmm_daemon::config::Timing;
use uvmm_daemon::hosts::shared::Shared;
use uvmm_daemon::hosts::source::ConfigHostSource;
use uvmm_daemon::jobs::VmRef;
use uvmm_daemon::ops::Ops;
use uvmm_libvirt::fake::{FakeConnector, FakeHost};
use uvmm_model::VmState;

pub const URI: &str = "qemu+tcp://fake1/system";
pub const GIB: u64 = 1 << 30;
/// Only a safety net: every wait below ends by an ordering the test makes.
pub const LONG: Duration = Duration::from_secs(20);

pub struct World {
    pub ops: Arc<Ops>,
    pub host: Arc<FakeHost>,
    pub connector: Arc<FakeConnector>,
    pub events: Receiver<Arc<Event>>,
    pub _dir: tempfile::TempDir,
}

pub fn root() -> Caller {
    Caller::unix_admin(0, Some(1))
}

/// A daemon's operations on one fake host (with a backup store), connected.
pub async fn world() -> World {
    world_on(&[URI]).await
}

/// A daemon's operations on fake hosts (the first is `World::host`), all connected.
pub async fn world_on(uris: &[&str]) -> World {
    let connector = FakeConnector::new();
    let host = connector.host(URI);
    let dir = tempfile::tempdir().unwrap();
    let shared = Arc::new(Shared {
        cache: RwLock::default(),
        bus: EventBus::default(),
        timing: Timing {
            call_timeout: Duration::from_secs(10),
            ..Timing::default()
        },
        connector: connector.clone(),
        backups: Some(Arc::new(uvmm_backup::BackupStore::new(
            dir.path().join("backups"),
        ))),
        retention: Default::default(),
        monitoring: Default::default(),
        list_render: Default::default(),
        demand: Default::default(),
    });
    let events = shared.bus.subscribe();
    let hosts = uris
        .iter()
        .map(|u| (u.to_string(), HostOrigin::Cmdline))
        .collect();
    let source = ConfigHostSource::new(hosts, dir.path().to_path_buf()).unwrap();
    let ops = Ops::new(shared.clone(), Box::new(source), vec![], Default::default());
    ops.hosts.start().unwrap();
    for _ in 0..200 {
        let connected = uris.iter().all(|u| {
            uvmm_daemon::hosts::show(&shared, u)
                .is_ok_and(|h| h.summary.status == HostStatus::Connected)
        });
        if connected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    World {
        ops: Arc::new(ops),
        host,
        connector,
        events,
        _dir: dir,
    }
}

impl World {
    pub fn vm(&self, uuid: &str) -> VmRef {
        VmRef {
            uuid: uuid.into(),
            host: None,
        }
    }

    /// A domain the daemon knows (added to the fake and read into the cache).
    pub async fn domain(&self, name: &str, state: VmState) -> String {
        // The worker hears of it like of a `virsh define` and reads it.
        let uuid = self.host.add_domain(name, state);
        for _ in 0..200 {
            if uvmm_daemon::vm::read::show(&self.ops.shared, &uuid, None).is_ok() {
                return uuid;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{name} never reached the cache");
    }

    /// The next task event of task `id` that satisfies `pred`.
    pub async fn task_event(&mut self, id: &str, pred: impl Fn(&uvmm_api::Task) -> bool) -> Event {
        let wait = async {
            loop {
                let e = self.events.recv().await.unwrap();
                if let Change::TaskProgress { task } | Change::TaskDone { task } = &e.change {
                    if task.id == id && pred(task) {
                        return (*e).clone();
                    }
                }
            }
        };
        tokio::time::timeout(LONG, wait).await.expect("task event")
    }
}

pub async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}
