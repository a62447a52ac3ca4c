use super::schemas::path_parameter;
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
        // A 3xx (the full list's 304 Not Modified) is no error and has no body.
        for (code, answer) in responses.iter().filter(|(c, _)| c.starts_with('3')) {
            assert!(
                answer.get("content").is_none(),
                "{method} {path} {code}: a body on a redirection or 304"
            );
        }
        // 1xx: the console's 101 Switching Protocols, the websocket's start, not an error.
        for (code, answer) in responses
            .iter()
            .filter(|(c, _)| !c.starts_with('1') && !c.starts_with('2') && !c.starts_with('3'))
        {
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
    // A token or a session on TCP; the login needs neither.
    assert_eq!(
        doc["security"],
        json!([{ "api_token": [] }, { "session": [] }])
    );
    assert_eq!(doc["paths"]["/api/v1/login"]["post"]["security"], json!([]));
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
