//! Who may do what, in one place: every route of the table declares its `Access` and where
//! its target comes from (`ROUTES`); one middleware (`authorize`) authenticates the caller
//! (UNIX peer credentials, an API token, a login session with its CSRF token, the legacy
//! `api-token`), resolves the target, asks `uvmm_auth::authorize`, puts the `Caller` into
//! the request for the handler, and writes the audit record of every change.
//!
//! A VM or host outside the caller's scope answers 404, as if it did not exist; lists and
//! the event stream show only what the caller may see (`Caller::sees_*`).

use super::AppState;
use crate::caller::{Caller, Peer};
use crate::http::error::RequestError;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use uvmm_auth::audit::{AuditLog, AuditRecord, AuditTarget};
use uvmm_auth::login::LoginService;
use uvmm_auth::session::{SessionStore, CSRF_HEADER};
use uvmm_auth::tokens::TokenStore;
use uvmm_auth::{
    authorize as decide, visible, Access, Authenticator, Credentials, Grants, HostRef, Permission,
    PolicyHandle, Target,
};

/// A TLS connection: inserted into its requests by the accept loop (cookies are `Secure`
/// and `__Host-` prefixed only there).
#[derive(Debug, Clone, Copy)]
pub struct Tls;

/// Where a route's target comes from, which decides how its permission is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetFrom {
    /// Nothing (public and authenticated-only routes).
    Nothing,
    /// The whole daemon: only an unrestricted grant (metrics, tokens, adding hosts, moves
    /// whose targets uvmm picks: what they act on is not known before, or they show
    /// everything).
    Global,
    /// A list or stream: a grant with the permission somewhere; the handler keeps only
    /// what the caller may see.
    Filtered,
    /// `{uuid}` (and `?host=`) of a VM path.
    Vm,
    /// `{id}` of a host path.
    Host,
    /// `{vm}` of a backup path: a VM name (its host is not known, so the grant must
    /// cover every host).
    BackupVm,
    /// `{task}`: the task's VM, or its host.
    Task,
    /// In the body (the host and name of a new VM, a restore): a grant with the permission
    /// somewhere lets the request through; the handler decides on the body's target with
    /// [`Caller::authorize_new`] before it does anything.
    Body,
    /// `{uuid}` of a VM path (decided as `Vm`), and where the operation takes it or its
    /// copy in the body (a host, a new name: clone, migrate): the handler decides on that
    /// with [`Caller::authorize_onto`] before it does anything.
    VmAndBody,
}

/// One route: its operation id (the handler's name), what it needs, and its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub operation: &'static str,
    pub access: Access,
    pub from: TargetFrom,
}

/// The route table's rights: every operation of the router, exactly once (a test holds
/// the two together, and the OpenAPI document shows each as `x-uvmm-permission`).
pub const ROUTES: &[Rule] = {
    use Access::*;
    use Permission::*;
    use TargetFrom::*;
    const fn r(operation: &'static str, access: Access, from: TargetFrom) -> Rule {
        Rule {
            operation,
            access,
            from,
        }
    }
    &[
        r("login", Public, Nothing),
        r("logout", Authenticated, Nothing),
        r("whoami", Authenticated, Nothing),
        r("version", Needs(Read), Filtered),
        // The directory's state and its hosts: daemon-wide.
        r("directory", Needs(Read), Global),
        r("openapi", Needs(Read), Filtered),
        r("metrics", Needs(Read), Global),
        r("events", Needs(Read), Filtered),
        r("list_hosts", Needs(Read), Filtered),
        r("show_host", Needs(Read), Host),
        r("add_host", Needs(Hosts), Global),
        r("remove_host", Needs(Hosts), Host),
        r("list_profiles", Needs(Read), Filtered),
        r("show_profile", Needs(Read), Filtered),
        r("list_vms", Needs(Read), Filtered),
        r("show_vm", Needs(Read), Vm),
        r("vm_xml", Needs(Read), Vm),
        // A GET (a websocket handshake) that reaches the VM's screen and keyboard.
        r("console", Needs(Console), Vm),
        // The new VM's host and name are in the body: the handler checks them.
        r("create_vm", Needs(Create), Body),
        r("edit_vm", Needs(Edit), Vm),
        r("delete_vm", Needs(Delete), Vm),
        r("vm_action", Needs(Lifecycle), Vm),
        // Moving a VM needs `hosts` on the VM and on the target host of the body (with
        // its name). Evacuation and failover pick targets themselves: every host.
        r("migrate_vm", Needs(Hosts), VmAndBody),
        r("evacuate_host", Needs(Hosts), Global),
        r("failover_vm", Needs(Hosts), Global),
        r("list_snapshots", Needs(Read), Vm),
        r("create_snapshot", Needs(Edit), Vm),
        r("revert_snapshot", Needs(Edit), Vm),
        r("delete_snapshot", Needs(Edit), Vm),
        r("rename_vm", Needs(Edit), Vm),
        // `create` on the source VM and on the clone's host and name (in the body); with a
        // `target_host` also `hosts` on both ends (the clone is moved).
        r("clone_vm", Needs(Create), VmAndBody),
        r("change_media", Needs(Media), Vm),
        r("add_disk", Needs(Edit), Vm),
        r("remove_disk", Needs(Edit), Vm),
        r("set_boot", Needs(Edit), Vm),
        r("add_nic", Needs(Edit), Vm),
        r("remove_nic", Needs(Edit), Vm),
        r("list_backups", Needs(Read), Global),
        r("show_backup", Needs(Read), BackupVm),
        r("backup_version", Needs(Read), BackupVm),
        r("backup_diff", Needs(Read), BackupVm),
        r("prune_backups", Needs(Restore), Global),
        // Decided by the handler on the version's own VM (host and name) and on the host
        // and name it is restored as.
        r("restore", Needs(Restore), Body),
        r("list_pools", Needs(Read), Filtered),
        r("show_pool", Needs(Read), Host),
        r("create_pool", Needs(Storage), Host),
        r("pool_action", Needs(Storage), Host),
        r("delete_pool", Needs(Storage), Host),
        r("create_volume", Needs(Storage), Host),
        r("clone_volume", Needs(Storage), Host),
        r("resize_volume", Needs(Storage), Host),
        r("delete_volume", Needs(Storage), Host),
        r("list_tasks", Needs(Read), Filtered),
        r("show_task", Needs(Read), Task),
        r("cancel_task", Needs(Lifecycle), Task),
        r("create_token", Needs(Tokens), Global),
        r("list_tokens", Needs(Tokens), Global),
        r("revoke_token", Needs(Tokens), Global),
    ]
};

/// The rule of an operation (`None`: not in the table, which a test forbids).
pub fn rule(operation: &str) -> Option<&'static Rule> {
    ROUTES.iter().find(|r| r.operation == operation)
}

/// What `x-uvmm-permission` says of a rule.
pub fn access_name(a: Access) -> &'static str {
    match a {
        Access::Public => "public",
        Access::Authenticated => "authenticated",
        Access::Needs(p) => p.as_str(),
    }
}

/// Everything about logins, tokens, sessions and the audit log; built at start.
pub struct AuthState {
    pub authn: Authenticator,
    pub policy: PolicyHandle,
    pub tokens: Arc<TokenStore>,
    pub sessions: Arc<SessionStore>,
    pub login: Arc<LoginService>,
    /// The login backends (PAM, the directory) in their order; `off()` says why no
    /// password can be checked at all (no `/etc/pam.d/uvmm` in a standalone daemon).
    pub backends: Arc<uvmm_auth::login::Ordered>,
    pub audit: Option<Arc<AuditLog>>,
    /// Where each record is also announced as an `audit` event (admins only).
    pub events: Option<Arc<crate::hosts::shared::Shared>>,
}

impl AuthState {
    /// Write an audit record and announce it on the event stream; a failure is logged,
    /// never fails the request (the change has happened).
    pub fn record(&self, r: &AuditRecord) {
        if let Some(a) = &self.audit {
            if let Err(e) = a.record(r) {
                tracing::error!("audit log: {e}");
            }
        }
        if let (Some(shared), Ok(record)) = (&self.events, serde_json::to_value(r)) {
            shared.bus.publish(vec![uvmm_api::Event::new(
                "uvmmd",
                "audit",
                None,
                uvmm_api::Change::Audit { record },
            )]);
        }
    }
}

/// The routes' rules by (method, route template), read from the OpenAPI document.
pub fn rules_by_route(doc: &serde_json::Value) -> HashMap<(Method, String), &'static Rule> {
    let mut out = HashMap::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let (Ok(m), Some(r)) = (
                Method::from_bytes(method.to_ascii_uppercase().as_bytes()),
                op["operationId"].as_str().and_then(rule),
            ) else {
                continue;
            };
            out.insert((m, path.clone()), r);
        }
    }
    out
}

impl Caller {
    /// Whether this caller may see the host (`vm: None`) or the VM.
    pub fn sees(&self, host_id: &str, host_uri: &str, vm: Option<&str>) -> bool {
        visible(
            &self.grants,
            HostRef {
                id: host_id,
                uri: host_uri,
            },
            vm,
        )
    }

    /// Whether some grant covers every host and VM for `p` (lists need no filtering).
    pub fn unrestricted(&self, p: Permission) -> bool {
        unrestricted(&self.grants, p)
    }

    /// The decision of a `TargetFrom::Global` route: a grant of `p` on every host and VM.
    pub fn require_everywhere(&self, p: Permission) -> Result<(), RequestError> {
        if unrestricted(&self.grants, p) {
            return Ok(());
        }
        decide(&self.grants, p, &Target::global())?;
        // A grant limited to hosts or VMs, even with the role: not everywhere.
        Err(uvmm_auth::Denied::OutOfScope { permission: p }.into())
    }
}

fn unrestricted(grants: &Grants, p: Permission) -> bool {
    grants
        .0
        .iter()
        .any(|g| g.role.allows(p) && g.hosts.is_all() && g.vms.is_all())
}

/// The request's target as resolved, for the decision and the audit record.
#[derive(Default)]
struct Resolved {
    host: Option<(String, String)>,
    vm: Option<String>,
    uuid: Option<String>,
}

impl Resolved {
    fn target(&self) -> Target<'_> {
        Target {
            host: self.host.as_ref().map(|(id, uri)| HostRef { id, uri }),
            vm: self.vm.as_deref(),
        }
    }

    fn audit(&self, object: Option<String>) -> AuditTarget {
        AuditTarget {
            host: self.host.as_ref().map(|(id, _)| id.clone()),
            vm: self.vm.clone(),
            uuid: self.uuid.clone(),
            object,
        }
    }
}

fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (super::guard::percent_decode(k) == key).then(|| super::guard::percent_decode(v))
    })
}

/// Find what the route acts on. `Ok(None)`: it does not exist (the handler answers 404
/// or 409 itself, after the permission was checked somewhere).
fn resolve(
    s: &AppState,
    from: TargetFrom,
    params: &HashMap<String, String>,
    query: Option<&str>,
) -> Option<Resolved> {
    let cache = s.ops.shared.read();
    match from {
        TargetFrom::Vm | TargetFrom::VmAndBody => {
            let uuid = params.get("uuid")?;
            let host = query_value(query, "host");
            let (h, v) = cache.resolve_vm(uuid, host.as_deref()).ok()?;
            Some(Resolved {
                host: Some((h.id.clone(), h.uri.clone())),
                vm: Some(v.name.clone()),
                uuid: Some(v.uuid.clone()),
            })
        }
        TargetFrom::Host => {
            let h = cache.resolve_host(params.get("id")?).ok()?;
            Some(Resolved {
                host: Some((h.id.clone(), h.uri.clone())),
                ..Resolved::default()
            })
        }
        TargetFrom::BackupVm => Some(Resolved {
            vm: params.get("vm").cloned(),
            ..Resolved::default()
        }),
        TargetFrom::Task => {
            let task = s.ops.tasks.get(params.get("task")?).ok()?;
            let h = cache.host(&task.host)?;
            let vm = task
                .uuid
                .as_deref()
                .and_then(|u| h.vms().get(u))
                .map(|v| v.name.clone());
            Some(Resolved {
                host: Some((h.id.clone(), h.uri.clone())),
                vm,
                uuid: task.uuid,
            })
        }
        TargetFrom::Nothing | TargetFrom::Global | TargetFrom::Filtered | TargetFrom::Body => {
            Some(Resolved::default())
        }
    }
}

/// The decision for an authenticated caller.
fn check(
    s: &AppState,
    caller: &Caller,
    rule: &Rule,
    params: &HashMap<String, String>,
    query: Option<&str>,
    refused_target: &mut AuditTarget,
) -> Result<Resolved, RequestError> {
    let Access::Needs(p) = rule.access else {
        return Ok(Resolved::default());
    };
    let g = &caller.grants;
    match rule.from {
        TargetFrom::Nothing | TargetFrom::Filtered | TargetFrom::Body => {
            if !g.allows_somewhere(p) {
                decide(g, p, &Target::global())?;
            }
            return Ok(Resolved::default());
        }
        TargetFrom::Global => {
            caller.require_everywhere(p)?;
            return Ok(Resolved::default());
        }
        _ => {}
    }
    let Some(found) = resolve(s, rule.from, params, query) else {
        // Nothing by that name: the handler says so, to whoever could act somewhere.
        if !g.allows_somewhere(p) {
            decide(g, p, &Target::global())?;
        }
        return Ok(Resolved::default());
    };
    // What the caller may not see does not exist for it.
    let seen = match (&found.host, rule.from) {
        (Some((id, uri)), _) => visible(g, HostRef { id, uri }, found.vm.as_deref()),
        (None, _) => decide(g, Permission::Read, &found.target()).is_ok(),
    };
    if !seen {
        return Err(RequestError::Hidden(match rule.from {
            TargetFrom::Vm | TargetFrom::VmAndBody | TargetFrom::BackupVm => "no such VM".into(),
            TargetFrom::Task => "no such task".into(),
            _ => "no such host".into(),
        }));
    }
    if let Err(denied) = decide(g, p, &found.target()) {
        // Known and visible: the audit record of the refusal names it.
        *refused_target = found.audit(None);
        return Err(denied.into());
    }
    Ok(found)
}

/// Authenticate a request's credentials.
fn authenticate(s: &AppState, parts: &axum::http::request::Parts) -> Result<Caller, RequestError> {
    let peer = parts
        .extensions
        .get::<Peer>()
        .cloned()
        .ok_or(RequestError::NoPeer)?;
    let secure = parts.extensions.get::<Tls>().is_some();
    let h = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok());
    let creds = match peer {
        Peer::Unix { uid, pid, .. } => Credentials::UnixPeer { uid, pid },
        Peer::Tcp(_) => match (
            h(header::AUTHORIZATION.as_str()),
            super::ws_token::websocket_bearer(parts),
        ) {
            (None, Some(token)) => Credentials::Bearer(token),
            (authorization, _) => Credentials::from_headers(
                authorization,
                h(header::COOKIE.as_str()),
                h(CSRF_HEADER),
                secure,
            ),
        },
    };
    let who = s.auth.authn.authenticate(
        creds,
        peer.origin(),
        parts.method.as_str(),
        Instant::now(),
        SystemTime::now(),
    )?;
    Ok(Caller::new(peer, who.principal, who.grants))
}

/// The answer to a request that did not authenticate: logged, `WWW-Authenticate` on 401,
/// and no kept-alive connection to sit on.
fn refused(parts: &axum::http::request::Parts, e: RequestError) -> Response {
    let peer = parts.extensions.get::<Peer>().map(|p| p.to_string());
    tracing::info!(peer = peer.unwrap_or_default(), method = %parts.method,
        path = %parts.uri.path(), "request refused: {e}");
    let mut resp = e.into_response();
    if resp.status() == axum::http::StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}

/// An API path that names no route: 404 only to a caller who authenticates (a stranger
/// learns nothing, not even which paths exist).
pub async fn no_route(State(s): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    match authenticate(&s, &parts) {
        Ok(_) => RequestError::NoRoute.into_response(),
        Err(e) => refused(&parts, e),
    }
}

/// The middleware after routing: authenticate, authorize, run, audit.
pub async fn authorize(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(route) = req.extensions().get::<MatchedPath>().cloned() else {
        return next.run(req).await;
    };
    let Some(rule) = s
        .routes
        .get(&(req.method().clone(), route.as_str().to_string()))
    else {
        tracing::error!(route = route.as_str(), "route without a rule");
        return RequestError::Panicked.into_response();
    };
    if rule.access == Access::Public {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let caller = match authenticate(&s, &parts) {
        Ok(c) => c,
        Err(e) => return refused(&parts, e),
    };
    let params: HashMap<String, String> = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .map(|p| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let query = parts.uri.query().map(str::to_string);
    let mut refused_target = AuditTarget::default();
    let decided = check(
        &s,
        &caller,
        rule,
        &params,
        query.as_deref(),
        &mut refused_target,
    );
    let changing = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let record = changing.then(|| {
        AuditRecord::request(
            SystemTime::now(),
            &caller.principal,
            caller.peer.origin(),
            parts.method.as_str(),
            route.as_str(),
            &parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            rule.operation,
        )
    });
    let object = [
        "pool", "volume", "target", "mac", "name", "action", "version",
    ]
    .iter()
    .filter_map(|k| params.get(*k).map(|v| format!("{k}={v}")))
    .collect::<Vec<_>>();
    let object = (!object.is_empty()).then(|| object.join(" "));
    let found = match decided {
        Ok(found) => found,
        Err(e) => {
            tracing::info!(caller = %caller, method = %parts.method, path = %parts.uri.path(),
                "request refused: {e}");
            let resp = e.into_response();
            return match record {
                Some(r) => {
                    refused_target.object = object;
                    audit(&s, r.target(refused_target), resp).await
                }
                None => resp,
            };
        }
    };
    parts.extensions.insert(caller);
    let resp = next.run(Request::from_parts(parts, body)).await;
    match record {
        Some(r) => audit(&s, r.target(found.audit(object)), resp).await,
        None => resp,
    }
}

/// Complete the record with the outcome (the error's code and message, the task of a
/// 202), write it, and hand the response on.
async fn audit(s: &AppState, record: AuditRecord, resp: Response) -> Response {
    let status = resp.status();
    let task = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| l.strip_prefix("/api/v1/tasks/"))
        .map(str::to_string);
    if status.is_success() {
        s.auth
            .record(&record.task(task).result(status.as_u16(), None, None));
        return resp;
    }
    // Error answers are small JSON bodies: read to take code and message.
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 256 * 1024)
        .await
        .unwrap_or_default();
    let err: Option<uvmm_api::ErrorBody> = serde_json::from_slice(&bytes).ok();
    let (code, message) = err
        .map(|e| (Some(e.error.code), Some(e.error.message)))
        .unwrap_or_default();
    s.auth.record(
        &record
            .task(task)
            .result(status.as_u16(), code.as_deref(), message.as_deref()),
    );
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// The caller the middleware authenticated (every route but the public ones has one).
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = RequestError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(RequestError::NoPeer)
    }
}
