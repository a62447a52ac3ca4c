//! Backups of VM definitions and restore.

use super::extract::*;
use super::AppState;
use crate::backup::{self, restore::Restore};
use crate::caller::Caller;
use crate::error::{BackupError, Error, VmError};
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use uvmm_api::*;
use uvmm_backup::store::BackupError as StoreError;

/// `GET /api/v1/backups` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BackupQuery {
    /// Case-insensitive glob on the VM name, e.g. `*winxp*`.
    pub q: Option<String>,
}

/// `GET /api/v1/backups/{vm}/diff` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    pub from: u32,
    pub to: u32,
}

#[utoipa::path(get, path = "/api/v1/backups", params(BackupQuery), responses((status = 200, body = [BackupSummary])))]
pub(super) async fn list_backups(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<BackupQuery>,
) -> Result<Json<Vec<BackupSummary>>, Error> {
    Ok(Json(backup::list(&s.ops.shared, q.q.as_deref())?))
}

#[utoipa::path(get, path = "/api/v1/backups/{vm}", params(("vm" = String, Path, description = "VM name or UUID")),
    responses((status = 200, body = BackupDetail), (status = 404, body = ErrorBody)))]
pub(super) async fn show_backup(
    State(s): State<AppState>,
    ApiPath(vm): ApiPath<String>,
) -> Result<Json<BackupDetail>, Error> {
    Ok(Json(backup::show(&s.ops.shared, &vm)?))
}

#[utoipa::path(get, path = "/api/v1/backups/{vm}/versions/{version}", params(("vm" = String, Path), ("version" = u32, Path)),
    responses((status = 200, body = BackupVersion), (status = 404, body = ErrorBody)))]
pub(super) async fn backup_version(
    State(s): State<AppState>,
    ApiPath((vm, version)): ApiPath<(String, u32)>,
) -> Result<Json<BackupVersion>, Error> {
    Ok(Json(backup::version(&s.ops.shared, &vm, Some(version))?))
}

#[utoipa::path(get, path = "/api/v1/backups/{vm}/diff", params(("vm" = String, Path), DiffQuery),
    responses((status = 200, content_type = "text/plain", body = String, description = "unified diff")))]
pub(super) async fn backup_diff(
    State(s): State<AppState>,
    ApiPath(vm): ApiPath<String>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> Result<impl IntoResponse, Error> {
    let diff = backup::diff(&s.ops.shared, &vm, q.from, q.to)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        diff,
    ))
}

#[utoipa::path(post, path = "/api/v1/backups/prune", responses((status = 200, body = PruneResponse)))]
pub(super) async fn prune_backups(State(s): State<AppState>) -> Result<Json<PruneResponse>, Error> {
    Ok(Json(backup::prune(&s.ops.shared)?))
}

#[utoipa::path(post, path = "/api/v1/restore", request_body = RestoreRequest,
    responses((status = 200, body = RestoreReport),
        (status = 403, body = ErrorBody, description = "the caller's grants do not cover the version's VM or the VM it is restored as (`restore`)"),
        (status = 404, body = ErrorBody, description = "no such backup or host (also one outside the caller's scope)"),
        (status = 409, body = ErrorBody, description = "a check failed; the message names every failure")))]
pub(super) async fn restore(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RestoreRequest>,
) -> Result<Json<RestoreReport>, Error> {
    let p = uvmm_auth::Permission::Restore;
    let job = Restore::plan(&s.ops.shared, req).map_err(|e| match e {
        // The UUIDs of other VMs' backups are not for a caller limited to some.
        Error::Backup(BackupError::Store(StoreError::Ambiguous { name, .. }))
            if !caller.unrestricted(p) =>
        {
            VmError::conflict(format!(
                "'{name}' matches backups of several VMs: use the UUID"
            ))
            .into()
        }
        e => e,
    })?;
    {
        let cache = s.ops.shared.read();
        if let Some((host, name)) = job.from() {
            caller.authorize_backup(&cache, p, host, name)?;
        }
        let (host, name) = job.onto();
        caller.authorize_new(&cache, p, host, &name)?;
    }
    s.ops.run(&caller, job.target(), job).await.map(Json)
}
