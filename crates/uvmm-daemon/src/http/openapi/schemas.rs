//! What the server enforces but the route and type declarations do not say: path
//! parameters described once, tightened body schemas, integer ranges.

/// The path parameters mean the same on every route, so they are described once, here.
pub(super) fn path_parameter(name: &str) -> Option<(serde_json::Value, &'static str)> {
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
pub(super) fn describe_path_params(doc: &mut serde_json::Value) {
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
pub(super) fn tighten_schemas(doc: &mut serde_json::Value) {
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
pub(super) fn bound_integers(v: &mut serde_json::Value) {
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
