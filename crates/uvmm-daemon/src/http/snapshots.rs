//! Snapshots of a VM, renaming and cloning it.

use super::extract::*;
use super::vms::{ActionParams, HostParam};
use super::AppState;
use crate::caller::Caller;
use crate::error::Error;
use crate::vm::clone::CloneVm;
use crate::vm::snapshots::*;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use uvmm_api::*;

#[utoipa::path(get, path = "/api/v1/vms/{uuid}/snapshots", params(("uuid" = String, Path), HostParam),
    responses((status = 200, body = [Snapshot], description = "tree order: parents first, `depth` and `parent` give the tree, `current` the point the VM is at"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 501, body = ErrorBody, description = "the host has no snapshots"), (status = 502, body = ErrorBody, description = "libvirt failed")))]
pub(super) async fn list_snapshots(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<HostParam>,
) -> Result<Json<Vec<Snapshot>>, Error> {
    s.ops
        .run(&caller, p.vm(uuid), ListSnapshots)
        .await
        .map(Json)
}

/// Of a running VM an internal snapshot includes its memory (libvirt cannot leave it out)
/// and runs as a task (`?wait=false`: 202); cancelling it deletes the snapshot once made.
#[utoipa::path(post, path = "/api/v1/vms/{uuid}/snapshots", params(("uuid" = String, Path), ActionParams), request_body = CreateSnapshotRequest,
    responses((status = 201, body = Snapshot),
        (status = 202, body = Task, description = "with `wait=false`, for a running VM: the task"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "a transient VM, memory of a VM that does not run, a name in use, an internal snapshot of a non-qcow2 disk"),
        (status = 501, body = ErrorBody, description = "the host or the VM's disks cannot do this"), (status = 502, body = ErrorBody, description = "libvirt failed")))]
pub(super) async fn create_snapshot(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<ActionParams>,
    ApiJson(req): ApiJson<CreateSnapshotRequest>,
) -> Result<Response, Error> {
    let vm = HostParam { host: p.host }.vm(uuid);
    let answer = |r: Snapshot| (StatusCode::CREATED, Json(r)).into_response();
    super::tasks::start(&s, &caller, vm, CreateSnapshot::new(req), p.wait, answer).await
}

/// A task that cannot be cancelled (`cancel: none`): `?wait=false` answers 202 at once.
#[utoipa::path(post, path = "/api/v1/vms/{uuid}/snapshots/{name}/revert", params(("uuid" = String, Path), ("name" = String, Path), ActionParams),
    responses((status = 200, body = VmChangeResponse),
        (status = 202, body = Task, description = "with `wait=false`: the task"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 501, body = ErrorBody, description = "an external snapshot (libvirt 9.0 cannot revert to those)"),
        (status = 502, body = ErrorBody, description = "libvirt failed")))]
pub(super) async fn revert_snapshot(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((uuid, name)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<ActionParams>,
) -> Result<Response, Error> {
    let vm = HostParam { host: p.host }.vm(uuid);
    let answer = |r: VmChangeResponse| Json(r).into_response();
    super::tasks::start(&s, &caller, vm, RevertSnapshot { name }, p.wait, answer).await
}

/// A task that cannot be cancelled (`cancel: none`; libvirt merges an external snapshot
/// itself): `?wait=false` answers 202 at once.
#[utoipa::path(delete, path = "/api/v1/vms/{uuid}/snapshots/{name}", params(("uuid" = String, Path), ("name" = String, Path), ActionParams),
    responses((status = 200, body = SnapshotDeleted),
        (status = 202, body = Task, description = "with `wait=false`: the task"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "refused: it cannot be deleted without losing data (nothing was changed)"),
        (status = 501, body = ErrorBody, description = "the host or the VM's disks cannot do this"), (status = 502, body = ErrorBody, description = "libvirt failed")))]
pub(super) async fn delete_snapshot(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((uuid, name)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<ActionParams>,
) -> Result<Response, Error> {
    let vm = HostParam { host: p.host }.vm(uuid);
    let answer = |r: SnapshotDeleted| Json(r).into_response();
    super::tasks::start(&s, &caller, vm, DeleteSnapshot { name }, p.wait, answer).await
}

#[utoipa::path(post, path = "/api/v1/vms/{uuid}/rename", params(("uuid" = String, Path), HostParam), request_body = RenameRequest,
    responses((status = 200, body = VmChangeResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not shut off, transient, or the name is in use on its host"),
        (status = 501, body = ErrorBody, description = "the host or the VM's disks cannot do this"), (status = 502, body = ErrorBody, description = "libvirt failed")))]
pub(super) async fn rename_vm(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<HostParam>,
    ApiJson(req): ApiJson<RenameRequest>,
) -> Result<Json<VmChangeResponse>, Error> {
    let job = RenameVm { name: req.name };
    s.ops.run(&caller, p.vm(uuid), job).await.map(Json)
}

/// A shut-off VM copied (every writable disk) or linked (qcow2 overlays on its images) on
/// its host, with a new name, UUID and MACs. A task (`?wait=false`: 202); cancelling
/// deletes the images made once the copy under way has finished. With `target_host` (full
/// copies only; also needs `hosts`) the clone is then moved offline to that host with its
/// disks and its images on the source's host are deleted: it ends on one host or none.
#[utoipa::path(post, path = "/api/v1/vms/{uuid}/clone", params(("uuid" = String, Path), ActionParams), request_body = CloneRequest,
    responses((status = 201, body = VmChangeResponse, description = "the new VM; notes list its images and MACs"),
        (status = 202, body = Task, description = "with `wait=false`: the task"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "the caller's grants do not cover the clone's name on its host (`create`), or with `target_host` not `hosts` on both hosts"),
        (status = 409, body = ErrorBody, description = "not shut off, the name is in use, a disk is not a pool volume, a linked clone to another host, or `migration_refused`: the target cannot take it"),
        (status = 501, body = ErrorBody, description = "the host or the VM's disks cannot do this"), (status = 502, body = ErrorBody, description = "libvirt failed")))]
pub(super) async fn clone_vm(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<ActionParams>,
    ApiJson(req): ApiJson<CloneRequest>,
) -> Result<Response, Error> {
    use uvmm_auth::Permission::{Create, Hosts};
    let vm = HostParam { host: p.host }.vm(uuid);
    {
        // Made on the source's host; with a target host also moved there.
        let cache = s.ops.shared.read();
        let name = Some(req.name.as_str());
        caller.authorize_onto(&cache, Create, &vm, None, name)?;
        if let Some(to) = req.target_host.as_deref() {
            caller.authorize_onto(&cache, Hosts, &vm, None, name)?;
            caller.authorize_onto(&cache, Create, &vm, Some(to), name)?;
            caller.authorize_onto(&cache, Hosts, &vm, Some(to), name)?;
        }
    }
    let answer = |r: VmChangeResponse| (StatusCode::CREATED, Json(r)).into_response();
    super::tasks::start(&s, &caller, vm, CloneVm::new(req), p.wait, answer).await
}
