//! Version, the OpenAPI document and Prometheus metrics.

use super::AppState;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use uvmm_api::*;

#[utoipa::path(get, path = "/api/v1/version", responses((status = 200, body = VersionInfo)))]
pub(super) async fn version() -> Json<VersionInfo> {
    Json(VersionInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        api: "v1".to_string(),
    })
}

/// Directory mode: whether the directory answers, or uvmmd serves from its cache
/// (degraded); `mode: standalone` with `-b ""`.
#[utoipa::path(get, path = "/api/v1/directory", responses((status = 200, body = DirectoryStatus)))]
pub(super) async fn directory(State(s): State<AppState>) -> Json<DirectoryStatus> {
    Json(s.ops.directory_status())
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json",
    responses((status = 200, content_type = "application/json", body = Object, description = "the OpenAPI document")))]
pub(super) async fn openapi(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        (*s.openapi).clone(),
    )
}

/// Prometheus metrics (text format 0.0.4).
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, content_type = "text/plain", body = String, description = "Prometheus text format 0.0.4")))]
pub(super) async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.ops.metrics(),
    )
}
