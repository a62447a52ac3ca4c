//! The one place that maps errors to HTTP answers: status, code and the JSON envelope.
//! The rule (docs/api.md): 400 the request does not fit the document, 404 it names
//! something that does not exist, 409 it does not fit the current state, 403 the policy
//! refuses it, 5xx the daemon, libvirt or the host failed.

use crate::error::{
    BackupError, ConsoleError, Error, HostError, JobError, LookupError, MigrateError, StorageError,
    TaskError, VmError,
};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use uvmm_api::{ErrorBody, ErrorInfo};
use uvmm_backup::restore::RestoreError;
use uvmm_backup::store::BackupError as StoreError;
use uvmm_libvirt::{ErrorKind, LibvirtError};
use uvmm_model::change::ChangeError;

/// What is wrong with a request as such, found before any operation runs.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The path, query, headers or body do not fit the document.
    #[error("{0}")]
    Malformed(String),
    /// TCP without the API token, or with a wrong one.
    #[error("{0}")]
    Unauthorized(String),
    /// A foreign `Host` or `Origin`, a cross-site request.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body did not arrive in time.
    #[error("{0}")]
    BodyTimeout(String),
    #[error("no such API path")]
    NoRoute,
    /// A path outside the API that names no file of the web UI.
    #[error("no such file of the web UI")]
    NoFile,
    /// The accept loop did not say who is on the other end (a bug).
    #[error("internal error: the request's peer is unknown")]
    NoPeer,
    /// Authentication failed (no or a bad credential, an expired session, a missing CSRF
    /// token, an account without a role).
    #[error(transparent)]
    Auth(#[from] uvmm_auth::AuthError),
    /// Authenticated, but the grants do not allow this.
    #[error(transparent)]
    Denied(#[from] uvmm_auth::Denied),
    /// Something outside the caller's scope: answered like something that does not exist.
    #[error("{0}")]
    Hidden(String),
    /// A login that failed.
    #[error(transparent)]
    Login(#[from] uvmm_auth::login::LoginError),
    /// Creating, listing or revoking a token failed.
    #[error(transparent)]
    Token(#[from] uvmm_auth::tokens::TokenError),
    /// A handler panicked (a bug; the panic hook logged it).
    #[error("internal error (the daemon log has the details)")]
    Panicked,
}

/// Status and code of an error. Every variant is decided here, so a new one cannot get a
/// status by accident.
pub fn classify(e: &Error) -> (StatusCode, &'static str) {
    match e {
        Error::Vm(v) => vm(v),
        Error::Storage(s) => storage(s),
        Error::Host(h) => host(h),
        Error::Backup(b) => backup(b),
        Error::Lookup(l) => lookup(l),
        Error::Job(j) => job(j),
        Error::Request(r) => request(r),
        Error::Task(TaskError::NotFound(_)) => NOT_FOUND,
        Error::Task(TaskError::Ended { .. } | TaskError::NotCancellable { .. }) => CONFLICT,
        Error::Migrate(MigrateError::Refused(_)) => (StatusCode::CONFLICT, "migration_refused"),
        Error::Migrate(MigrateError::Failed(_)) => (StatusCode::BAD_GATEWAY, "migration_failed"),
        Error::Console(c) => match c {
            ConsoleError::NotRunning { .. }
            | ConsoleError::NoVnc
            | ConsoleError::Unreachable { .. } => CONFLICT,
            ConsoleError::Busy { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_consoles"),
            ConsoleError::Connect { .. } => (StatusCode::BAD_GATEWAY, "vnc_unreachable"),
            ConsoleError::Vm(v) => vm(v),
        },
        Error::NoProfile { .. } => NOT_FOUND,
        Error::NotSupported { .. } => NOT_SUPPORTED,
        Error::Internal { .. } => INTERNAL,
    }
}

const BAD_REQUEST: (StatusCode, &str) = (StatusCode::BAD_REQUEST, "bad_request");
const FORBIDDEN: (StatusCode, &str) = (StatusCode::FORBIDDEN, "forbidden");
const NOT_FOUND: (StatusCode, &str) = (StatusCode::NOT_FOUND, "not_found");
const CONFLICT: (StatusCode, &str) = (StatusCode::CONFLICT, "conflict");
const INTERNAL: (StatusCode, &str) = (StatusCode::INTERNAL_SERVER_ERROR, "internal");
const NOT_SUPPORTED: (StatusCode, &str) = (StatusCode::NOT_IMPLEMENTED, "not_supported");

fn libvirt(e: &LibvirtError) -> (StatusCode, &'static str) {
    match e.kind {
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::InvalidOperation | ErrorKind::Exists | ErrorKind::Aborted => CONFLICT,
        ErrorKind::InvalidInput => BAD_REQUEST,
        ErrorKind::NotSupported => NOT_SUPPORTED,
        ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::Other => {
            (StatusCode::BAD_GATEWAY, "libvirt_error")
        }
    }
}

fn vm(e: &VmError) -> (StatusCode, &'static str) {
    match e {
        VmError::NotFound { .. } => NOT_FOUND,
        VmError::Invalid(_) | VmError::Memory(_) | VmError::Merge(_) | VmError::Bus(_) => {
            BAD_REQUEST
        }
        VmError::Conflict { .. }
        | VmError::Stale
        | VmError::NoFreeTarget(_)
        | VmError::HostCannot(_) => CONFLICT,
        VmError::Transition(_) => (StatusCode::CONFLICT, "invalid_transition"),
        VmError::Refused { .. } => FORBIDDEN,
        VmError::Change(c) => match c {
            ChangeError::Invalid(_) | ChangeError::Memory(_) => BAD_REQUEST,
            ChangeError::Conflict(_) => CONFLICT,
        },
        VmError::Unreadable(_) | VmError::Internal { .. } | VmError::Random(_) => INTERNAL,
        VmError::Storage(s) => storage(s),
        VmError::Libvirt(l) => libvirt(l),
    }
}

fn storage(e: &StorageError) -> (StatusCode, &'static str) {
    match e {
        StorageError::NotFound { .. } => NOT_FOUND,
        StorageError::Invalid(_) | StorageError::Size(_) => BAD_REQUEST,
        StorageError::Conflict { .. } | StorageError::Refused { .. } => CONFLICT,
        StorageError::Libvirt(l) => libvirt(l),
    }
}

fn host(e: &HostError) -> (StatusCode, &'static str) {
    match e {
        HostError::BadUri(_) => BAD_REQUEST,
        HostError::Refused { .. } => FORBIDDEN,
        HostError::AlreadyManaged { .. } => CONFLICT,
        HostError::Persist { .. } | HostError::Load { .. } | HostError::Vanished => INTERNAL,
    }
}

fn backup(e: &BackupError) -> (StatusCode, &'static str) {
    match e {
        BackupError::NoStore
        | BackupError::NoVersion { .. }
        | BackupError::HostNotManaged { .. } => NOT_FOUND,
        BackupError::Store(s) => match s {
            StoreError::NotFound(_) | StoreError::NoVersion { .. } => NOT_FOUND,
            StoreError::Ambiguous { .. } => CONFLICT,
            StoreError::Invalid(_) => BAD_REQUEST,
            StoreError::Io { .. } => INTERNAL,
        },
        BackupError::Restore(r) => match r {
            RestoreError::Refused(_) => CONFLICT,
            RestoreError::Invalid(_) => BAD_REQUEST,
            RestoreError::Libvirt(l) => libvirt(l),
        },
        BackupError::NeitherOrBoth | BackupError::NotADefinition(_) | BackupError::BadValues(_) => {
            BAD_REQUEST
        }
        BackupError::NoHost | BackupError::TooBig(_) => CONFLICT,
        BackupError::Vm(v) => vm(v),
        BackupError::Libvirt(l) => libvirt(l),
    }
}

fn lookup(e: &LookupError) -> (StatusCode, &'static str) {
    match e {
        LookupError::BadUuid(_) | LookupError::BadState(_) | LookupError::BadSort(_) => BAD_REQUEST,
        LookupError::NoHost(_) | LookupError::NoVm { .. } => NOT_FOUND,
        LookupError::Ambiguous { .. } => (StatusCode::CONFLICT, "ambiguous"),
    }
}

fn job(e: &JobError) -> (StatusCode, &'static str) {
    match e {
        JobError::HostUnavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "host_unavailable"),
        JobError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
        JobError::NoWorker { .. } => NOT_FOUND,
        JobError::WorkerStopped { .. } => INTERNAL,
        JobError::Cancelled => CONFLICT,
    }
}

fn request(e: &RequestError) -> (StatusCode, &'static str) {
    match e {
        RequestError::Malformed(_) => BAD_REQUEST,
        RequestError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
        RequestError::Forbidden(_) => FORBIDDEN,
        RequestError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        RequestError::UnsupportedMediaType(_) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        }
        RequestError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
        RequestError::NoRoute | RequestError::NoFile => NOT_FOUND,
        RequestError::Panicked | RequestError::NoPeer => INTERNAL,
        RequestError::Auth(a) => match a.status_code() {
            401 => (StatusCode::UNAUTHORIZED, "unauthorized"),
            403 => FORBIDDEN,
            _ => INTERNAL,
        },
        RequestError::Denied(_) => FORBIDDEN,
        RequestError::Hidden(_) => NOT_FOUND,
        RequestError::Login(l) => login(l),
        RequestError::Token(t) => {
            use uvmm_auth::tokens::TokenError as T;
            match t {
                T::Invalid | T::Expired(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
                T::Exists(_) | T::TooMany => CONFLICT,
                T::NotFound(_) => NOT_FOUND,
                T::BadName(_) | T::BadExpiry => BAD_REQUEST,
                T::Damaged { .. } | T::File(_) | T::Random(_) => INTERNAL,
            }
        }
    }
}

/// Status and code of a failed login (also for its audit record).
pub fn login(e: &uvmm_auth::login::LoginError) -> (StatusCode, &'static str) {
    use uvmm_auth::login::LoginError as L;
    match e {
        L::Refused { .. } => (StatusCode::UNAUTHORIZED, "unauthorized"),
        L::Limited(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
        L::Busy | L::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        L::Random(_) => INTERNAL,
    }
}

/// The machine-readable details some errors carry.
fn details(e: &Error) -> Option<serde_json::Value> {
    match e {
        Error::Lookup(LookupError::Ambiguous { candidates, .. }) => {
            Some(serde_json::json!({ "candidates": candidates }))
        }
        Error::Vm(VmError::Transition(t)) => Some(serde_json::json!({
            "action": t.action,
            "state": t.state,
        })),
        _ => None,
    }
}

/// The JSON envelope of an error.
pub fn body(e: &Error) -> ErrorBody {
    ErrorBody {
        error: ErrorInfo {
            code: classify(e).1.to_string(),
            message: e.to_string(),
            details: details(e),
        },
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = classify(&self);
        if status.is_server_error() {
            tracing::warn!(code, "request failed: {self}");
        }
        (status, Json(body(&self))).into_response()
    }
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        Error::from(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uvmm_model::hosts::HostUri;
    use uvmm_model::validate::Invalid;
    use uvmm_model::{Action, VmState};

    #[test]
    fn status_table() {
        let lv = |kind| LibvirtError::new(kind, "x");
        let table: Vec<(Error, u16, &str)> = vec![
            (VmError::not_found("x").into(), 404, "not_found"),
            (
                VmError::Invalid(Invalid("x".into())).into(),
                400,
                "bad_request",
            ),
            (
                LookupError::Ambiguous {
                    uuid: "u".into(),
                    candidates: vec![],
                }
                .into(),
                409,
                "ambiguous",
            ),
            (
                VmError::from(Action::Pause.check(VmState::Shutoff).unwrap_err()).into(),
                409,
                "invalid_transition",
            ),
            (VmError::Stale.into(), 409, "conflict"),
            (VmError::refused("x").into(), 403, "forbidden"),
            (
                JobError::HostUnavailable {
                    host: "h".into(),
                    reason: "r".into(),
                }
                .into(),
                503,
                "host_unavailable",
            ),
            (
                JobError::Timeout {
                    host: "h".into(),
                    secs: 1,
                }
                .into(),
                504,
                "timeout",
            ),
            (
                VmError::from(lv(ErrorKind::NotFound)).into(),
                404,
                "not_found",
            ),
            (
                VmError::from(lv(ErrorKind::InvalidOperation)).into(),
                409,
                "conflict",
            ),
            (
                StorageError::from(lv(ErrorKind::InvalidInput)).into(),
                400,
                "bad_request",
            ),
            (
                StorageError::from(lv(ErrorKind::NotSupported)).into(),
                501,
                "not_supported",
            ),
            (
                StorageError::from(lv(ErrorKind::Other)).into(),
                502,
                "libvirt_error",
            ),
            (
                StorageError::refused("y", lv(ErrorKind::Other)).into(),
                409,
                "conflict",
            ),
            (
                RequestError::Unauthorized("x".into()).into(),
                401,
                "unauthorized",
            ),
            (RequestError::Forbidden("x".into()).into(), 403, "forbidden"),
            (RequestError::NoRoute.into(), 404, "not_found"),
            (RequestError::NoFile.into(), 404, "not_found"),
            (RequestError::TooLarge("x".into()).into(), 413, "too_large"),
            (
                RequestError::UnsupportedMediaType("x".into()).into(),
                415,
                "unsupported_media_type",
            ),
            (
                RequestError::BodyTimeout("x".into()).into(),
                408,
                "request_timeout",
            ),
            (Error::internal("x"), 500, "internal"),
        ];
        for (err, status, code) in table {
            assert_eq!(classify(&err).0.as_u16(), status, "{err:?}");
            assert_eq!(classify(&err).1, code, "{err:?}");
            assert_eq!(body(&err).error.code, code);
            // The document's list of codes has it.
            let listed: Result<uvmm_api::ErrorCode, _> =
                serde_json::from_value(serde_json::Value::from(code));
            assert!(listed.is_ok(), "{code} is not in ErrorCode");
        }
    }

    #[test]
    fn libvirt_refusals_read_in_libvirt_words_and_failures_say_libvirt() {
        let e: Error = VmError::from(LibvirtError::new(ErrorKind::NotFound, "no domain")).into();
        assert_eq!(e.to_string(), "no domain");
        let e: Error = VmError::from(LibvirtError::new(ErrorKind::Other, "boom")).into();
        assert_eq!(e.to_string(), "libvirt: boom");
        let e: Error =
            StorageError::from(LibvirtError::new(ErrorKind::Other, "line one\nsecret")).into();
        assert_eq!(e.to_string(), "libvirt: line one (more in the daemon log)");
    }

    /// libvirt's "not supported" errors → what the client reads: the operation and the kind
    /// of host in words, never libvirt's API function name.
    #[test]
    fn unsupported_operations_are_said_in_words() {
        let no_support = "this function is not supported by the connection driver: ";
        let lv = |kind, code, message: String| LibvirtError {
            kind,
            code,
            message,
        };
        let test_host = HostUri::parse("test:///default").unwrap();
        let qemu_host = HostUri::parse("qemu+ssh://kvm1/system").unwrap();
        // (error, the host of the job (None: not known), status, code, message)
        type Row<'a> = (Error, Option<(&'a str, &'a HostUri)>, u16, &'a str, &'a str);
        let table: Vec<Row<'_>> = vec![
            (
                StorageError::from(lv(
                    ErrorKind::NotSupported,
                    3,
                    format!("{no_support}virStorageVolResize"),
                ))
                .into(),
                Some(("default", &test_host)),
                501,
                "not_supported",
                "resizing a volume is not supported on host default (libvirt's test driver)",
            ),
            (
                VmError::from(lv(
                    ErrorKind::NotSupported,
                    3,
                    format!("{no_support}virDomainBlockCopy"),
                ))
                .into(),
                Some(("kvm1", &qemu_host)),
                501,
                "not_supported",
                "copying a running VM's disk is not supported on host kvm1 (QEMU/KVM)",
            ),
            (
                StorageError::refused(
                    "cannot wipe",
                    lv(
                        ErrorKind::NotSupported,
                        3,
                        format!("{no_support}virStorageVolWipe"),
                    ),
                )
                .into(),
                Some(("default", &test_host)),
                501,
                "not_supported",
                "wiping a volume is not supported on host default (libvirt's test driver)",
            ),
            (
                VmError::from(lv(
                    ErrorKind::NotSupported,
                    3,
                    format!("{no_support}virDomainFrobnicate"),
                ))
                .into(),
                Some(("default", &test_host)),
                501,
                "not_supported",
                "this operation is not supported on host default (libvirt's test driver)",
            ),
            // Where the host is not known, still no function name.
            (
                BackupError::from(lv(
                    ErrorKind::NotSupported,
                    3,
                    format!("{no_support}virDomainDefineXMLFlags"),
                ))
                .into(),
                None,
                501,
                "not_supported",
                "defining a VM is not supported on this host",
            ),
            (
                StorageError::refused(
                    "cannot wipe",
                    lv(
                        ErrorKind::NotSupported,
                        3,
                        format!("{no_support}virStorageVolWipe"),
                    ),
                )
                .into(),
                None,
                409,
                "conflict",
                "cannot wipe: wiping a volume is not supported on this host",
            ),
            // libvirt said it in words: its words stay (VIR_ERR_OPERATION_UNSUPPORTED).
            (
                VmError::from(lv(
                    ErrorKind::NotSupported,
                    84,
                    "Operation not supported: live disk copy needs a running VM".into(),
                ))
                .into(),
                Some(("default", &test_host)),
                501,
                "not_supported",
                "libvirt: Operation not supported: live disk copy needs a running VM",
            ),
            // Other libvirt errors are not touched.
            (
                VmError::from(lv(ErrorKind::NotFound, 42, "Domain not found".into())).into(),
                Some(("default", &test_host)),
                404,
                "not_found",
                "Domain not found",
            ),
        ];
        for (err, host, status, code, message) in table {
            let err = match host {
                Some((id, uri)) => err.on_host(id, uri),
                None => err,
            };
            assert_eq!(classify(&err).0.as_u16(), status, "{err:?}");
            let b = body(&err).error;
            assert_eq!(b.code, code, "{err:?}");
            assert_eq!(b.message, message, "{err:?}");
            assert!(!b.message.contains("virDomain") && !b.message.contains("virStorage"));
        }
    }
}
