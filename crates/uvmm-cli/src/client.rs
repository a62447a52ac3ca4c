//! A small HTTP/1.1 client for the daemon's API over its UNIX socket (or plain TCP on
//! loopback until TLS exists, with the API token).

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use uvmm_api::ErrorBody;

#[derive(Debug, Clone)]
pub enum Target {
    Unix(PathBuf),
    /// TCP needs the API token (uvmmd's `<state_dir>/api-token`).
    Tcp {
        authority: String,
        token: String,
    },
}

/// Where the CLI finds the API token for TCP: `UVMM_TOKEN`, else the file given with
/// `--token-file` / `UVMM_TOKEN_FILE`, else uvmmd's default state directory.
pub const DEFAULT_TOKEN_FILE: &str = "/var/lib/uvmm/api-token";

/// Read the API token (see `DEFAULT_TOKEN_FILE`).
pub fn load_token(file: Option<&std::path::Path>) -> Result<String, ClientError> {
    if let Ok(t) = std::env::var("UVMM_TOKEN") {
        if !t.trim().is_empty() {
            return Ok(t.trim().to_string());
        }
    }
    let path = file
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_TOKEN_FILE));
    std::fs::read_to_string(&path)
        .map(|t| t.trim().to_string())
        .map_err(|e| {
            ClientError::Usage(format!(
                "the TCP listener needs uvmmd's API token: cannot read {}: {e} (give it with UVMM_TOKEN or --token-file; only who may read that file may use TCP)",
                path.display()
            ))
        })
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
    /// A TCP target; the token is read only here, so a bad URL is reported first.
    pub fn from_url(
        url: &str,
        token_file: Option<&std::path::Path>,
    ) -> Result<Target, ClientError> {
        if let Some(rest) = url.strip_prefix("http://") {
            let authority = rest.trim_end_matches('/').to_string();
            if authority.is_empty() || authority.contains('/') {
                return Err(ClientError::Usage(format!(
                    "--url {url}: expected http://HOST:PORT"
                )));
            }
            let token = load_token(token_file)?;
            Ok(Target::Tcp { authority, token })
        } else if url.starts_with("https://") {
            Err(ClientError::Usage(
                "--url https://...: TLS is not implemented yet; use the UNIX socket or http://127.0.0.1:2106".into(),
            ))
        } else {
            Err(ClientError::Usage(format!(
                "--url {url}: expected http://HOST:PORT"
            )))
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Unix(p) => p.display().to_string(),
            Target::Tcp { authority, .. } => format!("http://{authority}"),
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
        let http = |e: hyper::Error| ClientError::Http(e.to_string());
        match &self.target {
            Target::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(connect_err)?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .map_err(http)?;
                tokio::spawn(conn);
                sender.send_request(req).await.map_err(http)
            }
            Target::Tcp { authority, .. } => {
                let stream = tokio::net::TcpStream::connect(authority.as_str())
                    .await
                    .map_err(connect_err)?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .map_err(http)?;
                tokio::spawn(conn);
                sender.send_request(req).await.map_err(http)
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
            Target::Tcp { authority, token } => req
                .header("host", authority.as_str())
                .header("authorization", format!("Bearer {token}")),
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
        let mut req = self.build(method, path, body)?;
        if let Some(tag) = if_match {
            let value = hyper::header::HeaderValue::from_str(tag)
                .map_err(|_| ClientError::Usage(format!("invalid ETag '{tag}'")))?;
            req.headers_mut().insert(hyper::header::IF_MATCH, value);
        }
        let resp = self.send(req).await?;
        let status = resp.status();
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
        Ok(bytes)
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
        match Target::from_url("http://127.0.0.1:2106", Some(&token)) {
            Ok(Target::Tcp { authority, token }) => {
                assert_eq!(
                    (authority.as_str(), token.as_str()),
                    ("127.0.0.1:2106", "abc")
                )
            }
            other => panic!("{other:?}"),
        }
        let missing = dir.path().join("missing");
        assert!(Target::from_url("http://127.0.0.1:2106", Some(&missing)).is_err());
        assert!(Target::from_url("https://h:2106", Some(&token)).is_err());
        assert!(Target::from_url("ftp://h", Some(&token)).is_err());
        assert!(Target::from_url("http://", Some(&token)).is_err());
    }
}
