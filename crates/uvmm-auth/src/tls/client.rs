//! The CLI's side: how it decides to trust a uvmmd. Never silently.
//!
//! - `--ca FILE`: the server's chain must lead to a certificate in FILE and name the host
//!   of `--url` (ordinary web PKI checks, rustls/webpki).
//! - Otherwise the fingerprint pinned for `HOST:PORT` in the known-hosts file
//!   (`~/.config/uvmm/known_hosts`) must match. A server without a pin is refused with its
//!   fingerprint in the error ([`PinError::Unknown`]); the CLI then asks "trust this
//!   fingerprint?" on a terminal, or the user passes `--accept-fingerprint FP` after
//!   checking it with `uvmmd --show-fingerprint` on the server. Only then is it stored. A
//!   pinned server presenting another certificate is refused ([`PinError::Mismatch`]:
//!   possibly a man in the middle) and never re-pinned automatically.

use super::{provider, Fingerprint, TlsError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The pins: one line per server, `HOST:PORT SHA256:AB:CD:…`; `#` starts a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHosts {
    path: PathBuf,
    entries: Vec<(String, Fingerprint)>,
}

#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    #[error("{path}, line {line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(transparent)]
    File(#[from] crate::util::FileError),
}

/// Parse a known-hosts file's text (also the fuzzing entry point). Errors carry the line.
pub fn parse_known_hosts(text: &str) -> Result<Vec<(String, Fingerprint)>, (usize, String)> {
    let mut entries: Vec<(String, Fingerprint)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(server), Some(fp), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err((i + 1, "expected 'HOST:PORT FINGERPRINT'".into()));
        };
        if !valid_server(server) {
            return Err((i + 1, format!("'{server}' is not HOST:PORT")));
        }
        let fp: Fingerprint = fp
            .parse()
            .map_err(|e: super::BadFingerprint| (i + 1, e.to_string()))?;
        let key = server.to_ascii_lowercase();
        if entries.iter().any(|(s, _)| *s == key) {
            return Err((i + 1, format!("{server} is listed twice")));
        }
        entries.push((key, fp));
    }
    Ok(entries)
}

fn valid_server(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && port.parse::<u16>().is_ok()
        && host.len() <= 255
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':')
        })
}

/// The key of a server in the file: `host:port`, lower-case, IPv6 in brackets.
pub fn server_key(host: &str, port: u16) -> String {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.contains(':') {
        format!("[{}]:{port}", h.to_ascii_lowercase())
    } else {
        format!("{}:{port}", h.to_ascii_lowercase())
    }
}

impl KnownHosts {
    /// `$XDG_CONFIG_HOME/uvmm/known_hosts`, else `~/.config/uvmm/known_hosts`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
            return Some(PathBuf::from(x).join("uvmm/known_hosts"));
        }
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".config/uvmm/known_hosts"))
    }

    /// Read the file; a missing file has no pins.
    pub fn load(path: &Path) -> Result<KnownHosts, KnownHostsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(crate::util::FileError::Io {
                    what: "read",
                    path: path.to_path_buf(),
                    source,
                }
                .into())
            }
        };
        let entries =
            parse_known_hosts(&text).map_err(|(line, message)| KnownHostsError::Syntax {
                path: path.to_path_buf(),
                line,
                message,
            })?;
        Ok(KnownHosts {
            path: path.to_path_buf(),
            entries,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, server: &str) -> Option<Fingerprint> {
        let key = server.to_ascii_lowercase();
        self.entries
            .iter()
            .find(|(s, _)| *s == key)
            .map(|(_, f)| *f)
    }

    /// Pin `fp` for `server` (replacing an old pin: only call this on the user's word)
    /// and write the file (0600, atomically).
    pub fn pin(&mut self, server: &str, fp: Fingerprint) -> Result<(), KnownHostsError> {
        let key = server.to_ascii_lowercase();
        self.entries.retain(|(s, _)| *s != key);
        self.entries.push((key, fp));
        self.save()
    }

    /// Forget a server's pin (after its certificate was replaced on purpose).
    pub fn unpin(&mut self, server: &str) -> Result<bool, KnownHostsError> {
        let key = server.to_ascii_lowercase();
        let before = self.entries.len();
        self.entries.retain(|(s, _)| *s != key);
        let removed = self.entries.len() != before;
        if removed {
            self.save()?;
        }
        Ok(removed)
    }

    fn save(&self) -> Result<(), KnownHostsError> {
        let mut text = String::from(
            "# uvmm: pinned certificate fingerprints of uvmmd servers (HOST:PORT FINGERPRINT)\n",
        );
        for (s, f) in &self.entries {
            text.push_str(&format!("{s} {f}\n"));
        }
        if let Some(dir) = self.path.parent() {
            crate::util::ensure_private_dir(dir)?;
        }
        crate::util::write_atomic(&self.path, text.as_bytes(), 0o600)?;
        Ok(())
    }
}

/// Why a pinned connection was refused. Found in a failed connection's error chain with
/// [`pin_error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    #[error(
        "the certificate of {server} has changed: it now has fingerprint {presented}, but {pinned} is pinned for it in {file}. \
         This may be a man-in-the-middle attack. If the certificate was replaced on purpose, check the new fingerprint on \
         the server (uvmmd --show-fingerprint), then run `uvmm` with --accept-fingerprint {presented} --replace-pin"
    )]
    Mismatch {
        server: String,
        pinned: Fingerprint,
        presented: Fingerprint,
        file: PathBuf,
    },
    #[error(
        "{server} is not a known server; its certificate has fingerprint {presented}. Check it on the server \
         (uvmmd --show-fingerprint), then run again with --accept-fingerprint {presented}, or give --ca FILE"
    )]
    Unknown {
        server: String,
        presented: Fingerprint,
    },
    #[error("{server} presented the fingerprint {presented}, not {accepted} as given with --accept-fingerprint: not trusted")]
    NotAccepted {
        server: String,
        accepted: Fingerprint,
        presented: Fingerprint,
    },
    #[error("the pin for {server} could not be stored: {message}")]
    Store { server: String, message: String },
}

/// Find a [`PinError`] in an error's chain (a connection error wraps the rustls error,
/// which wraps ours).
pub fn pin_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a PinError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(p) = e.downcast_ref::<PinError>() {
            return Some(p);
        }
        if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(other))) =
            e.downcast_ref::<rustls::Error>()
        {
            if let Some(p) = other.0.downcast_ref::<PinError>() {
                return Some(p);
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(p) = pin_error(inner) {
                    return Some(p);
                }
            }
        }
        cur = e.source();
    }
    None
}

/// What to do with a server that has no pin yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstUse {
    /// Refuse with [`PinError::Unknown`] (which carries the fingerprint to ask about).
    Refuse,
    /// Trust and pin exactly this fingerprint (`--accept-fingerprint`, or the user said
    /// yes at the prompt).
    Accept(Fingerprint),
    /// Like `Accept`, and replace an existing, different pin (`--replace-pin` after a
    /// deliberate certificate change).
    Replace(Fingerprint),
}

/// Verifies the server by the pinned fingerprint of its end-entity certificate. The
/// handshake signature is still checked (the server must hold the certificate's key).
#[derive(Debug)]
pub struct PinnedVerifier {
    server: String,
    known: Mutex<KnownHosts>,
    first_use: FirstUse,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl PinnedVerifier {
    pub fn new(server: String, known: KnownHosts, first_use: FirstUse) -> PinnedVerifier {
        PinnedVerifier {
            server,
            known: Mutex::new(known),
            first_use,
            provider: provider(),
        }
    }

    fn check(&self, presented: Fingerprint) -> Result<(), PinError> {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let pinned = known.get(&self.server);
        let store = |known: &mut KnownHosts| {
            known
                .pin(&self.server, presented)
                .map_err(|e| PinError::Store {
                    server: self.server.clone(),
                    message: e.to_string(),
                })
        };
        match (pinned, self.first_use) {
            (Some(p), _) if p == presented => Ok(()),
            (Some(_), FirstUse::Replace(want)) if want == presented => store(&mut known),
            (Some(p), _) => Err(PinError::Mismatch {
                server: self.server.clone(),
                pinned: p,
                presented,
                file: known.path().to_path_buf(),
            }),
            (None, FirstUse::Accept(want) | FirstUse::Replace(want)) if want == presented => {
                store(&mut known)
            }
            (None, FirstUse::Accept(want) | FirstUse::Replace(want)) => {
                Err(PinError::NotAccepted {
                    server: self.server.clone(),
                    accepted: want,
                    presented,
                })
            }
            (None, FirstUse::Refuse) => Err(PinError::Unknown {
                server: self.server.clone(),
                presented,
            }),
        }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The pin is the whole trust decision: names and dates of a pinned self-signed
        // certificate say nothing more.
        self.check(Fingerprint::of_der(end_entity))
            .map(|()| ServerCertVerified::assertion())
            .map_err(|e| {
                rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                    Arc::new(e),
                )))
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn finish(
    builder: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>,
) -> Arc<ClientConfig> {
    let mut config = builder.with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// `--ca FILE`: trust certificates issued by (or equal to) the certificates in FILE.
pub fn client_config_ca(ca_file: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let pem = std::fs::read(ca_file).map_err(|source| TlsError::Read {
        what: "the CA file",
        path: ca_file.to_path_buf(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| TlsError::Pem {
            path: ca_file.to_path_buf(),
            message: format!("not a PEM certificate: {e}"),
        })?;
        roots.add(cert).map_err(|e| TlsError::Pem {
            path: ca_file.to_path_buf(),
            message: format!("not usable as a CA: {e}"),
        })?;
        n += 1;
    }
    if n == 0 {
        return Err(TlsError::Pem {
            path: ca_file.to_path_buf(),
            message: "no CERTIFICATE in the file".into(),
        });
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError::Pem {
            path: ca_file.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(finish(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier),
    ))
}

/// Pinned: trust the server whose fingerprint is pinned for `server` (`server_key(host,
/// port)`) in `known`, or on first use what `first_use` says.
pub fn client_config_pinned(
    server: String,
    known: KnownHosts,
    first_use: FirstUse,
) -> Result<Arc<ClientConfig>, TlsError> {
    let verifier = Arc::new(PinnedVerifier::new(server, known, first_use));
    Ok(finish(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_parse() {
        let fp = Fingerprint([0xab; 32]);
        let text = format!(
            "# comment\n\nKVM1.example.com:2106 {fp}\n[::1]:2106 {}\n",
            crate::util::hex(&[1; 32])
        );
        let e = parse_known_hosts(&text).unwrap();
        assert_eq!(e[0], ("kvm1.example.com:2106".to_string(), fp));
        assert_eq!(e[1].0, "[::1]:2106");
        let table = [
            ("host 1234", 1, "HOST:PORT"),
            ("host:99999 ab", 1, "HOST:PORT"),
            ("host:1 xyz", 1, "fingerprint"),
            ("host:1", 1, "expected"),
            ("host:1 a b", 1, "expected"),
            ("a b:1 c", 1, "expected"),
        ];
        for (t, line, want) in table {
            let (l, m) = parse_known_hosts(t).unwrap_err();
            assert_eq!(l, line);
            assert!(m.contains(want), "{t}: {m}");
        }
        let twice = format!("h:1 {fp}\nH:1 {fp}\n");
        assert_eq!(parse_known_hosts(&twice).unwrap_err().0, 2);
    }

    #[test]
    fn server_keys() {
        assert_eq!(
            server_key("KVM1.Example.com", 2106),
            "kvm1.example.com:2106"
        );
        assert_eq!(server_key("::1", 2106), "[::1]:2106");
        assert_eq!(server_key("[::1]", 2106), "[::1]:2106");
        assert!(valid_server(&server_key("::1", 1)));
    }

    #[test]
    fn pin_decisions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        let a = Fingerprint([1; 32]);
        let b = Fingerprint([2; 32]);
        let s = "kvm1:2106".to_string();
        let v = |fu| PinnedVerifier::new(s.clone(), KnownHosts::load(&path).unwrap(), fu);
        // Unknown server: refused, nothing stored.
        assert!(matches!(
            v(FirstUse::Refuse).check(a),
            Err(PinError::Unknown { .. })
        ));
        assert!(!path.exists());
        // Accept another fingerprint than presented: refused, nothing stored.
        assert!(matches!(
            v(FirstUse::Accept(b)).check(a),
            Err(PinError::NotAccepted { .. })
        ));
        assert!(!path.exists());
        // Accept the presented one: stored (0600), trusted from now on.
        v(FirstUse::Accept(a)).check(a).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        v(FirstUse::Refuse).check(a).unwrap();
        // A different certificate later: mismatch, even with --accept-fingerprint.
        assert!(matches!(
            v(FirstUse::Refuse).check(b),
            Err(PinError::Mismatch { .. })
        ));
        assert!(matches!(
            v(FirstUse::Accept(b)).check(b),
            Err(PinError::Mismatch { .. })
        ));
        assert_eq!(KnownHosts::load(&path).unwrap().get(&s), Some(a));
        // Only an explicit replacement with the exact fingerprint re-pins.
        assert!(matches!(
            v(FirstUse::Replace(a)).check(b),
            Err(PinError::Mismatch { .. })
        ));
        v(FirstUse::Replace(b)).check(b).unwrap();
        assert_eq!(KnownHosts::load(&path).unwrap().get(&s), Some(b));
        let mut k = KnownHosts::load(&path).unwrap();
        assert!(k.unpin("KVM1:2106").unwrap());
        assert_eq!(KnownHosts::load(&path).unwrap().get(&s), None);
    }
}
