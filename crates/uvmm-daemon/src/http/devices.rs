//! Drives, media, boot medium and network interfaces of a VM.

use super::extract::*;
use super::vms::{changed, HostParam};
use super::AppState;
use crate::caller::Caller;
use crate::error::Error;
use crate::jobs::VmRef;
use crate::vm::boot::SetBoot;
use crate::vm::disks::{AddDisk, RemoveDisk};
use crate::vm::media::ChangeMedia;
use crate::vm::nics::{AddNic, RemoveNic};
use crate::vm::Edit;
use axum::extract::State;
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
    /// Detach it from the running VM now too (hot-unplug; the guest must release it
    /// within 10 s, else 409 and nothing changes). Default: a running VM keeps it until
    /// its next start.
    #[serde(default)]
    pub live: bool,
}

/// `DELETE /api/v1/vms/{uuid}/nics/{mac}` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NicDeleteParams {
    pub host: Option<String>,
    /// Detach it from the running VM now too (hot-unplug; see the drives' `live`).
    #[serde(default)]
    pub live: bool,
}

#[utoipa::path(post, path = "/api/v1/vms/{uuid}/disks", request_body = DiskAddRequest, params(("uuid" = String, Path), HostParam),
    responses((status = 200, body = VmChangeResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 501, body = ErrorBody, description = "with `live`: the VM cannot hot-plug this"), (status = 502, body = ErrorBody, description = "libvirt failed")))]
pub(super) async fn add_disk(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<HostParam>,
    IfMatch(if_match): IfMatch,
    ApiJson(req): ApiJson<DiskAddRequest>,
) -> Result<impl IntoResponse, Error> {
    let job = Edit::new(if_match, AddDisk { req });
    Ok(changed(s.ops.run(&caller, p.vm(uuid), job).await?))
}

#[utoipa::path(delete, path = "/api/v1/vms/{uuid}/disks/{target}", params(("uuid" = String, Path), ("target" = String, Path), DiskDeleteParams),
    responses((status = 200, body = DeleteResponse), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "with `live`: the guest did not release it (nothing changed)"),
        (status = 501, body = ErrorBody), (status = 502, body = ErrorBody, description = "libvirt failed")))]
pub(super) async fn remove_disk(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((uuid, target)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<DiskDeleteParams>,
    IfMatch(if_match): IfMatch,
) -> Result<Json<DeleteResponse>, Error> {
    let job = RemoveDisk {
        target,
        delete_volume: p.delete_volume,
        live: p.live,
        if_match,
    };
    let vm = VmRef { uuid, host: p.host };
    s.ops.run(&caller, vm, job).await.map(Json)
}

#[utoipa::path(post, path = "/api/v1/vms/{uuid}/disks/{target}/boot", params(("uuid" = String, Path), ("target" = String, Path), HostParam),
    responses((status = 200, body = VmChangeResponse, description = "warnings carry the pygrub preflight"), (status = 409, body = ErrorBody)))]
pub(super) async fn set_boot(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((uuid, target)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<HostParam>,
    IfMatch(if_match): IfMatch,
) -> Result<impl IntoResponse, Error> {
    let job = Edit::new(if_match, SetBoot { target });
    Ok(changed(s.ops.run(&caller, p.vm(uuid), job).await?))
}

#[utoipa::path(put, path = "/api/v1/vms/{uuid}/disks/{target}/media", request_body = MediaRequest, params(("uuid" = String, Path), ("target" = String, Path), HostParam),
    responses((status = 200, body = VmChangeResponse), (status = 400, body = ErrorBody)))]
pub(super) async fn change_media(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((uuid, target)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<HostParam>,
    IfMatch(if_match): IfMatch,
    ApiJson(req): ApiJson<MediaRequest>,
) -> Result<impl IntoResponse, Error> {
    let source = req.source;
    let job = Edit::new(if_match, ChangeMedia { target, source });
    Ok(changed(s.ops.run(&caller, p.vm(uuid), job).await?))
}

#[utoipa::path(post, path = "/api/v1/vms/{uuid}/nics", request_body = NicAddRequest, params(("uuid" = String, Path), HostParam),
    responses((status = 200, body = VmChangeResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 501, body = ErrorBody, description = "with `live`: the VM cannot hot-plug this"), (status = 502, body = ErrorBody, description = "libvirt failed")))]
pub(super) async fn add_nic(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<HostParam>,
    IfMatch(if_match): IfMatch,
    ApiJson(req): ApiJson<NicAddRequest>,
) -> Result<impl IntoResponse, Error> {
    let job = Edit::new(if_match, AddNic { req });
    Ok(changed(s.ops.run(&caller, p.vm(uuid), job).await?))
}

#[utoipa::path(delete, path = "/api/v1/vms/{uuid}/nics/{mac}", params(("uuid" = String, Path), ("mac" = String, Path), NicDeleteParams),
    responses((status = 200, body = VmChangeResponse), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "with `live`: the guest did not release it (nothing changed)"),
        (status = 501, body = ErrorBody), (status = 502, body = ErrorBody, description = "libvirt failed")))]
pub(super) async fn remove_nic(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((uuid, mac)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<NicDeleteParams>,
    IfMatch(if_match): IfMatch,
) -> Result<impl IntoResponse, Error> {
    let job = Edit::new(if_match, RemoveNic { mac, live: p.live });
    let vm = VmRef { uuid, host: p.host };
    Ok(changed(s.ops.run(&caller, vm, job).await?))
}
