use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;
use uvmm_daemon::config::check as check_config;
use uvmm_daemon::config::{self, Args, DEFAULT_CONFIG};
use uvmm_daemon::process::{self, LogFile};
use uvmm_daemon::server;
use uvmm_daemon::systemd;
use uvmm_libvirt::LibvirtConnector;

fn main() -> ExitCode {
    // The package build writes the man page and completions from this very definition.
    if let Some(code) = uvmm_docgen::generate_if_asked(<Args as clap::CommandFactory>::command) {
        return code;
    }
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // --check-config promises 0 or 1 to the scripts that run it; otherwise a usage
            // error is 2, as for every uvmm program.
            let checking = std::env::args_os().any(|a| a == "--check-config");
            let _ = e.print();
            return ExitCode::from(match (e.use_stderr(), checking) {
                (false, _) => 0,
                (true, true) => 1,
                (true, false) => 2,
            });
        }
    };
    if args.check_config {
        return check_config::run(args);
    }
    let show_fingerprint = args.show_fingerprint;
    // Taken (and removed from the environment) before any thread exists.
    let notifier = systemd::Notifier::from_env();
    let (config_path, explicit) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (DEFAULT_CONFIG.into(), false),
    };
    let settings =
        match config::load_file(&config_path, explicit).and_then(|f| config::merge(args, f)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("uvmmd: {e}");
                return ExitCode::from(2);
            }
        };
    if show_fingerprint {
        return match uvmm_daemon::access::fingerprint(&settings) {
            Ok(fp) => {
                println!("{fp}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("uvmmd: {e:#}");
                ExitCode::from(1)
            }
        };
    }

    // Detach before any thread exists (logger, runtime, libvirt). Under systemd's
    // Type=notify a -d (as in the seed's DAEMON_OPTS) must not fork: see Notifier.
    let detached = if settings.detach && !notifier.supervised() {
        match process::detach() {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("uvmmd: cannot detach: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        None
    };

    let filter = EnvFilter::try_from_env("UVMM_LOG")
        .unwrap_or_else(|_| EnvFilter::new(if settings.verbose { "debug" } else { "info" }));
    let log = match settings.logfile.as_deref().map(LogFile::open).transpose() {
        Ok(l) => l,
        Err(e) => {
            let msg = format!("cannot open log file: {e}");
            match detached {
                Some(d) => d.failed(&msg),
                None => eprintln!("uvmmd: {msg}"),
            }
            return ExitCode::from(1);
        }
    };
    match &log {
        Some(l) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(l.clone())
            .init(),
        None => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(|| process::OneLine(std::io::stderr()))
            .init(),
    }

    if settings.detach && notifier.supervised() {
        tracing::info!("systemd supervises uvmmd (NOTIFY_SOCKET is set): -d does not detach");
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("uvmmd: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let connector = Arc::new(LibvirtConnector {
        keepalive_interval: i32::try_from(settings.timing.keepalive_interval).unwrap_or(i32::MAX),
        keepalive_count: settings.timing.keepalive_count,
    });
    let status = format!(
        "serving {} configured hosts on {}",
        settings.hosts.len(),
        settings.socket.display()
    );
    let ready: Box<dyn FnOnce(Result<(), String>) + Send> =
        Box::new(move |r: Result<(), String>| {
            if r.is_ok() {
                if let Err(e) = notifier.ready(&status) {
                    tracing::warn!("{e}");
                }
            }
            match (detached, r) {
                (Some(d), Ok(())) => d.ready(),
                (Some(d), Err(e)) => d.failed(&e),
                (None, _) => {}
            }
        });
    let has_log_file = log.is_some();
    match runtime.block_on(server::run(settings, connector, log, ready)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once per destination: into the log file when there is one, and always on
            // standard error (without a log file the log *is* standard error, so logging
            // it as well printed every start-up error twice).
            if has_log_file {
                tracing::error!("{e:#}");
            }
            eprintln!("uvmmd: {e:#}");
            ExitCode::from(1)
        }
    }
}
