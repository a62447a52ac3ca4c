//! Drives, media, boot medium and network interfaces of a VM.

use super::extract::*;
use super::vms::{changed, HostParam};
use super::AppState;
use crate::error::Error;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use uvmm_api::*;

/// `DELETE /api/v1/vms/{uuid}/disks/{target}` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiskDeleteParams {
    pub host: Option<String>,
    /// Also delete the volume (only if it is in a writable pool and no other VM uses it).
    #[serde(default)]
    pub delete_volume: bool,
}

#[utoipa::path(post, path = "/api/v1/vms/{uuid}/disks", request_body = DiskAddRequest, params(("uuid" = String, Path), HostParam),
    responses((status = 200, body = VmChangeResponse), (status = 400, body = ErrorBody)))]
pub(super) async fn add_disk(
    State(s): State<AppState>,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<HostParam>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<DiskAddRequest>,
) -> Result<impl IntoResponse, Error> {
    let resp = s
        .manager
        .add_disk(&uuid, p.host.as_deref(), req, if_match(&headers)?)
        .await?;
    Ok(changed(resp))
}

#[utoipa::path(delete, path = "/api/v1/vms/{uuid}/disks/{target}", params(("uuid" = String, Path), ("target" = String, Path), DiskDeleteParams),
    responses((status = 200, body = DeleteResponse), (status = 404, body = ErrorBody)))]
pub(super) async fn remove_disk(
    State(s): State<AppState>,
    ApiPath((uuid, target)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<DiskDeleteParams>,
    headers: HeaderMap,
) -> Result<Json<DeleteResponse>, Error> {
    let (resp, _warnings) = s
        .manager
        .remove_disk(
            &uuid,
            p.host.as_deref(),
            target,
            p.delete_volume,
            if_match(&headers)?,
        )
        .await?;
    Ok(Json(resp))
}

#[utoipa::path(post, path = "/api/v1/vms/{uuid}/disks/{target}/boot", params(("uuid" = String, Path), ("target" = String, Path), HostParam),
    responses((status = 200, body = VmChangeResponse, description = "warnings carry the pygrub preflight"), (status = 409, body = ErrorBody)))]
pub(super) async fn set_boot(
    State(s): State<AppState>,
    ApiPath((uuid, target)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<HostParam>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Error> {
    let resp = s
        .manager
        .set_boot(&uuid, p.host.as_deref(), target, if_match(&headers)?)
        .await?;
    Ok(changed(resp))
}

#[utoipa::path(put, path = "/api/v1/vms/{uuid}/disks/{target}/media", request_body = MediaRequest, params(("uuid" = String, Path), ("target" = String, Path), HostParam),
    responses((status = 200, body = VmChangeResponse), (status = 400, body = ErrorBody)))]
pub(super) async fn change_media(
    State(s): State<AppState>,
    ApiPath((uuid, target)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<HostParam>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<MediaRequest>,
) -> Result<impl IntoResponse, Error> {
    let resp = s
        .manager
        .change_media(
            &uuid,
            p.host.as_deref(),
            target,
            req.source,
            if_match(&headers)?,
        )
        .await?;
    Ok(changed(resp))
}

#[utoipa::path(post, path = "/api/v1/vms/{uuid}/nics", request_body = NicAddRequest, params(("uuid" = String, Path), HostParam),
    responses((status = 200, body = VmChangeResponse), (status = 400, body = ErrorBody)))]
pub(super) async fn add_nic(
    State(s): State<AppState>,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<HostParam>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<NicAddRequest>,
) -> Result<impl IntoResponse, Error> {
    let resp = s
        .manager
        .add_nic(&uuid, p.host.as_deref(), req, if_match(&headers)?)
        .await?;
    Ok(changed(resp))
}

#[utoipa::path(delete, path = "/api/v1/vms/{uuid}/nics/{mac}", params(("uuid" = String, Path), ("mac" = String, Path), HostParam),
    responses((status = 200, body = VmChangeResponse), (status = 404, body = ErrorBody)))]
pub(super) async fn remove_nic(
    State(s): State<AppState>,
    ApiPath((uuid, mac)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<HostParam>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, Error> {
    let resp = s
        .manager
        .remove_nic(&uuid, p.host.as_deref(), mac, if_match(&headers)?)
        .await?;
    Ok(changed(resp))
}
