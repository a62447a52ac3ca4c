//! Start-up and SIGHUP of everything about who may do what (`uvmm_auth`): the `[auth]`
//! policy, API tokens, sessions, PAM logins, the audit log and the TCP listener's
//! certificate. The per-request side is `http/auth.rs`.

use crate::config::Settings;
use crate::http::auth::AuthState;
use anyhow::{anyhow, Context};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use uvmm_auth::audit::AuditLog;
use uvmm_auth::config::BackendKind;
use uvmm_auth::login::pam::PamBackend;
use uvmm_auth::login::{LoginBackend, LoginService, Ordered};
use uvmm_auth::session::SessionStore;
use uvmm_auth::tls::server::{show_fingerprint, CertNames, CertSource, ServerTls};
use uvmm_auth::tokens::TokenStore;
use uvmm_auth::{Authenticator, PolicyHandle};

/// The name of the token store in the state directory.
pub const TOKENS_FILE: &str = "tokens.json";

/// The login backends of this daemon in the order of `[auth] login_backends` (default:
/// the directory first in directory mode, then PAM; standalone PAM only). Naming the
/// directory in a standalone daemon is a configuration error.
fn login_backends(
    settings: &Settings,
    policy: &PolicyHandle,
    directory: Option<&crate::directory::DirectoryMode>,
) -> anyhow::Result<Ordered> {
    let pam = PamBackend::default();
    if let Some(why) = pam.off() {
        tracing::warn!("PAM logins are off: {why}");
    }
    let mut backends: Vec<(BackendKind, Arc<dyn LoginBackend>)> =
        vec![(BackendKind::Pam, Arc::new(pam))];
    let default_order = match directory {
        Some(d) => {
            backends.push((
                BackendKind::Directory,
                Arc::new(uvmm_directory::login::DirectoryLogin::new(
                    d.dir.clone(),
                    tokio::runtime::Handle::current(),
                )),
            ));
            vec![BackendKind::Directory, BackendKind::Pam]
        }
        None => {
            if settings
                .auth
                .login_backends
                .iter()
                .flatten()
                .any(|n| n == BackendKind::Directory.as_str())
            {
                return Err(anyhow!(
                    "[auth] login_backends names \"directory\", but uvmmd runs without a directory (-b \"\"): remove it, or start in directory mode (-b ldap://…)"
                ));
            }
            vec![BackendKind::Pam]
        }
    };
    let ordered = Ordered::new(backends, default_order, policy.clone());
    let names: Vec<&str> = ordered.order().iter().map(|k| k.as_str()).collect();
    tracing::info!(order = ?names, "login backends");
    Ok(ordered)
}

/// Build the authentication state. `tcp`: whether there is a TCP listener (then the
/// legacy API token is read or made, as before); `directory`: directory mode (its logins);
/// `events`: where audit records are announced.
pub fn auth_state(
    settings: &Settings,
    tcp: bool,
    directory: Option<&crate::directory::DirectoryMode>,
    events: Arc<crate::hosts::shared::Shared>,
) -> anyhow::Result<AuthState> {
    let policy = PolicyHandle::new(settings.auth.validate().map_err(|e| anyhow!(e))?);
    let tokens =
        Arc::new(TokenStore::open(&settings.state_dir.join(TOKENS_FILE)).map_err(|e| anyhow!(e))?);
    let sessions = Arc::new(SessionStore::new(policy.current().sessions.clone()));
    let backends = Arc::new(login_backends(settings, &policy, directory)?);
    let login = Arc::new(LoginService::new(
        backends.clone(),
        policy.clone(),
        sessions.clone(),
    ));
    let legacy_token = if tcp {
        let (token, path) = crate::http::guard::load_or_create_token(&settings.state_dir)
            .map_err(|e| anyhow!(e))?;
        tracing::info!(token_file = %path.display(), "the legacy API token (admin) works on TCP");
        Some(token)
    } else {
        None
    };
    let audit = open_audit(&settings.audit_log)?;
    Ok(AuthState {
        authn: Authenticator {
            policy: policy.clone(),
            tokens: tokens.clone(),
            sessions: sessions.clone(),
            legacy_token,
        },
        policy,
        tokens,
        sessions,
        login,
        backends,
        audit: Some(Arc::new(audit)),
        events: Some(events),
    })
}

fn open_audit(path: &Path) -> anyhow::Result<AuditLog> {
    // The log's mode is set to 0640: never on a device or another special file.
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_file() {
            return Err(anyhow!(
                "audit log {} is not a regular file",
                path.display()
            ));
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    AuditLog::open(path).map_err(|e| anyhow!(e))
}

/// Where the TCP listener's certificate comes from.
fn cert_source(settings: &Settings, addr: SocketAddr) -> anyhow::Result<CertSource> {
    let names = CertNames::for_listeners(&[addr]).map_err(|e| anyhow!(e))?;
    CertSource::from_config(&settings.tls, &settings.state_dir, names).map_err(|e| anyhow!(e))
}

/// The TLS configuration of the TCP listener: the configured certificate, or the
/// self-signed one (made at the first start, key 0600 in `<state_dir>/tls/`).
pub fn server_tls(settings: &Settings, addr: SocketAddr) -> anyhow::Result<ServerTls> {
    let (tls, id) = ServerTls::new(cert_source(settings, addr)?).map_err(|e| anyhow!(e))?;
    if id.generated {
        tracing::info!(fingerprint = %id.fingerprint, "made a self-signed certificate");
    }
    tracing::info!(
        fingerprint = %id.fingerprint,
        "HTTPS on {addr}: clients pin this fingerprint (uvmmd --show-fingerprint)"
    );
    Ok(tls)
}

/// `uvmmd --show-fingerprint`.
pub fn fingerprint(settings: &Settings) -> anyhow::Result<String> {
    let addr = settings.listen.unwrap_or_else(|| {
        SocketAddr::new(
            std::net::Ipv4Addr::LOCALHOST.into(),
            uvmm_api::DEFAULT_TCP_PORT,
        )
    });
    let fp = show_fingerprint(&cert_source(settings, addr)?).map_err(|e| anyhow!(e))?;
    Ok(fp.to_string())
}

/// SIGHUP: the `[auth]` policy from the configuration file, the token file, the
/// certificate, the audit log and the PAM service file. Each part that fails keeps what
/// it had and says why in the log.
pub fn reload(settings: &Settings, auth: &AuthState, tls: Option<&ServerTls>) {
    let file = crate::config::load_file(&settings.config_file, false);
    match file.map(|f| f.auth.unwrap_or_default()) {
        Ok(cfg) => match auth.policy.reload(&cfg) {
            Ok(()) => {
                auth.login.apply_policy();
                tracing::info!("SIGHUP: [auth] reloaded");
            }
            Err(e) => tracing::error!("SIGHUP: [auth] kept as it was: {e}"),
        },
        Err(e) => tracing::error!("SIGHUP: [auth] kept as it was: {e}"),
    }
    match auth.tokens.reload() {
        Ok(n) => tracing::info!("SIGHUP: {n} API tokens"),
        Err(e) => tracing::error!("SIGHUP: API tokens kept as they were: {e}"),
    }
    if let Some(tls) = tls {
        match tls.reload() {
            Ok(id) => tracing::info!(fingerprint = %id.fingerprint, "SIGHUP: certificate reloaded"),
            Err(e) => tracing::error!("SIGHUP: the old certificate stays: {e}"),
        }
    }
    if let Some(a) = &auth.audit {
        match a.reopen() {
            Ok(()) => tracing::info!("SIGHUP: audit log reopened"),
            Err(e) => tracing::error!("SIGHUP: cannot reopen the audit log: {e}"),
        }
    }
    if let Some(why) = auth.backends.off() {
        tracing::warn!("SIGHUP: no login backend can check passwords: {why}");
    }
}
