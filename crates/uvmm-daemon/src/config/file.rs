//! The configuration file as written (TOML).

use serde::Deserialize;
use std::path::PathBuf;

/// The configuration file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub hosts: Option<Vec<String>>,
    pub socket: Option<PathBuf>,
    pub listen: Option<String>,
    pub state_dir: Option<PathBuf>,
    /// Directory of VM profile files (*.toml), overlaying the built-in profiles.
    pub profiles_dir: Option<PathBuf>,
    /// Backup directory (default /var/backups/uvmm).
    pub backup_dir: Option<PathBuf>,
    /// Versions kept per VM (0: all); the latest is always kept.
    pub backup_keep_versions: Option<u32>,
    /// Versions older than this many days are pruned (0 or absent: no age limit).
    pub backup_keep_days: Option<u64>,
    /// How long a finished task stays readable (`GET /api/v1/tasks/{id}`), in seconds
    /// (default 3600), and how many finished tasks are kept at most (default 1000).
    pub task_keep_secs: Option<u64>,
    pub task_keep: Option<usize>,
    /// Pool monitoring thresholds and interval.
    pub monitoring: Option<MonitoringFile>,
    pub logfile: Option<PathBuf>,
    pub pidfile: Option<PathBuf>,
    /// The directory URI (older spelling of `[directory] uri`); `""` = standalone.
    pub ldap: Option<String>,
    /// Directory mode (docs/directory.md): the keys of `uvmm_directory::DirectoryConfig`
    /// plus `trust_host_uris`; checked when merging.
    pub directory: Option<toml::Table>,
    /// Seconds between statistics refreshes (one bulk call per host).
    pub stats_interval_secs: Option<u64>,
    /// Seconds between statistics reads that cover inactive VMs too, to catch changes
    /// whose event was lost (the others read active VMs only).
    pub reconcile_interval_secs: Option<u64>,
    /// Seconds between statistics refreshes while nobody is watching: no event stream
    /// open and no API request for three `stats_interval`s. Equal to `stats_interval_secs`
    /// turns the slow-down off.
    pub idle_stats_interval_secs: Option<u64>,
    /// First reconnection delay; doubles up to `reconnect_max_secs`.
    pub reconnect_min_secs: Option<u64>,
    pub reconnect_max_secs: Option<u64>,
    /// How long an API request waits for a host to carry out a call.
    pub call_timeout_secs: Option<u64>,
    /// How long a connection attempt to a host may take before the host is shown as
    /// unavailable (with the reason) and retried with back-off.
    pub connect_timeout_secs: Option<u64>,
    /// libvirt keepalive on remote connections: probe interval and missed probes.
    pub keepalive_interval_secs: Option<u32>,
    pub keepalive_count: Option<u32>,
    /// What API clients may do beyond the defaults, and the listeners' limits.
    pub api: Option<ApiFile>,
    /// Who may do what: roles of UNIX groups, grants, sessions, login limits
    /// (docs/security.md). Reloaded on SIGHUP.
    pub auth: Option<uvmm_auth::AuthConfig>,
    /// The TCP listener's certificate (`cert`, `key`; absent: self-signed) and whether a
    /// loopback listener serves plain HTTP (`plain_http`).
    pub tls: Option<uvmm_auth::tls::TlsConfig>,
    /// The audit log of every change (default /var/log/uvmm/audit.log); reopened on SIGHUP.
    pub audit_log: Option<PathBuf>,
    /// Migration between the managed hosts.
    pub migration: Option<MigrationFile>,
}

/// `[migration]` of the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationFile {
    /// How the *libvirtds* reach each other for peer-to-peer migration, per managed host
    /// URI: `{ "qemu:///system" = "qemu+tcp://kvm1.example.org/system" }`. Needed where
    /// uvmmd's own URI of a host means nothing to another host (a local `qemu:///system`,
    /// a UNIX socket); a remote URI (`qemu+ssh://kvm1/system`) is used as it is.
    pub peer_uris: Option<std::collections::BTreeMap<String, String>>,
}

/// `[api]` of the configuration file: the privilege boundary between API clients and
/// uvmmd (which runs as root next to libvirt). See docs/security.md.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFile {
    /// Accept, for hosts added through the API, the `ext` transport and URI parameters that
    /// name local programs, sockets or files (`command`, `socket`, `keyfile`, …). Default
    /// false: only the configuration file and command line may use them.
    pub allow_local_program_uris: Option<bool>,
    /// Directories below which API clients may add `test:///PATH` hosts. Default: none
    /// (only `test:///default`).
    pub test_host_dirs: Option<Vec<PathBuf>>,
    /// Directories below which API clients may use disk and CD-ROM images that are not
    /// volumes of a storage pool. Default: none (pool volumes only).
    pub image_dirs: Option<Vec<PathBuf>>,
    /// Extra names the TCP listener answers to in the `Host` header (its own address and,
    /// on loopback, `localhost` are always accepted). Guards against DNS rebinding.
    pub tcp_host_names: Option<Vec<String>>,
    /// Open connections per peer (UNIX socket: per user id; TCP: per address).
    pub max_connections_per_peer: Option<usize>,
    /// Open connections per listener.
    pub max_connections: Option<usize>,
    /// Seconds a client has to send a request's headers (also the idle time of a kept-alive
    /// connection) and its body.
    pub request_timeout_secs: Option<u64>,
    /// File mode of the UNIX socket, octal (default "0666": every local account may
    /// connect, and gets only what its groups' roles allow, 403 without a role; "0660"
    /// keeps everyone but root and the socket's group out before they ask).
    pub socket_mode: Option<String>,
}

/// `[monitoring]` of the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringFile {
    /// The longest age of pool figures, in seconds (default 60): uvmmd refreshes every
    /// active pool (virStoragePoolRefresh, then sizes and volumes) before its figures are
    /// that old, and answers show a pool whose figures are older as stale.
    pub pool_interval_secs: Option<u64>,
    /// Warning thresholds: percentages of used capacity ("80%") and/or minimum free
    /// space ("20GiB:").
    pub warning: Option<Vec<String>>,
    pub critical: Option<Vec<String>>,
    /// Warn when the volumes' capacities add up to more than this times the pool's size.
    pub overcommit_warning: Option<f64>,
    pub overcommit_critical: Option<f64>,
    /// Per-pool overrides: `[[monitoring.pool]] name = "default"  host = "kvm1"  ...`
    #[serde(default, rename = "pool")]
    pub pools: Vec<PoolThresholdFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolThresholdFile {
    /// Host id or URI; all hosts when absent.
    pub host: Option<String>,
    pub name: String,
    pub warning: Option<Vec<String>>,
    pub critical: Option<Vec<String>>,
    pub overcommit_warning: Option<f64>,
    pub overcommit_critical: Option<f64>,
}
