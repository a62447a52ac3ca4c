//! Moving VMs between hosts: migrate, evacuate, failover.

use super::extract::*;
use super::tasks::WaitParam;
use super::vms::HostParam;
use super::AppState;
use crate::caller::Caller;
use crate::error::Error;
use crate::jobs::{Target, VmRef};
use crate::vm::evacuate::Evacuate;
use crate::vm::failover::Failover;
use crate::vm::migrate::{CheckMigration, MigrateVm};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use uvmm_api::*;

/// `POST /api/v1/vms/{uuid}/migrate` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MigrateParams {
    /// Host id or URI of the VM; needed only when the UUID exists on several hosts.
    pub host: Option<String>,
    /// `true` (default): answer when the VM has moved; `false`: `202 Accepted` with the
    /// task at once (after the checks).
    pub wait: Option<bool>,
}

/// The checks run first (a refusal is a 409 with every reason, and nothing moved); the
/// move itself is a task whose cancel aborts it (the VM keeps running on the source).
#[utoipa::path(post, path = "/api/v1/vms/{uuid}/migrate", params(("uuid" = String, Path), MigrateParams), request_body = MigrateRequest,
    responses((status = 200, body = MigrateResult),
        (status = 202, body = Task, description = "with `wait=false`: the task (`Location: /api/v1/tasks/{id}`)"),
        (status = 403, body = ErrorBody, description = "the caller's grants do not cover the VM's name on the target host (`hosts`)"),
        (status = 404, body = ErrorBody, description = "no such VM or target host (also one outside the caller's scope)"),
        (status = 409, body = ErrorBody, description = "`migration_refused`: the target cannot take the VM (every reason listed), or the VM's state does not allow it"),
        (status = 502, body = ErrorBody, description = "`migration_failed`: it started and failed; the message says where the VM is"),
        (status = 503, body = ErrorBody)))]
pub(super) async fn migrate_vm(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<MigrateParams>,
    ApiJson(req): ApiJson<MigrateRequest>,
) -> Result<Response, Error> {
    let vm = VmRef { uuid, host: p.host };
    caller.authorize_onto(
        &s.ops.shared.read(),
        uvmm_auth::Permission::Hosts,
        &vm,
        Some(&req.to),
        None,
    )?;
    let job = || MigrateVm::new(req.clone(), s.ops.peers.clone());
    s.ops
        .run(&caller, vm.clone(), CheckMigration(job()))
        .await?;
    let answer = |r: MigrateResult| Json(r).into_response();
    super::tasks::start(&s, &caller, vm, job(), p.wait, answer).await
}

/// Every VM of the host, one after the other: running ones live, shut-off ones offline,
/// each to the target with the most free memory that passes the checks. One task; its
/// result has every VM's outcome. Cancelling aborts the migration under way (that VM stays)
/// and moves no further VM.
#[utoipa::path(post, path = "/api/v1/hosts/{id}/evacuate", params(("id" = String, Path), WaitParam), request_body = EvacuateRequest,
    responses((status = 200, body = EvacuateResult),
        (status = 202, body = Task, description = "with `wait=false`: the task (`Location: /api/v1/tasks/{id}`)"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "no target host"),
        (status = 502, body = ErrorBody, description = "libvirt failed before any VM moved"),
        (status = 503, body = ErrorBody)))]
pub(super) async fn evacuate_host(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(host): ApiPath<String>,
    ApiQuery(p): ApiQuery<WaitParam>,
    ApiJson(req): ApiJson<EvacuateRequest>,
) -> Result<Response, Error> {
    let job = Evacuate::new(req, s.ops.peers.clone());
    let answer = |r: EvacuateResult| Json(r).into_response();
    super::tasks::start(&s, &caller, Target::Host(host), job, p.wait, answer).await
}

/// Define the VM of a host that is down on another host, from its last backup, when every
/// disk image is visible there (shared storage). Needs `force: true`; refused while the
/// VM's host is reachable. The VM is defined shut off; start it yourself.
#[utoipa::path(post, path = "/api/v1/vms/{uuid}/failover", params(("uuid" = String, Path), HostParam), request_body = FailoverRequest,
    responses((status = 200, body = FailoverResult),
        (status = 404, body = ErrorBody, description = "no such VM or target host, or no backup"),
        (status = 409, body = ErrorBody, description = "its host is reachable, `force` is missing, or `migration_refused`: a disk is not visible on the target or it has the VM"),
        (status = 502, body = ErrorBody, description = "`migration_failed`: libvirt failed to define it"),
        (status = 503, body = ErrorBody, description = "the target is unavailable")))]
pub(super) async fn failover_vm(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<HostParam>,
    ApiJson(req): ApiJson<FailoverRequest>,
) -> Result<Json<FailoverResult>, Error> {
    let to = Target::Host(req.to.clone());
    let job = Failover::new(uuid, p.host, req);
    s.ops.run(&caller, to, job).await.map(Json)
}
