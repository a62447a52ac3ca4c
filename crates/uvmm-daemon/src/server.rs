//! Start-up and shutdown of the daemon: sockets, pid file, operations and host workers, signals.

use crate::bus::EventBus;
use crate::config::Settings;
use crate::directory::source::DirectoryHostSource;
use crate::directory::DirectoryMode;
use crate::hosts::shared::Shared;
use crate::hosts::source::ConfigHostSource;
use crate::http::{self as api, AppState};
use crate::ops::Ops;
use crate::process::{LogFile, PidFile, StateLock};
use anyhow::{anyhow, Context};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use uvmm_api::HostOrigin;
use uvmm_libvirt::Connector;

/// A socket file that answers belongs to a running daemon.
fn check_socket_free(path: &Path) -> anyhow::Result<()> {
    if path.exists() && std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(anyhow!(
            "socket {} is in use: is another uvmmd running?",
            path.display()
        ));
    }
    Ok(())
}

/// Removes the socket file this daemon created when start-up fails after binding it.
struct SocketFile<'a>(Option<&'a Path>);

impl SocketFile<'_> {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for SocketFile<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Bind the UNIX socket. A socket file left behind by a crashed daemon is replaced; one
/// that still answers belongs to a running daemon and is an error.
fn bind_unix(path: &Path, mode: u32) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if path.exists() {
        check_socket_free(path)?;
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    // Every caller is authenticated by its peer credentials and gets its roles' rights
    // (403 without a role), so the mode is a first filter only ([api] socket_mode).
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set mode of {}", path.display()))?;
    Ok(listener)
}

/// Logins, tokens, the audit log, and the TCP listener's TLS (`None`: plain HTTP on
/// loopback, or no TCP listener), and what the guard checks.
type AuthParts = (
    Arc<api::auth::AuthState>,
    Option<Arc<uvmm_auth::tls::server::ServerTls>>,
    api::GuardConfig,
);

fn start_auth(
    settings: &Settings,
    tcp: Option<&TcpListener>,
    ops: &Ops,
) -> anyhow::Result<AuthParts> {
    let addr = tcp.map(|l| l.local_addr()).transpose()?;
    let auth = Arc::new(crate::access::auth_state(
        settings,
        addr.is_some(),
        ops.directory.as_deref(),
        ops.shared.clone(),
    )?);
    let Some(addr) = addr else {
        return Ok((auth, None, api::GuardConfig::default()));
    };
    if settings.tls.plain_http {
        tracing::info!(%addr, "plain HTTP on loopback ([tls] plain_http / --plain-http)");
        let names = crate::http::guard::tcp_host_names(addr, &settings.api.tcp_host_names);
        return Ok((
            auth,
            None,
            api::GuardConfig {
                tcp_hosts: Some(names),
            },
        ));
    }
    let tls = crate::access::server_tls(settings, addr)?;
    Ok((auth, Some(Arc::new(tls)), api::GuardConfig::default()))
}

/// Run the daemon until SIGTERM/SIGINT. `ready` is called once the sockets accept
/// connections (or with the reason start-up failed).
pub async fn run(
    settings: Settings,
    connector: Arc<dyn Connector>,
    log: Option<LogFile>,
    ready: Box<dyn FnOnce(Result<(), String>) + Send>,
) -> anyhow::Result<()> {
    let started = async {
        match crate::http::conn::raise_fd_limit() {
            Ok(n) if n < 4096 => tracing::warn!(
                limit = n,
                "the open-file limit is low; raise it (LimitNOFILE) for many hosts or clients"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
        }
        // A second daemon must refuse before it changes anything of a running one: first
        // the checks that touch nothing (pid file, socket), then what fails without side
        // effects (TCP port, state directory lock), and only then the socket file and the
        // pid file, which are removed again if a later step fails.
        if let Some(p) = &settings.pidfile {
            PidFile::check(p).map_err(|e| anyhow!(e))?;
        }
        check_socket_free(&settings.socket)?;
        let tcp =
            match settings.listen {
                Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
                    format!("cannot listen on {addr} (is another uvmmd running?)")
                })?),
                None => None,
            };
        // Both hold secrets (the API token; VNC passwords in definitions): made 0700. Each
        // is locked right after it exists, so a second daemon stops at the first shared one.
        let private_dir = |dir: &Path, what: &str| -> anyhow::Result<StateLock> {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create {what} {}", dir.display()))?;
            StateLock::acquire_dir(dir, what).map_err(|e| anyhow!(e))
        };
        let state_lock = private_dir(&settings.state_dir, "state directory")?;
        let backup_lock = private_dir(&settings.backup_dir, "backup directory")?;
        let unix = bind_unix(&settings.socket, settings.api.socket_mode)?;
        let socket_file = SocketFile(Some(&settings.socket));
        let pidfile = settings
            .pidfile
            .as_deref()
            .map(PidFile::create)
            .transpose()
            .map_err(|e| anyhow!(e))?;
        let shared = Arc::new(Shared {
            cache: RwLock::default(),
            bus: EventBus::default(),
            timing: settings.timing,
            connector,
            backups: Some(Arc::new({
                let store = uvmm_backup::BackupStore::new(settings.backup_dir.clone());
                store.clean_up();
                store
            })),
            retention: settings.retention,
            monitoring: settings.monitoring.clone(),
            list_render: Default::default(),
            demand: Default::default(),
        });
        // The hosts: command line and configuration file, and what API clients changed.
        let configured: Vec<(String, HostOrigin)> = settings
            .hosts
            .iter()
            .map(|u| {
                let origin = if settings.host_origins_cmdline.contains(u) {
                    HostOrigin::Cmdline
                } else {
                    HostOrigin::Config
                };
                (u.clone(), origin)
            })
            .collect();
        let source = ConfigHostSource::new(configured, settings.state_dir.clone())
            .map_err(|e| anyhow!(e))?;
        let (profiles, problems) = crate::profiles::load(&settings.profiles_dir);
        for p in problems {
            tracing::error!("skipping profile: {p}");
        }
        // Directory mode: its hosts beside the local ones. `-b ""` never gets here with a
        // directory, so standalone opens no connection.
        let ops = match &settings.directory {
            None => Ops::new(shared, Box::new(source), profiles, settings.api.clone()),
            Some(d) => {
                let (directory, uris) = DirectoryMode::open(d)
                    .await
                    .map_err(|e| anyhow!("directory: {}", crate::directory::describe(&e)))?;
                let (source, hosts) = DirectoryHostSource::new(source, uris);
                Ops::new(shared, Box::new(source), profiles, settings.api.clone())
                    .with_directory(directory, hosts)
            }
        };
        let ops = Arc::new(
            ops.with_task_retention(settings.tasks)
                .with_peer_uris(settings.peer_uris.clone()),
        );
        let (auth, tls, guard) = start_auth(&settings, tcp.as_ref(), &ops)?;
        socket_file.keep();
        anyhow::Ok((
            unix,
            tcp,
            pidfile,
            ops,
            (state_lock, backup_lock),
            (auth, tls, guard),
        ))
    }
    .await;
    let (unix, tcp, pidfile, ops, _locks, (auth, tls, guard)) = match started {
        Ok(v) => v,
        Err(e) => {
            ready(Err(format!("{e:#}")));
            return Err(e);
        }
    };

    if let Err(e) = ops.hosts.start() {
        tracing::error!("cannot read the host list: {e}");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let app = api::router(
        AppState::new(
            ops.clone(),
            stop_rx.clone(),
            settings.api.request_timeout,
            auth.clone(),
        ),
        guard,
    );
    let policy = Arc::new(settings.api.clone());
    let mut servers = vec![tokio::spawn(crate::http::conn::serve(
        unix,
        None,
        app.clone(),
        policy.clone(),
        stop_rx.clone(),
    ))];
    if let Some(tcp) = tcp {
        servers.push(tokio::spawn(crate::http::conn::serve(
            tcp,
            tls.clone(),
            app,
            policy,
            stop_rx.clone(),
        )));
    }
    tracing::info!(
        socket = %settings.socket.display(),
        tcp = ?settings.listen,
        hosts = settings.hosts.len(),
        "uvmmd {} ready",
        env!("CARGO_PKG_VERSION")
    );
    // Handlers first: once ready, systemd (reload) or logrotate may send SIGHUP at once,
    // whose default action would end the daemon.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    ready(Ok(()));
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = hup.recv() => {
                match &log {
                    Some(l) => match l.reopen() {
                        Ok(()) => tracing::info!("SIGHUP: log file reopened"),
                        Err(e) => tracing::error!("SIGHUP: cannot reopen log file: {e}"),
                    },
                    None => tracing::info!("SIGHUP: no log file to reopen"),
                }
                crate::access::reload(&settings, &auth, tls.as_deref());
            }
        }
    }

    let _ = stop_tx.send(true);
    ops.shutdown();
    let drain = futures_util::future::join_all(servers);
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 5 s; closing anyway");
    }
    let _ = std::fs::remove_file(&settings.socket);
    drop(pidfile);
    tracing::info!("uvmmd stopped");
    Ok(())
}
