//! `--url`: reaching uvmmd over the network. HTTPS with the server verified by `--ca FILE`
//! or by a pinned certificate fingerprint (`~/.config/uvmm/known_hosts`), never silently:
//! an unknown server is trusted only on an explicit yes at the prompt or with
//! `--accept-fingerprint FP`, and a changed certificate is refused (only
//! `--accept-fingerprint NEW --replace-pin` re-pins). Plain `http://` only to loopback.
//!
//! Credentials: an API token (`UVMM_TOKEN`, `--token-file`), else the session `uvmm login`
//! stored for that server (`~/.config/uvmm/sessions/HOST_PORT.json`, 0600 in a 0700
//! directory: the session cookie and its CSRF token, which expire on the server after 30
//! minutes unused or 12 hours), else uvmmd's legacy token file when it is readable (root
//! on the daemon's machine).

use crate::client::{token_from, ClientError, Credential, Target};
use rustls::pki_types::ServerName;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use uvmm_auth::tls::client::{
    client_config_ca, client_config_pinned, pin_error, server_key, FirstUse, KnownHosts, PinError,
};
use uvmm_auth::tls::{plain_http_client, Fingerprint};

/// The TLS side of a target: how the server is verified and by which name.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tls({:?})", self.name)
    }
}

impl Tls {
    pub async fn connect(
        &self,
        stream: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(self.name.clone(), stream)
            .await
    }
}

/// A failed handshake, told the way the pinning error says it (what to do next).
pub fn describe_tls_error(e: &std::io::Error) -> String {
    match pin_error(e) {
        Some(p) => p.to_string(),
        None => format!("TLS handshake with uvmmd failed: {e}"),
    }
}

/// How the user wants the server verified (`--ca`, `--known-hosts`,
/// `--accept-fingerprint`, `--replace-pin`).
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub ca: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub accept_fingerprint: Option<String>,
    pub replace_pin: bool,
}

/// A parsed `--url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    /// As written, without brackets.
    pub host: String,
    pub port: u16,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, ClientError> {
        let bad = || {
            ClientError::Usage(format!(
                "--url {url}: expected https://HOST[:PORT] (or http://127.0.0.1:PORT on the daemon's machine)"
            ))
        };
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad());
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
            return Err(bad());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if after.is_empty() => uvmm_api::DEFAULT_TCP_PORT,
                None => return Err(bad()),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
                None => (authority.to_string(), uvmm_api::DEFAULT_TCP_PORT),
            }
        };
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(Url { https, host, port })
    }

    /// `HOST:PORT` for the `Host` header and the connection (`[v6]:PORT`).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The key of this server in known_hosts and of its stored session.
    pub fn server(&self) -> String {
        server_key(&self.host, self.port)
    }
}

/// `$XDG_CONFIG_HOME/uvmm`, else `~/.config/uvmm`.
fn config_dir() -> Option<PathBuf> {
    KnownHosts::default_path().and_then(|p| p.parent().map(Path::to_path_buf))
}

/// Where the session of `server` is kept.
pub fn session_file(server: &str) -> Option<PathBuf> {
    let safe: String = server
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    config_dir().map(|d| d.join("sessions").join(format!("{safe}.json")))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSession {
    user: String,
    cookie: String,
    csrf: String,
}

/// Keep a session for `server` (0600 in a 0700 directory).
pub fn store_session(
    server: &str,
    user: &str,
    cookie: &str,
    csrf: &str,
) -> Result<PathBuf, ClientError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = session_file(server)
        .ok_or_else(|| ClientError::Failed("no home directory to keep the session in".into()))?;
    let fail = |e: std::io::Error| {
        ClientError::Failed(format!(
            "cannot store the session in {}: {e}",
            path.display()
        ))
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
    }
    let text = serde_json::to_string(&StoredSession {
        user: user.to_string(),
        cookie: cookie.to_string(),
        csrf: csrf.to_string(),
    })
    .unwrap_or_default();
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(fail)?;
    std::fs::rename(&tmp, &path).map_err(fail)?;
    Ok(path)
}

fn load_session(server: &str) -> Option<Credential> {
    let text = std::fs::read_to_string(session_file(server)?).ok()?;
    let s: StoredSession = serde_json::from_str(&text).ok()?;
    Some(Credential::Session {
        cookie: s.cookie,
        csrf: s.csrf,
    })
}

/// Forget the stored session of `server` (whether or not there was one).
pub fn forget_session(server: &str) {
    if let Some(p) = session_file(server) {
        let _ = std::fs::remove_file(p);
    }
}

fn server_name(host: &str) -> Result<ServerName<'static>, ClientError> {
    ServerName::try_from(host.to_string())
        .map_err(|e| ClientError::Usage(format!("--url: '{host}' is not a host name: {e}")))
}

fn tls_config(url: &Url, opts: &TlsOptions, first_use: FirstUse) -> Result<Tls, ClientError> {
    let usage = |e: String| ClientError::Usage(e);
    let config = match &opts.ca {
        Some(ca) => client_config_ca(ca).map_err(|e| usage(e.to_string()))?,
        None => {
            let path = match &opts.known_hosts {
                Some(p) => p.clone(),
                None => KnownHosts::default_path().ok_or_else(|| {
                    usage(
                        "no home directory for known_hosts: give --known-hosts FILE or --ca FILE"
                            .into(),
                    )
                })?,
            };
            let known = KnownHosts::load(&path).map_err(|e| usage(e.to_string()))?;
            client_config_pinned(url.server(), known, first_use)
                .map_err(|e| usage(e.to_string()))?
        }
    };
    Ok(Tls {
        config,
        name: server_name(&url.host)?,
    })
}

/// One handshake, so that an unknown server is asked about before anything is sent.
async fn probe(url: &Url, tls: &Tls) -> Result<(), std::io::Error> {
    let tcp = TcpStream::connect(url.authority()).await?;
    tls.connect(tcp).await.map(|_| ())
}

/// On a terminal: show the fingerprint and ask. Anything but "yes" is no.
fn ask_trust(url: &Url, presented: &Fingerprint) -> bool {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return false;
    }
    eprint!(
        "uvmm: {} is not a known server. Its certificate has the fingerprint\n  {presented}\n\
         Compare it with the output of `uvmmd --show-fingerprint` on the server.\n\
         Trust it and remember it? [yes/no] ",
        url.server()
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).is_ok() && answer.trim() == "yes"
}

/// The target of `--url`. `need_credential`: fail now (with what to do) when there is
/// none, rather than at the server's 401.
pub async fn target(
    url: &str,
    opts: &TlsOptions,
    token_file: Option<&Path>,
    need_credential: bool,
) -> Result<Target, ClientError> {
    let url = Url::parse(url)?;
    let tls = if url.https {
        let first_use = match (&opts.accept_fingerprint, opts.replace_pin) {
            (Some(fp), replace) => {
                let fp: Fingerprint = fp
                    .parse()
                    .map_err(|e: uvmm_auth::tls::BadFingerprint| ClientError::Usage(e.to_string()))?;
                if replace {
                    FirstUse::Replace(fp)
                } else {
                    FirstUse::Accept(fp)
                }
            }
            (None, true) => {
                return Err(ClientError::Usage(
                    "--replace-pin needs --accept-fingerprint NEW (the fingerprint checked on the server)".into(),
                ))
            }
            (None, false) => FirstUse::Refuse,
        };
        let mut tls = tls_config(&url, opts, first_use)?;
        if let Err(e) = probe(&url, &tls).await {
            match pin_error(&e) {
                Some(PinError::Unknown { presented, .. }) if ask_trust(&url, presented) => {
                    tls = tls_config(&url, opts, FirstUse::Accept(*presented))?;
                    probe(&url, &tls)
                        .await
                        .map_err(|e| ClientError::Tls(describe_tls_error(&e)))?;
                }
                Some(_) => return Err(ClientError::Tls(describe_tls_error(&e))),
                None if e.kind() == std::io::ErrorKind::InvalidData => {
                    return Err(ClientError::Tls(describe_tls_error(&e)))
                }
                None => {
                    return Err(ClientError::Connect {
                        target: format!("https://{}", url.authority()),
                        source: e,
                    })
                }
            }
        }
        Some(tls)
    } else {
        if !plain_http_client(&url.host) {
            return Err(ClientError::Usage(format!(
                "--url http://{}: plain HTTP only to this machine (localhost, 127.0.0.1, ::1): passwords and tokens would cross the network unencrypted; use https://",
                url.authority()
            )));
        }
        None
    };
    let explicit =
        token_file.is_some() || std::env::var("UVMM_TOKEN").is_ok_and(|t| !t.trim().is_empty());
    let auth = match token_from(token_file)? {
        Some(t) if explicit => Credential::Bearer(t),
        default_file => match (load_session(&url.server()), default_file) {
            (Some(s), _) => s,
            (None, Some(t)) => Credential::Bearer(t),
            (None, None) => Credential::None,
        },
    };
    if need_credential && auth == Credential::None {
        return Err(ClientError::Usage(format!(
            "uvmmd at {} needs a login: run `uvmm --url {} login`, or give an API token with UVMM_TOKEN or --token-file",
            url.authority(),
            url_text(&url)
        )));
    }
    Ok(Target::Tcp {
        authority: url.authority(),
        tls,
        auth,
    })
}

fn url_text(url: &Url) -> String {
    format!(
        "{}://{}",
        if url.https { "https" } else { "http" },
        url.authority()
    )
}

/// The password for `uvmm login`: one line of standard input with `--password-stdin`,
/// else asked on the terminal without echo.
pub fn read_password(from_stdin: bool) -> Result<String, ClientError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| ClientError::Usage(format!("cannot read the password: {e}")))?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| {
            ClientError::Usage(format!(
                "no terminal to ask for the password ({e}); use --password-stdin"
            ))
        })?;
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(
                tty.try_clone()
                    .map(std::process::Stdio::from)
                    .unwrap_or_else(|_| std::process::Stdio::null()),
            )
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut out = tty
        .try_clone()
        .map_err(|e| ClientError::Usage(format!("terminal: {e}")))?;
    let _ = write!(out, "Password: ");
    let _ = out.flush();
    let hidden = stty("-echo");
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    if hidden {
        stty("echo");
    }
    let _ = writeln!(out);
    read.map_err(|e| ClientError::Usage(format!("cannot read the password: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = [
            ("https://kvm1.example.com", true, "kvm1.example.com", 2106),
            ("https://kvm1:9000/", true, "kvm1", 9000),
            ("https://127.0.0.1:2106", true, "127.0.0.1", 2106),
            ("https://[::1]:7", true, "::1", 7),
            ("https://[fe80::1]", true, "fe80::1", 2106),
            ("http://127.0.0.1:2106", false, "127.0.0.1", 2106),
        ];
        for (u, https, host, port) in ok {
            let p = Url::parse(u).unwrap();
            assert_eq!(
                (p.https, p.host.as_str(), p.port),
                (https, host, port),
                "{u}"
            );
        }
        assert_eq!(
            Url::parse("https://[::1]:7").unwrap().authority(),
            "[::1]:7"
        );
        for bad in [
            "ftp://h",
            "https://",
            "https://h:x",
            "https://h:0",
            "https://h/path",
            "https://user@h",
            "https://[::1",
            "kvm1:2106",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn session_files_are_named_safely() {
        let p = session_file("[::1]:2106").unwrap();
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(name, "___1__2106.json");
        let p = session_file("../../etc:1").unwrap();
        assert!(!p.file_name().unwrap().to_str().unwrap().contains('/'));
    }
}
