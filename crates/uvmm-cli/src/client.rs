//! A small HTTP/1.1 client for the daemon's API over its UNIX socket, or over TCP (HTTPS,
//! or plain HTTP on loopback) with a token or a login session (see `remote.rs`).

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use uvmm_api::ErrorBody;

#[derive(Debug, Clone)]
pub enum Target {
    Unix(PathBuf),
    /// TCP: HTTPS (or plain HTTP on loopback), with a credential (see `remote.rs`).
    Tcp {
        authority: String,
        tls: Option<crate::remote::Tls>,
        auth: Credential,
    },
}

/// What a TCP request authenticates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Nothing (only for `uvmm login`).
    None,
    /// `Authorization: Bearer` (an API token, or uvmmd's legacy api-token).
    Bearer(String),
    /// A login session (`uvmm login`): the cookie and its CSRF token.
    Session { cookie: String, csrf: String },
}

/// Where the CLI finds the API token for TCP: `UVMM_TOKEN`, else the file given with
/// `--token-file` / `UVMM_TOKEN_FILE`, else uvmmd's default state directory.
pub const DEFAULT_TOKEN_FILE: &str = "/var/lib/uvmm/api-token";

/// The token of `UVMM_TOKEN` or of a file (`None`: neither was given, or the default
/// file cannot be read).
pub fn token_from(file: Option<&std::path::Path>) -> Result<Option<String>, ClientError> {
    if let Ok(t) = std::env::var("UVMM_TOKEN") {
        if !t.trim().is_empty() {
            return Ok(Some(t.trim().to_string()));
        }
    }
    match file {
        Some(path) => std::fs::read_to_string(path)
            .map(|t| Some(t.trim().to_string()))
            .map_err(|e| {
                ClientError::Usage(format!(
                    "cannot read the token file {}: {e}",
                    path.display()
                ))
            }),
        None => Ok(std::fs::read_to_string(DEFAULT_TOKEN_FILE)
            .ok()
            .map(|t| t.trim().to_string())),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to uvmmd at {target}: {source} (is uvmmd running? choose the socket with -u PATH or UVMM_SOCKET)")]
    Connect {
        target: String,
        source: std::io::Error,
    },
    #[error("connection to uvmmd failed: {0}")]
    Http(String),
    /// The TLS handshake failed (an unknown or changed certificate says what to do).
    #[error("{0}")]
    Tls(String),
    /// The daemon answered with an error.
    #[error("{}", .body.error.message)]
    Api { status: StatusCode, body: ErrorBody },
    #[error("unexpected answer from uvmmd ({status}): {text}")]
    Unexpected { status: StatusCode, text: String },
    #[error("{0}")]
    Usage(String),
    /// The request could not be carried out (exit code 1).
    #[error("{0}")]
    Failed(String),
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Unix(p) => p.display().to_string(),
            Target::Tcp { authority, tls, .. } => format!(
                "{}://{authority}",
                if tls.is_some() { "https" } else { "http" }
            ),
        }
    }
}

pub struct Client {
    target: Target,
}

impl Client {
    pub fn new(target: Target) -> Client {
        Client { target }
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, ClientError> {
        let connect_err = |source| ClientError::Connect {
            target: self.target.describe(),
            source,
        };
        match &self.target {
            Target::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(connect_err)?;
                over(stream, req).await
            }
            Target::Tcp { authority, tls, .. } => {
                let stream = tokio::net::TcpStream::connect(authority.as_str())
                    .await
                    .map_err(connect_err)?;
                match tls {
                    None => over(stream, req).await,
                    Some(tls) => {
                        let stream = tls
                            .connect(stream)
                            .await
                            .map_err(|e| ClientError::Tls(crate::remote::describe_tls_error(&e)))?;
                        over(stream, req).await
                    }
                }
            }
        }
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let bytes = body
            .map(|b| Bytes::from(serde_json::to_vec(b).unwrap_or_default()))
            .unwrap_or_default();
        let mut req = Request::builder().method(method).uri(path);
        req = match &self.target {
            Target::Unix(_) => req.header("host", "uvmmd"),
            Target::Tcp {
                authority, auth, ..
            } => {
                let req = req.header("host", authority.as_str());
                match auth {
                    Credential::None => req,
                    Credential::Bearer(token) => {
                        req.header("authorization", format!("Bearer {token}"))
                    }
                    Credential::Session { cookie, csrf } => req
                        .header("cookie", cookie.as_str())
                        .header(uvmm_auth::session::CSRF_HEADER, csrf.as_str()),
                }
            }
        };
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        req.body(Full::new(bytes))
            .map_err(|e| ClientError::Usage(format!("cannot build the request for {path}: {e}")))
    }

    /// Send a request and decode a JSON answer; error answers become `ClientError::Api`.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, ClientError> {
        self.call_with(method, path, body, None).await
    }

    /// Like `call`, with an optional `If-Match` header.
    pub async fn call_with<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        if_match: Option<&str>,
    ) -> Result<T, ClientError> {
        let bytes = self.raw(method, path, body, if_match).await?;
        let status = StatusCode::OK;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Unexpected {
            status,
            text: format!("{e}: {}", String::from_utf8_lossy(&bytes)),
        })
    }

    /// A request whose answer has no body (204).
    pub async fn call_empty(&self, method: Method, path: &str) -> Result<(), ClientError> {
        self.raw(method, path, None, None).await.map(|_| ())
    }

    /// A request whose answer is text (e.g. XML).
    pub async fn call_text(&self, method: Method, path: &str) -> Result<String, ClientError> {
        let bytes = self.raw(method, path, None, None).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        if_match: Option<&str>,
    ) -> Result<Bytes, ClientError> {
        self.raw_with_headers(method, path, body, if_match)
            .await
            .map(|(b, _)| b)
    }

    /// A JSON request whose answer's `Set-Cookie` matters too (the login).
    pub async fn call_for_cookie<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(T, Option<String>), ClientError> {
        let (bytes, headers) = self
            .raw_with_headers(Method::POST, path, Some(body), None)
            .await?;
        let cookie = headers
            .get(hyper::header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|c| c.split(';').next())
            .map(str::to_string);
        let value = serde_json::from_slice(&bytes).map_err(|e| ClientError::Unexpected {
            status: StatusCode::OK,
            text: format!("{e}: {}", String::from_utf8_lossy(&bytes)),
        })?;
        Ok((value, cookie))
    }

    async fn raw_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        if_match: Option<&str>,
    ) -> Result<(Bytes, hyper::HeaderMap), ClientError> {
        let mut req = self.build(method, path, body)?;
        if let Some(tag) = if_match {
            let value = hyper::header::HeaderValue::from_str(tag)
                .map_err(|_| ClientError::Usage(format!("invalid ETag '{tag}'")))?;
            req.headers_mut().insert(hyper::header::IF_MATCH, value);
        }
        let resp = self.send(req).await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => ClientError::Api { status, body },
                Err(_) => ClientError::Unexpected {
                    status,
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                },
            });
        }
        Ok((bytes, headers))
    }

    /// Follow a Server-Sent Events stream, calling `on_data` with each `data:` payload
    /// until it returns false (`StreamEnd::Stopped`) or the daemon ends the stream
    /// (`StreamEnd::Closed`, e.g. because it stopped): callers must tell the two apart.
    pub async fn stream_events(
        &self,
        path: &str,
        mut on_data: impl FnMut(&str) -> bool,
    ) -> Result<StreamEnd, ClientError> {
        let resp = self.send(self.build(Method::GET, path, None)?).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            return Err(ClientError::Unexpected {
                status,
                text: String::new(),
            });
        }
        let mut body = resp.into_body();
        let mut buf = String::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Http(e.to_string()))?;
            let Some(chunk) = frame.data_ref() else {
                continue;
            };
            buf.push_str(&String::from_utf8_lossy(chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if !data.is_empty() && !on_data(&data.join("\n")) {
                    return Ok(StreamEnd::Stopped);
                }
            }
        }
        Ok(StreamEnd::Closed)
    }
}

/// One request on a fresh connection (UNIX, TCP or TLS).
async fn over<IO>(io: IO, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, ClientError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http = |e: hyper::Error| ClientError::Http(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(http)?;
    tokio::spawn(conn);
    sender.send_request(req).await.map_err(http)
}

/// Why an event stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The caller had enough.
    Stopped,
    /// The daemon closed the stream (it stopped, or restarted).
    Closed,
}

/// Percent-encode a path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_urls() {
        assert_eq!(enc("test:///default"), "test%3A%2F%2F%2Fdefault");
        assert_eq!(enc("web-01"), "web-01");
        assert_eq!(enc("a b&c"), "a%20b%26c");
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("api-token");
        std::fs::write(&token, "abc\n").unwrap();
        assert_eq!(token_from(Some(&token)).unwrap().as_deref(), Some("abc"));
        let missing = dir.path().join("missing");
        assert!(token_from(Some(&missing)).is_err());
    }
}
