//! Real TLS over loopback: a rustls server with `ServerTls` and clients with the CLI's
//! configurations — self-signed and pinned, CA-verified, mismatch refused, and a reload
//! that keeps an open connection while new ones see the new certificate.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uvmm_auth::tls::client::{
    client_config_ca, client_config_pinned, pin_error, server_key, FirstUse, KnownHosts, PinError,
};
use uvmm_auth::tls::server::{CertNames, CertSource, ServerTls};
use uvmm_auth::tls::{Fingerprint, TlsConfig, TlsError};

/// An echo server: every connection answers each line with "echo: LINE".
async fn serve(tls: Arc<ServerTls>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            // The acceptor is made per connection from the current config, as the daemon
            // will; the resolver inside decides the certificate.
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 256];
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let mut out = b"echo: ".to_vec();
                    out.extend_from_slice(&buf[..n]);
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

type Client = tokio_rustls::client::TlsStream<TcpStream>;

async fn connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<Client, std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

async fn roundtrip(c: &mut Client, msg: &str) -> String {
    c.write_all(msg.as_bytes()).await.unwrap();
    let mut buf = [0u8; 256];
    let n = c.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn pinned(addr: SocketAddr, known: &Path, first: FirstUse) -> Arc<rustls::ClientConfig> {
    let k = KnownHosts::load(known).unwrap();
    client_config_pinned(server_key("127.0.0.1", addr.port()), k, first).unwrap()
}

fn expect_pin_error(r: Result<Client, std::io::Error>) -> PinError {
    match r {
        Ok(_) => panic!("connection was trusted"),
        Err(e) => pin_error(&e)
            .cloned()
            .unwrap_or_else(|| panic!("not a pin error: {e}")),
    }
}

fn local_names() -> CertNames {
    CertNames {
        dns: vec!["localhost".into()],
        ips: vec!["127.0.0.1".parse().unwrap()],
    }
}

#[tokio::test]
async fn self_signed_pinned_on_first_use_only_with_consent() {
    let state = tempfile::tempdir().unwrap();
    let known = state.path().join("client/known_hosts");
    let source =
        CertSource::from_config(&TlsConfig::default(), state.path(), local_names()).unwrap();
    let (tls, identity) = ServerTls::new(source).unwrap();
    assert!(identity.generated);
    let fp = tls.fingerprint();
    let addr = serve(Arc::new(tls)).await;

    // No pin, no consent: refused, and the error carries the fingerprint to check.
    match expect_pin_error(connect(addr, pinned(addr, &known, FirstUse::Refuse), "127.0.0.1").await)
    {
        PinError::Unknown { presented, server } => {
            assert_eq!(presented, fp);
            assert_eq!(server, format!("127.0.0.1:{}", addr.port()));
        }
        other => panic!("{other}"),
    }
    assert!(!known.exists(), "nothing pinned without consent");

    // Consent to another fingerprint: refused, nothing pinned.
    let wrong = Fingerprint([7; 32]);
    assert!(matches!(
        expect_pin_error(
            connect(
                addr,
                pinned(addr, &known, FirstUse::Accept(wrong)),
                "127.0.0.1"
            )
            .await
        ),
        PinError::NotAccepted { .. }
    ));
    assert!(!known.exists());

    // Consent to the right one (typed as openssl prints it): trusted and pinned.
    let typed: Fingerprint = format!("sha256 Fingerprint={}", &fp.to_string()[7..])
        .parse()
        .unwrap();
    let mut c = connect(
        addr,
        pinned(addr, &known, FirstUse::Accept(typed)),
        "127.0.0.1",
    )
    .await
    .unwrap();
    assert_eq!(roundtrip(&mut c, "hi").await, "echo: hi");
    // From now on without any flag; the name the client uses does not matter to a pin.
    let mut c = connect(addr, pinned(addr, &known, FirstUse::Refuse), "uvmm.invalid")
        .await
        .unwrap();
    assert_eq!(roundtrip(&mut c, "again").await, "echo: again");
}

#[tokio::test]
async fn pinned_mismatch_is_refused_as_possible_mitm() {
    let state = tempfile::tempdir().unwrap();
    let known_path = state.path().join("known_hosts");
    let source =
        CertSource::from_config(&TlsConfig::default(), state.path(), local_names()).unwrap();
    let (tls, _) = ServerTls::new(source).unwrap();
    let real = tls.fingerprint();
    let addr = serve(Arc::new(tls)).await;
    let mut known = KnownHosts::load(&known_path).unwrap();
    let old = Fingerprint([0x42; 32]);
    known
        .pin(&server_key("127.0.0.1", addr.port()), old)
        .unwrap();

    for first in [FirstUse::Refuse, FirstUse::Accept(real)] {
        let err =
            expect_pin_error(connect(addr, pinned(addr, &known_path, first), "127.0.0.1").await);
        match &err {
            PinError::Mismatch {
                pinned, presented, ..
            } => {
                assert_eq!((*pinned, *presented), (old, real));
            }
            other => panic!("{other}"),
        }
        let text = err.to_string();
        assert!(text.contains("man-in-the-middle"), "{text}");
        assert!(text.contains("uvmmd --show-fingerprint"), "{text}");
    }
    // The old pin is untouched.
    assert_eq!(
        KnownHosts::load(&known_path)
            .unwrap()
            .get(&server_key("127.0.0.1", addr.port())),
        Some(old)
    );
    // Only an explicit replacement re-pins.
    let mut c = connect(
        addr,
        pinned(addr, &known_path, FirstUse::Replace(real)),
        "127.0.0.1",
    )
    .await
    .unwrap();
    assert_eq!(roundtrip(&mut c, "x").await, "echo: x");
}

struct Pki {
    dir: tempfile::TempDir,
    ca_pem: PathBuf,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

fn new_pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "uvmm test CA");
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let ca_pem = dir.path().join("ca.pem");
    std::fs::write(&ca_pem, issuer.pem()).unwrap();
    Pki {
        dir,
        ca_pem,
        issuer,
    }
}

/// Issue a server certificate for `names` and write it as `<stem>.crt` / `<stem>.key`.
fn issue(pki: &Pki, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
    let params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &pki.issuer).unwrap();
    let (c, k) = (
        pki.dir.path().join(format!("{stem}.crt")),
        pki.dir.path().join(format!("{stem}.key")),
    );
    write_pair(
        &c,
        &k,
        &format!("{}{}", cert.pem(), pki.issuer.pem()),
        &key.serialize_pem(),
    );
    (c, k)
}

fn write_pair(cert: &Path, key: &Path, cert_pem: &str, key_pem: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(key, key_pem).unwrap();
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(cert, cert_pem).unwrap();
}

#[tokio::test]
async fn ca_verified() {
    let pki = new_pki();
    let (cert, key) = issue(&pki, "server", &["localhost", "127.0.0.1"]);
    let cfg = TlsConfig {
        cert: Some(cert),
        key: Some(key),
        plain_http: false,
    };
    let source =
        CertSource::from_config(&cfg, Path::new("/nonexistent"), CertNames::default()).unwrap();
    let (tls, identity) = ServerTls::new(source).unwrap();
    assert!(!identity.generated);
    let addr = serve(Arc::new(tls)).await;

    let client = client_config_ca(&pki.ca_pem).unwrap();
    let mut c = connect(addr, client.clone(), "localhost").await.unwrap();
    assert_eq!(roundtrip(&mut c, "ca").await, "echo: ca");
    let mut c = connect(addr, client.clone(), "127.0.0.1").await.unwrap();
    assert_eq!(roundtrip(&mut c, "ip").await, "echo: ip");
    // A name the certificate does not carry.
    let err = connect(addr, client, "kvm9.example.com").await.unwrap_err();
    assert!(
        err.to_string().contains("certificate not valid for name"),
        "{err}"
    );
    // Another CA does not vouch for it.
    let other = new_pki();
    let err = connect(addr, client_config_ca(&other.ca_pem).unwrap(), "localhost")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    assert!(pin_error(&err).is_none());
    // A CA file that is no CA file.
    let junk = pki.dir.path().join("junk.pem");
    std::fs::write(&junk, "hello").unwrap();
    assert!(matches!(client_config_ca(&junk), Err(TlsError::Pem { .. })));
}

#[tokio::test]
async fn reload_keeps_open_connections_and_serves_the_new_certificate() {
    let pki = new_pki();
    let (cert, key) = issue(&pki, "server", &["localhost"]);
    let cfg = TlsConfig {
        cert: Some(cert.clone()),
        key: Some(key.clone()),
        plain_http: false,
    };
    let source =
        CertSource::from_config(&cfg, Path::new("/nonexistent"), CertNames::default()).unwrap();
    let (tls, _) = ServerTls::new(source).unwrap();
    let tls = Arc::new(tls);
    let old_fp = tls.fingerprint();
    let addr = serve(tls.clone()).await;
    let known = pki.dir.path().join("known_hosts");
    let mut kh = KnownHosts::load(&known).unwrap();
    kh.pin(&server_key("127.0.0.1", addr.port()), old_fp)
        .unwrap();

    let mut open = connect(addr, pinned(addr, &known, FirstUse::Refuse), "localhost")
        .await
        .unwrap();
    assert_eq!(roundtrip(&mut open, "before").await, "echo: before");

    // The renewal arrives: new files, then SIGHUP → reload.
    let (new_cert, new_key) = issue(&pki, "renewed", &["localhost"]);
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    let identity = tls.reload().unwrap();
    let new_fp = tls.fingerprint();
    assert_eq!(identity.fingerprint, new_fp);
    assert_ne!(old_fp, new_fp);

    // The open connection goes on.
    assert_eq!(roundtrip(&mut open, "after").await, "echo: after");
    // A new connection sees the new certificate: the old pin refuses it, the CA accepts
    // it, and a pin of the new fingerprint accepts it.
    match expect_pin_error(connect(addr, pinned(addr, &known, FirstUse::Refuse), "localhost").await)
    {
        PinError::Mismatch { presented, .. } => assert_eq!(presented, new_fp),
        other => panic!("{other}"),
    }
    let mut c = connect(addr, client_config_ca(&pki.ca_pem).unwrap(), "localhost")
        .await
        .unwrap();
    assert_eq!(roundtrip(&mut c, "ca").await, "echo: ca");
    let k2 = pki.dir.path().join("known2");
    KnownHosts::load(&k2)
        .unwrap()
        .pin(&server_key("127.0.0.1", addr.port()), new_fp)
        .unwrap();
    let mut c = connect(addr, pinned(addr, &k2, FirstUse::Refuse), "localhost")
        .await
        .unwrap();
    assert_eq!(roundtrip(&mut c, "new").await, "echo: new");

    // A broken renewal (key of another certificate) is refused; the current one stays.
    let (_, stray_key) = issue(&pki, "stray", &["localhost"]);
    std::fs::copy(&stray_key, &key).unwrap();
    assert!(matches!(tls.reload(), Err(TlsError::KeyMismatch { .. })));
    assert_eq!(tls.fingerprint(), new_fp);
    let mut c = connect(addr, pinned(addr, &k2, FirstUse::Refuse), "localhost")
        .await
        .unwrap();
    assert_eq!(roundtrip(&mut c, "still").await, "echo: still");
    assert_eq!(roundtrip(&mut open, "still open").await, "echo: still open");
}

#[tokio::test]
async fn self_signed_certificate_works_as_its_own_ca() {
    // `--ca /var/lib/uvmm/tls/uvmmd.crt` (copied from the server) is the alternative to a pin.
    let state = tempfile::tempdir().unwrap();
    let source =
        CertSource::from_config(&TlsConfig::default(), state.path(), local_names()).unwrap();
    let (tls, _) = ServerTls::new(source).unwrap();
    let addr = serve(Arc::new(tls)).await;
    let crt = state.path().join("tls/uvmmd.crt");
    let client = client_config_ca(&crt).unwrap();
    let mut c = connect(addr, client.clone(), "localhost").await.unwrap();
    assert_eq!(roundtrip(&mut c, "self").await, "echo: self");
    assert!(connect(addr, client, "elsewhere.example").await.is_err());
}
