//! VMs: list, show, create, edit, delete, XML and the lifecycle actions.

use super::extract::*;
use super::{AppState, NoParams};
use crate::caller::Caller;
use crate::error::Error;
use crate::http::error::RequestError;
use crate::jobs::VmRef;
use crate::vm::lifecycle::{ReadXml, VmAction};
use crate::vm::{self, delete::DeleteVm};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use uvmm_api::*;

/// `?host=` on single-VM paths.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HostParam {
    /// Host id or URI; needed only when the UUID exists on several hosts.
    pub host: Option<String>,
}

impl HostParam {
    /// The VM a path's UUID and this parameter name.
    pub fn vm(self, uuid: String) -> VmRef {
        VmRef {
            uuid,
            host: self.host,
        }
    }
}

/// `POST /api/v1/vms/{uuid}/{action}` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActionParams {
    /// Host id or URI; needed only when the UUID exists on several hosts.
    pub host: Option<String>,
    /// `suspend` (a managed save) runs as a task: `true` (the default) answers when it is
    /// done, `false` answers `202 Accepted` with the task at once. The other actions
    /// always answer when they are done.
    pub wait: Option<bool>,
}

/// `DELETE /api/v1/vms/{uuid}` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    pub host: Option<String>,
    /// `none` (default: keep every image), `all` (every deletable disk image), or a
    /// comma-separated list of image paths.
    pub volumes: Option<String>,
}

/// `GET /api/v1/vms/{uuid}/xml` parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct XmlParams {
    pub host: Option<String>,
    /// The persistent definition instead of the running one.
    #[serde(default)]
    pub inactive: bool,
}

#[utoipa::path(get, path = "/api/v1/vms", params(VmQuery),
    responses((status = 200, body = VmPage), (status = 400, body = ErrorBody)))]
pub(super) async fn list_vms(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<VmQuery>,
) -> Result<axum::response::Response, Error> {
    if !caller.unrestricted(uvmm_auth::Permission::Read) {
        let sees = |h: &crate::cache::HostEntry, name: &str| caller.sees(&h.id, &h.uri, Some(name));
        let page = s.ops.shared.read().list_vms_where(&q, &sees)?;
        return Ok(Json(page).into_response());
    }
    if q == VmQuery::default() {
        let body = vm::read::list_all_json(&s.ops.shared)?;
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response());
    }
    Ok(Json(vm::read::list(&s.ops.shared, &q)?).into_response())
}

#[utoipa::path(get, path = "/api/v1/vms/{uuid}", params(("uuid" = String, Path), HostParam),
    responses((status = 200, body = VmDetail), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "UUID on several hosts")))]
pub(super) async fn show_vm(
    State(s): State<AppState>,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<HostParam>,
) -> Result<impl IntoResponse, Error> {
    let vm = vm::read::show(&s.ops.shared, &uuid, p.host.as_deref())?;
    Ok(([(axum::http::header::ETAG, vm.etag.clone())], Json(vm)))
}

pub(super) fn changed(resp: VmChangeResponse) -> impl IntoResponse {
    (
        [(axum::http::header::ETAG, resp.vm.etag.clone())],
        Json(resp),
    )
}

#[utoipa::path(post, path = "/api/v1/vms", request_body = CreateVmRequest,
    responses((status = 201, body = VmChangeResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn create_vm(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateVmRequest>,
) -> Result<impl IntoResponse, Error> {
    caller.authorize_new(
        &s.ops.shared.read(),
        uvmm_auth::Permission::Create,
        &req.host,
        &req.name,
    )?;
    let resp = s.ops.create_vm(&caller, req).await?;
    Ok((StatusCode::CREATED, changed(resp)))
}

#[utoipa::path(patch, path = "/api/v1/vms/{uuid}", request_body = VmPatch, params(("uuid" = String, Path), HostParam),
    responses((status = 200, body = VmChangeResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody, description = "stale If-Match")))]
pub(super) async fn edit_vm(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<HostParam>,
    IfMatch(if_match): IfMatch,
    ApiJson(patch): ApiJson<VmPatch>,
) -> Result<impl IntoResponse, Error> {
    Ok(changed(
        s.ops.edit_vm(&caller, p.vm(uuid), if_match, patch).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/vms/{uuid}", params(("uuid" = String, Path), DeleteParams),
    responses((status = 200, body = DeleteResponse), (status = 409, body = ErrorBody, description = "running, or stale If-Match")))]
pub(super) async fn delete_vm(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<DeleteParams>,
    IfMatch(if_match): IfMatch,
) -> Result<Json<DeleteResponse>, Error> {
    let job = DeleteVm {
        volumes: p.volumes.unwrap_or_else(|| "none".into()),
        if_match,
    };
    let vm = VmRef { uuid, host: p.host };
    s.ops.run(&caller, vm, job).await.map(Json)
}

#[utoipa::path(get, path = "/api/v1/vms/{uuid}/xml", params(("uuid" = String, Path), XmlParams),
    responses((status = 200, content_type = "application/xml", body = String)))]
pub(super) async fn vm_xml(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<XmlParams>,
) -> Result<impl IntoResponse, Error> {
    let job = ReadXml {
        inactive: p.inactive,
    };
    let xml = s
        .ops
        .run(&caller, VmRef { uuid, host: p.host }, job)
        .await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/xml")], xml))
}

#[utoipa::path(post, path = "/api/v1/vms/{uuid}/{action}",
    params(("uuid" = String, Path), ("action" = Action, Path), ActionParams),
    request_body(content = Option<NoParams>, description = "none, or an empty object `{}`", content_type = "application/json"),
    responses((status = 200, body = ActionResponse),
        (status = 202, body = Task, description = "`suspend` with `wait=false`: the task (`Location: /api/v1/tasks/{id}`)"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "invalid transition"), (status = 503, body = ErrorBody)))]
pub(super) async fn vm_action(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((uuid, action)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<ActionParams>,
    ApiBody(body): ApiBody,
) -> Result<axum::response::Response, Error> {
    let action: Action = action
        .parse()
        .map_err(|e: uvmm_model::state::ParseEnumError| RequestError::Malformed(e.to_string()))?;
    // Actions take no body; anything but nothing, `null` or `{}` is a mistake worth
    // reporting.
    if !body.iter().all(u8::is_ascii_whitespace) && body.trim_ascii() != b"null" {
        let _: NoParams = parse_body(&body)?;
    }
    let vm = VmRef { uuid, host: p.host };
    let job = VmAction::new(action);
    let answer = |r: ActionResponse| Json(r).into_response();
    super::tasks::start(&s, &caller, vm, job, p.wait, answer).await
}
