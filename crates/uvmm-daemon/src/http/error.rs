//! The one place that maps errors to HTTP answers: status, code and the JSON envelope.

use crate::error::CoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use uvmm_api::{ErrorBody, ErrorInfo};
use uvmm_libvirt::ErrorKind;

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
    use uvmm_libvirt::LibvirtError;
    use uvmm_model::{Action, VmState};

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
