//! Moving VMs on the in-memory fake hypervisor: an evacuation's child tasks, its bound
//! and its cancel; a migration the target refuses; a source that dies midway. Ordering,
//! not timing: the fake holds a call half-way (`FakeHost::hold`).

mod fake_world;
use fake_world::*;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use uvmm_api::{TaskKind, TaskState};
use uvmm_daemon::jobs::Target;
use uvmm_daemon::ops::Started;
use uvmm_model::VmState;

/// An evacuation moves at most `max_parallel` VMs at a time, each as a child task of its
/// own; cancelling it cancels the children under way, tries no further VM, and it ends
/// `cancelled` with its report. The target's checks are held (`host_info`), so which
/// children exist is decided by ordering, not timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evacuation_runs_at_most_n_children_and_cancels_them() {
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

const URI2: &str = "qemu+tcp://fake2/system";

fn offline_to(to: &str) -> uvmm_daemon::vm::migrate::MigrateVm {
    let req = uvmm_api::MigrateRequest {
        to: to.into(),
        offline: true,
        ..Default::default()
    };
    uvmm_daemon::vm::migrate::MigrateVm::new(req, Default::default())
}

/// Which fake hosts define `uuid`, and where the cache lists it.
fn whereabouts(w: &World, uuid: &str) -> (Vec<&'static str>, Vec<String>) {
    let defined = [URI, URI2]
        .into_iter()
        .filter(|u| w.connector.host(u).domain(uuid).is_some())
        .collect();
    let listed = uvmm_daemon::vm::read::show(&w.ops.shared, uuid, None)
        .map(|d| vec![d.summary.host.clone()])
        .unwrap_or_default();
    (defined, listed)
}

/// The target refuses the connection the move needs: a 409 `migration_refused` before
/// anything moved; the VM is defined and listed on its host only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_the_target_refuses_moves_nothing() {
    let w = world_on(&[URI, URI2]).await;
    let vm = w.domain("web", VmState::Shutoff).await;
    w.connector.refuse_connects.store(1, Ordering::SeqCst);
    let check = uvmm_daemon::vm::migrate::CheckMigration(offline_to(URI2));
    let err = w.ops.run(&root(), w.vm(&vm), check).await.unwrap_err();
    let body = uvmm_daemon::http::error::body(&err);
    assert_eq!(body.error.code, "migration_refused", "{err}");
    assert!(body.error.message.contains("cannot connect"), "{err}");
    assert_eq!(whereabouts(&w, &vm), (vec![URI], vec![URI.to_string()]));
    // With the target back, the same move goes through (the refusal was the target's).
    let moved = w
        .ops
        .run(&root(), w.vm(&vm), offline_to(URI2))
        .await
        .unwrap();
    assert_eq!((moved.from.as_str(), moved.to.as_str()), (URI, URI2));
    assert_eq!(whereabouts(&w, &vm), (vec![URI2], vec![URI2.to_string()]));
}

/// The source host dies while the target defines the VM: the source cannot undefine it,
/// so the target's copy is taken away again; the VM is defined on the source only, and
/// the task fails saying where it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_dies_midway_keeps_the_vm() {
    let w = world_on(&[URI, URI2]).await;
    let vm = w.domain("db", VmState::Shutoff).await;
    let gate = w.connector.host(URI2).hold("define");
    let Started::Task(task, done) = w
        .ops
        .start(&root(), w.vm(&vm), offline_to(URI2))
        .await
        .unwrap()
    else {
        panic!("a migration is a task");
    };
    assert_eq!(task.kind, TaskKind::VmMigrate);
    assert!(gate.wait_entered(LONG));
    w.host.go_down("power cut");
    gate.open();
    let err = tokio::time::timeout(LONG, done)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    let body = uvmm_daemon::http::error::body(&err);
    assert_eq!(body.error.code, "migration_failed", "{err}");
    let says = &body.error.message;
    assert!(
        says.contains("on the source: unreachable") && says.contains("on the target: not defined"),
        "{says}"
    );
    let (defined, _) = whereabouts(&w, &vm);
    assert_eq!(defined, [URI], "defined on the source only");
    let ended = w.ops.tasks.get(&task.id).unwrap();
    assert_eq!(ended.state, TaskState::Failed);
    assert_eq!(ended.error.unwrap().message, body.error.message);
}

/// The hosts that define a domain called `name` (libvirt's view, not the cache's).
fn defined_as(w: &World, name: &str) -> Vec<&'static str> {
    use uvmm_libvirt::Connector;
    [URI, URI2]
        .into_iter()
        .filter(|u| {
            let hv = w.connector.connect(u, Arc::new(|_| {})).unwrap();
            hv.list_domains().unwrap().iter().any(|d| d.name == name)
        })
        .collect()
}

fn clone_to(name: &str, to: &str) -> uvmm_daemon::vm::clone::CloneVm {
    uvmm_daemon::vm::clone::CloneVm::new(uvmm_api::CloneRequest {
        name: name.into(),
        target_host: Some(to.into()),
        ..Default::default()
    })
}

/// A clone to another host cancelled while it is being defined on the source's host is
/// taken off that host again (it never reaches the target); without the cancel the same
/// clone ends on the target only. The source VM stays where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_to_another_host_ends_on_one_host_or_none() {
    let w = world_on(&[URI, URI2]).await;
    let vm = w.domain("web", VmState::Shutoff).await;
    let gate = w.connector.host(URI).hold("define");
    let Started::Task(task, done) = w
        .ops
        .start(&root(), w.vm(&vm), clone_to("web-c", URI2))
        .await
        .unwrap()
    else {
        panic!("a clone is a task");
    };
    assert_eq!(task.kind, TaskKind::VmClone);
    assert!(gate.wait_entered(LONG));
    w.ops.tasks.cancel(&task.id).unwrap();
    gate.open();
    let outcome = tokio::time::timeout(LONG, done).await.unwrap().unwrap();
    assert!(outcome.is_err(), "cancelled: {outcome:?}");
    assert_eq!(
        w.ops.tasks.get(&task.id).unwrap().state,
        TaskState::Cancelled
    );
    assert!(defined_as(&w, "web-c").is_empty(), "the clone is gone");
    assert_eq!(whereabouts(&w, &vm), (vec![URI], vec![URI.to_string()]));

    let made = w
        .ops
        .run(&root(), w.vm(&vm), clone_to("web-c", URI2))
        .await
        .unwrap();
    assert_eq!(defined_as(&w, "web-c"), [URI2]);
    let uuid = made.vm.summary.uuid.clone();
    wait_until("the clone listed on the target", || {
        whereabouts(&w, &uuid) == (vec![URI2], vec![URI2.to_string()])
    })
    .await;
    assert_eq!(whereabouts(&w, &vm), (vec![URI], vec![URI.to_string()]));

    // The name is taken on the target now: refused before anything is made.
    let err = w
        .ops
        .run(&root(), w.vm(&vm), clone_to("web-c", URI2))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exists on"), "{err}");
    assert_eq!(
        defined_as(&w, "web-c"),
        [URI2],
        "nothing new on either host"
    );
}
