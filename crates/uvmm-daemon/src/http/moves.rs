//! Moving VMs between hosts: migrate.

use super::extract::*;
use super::AppState;
use crate::caller::Caller;
use crate::error::Error;
use crate::jobs::VmRef;
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
        (status = 404, body = ErrorBody, description = "no such VM or target host"),
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
    let job = || MigrateVm::new(req.clone(), s.ops.peers.clone());
    s.ops
        .run(&caller, vm.clone(), CheckMigration(job()))
        .await?;
    let answer = |r: MigrateResult| Json(r).into_response();
    super::tasks::start(&s, &caller, vm, job(), p.wait, answer).await
}
