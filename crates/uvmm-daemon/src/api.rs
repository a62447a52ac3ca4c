//! The HTTP API. Handlers parse, call one manager function and wrap the answer; errors
//! become JSON through `CoreError`'s `IntoResponse`.

use crate::error::CoreError;
use crate::http_guard::Guard;
use crate::manager::Manager;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uvmm_api::*;

#[derive(Clone)]
pub struct AppState {
    pub manager: Arc<Manager>,
    /// Flips to true at shutdown; ends the event streams so the server can stop.
    pub shutdown: watch::Receiver<bool>,
    /// How long a client may take to send a request body.
    pub request_timeout: std::time::Duration,
    /// The rendered OpenAPI document (set by `router`).
    pub openapi: Arc<bytes::Bytes>,
}

impl AppState {
    pub fn new(
        manager: Arc<Manager>,
        shutdown: watch::Receiver<bool>,
        request_timeout: std::time::Duration,
    ) -> AppState {
        AppState {
            manager,
            shutdown,
            request_timeout,
            openapi: Arc::default(),
        }
    }
}

/// The largest request body accepted (a restored definition is the largest legitimate one).
pub const MAX_BODY: usize = 1024 * 1024;

/// Query string extractor whose errors are JSON 400 answers.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = CoreError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| CoreError::BadRequest(format!("invalid query: {}", e.body_text())))
    }
}

/// Path parameters whose errors are JSON 400 answers.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = CoreError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| CoreError::BadRequest(format!("invalid path: {}", e.body_text())))
    }
}

/// A request body, read within the size limit and the request timeout.
pub struct ApiBody(pub Bytes);

impl FromRequest<AppState> for ApiBody {
    type Rejection = CoreError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let read = axum::body::to_bytes(req.into_body(), MAX_BODY);
        match tokio::time::timeout(state.request_timeout, read).await {
            Err(_) => Err(CoreError::RequestTimeout(format!(
                "the request body did not arrive within {} s",
                state.request_timeout.as_secs()
            ))),
            Ok(Ok(bytes)) => Ok(ApiBody(bytes)),
            Ok(Err(e)) => {
                let too_large = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                    || e.to_string().contains("length limit");
                if too_large {
                    Err(crate::http_guard::too_large(MAX_BODY))
                } else {
                    Err(CoreError::BadRequest(format!(
                        "cannot read the request body: {e}"
                    )))
                }
            }
        }
    }
}

/// A JSON request body (see `ApiBody`); its errors are JSON 4xx answers.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = CoreError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let ApiBody(bytes) = ApiBody::from_request(req, state).await?;
        parse_body(&bytes).map(ApiJson)
    }
}

/// JSON body parser whose errors are JSON 400 answers.
fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, CoreError> {
    serde_json::from_slice(body)
        .map_err(|e| CoreError::BadRequest(format!("invalid JSON body: {e}")))
}

/// `?host=` on single-VM paths.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HostParam {
    /// Host id or URI; needed only when the UUID exists on several hosts.
    pub host: Option<String>,
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

fn if_match(headers: &HeaderMap) -> Result<Option<String>, CoreError> {
    headers
        .get(axum::http::header::IF_MATCH)
        .map(|v| {
            v.to_str()
                .map(str::to_string)
                .map_err(|_| CoreError::BadRequest("If-Match is not valid text".into()))
        })
        .transpose()
}

/// The empty query of paths without parameters: unknown parameters are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// The schemas every operation may refer to; the paths come from the routes themselves
/// (`api_routes`), so the document and the router cannot drift.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "uvmm API",
        description = "Manage the virtual machines of many libvirt hosts."
    ),
    components(schemas(
        HostSummary,
        HostDetail,
        HostStatus,
        HostOrigin,
        AddHostRequest,
        VmSummary,
        VmDetail,
        VmPage,
        ActionResponse,
        Event,
        EventKind,
        ErrorBody,
        ErrorInfo,
        VersionInfo,
        VmState,
        Action,
        Disk,
        Nic,
        Graphics,
        GuestCaps,
        Features,
        Pending,
        Profile,
        CreateVmRequest,
        NewVolume,
        VmPatch,
        DiskAddRequest,
        DiskSource,
        MediaRequest,
        NicAddRequest,
        VmChangeResponse,
        DeleteResponse,
        KeptVolume,
        BackupSummary,
        BackupDetail,
        BackupVersion,
        VersionMeta,
        PruneResponse,
        RestoreRequest,
        RestoreReport,
        PoolSummary,
        PoolDetail,
        VolumeSummary,
        CreatePoolRequest,
        NewPool,
        CreateVolumeRequest,
        CloneVolumeRequest,
        ResizeVolumeRequest,
        Level
    ))
)]
pub struct ApiDoc;

/// The route table: every path and method with its handler and its OpenAPI declaration.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(version))
        .routes(routes!(openapi))
        .routes(routes!(list_hosts, add_host))
        .routes(routes!(show_host, remove_host))
        .routes(routes!(list_profiles))
        .routes(routes!(show_profile))
        .routes(routes!(list_vms, create_vm))
        .routes(routes!(show_vm, edit_vm, delete_vm))
        .routes(routes!(vm_xml))
        .routes(routes!(add_disk))
        .routes(routes!(remove_disk))
        .routes(routes!(set_boot))
        .routes(routes!(change_media))
        .routes(routes!(add_nic))
        .routes(routes!(remove_nic))
        .routes(routes!(vm_action))
        .routes(routes!(events))
        .routes(routes!(list_backups))
        .routes(routes!(prune_backups))
        .routes(routes!(show_backup))
        .routes(routes!(backup_version))
        .routes(routes!(backup_diff))
        .routes(routes!(restore))
        .routes(routes!(list_pools))
        .routes(routes!(create_pool))
        .routes(routes!(show_pool, delete_pool))
        .routes(routes!(pool_action))
        .routes(routes!(create_volume))
        .routes(routes!(delete_volume))
        .routes(routes!(clone_volume))
        .routes(routes!(resize_volume))
        .routes(routes!(metrics))
}

/// The answers every operation can give besides its own: the JSON error envelope for bad
/// input, missing login, refused origin, oversized or non-JSON bodies, and server faults.
fn document_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
    let error = |what: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    let common = [
        ("400", "invalid input: path, query or body"),
        ("401", "the TCP listener needs the API token"),
        ("403", "foreign Host or Origin"),
        ("408", "the request body did not arrive in time"),
        ("413", "the request body is too large"),
        ("415", "the request body is not application/json"),
        ("500", "internal error"),
        ("503", "the host is unavailable, or too many connections"),
        ("504", "the host did not answer in time"),
    ];
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            for (code, what) in common {
                op.responses
                    .responses
                    .entry(code.to_string())
                    .or_insert_with(|| error(what));
            }
            op.responses
                .responses
                .entry("default".to_string())
                .or_insert_with(|| error("any other error, in the same envelope"));
        }
    }
}

/// The OpenAPI document as served at `/api/v1/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api_routes().split_for_parts();
    document_errors(&mut doc);
    doc
}

/// The whole HTTP application: routes, the guard's checks, JSON errors for unknown paths
/// and methods, and the web UI (`web.rs`) outside `/api/`.
pub fn router(mut state: AppState, guard: GuardConfig) -> Router {
    let (routes, mut doc) = api_routes().split_for_parts();
    document_errors(&mut doc);
    let params = crate::http_guard::declared_params(&doc);
    state.openapi = Arc::new(bytes::Bytes::from(
        serde_json::to_vec(&doc).unwrap_or_default(),
    ));
    let web = crate::web::WebState::new(guard.tcp_hosts.clone());
    let guard = Guard::new(guard.token, guard.tcp_hosts, params);
    routes
        .route_layer(axum::middleware::from_fn_with_state(
            guard.clone(),
            crate::http_guard::request_checks,
        ))
        .fallback(|| async { CoreError::NotFound("no such API path".into()) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                Json(ErrorBody {
                    error: ErrorInfo {
                        code: "method_not_allowed".into(),
                        message: "method not allowed on this path".into(),
                        details: None,
                    },
                }),
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            note_demand,
        ))
        .layer(axum::middleware::from_fn_with_state(
            guard,
            crate::http_guard::connection_checks,
        ))
        // Outermost: the web UI's pages and files (they cannot carry the API token).
        .layer(axum::middleware::from_fn_with_state(web, crate::web::serve))
        .with_state(state)
}

/// What the guard is told at start (see `http_guard`).
#[derive(Clone, Default)]
pub struct GuardConfig {
    pub token: Option<String>,
    pub tcp_hosts: std::collections::HashSet<String>,
}

/// Every request counts as someone watching (see `Shared::stats_interval_now`).
async fn note_demand(
    State(s): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    s.manager.shared.demand.touch();
    next.run(req).await
}

#[utoipa::path(get, path = "/api/v1/version", responses((status = 200, body = VersionInfo)))]
async fn version() -> Json<VersionInfo> {
    Json(VersionInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        api: "v1".to_string(),
    })
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json",
    responses((status = 200, content_type = "application/json", body = Object, description = "the OpenAPI document")))]
async fn openapi(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        (*s.openapi).clone(),
    )
}

#[utoipa::path(get, path = "/api/v1/hosts", responses((status = 200, body = [HostSummary])))]
async fn list_hosts(
    State(s): State<AppState>,
    ApiQuery(_): ApiQuery<NoParams>,
) -> Json<Vec<HostSummary>> {
    Json(s.manager.list_hosts())
}

#[utoipa::path(post, path = "/api/v1/hosts", request_body = AddHostRequest,
    responses((status = 201, body = HostSummary), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn add_host(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<AddHostRequest>,
) -> Result<impl IntoResponse, CoreError> {
    let host = s.manager.add_host(&req.uri).await?;
    Ok((StatusCode::CREATED, Json(host)))
}

#[utoipa::path(get, path = "/api/v1/hosts/{id}", params(("id" = String, Path, description = "host id or URL-encoded URI")),
    responses((status = 200, body = HostDetail), (status = 404, body = ErrorBody)))]
async fn show_host(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<HostDetail>, CoreError> {
    s.manager.host(&id).map(Json)
}

#[utoipa::path(delete, path = "/api/v1/hosts/{id}", params(("id" = String, Path, description = "host id or URL-encoded URI")),
    responses((status = 200, body = HostSummary, description = "the removed host"), (status = 404, body = ErrorBody)))]
async fn remove_host(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<HostSummary>, CoreError> {
    s.manager.remove_host(&id).map(Json)
}

#[utoipa::path(get, path = "/api/v1/vms", params(VmQuery),
    responses((status = 200, body = VmPage), (status = 400, body = ErrorBody)))]
async fn list_vms(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<VmQuery>,
) -> Result<axum::response::Response, CoreError> {
    if q == VmQuery::default() {
        let body = s.manager.list_all_json()?;
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response());
    }
    s.manager.list_vms(&q).map(|p| Json(p).into_response())
}

#[utoipa::path(get, path = "/api/v1/vms/{uuid}", params(("uuid" = String, Path), HostParam),
    responses((status = 200, body = VmDetail), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "UUID on several hosts")))]
async fn show_vm(
    State(s): State<AppState>,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<HostParam>,
) -> Result<impl IntoResponse, CoreError> {
    let vm = s.manager.vm(&uuid, p.host.as_deref())?;
    Ok(([(axum::http::header::ETAG, vm.etag.clone())], Json(vm)))
}

fn changed(resp: VmChangeResponse) -> impl IntoResponse {
    (
        [(axum::http::header::ETAG, resp.vm.etag.clone())],
        Json(resp),
    )
}

#[utoipa::path(get, path = "/api/v1/profiles", responses((status = 200, body = [Profile])))]
async fn list_profiles(State(s): State<AppState>) -> Json<Vec<Profile>> {
    Json(s.manager.profiles())
}

#[utoipa::path(get, path = "/api/v1/profiles/{name}", params(("name" = String, Path)),
    responses((status = 200, body = Profile), (status = 404, body = ErrorBody)))]
async fn show_profile(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Profile>, CoreError> {
    s.manager.profile(&name).map(Json)
}

#[utoipa::path(post, path = "/api/v1/vms", request_body = CreateVmRequest,
    responses((status = 201, body = VmChangeResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_vm(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<CreateVmRequest>,
) -> Result<impl IntoResponse, CoreError> {
    let resp = s.manager.create_vm(req).await?;
    Ok((StatusCode::CREATED, changed(resp)))
}

#[utoipa::path(patch, path = "/api/v1/vms/{uuid}", request_body = VmPatch, params(("uuid" = String, Path), HostParam),
    responses((status = 200, body = VmChangeResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody, description = "stale If-Match")))]
async fn edit_vm(
    State(s): State<AppState>,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<HostParam>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<VmPatch>,
) -> Result<impl IntoResponse, CoreError> {
    let resp = s
        .manager
        .edit_vm(&uuid, p.host.as_deref(), patch, if_match(&headers)?)
        .await?;
    Ok(changed(resp))
}

#[utoipa::path(delete, path = "/api/v1/vms/{uuid}", params(("uuid" = String, Path), DeleteParams),
    responses((status = 200, body = DeleteResponse), (status = 409, body = ErrorBody, description = "running, or stale If-Match")))]
async fn delete_vm(
    State(s): State<AppState>,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<DeleteParams>,
    headers: HeaderMap,
) -> Result<Json<DeleteResponse>, CoreError> {
    let volumes = p.volumes.unwrap_or_else(|| "none".into());
    s.manager
        .delete_vm(&uuid, p.host.as_deref(), volumes, if_match(&headers)?)
        .await
        .map(Json)
}

#[utoipa::path(get, path = "/api/v1/vms/{uuid}/xml", params(("uuid" = String, Path), XmlParams),
    responses((status = 200, content_type = "application/xml", body = String)))]
async fn vm_xml(
    State(s): State<AppState>,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<XmlParams>,
) -> Result<impl IntoResponse, CoreError> {
    let xml = s
        .manager
        .vm_xml(&uuid, p.host.as_deref(), p.inactive)
        .await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/xml")], xml))
}

#[utoipa::path(post, path = "/api/v1/vms/{uuid}/disks", request_body = DiskAddRequest, params(("uuid" = String, Path), HostParam),
    responses((status = 200, body = VmChangeResponse), (status = 400, body = ErrorBody)))]
async fn add_disk(
    State(s): State<AppState>,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<HostParam>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<DiskAddRequest>,
) -> Result<impl IntoResponse, CoreError> {
    let resp = s
        .manager
        .add_disk(&uuid, p.host.as_deref(), req, if_match(&headers)?)
        .await?;
    Ok(changed(resp))
}

#[utoipa::path(delete, path = "/api/v1/vms/{uuid}/disks/{target}", params(("uuid" = String, Path), ("target" = String, Path), DiskDeleteParams),
    responses((status = 200, body = DeleteResponse), (status = 404, body = ErrorBody)))]
async fn remove_disk(
    State(s): State<AppState>,
    ApiPath((uuid, target)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<DiskDeleteParams>,
    headers: HeaderMap,
) -> Result<Json<DeleteResponse>, CoreError> {
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
async fn set_boot(
    State(s): State<AppState>,
    ApiPath((uuid, target)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<HostParam>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, CoreError> {
    let resp = s
        .manager
        .set_boot(&uuid, p.host.as_deref(), target, if_match(&headers)?)
        .await?;
    Ok(changed(resp))
}

#[utoipa::path(put, path = "/api/v1/vms/{uuid}/disks/{target}/media", request_body = MediaRequest, params(("uuid" = String, Path), ("target" = String, Path), HostParam),
    responses((status = 200, body = VmChangeResponse), (status = 400, body = ErrorBody)))]
async fn change_media(
    State(s): State<AppState>,
    ApiPath((uuid, target)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<HostParam>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<MediaRequest>,
) -> Result<impl IntoResponse, CoreError> {
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
async fn add_nic(
    State(s): State<AppState>,
    ApiPath(uuid): ApiPath<String>,
    ApiQuery(p): ApiQuery<HostParam>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<NicAddRequest>,
) -> Result<impl IntoResponse, CoreError> {
    let resp = s
        .manager
        .add_nic(&uuid, p.host.as_deref(), req, if_match(&headers)?)
        .await?;
    Ok(changed(resp))
}

#[utoipa::path(delete, path = "/api/v1/vms/{uuid}/nics/{mac}", params(("uuid" = String, Path), ("mac" = String, Path), HostParam),
    responses((status = 200, body = VmChangeResponse), (status = 404, body = ErrorBody)))]
async fn remove_nic(
    State(s): State<AppState>,
    ApiPath((uuid, mac)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<HostParam>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, CoreError> {
    let resp = s
        .manager
        .remove_nic(&uuid, p.host.as_deref(), mac, if_match(&headers)?)
        .await?;
    Ok(changed(resp))
}

#[utoipa::path(post, path = "/api/v1/vms/{uuid}/{action}",
    params(("uuid" = String, Path), ("action" = Action, Path), HostParam),
    responses((status = 200, body = ActionResponse), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "invalid transition"), (status = 503, body = ErrorBody)))]
async fn vm_action(
    State(s): State<AppState>,
    ApiPath((uuid, action)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<HostParam>,
    ApiBody(body): ApiBody,
) -> Result<Json<ActionResponse>, CoreError> {
    let action: Action = action
        .parse()
        .map_err(|e: uvmm_model::state::ParseEnumError| CoreError::BadRequest(e.to_string()))?;
    // Actions take no body; anything but nothing or `{}` is a mistake worth reporting.
    if !body.iter().all(u8::is_ascii_whitespace) {
        let _: NoParams = parse_body(&body)?;
    }
    s.manager
        .vm_action(&uuid, p.host.as_deref(), action)
        .await
        .map(Json)
}

fn sse_of(ev: &Event) -> SseEvent {
    let kind = serde_json::to_value(ev.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    SseEvent::default()
        .event(kind)
        .id(ev.seq.to_string())
        .json_data(ev)
        .unwrap_or_else(|_| SseEvent::default().comment("unserialisable event"))
}

/// Server-Sent Events: one `data:` JSON object per change (see `Event`).
#[utoipa::path(get, path = "/api/v1/events",
    responses((status = 200, content_type = "text/event-stream", body = Event)))]
async fn events(
    State(s): State<AppState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = s.manager.shared.bus.subscribe();
    let mut shutdown = s.shutdown.clone();
    let hello = stream::once(async { Ok(SseEvent::default().comment("subscribed")) });
    let changes = BroadcastStream::new(rx).map(|item| {
        Ok(match item {
            Ok(ev) => sse_of(&ev),
            Err(BroadcastStreamRecvError::Lagged(n)) => SseEvent::default()
                .event("resync")
                .data(format!("{{\"kind\":\"resync\",\"missed\":{n}}}")),
        })
    });
    let stream = hello.chain(changes).take_until(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

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
async fn list_backups(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<BackupQuery>,
) -> Result<Json<Vec<BackupSummary>>, CoreError> {
    s.manager.backups(q.q.as_deref()).map(Json)
}

#[utoipa::path(get, path = "/api/v1/backups/{vm}", params(("vm" = String, Path, description = "VM name or UUID")),
    responses((status = 200, body = BackupDetail), (status = 404, body = ErrorBody)))]
async fn show_backup(
    State(s): State<AppState>,
    ApiPath(vm): ApiPath<String>,
) -> Result<Json<BackupDetail>, CoreError> {
    s.manager.backup(&vm).map(Json)
}

#[utoipa::path(get, path = "/api/v1/backups/{vm}/versions/{version}", params(("vm" = String, Path), ("version" = u32, Path)),
    responses((status = 200, body = BackupVersion), (status = 404, body = ErrorBody)))]
async fn backup_version(
    State(s): State<AppState>,
    ApiPath((vm, version)): ApiPath<(String, u32)>,
) -> Result<Json<BackupVersion>, CoreError> {
    s.manager.backup_version(&vm, Some(version)).map(Json)
}

#[utoipa::path(get, path = "/api/v1/backups/{vm}/diff", params(("vm" = String, Path), DiffQuery),
    responses((status = 200, content_type = "text/plain", body = String, description = "unified diff")))]
async fn backup_diff(
    State(s): State<AppState>,
    ApiPath(vm): ApiPath<String>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> Result<impl IntoResponse, CoreError> {
    let diff = s.manager.backup_diff(&vm, q.from, q.to)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        diff,
    ))
}

#[utoipa::path(post, path = "/api/v1/backups/prune", responses((status = 200, body = PruneResponse)))]
async fn prune_backups(State(s): State<AppState>) -> Result<Json<PruneResponse>, CoreError> {
    s.manager.prune_backups().map(Json)
}

#[utoipa::path(post, path = "/api/v1/restore", request_body = RestoreRequest,
    responses((status = 200, body = RestoreReport), (status = 409, body = ErrorBody, description = "a check failed; the message names every failure")))]
async fn restore(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<RestoreRequest>,
) -> Result<Json<RestoreReport>, CoreError> {
    s.manager.restore(req).await.map(Json)
}

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
async fn list_pools(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<PoolQuery>,
) -> Result<Json<Vec<PoolSummary>>, CoreError> {
    s.manager.list_pools(q.host.as_deref()).map(Json)
}

#[utoipa::path(get, path = "/api/v1/hosts/{id}/pools/{pool}", params(("id" = String, Path), ("pool" = String, Path)),
    responses((status = 200, body = PoolDetail), (status = 404, body = ErrorBody)))]
async fn show_pool(
    State(s): State<AppState>,
    ApiPath((id, pool)): ApiPath<(String, String)>,
) -> Result<Json<PoolDetail>, CoreError> {
    s.manager.pool(&id, &pool).map(Json)
}

#[utoipa::path(post, path = "/api/v1/hosts/{id}/pools", params(("id" = String, Path)), request_body = CreatePoolRequest,
    responses((status = 201, body = PoolDetail), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_pool(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<CreatePoolRequest>,
) -> Result<impl IntoResponse, CoreError> {
    let (pool, _warnings) = s.manager.create_pool(&id, req).await?;
    Ok((StatusCode::CREATED, Json(pool)))
}

#[utoipa::path(post, path = "/api/v1/hosts/{id}/pools/{pool}/{action}", params(("id" = String, Path), ("pool" = String, Path), ("action" = String, Path, description = "start, stop or refresh")),
    responses((status = 200, body = PoolDetail), (status = 409, body = ErrorBody)))]
async fn pool_action(
    State(s): State<AppState>,
    ApiPath((id, pool, action)): ApiPath<(String, String, String)>,
) -> Result<Json<PoolDetail>, CoreError> {
    s.manager.pool_action(&id, &pool, action).await.map(Json)
}

#[utoipa::path(delete, path = "/api/v1/hosts/{id}/pools/{pool}", params(("id" = String, Path), ("pool" = String, Path), PoolDeleteParams),
    responses((status = 204), (status = 409, body = ErrorBody, description = "volumes in use")))]
async fn delete_pool(
    State(s): State<AppState>,
    ApiPath((id, pool)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<PoolDeleteParams>,
) -> Result<StatusCode, CoreError> {
    s.manager.delete_pool(&id, &pool, p.delete_storage).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/hosts/{id}/pools/{pool}/volumes", params(("id" = String, Path), ("pool" = String, Path)), request_body = CreateVolumeRequest,
    responses((status = 201, body = VolumeSummary), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_volume(
    State(s): State<AppState>,
    ApiPath((id, pool)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<CreateVolumeRequest>,
) -> Result<impl IntoResponse, CoreError> {
    let v = s.manager.create_volume(&id, &pool, req).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

#[utoipa::path(post, path = "/api/v1/hosts/{id}/pools/{pool}/volumes/{volume}/clone", params(("id" = String, Path), ("pool" = String, Path), ("volume" = String, Path)), request_body = CloneVolumeRequest,
    responses((status = 201, body = VolumeSummary)))]
async fn clone_volume(
    State(s): State<AppState>,
    ApiPath((id, pool, vol)): ApiPath<(String, String, String)>,
    ApiJson(req): ApiJson<CloneVolumeRequest>,
) -> Result<impl IntoResponse, CoreError> {
    let v = s.manager.clone_volume(&id, &pool, &vol, req.name).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

#[utoipa::path(post, path = "/api/v1/hosts/{id}/pools/{pool}/volumes/{volume}/resize", params(("id" = String, Path), ("pool" = String, Path), ("volume" = String, Path)), request_body = ResizeVolumeRequest,
    responses((status = 200, body = VolumeSummary), (status = 501, body = ErrorBody, description = "the pool cannot grow volumes")))]
async fn resize_volume(
    State(s): State<AppState>,
    ApiPath((id, pool, vol)): ApiPath<(String, String, String)>,
    ApiJson(req): ApiJson<ResizeVolumeRequest>,
) -> Result<Json<VolumeSummary>, CoreError> {
    s.manager
        .resize_volume(&id, &pool, &vol, req.size_bytes)
        .await
        .map(Json)
}

#[utoipa::path(delete, path = "/api/v1/hosts/{id}/pools/{pool}/volumes/{volume}", params(("id" = String, Path), ("pool" = String, Path), ("volume" = String, Path)),
    responses((status = 204), (status = 409, body = ErrorBody, description = "in use, or its pool's volumes are not deleted by uvmm")))]
async fn delete_volume(
    State(s): State<AppState>,
    ApiPath((id, pool, vol)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, CoreError> {
    s.manager.delete_volume(&id, &pool, &vol).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Prometheus metrics (text format 0.0.4).
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, content_type = "text/plain", body = String, description = "Prometheus text format 0.0.4")))]
async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.manager.metrics(),
    )
}
