//! Remote access against the real daemon: local accounts and groups the test creates
//! (useradd, chpasswd; removed on drop), the packaged PAM service file, uvmmd on
//! `-s 0.0.0.0:PORT` with its own self-signed certificate, and requests over real TLS
//! (curl, verifying that certificate).

use super::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::process::{Command, Stdio};

#[path = "../../../uvmm-auth/tests/support/accounts.rs"]
#[allow(
    dead_code,
    reason = "run() is public for the PAM tests' usermod and chage calls"
)]
mod accounts;

/// Local accounts and groups with a per-process prefix (removed on drop), and uvmmd's PAM
/// service file as the package installs it.
pub struct Accounts {
    pub prefix: String,
    inner: accounts::LocalAccounts,
}

impl Accounts {
    pub fn new(tag: &str) -> Accounts {
        let prefix = format!("ur{}{tag}", std::process::id() % 100_000);
        let inner = accounts::LocalAccounts::new(prefix.clone());
        // uvmmd's PAM service, as the package installs it (left in place: it is what
        // an installed uvmmd has, and other tests may be using it).
        let pam = Path::new("/etc/pam.d/uvmm");
        if !pam.exists() {
            let packaged = repo_root().join("packaging/debian/uvmm-daemon.uvmm.pam");
            std::fs::copy(packaged, pam).unwrap();
        }
        Accounts { prefix, inner }
    }

    pub fn group(&mut self, suffix: &str) -> String {
        self.inner.group(suffix)
    }

    pub fn user(&mut self, suffix: &str, password: &str, groups: &[&str]) -> String {
        self.inner.user(suffix, password, groups)
    }
}

static BODIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// uvmmd on every address with TLS, and what clients need to reach it.
pub struct Remote {
    pub d: Daemon,
    pub port: u16,
    /// The self-signed certificate uvmmd made (clients verify with it as the CA).
    pub cert: PathBuf,
    /// A client's configuration directory (known_hosts, sessions).
    pub home: tempfile::TempDir,
}

impl Remote {
    pub fn start(config: &str) -> Remote {
        Remote::start_with_cert(config, Path::new(""))
    }

    /// With the certificate of `[tls]` in `config` (`cert`; empty: self-signed).
    pub fn start_with_cert(config: &str, cert: &Path) -> Remote {
        Remote::start_full(config, cert, &[])
    }

    /// With more options for uvmmd (e.g. `-b ldap://…`).
    pub fn start_with_args(config: &str, args: &[&str]) -> Remote {
        Remote::start_full(config, Path::new(""), args)
    }

    fn start_full(config: &str, cert: &Path, args: &[&str]) -> Remote {
        let port = free_port();
        let listen = format!("0.0.0.0:{port}");
        let mut all = vec!["-s", &listen, "--tls"];
        all.extend_from_slice(args);
        let d = Daemon::start_with(&demo_uris(), &all, config);
        let cert = if cert.as_os_str().is_empty() {
            d.dir.path().join("state/tls/uvmmd.crt")
        } else {
            cert.to_path_buf()
        };
        assert!(cert.exists(), "no certificate: {}", d.log());
        Remote {
            d,
            port,
            cert,
            home: tempfile::tempdir().unwrap(),
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// `uvmmd --show-fingerprint` with the daemon's own options.
    pub fn fingerprint(&self) -> String {
        let out = Command::new(uvmmd_bin())
            .args(&self.d.args)
            .arg("--show-fingerprint")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `uvmm --url https://127.0.0.1:PORT ARGS` with the client's own config directory.
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut cmd = Command::new(uvmm_bin());
        cmd.arg("--url")
            .arg(self.url())
            .args(args)
            .env("XDG_CONFIG_HOME", self.home.path())
            .env_remove("UVMM_TOKEN")
            .env_remove("UVMM_TOKEN_FILE")
            .env("UVMM_SOCKET", "/nonexistent")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    /// One HTTPS request with curl (verifying uvmmd's certificate); returns the status
    /// and body. `headers` are `Name: value` lines.
    pub fn https(
        &self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: Option<&str>,
    ) -> (u16, String) {
        let out = self.curl(method, path, headers, body, &[]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (status.trim().parse().unwrap_or(0), body.to_string())
    }

    pub fn curl(
        &self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: Option<&str>,
        extra: &[&str],
    ) -> Output {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-S", "--max-time", "30", "-X", method])
            .arg("--cacert")
            .arg(&self.cert)
            .args(["-o", "-", "-w", "\n%{http_code}"])
            .args(extra)
            .arg(format!("{}{path}", self.url()));
        for h in headers {
            cmd.args(["-H", h]);
        }
        if let Some(b) = body {
            // From a file: a 10 MB body does not fit on a command line.
            let file = self.home.path().join(format!(
                "body-{}",
                BODIES.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            ));
            std::fs::write(&file, b).unwrap();
            cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(format!("@{}", file.display()));
        }
        cmd.output().expect("curl")
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.d.token_file())
            .unwrap()
            .trim()
            .to_string()
    }

    /// Log in with curl: the session cookie (`name=value`) and the CSRF token.
    pub fn login(&self, user: &str, password: &str) -> (u16, Option<(String, String)>) {
        let body = serde_json::json!({"user": user, "password": password}).to_string();
        let jar = self.home.path().join(format!("headers-{user}"));
        let out = self.curl(
            "POST",
            "/api/v1/login",
            &[],
            Some(&body),
            &["-D", jar.to_str().unwrap()],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        let status: u16 = status.trim().parse().unwrap_or(0);
        if status != 200 {
            return (status, None);
        }
        let headers = std::fs::read_to_string(&jar).unwrap();
        let cookie = headers
            .lines()
            .find_map(|l| {
                l.strip_prefix("set-cookie: ")
                    .or_else(|| l.strip_prefix("Set-Cookie: "))
            })
            .and_then(|c| c.split(';').next())
            .unwrap()
            .to_string();
        let v: Value = serde_json::from_str(body).unwrap();
        (
            status,
            Some((cookie, v["csrf"].as_str().unwrap().to_string())),
        )
    }
}

/// The config that maps the test's groups to roles: `auth_keys` are more `[auth]` keys,
/// `grants` `[[auth.grant]]` tables.
pub fn roles_config(
    admin: &str,
    operator: &str,
    viewer: &str,
    auth_keys: &str,
    grants: &str,
) -> String {
    format!(
        "{}\n[auth]\nfailure_delay_ms = 200\n{auth_keys}\n[auth.unix_groups]\nadmin = [\"{admin}\"]\noperator = [\"{operator}\"]\nviewer = [\"{viewer}\"]\n{grants}\n",
        demo_runtime_config()
    )
}
