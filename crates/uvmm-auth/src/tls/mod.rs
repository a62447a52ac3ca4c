//! TLS for the TCP listener (rustls, ring): the server's certificate (configured, or
//! self-signed at first start), reloadable without dropping connections; and the CLI's
//! verification (`--ca FILE`, or a fingerprint pinned on first use with consent).

pub mod client;
pub mod server;

use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

/// The `[tls]` table of `uvmmd.toml`.
///
/// ```toml
/// [tls]
/// cert = "/etc/uvmm/tls/uvmmd.crt"   # PEM chain, server certificate first
/// key = "/etc/uvmm/tls/uvmmd.key"    # PEM private key (PKCS#8, PKCS#1 or SEC1)
/// plain_http = false                 # serve plain HTTP instead (loopback listeners only)
/// ```
/// Without `cert` and `key`, uvmmd makes a self-signed certificate at its first start
/// (`<state_dir>/tls/`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub plain_http: bool,
}

/// The SHA-256 fingerprint of a certificate (of its DER encoding), as `openssl x509
/// -fingerprint -sha256` prints it: upper-case hex pairs joined by colons.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(crate::util::sha256(der))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SHA256:")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a SHA-256 fingerprint (64 hex digits, colons optional, e.g. as `uvmmd --show-fingerprint` prints it)")]
pub struct BadFingerprint(pub String);

impl FromStr for Fingerprint {
    type Err = BadFingerprint;
    /// Accepts `SHA256:AB:CD:…`, `sha256 Fingerprint=AB:CD:…` (openssl), `abcd…`.
    fn from_str(s: &str) -> Result<Fingerprint, BadFingerprint> {
        let t = s.trim();
        let t = t
            .strip_prefix("sha256 Fingerprint=")
            .or_else(|| t.strip_prefix("SHA256 Fingerprint="))
            .or_else(|| {
                t.get(..7)
                    .filter(|p| p.eq_ignore_ascii_case("sha256:"))
                    .map(|_| &t[7..])
            })
            .unwrap_or(t);
        let hex: String = t.chars().filter(|c| *c != ':').collect();
        crate::util::unhex::<32>(&hex)
            .map(Fingerprint)
            .ok_or_else(|| BadFingerprint(s.chars().take(120).collect()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("the certificate and the key do not belong together ({cert} and {key}): {source}")]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("making the self-signed certificate failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(
        "[tls]: give both cert and key, or neither (then uvmmd makes a self-signed certificate)"
    )]
    HalfConfigured,
    #[error("no certificate yet: uvmmd makes one at its first start with a TCP listener ({0})")]
    NotYetGenerated(PathBuf),
    #[error(transparent)]
    File(#[from] crate::util::FileError),
    #[error("looking up the addresses for the certificate failed: {0}")]
    Names(String),
}

/// Why plain HTTP is refused on a listener.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainHttpRefused {
    #[error("plain HTTP is off; uvmmd serves HTTPS on {0} (set [tls] plain_http = true to serve plain HTTP on a loopback address)")]
    NotConfigured(SocketAddr),
    #[error("plain HTTP is only allowed on loopback addresses, not on {0}: passwords and tokens would cross the network unencrypted")]
    NotLoopback(SocketAddr),
}

/// Whether uvmmd may serve plain HTTP on `addr`: only when configured, and only on a
/// loopback address (never `0.0.0.0` or `::`, which include every interface).
pub fn plain_http_listener(addr: SocketAddr, configured: bool) -> Result<(), PlainHttpRefused> {
    if !configured {
        return Err(PlainHttpRefused::NotConfigured(addr));
    }
    if !is_loopback(addr.ip()) {
        return Err(PlainHttpRefused::NotLoopback(addr));
    }
    Ok(())
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Whether the CLI may send credentials over plain HTTP to `host` (from `--url
/// http://HOST:PORT`): only to the local machine (`localhost` or a loopback address).
pub fn plain_http_client(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(is_loopback)
}

/// The crypto provider everything here uses (ring, as the rest of the workspace).
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_text() {
        let fp = Fingerprint::of_der(b"hello");
        let shown = fp.to_string();
        assert!(
            shown.starts_with("SHA256:2C:F2:4D:BA:5F:B0:A3:0E"),
            "{shown}"
        );
        assert_eq!(shown.len(), 7 + 32 * 3 - 1);
        let hex = crate::util::hex(&fp.0);
        for form in [
            shown.clone(),
            shown.to_lowercase(),
            shown[7..].to_string(),
            hex.clone(),
            hex.to_uppercase(),
            format!("sha256 Fingerprint={}", &shown[7..]),
            format!("  {shown}\n"),
        ] {
            assert_eq!(form.parse::<Fingerprint>(), Ok(fp), "{form}");
        }
        for bad in [
            "",
            "SHA256:",
            &hex[2..],
            &format!("{hex}00"),
            "zz",
            "SHA1:AB",
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_policy() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let table = [
            ("127.0.0.1:2106", true, Ok(())),
            ("[::1]:2106", true, Ok(())),
            ("127.0.0.2:2106", true, Ok(())),
            (
                "127.0.0.1:2106",
                false,
                Err(PlainHttpRefused::NotConfigured(a("127.0.0.1:2106"))),
            ),
            (
                "0.0.0.0:2106",
                true,
                Err(PlainHttpRefused::NotLoopback(a("0.0.0.0:2106"))),
            ),
            (
                "[::]:2106",
                true,
                Err(PlainHttpRefused::NotLoopback(a("[::]:2106"))),
            ),
            (
                "192.0.2.1:2106",
                true,
                Err(PlainHttpRefused::NotLoopback(a("192.0.2.1:2106"))),
            ),
            ("[::ffff:127.0.0.1]:2106", true, Ok(())),
        ];
        for (addr, configured, want) in table {
            assert_eq!(plain_http_listener(a(addr), configured), want, "{addr}");
        }
        for (host, ok) in [
            ("localhost", true),
            ("LOCALHOST", true),
            ("127.0.0.1", true),
            ("[::1]", true),
            ("::1", true),
            ("kvm1.example.com", false),
            ("192.0.2.1", false),
            ("localhost.evil.com", false),
            ("0.0.0.0", false),
        ] {
            assert_eq!(plain_http_client(host), ok, "{host}");
        }
    }
}
