//! The OpenAPI document: the schemas every operation may refer to, and what is added to
//! what the routes and types give (errors, security, path parameters, tightened schemas).

use super::api_routes;
use utoipa::OpenApi;
use uvmm_api::*;

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
        EventWire,
        EventKind,
        Task,
        TaskKind,
        TaskState,
        CancelMode,
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
        PoolCommand,
        PoolCreated,
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
    "cancel_task",
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

/// TCP clients authenticate with the API token (see `guard` and docs/security.md);
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

/// Every operation says what a caller needs for it (`super::PERMISSIONS`).
fn document_permissions(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for item in paths.values_mut().filter_map(|i| i.as_object_mut()) {
        for op in item.values_mut().filter_map(|o| o.as_object_mut()) {
            let id = op.get("operationId").and_then(|i| i.as_str()).unwrap_or("");
            if let Some(p) = super::permission(id) {
                op.insert("x-uvmm-permission".into(), p.as_str().into());
            }
        }
    }
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
        "task" => (
            json!({"type": "string", "format": "uuid", "pattern": UUID_PATTERN}),
            "task id (`GET /api/v1/tasks`)",
        ),
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
pub(super) fn finish_document(mut doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    document_security(&mut doc);
    document_errors(&mut doc);
    let mut json = serde_json::to_value(&doc).unwrap_or_default();
    document_permissions(&mut json);
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

    /// Every `$ref` names a schema the document has.
    #[test]
    fn every_reference_resolves() {
        fn walk(v: &Value, refs: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        refs.push(r.clone());
                    }
                    m.values().for_each(|x| walk(x, refs));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, refs)),
                _ => {}
            }
        }
        let doc = openapi_document();
        let mut refs = Vec::new();
        walk(&doc, &mut refs);
        assert!(refs.len() > 50);
        for r in refs {
            let name = r.trim_start_matches("#/components/schemas/");
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{r} does not resolve"
            );
        }
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
}
