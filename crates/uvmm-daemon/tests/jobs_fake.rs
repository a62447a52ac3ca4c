//! The job seam and tasks on the in-memory fake hypervisor (`uvmm_libvirt::fake`): fast,
//! no libvirt. A call the fake holds half-way (`FakeHost::hold`) shows by ordering, not
//! by timing, what runs while a long job is in the middle of its libvirt call.

use uvmm_api::{Change, CloneVolumeRequest, HostOrigin, HostStatus, TaskKind, TaskState, VmPatch};
use uvmm_daemon::caller::{Caller, Peer};
use uvmm_daemon::error::{Error, JobError, VmError};
use uvmm_daemon::jobs::Target;
use uvmm_daemon::ops::{Ops, Started};
use uvmm_daemon::storage::volumes::CloneVolume;
use uvmm_daemon::vm::edit::EditVm;
use uvmm_daemon::vm::lifecycle::VmAction;
use uvmm_daemon::vm::Edit;
use uvmm_libvirt::JobProgress;
use uvmm_model::{Action, VmState};

mod fake_world;
use fake_world::*;

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

/// A definition uvmm recorded that the host then only re-indents (libvirt re-serialising
/// `<metadata>` after a notes change) is not an `external` change: the notes edit stays
/// recorded once, as `edit`. A real change made outside uvmm still is `external`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reindented_definition_is_no_external_change_but_a_real_one_is() {
    let w = world().await;
    let vm = w.domain("web", VmState::Shutoff).await;
    let store = w.ops.shared.backups.clone().unwrap();
    let causes = || -> Vec<String> {
        store
            .versions(&vm)
            .unwrap()
            .into_iter()
            .map(|v| v.cause)
            .collect()
    };
    let notes = |text: &str| {
        let patch = VmPatch {
            description: Some(text.into()),
            contact: Some("ops@example.com".into()),
            ..VmPatch::default()
        };
        Edit::new(None, EditVm { patch })
    };
    w.ops.run(&root(), w.vm(&vm), notes("first")).await.unwrap();
    let recorded = causes();
    assert_eq!(recorded.last().map(String::as_str), Some("edit"));

    // The host re-indents the definition: a line and an indentation between every tag.
    let xml = w.host.domain(&vm).unwrap().xml;
    let reindented = xml.replace("><", ">\n    <");
    assert_ne!(reindented, xml);
    w.host.rewrite_definition(&vm, &reindented);
    // Every job on the VM first compares its definition with the one seen last; the same
    // notes again change nothing.
    w.ops.run(&root(), w.vm(&vm), notes("first")).await.unwrap();
    assert_eq!(causes(), recorded, "a re-indent is no version");
    // The next edit is recorded once, as what it is.
    w.ops
        .run(&root(), w.vm(&vm), notes("second"))
        .await
        .unwrap();
    let mut want = recorded.clone();
    want.push("edit".into());
    assert_eq!(causes(), want);

    // A real change outside uvmm (more memory): `external`, before the job's own version.
    let xml = w.host.domain(&vm).unwrap().xml;
    let bigger = xml.replace("1048576</memory>", "2097152</memory>");
    assert_ne!(bigger, xml);
    w.host.rewrite_definition(&vm, &bigger);
    w.ops.run(&root(), w.vm(&vm), notes("third")).await.unwrap();
    want.extend(["external".into(), "edit".into()]);
    assert_eq!(causes(), want);
}
