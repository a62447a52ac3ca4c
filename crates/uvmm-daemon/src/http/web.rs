//! The web UI: the files of `web/dist`, embedded at build time (see `build.rs`), served at
//! `/` on both listeners.
//!
//! Every `GET`/`HEAD` outside `/api/` and `/metrics` is answered here, before the API's
//! checks, because a browser cannot send the API token with a page load: these files are
//! the same for everybody and hold no data (the UI asks the API for everything, with the
//! token, and later with issue 13's session cookie). What stays checked: on TCP the `Host`
//! header must name the listener (DNS rebinding), as for the API.
//!
//! Paths are looked up in the table of embedded files by exact match, never on a file
//! system, so `..` or encoded separators cannot reach anything else. An unknown path
//! without a file extension is a page of the UI (`/vms/...`, `/storage`) and gets
//! `index.html`; an unknown `/assets/...` or `name.ext` is a 404, so a stale page asking
//! for an old script gets an error instead of HTML.

use super::error::RequestError;
use crate::caller::Peer;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashSet;
use std::sync::Arc;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

pub use assets::UI_BUILT;

/// What the UI's files are served with. The page loads scripts and styles only from
/// uvmmd itself and talks only to it; it may not be framed (clickjacking of the
/// destructive buttons).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// The page uvmmd serves when it was built without the UI.
const NOT_BUILT: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>uvmm: web UI not built</title></head><body>\
<h1>The web UI was not built into this uvmmd</h1>\
<p>This uvmmd was compiled without <code>web/dist</code>. Build the UI and then uvmmd:</p>\
<pre>cd web &amp;&amp; npm ci &amp;&amp; npm run build &amp;&amp; cd .. &amp;&amp; cargo build --release</pre>\
<p>The API at <code>/api/v1</code> works as usual (see docs/api.md).</p>\
</body></html>\n";

/// What the UI handler knows: the `Host` names of the TCP listener.
#[derive(Clone, Default)]
pub struct WebState {
    /// `None`: any name (the TLS listener; see `GuardConfig`).
    tcp_hosts: Option<Arc<HashSet<String>>>,
}

impl WebState {
    pub fn new(tcp_hosts: Option<HashSet<String>>) -> WebState {
        WebState {
            tcp_hosts: tcp_hosts.map(Arc::new),
        }
    }
}

/// Whether a path belongs to the API (which answers everything under it, with its checks).
fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/") || path == "/metrics"
}

/// Middleware in front of everything: UI pages and files here, the rest to the API.
pub async fn serve(State(web): State<WebState>, req: Request, next: Next) -> Response {
    let method = req.method();
    if !(method == Method::GET || method == Method::HEAD) || is_api_path(req.uri().path()) {
        return next.run(req).await;
    }
    let tcp = matches!(req.extensions().get::<Peer>(), Some(Peer::Tcp(_)) | None);
    if let (true, Some(names)) = (tcp, &web.tcp_hosts) {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !names.contains(&host) {
            return RequestError::Forbidden(format!(
                "Host '{}' is not this listener's name; add it to [api] tcp_host_names if browsers use it",
                host.chars().filter(|c| !c.is_control()).take(80).collect::<String>()
            ))
            .into_response();
        }
    }
    let head = method == Method::HEAD;
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    respond(req.uri().path(), if_none_match.as_deref(), head)
}

/// The answer for one UI path.
fn respond(path: &str, if_none_match: Option<&str>, head: bool) -> Response {
    if !UI_BUILT {
        let mut resp = (StatusCode::SERVICE_UNAVAILABLE, NOT_BUILT).into_response();
        set_headers(&mut resp, "text/html; charset=utf-8", "no-store", None);
        return resp;
    }
    let Some((path, bytes, etag)) = lookup(path) else {
        return RequestError::NoFile.into_response();
    };
    // Vite names the files under /assets/ after their content: they never change.
    let cache = if path.starts_with("/assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let not_modified = if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == *etag));
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else if head {
        let mut r = Response::new(Body::empty());
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        r
    } else {
        Response::new(Body::from(*bytes))
    };
    set_headers(&mut resp, content_type(path), cache, Some(etag));
    resp
}

/// The embedded file for a URL path; `index.html` for the UI's own pages.
fn lookup(path: &str) -> Option<&'static (&'static str, &'static [u8], &'static str)> {
    let wanted = if path == "/" { "/index.html" } else { path };
    if let Some(f) = assets::FILES.iter().find(|f| f.0 == wanted) {
        return Some(f);
    }
    let last = wanted.rsplit('/').next().unwrap_or("");
    if wanted.starts_with("/assets/") || last.contains('.') {
        return None;
    }
    assets::FILES.iter().find(|f| f.0 == "/index.html")
}

fn set_headers(resp: &mut Response, content_type: &str, cache: &str, etag: Option<&str>) {
    let h = resp.headers_mut();
    let mut put = |name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put(header::CONTENT_TYPE, content_type);
    put(header::CACHE_CONTROL, cache);
    if let Some(tag) = etag {
        put(header::ETAG, tag);
    }
    put(header::CONTENT_SECURITY_POLICY, CSP);
    put(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    put(header::X_FRAME_OPTIONS, "DENY");
    put(header::REFERRER_POLICY, "no-referrer");
    put(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_left_to_the_api() {
        for (path, api) in [
            ("/api", true),
            ("/api/v1/hosts", true),
            ("/api/", true),
            ("/metrics", true),
            ("/", false),
            ("/apiary", false),
            ("/vms/x/y", false),
            ("/metrics.html", false),
        ] {
            assert_eq!(is_api_path(path), api, "{path}");
        }
    }

    #[test]
    fn content_types() {
        for (path, ct) in [
            ("/index.html", "text/html; charset=utf-8"),
            ("/assets/index-abc.js", "text/javascript; charset=utf-8"),
            ("/assets/index-abc.css", "text/css; charset=utf-8"),
            ("/favicon.svg", "image/svg+xml"),
            ("/x", "application/octet-stream"),
        ] {
            assert_eq!(content_type(path), ct, "{path}");
        }
    }

    #[test]
    fn lookup_serves_only_embedded_files() {
        if !UI_BUILT {
            // Built without web/dist: every path gets the explanation page.
            let r = respond("/anything", None, false);
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
            return;
        }
        let index = lookup("/").expect("index.html is embedded");
        assert_eq!(index.0, "/index.html");
        // The UI's own pages get index.html.
        for page in ["/storage", "/vms/demo-kvm1/1234", "/create/", "/login"] {
            assert_eq!(lookup(page).map(|f| f.0), Some("/index.html"), "{page}");
        }
        // Traversal and unknown files find nothing: there is no file system behind this.
        for bad in [
            "/../Cargo.toml",
            "/assets/../../etc/passwd",
            "/assets/%2e%2e/x.js",
            "/assets/nope.js",
            "/etc/passwd.txt",
            "/..%2f..%2fetc%2fpasswd",
        ] {
            let found = lookup(bad).map(|f| f.0);
            assert!(
                found.is_none() || found == Some("/index.html"),
                "{bad} -> {found:?}"
            );
        }
        assert!(lookup("/assets/nope.js").is_none());
        // ETags answer 304.
        let r = respond("/", Some(index.2), false);
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        let r = respond("/", Some("\"other\""), false);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        // Hashed assets are cached for good.
        let asset = assets::FILES
            .iter()
            .find(|f| f.0.starts_with("/assets/") && f.0.ends_with(".js"))
            .expect("a script under /assets/");
        let r = respond(asset.0, None, false);
        assert_eq!(
            r.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        let r = respond(asset.0, None, true);
        assert_eq!(
            r.headers()[header::CONTENT_LENGTH],
            asset.1.len().to_string().as_str()
        );
    }
}
