//! The job seam and tasks on the in-memory fake hypervisor (`uvmm_libvirt::fake`): fast,
//! no libvirt. A call the fake holds half-way (`FakeHost::hold`) shows by ordering, not
//! by timing, what runs while a long job is in the middle of its libvirt call.

use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::broadcast::Receiver;
use uvmm_api::{
    Change, CloneVolumeRequest, Event, HostOrigin, HostStatus, TaskKind, TaskState, VmPatch,
};
use uvmm_daemon::bus::EventBus;
use uvmm_daemon::caller::{Caller, Peer};
use uvmm_daemon::config::Timing;
use uvmm_daemon::error::{Error, JobError, VmError};
use uvmm_daemon::hosts::shared::Shared;
use uvmm_daemon::hosts::source::ConfigHostSource;
use uvmm_daemon::jobs::{Target, VmRef};
use uvmm_daemon::ops::{Ops, Started};
use uvmm_daemon::storage::volumes::CloneVolume;
use uvmm_daemon::vm::edit::EditVm;
use uvmm_daemon::vm::lifecycle::VmAction;
use uvmm_daemon::vm::Edit;
use uvmm_libvirt::fake::{FakeConnector, FakeHost};
use uvmm_libvirt::JobProgress;
use uvmm_model::{Action, VmState};

const URI: &str = "qemu+tcp://fake1/system";
const GIB: u64 = 1 << 30;
/// Only a safety net: every wait below ends by an ordering the test makes.
const LONG: Duration = Duration::from_secs(20);

struct World {
    ops: Arc<Ops>,
    host: Arc<FakeHost>,
    connector: Arc<FakeConnector>,
    events: Receiver<Arc<Event>>,
    _dir: tempfile::TempDir,
}

fn root() -> Caller {
    Caller::unix_admin(0, Some(1))
}

/// A daemon's operations on one fake host (with a backup store), connected.
async fn world() -> World {
    world_on(&[URI]).await
}

/// A daemon's operations on fake hosts (the first is `World::host`), all connected.
async fn world_on(uris: &[&str]) -> World {
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
    fn vm(&self, uuid: &str) -> VmRef {
        VmRef {
            uuid: uuid.into(),
            host: None,
        }
    }

    /// A domain the daemon knows (added to the fake and read into the cache).
    async fn domain(&self, name: &str, state: VmState) -> String {
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
    async fn task_event(&mut self, id: &str, pred: impl Fn(&uvmm_api::Task) -> bool) -> Event {
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

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn clone(name: &str) -> CloneVolume {
    let req = CloneVolumeRequest { name: name.into() };
    CloneVolume {
        pool: "default".into(),
        source: "big.img".into(),
        name: req.name,
    }
}

/// A volume clone is a task on a thread of its own: while libvirt is in the middle of the
/// copy (the fake holds the call), `vm start` on the same host is answered, the task
/// reports its progress and is still running; released, it succeeds with the volume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_clone_does_not_hold_its_host() {
    let mut w = world().await;
    w.host.add_volume("default", "big.img", 10 * GIB, 8 * GIB);
    let vm = w.domain("web", VmState::Shutoff).await;
    let gate = w.host.hold("clone_volume");
    let started = w
        .ops
        .start(&root(), Target::Host(URI.into()), clone("copy.img"))
        .await
        .unwrap();
    let Started::Task(task, done) = started else {
        panic!("a clone must become a task");
    };
    assert_eq!(
        (task.kind, task.state, task.user.as_str()),
        (TaskKind::VolumeClone, TaskState::Running, "root")
    );
    assert!(gate.wait_entered(LONG), "the copy has begun");

    // The copy is held in libvirt; its host's worker answers a VM start meanwhile.
    let started = tokio::time::timeout(
        LONG,
        w.ops.run(&root(), w.vm(&vm), VmAction::new(Action::Start)),
    )
    .await
    .expect("vm start answered while the clone runs")
    .unwrap();
    assert_eq!(started.vm.unwrap().state, VmState::Running);
    assert_eq!(
        w.ops.tasks.get(&task.id).unwrap().state,
        TaskState::Running,
        "the clone is still in progress"
    );

    // Progress: what the copy has allocated of what the source holds.
    w.host.set_allocation("default", "copy.img", 2 * GIB);
    let progress = w.task_event(&task.id, |t| t.percent == Some(25.0)).await;
    assert_eq!(progress.host, URI);

    gate.open();
    let volume = tokio::time::timeout(LONG, done)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (volume.name.as_str(), volume.allocation),
        ("copy.img", 8 * GIB)
    );
    let end = w.task_event(&task.id, |t| t.state.ended()).await;
    let Change::TaskDone { task: ended } = end.change else {
        panic!("{end:?}")
    };
    assert_eq!(ended.state, TaskState::Succeeded);
    assert_eq!(ended.percent, Some(100.0));
    assert_eq!(ended.result.as_ref().unwrap()["name"], "copy.img");
    assert_eq!(
        w.ops
            .tasks
            .list()
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        [task.id.as_str()]
    );
}

/// libvirt cannot interrupt a copy: a cancelled clone runs to its end and is deleted; the
/// task ends cancelled, and a second cancel is refused (it has ended).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_clone_is_deleted_when_libvirt_is_done() {
    let mut w = world().await;
    w.host.add_volume("default", "big.img", 4 * GIB, GIB);
    let gate = w.host.hold("clone_volume");
    let Started::Task(task, done) = w
        .ops
        .start(&root(), Target::Host(URI.into()), clone("half.img"))
        .await
        .unwrap()
    else {
        panic!("a task");
    };
    assert!(gate.wait_entered(LONG));
    let asked = w.ops.tasks.cancel(&task.id).unwrap();
    assert_eq!(asked.state, TaskState::Cancelling);
    gate.open();
    let outcome = tokio::time::timeout(LONG, done).await.unwrap().unwrap();
    assert!(
        matches!(outcome, Err(Error::Job(JobError::Cancelled))),
        "{outcome:?}"
    );
    w.task_event(&task.id, |t| t.state == TaskState::Cancelled)
        .await;
    assert!(!w.host.volume_names("default").contains(&"half.img".into()));
    assert!(w.ops.tasks.cancel(&task.id).is_err(), "it has ended");
}

/// A managed save is aborted by libvirt when its task is cancelled; the VM keeps running.
/// Its progress comes from the domain's job (virDomainGetJobStats).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_managed_save_is_aborted() {
    let mut w = world().await;
    let vm = w.domain("db", VmState::Running).await;
    let gate = w.host.hold("action:suspend");
    let Started::Task(task, done) = w
        .ops
        .start(&root(), w.vm(&vm), VmAction::new(Action::Suspend))
        .await
        .unwrap()
    else {
        panic!("suspend must become a task");
    };
    assert_eq!(task.kind, TaskKind::VmSuspend);
    assert_eq!(task.uuid.as_deref(), Some(vm.as_str()));
    assert!(gate.wait_entered(LONG));
    w.host.set_job_progress(
        &vm,
        JobProgress {
            job_type: 1,
            data_processed: Some(3 * GIB),
            data_total: Some(4 * GIB),
            ..JobProgress::default()
        },
    );
    w.task_event(&task.id, |t| t.percent == Some(75.0)).await;
    w.ops.tasks.cancel(&task.id).unwrap();
    // The task's watcher asks libvirt to abort the job; then the save returns.
    let host = w.host.clone();
    wait_until("the abort", || {
        host.calls().iter().any(|c| c == "abort_job")
    })
    .await;
    gate.open();
    let outcome = tokio::time::timeout(LONG, done).await.unwrap().unwrap();
    assert!(
        matches!(outcome, Err(Error::Vm(VmError::Libvirt(_)))),
        "{outcome:?}"
    );
    let end = w
        .task_event(&task.id, |t| t.state == TaskState::Cancelled)
        .await;
    assert!(matches!(end.change, Change::TaskDone { .. }));
    assert_eq!(w.host.domain(&vm).unwrap().state, VmState::Running);
}

/// Waited for (what clients that do not know tasks get), a suspend answers as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waited_for_suspend_answers_with_the_vm() {
    let w = world().await;
    let vm = w.domain("db", VmState::Running).await;
    let r = w
        .ops
        .run(&root(), w.vm(&vm), VmAction::new(Action::Suspend))
        .await
        .unwrap();
    let vm = r.vm.unwrap();
    assert_eq!((vm.state, vm.suspended), (VmState::Shutoff, true));
}

/// Checks against the cache come before anything is queued: an action the state does not
/// allow never reaches the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_transition_never_reaches_the_host() {
    let w = world().await;
    let vm = w.domain("web", VmState::Shutoff).await;
    let before = w.host.calls().len();
    let r = w
        .ops
        .run(&root(), w.vm(&vm), VmAction::new(Action::Pause))
        .await;
    assert!(matches!(r, Err(Error::Vm(VmError::Transition(_)))), "{r:?}");
    let after = w.host.calls();
    assert!(
        !after[before..].iter().any(|c| c.starts_with("action")),
        "{:?}",
        &after[before..]
    );
}

/// A change through uvmm records its version with the caller as its user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_records_its_caller() {
    let w = world().await;
    let vm = w.domain("web", VmState::Shutoff).await;
    let tcp = Caller::new(
        Peer::Tcp("127.0.0.1:5000".parse().unwrap()),
        uvmm_auth::Principal::LegacyToken,
        uvmm_auth::Grants::admin(),
    );
    let patch = VmPatch {
        description: Some("by token".into()),
        ..VmPatch::default()
    };
    let job = Edit::new(None, EditVm { patch });
    let r = w.ops.run(&tcp, w.vm(&vm), job).await.unwrap();
    assert_eq!(r.vm.summary.description.as_deref(), Some("by token"));
    let store = w.ops.shared.backups.clone().unwrap();
    let versions = store.versions(&vm).unwrap();
    let last = versions.last().unwrap();
    assert_eq!(
        (last.cause.as_str(), last.user.as_deref()),
        ("edit", Some("token:api"))
    );
}

/// A host that goes away: jobs for it are answered with 503 at once, not queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_for_an_unavailable_host_are_refused_at_once() {
    let w = world().await;
    let vm = w.domain("web", VmState::Shutoff).await;
    w.host.go_down("fake: cable pulled");
    wait_until("the host to be unavailable", || {
        uvmm_daemon::hosts::show(&w.ops.shared, URI)
            .is_ok_and(|h| h.summary.status == HostStatus::Unavailable)
    })
    .await;
    let r = w
        .ops
        .run(&root(), w.vm(&vm), VmAction::new(Action::Start))
        .await;
    assert!(
        matches!(r, Err(Error::Job(JobError::HostUnavailable { .. }))),
        "{r:?}"
    );
    w.ops.shutdown();
}

/// A host source that changes the list on its own (as the LDAP directory will): the
/// registry connects the hosts it adds and drops those it removes; changes through the
/// API are refused when the source keeps its list elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_source_that_changes_on_its_own() {
    use std::sync::Mutex;
    use tokio::sync::mpsc;
    use uvmm_daemon::hosts::source::{HostChange, HostSource};
    use uvmm_daemon::hosts::HostError;

    struct Directory(Mutex<Option<mpsc::Receiver<HostChange>>>);
    impl HostSource for Directory {
        fn initial(&self) -> Result<Vec<(String, HostOrigin)>, HostError> {
            // (The world's own registry manages the first fake host.)
            Ok(vec![])
        }
        fn add(&self, _: &str) -> Result<(), HostError> {
            Err(HostError::Refused {
                why: "hosts are managed in the directory".into(),
            })
        }
        fn remove(&self, uri: &str) -> Result<(), HostError> {
            self.add(uri)
        }
        fn changes(&self) -> Option<mpsc::Receiver<HostChange>> {
            self.0.lock().unwrap().take()
        }
    }

    let w = world().await;
    let (tx, rx) = mpsc::channel(4);
    let shared = w.ops.shared.clone();
    let ops = Ops::new(
        shared.clone(),
        Box::new(Directory(Mutex::new(Some(rx)))),
        vec![],
        Default::default(),
    );
    ops.hosts.start().unwrap();
    let second = "qemu+tcp://fake2/system";
    tx.send(HostChange::Added {
        uri: second.into(),
        origin: HostOrigin::Config,
    })
    .await
    .unwrap();
    wait_until("the added host to connect", || {
        uvmm_daemon::hosts::show(&shared, second)
            .is_ok_and(|h| h.summary.status == HostStatus::Connected)
    })
    .await;
    tx.send(HostChange::Removed { uri: second.into() })
        .await
        .unwrap();
    wait_until("the removed host to go", || {
        uvmm_daemon::hosts::show(&shared, second).is_err()
    })
    .await;
    let refused = ops.hosts.add("qemu+tcp://fake3/system").await;
    assert!(
        matches!(refused, Err(Error::Host(HostError::Refused { .. }))),
        "{refused:?}"
    );
    ops.shutdown();
    w.ops.shutdown();
}

/// An evacuation moves at most `max_parallel` VMs at a time, each as a child task of its
/// own; cancelling it cancels the children under way, tries no further VM, and it ends
/// `cancelled` with its report. The target's checks are held (`host_info`), so which
/// children exist is decided by ordering, not timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evacuation_runs_at_most_n_children_and_cancels_them() {
    const URI2: &str = "qemu+tcp://fake2/system";
    let w = world_on(&[URI, URI2]).await;
    let mut vms = Vec::new();
    for i in 0..5 {
        vms.push(w.domain(&format!("vm{i}"), VmState::Shutoff).await);
    }
    let gate = w.connector.host(URI2).hold("host_info");
    let req = uvmm_api::EvacuateRequest {
        max_parallel: Some(3),
        ..Default::default()
    };
    let job = uvmm_daemon::vm::evacuate::Evacuate::new(req, Default::default());
    let Started::Task(parent, done) = w
        .ops
        .start(&root(), Target::Host(URI.into()), job)
        .await
        .unwrap()
    else {
        panic!("an evacuation is a task");
    };
    assert!(gate.wait_entered(LONG));
    let children = |w: &World| -> Vec<uvmm_api::Task> {
        w.ops
            .tasks
            .list()
            .into_iter()
            .filter(|t| t.parent.as_deref() == Some(parent.id.as_str()))
            .collect()
    };
    wait_until("three children", || children(&w).len() == 3).await;
    // All held in the target's check: no fourth may start while they run (the default
    // would be 2).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running = children(&w);
    assert_eq!(running.len(), 3, "{running:?}");
    for c in &running {
        assert_eq!(
            (c.kind, c.state, c.host.as_str()),
            (TaskKind::VmMigrate, TaskState::Running, URI)
        );
        assert!(vms.contains(c.uuid.as_ref().unwrap()));
    }
    w.ops.tasks.cancel(&parent.id).unwrap();
    // The parent passes the cancel on to its running children.
    wait_until("the children to be cancelled", || {
        children(&w)
            .iter()
            .all(|c| c.state == TaskState::Cancelling)
    })
    .await;
    gate.open();
    let report = tokio::time::timeout(LONG, done)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((report.max_parallel, report.vms.len()), (3, 5));
    let tried: Vec<_> = report.vms.iter().filter(|v| v.task.is_some()).collect();
    assert_eq!(tried.len(), 3, "{report:?}");
    for v in &tried {
        assert_ne!(v.outcome, "skipped", "{v:?}");
    }
    let skipped: Vec<_> = report
        .vms
        .iter()
        .filter(|v| v.outcome == "skipped")
        .collect();
    assert_eq!((skipped.len(), report.skipped), (2, 2), "{report:?}");
    assert!(skipped.iter().all(|v| v
        .message
        .as_deref()
        .unwrap_or_default()
        .contains("cancelled")));
    assert_eq!(children(&w).len(), 3, "no child after the cancel");
    let ended = w.ops.tasks.get(&parent.id).unwrap();
    assert_eq!(ended.state, TaskState::Cancelled, "{ended:?}");
    assert!(ended.result.is_some(), "the report is kept");
    for c in children(&w) {
        assert!(c.state.ended(), "{c:?}");
    }
}
