//! Storage pools and volumes.

use super::extract::*;
use super::tasks::WaitParam;
use super::AppState;
use crate::caller::Caller;
use crate::error::Error;
use crate::http::error::RequestError;
use crate::jobs::Target;
use crate::storage::{self, pools::*, volumes::*};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use uvmm_api::*;

/// `GET /api/v1/pools` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PoolQuery {
    /// Only pools of this host (id or URI).
    pub host: Option<String>,
}

/// `DELETE /api/v1/hosts/{id}/pools/{pool}` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PoolDeleteParams {
    /// Also remove the pool's storage (e.g. its empty directory).
    #[serde(default)]
    pub delete_storage: bool,
}

#[utoipa::path(get, path = "/api/v1/pools", params(PoolQuery), responses((status = 200, body = [PoolSummary])))]
pub(super) async fn list_pools(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PoolQuery>,
) -> Result<Json<Vec<PoolSummary>>, Error> {
    let mut pools = storage::list_pools(&s.ops.shared, q.host.as_deref())?;
    pools.retain(|p| caller.sees(&p.host_id, &p.host, None));
    Ok(Json(pools))
}

#[utoipa::path(get, path = "/api/v1/hosts/{id}/pools/{pool}", params(("id" = String, Path), ("pool" = String, Path)),
    responses((status = 200, body = PoolDetail), (status = 404, body = ErrorBody)))]
pub(super) async fn show_pool(
    State(s): State<AppState>,
    ApiPath((id, pool)): ApiPath<(String, String)>,
) -> Result<Json<PoolDetail>, Error> {
    storage::pool(&s.ops.shared, &id, &pool).map(Json)
}

#[utoipa::path(post, path = "/api/v1/hosts/{id}/pools", params(("id" = String, Path)), request_body = CreatePoolRequest,
    responses((status = 201, body = PoolCreated), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn create_pool(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(host): ApiPath<String>,
    ApiJson(req): ApiJson<CreatePoolRequest>,
) -> Result<impl IntoResponse, Error> {
    let created = s
        .ops
        .run(&caller, Target::Host(host), CreatePool { req })
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(post, path = "/api/v1/hosts/{id}/pools/{pool}/{action}", params(("id" = String, Path), ("pool" = String, Path), ("action" = PoolCommand, Path)),
    responses((status = 200, body = PoolDetail), (status = 409, body = ErrorBody)))]
pub(super) async fn pool_action(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((host, pool, action)): ApiPath<(String, String, String)>,
) -> Result<Json<PoolDetail>, Error> {
    let command: PoolCommand = action.parse().map_err(RequestError::Malformed)?;
    let job = RunPoolCommand::new(pool, command);
    s.ops.run(&caller, Target::Host(host), job).await.map(Json)
}

#[utoipa::path(delete, path = "/api/v1/hosts/{id}/pools/{pool}", params(("id" = String, Path), ("pool" = String, Path), PoolDeleteParams),
    responses((status = 204), (status = 409, body = ErrorBody, description = "volumes in use")))]
pub(super) async fn delete_pool(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((host, pool)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<PoolDeleteParams>,
) -> Result<StatusCode, Error> {
    let job = DeletePool::new(pool, p.delete_storage);
    s.ops.run(&caller, Target::Host(host), job).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/hosts/{id}/pools/{pool}/volumes", params(("id" = String, Path), ("pool" = String, Path)), request_body = CreateVolumeRequest,
    responses((status = 201, body = VolumeSummary), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn create_volume(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((host, pool)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<CreateVolumeRequest>,
) -> Result<impl IntoResponse, Error> {
    let v = s
        .ops
        .run(&caller, Target::Host(host), CreateVolume { pool, req });
    let v = v.await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// A copy runs as a task (`?wait=false`: 202 with the task at once); cancelling it
/// deletes the copy once libvirt is done (libvirt cannot interrupt a copy).
#[utoipa::path(post, path = "/api/v1/hosts/{id}/pools/{pool}/volumes/{volume}/clone", params(("id" = String, Path), ("pool" = String, Path), ("volume" = String, Path), WaitParam), request_body = CloneVolumeRequest,
    responses((status = 201, body = VolumeSummary),
        (status = 202, body = Task, description = "with `wait=false`: the task (`Location: /api/v1/tasks/{id}`)")))]
pub(super) async fn clone_volume(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((host, pool, source)): ApiPath<(String, String, String)>,
    ApiQuery(p): ApiQuery<WaitParam>,
    ApiJson(req): ApiJson<CloneVolumeRequest>,
) -> Result<axum::response::Response, Error> {
    let job = CloneVolume {
        pool,
        source,
        name: req.name,
    };
    let answer = |v: VolumeSummary| (StatusCode::CREATED, Json(v)).into_response();
    super::tasks::start(&s, &caller, Target::Host(host), job, p.wait, answer).await
}

#[utoipa::path(post, path = "/api/v1/hosts/{id}/pools/{pool}/volumes/{volume}/resize", params(("id" = String, Path), ("pool" = String, Path), ("volume" = String, Path)), request_body = ResizeVolumeRequest,
    responses((status = 200, body = VolumeSummary), (status = 501, body = ErrorBody, description = "the pool cannot grow volumes")))]
pub(super) async fn resize_volume(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((host, pool, name)): ApiPath<(String, String, String)>,
    ApiJson(req): ApiJson<ResizeVolumeRequest>,
) -> Result<Json<VolumeSummary>, Error> {
    let job = ResizeVolume {
        pool,
        name,
        size_bytes: req.size_bytes,
    };
    s.ops.run(&caller, Target::Host(host), job).await.map(Json)
}

#[utoipa::path(delete, path = "/api/v1/hosts/{id}/pools/{pool}/volumes/{volume}", params(("id" = String, Path), ("pool" = String, Path), ("volume" = String, Path)),
    responses((status = 204), (status = 409, body = ErrorBody, description = "in use, or its pool's volumes are not deleted by uvmm")))]
pub(super) async fn delete_volume(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((host, pool, name)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, Error> {
    let job = DeleteVolume::new(pool, name);
    s.ops.run(&caller, Target::Host(host), job).await?;
    Ok(StatusCode::NO_CONTENT)
}
