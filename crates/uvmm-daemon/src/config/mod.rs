//! Command line and configuration file of uvmmd. The command line wins over the file, the
//! file over the built-in defaults; host URIs from both are managed.

pub mod check;
mod directory;
mod file;
mod monitoring;
mod policy;

pub use directory::*;
pub use file::*;
pub use monitoring::*;
pub use policy::*;

use clap::Parser;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use uvmm_api::{DEFAULT_SOCKET, DEFAULT_TCP_PORT};
use uvmm_model::hosts::HostUri;

pub const DEFAULT_CONFIG: &str = "/etc/uvmm/uvmmd.toml";

pub const DEFAULT_STATE_DIR: &str = "/var/lib/uvmm";

pub const DEFAULT_PROFILES_DIR: &str = "/etc/uvmm/profiles.d";

pub const DEFAULT_DETACHED_LOG: &str = "/var/log/uvmm/uvmmd.log";

pub const DEFAULT_DETACHED_PIDFILE: &str = "/run/uvmm/uvmmd.pid";

/// uvmmd - the UVMM daemon: manages the virtual machines of many libvirt hosts.
///
/// Every host is given by its libvirt URI, e.g. qemu:///system, qemu+ssh://kvm1/system,
/// xen://xen1/ or test:///default. The daemon keeps a live cache of all hosts and VMs fed
/// by libvirt events and serves a JSON API (/api/v1) on a UNIX socket and, with -s, on TCP.
///
/// Standalone operation (no directory): uvmmd -b "" URI...
/// The service script reads further options from DAEMON_OPTS in /etc/default/uvmmd.
#[derive(Debug, Parser)]
#[command(name = "uvmmd", version, about, long_about, max_term_width = 100)]
pub struct Args {
    /// libvirt URIs of the hosts to manage (added to the hosts of the configuration file).
    #[arg(value_name = "URI")]
    pub hosts: Vec<String>,

    /// UNIX socket of the API (created with mode 0660).
    #[arg(short = 'u', long = "socket", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Also serve the API on TCP at ADDR[:PORT] (default port 2106), any address
    /// (0.0.0.0 and [::] for all). HTTPS with the [tls] certificate, or a self-signed one
    /// made at the first start (see --show-fingerprint); clients log in or send a token.
    #[arg(short = 's', long = "listen", value_name = "ADDR[:PORT]")]
    pub listen: Option<String>,

    /// Detach into the background once the sockets are ready. Logs go to the -l file
    /// (default /var/log/uvmm/uvmmd.log), the pid to -p (default /run/uvmm/uvmmd.pid).
    #[arg(short = 'd', long = "detach")]
    pub detach: bool,

    /// Write the daemon's pid to this file (removed on exit).
    #[arg(short = 'p', long = "pidfile", value_name = "PIDFILE")]
    pub pidfile: Option<PathBuf>,

    /// Log to this file instead of standard error; SIGHUP reopens it (for logrotate).
    #[arg(short = 'l', long = "logfile", value_name = "LOGFILE")]
    pub logfile: Option<PathBuf>,

    /// Debug logging.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,

    /// LDAP directory URI (ldap://HOST[:PORT]/BASE or ldaps://…): managed hosts, profiles
    /// and VM notes come from the directory ([directory] in the configuration file holds
    /// the bind DN, password file, TLS and intervals). -b "" runs standalone (hosts from
    /// the command line and the configuration file; no directory connection at all).
    #[arg(short = 'b', long = "ldap", value_name = "LDAP_URI")]
    pub ldap: Option<String>,

    /// State directory (runtime-added hosts and other daemon state).
    #[arg(short = 'c', long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Backup directory: every change of a VM definition is kept as a version there.
    #[arg(long = "backup-dir", value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,

    /// Configuration file (TOML). A missing default file is fine; a missing file given
    /// here is an error.
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Check this command line, the configuration file and the profiles, then exit without
    /// starting: 0 if uvmmd would start, 1 with the reason if not. Use it before a restart,
    /// with the options of the service: uvmmd --check-config $DAEMON_OPTS
    #[arg(long = "check-config")]
    pub check_config: bool,

    /// Serve plain HTTP instead of HTTPS on the -s address, which must be loopback
    /// (127.0.0.1, ::1): for a local reverse proxy, the demo and tests. Same as
    /// [tls] plain_http = true.
    #[arg(long = "plain-http")]
    pub plain_http: bool,

    /// The audit log (JSON lines, one per change; default /var/log/uvmm/audit.log).
    #[arg(long = "audit-log", value_name = "FILE")]
    pub audit_log: Option<PathBuf>,

    /// Print the SHA-256 fingerprint of the TCP listener's certificate (the one clients
    /// pin) and exit. Makes no certificate: the self-signed one exists after the first
    /// start with -s.
    #[arg(long = "show-fingerprint")]
    pub show_fingerprint: bool,
}

/// The effective settings after merging.
#[derive(Debug, Clone)]
pub struct Settings {
    pub hosts: Vec<String>,
    pub host_origins_cmdline: Vec<String>,
    pub socket: PathBuf,
    pub listen: Option<SocketAddr>,
    pub detach: bool,
    pub pidfile: Option<PathBuf>,
    pub logfile: Option<PathBuf>,
    pub verbose: bool,
    pub state_dir: PathBuf,
    pub profiles_dir: PathBuf,
    pub backup_dir: PathBuf,
    pub retention: uvmm_backup::Retention,
    pub tasks: TaskRetention,
    pub monitoring: Monitoring,
    pub timing: Timing,
    pub api: ApiPolicy,
    /// `[auth]`, checked (see `uvmm_auth::AuthConfig::validate`).
    pub auth: uvmm_auth::AuthConfig,
    pub tls: uvmm_auth::tls::TlsConfig,
    pub audit_log: PathBuf,
    /// The configuration file read (SIGHUP reads its `[auth]` again).
    pub config_file: PathBuf,
    /// `[migration] peer_uris`: how the libvirtds reach each other (see `MigrationFile`).
    pub peer_uris: PeerUris,
    /// Directory mode; `None` = standalone.
    pub directory: Option<DirectorySettings>,
}

/// How long finished tasks are kept, and how many at most.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskRetention {
    pub keep_for: Duration,
    pub keep_max: usize,
}

impl Default for TaskRetention {
    fn default() -> Self {
        TaskRetention {
            keep_for: Duration::from_secs(3600),
            keep_max: 1000,
        }
    }
}

/// Intervals of the host workers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub stats_interval: Duration,
    /// Statistics interval while nobody is watching (see `Shared::stats_interval_now`).
    pub idle_stats_interval: Duration,
    pub reconcile_interval: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub call_timeout: Duration,
    /// How long one connection attempt may take (libvirt's own open has no limit).
    pub connect_timeout: Duration,
    pub keepalive_interval: u32,
    pub keepalive_count: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            stats_interval: Duration::from_secs(5),
            idle_stats_interval: Duration::from_secs(30),
            reconcile_interval: Duration::from_secs(60),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(300),
            call_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(30),
            keepalive_interval: 5,
            keepalive_count: 3,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

pub fn load_file(path: &Path, explicit: bool) -> Result<FileConfig, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            Ok(FileConfig::default())
        }
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parse `-s ADDR[:PORT]`: an IP address (with brackets for IPv6) or `localhost`.
pub fn parse_listen(spec: &str) -> Result<SocketAddr, ConfigError> {
    let invalid = || {
        ConfigError::Invalid(format!(
            "-s '{spec}': expected ADDR[:PORT], e.g. 127.0.0.1, 127.0.0.1:2106 or [::1]:2106"
        ))
    };
    let spec = spec.trim();
    let addr: SocketAddr = if let Ok(sa) = spec.parse::<SocketAddr>() {
        sa
    } else if let Ok(ip) = spec.trim_matches(['[', ']']).parse::<IpAddr>() {
        SocketAddr::new(ip, DEFAULT_TCP_PORT)
    } else {
        let (host, port) = match spec.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| invalid())?),
            None => (spec, DEFAULT_TCP_PORT),
        };
        if host == "localhost" {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
        } else {
            return Err(invalid());
        }
    };
    Ok(addr)
}

/// How each host's libvirtd is reached by the others (peer-to-peer migration), by the
/// host's URI as uvmmd manages it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerUris(pub std::collections::BTreeMap<String, String>);

impl PeerUris {
    /// The URI another libvirtd uses for `host`: the configured one, else the host's own
    /// when it names a remote machine; `None` when neither works (a local or socket URI).
    pub fn of(&self, host: &HostUri) -> Option<String> {
        if let Some(p) = self.0.get(&host.uri) {
            return Some(p.clone());
        }
        let remote =
            host.host.as_deref().is_some_and(|h| !h.is_empty()) && !host.uri.contains("socket=");
        remote.then(|| host.uri.clone())
    }
}

fn peer_uris(f: Option<MigrationFile>) -> Result<PeerUris, ConfigError> {
    let map = f.and_then(|f| f.peer_uris).unwrap_or_default();
    for (host, peer) in &map {
        for u in [host, peer] {
            HostUri::parse(u)
                .map_err(|e| ConfigError::Invalid(format!("[migration] peer_uris: {e}")))?;
        }
    }
    Ok(PeerUris(map))
}

pub fn merge(args: Args, file: FileConfig) -> Result<Settings, ConfigError> {
    let state_dir = args
        .state_dir
        .clone()
        .or(file.state_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    let directory = directory_settings(
        args.ldap.as_deref(),
        file.ldap.as_deref(),
        file.directory.as_ref(),
        &state_dir,
    )?;

    let mut hosts: Vec<String> = Vec::new();
    for uri in args.hosts.iter().chain(file.hosts.iter().flatten()) {
        HostUri::parse(uri).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if !hosts.contains(uri) {
            hosts.push(uri.clone());
        }
    }

    let listen = args
        .listen
        .as_deref()
        .or(file.listen.as_deref())
        .map(parse_listen)
        .transpose()?;

    let auth = file.auth.clone().unwrap_or_default();
    auth.validate()
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let mut tls = file.tls.clone().unwrap_or_default();
    tls.plain_http |= args.plain_http;
    if tls.cert.is_some() != tls.key.is_some() {
        return Err(ConfigError::Invalid(
            uvmm_auth::tls::TlsError::HalfConfigured.to_string(),
        ));
    }
    if let Some(addr) = listen {
        match uvmm_auth::tls::plain_http_listener(addr, tls.plain_http) {
            Ok(()) | Err(uvmm_auth::tls::PlainHttpRefused::NotConfigured(_)) => {}
            Err(e) => return Err(ConfigError::Invalid(format!("-s {addr}: {e}"))),
        }
    } else if args.plain_http {
        return Err(ConfigError::Invalid(
            "--plain-http needs a loopback TCP listener (-s 127.0.0.1)".into(),
        ));
    }
    let audit_log = args
        .audit_log
        .clone()
        .or(file.audit_log.clone())
        .unwrap_or_else(|| PathBuf::from(uvmm_auth::audit::DEFAULT_AUDIT_LOG));

    let mut timing = Timing::default();
    let secs = |v: Option<u64>, name: &str, d: Duration| -> Result<Duration, ConfigError> {
        match v {
            None => Ok(d),
            Some(0) => Err(ConfigError::Invalid(format!("{name} must be at least 1"))),
            Some(s) if s > 86_400 => Err(ConfigError::Invalid(format!(
                "{name} must be at most 86400 seconds"
            ))),
            Some(s) => Ok(Duration::from_secs(s)),
        }
    };
    timing.stats_interval = secs(
        file.stats_interval_secs,
        "stats_interval_secs",
        timing.stats_interval,
    )?;
    timing.idle_stats_interval = secs(
        file.idle_stats_interval_secs,
        "idle_stats_interval_secs",
        timing.idle_stats_interval,
    )?;
    if file.idle_stats_interval_secs.is_none() {
        // A long statistics interval needs no slower idle one.
        timing.idle_stats_interval = timing.idle_stats_interval.max(timing.stats_interval);
    } else if timing.idle_stats_interval < timing.stats_interval {
        return Err(ConfigError::Invalid(format!(
            "idle_stats_interval_secs ({}) must not be shorter than stats_interval_secs ({})",
            timing.idle_stats_interval.as_secs(),
            timing.stats_interval.as_secs()
        )));
    }
    timing.reconcile_interval = secs(
        file.reconcile_interval_secs,
        "reconcile_interval_secs",
        timing.reconcile_interval,
    )?;
    timing.reconnect_min = secs(
        file.reconnect_min_secs,
        "reconnect_min_secs",
        timing.reconnect_min,
    )?;
    timing.reconnect_max = secs(
        file.reconnect_max_secs,
        "reconnect_max_secs",
        timing.reconnect_max,
    )?;
    timing.call_timeout = secs(
        file.call_timeout_secs,
        "call_timeout_secs",
        timing.call_timeout,
    )?;
    timing.connect_timeout = secs(
        file.connect_timeout_secs,
        "connect_timeout_secs",
        timing.connect_timeout,
    )?;
    if timing.reconnect_max < timing.reconnect_min {
        return Err(ConfigError::Invalid(
            "reconnect_max_secs must not be smaller than reconnect_min_secs".into(),
        ));
    }
    if let Some(i) = file.keepalive_interval_secs {
        timing.keepalive_interval = i;
    }
    if let Some(c) = file.keepalive_count {
        timing.keepalive_count = c;
    }

    let logfile = args
        .logfile
        .or(file.logfile)
        .or_else(|| args.detach.then(|| PathBuf::from(DEFAULT_DETACHED_LOG)));
    let pidfile = args
        .pidfile
        .or(file.pidfile)
        .or_else(|| args.detach.then(|| PathBuf::from(DEFAULT_DETACHED_PIDFILE)));

    let config_file = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    Ok(Settings {
        config_file,
        host_origins_cmdline: args.hosts.clone(),
        hosts,
        socket: args
            .socket
            .or(file.socket)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        listen,
        detach: args.detach,
        pidfile,
        logfile,
        verbose: args.verbose,
        state_dir,
        profiles_dir: file
            .profiles_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PROFILES_DIR)),
        backup_dir: args
            .backup_dir
            .or(file.backup_dir)
            .unwrap_or_else(|| PathBuf::from(uvmm_backup::store::DEFAULT_DIR)),
        monitoring: monitoring(file.monitoring)?,
        retention: uvmm_backup::Retention {
            keep_versions: file.backup_keep_versions.unwrap_or(100),
            max_age: file
                .backup_keep_days
                .filter(|d| *d > 0)
                .map(|d| Duration::from_secs(d * 86_400)),
        },
        tasks: TaskRetention {
            keep_for: Duration::from_secs(file.task_keep_secs.unwrap_or(3600)),
            keep_max: file.task_keep.unwrap_or(1000),
        },
        timing,
        api: ApiPolicy {
            trust_directory_hosts: directory.as_ref().is_some_and(|d| d.trust_host_uris),
            ..api_policy(file.api)?
        },
        peer_uris: peer_uris(file.migration)?,
        directory,
        auth,
        tls,
        audit_log,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(super) fn args(list: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("uvmmd").chain(list.iter().copied())).unwrap()
    }

    #[test]
    fn listen_addresses() {
        let ok = [
            ("127.0.0.1", "127.0.0.1:2106"),
            ("127.0.0.1:9000", "127.0.0.1:9000"),
            ("::1", "[::1]:2106"),
            ("[::1]:2107", "[::1]:2107"),
            ("localhost", "127.0.0.1:2106"),
            ("localhost:7", "127.0.0.1:7"),
        ];
        for (spec, want) in ok {
            assert_eq!(parse_listen(spec).unwrap().to_string(), want, "{spec}");
        }
        for (spec, want) in [
            ("0.0.0.0", "0.0.0.0:2106"),
            ("[::]", "[::]:2106"),
            ("192.168.1.1:9", "192.168.1.1:9"),
        ] {
            assert_eq!(parse_listen(spec).unwrap().to_string(), want, "{spec}");
        }
        for bad in ["example.com", "127.0.0.1:x", ""] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
        // Plain HTTP only on loopback, and only when asked for.
        assert!(merge(
            args(&["-s", "0.0.0.0", "--plain-http"]),
            FileConfig::default()
        )
        .unwrap_err()
        .to_string()
        .contains("only allowed on loopback"));
        assert!(merge(args(&["--plain-http"]), FileConfig::default()).is_err());
        let s = merge(args(&["-s", "::1", "--plain-http"]), FileConfig::default()).unwrap();
        assert!(s.tls.plain_http);
        let s = merge(args(&["-s", "0.0.0.0"]), FileConfig::default()).unwrap();
        assert!(!s.tls.plain_http);
    }

    #[test]
    fn ldap_option() {
        let s = merge(args(&["-b", ""]), FileConfig::default()).unwrap();
        assert!(s.directory.is_none());
        let s = merge(
            args(&["-b", "ldap://dc.example.com/dc=example,dc=com", "-c", "/st"]),
            FileConfig::default(),
        )
        .unwrap();
        let d = s.directory.unwrap();
        assert_eq!(d.config.uri, "ldap://dc.example.com/dc=example,dc=com");
        assert_eq!(d.config.cache_dir, PathBuf::from("/st/directory"));
        let file: FileConfig =
            toml::from_str("[directory]\nuri = \"ldap://h/dc=x\"\npoll_interval_secs = 5\n")
                .unwrap();
        assert!(merge(args(&["-b", ""]), file).unwrap().directory.is_none());
        let e = merge(args(&["-b", "http://x/"]), FileConfig::default()).unwrap_err();
        assert!(e.to_string().contains("[directory]"), "{e}");
    }

    #[test]
    fn merging_and_defaults() {
        let file: FileConfig = toml::from_str(
            "hosts = [\"test:///default\", \"qemu:///system\"]\nstats_interval_secs = 2\n",
        )
        .unwrap();
        let s = merge(args(&["-b", "", "test:///default", "xen://xen1/"]), file).unwrap();
        assert_eq!(
            s.hosts,
            vec!["test:///default", "xen://xen1/", "qemu:///system"]
        );
        assert_eq!(s.timing.stats_interval, Duration::from_secs(2));
        assert_eq!(s.timing.connect_timeout, Duration::from_secs(30));
        assert_eq!(s.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(s.pidfile, None);
        let d = merge(args(&["-d"]), FileConfig::default()).unwrap();
        assert_eq!(d.logfile, Some(PathBuf::from(DEFAULT_DETACHED_LOG)));
        assert_eq!(d.pidfile, Some(PathBuf::from(DEFAULT_DETACHED_PIDFILE)));
    }

    #[test]
    fn invalid_settings() {
        let bad_uri = merge(args(&["http://x/"]), FileConfig::default());
        assert!(bad_uri.is_err());
        let zero: FileConfig = toml::from_str("stats_interval_secs = 0").unwrap();
        assert!(merge(args(&[]), zero).is_err());
        let inverted: FileConfig =
            toml::from_str("reconnect_min_secs = 10\nreconnect_max_secs = 5").unwrap();
        assert!(merge(args(&[]), inverted).is_err());
        assert!(toml::from_str::<FileConfig>("stats_intervall_secs = 3").is_err());
        let no_wait: FileConfig = toml::from_str("connect_timeout_secs = 0").unwrap();
        assert!(merge(args(&[]), no_wait).is_err());
        let idle_faster: FileConfig =
            toml::from_str("stats_interval_secs = 10\nidle_stats_interval_secs = 5").unwrap();
        assert!(merge(args(&[]), idle_faster).is_err());
    }

    #[test]
    fn idle_statistics_interval() {
        let t = |toml_text: &str| merge(args(&[]), toml::from_str(toml_text).unwrap()).unwrap();
        let d = t("");
        assert_eq!(
            (d.timing.stats_interval, d.timing.idle_stats_interval),
            (Duration::from_secs(5), Duration::from_secs(30))
        );
        // A long fast interval lifts the default idle one with it.
        assert_eq!(
            t("stats_interval_secs = 60").timing.idle_stats_interval,
            Duration::from_secs(60)
        );
        // Equal intervals: no slow-down.
        assert_eq!(
            t("idle_stats_interval_secs = 5").timing.idle_stats_interval,
            Duration::from_secs(5)
        );
    }

    #[test]
    fn config_file_loading() {
        let dir = std::env::temp_dir().join(format!("uvmm-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.toml");
        assert!(load_file(&missing, false).is_ok());
        assert!(load_file(&missing, true).is_err());
        let broken = dir.join("broken.toml");
        std::fs::write(&broken, "hosts = [").unwrap();
        assert!(matches!(
            load_file(&broken, true),
            Err(ConfigError::Parse { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
