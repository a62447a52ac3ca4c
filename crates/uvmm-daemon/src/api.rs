//! The HTTP API. Handlers parse, call one manager function and wrap the answer; errors
//! become JSON through `CoreError`'s `IntoResponse`.

use crate::error::CoreError;
use crate::manager::Manager;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
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
use uvmm_api::*;

#[derive(Clone)]
pub struct AppState {
    pub manager: Arc<Manager>,
    /// Flips to true at shutdown; ends the event streams so the server can stop.
    pub shutdown: watch::Receiver<bool>,
}

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

/// JSON body parser whose errors are JSON 400 answers (also for a missing content type).
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

/// The empty query of paths without parameters: unknown parameters are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "uvmm API",
        description = "Manage the virtual machines of many libvirt hosts."
    ),
    paths(
        version,
        list_hosts,
        add_host,
        show_host,
        remove_host,
        list_vms,
        show_vm,
        vm_action,
        events
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
        GuestCaps
    ))
)]
pub struct ApiDoc;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/version", get(version))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/hosts", get(list_hosts).post(add_host))
        .route("/api/v1/hosts/{id}", get(show_host).delete(remove_host))
        .route("/api/v1/vms", get(list_vms))
        .route("/api/v1/vms/{uuid}", get(show_vm))
        .route("/api/v1/vms/{uuid}/{action}", post(vm_action))
        .route("/api/v1/events", get(events))
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
        .with_state(state)
}

#[utoipa::path(get, path = "/api/v1/version", responses((status = 200, body = VersionInfo)))]
async fn version() -> Json<VersionInfo> {
    Json(VersionInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        api: "v1".to_string(),
    })
}

async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
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
async fn add_host(State(s): State<AppState>, body: Bytes) -> Result<impl IntoResponse, CoreError> {
    let req: AddHostRequest = parse_body(&body)?;
    let host = s.manager.add_host(&req.uri).await?;
    Ok((StatusCode::CREATED, Json(host)))
}

#[utoipa::path(get, path = "/api/v1/hosts/{id}", params(("id" = String, Path, description = "host id or URL-encoded URI")),
    responses((status = 200, body = HostDetail), (status = 404, body = ErrorBody)))]
async fn show_host(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<HostDetail>, CoreError> {
    s.manager.host(&id).map(Json)
}

#[utoipa::path(delete, path = "/api/v1/hosts/{id}", params(("id" = String, Path, description = "host id or URL-encoded URI")),
    responses((status = 200, body = HostSummary, description = "the removed host"), (status = 404, body = ErrorBody)))]
async fn remove_host(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<HostSummary>, CoreError> {
    s.manager.remove_host(&id).map(Json)
}

#[utoipa::path(get, path = "/api/v1/vms", params(VmQuery),
    responses((status = 200, body = VmPage), (status = 400, body = ErrorBody)))]
async fn list_vms(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<VmQuery>,
) -> Result<Json<VmPage>, CoreError> {
    s.manager.list_vms(&q).map(Json)
}

#[utoipa::path(get, path = "/api/v1/vms/{uuid}", params(("uuid" = String, Path), HostParam),
    responses((status = 200, body = VmDetail), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "UUID on several hosts")))]
async fn show_vm(
    State(s): State<AppState>,
    Path(uuid): Path<String>,
    ApiQuery(p): ApiQuery<HostParam>,
) -> Result<Json<VmDetail>, CoreError> {
    s.manager.vm(&uuid, p.host.as_deref()).map(Json)
}

#[utoipa::path(post, path = "/api/v1/vms/{uuid}/{action}",
    params(("uuid" = String, Path), ("action" = Action, Path), HostParam),
    responses((status = 200, body = ActionResponse), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "invalid transition"), (status = 503, body = ErrorBody)))]
async fn vm_action(
    State(s): State<AppState>,
    Path((uuid, action)): Path<(String, String)>,
    ApiQuery(p): ApiQuery<HostParam>,
    body: Bytes,
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
