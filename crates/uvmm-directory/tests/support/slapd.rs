//! A real OpenLDAP slapd for tests: started on 127.0.0.1 on a free port with uvmm's
//! schema and test entries, stopped with SIGTERM. Also a provider/consumer pair in syncrepl
//! replication. Self-contained (std, `nix` for signals, `tempfile`), so other crates'
//! tests can include it with `#[path = ".../uvmm-directory/tests/support/slapd.rs"]`.
//!
//! slapd and ldap-utils must be installed (`scripts/lib.sh install_test_deps`); without
//! them the tests fail with that instruction, they do not skip.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of the shared harness"
)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BASE: &str = "dc=example,dc=com";
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=com";
pub const ROOT_PW: &str = "admin-secret";
pub const SERVICE_DN: &str = "uid=uvmm-svc,cn=users,dc=example,dc=com";
pub const SERVICE_PW: &str = "svc-secret";

/// The test entries: hosts, profiles, notes, users, groups (see the file).
pub const TEST_LDIF: &str = include_str!("test-data.ldif");

pub fn schema_dir() -> PathBuf {
    // Through the crate's directory name, so that other crates' tests find it too.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../uvmm-directory/schema")
}

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{name} is not installed: the directory tests need a real slapd and ldap-utils \
         (run `. scripts/lib.sh && install_test_deps`, or `apt-get install slapd ldap-utils`)"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Load the syncprov overlay (content synchronisation for clients and consumers).
    pub syncprov: bool,
    /// Keep a syncprov session log, so refreshes name deletions (delete phase) instead of
    /// listing every unchanged entry (present phase).
    pub sessionlog: bool,
    /// Also listen on ldaps:// and offer StartTLS, with a test CA made for this server.
    pub tls: bool,
    /// Replicate everything from this provider (ldap://127.0.0.1:PORT) with syncrepl.
    pub consumer_of: Option<u16>,
    /// Entries to load before the start (default: [`TEST_LDIF`]; a consumer loads none).
    pub ldif: Option<String>,
}

pub struct Slapd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: Option<u16>,
    pub opts: Options,
    child: Option<Child>,
    /// Seconds the last start took until the port answered.
    pub start_secs: f64,
}

impl Slapd {
    pub fn start(opts: Options) -> Slapd {
        let dir = tempfile::Builder::new()
            .prefix("uvmm-slapd-")
            .tempdir()
            .expect("temporary directory");
        std::fs::create_dir_all(dir.path().join("db")).expect("db directory");
        let mut s = Slapd {
            dir,
            port: free_port(),
            tls_port: None,
            opts,
            child: None,
            start_secs: 0.0,
        };
        if s.opts.tls {
            s.tls_port = Some(free_port());
            s.make_certificates();
        }
        s.write_config();
        if s.opts.consumer_of.is_none() {
            let ldif = s.opts.ldif.clone().unwrap_or_else(|| TEST_LDIF.to_string());
            s.slapadd(&ldif);
        }
        s.launch();
        s
    }

    /// A provider with syncprov and a consumer replicating it (refreshAndPersist); returns
    /// once the consumer has the provider's entries.
    pub fn pair() -> (Slapd, Slapd) {
        let provider = Slapd::start(Options {
            syncprov: true,
            ..Options::default()
        });
        let consumer = Slapd::start(Options {
            syncprov: true,
            consumer_of: Some(provider.port),
            ..Options::default()
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while consumer.count("(objectClass=*)") < provider.count("(objectClass=*)") {
            assert!(
                Instant::now() < deadline,
                "the consumer did not catch up with the provider; log:\n{}",
                consumer.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        (provider, consumer)
    }

    pub fn conf_path(&self) -> PathBuf {
        self.dir.path().join("slapd.conf")
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// `ldap://127.0.0.1:PORT/BASE`
    pub fn uri(&self) -> String {
        format!("ldap://127.0.0.1:{}/{BASE}", self.port)
    }

    pub fn ldaps_uri(&self) -> String {
        format!(
            "ldaps://127.0.0.1:{}/{BASE}",
            self.tls_port.expect("started with tls")
        )
    }

    fn server_url(&self) -> String {
        format!("ldap://127.0.0.1:{}/", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    fn make_certificates(&self) {
        let d = self.dir.path();
        let openssl = tool("openssl");
        let run = |args: &[&str]| {
            let out = Command::new(&openssl)
                .args(args)
                .current_dir(d)
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=uvmm test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("extension file");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.pem",
            "-extfile",
            "server.ext",
        ]);
    }

    fn write_config(&self) {
        let d = self.dir.path().display();
        let s = schema_dir();
        let s = s.display();
        let mut c = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             include {s}/uvmm.schema\n\
             include {s}/uvmm-ext.schema\n\
             include {s}/uvmm-host-compat.schema\n\
             pidfile {d}/slapd.pid\n\
             argsfile {d}/slapd.args\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n"
        );
        if self.opts.syncprov {
            c.push_str("moduleload syncprov\n");
        }
        if self.opts.tls {
            c.push_str(&format!(
                "TLSCACertificateFile {d}/ca.pem\nTLSCertificateFile {d}/server.pem\n\
                 TLSCertificateKeyFile {d}/server.key\n"
            ));
        }
        // Who may do what, like a UCS directory in miniature: everyone can read the root
        // DSE and schema; users authenticate with their password; uvmm's service account
        // writes notes; authenticated users read the rest.
        c.push_str(&format!(
            "access to dn.base=\"\" by * read\n\
             access to dn.base=\"cn=Subschema\" by * read\n\
             access to attrs=userPassword by self write by anonymous auth by * none\n\
             access to dn.subtree=\"cn=Information,cn=Virtual Machine Manager,{BASE}\" \
               by dn.exact=\"{SERVICE_DN}\" write by users read by * none\n\
             access to * by users read by * none\n\
             database mdb\n\
             suffix \"{BASE}\"\n\
             rootdn \"{ROOT_DN}\"\n\
             rootpw {ROOT_PW}\n\
             limits dn.exact=\"{SERVICE_DN}\" size=unlimited time=unlimited\n\
             directory {d}/db\n\
             maxsize 268435456\n\
             index objectClass,entryCSN,entryUUID,uid,memberUid,member,uniqueMember eq\n\
             index univentionService,univentionVirtualMachineUUID eq\n"
        ));
        if self.opts.syncprov {
            c.push_str("overlay syncprov\nsyncprov-checkpoint 100 1\n");
            if self.opts.sessionlog {
                c.push_str("syncprov-sessionlog 1000\n");
            }
        }
        if let Some(p) = self.opts.consumer_of {
            c.push_str(&format!(
                "syncrepl rid=001 provider=ldap://127.0.0.1:{p}/ type=refreshAndPersist \
                 retry=\"1 +\" searchbase=\"{BASE}\" bindmethod=simple binddn=\"{ROOT_DN}\" \
                 credentials={ROOT_PW}\n"
            ));
        }
        std::fs::write(self.conf_path(), c).expect("slapd.conf");
    }

    fn slapadd(&self, ldif: &str) {
        let path = self.dir.path().join("initial.ldif");
        std::fs::write(&path, ldif).expect("ldif");
        let out = Command::new(tool("slapadd"))
            .arg("-f")
            .arg(self.conf_path())
            .arg("-l")
            .arg(&path)
            .arg("-q")
            .output()
            .expect("slapadd runs");
        assert!(
            out.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn launch(&mut self) {
        let mut urls = format!("ldap://127.0.0.1:{}/", self.port);
        if let Some(t) = self.tls_port {
            urls.push_str(&format!(" ldaps://127.0.0.1:{t}/"));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("slapd.log"))
            .expect("log file");
        let started = Instant::now();
        // `-d 0`: stay in the foreground (the child is slapd itself, so SIGTERM reaches it)
        // without debug output.
        let child = Command::new(tool("slapd"))
            .arg("-f")
            .arg(self.conf_path())
            .arg("-h")
            .arg(&urls)
            .arg("-d")
            .arg("0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("slapd starts");
        self.child = Some(child);
        let deadline = started + Duration::from_secs(15);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                break;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("slapd exited with {status}; log:\n{}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "slapd did not listen within 15 s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.start_secs = started.elapsed().as_secs_f64();
    }

    /// SIGTERM, then wait for slapd to exit (it flushes the database); SIGKILL after 15 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("a pid fits pid_t"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        // The port must be free again before a restart can bind it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Freeze slapd (SIGSTOP): connections are accepted by the kernel but never answered,
    /// like a hung server.
    /// Stop slapd, and return only once every thread of it is stopped: kill(2) returns
    /// before the signal took effect, and a thread in the middle of a request could still
    /// answer one (a clean-clone CI run saw a refresh succeed right after the SIGSTOP).
    pub fn pause(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
        let Some(c) = &self.child else { return };
        let tasks = format!("/proc/{}/task", c.id());
        let stopped = || -> bool {
            let Ok(dir) = std::fs::read_dir(&tasks) else {
                return false;
            };
            dir.flatten().all(|t| {
                std::fs::read_to_string(t.path().join("stat")).is_ok_and(|s| {
                    // The state follows the command name in parentheses.
                    s.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().next())
                        .is_some_and(|st| st == "T" || st == "t")
                })
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !stopped() {
            assert!(
                std::time::Instant::now() < deadline,
                "slapd did not stop within 10 s of SIGSTOP"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    pub fn resume(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(c) = &self.child {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(c.id()).expect("a pid fits pid_t"));
            nix::sys::signal::kill(pid, sig).expect("signal slapd");
        }
    }

    /// Start again on the same ports with the same database.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn ldap_tool(&self, name: &str, args: &[&str], input: &str) -> (bool, String) {
        let mut child = Command::new(tool(name))
            .args(["-x", "-H", &self.server_url(), "-D", ROOT_DN, "-w", ROOT_PW])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ldap tool runs");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).expect("ldif to stdin");
        }
        let out = child.wait_with_output().expect("ldap tool finishes");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Change the directory as another client would: `ldapmodify` as the root DN. The LDIF
    /// may hold adds (`changetype: add`), modifies and deletes.
    pub fn ldapmodify(&self, ldif: &str) {
        let (ok, out) = self.ldap_tool("ldapmodify", &[], ldif);
        assert!(ok, "ldapmodify failed: {out}\n{ldif}");
    }

    pub fn ldapdelete(&self, dn: &str) {
        let (ok, out) = self.ldap_tool("ldapdelete", &[dn], "");
        assert!(ok, "ldapdelete {dn}: {out}");
    }

    /// `ldapsearch` as the root DN; the LDIF output.
    pub fn ldapsearch(&self, filter: &str, attrs: &[&str]) -> String {
        let mut args = vec!["-LLL", "-b", BASE, filter];
        args.extend(attrs);
        let (ok, out) = self.ldap_tool("ldapsearch", &args, "");
        assert!(ok, "ldapsearch {filter}: {out}");
        out
    }

    pub fn count(&self, filter: &str) -> usize {
        let (ok, out) = self.ldap_tool("ldapsearch", &["-LLL", "-b", BASE, filter, "1.1"], "");
        if !ok {
            return 0;
        }
        out.lines().filter(|l| l.starts_with("dn:")).count()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
