//! Connecting, binding and searching, with the configured timeouts around every step. All
//! ldap3 calls of the crate go through here, so a hung server costs at most one timeout.

use crate::ber::{entry_from_tag, SYNC_REQUEST_OID};
use crate::config::{DirectoryConfig, LdapUrl};
use crate::error::{Error, Result};
use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapResult, ResultEntry, Scope};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Run one directory operation with a deadline.
pub(crate) async fn timed<T, F>(op: &str, limit: Duration, fut: F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            op: op.to_string(),
            secs: limit.as_secs(),
        }),
    }
}

fn tls_config(ca_file: &std::path::Path) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let pem = std::fs::read(ca_file)
        .map_err(|e| Error::Tls(format!("cannot read CA file {}: {e}", ca_file.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| Error::Tls(format!("CA file {}: {e}", ca_file.display())))?;
        roots
            .add(cert)
            .map_err(|e| Error::Tls(format!("CA file {}: {e}", ca_file.display())))?;
        n += 1;
    }
    if n == 0 {
        return Err(Error::Tls(format!(
            "CA file {} holds no certificate",
            ca_file.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Open a connection (TLS or StartTLS as configured). Nothing is bound yet.
pub(crate) async fn connect(cfg: &DirectoryConfig, url: &LdapUrl) -> Result<Ldap> {
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(cfg.connect_timeout())
        .set_starttls(cfg.starttls);
    if let Some(ca) = &cfg.ca_file {
        settings = settings.set_config(Arc::new(tls_config(ca)?));
    }
    let server = url.server_url();
    // The connect timeout covers TCP; the outer one also covers the TLS handshake and the
    // StartTLS exchange.
    let limit = cfg.connect_timeout() + cfg.timeout();
    let (conn, mut ldap) = timed("connect", limit, async {
        LdapConnAsync::with_settings(settings, &server)
            .await
            .map_err(|source| {
                if matches!(source, ldap3::LdapError::Rustls { .. }) {
                    Error::Tls(format!("{server}: {source}"))
                } else {
                    Error::Connect {
                        url: server.clone(),
                        source: Box::new(source),
                    }
                }
            })
    })
    .await?;
    tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!("directory connection ended: {e}");
        }
    });
    ldap.with_timeout(cfg.timeout());
    Ok(ldap)
}

/// Simple bind. An empty password is refused here: LDAP treats it as an anonymous
/// ("unauthenticated") bind that succeeds, which must never count as a login.
pub(crate) async fn bind(ldap: &mut Ldap, dn: &str, password: &str, limit: Duration) -> Result<()> {
    if password.is_empty() {
        return Err(Error::InvalidCredentials);
    }
    let res = timed("bind", limit, async {
        ldap.with_timeout(limit)
            .simple_bind(dn, password)
            .await
            .map_err(|source| Error::Ldap {
                op: "bind".into(),
                source: Box::new(source),
            })
    })
    .await?;
    if res.rc == 0 {
        Ok(())
    } else if res.rc == 49 {
        Err(Error::InvalidCredentials)
    } else {
        Err(Error::Bind {
            dn: dn.to_string(),
            rc: res.rc,
            message: res.text,
        })
    }
}

/// Whether the server offers the content synchronisation (syncrepl) control, read from
/// the root DSE's `supportedControl`.
pub(crate) async fn offers_sync(ldap: &mut Ldap, limit: Duration) -> Result<bool> {
    let (entries, _) = search(
        ldap,
        limit,
        "",
        Scope::Base,
        "(objectClass=*)",
        &["supportedControl"],
        Vec::new(),
    )
    .await?;
    Ok(entries.iter().any(|e| {
        entry_from_tag(e.0.clone())
            .map(|r| {
                r.all("supportedControl")
                    .iter()
                    .any(|c| c == SYNC_REQUEST_OID)
            })
            .unwrap_or(false)
    }))
}

/// One search, with everything the server sends (entries, intermediate messages,
/// controls) and its final result. Result codes other than success are errors, except
/// those the caller lists in `ok_codes` is not needed: callers look at `LdapResult.rc`.
pub(crate) async fn search(
    ldap: &mut Ldap,
    limit: Duration,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[&str],
    controls: Vec<RawControl>,
) -> Result<(Vec<ResultEntry>, LdapResult)> {
    let op = format!("search {base:?} {filter}");
    timed(&op, limit, async {
        let err = |source| Error::Ldap {
            op: op.clone(),
            source: Box::new(source),
        };
        if !controls.is_empty() {
            ldap.with_controls(controls);
        }
        let mut stream = ldap
            .with_timeout(limit)
            .streaming_search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(err)?;
        let mut out = Vec::new();
        while let Some(e) = stream.next().await.map_err(err)? {
            out.push(e);
        }
        let res = stream.finish().await;
        Ok((out, res))
    })
    .await
}

/// `Error::Result` for a search that ended with a failure code.
pub(crate) fn result_error(op: &str, res: &LdapResult) -> Error {
    Error::Result {
        op: op.to_string(),
        rc: res.rc,
        message: res.text.clone(),
    }
}
