//! Conditional and compressed answers for the full VM list (`GET /api/v1/vms` without
//! parameters, 10 MB at 25,000 VMs): `If-None-Match` with the tag of the current render
//! gets `304 Not Modified` and no body; `Accept-Encoding: gzip` gets the body compressed.

use crate::vm::read::ListAll;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Whether the client takes gzip: `gzip` (or `x-gzip`) listed without `q=0`.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip")) && !refused
        })
}

/// Whether `If-None-Match` names `etag` (weak comparison, RFC 9110 13.1.2: the `W/`
/// prefix does not count) or is `*`.
pub fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let ours = bare(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || bare(t) == ours)
}

/// The answer for `list`, given the request's headers.
pub fn answer(headers: &HeaderMap, list: ListAll) -> Response {
    let etag = HeaderValue::from_str(&list.etag).ok();
    let vary = (header::VARY, HeaderValue::from_static("accept-encoding"));
    if not_modified(headers, &list.etag) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        r.headers_mut().extend([vary]);
        if let Some(e) = etag {
            r.headers_mut().insert(header::ETAG, e);
        }
        return r;
    }
    let mut r = list.body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.extend([vary]);
    if list.gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if let Some(e) = etag {
        h.insert(header::ETAG, e);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn accept_encoding() {
        for (value, gzip) in [
            ("gzip", true),
            ("GZip", true),
            ("x-gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("br;q=1.0, gzip; q=0.8, *;q=0.1", true),
            ("gzip;q=0", false),
            ("gzip;q=0.0", false),
            ("deflate", false),
            ("identity", false),
            ("", false),
            ("gzipx", false),
        ] {
            assert_eq!(
                accepts_gzip(&headers(header::ACCEPT_ENCODING, value)),
                gzip,
                "{value:?}"
            );
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn if_none_match() {
        let ours = "W/\"ab-3-4\"";
        for (value, matches) in [
            ("W/\"ab-3-4\"", true),
            ("\"ab-3-4\"", true),
            ("\"x\", W/\"ab-3-4\"", true),
            ("*", true),
            ("W/\"ab-3-5\"", false),
            ("W/\"ab-3-4", false),
            ("ab-3-4", false),
            ("", false),
        ] {
            assert_eq!(
                not_modified(&headers(header::IF_NONE_MATCH, value), ours),
                matches,
                "{value:?}"
            );
        }
        assert!(!not_modified(&HeaderMap::new(), ours));
    }

    #[test]
    fn answers_304_without_a_body_and_gzip_with_its_header() {
        let list = |gzip| ListAll {
            etag: "W/\"t-1-1\"".into(),
            body: bytes::Bytes::from_static(b"{}"),
            gzip,
        };
        let r = answer(&headers(header::IF_NONE_MATCH, "W/\"t-1-1\""), list(false));
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()[header::ETAG], "W/\"t-1-1\"");
        let r = answer(&headers(header::IF_NONE_MATCH, "W/\"t-1-0\""), list(true));
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(r.headers()[header::VARY], "accept-encoding");
        let r = answer(&HeaderMap::new(), list(false));
        assert!(r.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
