//! Managed hosts.

use super::extract::*;
use super::{AppState, NoParams};
use crate::caller::Caller;
use crate::error::Error;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use uvmm_api::*;

#[utoipa::path(get, path = "/api/v1/hosts", responses((status = 200, body = [HostSummary])))]
pub(super) async fn list_hosts(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(_): ApiQuery<NoParams>,
) -> Json<Vec<HostSummary>> {
    let mut hosts = crate::hosts::list(&s.ops.shared);
    hosts.retain(|h| caller.sees(&h.id, &h.uri, None));
    Json(hosts)
}

#[utoipa::path(post, path = "/api/v1/hosts", request_body = AddHostRequest,
    responses((status = 201, body = HostSummary), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn add_host(
    State(s): State<AppState>,
    _caller: Caller,
    ApiJson(req): ApiJson<AddHostRequest>,
) -> Result<impl IntoResponse, Error> {
    let host = s.ops.hosts.add(&req.uri).await?;
    Ok((StatusCode::CREATED, Json(host)))
}

#[utoipa::path(get, path = "/api/v1/hosts/{id}", params(("id" = String, Path, description = "host id or URL-encoded URI")),
    responses((status = 200, body = HostDetail), (status = 404, body = ErrorBody)))]
pub(super) async fn show_host(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<HostDetail>, Error> {
    Ok(Json(crate::hosts::show(&s.ops.shared, &id)?))
}

#[utoipa::path(delete, path = "/api/v1/hosts/{id}", params(("id" = String, Path, description = "host id or URL-encoded URI")),
    responses((status = 200, body = HostSummary, description = "the removed host"), (status = 404, body = ErrorBody)))]
pub(super) async fn remove_host(
    State(s): State<AppState>,
    _caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<HostSummary>, Error> {
    s.ops.hosts.remove(&id).map(Json)
}
