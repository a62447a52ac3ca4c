//! The server side: where the certificate comes from, and a resolver that can be swapped
//! while connections are open.
//!
//! rustls asks the resolver for a certificate once per handshake. A reload replaces what
//! the resolver hands out; connections that finished their handshake keep their session
//! keys and are not touched. So `SIGHUP` after renewing a certificate drops nobody, and
//! every new connection sees the new certificate.

use super::{provider, Fingerprint, TlsConfig, TlsError};
use crate::util::{self, FileError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Where the self-signed certificate lives: `<state_dir>/tls/` (0700).
pub const SELF_SIGNED_DIR: &str = "tls";
pub const SELF_SIGNED_CERT: &str = "uvmmd.crt";
pub const SELF_SIGNED_KEY: &str = "uvmmd.key";

/// Names the self-signed certificate is made for (its subjectAltNames). Clients that pin
/// the fingerprint do not check them; clients given the certificate as `--ca` do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertNames {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl CertNames {
    /// The host name, `localhost`, and the addresses of the listeners; a listener on
    /// `0.0.0.0` or `::` stands for every address of the machine's interfaces.
    pub fn for_listeners(listeners: &[SocketAddr]) -> Result<CertNames, TlsError> {
        let mut names = CertNames::default();
        if let Ok(h) = nix::unistd::gethostname() {
            if let Some(h) = h.to_str().filter(|h| !h.is_empty()) {
                names.dns.push(h.to_string());
            }
        }
        names.dns.push("localhost".to_string());
        let mut want_all = false;
        for l in listeners {
            if l.ip().is_unspecified() {
                want_all = true;
            } else if !names.ips.contains(&l.ip()) {
                names.ips.push(l.ip());
            }
        }
        if want_all {
            let addrs = nix::ifaddrs::getifaddrs().map_err(|e| TlsError::Names(e.to_string()))?;
            for a in addrs {
                let Some(sa) = a.address else { continue };
                let ip = if let Some(v4) = sa.as_sockaddr_in() {
                    IpAddr::V4(v4.ip())
                } else if let Some(v6) = sa.as_sockaddr_in6() {
                    IpAddr::V6(v6.ip())
                } else {
                    continue;
                };
                // Link-local IPv6 addresses need a zone, which certificates cannot carry.
                let link_local =
                    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
                if !link_local && !names.ips.contains(&ip) {
                    names.ips.push(ip);
                }
            }
        }
        Ok(names)
    }
}

/// Where the server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// `[tls] cert` and `key`: the administrator's (or an ACME client's) files.
    Files { cert: PathBuf, key: PathBuf },
    /// Made by uvmmd in `dir` at the first start.
    SelfSigned { dir: PathBuf, names: CertNames },
}

impl CertSource {
    pub fn from_config(
        cfg: &TlsConfig,
        state_dir: &Path,
        names: CertNames,
    ) -> Result<CertSource, TlsError> {
        match (&cfg.cert, &cfg.key) {
            (Some(cert), Some(key)) => Ok(CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => Ok(CertSource::SelfSigned {
                dir: state_dir.join(SELF_SIGNED_DIR),
                names,
            }),
            _ => Err(TlsError::HalfConfigured),
        }
    }

    fn paths(&self) -> (PathBuf, PathBuf) {
        match self {
            CertSource::Files { cert, key } => (cert.clone(), key.clone()),
            CertSource::SelfSigned { dir, .. } => {
                (dir.join(SELF_SIGNED_CERT), dir.join(SELF_SIGNED_KEY))
            }
        }
    }
}

/// A loaded certificate with its key.
#[derive(Debug, Clone)]
pub struct ServerIdentity {
    pub certified: Arc<CertifiedKey>,
    pub fingerprint: Fingerprint,
    /// True when this load made a new self-signed certificate (log its fingerprint).
    pub generated: bool,
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn parse_chain(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            message: format!("not a PEM certificate chain: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            message: "no CERTIFICATE in the file".into(),
        });
    }
    Ok(chain)
}

fn load_pair(cert: &Path, key: &Path) -> Result<ServerIdentity, TlsError> {
    let chain = parse_chain(&read_file("the certificate", cert)?, cert)?;
    // The key must not be readable by others: whoever has it can impersonate uvmmd.
    util::check_private_file(key).or_else(|e| match e {
        // Owned by another user but 0600 (e.g. an ACME client's): acceptable if we can
        // read it; being readable by group or others is not.
        FileError::Owner { .. } => Ok(()),
        other => Err(other),
    })?;
    let key_der =
        PrivateKeyDer::from_pem_slice(&read_file("the private key", key)?).map_err(|e| {
            TlsError::Pem {
                path: key.to_path_buf(),
                message: format!("not a PEM private key: {e}"),
            }
        })?;
    let fingerprint = Fingerprint::of_der(&chain[0]);
    let certified = CertifiedKey::from_der(chain, key_der, &provider()).map_err(|source| {
        TlsError::KeyMismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        }
    })?;
    Ok(ServerIdentity {
        certified: Arc::new(certified),
        fingerprint,
        generated: false,
    })
}

/// Make a self-signed certificate (ECDSA P-256, valid 10 years: it is trusted by pinning
/// its fingerprint, not by its dates) and write it to `dir`: the key 0600, written before
/// the certificate, so a certificate never exists without its key.
pub fn generate_self_signed(dir: &Path, names: &CertNames) -> Result<(), TlsError> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
    util::ensure_private_dir(dir)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    let cn = names.dns.first().cloned().unwrap_or_else(|| "uvmmd".into());
    dn.push(DnType::CommonName, format!("uvmmd on {cn}"));
    dn.push(DnType::OrganizationName, "uvmm (self-signed)");
    params.distinguished_name = dn;
    for d in &names.dns {
        if let Ok(n) = d.clone().try_into() {
            params.subject_alt_names.push(SanType::DnsName(n));
        }
    }
    for ip in &names.ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    // A day back: a client whose clock is a little behind must not see a future
    // certificate.
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(10 * 365);
    let serial = util::random_bytes::<16>().map_err(|e| TlsError::Names(e.to_string()))?;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial[..15]));
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    util::write_atomic(
        &dir.join(SELF_SIGNED_KEY),
        key.serialize_pem().as_bytes(),
        0o600,
    )?;
    util::write_atomic(&dir.join(SELF_SIGNED_CERT), cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

/// Load the certificate of `source`; a self-signed one is made when it does not exist.
pub fn load_identity(source: &CertSource) -> Result<ServerIdentity, TlsError> {
    let (cert, key) = source.paths();
    let mut generated = false;
    if let CertSource::SelfSigned { dir, names } = source {
        if !cert.exists() || !key.exists() {
            generate_self_signed(dir, names)?;
            generated = true;
        }
    }
    let mut id = load_pair(&cert, &key)?;
    id.generated = generated;
    Ok(id)
}

/// For `uvmmd --show-fingerprint`: the fingerprint of the certificate uvmmd serves (or
/// would serve), without making one.
pub fn show_fingerprint(source: &CertSource) -> Result<Fingerprint, TlsError> {
    let (cert, _) = source.paths();
    if matches!(source, CertSource::SelfSigned { .. }) && !cert.exists() {
        return Err(TlsError::NotYetGenerated(cert));
    }
    let chain = parse_chain(&read_file("the certificate", &cert)?, &cert)?;
    Ok(Fingerprint::of_der(&chain[0]))
}

/// Hands every handshake the current certificate; [`ReloadableResolver::set`] swaps it.
#[derive(Debug)]
pub struct ReloadableResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableResolver {
    pub fn new(key: Arc<CertifiedKey>) -> ReloadableResolver {
        ReloadableResolver {
            current: RwLock::new(key),
        }
    }

    pub fn set(&self, key: Arc<CertifiedKey>) {
        match self.current.write() {
            Ok(mut k) => *k = key,
            Err(p) => *p.into_inner() = key,
        }
    }

    pub fn get(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(k) => k.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl ResolvesServerCert for ReloadableResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// The TLS side of the TCP listener: the rustls configuration (for
/// `tokio_rustls::TlsAcceptor::from(tls.config())`) and its reload.
#[derive(Debug)]
pub struct ServerTls {
    source: CertSource,
    resolver: Arc<ReloadableResolver>,
    config: Arc<ServerConfig>,
    fingerprint: RwLock<Fingerprint>,
}

impl ServerTls {
    /// Load (or make) the certificate and build the configuration: TLS 1.2 and 1.3,
    /// ALPN `http/1.1` (the daemon speaks HTTP/1.1), no client certificates.
    pub fn new(source: CertSource) -> Result<(ServerTls, ServerIdentity), TlsError> {
        let identity = load_identity(&source)?;
        let resolver = Arc::new(ReloadableResolver::new(identity.certified.clone()));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok((
            ServerTls {
                source,
                resolver,
                config: Arc::new(config),
                fingerprint: RwLock::new(identity.fingerprint),
            },
            identity,
        ))
    }

    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    pub fn fingerprint(&self) -> Fingerprint {
        match self.fingerprint.read() {
            Ok(f) => *f,
            Err(p) => *p.into_inner(),
        }
    }

    pub fn source(&self) -> &CertSource {
        &self.source
    }

    /// SIGHUP: read the certificate and key again and serve them to new connections. On
    /// error (a half-written renewal, a key that does not match) the old certificate
    /// stays in force and the error says why.
    pub fn reload(&self) -> Result<ServerIdentity, TlsError> {
        let identity = load_identity(&self.source)?;
        self.resolver.set(identity.certified.clone());
        match self.fingerprint.write() {
            Ok(mut f) => *f = identity.fingerprint,
            Err(p) => *p.into_inner() = identity.fingerprint,
        }
        Ok(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn self_signed_is_made_once_with_private_key() {
        let state = tempfile::tempdir().unwrap();
        let names = CertNames {
            dns: vec!["kvm1.example.com".into(), "localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
        };
        let src = CertSource::from_config(&TlsConfig::default(), state.path(), names).unwrap();
        assert!(matches!(
            show_fingerprint(&src),
            Err(TlsError::NotYetGenerated(_))
        ));
        let first = load_identity(&src).unwrap();
        assert!(first.generated);
        let dir = state.path().join("tls");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join(SELF_SIGNED_KEY)), 0o600);
        assert_eq!(mode(&dir), 0o700);
        let again = load_identity(&src).unwrap();
        assert!(!again.generated);
        assert_eq!(again.fingerprint, first.fingerprint);
        assert_eq!(show_fingerprint(&src).unwrap(), first.fingerprint);
        // A key others can read is refused.
        std::fs::set_permissions(
            dir.join(SELF_SIGNED_KEY),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(matches!(
            load_identity(&src),
            Err(TlsError::File(FileError::TooOpen { .. }))
        ));
    }

    #[test]
    fn config_shapes() {
        let state = Path::new("/var/lib/uvmm");
        let half = TlsConfig {
            cert: Some("/c".into()),
            ..TlsConfig::default()
        };
        assert!(matches!(
            CertSource::from_config(&half, state, CertNames::default()),
            Err(TlsError::HalfConfigured)
        ));
        let t: TlsConfig = toml::from_str("cert = \"/c\"\nkey = \"/k\"").unwrap();
        assert_eq!(
            CertSource::from_config(&t, state, CertNames::default()).unwrap(),
            CertSource::Files {
                cert: "/c".into(),
                key: "/k".into()
            }
        );
        assert!(toml::from_str::<TlsConfig>("certificate = \"/c\"").is_err());
    }

    #[test]
    fn names_for_any_address_include_interfaces() {
        let n = CertNames::for_listeners(&["0.0.0.0:2106".parse().unwrap()]).unwrap();
        assert!(n.dns.contains(&"localhost".to_string()));
        assert!(n.ips.contains(&"127.0.0.1".parse().unwrap()), "{n:?}");
        let one = CertNames::for_listeners(&["192.0.2.5:2106".parse().unwrap()]).unwrap();
        assert_eq!(one.ips, vec!["192.0.2.5".parse::<IpAddr>().unwrap()]);
    }
}
