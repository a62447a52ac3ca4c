//! An API token on a websocket handshake (the console), where a browser cannot set
//! `Authorization`.

use axum::http::header;

/// The subprotocol prefix that carries an API token on a websocket handshake.
pub const WS_BEARER_PREFIX: &str = "uvmm.bearer.";

/// An API token offered as the websocket subprotocol `uvmm.bearer.TOKEN`: a browser's
/// `WebSocket` cannot send an `Authorization` header, so a page logged in with a token
/// (not a session cookie) has no other way to open the console. Only on a websocket
/// upgrade, and only a script that holds the token can set it (no cross-site forgery, as
/// with the header). The relay answers with its own subprotocol (`binary`), so the token
/// is never echoed.
pub fn websocket_bearer(parts: &axum::http::request::Parts) -> Option<&str> {
    let upgrade = parts.headers.get(header::UPGRADE)?.to_str().ok()?;
    if !upgrade.trim().eq_ignore_ascii_case("websocket") {
        return None;
    }
    parts
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(WS_BEARER_PREFIX))
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Request headers, and the token they carry.
    type Case = (
        &'static [(&'static str, &'static str)],
        Option<&'static str>,
    );

    #[test]
    fn token_only_from_a_websocket_upgrade() {
        let cases: &[Case] = &[
            (
                &[
                    ("upgrade", "websocket"),
                    ("sec-websocket-protocol", "binary, uvmm.bearer.uvmm_ab_cd"),
                ],
                Some("uvmm_ab_cd"),
            ),
            (
                &[
                    ("upgrade", "WebSocket"),
                    ("sec-websocket-protocol", "uvmm.bearer.t1"),
                ],
                Some("t1"),
            ),
            (
                &[
                    ("upgrade", "websocket"),
                    ("sec-websocket-protocol", "binary"),
                    ("sec-websocket-protocol", "uvmm.bearer.t2"),
                ],
                Some("t2"),
            ),
            // Not a websocket: a plain GET cannot carry a token this way.
            (&[("sec-websocket-protocol", "uvmm.bearer.t3")], None),
            (
                &[
                    ("upgrade", "h2c"),
                    ("sec-websocket-protocol", "uvmm.bearer.t4"),
                ],
                None,
            ),
            (
                &[
                    ("upgrade", "websocket"),
                    ("sec-websocket-protocol", "binary"),
                ],
                None,
            ),
            (
                &[
                    ("upgrade", "websocket"),
                    ("sec-websocket-protocol", "uvmm.bearer."),
                ],
                None,
            ),
            (
                &[
                    ("upgrade", "websocket"),
                    ("sec-websocket-protocol", "x.uvmm.bearer.t5"),
                ],
                None,
            ),
            (&[("upgrade", "websocket")], None),
        ];
        for (headers, want) in cases {
            let mut req = axum::http::Request::builder().uri("/api/v1/vms/x/console");
            for (k, v) in *headers {
                req = req.header(*k, *v);
            }
            let (parts, ()) = req.body(()).unwrap().into_parts();
            assert_eq!(websocket_bearer(&parts), *want, "{headers:?}");
        }
    }
}
