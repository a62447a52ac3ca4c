//! The second half of a clone to another host (`CloneRequest::target_host`): the new,
//! shut-off clone made on the source's host moves there offline with the existing
//! migration path (`uvmm_libvirt::migrate::migrate_offline`: disks copied, none where the
//! pool is shared), then the clone's own images left on the source's host are deleted —
//! only images this task made, never the source VM's. Any failure or cancel takes the
//! clone off the source's host again with its images: it ends on one host or on none.

use crate::backup::record::{record_definition, Record};
use crate::error::Error;
use crate::jobs::tasks::Watch;
use crate::jobs::{JobCtx, JobError};
use crate::vm::migrate::MigrateError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use uvmm_api::VmChangeResponse;
use uvmm_backup::Cause;
use uvmm_libvirt::migrate::{migrate_offline, CopyStorage, MigrationError, MigrationEvent};
use uvmm_libvirt::{Hypervisor, VolumeInfo};

/// Take the clone off the source's host and delete the images made for it.
pub fn discard(ctx: &JobCtx<'_>, uuid: &str, made: &[VolumeInfo]) {
    if let Err(e) = ctx.hv.undefine(uuid) {
        tracing::error!(%uuid, "cannot undefine a clone that did not reach its host: {e}");
    }
    delete(ctx.hv, made, |_| true);
    ctx.refresh(uuid);
    ctx.refresh_pools();
}

fn delete(hv: &dyn Hypervisor, made: &[VolumeInfo], which: impl Fn(&VolumeInfo) -> bool) {
    for v in made.iter().filter(|v| which(v)) {
        if let Err(e) = hv.delete_volume(&v.pool, &v.def.name) {
            tracing::error!(pool = %v.pool, volume = %v.def.name, "cannot delete a clone's image: {e}");
        }
    }
}

/// Move the clone `uuid` (defined shut off on the job's host, its images `made`) to `to`.
pub fn move_clone(
    ctx: &JobCtx<'_>,
    to: &str,
    uuid: &str,
    made: &[VolumeInfo],
    mut notes: Vec<String>,
) -> Result<VmChangeResponse, Error> {
    let ignore: uvmm_libvirt::EventSink = Arc::new(|_| {});
    let target = match ctx.shared.connector.connect(to, ignore) {
        Ok(t) => t,
        Err(e) => {
            discard(ctx, uuid, made);
            return Err(MigrateError::Refused(format!(
                "cannot connect to {to}: {}",
                crate::error::client_safe(&e.message)
            ))
            .into());
        }
    };
    let from = ctx.uri().to_string();
    // The cache shows the clone on exactly one host while it moves (`cache/moving.rs`).
    ctx.shared
        .update(|c| (c.begin_move(uuid, &from, to), vec![]));
    let cancel = AtomicBool::new(false);
    let abort = || cancel.store(true, Ordering::SeqCst);
    let mut events = |e: MigrationEvent| {
        if let MigrationEvent::CopyProgress(_, done, total) = e {
            ctx.report(done, total, None);
        }
    };
    let watch = Watch {
        poll: &|| None,
        abort: Some(&abort),
    };
    let moved = ctx.watch(watch, || {
        migrate_offline(
            ctx.hv,
            target.as_ref(),
            uuid,
            CopyStorage::Auto,
            &mut events,
            &cancel,
        )
    });
    let outcome: Result<(), Error> = match moved {
        Ok(r) => {
            // The copies' sources are this clone's images (made by this task): delete them.
            let kept = |v: &VolumeInfo| {
                r.source_volumes_kept
                    .iter()
                    .any(|(p, n)| *p == v.pool && *n == v.def.name)
            };
            delete(ctx.hv, made, kept);
            notes.extend(r.plan.notes);
            if !r.copied_volumes.is_empty() {
                notes.push(format!(
                    "images copied to {to} and deleted on {from}: {}",
                    r.copied_volumes
                        .iter()
                        .map(|(p, v)| format!("{p}/{v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            Ok(())
        }
        Err(e) => {
            // migrate_offline undid the target's side: the clone is on the source only.
            discard(ctx, uuid, made);
            Err(match e {
                MigrationError::Aborted { .. } => JobError::Cancelled.into(),
                MigrationError::Refused(_) => MigrateError::Refused(e.to_string()).into(),
                e => MigrateError::Failed(format!(
                    "the clone did not reach {to} and was deleted: {}",
                    crate::error::client_safe(&e.to_string())
                ))
                .into(),
            })
        }
    };
    let read = |hv: &dyn Hypervisor| hv.domain(uuid).ok();
    let (src, dst) = (read(ctx.hv), read(target.as_ref()));
    ctx.shared.update(|c| ((), c.end_move(uuid, src, dst)));
    ctx.refresh_pools();
    outcome?;
    let rec = Record {
        persistent: Some(true),
        user: Some(ctx.caller.user()),
        ..Record::seen(uuid, Cause::Create)
    };
    let warnings = match record_definition(ctx.shared, to, target.as_ref(), rec) {
        Ok(_) => vec![],
        Err(e) => vec![format!("the backup of the clone failed: {e}")],
    };
    tracing::info!(%uuid, %from, %to, user = ctx.caller.user(), "VM cloned to another host");
    Ok(ctx.changed_on(to, uuid, notes, warnings)?)
}
