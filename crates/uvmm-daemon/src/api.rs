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
///
/// JSON has one number type, and JSON Schema counts `5.0` as an integer; so does this
/// parser (serde alone refuses `5.0` for a `u64`): a number with a zero fraction is read as
/// that integer when it is exact, i.e. below 2^53.
fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, CoreError> {
    let bad = |e: serde_json::Error| CoreError::BadRequest(format!("invalid JSON body: {e}"));
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(bad)?;
    integral_floats(&mut value);
    serde_json::from_value(value).map_err(bad)
}

fn integral_floats(v: &mut serde_json::Value) {
    use serde_json::Value;
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                if f.fract() == 0.0 && f.abs() < EXACT {
                    *v = if f < 0.0 {
                        Value::from(f as i64)
                    } else {
                        Value::from(f as u64)
                    };
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats),
        Value::Object(map) => map.values_mut().for_each(integral_floats),
        _ => {}
    }
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

/// The empty query of paths without parameters: unknown parameters are refused. Also the
/// body an action may have (nothing, or `{}`).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
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
        ResyncNotice,
        ErrorBody,
        ErrorInfo,
        ErrorCode,
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

/// Operations that run on a host's worker (libvirt calls): they can also meet a conflict
/// with the host's state (409), a driver that cannot do it (501), a libvirt failure (502),
/// an unavailable host (503) and a host that does not answer in time (504).
const HOST_CALLS: &[&str] = &[
    "create_vm",
    "edit_vm",
    "delete_vm",
    "vm_xml",
    "add_disk",
    "remove_disk",
    "set_boot",
    "change_media",
    "add_nic",
    "remove_nic",
    "vm_action",
    "restore",
    "create_pool",
    "show_pool",
    "pool_action",
    "delete_pool",
    "create_volume",
    "clone_volume",
    "resize_volume",
    "delete_volume",
];

/// Operations that name something that may not exist in the body or query (a host, a
/// profile, a backup) rather than in the path, so they can answer 404 as well.
const NOT_FOUND_BEYOND_PATH: &[&str] = &["list_vms", "list_pools", "create_vm", "restore"];

/// Operations that can refuse with 409 without calling a host: a host that is already
/// managed, a UUID or backup name found more than once.
const CONFLICTS: &[&str] = &[
    "add_host",
    "show_vm",
    "show_backup",
    "backup_version",
    "backup_diff",
];

/// Operations that read a request body (so they can time out on it or find it too large).
fn reads_body(op: &utoipa::openapi::path::Operation) -> bool {
    op.request_body.is_some()
}

/// The error answers of every operation, all in the JSON envelope (`ErrorBody`): what any
/// request can get (bad input, missing token, refused origin, non-JSON body, server fault,
/// too many connections), and per operation what its work can lead to. There is no
/// `default` answer: every status an operation gives is listed, and the schemathesis test
/// holds the daemon to that.
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
            let id = op.operation_id.clone().unwrap_or_default();
            let has_path_params = op
                .parameters
                .iter()
                .flatten()
                .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Path));
            let host_call = HOST_CALLS.contains(&id.as_str());
            let mut codes: Vec<(&str, &str)> = vec![
                ("400", "invalid input: path, query or body"),
                ("401", "the TCP listener needs the API token"),
                ("403", "foreign Host or Origin, or refused by policy"),
                (
                    "415",
                    "a request body that is not declared application/json",
                ),
                ("500", "internal error"),
            ];
            if reads_body(op) || id == "vm_action" {
                codes.push(("408", "the request body did not arrive in time"));
                codes.push(("413", "the request body is too large"));
            }
            if has_path_params || NOT_FOUND_BEYOND_PATH.contains(&id.as_str()) {
                codes.push(("404", "no such VM, host, pool, volume, profile or backup"));
            }
            if host_call || CONFLICTS.contains(&id.as_str()) {
                codes.push((
                    "409",
                    "conflicts with the current state (details in the message)",
                ));
            }
            if host_call {
                codes.push(("501", "the hypervisor driver cannot do this"));
                codes.push(("502", "libvirt failed"));
                codes.push(("504", "the host did not answer in time"));
            }
            codes.push((
                "503",
                if host_call {
                    "the host is unavailable, or too many connections"
                } else {
                    "too many connections"
                },
            ));
            for (code, what) in codes {
                op.responses
                    .responses
                    .entry(code.to_string())
                    .or_insert_with(|| error(what));
            }
        }
    }
}

/// TCP clients authenticate with the API token (see `http_guard` and docs/security.md);
/// the UNIX socket is guarded by its file mode and ignores the header.
fn document_security(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        "api_token".to_string(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The token in the state directory's api-token file (0600). Needed on the \
                     TCP listener; the UNIX socket is guarded by its file mode and needs none.",
                ))
                .build(),
        ),
    );
    doc.security = Some(vec![SecurityRequirement::new(
        "api_token",
        Vec::<String>::new(),
    )]);
}

/// The path parameters mean the same on every route, so they are described once, here.
fn path_parameter(name: &str) -> Option<(serde_json::Value, &'static str)> {
    use serde_json::json;
    Some(match name {
        "uuid" => (
            json!({"type": "string", "format": "uuid", "pattern": UUID_PATTERN}),
            "VM UUID (the 32 hex digits without dashes are accepted too)",
        ),
        "id" => (
            json!({"type": "string", "minLength": 1}),
            "host id (`GET /api/v1/hosts`) or the host's URL-encoded URI",
        ),
        "pool" => (
            json!({"type": "string", "minLength": 1}),
            "name of a storage pool of the host",
        ),
        "volume" => (
            json!({"type": "string", "minLength": 1}),
            "name of a volume of the pool",
        ),
        "target" => (
            json!({"type": "string", "minLength": 1}),
            "the drive's target device, e.g. `vda`, `sda`, `hdc`",
        ),
        "mac" => (
            json!({"type": "string", "pattern": uvmm_api::patterns::MAC}),
            "MAC address of the interface, e.g. `52:54:00:12:34:56`",
        ),
        "vm" => (
            json!({"type": "string", "minLength": 1}),
            "name or UUID of a backed-up VM",
        ),
        "version" => (
            json!({"type": "integer", "minimum": 1, "maximum": u32::MAX}),
            "version number (`GET /api/v1/backups/{vm}`)",
        ),
        "name" => (json!({"type": "string", "minLength": 1}), "profile name"),
        _ => return None,
    })
}

/// A UUID as the server reads it: dashed, or 32 hex digits.
pub const UUID_PATTERN: &str = "^([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|[0-9A-Fa-f]{32})$";

/// Apply `path_parameter` to every path parameter; the routes' own declarations (the
/// actions' enums) stay.
fn describe_path_params(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for item in paths.values_mut().filter_map(|i| i.as_object_mut()) {
        for op in item.values_mut() {
            let Some(params) = op.get_mut("parameters").and_then(|p| p.as_array_mut()) else {
                continue;
            };
            for p in params {
                if p["in"] != "path" {
                    continue;
                }
                let name = p["name"].as_str().unwrap_or_default().to_string();
                if let Some((schema, what)) = path_parameter(&name) {
                    p["schema"] = schema;
                    p["description"] = serde_json::Value::from(what);
                }
            }
        }
    }
}

/// What the server enforces but utoipa does not write down: the variants of `DiskSource`
/// refuse unknown fields too (`deny_unknown_fields` on the enum); `CreatePoolRequest` is one
/// flat object that refuses unknown fields (utoipa renders the flattened `NewPool` as an
/// `allOf`, where `additionalProperties` cannot be said), whose required fields depend on
/// the pool's kind; a `RestoreRequest` has either `backup` or `xml` and `host`.
fn tighten_schemas(doc: &mut serde_json::Value) {
    use serde_json::{json, Value};
    if let Some(variants) = doc["components"]["schemas"]["DiskSource"]["oneOf"].as_array_mut() {
        for v in variants {
            v["additionalProperties"] = Value::Bool(false);
        }
    }
    // An event stream's schema describes each message (OpenAPI 3.1 has no `itemSchema`
    // yet): `event:` is the kind, `id:` the sequence number, `data:` JSON.
    doc["paths"]["/api/v1/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
        ["schema"] = json!({
        "type": "object",
        "required": ["data"],
        "properties": {
            "event": { "$ref": "#/components/schemas/EventKind" },
            "id": { "type": "string", "pattern": "^[0-9]+$" },
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {
                    "oneOf": [
                        { "$ref": "#/components/schemas/Event" },
                        { "$ref": "#/components/schemas/ResyncNotice" }
                    ]
                }
            }
        }
    });
    let schemas = &mut doc["components"]["schemas"];
    // An IP address or nothing (`validate::graphics` parses it as `std::net::IpAddr`).
    schemas["VmPatch"]["properties"]["vnc_listen"] = json!({
        "type": ["string", "null"],
        "description": "An IP address (IPv4 or IPv6), or empty for the default.",
        "anyOf": [
            { "type": "null" },
            { "type": "string", "maxLength": 0 },
            { "type": "string", "format": "ipv4" },
            { "type": "string", "format": "ipv6" }
        ]
    });
    // A restore names a backup, or brings a definition and the host to put it on.
    schemas["RestoreRequest"]["oneOf"] = json!([
        {
            "required": ["backup"],
            "properties": { "backup": { "type": "string" }, "xml": { "type": "null" } }
        },
        {
            "required": ["xml", "host"],
            "properties": {
                "xml": { "type": "string" },
                "host": { "type": "string" },
                "backup": { "type": "null" }
            }
        }
    ]);
    let pool = schemas["NewPool"].clone();
    let request = schemas["CreatePoolRequest"].clone();
    let (Some(pool_props), Some(parts)) =
        (pool["properties"].as_object(), request["allOf"].as_array())
    else {
        return;
    };
    let mut props = pool_props.clone();
    for part in parts {
        if let Some(p) = part["properties"].as_object() {
            props.extend(p.clone());
        }
    }
    // The fields each kind needs (`uvmm_model::storage::pool_xml`), given as strings.
    let kinds: [(&str, &[&str]); 6] = [
        ("dir", &["target_path"]),
        ("fs", &["source_path", "target_path"]),
        ("netfs", &["source_host", "source_path", "target_path"]),
        ("logical", &["source_name"]),
        ("iscsi", &["source_host", "source_name"]),
        (
            "iscsi-direct",
            &["source_host", "source_name", "initiator_iqn"],
        ),
    ];
    // `source_name` is a volume group for logical pools and a target IQN for iSCSI.
    let iqn = json!({ "type": "string", "pattern": "^(iqn|eui)\\.[A-Za-z0-9.:-]{0,219}$" });
    let vg = json!({ "type": "string", "pattern": uvmm_api::patterns::OBJECT_NAME });
    let one_of: Vec<Value> = kinds
        .iter()
        .map(|(kind, needs)| {
            let mut p = serde_json::Map::new();
            p.insert("kind".into(), json!({ "const": kind }));
            for n in *needs {
                p.insert((*n).into(), json!({ "type": "string" }));
            }
            match *kind {
                "logical" => p.insert("source_name".into(), vg.clone()),
                "iscsi" | "iscsi-direct" => p.insert("source_name".into(), iqn.clone()),
                "fs" => p.insert(
                    "source_format".into(),
                    json!({ "enum": uvmm_model::storage::FS_FORMATS }),
                ),
                "netfs" => p.insert(
                    "source_format".into(),
                    json!({ "enum": uvmm_model::storage::NETFS_FORMATS }),
                ),
                _ => None,
            };
            json!({ "properties": p, "required": needs })
        })
        .collect();
    schemas["CreatePoolRequest"] = json!({
        "type": "object",
        "description": request["description"],
        "properties": props,
        "required": ["name", "kind"],
        "additionalProperties": false,
        "oneOf": one_of,
    });
}

/// Unsigned integers are documented with the range of their Rust type (utoipa gives the
/// minimum only), so that the fuzzer knows what the server refuses: a `u32` above
/// 4294967295 or a `u64` above 18446744073709551615 is a 400. A maximum set by hand (a
/// smaller one the server checks) stays.
fn bound_integers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let is_integer = match map.get("type") {
                Some(Value::String(t)) => t == "integer",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "integer"),
                _ => false,
            };
            let unsigned = map
                .get("minimum")
                .and_then(Value::as_f64)
                .is_some_and(|m| m >= 0.0);
            if is_integer && unsigned && !map.contains_key("maximum") {
                let format = map.get("format").and_then(Value::as_str).unwrap_or("");
                if format == "int32" {
                    map.insert("maximum".into(), Value::from(u32::MAX));
                    // int32 is signed; the range of a u32 needs int64.
                    map.insert("format".into(), Value::from("int64"));
                } else {
                    map.insert("maximum".into(), Value::from(u64::MAX));
                    // int64 is signed; a u64 has no standard format.
                    map.remove("format");
                }
            }
            map.values_mut().for_each(bound_integers);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// Everything added to the document the routes and types give (see the functions above).
/// The last steps work on the JSON form: utoipa's types cannot read all of it back.
fn finish_document(mut doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    document_security(&mut doc);
    document_errors(&mut doc);
    let mut json = serde_json::to_value(&doc).unwrap_or_default();
    describe_path_params(&mut json);
    tighten_schemas(&mut json);
    bound_integers(&mut json);
    json
}

/// The OpenAPI document as served at `/api/v1/openapi.json`.
pub fn openapi_document() -> serde_json::Value {
    let (_, doc) = api_routes().split_for_parts();
    finish_document(doc)
}

/// The whole HTTP application: routes, the guard's checks, JSON errors for unknown paths
/// and methods, and the web UI (`web.rs`) outside `/api/`.
pub fn router(mut state: AppState, guard: GuardConfig) -> Router {
    let (routes, doc) = api_routes().split_for_parts();
    // The query parameters are the routes' own; finishing adds none.
    let params = crate::http_guard::declared_params(&doc);
    let doc = finish_document(doc);
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
        // The web UI's pages and files (they cannot carry the API token).
        .layer(axum::middleware::from_fn_with_state(web, crate::web::serve))
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
            CoreError::Internal("internal error (the daemon log has the details)".into())
                .into_response()
        }
    }
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
    request_body(content = Option<NoParams>, description = "none, or an empty object `{}`", content_type = "application/json"),
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
    // Actions take no body; anything but nothing, `null` or `{}` is a mistake worth
    // reporting.
    if !body.iter().all(u8::is_ascii_whitespace) && body.trim_ascii() != b"null" {
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
                .json_data(ResyncNotice {
                    kind: EventKind::Resync,
                    missed: n,
                })
                .unwrap_or_else(|_| SseEvent::default().comment("unserialisable event")),
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

#[utoipa::path(post, path = "/api/v1/hosts/{id}/pools/{pool}/{action}", params(("id" = String, Path), ("pool" = String, Path), ("action" = String, Path, pattern = "^(start|stop|refresh)$", description = "start, stop or refresh")),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                out.push((method.clone(), path.clone(), op.clone()));
            }
        }
        out
    }

    #[test]
    fn every_operation_lists_its_errors_and_no_default() {
        let doc = openapi_document();
        let ops = operations(&doc);
        assert!(ops.len() >= 37, "{} operations", ops.len());
        for (method, path, op) in ops {
            let id = op["operationId"].as_str().unwrap().to_string();
            let responses = op["responses"].as_object().unwrap();
            assert!(
                !responses.contains_key("default"),
                "{method} {path}: a default answer hides what is not listed"
            );
            for code in ["400", "401", "403", "415", "500", "503"] {
                assert!(responses.contains_key(code), "{method} {path}: no {code}");
            }
            for (code, answer) in responses.iter().filter(|(c, _)| !c.starts_with('2')) {
                assert_eq!(
                    answer["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {code}: not the error envelope"
                );
            }
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let path_params: Vec<&Value> = params.iter().filter(|p| p["in"] == "path").collect();
            if !path_params.is_empty() {
                assert!(responses.contains_key("404"), "{method} {path}: no 404");
            }
            for p in path_params {
                let name = p["name"].as_str().unwrap();
                assert!(
                    name == "action" || path_parameter(name).is_some(),
                    "{method} {path}: path parameter {name} is not described"
                );
                assert!(
                    p["schema"].get("pattern").is_some()
                        || p["schema"].get("minLength").is_some()
                        || p["schema"].get("minimum").is_some()
                        || p["schema"].get("$ref").is_some(),
                    "{method} {path}: {name} has no constraint: {p}"
                );
            }
            if HOST_CALLS.contains(&id.as_str()) {
                for code in ["409", "501", "502", "504"] {
                    assert!(responses.contains_key(code), "{method} {path}: no {code}");
                }
            }
        }
        for name in HOST_CALLS
            .iter()
            .chain(NOT_FOUND_BEYOND_PATH)
            .chain(CONFLICTS)
        {
            assert!(
                doc.to_string()
                    .contains(&format!("\"operationId\":\"{name}\"")),
                "{name} is listed but is no operation"
            );
        }
        // The token of the TCP listener.
        assert_eq!(doc["security"], json!([{ "api_token": [] }]));
        assert_eq!(
            doc["components"]["securitySchemes"]["api_token"]["scheme"],
            "bearer"
        );
    }

    #[test]
    fn schemas_state_what_the_server_checks() {
        let doc = openapi_document();
        let s = &doc["components"]["schemas"];
        let get = |path: &str, method: &str, param: &str| -> Value {
            doc["paths"][path][method]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == param)
                .unwrap()["schema"]
                .clone()
        };
        assert_eq!(get("/api/v1/vms/{uuid}", "get", "uuid")["format"], "uuid");
        assert_eq!(
            get("/api/v1/vms", "get", "sort")["pattern"],
            "^-?(name|host|state|memory|vcpus|cpu)$"
        );
        assert_eq!(
            get("/api/v1/vms", "get", "state")["$ref"],
            "#/components/schemas/VmState"
        );
        assert_eq!(
            get("/api/v1/vms", "get", "limit")["maximum"],
            json!(u64::MAX)
        );
        assert_eq!(
            get("/api/v1/backups/{vm}/versions/{version}", "get", "version")["maximum"],
            json!(u32::MAX)
        );
        assert_eq!(s["VmSummary"]["properties"]["uuid"]["format"], "uuid");
        assert_eq!(s["VmPatch"]["properties"]["memory_kib"]["minimum"], 16384);
        assert_eq!(
            s["VmPatch"]["properties"]["vcpus"]["maximum"],
            json!(u32::MAX)
        );
        for body in [
            "AddHostRequest",
            "CreateVmRequest",
            "VmPatch",
            "DiskAddRequest",
            "MediaRequest",
            "NicAddRequest",
            "RestoreRequest",
            "CreatePoolRequest",
            "CreateVolumeRequest",
            "CloneVolumeRequest",
            "ResizeVolumeRequest",
            "NewVolume",
        ] {
            assert_eq!(
                s[body]["additionalProperties"],
                json!(false),
                "{body} refuses unknown fields but does not say so"
            );
        }
        for v in s["DiskSource"]["oneOf"].as_array().unwrap() {
            assert_eq!(v["additionalProperties"], json!(false));
        }
        assert_eq!(s["CreatePoolRequest"]["oneOf"].as_array().unwrap().len(), 6);
        let events = &doc["paths"]["/api/v1/events"]["get"]["responses"]["200"]["content"]
            ["text/event-stream"]["schema"];
        assert_eq!(
            events["properties"]["data"]["contentMediaType"],
            "application/json"
        );
        let ct = |path: &str, method: &str| -> Vec<String> {
            doc["paths"][path][method]["responses"]["200"]["content"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        assert_eq!(ct("/api/v1/vms/{uuid}/xml", "get"), ["application/xml"]);
        assert_eq!(ct("/api/v1/backups/{vm}/diff", "get"), ["text/plain"]);
        assert_eq!(ct("/metrics", "get"), ["text/plain"]);
    }

    #[test]
    fn json_bodies_take_integral_floats_as_integers() {
        #[derive(Debug, Deserialize)]
        struct Size {
            size_bytes: u64,
        }
        let table: [(&str, Option<u64>); 6] = [
            (r#"{"size_bytes": 5}"#, Some(5)),
            (r#"{"size_bytes": 5.0}"#, Some(5)),
            (r#"{"size_bytes": 268435457.0}"#, Some(268_435_457)),
            (r#"{"size_bytes": 5.5}"#, None),
            (r#"{"size_bytes": -1.0}"#, None),
            // Beyond 2^53 a float is not exact: refused rather than rounded.
            (r#"{"size_bytes": 1e300}"#, None),
        ];
        for (body, want) in table {
            let got = parse_body::<Size>(&Bytes::from(body))
                .ok()
                .map(|s| s.size_bytes);
            assert_eq!(got, want, "{body}");
        }
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
