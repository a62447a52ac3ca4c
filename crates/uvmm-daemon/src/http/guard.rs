//! The checks every request passes before a handler sees it, in one place:
//!
//! 1. Who the caller is and what it may do is `auth.rs` (after routing); the legacy API
//!    token (`<state_dir>/api-token`, 0600) is made here.
//! 2. On a plain-HTTP listener `Host` must name the listener (DNS rebinding), an `Origin`
//!    must be the listener itself, and a browser's cross-site fetch
//!    (`Sec-Fetch-Site: cross-site`) is refused.
//! 3. A request body must be declared `application/json`: a web page can send `text/plain`
//!    and form bodies across sites without asking, but not JSON.
//! 4. Query parameters that the route does not declare are refused (the declarations are
//!    the OpenAPI document's, so the document and the check cannot drift).
//! 5. Every request that changes something is logged once, with its caller (peer and
//!    user, see `caller.rs`) and outcome.

use crate::caller::{Caller, Peer};
use crate::http::error::RequestError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The name of the token file in the state directory.
pub const TOKEN_FILE: &str = "api-token";

/// What the guard needs to know; built once at start.
pub struct Guard {
    /// `Host` values the TCP listener answers to (lower case, with port); `None`: any.
    tcp_hosts: Option<HashSet<String>>,
    /// Declared query parameters per (method, route template).
    params: HashMap<(Method, String), HashSet<String>>,
}

/// Read the API token, creating it (0600, 256 random bits) when it does not exist.
pub fn load_or_create_token(state_dir: &Path) -> Result<(String, PathBuf), String> {
    let path = state_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim().to_string();
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{} is readable by others (mode {mode:o}); make it 0600 or delete it to get a new token",
                    path.display()
                ));
            }
            if token.len() < 32 || !token.chars().all(|c| c.is_ascii_graphic()) {
                return Err(format!(
                    "{} does not hold a usable token (at least 32 printable characters); delete it to get a new one",
                    path.display()
                ));
            }
            Ok((token, path))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)
                .map_err(|e| format!("no random numbers for a new API token: {e}"))?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            f.write_all(format!("{token}\n").as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok((token, path))
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The `Host` values a TCP listener on `addr` answers to.
pub fn tcp_host_names(addr: SocketAddr, extra: &[String]) -> HashSet<String> {
    let port = addr.port();
    let mut names = HashSet::new();
    let ip = match addr.ip() {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    names.insert(format!("{ip}:{port}"));
    if addr.ip().is_loopback() {
        names.insert(format!("localhost:{port}"));
        names.insert(format!("127.0.0.1:{port}"));
        names.insert(format!("[::1]:{port}"));
    }
    for n in extra {
        // As given (a name with a port, or behind a proxy on the scheme's default port)
        // and with the listener's port.
        names.insert(n.to_ascii_lowercase());
        names.insert(format!("{}:{port}", n.to_ascii_lowercase()));
    }
    names
}

/// Declared query parameters per route, read from the OpenAPI document.
pub fn declared_params(
    doc: &utoipa::openapi::OpenApi,
) -> HashMap<(Method, String), HashSet<String>> {
    use utoipa::openapi::path::ParameterIn;
    let mut out = HashMap::new();
    for (path, item) in doc.paths.paths.iter() {
        let ops = [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::PATCH, &item.patch),
            (Method::DELETE, &item.delete),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            let names: HashSet<String> = op
                .parameters
                .iter()
                .flatten()
                .filter(|p| matches!(p.parameter_in, ParameterIn::Query))
                .map(|p| p.name.clone())
                .collect();
            out.insert((method, path.clone()), names);
        }
    }
    out
}

impl Guard {
    pub fn new(
        tcp_hosts: Option<HashSet<String>>,
        params: HashMap<(Method, String), HashSet<String>>,
    ) -> Arc<Guard> {
        Arc::new(Guard { tcp_hosts, params })
    }

    /// The checks of the connection and headers (1 and 2); runs before routing.
    fn check_headers(&self, peer: Option<&Peer>, headers: &HeaderMap) -> Result<(), RequestError> {
        let tcp = matches!(peer, Some(Peer::Tcp(_)) | None);
        let text = |name: header::HeaderName| -> Result<Option<&str>, RequestError> {
            headers
                .get(&name)
                .map(|v| {
                    v.to_str()
                        .map_err(|_| RequestError::Malformed(format!("header {name} is not text")))
                })
                .transpose()
        };
        if let (true, Some(names)) = (tcp, &self.tcp_hosts) {
            let host = text(header::HOST)?.unwrap_or("").to_ascii_lowercase();
            if !names.contains(&host) {
                return Err(RequestError::Forbidden(format!(
                    "Host '{host}' is not this listener's name; add it to [api] tcp_host_names if clients use it"
                )));
            }
        }
        if let Some(origin) = text(header::ORIGIN)? {
            let host = text(header::HOST)?.unwrap_or("").to_ascii_lowercase();
            let own = tcp
                && (origin.eq_ignore_ascii_case(&format!("http://{host}"))
                    || origin.eq_ignore_ascii_case(&format!("https://{host}")));
            if !own {
                return Err(RequestError::Forbidden(format!(
                    "cross-origin request from '{origin}' refused"
                )));
            }
        }
        if text(header::HeaderName::from_static("sec-fetch-site"))? == Some("cross-site") {
            return Err(RequestError::Forbidden("cross-site request refused".into()));
        }
        Ok(())
    }

    /// The checks that need the route (3 and 4).
    fn check_request(&self, req: &Request) -> Result<(), RequestError> {
        // A declared length over the limit is refused before a byte of the body is read
        // (with `Expect: 100-continue` the client never sends it).
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > u64::try_from(super::MAX_BODY).unwrap_or(u64::MAX)) {
            return Err(too_large(super::MAX_BODY));
        }
        let has_body = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim() != "0")
            .unwrap_or_else(|| req.headers().contains_key(header::TRANSFER_ENCODING));
        if has_body {
            let ct = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let essence = ct.split(';').next().unwrap_or("").trim();
            if !essence.eq_ignore_ascii_case("application/json") {
                return Err(RequestError::UnsupportedMediaType(format!(
                    "request bodies must be JSON with Content-Type: application/json (got '{}')",
                    printable(ct)
                )));
            }
        }
        let Some(route) = req.extensions().get::<MatchedPath>() else {
            return Ok(());
        };
        let Some(allowed) = self
            .params
            .get(&(req.method().clone(), route.as_str().to_string()))
        else {
            return Ok(());
        };
        if let Some(q) = req.uri().query() {
            for pair in q.split('&').filter(|p| !p.is_empty()) {
                let raw = pair.split_once('=').map(|(k, _)| k).unwrap_or(pair);
                let key = percent_decode(raw);
                if !allowed.contains(&key) {
                    let mut known: Vec<&str> = allowed.iter().map(String::as_str).collect();
                    known.sort_unstable();
                    return Err(RequestError::Malformed(format!(
                        "unknown query parameter '{}' (this path takes: {})",
                        printable(&key),
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    )));
                }
            }
        }
        Ok(())
    }
}

fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(80)
        .collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Middleware before routing: who may talk to us at all.
pub async fn connection_checks(
    State(guard): State<Arc<Guard>>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req.extensions().get::<Peer>().cloned();
    if let Err(e) = guard.check_headers(peer.as_ref(), req.headers()) {
        let unauthorized = matches!(e, RequestError::Unauthorized(_));
        tracing::info!(
            peer = %peer.as_ref().map(|p| p.to_string()).unwrap_or_default(),
            method = %req.method(),
            path = %req.uri().path(),
            "request refused: {e}"
        );
        let mut resp = e.into_response();
        if unauthorized {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // An unauthenticated client gets no kept-alive connection to sit on.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    next.run(req).await
}

/// Middleware after routing: body type, declared parameters, and the log of changes.
pub async fn request_checks(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    if let Err(e) = guard.check_request(&req) {
        return e.into_response();
    }
    let changing = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !changing {
        return next.run(req).await;
    }
    let caller = req.extensions().get::<Caller>().cloned();
    let peer = caller
        .as_ref()
        .map(|c| c.peer.to_string())
        .unwrap_or_default();
    let user = caller
        .as_ref()
        .map(|c| c.user().to_string())
        .unwrap_or_default();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let resp = next.run(req).await;
    let status = resp.status();
    let target = match &query {
        Some(q) => format!("{path}?{}", printable(q)),
        None => path,
    };
    if status.is_success() {
        tracing::info!(%peer, %user, %method, %target, status = status.as_u16(), "change");
    } else {
        tracing::info!(%peer, %user, %method, %target, status = status.as_u16(), "change refused or failed");
    }
    resp
}

/// 413 for a body over the limit, as a JSON error (axum's own answer is plain text).
pub fn too_large(limit: usize) -> RequestError {
    RequestError::TooLarge(format!("the request body is larger than {limit} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Arc<Guard> {
        let hosts = tcp_host_names(
            "127.0.0.1:2106".parse().unwrap(),
            &["uvmm.example.com".into()],
        );
        Guard::new(Some(hosts), HashMap::new())
    }

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn header_checks() {
        let g = guard();
        let tcp = Peer::Tcp("127.0.0.1:5000".parse().unwrap());
        let unix = Peer::Unix {
            uid: 0,
            gid: 0,
            pid: None,
        };
        let token = format!("Bearer {}", "t".repeat(40));
        // (peer, headers, expected status: 0 = accepted)
        type Row<'a> = (&'a Peer, Vec<(&'a str, &'a str)>, u16);
        let table: Vec<Row> = vec![
            (
                &tcp,
                vec![("host", "127.0.0.1:2106"), ("authorization", &token)],
                0,
            ),
            (
                &tcp,
                vec![("host", "localhost:2106"), ("authorization", &token)],
                0,
            ),
            (
                &tcp,
                vec![("host", "uvmm.example.com:2106"), ("authorization", &token)],
                0,
            ),
            (
                &tcp,
                vec![("host", "LOCALHOST:2106"), ("authorization", &token)],
                0,
            ),
            // Credentials are auth.rs's business, after routing.
            (&tcp, vec![("host", "127.0.0.1:2106")], 0),
            // DNS rebinding: the right token cannot come from a page, but the name is
            // checked first anyway.
            (
                &tcp,
                vec![("host", "evil.example:2106"), ("authorization", &token)],
                403,
            ),
            (&tcp, vec![("authorization", &token)], 403),
            (
                &tcp,
                vec![
                    ("host", "127.0.0.1:2106"),
                    ("authorization", &token),
                    ("origin", "http://evil.example"),
                ],
                403,
            ),
            (
                &tcp,
                vec![
                    ("host", "127.0.0.1:2106"),
                    ("authorization", &token),
                    ("origin", "http://127.0.0.1:2106"),
                ],
                0,
            ),
            (
                &tcp,
                vec![
                    ("host", "127.0.0.1:2106"),
                    ("authorization", &token),
                    ("origin", "null"),
                ],
                403,
            ),
            (
                &tcp,
                vec![
                    ("host", "127.0.0.1:2106"),
                    ("authorization", &token),
                    ("sec-fetch-site", "cross-site"),
                ],
                403,
            ),
            (&unix, vec![("host", "anything")], 0),
            (&unix, vec![], 0),
            (&unix, vec![("origin", "http://evil.example")], 403),
        ];
        for (peer, h, want) in table {
            let got = match g.check_headers(Some(peer), &headers(&h)) {
                Ok(()) => 0,
                Err(e) => crate::http::error::classify(&e.into()).0.as_u16(),
            };
            assert_eq!(got, want, "{peer} {h:?}");
        }
    }

    #[test]
    fn token_file() {
        let dir = tempfile::tempdir().unwrap();
        let (t1, path) = load_or_create_token(dir.path()).unwrap();
        assert_eq!(t1.len(), 64);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (t2, _) = load_or_create_token(dir.path()).unwrap();
        assert_eq!(t1, t2);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_or_create_token(dir.path())
            .unwrap_err()
            .contains("readable by others"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "short\n").unwrap();
        assert!(load_or_create_token(dir.path()).is_err());
    }

    #[test]
    fn query_decoding() {
        assert_eq!(percent_decode("dry%5Frun"), "dry_run");
        assert_eq!(percent_decode("a+b"), "a b");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
