//! Logging in and out, "who am I", and API tokens. The checks themselves are
//! `uvmm_auth`'s; these handlers parse, call it and answer.

use super::extract::*;
use super::{AppState, NoParams};
use crate::caller::{Caller, Peer};
use crate::http::auth::Tls;
use crate::http::error::RequestError;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use std::time::{Duration, SystemTime};
use uvmm_api::*;
use uvmm_auth::audit::AuditRecord;
use uvmm_auth::session;
use uvmm_auth::tokens::{grant_from_parts, TokenRequest};
use uvmm_auth::{Grant, Grants, Principal, Role};

fn grant_info(g: &Grant) -> GrantInfo {
    GrantInfo {
        role: g.role.as_str().to_string(),
        hosts: g.hosts.patterns(),
        vms: g.vms.patterns(),
    }
}

fn who_am_i(user: String, via: &str, grants: &Grants, csrf: Option<String>) -> WhoAmI {
    WhoAmI {
        user,
        via: via.to_string(),
        role: grants.highest_role().map(|r| r.as_str().to_string()),
        grants: grants.0.iter().map(grant_info).collect(),
        csrf,
    }
}

fn via(p: &Principal) -> &'static str {
    match p {
        Principal::UnixPeer { .. } => "unix_peer",
        Principal::Session { .. } => "session",
        Principal::Token { .. } => "token",
        Principal::LegacyToken => "legacy_token",
    }
}

/// Log in with a local account (PAM service `uvmm`): sets the session cookie (HttpOnly,
/// SameSite=Strict; Secure and `__Host-` on TLS) and answers the CSRF token that every
/// change of this session must send as `X-CSRF-Token`.
#[utoipa::path(post, path = "/api/v1/login", request_body = LoginRequest,
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody, description = "invalid user name or password"),
        (status = 429, body = ErrorBody, description = "too many failures; see Retry-After"),
        (status = 503, body = ErrorBody, description = "PAM is not set up, or too many logins at once")))]
pub(super) async fn login(
    State(s): State<AppState>,
    Extension(peer): Extension<Peer>,
    tls: Option<Extension<Tls>>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, RequestError> {
    let origin = peer.origin();
    let ip = match &peer {
        Peer::Tcp(a) => Some(a.ip()),
        Peer::Unix { .. } => None,
    };
    let auth = s.auth.clone();
    let unavailable = uvmm_auth::login::LoginBackend::off(auth.backends.as_ref());
    let user = req.user.clone();
    let result = match unavailable {
        Some(reason) => Err(uvmm_auth::login::LoginError::Unavailable(reason)),
        None => {
            let login = auth.login.clone();
            tokio::task::spawn_blocking(move || login.login(&req.user, &req.password, ip))
                .await
                .map_err(|_| RequestError::Panicked)?
        }
    };
    let status = match &result {
        Ok(_) => 200,
        Err(e) => crate::http::error::login(e).0.as_u16(),
    };
    let reason = result.as_ref().err().map(|e| e.log_reason());
    tracing::info!(user = %printable(&user), from = %origin, status, reason = reason.as_deref().unwrap_or(""), "login");
    auth.record(&AuditRecord::login(
        SystemTime::now(),
        &user,
        origin,
        status,
        reason.as_deref(),
    ));
    match result {
        Ok(ok) => {
            let cookie = session::set_cookie(&ok.session, tls.is_some());
            let body = who_am_i(
                ok.session.user.name.clone(),
                "session",
                &ok.grants,
                Some(ok.session.csrf.clone()),
            );
            let mut resp = Json(body).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(resp)
        }
        Err(uvmm_auth::login::LoginError::Limited(l)) => {
            let secs = l.retry_after.as_secs().max(1);
            let mut resp =
                RequestError::Login(uvmm_auth::login::LoginError::Limited(l)).into_response();
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(resp)
        }
        Err(e) => Err(e.into()),
    }
}

fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(64)
        .collect()
}

/// End the caller's session (a token or socket caller has none: nothing happens) and
/// clear the cookie.
#[utoipa::path(post, path = "/api/v1/logout", responses((status = 204, description = "logged out")))]
pub(super) async fn logout(
    State(s): State<AppState>,
    _caller: Caller,
    tls: Option<Extension<Tls>>,
    headers: HeaderMap,
) -> Response {
    let secure = tls.is_some();
    if let Some(id) = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| session::cookie_value(c, secure))
    {
        s.auth.sessions.logout(id);
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(secure)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// Who the caller is, and its grants (for a UI to hide what it may not do; the server
/// checks regardless).
#[utoipa::path(get, path = "/api/v1/whoami", responses((status = 200, body = WhoAmI)))]
pub(super) async fn whoami(caller: Caller, ApiQuery(_): ApiQuery<NoParams>) -> Json<WhoAmI> {
    Json(who_am_i(
        caller.user().to_string(),
        via(&caller.principal),
        &caller.grants,
        None,
    ))
}

fn token_info(t: uvmm_auth::tokens::TokenInfo) -> TokenInfo {
    TokenInfo {
        name: t.name,
        role: t.role.as_str().to_string(),
        hosts: t.hosts,
        vms: t.vms,
        created: t.created,
        expires: t.expires,
        created_by: t.created_by,
        expired: t.expired,
    }
}

/// Make an API token (admins). The answer is the only time the token is shown; uvmmd
/// keeps its SHA-256. A token never has more rights than its creator.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = TokenCreateRequest,
    responses((status = 201, body = NewTokenResponse), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "a token of that name exists")))]
pub(super) async fn create_token(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<TokenCreateRequest>,
) -> Result<Response, RequestError> {
    let role: Role = req
        .role
        .parse()
        .map_err(|e: uvmm_auth::roles::UnknownRole| RequestError::Malformed(e.to_string()))?;
    let grant = grant_from_parts(role, &req.hosts, &req.vms)
        .map_err(|e| RequestError::Malformed(e.to_string()))?;
    if !caller.grants.include(&grant) {
        return Err(RequestError::Forbidden(
            "a token cannot have more rights than its creator".into(),
        ));
    }
    let valid_for = match req.valid_days {
        Some(0) => {
            return Err(RequestError::Malformed(
                "valid_days must be at least 1".into(),
            ))
        }
        Some(d) if d > 36_500 => {
            return Err(RequestError::Malformed(
                "valid_days must be at most 36500".into(),
            ))
        }
        Some(d) => Some(Duration::from_secs(u64::from(d) * 86_400)),
        None => None,
    };
    let new = s.auth.tokens.create(
        TokenRequest {
            name: req.name,
            grant,
            valid_for,
            created_by: caller.user().to_string(),
        },
        SystemTime::now(),
    )?;
    let mut resp = (
        StatusCode::CREATED,
        Json(NewTokenResponse {
            token: new.token,
            info: token_info(new.info),
        }),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The API tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", responses((status = 200, body = [TokenInfo])))]
pub(super) async fn list_tokens(
    State(s): State<AppState>,
    ApiQuery(_): ApiQuery<NoParams>,
) -> Json<Vec<TokenInfo>> {
    Json(
        s.auth
            .tokens
            .list(SystemTime::now())
            .into_iter()
            .map(token_info)
            .collect(),
    )
}

/// Revoke a token: it stops working at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{name}", params(("name" = String, Path)),
    responses((status = 200, body = TokenInfo, description = "the revoked token"), (status = 404, body = ErrorBody)))]
pub(super) async fn revoke_token(
    State(s): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<TokenInfo>, RequestError> {
    Ok(Json(token_info(
        s.auth.tokens.revoke(&name, SystemTime::now())?,
    )))
}
