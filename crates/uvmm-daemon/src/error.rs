//! The daemon's error type and the one place that maps errors to HTTP answers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use uvmm_api::{ErrorBody, ErrorInfo, VmSummary};
use uvmm_libvirt::{ErrorKind, LibvirtError};
use uvmm_model::state::TransitionError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Ambiguous {
        message: String,
        candidates: Vec<VmSummary>,
    },
    #[error("{0}")]
    InvalidTransition(#[from] TransitionError),
    #[error("{0}")]
    Conflict(String),
    #[error("host {host} is unavailable: {reason}")]
    HostUnavailable { host: String, reason: String },
    #[error("host {host} did not answer within {secs} s")]
    Timeout { host: String, secs: u64 },
    #[error("libvirt: {0}")]
    Libvirt(LibvirtError),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    RequestTimeout(String),
}

/// A libvirt message as clients may see it: its first line only, printable, bounded.
/// libvirt's parse errors quote the file they read on the following lines (`test:///FILE`
/// with a file that is not XML shows its first line), so the rest goes to the log only.
pub fn client_safe(message: &str) -> String {
    let first = message.lines().next().unwrap_or("").trim();
    let mut out: String = first
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    if message.trim_end().contains('\n') || first.chars().count() > 300 {
        out.push_str(" (more in the daemon log)");
    }
    out
}

impl From<LibvirtError> for CoreError {
    fn from(mut e: LibvirtError) -> Self {
        let safe = client_safe(&e.message);
        if safe != e.message {
            tracing::info!("libvirt said: {}", e.message);
            e.message = safe;
        }
        match e.kind {
            ErrorKind::NotFound => CoreError::NotFound(e.message),
            ErrorKind::InvalidOperation => CoreError::Conflict(e.message),
            ErrorKind::InvalidInput => CoreError::BadRequest(e.message),
            ErrorKind::Exists => CoreError::Conflict(e.message),
            _ => CoreError::Libvirt(e),
        }
    }
}

impl CoreError {
    pub fn status(&self) -> StatusCode {
        match self {
            CoreError::NotFound(_) => StatusCode::NOT_FOUND,
            CoreError::BadRequest(_) => StatusCode::BAD_REQUEST,
            CoreError::Ambiguous { .. } => StatusCode::CONFLICT,
            CoreError::InvalidTransition(_) => StatusCode::CONFLICT,
            CoreError::Conflict(_) => StatusCode::CONFLICT,
            CoreError::HostUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            CoreError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            CoreError::Libvirt(e) if e.kind == ErrorKind::NotSupported => {
                StatusCode::NOT_IMPLEMENTED
            }
            CoreError::Libvirt(_) => StatusCode::BAD_GATEWAY,
            CoreError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            CoreError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            CoreError::Forbidden(_) => StatusCode::FORBIDDEN,
            CoreError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            CoreError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            CoreError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            CoreError::NotFound(_) => "not_found",
            CoreError::BadRequest(_) => "bad_request",
            CoreError::Ambiguous { .. } => "ambiguous",
            CoreError::InvalidTransition(_) => "invalid_transition",
            CoreError::Conflict(_) => "conflict",
            CoreError::HostUnavailable { .. } => "host_unavailable",
            CoreError::Timeout { .. } => "timeout",
            CoreError::Libvirt(e) if e.kind == ErrorKind::NotSupported => "not_supported",
            CoreError::Libvirt(_) => "libvirt_error",
            CoreError::Internal(_) => "internal",
            CoreError::Unauthorized(_) => "unauthorized",
            CoreError::Forbidden(_) => "forbidden",
            CoreError::TooLarge(_) => "too_large",
            CoreError::UnsupportedMediaType(_) => "unsupported_media_type",
            CoreError::RequestTimeout(_) => "request_timeout",
        }
    }

    pub fn body(&self) -> ErrorBody {
        let details = match self {
            CoreError::Ambiguous { candidates, .. } => {
                serde_json::to_value(serde_json::json!({ "candidates": candidates })).ok()
            }
            CoreError::InvalidTransition(t) => Some(serde_json::json!({
                "action": t.action,
                "state": t.state,
            })),
            _ => None,
        };
        ErrorBody {
            error: ErrorInfo {
                code: self.code().to_string(),
                message: self.to_string(),
                details,
            },
        }
    }
}

impl IntoResponse for CoreError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(code = self.code(), "request failed: {self}");
        }
        (status, Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uvmm_model::{Action, VmState};

    #[test]
    fn client_safe_messages() {
        let table = [
            ("plain", "plain"),
            (
                "/etc/shadow:1: Start tag expected, '<' not found\nroot:$y$j9T$secret:19000::\n^",
                "/etc/shadow:1: Start tag expected, '<' not found (more in the daemon log)",
            ),
            ("tab\there", "tabhere"),
            ("", ""),
        ];
        for (input, want) in table {
            assert_eq!(client_safe(input), want, "{input:?}");
        }
        assert!(client_safe(&"x".repeat(1000)).len() < 340);
    }

    #[test]
    fn status_table() {
        let lv = |kind| LibvirtError::new(kind, "x");
        let table: Vec<(CoreError, u16, &str)> = vec![
            (CoreError::NotFound("x".into()), 404, "not_found"),
            (CoreError::BadRequest("x".into()), 400, "bad_request"),
            (
                CoreError::Ambiguous {
                    message: "x".into(),
                    candidates: vec![],
                },
                409,
                "ambiguous",
            ),
            (
                Action::Pause.check(VmState::Shutoff).unwrap_err().into(),
                409,
                "invalid_transition",
            ),
            (
                CoreError::HostUnavailable {
                    host: "h".into(),
                    reason: "r".into(),
                },
                503,
                "host_unavailable",
            ),
            (
                CoreError::Timeout {
                    host: "h".into(),
                    secs: 1,
                },
                504,
                "timeout",
            ),
            (lv(ErrorKind::NotFound).into(), 404, "not_found"),
            (lv(ErrorKind::InvalidOperation).into(), 409, "conflict"),
            (lv(ErrorKind::InvalidInput).into(), 400, "bad_request"),
            (lv(ErrorKind::NotSupported).into(), 501, "not_supported"),
            (lv(ErrorKind::Other).into(), 502, "libvirt_error"),
            (CoreError::Unauthorized("x".into()), 401, "unauthorized"),
            (CoreError::Forbidden("x".into()), 403, "forbidden"),
            (CoreError::TooLarge("x".into()), 413, "too_large"),
            (
                CoreError::UnsupportedMediaType("x".into()),
                415,
                "unsupported_media_type",
            ),
        ];
        for (err, status, code) in table {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            assert_eq!(err.code(), code, "{err:?}");
            assert_eq!(err.body().error.code, code);
            // The document's list of codes has it.
            let listed: Result<uvmm_api::ErrorCode, _> =
                serde_json::from_value(serde_json::Value::from(code));
            assert!(listed.is_ok(), "{code} is not in ErrorCode");
        }
    }
}
