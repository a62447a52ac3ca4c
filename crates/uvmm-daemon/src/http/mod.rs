//! The HTTP API: the route table (every path and method with its handler and its OpenAPI
//! declaration), the application state and the order of the middleware. Handlers live in
//! one file per resource; they parse, call one operation and wrap the answer. Errors
//! become JSON in `error.rs`, the only place that maps them to status codes.

mod access;
pub mod auth;
mod backups;
mod conditional;
pub mod conn;
mod console;
mod devices;
pub mod error;
mod events;
pub mod extract;
pub mod guard;
mod hosts;
mod meta;
mod moves;
pub mod openapi;
mod profiles;
mod snapshots;
mod storage;
mod targets;
mod tasks;
mod vms;
pub mod web;
mod ws_token;

use crate::ops::Ops;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router};
use error::RequestError;
use guard::Guard;
pub use openapi::openapi_document;
use openapi::{finish_document, ApiDoc};
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::watch;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uvmm_api::*;

#[derive(Clone)]
pub struct AppState {
    pub ops: Arc<Ops>,
    /// Flips to true at shutdown; ends the event streams so the server can stop.
    pub shutdown: watch::Receiver<bool>,
    /// How long a client may take to send a request body.
    pub request_timeout: std::time::Duration,
    /// The rendered OpenAPI document (set by `router`).
    pub openapi: Arc<bytes::Bytes>,
    /// Logins, tokens, sessions, the audit log.
    pub auth: Arc<auth::AuthState>,
    /// Each route's rule (`auth::ROUTES`) by method and template (set by `router`).
    pub routes: Arc<std::collections::HashMap<(axum::http::Method, String), &'static auth::Rule>>,
    /// The open VNC consoles per user and VM (their limit).
    pub consoles: Arc<console::ConsoleSlots>,
}

impl AppState {
    pub fn new(
        ops: Arc<Ops>,
        shutdown: watch::Receiver<bool>,
        request_timeout: std::time::Duration,
        auth: Arc<auth::AuthState>,
    ) -> AppState {
        AppState {
            ops,
            shutdown,
            request_timeout,
            openapi: Arc::default(),
            auth,
            routes: Arc::default(),
            consoles: Arc::default(),
        }
    }
}

/// The largest request body accepted (a restored definition is the largest legitimate one).
pub const MAX_BODY: usize = 1024 * 1024;

/// The empty query of paths without parameters: unknown parameters are refused. Also the
/// body an action may have (nothing, or `{}`).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// The route table: every path and method with its handler and its OpenAPI declaration.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(meta::version))
        .routes(routes!(meta::openapi))
        .routes(routes!(meta::directory))
        .routes(routes!(hosts::list_hosts, hosts::add_host))
        .routes(routes!(hosts::show_host, hosts::remove_host))
        .routes(routes!(profiles::list_profiles))
        .routes(routes!(profiles::show_profile))
        .routes(routes!(vms::list_vms, vms::create_vm))
        .routes(routes!(vms::show_vm, vms::edit_vm, vms::delete_vm))
        .routes(routes!(vms::vm_xml))
        .routes(routes!(console::console))
        .routes(routes!(devices::add_disk))
        .routes(routes!(devices::remove_disk))
        .routes(routes!(devices::set_boot))
        .routes(routes!(devices::change_media))
        .routes(routes!(devices::add_nic))
        .routes(routes!(devices::remove_nic))
        .routes(routes!(vms::vm_action))
        .routes(routes!(moves::migrate_vm))
        .routes(routes!(moves::evacuate_host))
        .routes(routes!(moves::failover_vm))
        .routes(routes!(
            snapshots::list_snapshots,
            snapshots::create_snapshot
        ))
        .routes(routes!(snapshots::revert_snapshot))
        .routes(routes!(snapshots::delete_snapshot))
        .routes(routes!(snapshots::rename_vm))
        .routes(routes!(snapshots::clone_vm))
        .routes(routes!(events::events))
        .routes(routes!(backups::list_backups))
        .routes(routes!(backups::prune_backups))
        .routes(routes!(backups::show_backup))
        .routes(routes!(backups::backup_version))
        .routes(routes!(backups::backup_diff))
        .routes(routes!(backups::restore))
        .routes(routes!(storage::list_pools))
        .routes(routes!(storage::create_pool))
        .routes(routes!(storage::show_pool, storage::delete_pool))
        .routes(routes!(storage::pool_action))
        .routes(routes!(storage::create_volume))
        .routes(routes!(storage::delete_volume))
        .routes(routes!(storage::clone_volume))
        .routes(routes!(storage::resize_volume))
        .routes(routes!(tasks::list_tasks))
        .routes(routes!(tasks::show_task, tasks::cancel_task))
        .routes(routes!(meta::metrics))
        .routes(routes!(access::login))
        .routes(routes!(access::logout))
        .routes(routes!(access::whoami))
        .routes(routes!(access::list_tokens, access::create_token))
        .routes(routes!(access::revoke_token))
}

/// The whole HTTP application: routes, the guard's checks, JSON errors for unknown paths
/// and methods, and the web UI (`web.rs`) outside `/api/`.
pub fn router(mut state: AppState, guard: GuardConfig) -> Router {
    let (routes, doc) = api_routes().split_for_parts();
    // The query parameters are the routes' own; finishing adds none.
    let params = crate::http::guard::declared_params(&doc);
    let doc = finish_document(doc);
    state.routes = Arc::new(auth::rules_by_route(&doc));
    state.openapi = Arc::new(bytes::Bytes::from(
        serde_json::to_vec(&doc).unwrap_or_default(),
    ));
    let web = web::WebState::new(guard.tcp_hosts.clone());
    let guard = Guard::new(guard.tcp_hosts, params);
    routes
        .route_layer(axum::middleware::from_fn_with_state(
            guard.clone(),
            crate::http::guard::request_checks,
        ))
        // Before the checks of the body and parameters: a stranger learns nothing.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .fallback(auth::no_route)
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
            crate::http::guard::connection_checks,
        ))
        // The web UI's pages and files (they cannot carry the API token).
        .layer(axum::middleware::from_fn_with_state(web, web::serve))
        // Outermost: a panic anywhere below becomes a JSON 500.
        .layer(axum::middleware::from_fn(catch_panic))
        .with_state(state)
}

/// A panic in a handler becomes a 500 in the JSON envelope (without this, hyper would drop
/// the connection and the client would see no answer at all). The panic itself is logged by
/// the panic hook; this adds which request it was.
async fn catch_panic(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use futures_util::FutureExt;
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(resp) => resp,
        Err(_) => {
            tracing::error!(%method, %path, "a request handler panicked");
            RequestError::Panicked.into_response()
        }
    }
}

/// What the guard is told at start (see `guard`).
#[derive(Clone, Default)]
pub struct GuardConfig {
    /// The `Host` names a plain-HTTP TCP listener answers to (DNS rebinding); `None`: any
    /// (the TLS listener, where a rebound name fails the certificate check).
    pub tcp_hosts: Option<std::collections::HashSet<String>>,
}

/// Every request counts as someone watching (see `Shared::stats_interval_now`).
async fn note_demand(
    State(s): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    s.ops.shared.demand.touch();
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Every operation of the route table has a rule, every rule a route; reads need
    /// no more than `read`, changes more, and the document shows each rule.
    #[test]
    fn every_route_has_a_permission() {
        use uvmm_auth::{Access, Permission};
        let doc = openapi_document();
        let mut ids = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap().to_string();
                let r = auth::rule(&id);
                assert!(r.is_some(), "{method} {path} ({id}) has no rule");
                let r = r.unwrap();
                assert_eq!(op["x-uvmm-permission"], auth::access_name(r.access));
                match (method.as_str(), r.access) {
                    ("get", Access::Needs(p)) if id.ends_with("tokens") => {
                        assert_eq!(p, Permission::Tokens)
                    }
                    // The console's handshake is a GET, but it opens the VM's screen and
                    // keyboard: an operator's right.
                    ("get", Access::Needs(p)) if id == "console" => {
                        assert_eq!(p, Permission::Console)
                    }
                    ("get", a) => assert!(
                        matches!(a, Access::Needs(Permission::Read) | Access::Authenticated),
                        "{method} {path}"
                    ),
                    (_, Access::Needs(p)) => {
                        assert_ne!(p, Permission::Read, "{method} {path} changes something")
                    }
                    (_, Access::Public) => assert_eq!(id, "login"),
                    (_, Access::Authenticated) => assert_eq!(id, "logout"),
                }
                ids.push(id);
            }
        }
        for r in auth::ROUTES {
            assert!(
                ids.iter().any(|i| i == r.operation),
                "{} is in ROUTES but no route",
                r.operation
            );
        }
        assert_eq!(ids.len(), auth::ROUTES.len());
    }

    #[tokio::test]
    async fn a_panic_is_a_json_500() {
        use tower::ServiceExt;
        let app: Router = Router::new()
            .route(
                "/boom",
                axum::routing::get(|| async {
                    if true {
                        panic!("deliberate");
                    }
                    "unreachable"
                }),
            )
            .layer(axum::middleware::from_fn(catch_panic));
        let resp = app
            .oneshot(
                axum::http::Request::get("/boom")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "internal");
    }
}
