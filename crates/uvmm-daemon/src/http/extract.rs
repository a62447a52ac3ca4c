//! Extractors whose errors are JSON answers: path, query, body (within the size limit
//! and the request timeout), JSON body.

use super::{AppState, MAX_BODY};
use crate::http::error::RequestError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;

/// Query string extractor whose errors are JSON 400 answers.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = RequestError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| RequestError::Malformed(format!("invalid query: {}", e.body_text())))
    }
}

/// Path parameters whose errors are JSON 400 answers.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = RequestError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| RequestError::Malformed(format!("invalid path: {}", e.body_text())))
    }
}

/// A request body, read within the size limit and the request timeout.
pub struct ApiBody(pub Bytes);

impl FromRequest<AppState> for ApiBody {
    type Rejection = RequestError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let read = axum::body::to_bytes(req.into_body(), MAX_BODY);
        match tokio::time::timeout(state.request_timeout, read).await {
            Err(_) => Err(RequestError::BodyTimeout(format!(
                "the request body did not arrive within {} s",
                state.request_timeout.as_secs()
            ))),
            Ok(Ok(bytes)) => Ok(ApiBody(bytes)),
            Ok(Err(e)) => {
                let too_large = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                    || e.to_string().contains("length limit");
                if too_large {
                    Err(crate::http::guard::too_large(MAX_BODY))
                } else {
                    Err(RequestError::Malformed(format!(
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
    type Rejection = RequestError;
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
pub fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, RequestError> {
    let bad = |e: serde_json::Error| RequestError::Malformed(format!("invalid JSON body: {e}"));
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
                    #[allow(
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        reason = "a whole number below 2^53 in magnitude: exact in both types"
                    )]
                    let whole = if f < 0.0 {
                        Value::from(f as i64)
                    } else {
                        Value::from(f as u64)
                    };
                    *v = whole;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats),
        Value::Object(map) => map.values_mut().for_each(integral_floats),
        _ => {}
    }
}

/// The `If-Match` header of a change: the ETag the client saw (409 when the VM changed
/// since).
pub struct IfMatch(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = RequestError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if_match(&parts.headers).map(IfMatch)
    }
}

fn if_match(headers: &HeaderMap) -> Result<Option<String>, RequestError> {
    headers
        .get(axum::http::header::IF_MATCH)
        .map(|v| {
            v.to_str()
                .map(str::to_string)
                .map_err(|_| RequestError::Malformed("If-Match is not valid text".into()))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

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
}
