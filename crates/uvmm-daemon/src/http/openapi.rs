//! The OpenAPI document: the schemas every operation may refer to, and what is added to
//! what the routes and types give (errors, security, path parameters, tightened schemas).

use super::api_routes;
use utoipa::OpenApi;
use uvmm_api::*;

mod schemas;
pub use schemas::UUID_PATTERN;
use schemas::{bound_integers, describe_path_params, tighten_schemas};

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
        MigrationProgress,
        MigrateRequest,
        MigrateResult,
        EvacuateRequest,
        EvacuateResult,
        EvacuatedVm,
        FailoverRequest,
        FailoverResult,
        CreateSnapshotRequest,
        Snapshot,
        SnapshotDeleted,
        SnapshotKindName,
        RenameRequest,
        CloneRequest,
        CloneModeName,
        CopyStorageMode,
        ResyncNotice,
        ErrorBody,
        ErrorInfo,
        ErrorCode,
        VersionInfo,
        DirectoryStatus,
        RefusedHost,
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
                ("401", "no valid credentials: a token, a session, or an account on the socket"),
                ("403", "the caller's roles do not allow this here, a missing CSRF token, a foreign Host or Origin, or refused by policy"),
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
                    "An API token (`uvmm token create`, `uvmm_…`) or the legacy token in the \
                     state directory's api-token file (admin). On TCP every route but the \
                     login needs this or the session cookie; the UNIX socket authenticates \
                     the peer's account instead (its groups' roles).",
                ))
                .build(),
        ),
    );
    components.security_schemes.insert(
        "session".to_string(),
        SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
            utoipa::openapi::security::ApiKeyValue::with_description(
                "__Host-uvmm-session",
                "The session of `POST /api/v1/login` (`uvmm-session` on plain HTTP). Every \
                 change also needs the session's `X-CSRF-Token` header.",
            ),
        )),
    );
    doc.security = Some(vec![
        SecurityRequirement::new("api_token", Vec::<String>::new()),
        SecurityRequirement::new("session", Vec::<String>::new()),
    ]);
}

/// Every operation says what a caller needs for it (`super::auth::ROUTES`).
fn document_permissions(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for item in paths.values_mut().filter_map(|i| i.as_object_mut()) {
        for op in item.values_mut().filter_map(|o| o.as_object_mut()) {
            let id = op.get("operationId").and_then(|i| i.as_str()).unwrap_or("");
            if let Some(r) = super::auth::rule(id) {
                if r.access == uvmm_auth::Access::Public {
                    op.insert("security".into(), serde_json::json!([]));
                }
                op.insert(
                    "x-uvmm-permission".into(),
                    super::auth::access_name(r.access).into(),
                );
            }
        }
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
mod tests;
