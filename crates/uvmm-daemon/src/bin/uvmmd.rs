use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;
use uvmm_daemon::config::{self, Args, DEFAULT_CONFIG};
use uvmm_daemon::process::{self, LogFile};
use uvmm_daemon::server;
use uvmm_libvirt::LibvirtConnector;

fn main() -> ExitCode {
    let args = Args::parse();
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

    // Detach before any thread exists (logger, runtime, libvirt).
    let detached = if settings.detach {
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
    let ready: Box<dyn FnOnce(Result<(), String>) + Send> = match detached {
        Some(d) => Box::new(move |r: Result<(), String>| match r {
            Ok(()) => d.ready(),
            Err(e) => d.failed(&e),
        }),
        None => Box::new(|_| {}),
    };
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
