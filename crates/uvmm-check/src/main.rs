//! check_uvmm: a Nagios/Icinga plugin (Monitoring Plugins guidelines) for uvmm's storage
//! pools, its hosts and the daemon itself.

use clap::{Parser, Subcommand};
use hyper::Method;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uvmm_api::{
    DirectoryStatus, HostStatus, HostSummary, PoolSummary, VersionInfo, DEFAULT_SOCKET,
};
use uvmm_cli::client::{Client, Target};
use uvmm_cli::paths;
use uvmm_libvirt::{Connector, LibvirtConnector, PoolAction};
use uvmm_model::monitor::{evaluate, Level, Threshold, Thresholds, Usage};

/// check_uvmm - monitor uvmm with Nagios, Icinga, NRPE or anything that runs
/// Monitoring Plugins.
///
/// One status line (with performance data after '|'), exit code 0 OK, 1 WARNING,
/// 2 CRITICAL, 3 UNKNOWN.
///
/// Pool figures come with their age. Figures older than the daemon's pool_interval_secs
/// (or --max-age), e.g. of an unreachable host, are never judged OK: the pool is UNKNOWN
/// with the reason, or keeps the level its old figures already show.
///
///   check_uvmm pools -w 80% -c 90%                          every pool of every host
///   check_uvmm pools -H kvm1 -P default -w 20GiB: -c 5GiB:  free-space thresholds
///   check_uvmm pools -w 80% -c 90% --overcommit-warn 1.5    also overcommitment
///   check_uvmm pools --direct qemu:///system -w 80% -c 90%  without uvmmd
///   check_uvmm daemon                                       uvmmd answers in time
///   check_uvmm hosts                                        all hosts connected
#[derive(Debug, Parser)]
// The examples are laid out by hand: keep the line breaks.
#[command(
    name = "check_uvmm",
    version,
    about,
    long_about,
    verbatim_doc_comment,
    max_term_width = 100
)]
struct Cli {
    /// uvmmd's UNIX socket.
    #[arg(short = 'u', long = "socket", env = "UVMM_SOCKET", default_value = DEFAULT_SOCKET, global = true)]
    socket: std::path::PathBuf,
    /// Seconds before giving up (UNKNOWN, or CRITICAL for `daemon`).
    #[arg(short = 't', long = "timeout", default_value_t = 10, global = true)]
    timeout: u64,
    #[command(subcommand)]
    check: Check,
}

#[derive(Debug, Subcommand)]
enum Check {
    /// Storage pools: used space, free space, overcommitment.
    Pools {
        /// Only this host (id or URI; with --direct ignored).
        #[arg(short = 'H', long = "host")]
        host: Option<String>,
        /// Only this pool.
        #[arg(short = 'P', long = "pool")]
        pool: Option<String>,
        /// Warning: a used percentage (80%) or a minimum of free space (20GiB:); repeatable.
        /// Without -w/-c/--overcommit-* uvmmd's own thresholds judge ([monitoring]).
        #[arg(short = 'w', long = "warning")]
        warning: Vec<String>,
        /// Critical, like --warning.
        #[arg(short = 'c', long = "critical")]
        critical: Vec<String>,
        /// Warn when the volumes' sizes add up to more than this times the pool's size.
        #[arg(long = "overcommit-warn")]
        overcommit_warn: Option<f64>,
        #[arg(long = "overcommit-crit")]
        overcommit_crit: Option<f64>,
        /// Figures older than this many seconds are never judged OK (default: the age the
        /// daemon promises, its pool_interval_secs).
        #[arg(long = "max-age", value_name = "SECS")]
        max_age: Option<u64>,
        /// Ask libvirt directly (URI) instead of uvmmd; the pools are refreshed first.
        #[arg(long = "direct", value_name = "URI")]
        direct: Option<String>,
    },
    /// uvmmd answers within the timeout.
    Daemon,
    /// Every managed host is connected.
    Hosts,
}

const NAMES: [&str; 4] = ["OK", "WARNING", "CRITICAL", "UNKNOWN"];

struct Outcome {
    code: u8,
    text: String,
    perf: Vec<String>,
}

impl Outcome {
    fn unknown(text: impl Into<String>) -> Outcome {
        Outcome {
            code: 3,
            text: text.into(),
            perf: vec![],
        }
    }
}

fn code_of(level: Level) -> u8 {
    match level {
        Level::Ok => 0,
        Level::Warning => 1,
        Level::Critical => 2,
    }
}

/// A perfdata label: quoted, with quotes doubled, per the guidelines.
fn label(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn perf_bytes(name: &str, value: u64, warn: Option<u64>, crit: Option<u64>, max: u64) -> String {
    format!(
        "{}={value}B;{};{};0;{max}",
        label(name),
        warn.map(|w| w.to_string()).unwrap_or_default(),
        crit.map(|c| c.to_string()).unwrap_or_default()
    )
}

fn parse_thresholds(list: &[String]) -> Result<Vec<Threshold>, String> {
    list.iter().map(|s| Threshold::parse(s)).collect()
}

/// One pool as the plugin judges it.
#[derive(Debug, Clone)]
struct PoolFigures {
    /// `host/pool`, or the pool name with --direct.
    name: String,
    usage: Usage,
    /// Seconds since libvirt last refreshed the pool for these figures; None: never (or
    /// the refresh failed).
    age_secs: Option<u64>,
    /// Figures older than this are stale; None: the source does not say (not judged).
    max_age_secs: Option<u64>,
    refresh_error: Option<String>,
    /// uvmmd's level and alerts by its own thresholds (None with --direct).
    daemon_verdict: Option<(Level, Vec<String>)>,
    /// Stopped although marked autostart: a fault whatever the thresholds (a pool stopped
    /// on purpose, without autostart, is not checked at all).
    stopped: bool,
}

impl PoolFigures {
    /// Why the figures cannot be trusted, if they cannot.
    fn stale(&self) -> Option<String> {
        let max = self.max_age_secs?;
        let why = match self.age_secs {
            Some(a) if a <= max => return None,
            Some(a) => format!("figures {a} s old, older than {max} s"),
            None => "figures never refreshed".to_string(),
        };
        Some(match &self.refresh_error {
            Some(e) => format!("{why} (refresh failed: {e})"),
            None => why,
        })
    }
}

/// Severity order for the overall result: CRITICAL > WARNING > UNKNOWN > OK, so a pool
/// whose figures cannot be judged never hides behind an OK, nor hides a real problem.
fn rank(code: u8) -> u8 {
    match code {
        0 => 0,
        3 => 1,
        1 => 2,
        _ => 3,
    }
}

/// Judge pools. Stale figures are never OK: such a pool is UNKNOWN with the reason,
/// unless even its old figures cross a threshold (that level stands, marked as old).
fn judge_pools(pools: &[PoolFigures], own: Option<&Thresholds>) -> Outcome {
    let none = Thresholds::default();
    let t = own.unwrap_or(&none);
    if pools.is_empty() {
        return Outcome::unknown("no storage pool matches");
    }
    let mut worst = 0u8;
    let mut problems = Vec::new();
    let mut perf = Vec::new();
    for p in pools {
        let (name, u) = (&p.name, &p.usage);
        if p.stopped {
            problems.push(format!(
                "{name} WARNING: stopped although marked autostart (its images cannot be used)"
            ));
            if rank(1) > rank(worst) {
                worst = 1;
            }
            continue;
        }
        let (level, reasons) = match (own, &p.daemon_verdict) {
            (None, Some((level, alerts))) => (*level, alerts.clone()),
            (None, None) => {
                problems.push(format!("{name} UNKNOWN: uvmmd gave no verdict"));
                if rank(3) > rank(worst) {
                    worst = 3;
                }
                continue;
            }
            (Some(t), _) => evaluate(u, t),
        };
        let stale = p.stale();
        let code = match (&stale, level) {
            (Some(_), Level::Ok) => 3,
            _ => code_of(level),
        };
        if rank(code) > rank(worst) {
            worst = code;
        }
        match (&stale, level) {
            (Some(why), Level::Ok) => problems.push(format!("{name} UNKNOWN: {why}")),
            (Some(why), _) => problems.push(format!(
                "{name} {}: {} ({why})",
                level.as_str(),
                reasons.join(", ")
            )),
            (None, Level::Ok) => {}
            (None, _) => {
                problems.push(format!("{name} {}: {}", level.as_str(), reasons.join(", ")))
            }
        }
        // Old figures are not graphed as if they were current.
        if stale.is_some() {
            continue;
        }
        let first_used = |list: &[Threshold]| list.first().map(|th| th.as_used_bytes(u.capacity));
        perf.push(perf_bytes(
            name,
            u.allocation,
            first_used(&t.warning),
            first_used(&t.critical),
            u.capacity,
        ));
        perf.push(format!(
            "{}={:.3};{};{};0;",
            label(&format!("{name} overcommit")),
            u.overcommit(),
            t.overcommit_warning
                .map(|v| v.to_string())
                .unwrap_or_default(),
            t.overcommit_critical
                .map(|v| v.to_string())
                .unwrap_or_default()
        ));
    }
    let mut text = if problems.is_empty() {
        format!(
            "{} storage pool{} within thresholds",
            pools.len(),
            if pools.len() == 1 { "" } else { "s" }
        )
    } else {
        problems.join("; ")
    };
    // How current the judged figures are (the stale ones say it themselves).
    if let Some(age) = pools
        .iter()
        .filter(|p| p.stale().is_none())
        .filter_map(|p| p.age_secs)
        .max()
    {
        text.push_str(&format!(" (figures up to {age} s old)"));
    }
    Outcome {
        code: worst,
        text,
        perf,
    }
}

fn judge_hosts(hosts: &[HostSummary]) -> Outcome {
    let down: Vec<String> = hosts
        .iter()
        .filter(|h| h.status == HostStatus::Unavailable)
        .map(|h| format!("{} ({})", h.id, h.last_error.clone().unwrap_or_default()))
        .collect();
    let connecting = hosts
        .iter()
        .filter(|h| h.status == HostStatus::Connecting)
        .count();
    let perf = vec![
        format!("hosts={};;;0", hosts.len()),
        format!("unavailable={};;1;0", down.len()),
    ];
    if !down.is_empty() {
        Outcome {
            code: 2,
            text: format!(
                "{} of {} hosts unavailable: {}",
                down.len(),
                hosts.len(),
                down.join(", ")
            ),
            perf,
        }
    } else if connecting > 0 {
        Outcome {
            code: 1,
            text: format!("{connecting} of {} hosts still connecting", hosts.len()),
            perf,
        }
    } else if hosts.is_empty() {
        Outcome {
            code: 1,
            text: "uvmmd manages no hosts".into(),
            perf,
        }
    } else {
        Outcome {
            code: 0,
            text: format!("all {} hosts connected", hosts.len()),
            perf,
        }
    }
}

fn run(cli: Cli) -> Outcome {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Outcome::unknown(e.to_string()),
    };
    let timeout = Duration::from_secs(cli.timeout.max(1));
    let client = Client::new(Target::Unix(cli.socket.clone()));
    let call = |path: &str| -> Result<serde_json::Value, String> {
        rt.block_on(async {
            tokio::time::timeout(
                timeout,
                client.call::<serde_json::Value>(Method::GET, path, None),
            )
            .await
        })
        .map_err(|_| format!("no answer within {} s", timeout.as_secs()))?
        .map_err(|e| e.to_string())
    };
    match cli.check {
        Check::Daemon => {
            let started = Instant::now();
            match call(&paths::version())
                .and_then(|v| serde_json::from_value::<VersionInfo>(v).map_err(|e| e.to_string()))
            {
                Ok(v) => {
                    let secs = started.elapsed().as_secs_f64();
                    let answered = Outcome {
                        code: 0,
                        text: format!("uvmmd {} answered in {:.0} ms", v.version, secs * 1000.0),
                        perf: vec![format!("time={secs:.4}s;;{};0", timeout.as_secs())],
                    };
                    // An uvmmd without the route (older) answers 404: nothing to judge.
                    let directory = call(&paths::directory())
                        .ok()
                        .and_then(|v| serde_json::from_value::<DirectoryStatus>(v).ok());
                    judge_directory(answered, directory.as_ref())
                }
                Err(e) => Outcome {
                    code: 2,
                    text: format!("uvmmd does not answer at {}: {e}", cli.socket.display()),
                    perf: vec![],
                },
            }
        }
        Check::Hosts => match call(&paths::hosts())
            .and_then(|v| serde_json::from_value::<Vec<HostSummary>>(v).map_err(|e| e.to_string()))
        {
            Ok(hosts) => judge_hosts(&hosts),
            Err(e) => Outcome::unknown(format!("cannot ask uvmmd: {e}")),
        },
        Check::Pools {
            host,
            pool,
            warning,
            critical,
            overcommit_warn,
            overcommit_crit,
            max_age,
            direct,
        } => {
            let thresholds = match (parse_thresholds(&warning), parse_thresholds(&critical)) {
                (Ok(w), Ok(c)) => Thresholds {
                    warning: w,
                    critical: c,
                    overcommit_warning: overcommit_warn,
                    overcommit_critical: overcommit_crit,
                },
                (Err(e), _) | (_, Err(e)) => return Outcome::unknown(e),
            };
            if let Err(e) = thresholds.check() {
                return Outcome::unknown(format!("{e} (swap -w and -c?)"));
            }
            let own_thresholds = !(thresholds.warning.is_empty()
                && thresholds.critical.is_empty()
                && overcommit_warn.is_none()
                && overcommit_crit.is_none());
            if !own_thresholds && direct.is_some() {
                return Outcome::unknown(
                    "with --direct give thresholds: -w 80% -c 90% (or -w 20GiB: for free space)",
                );
            }
            let pools: Result<Vec<PoolFigures>, String> = match &direct {
                Some(uri) => direct_pools(uri, timeout),
                None => call(&paths::pools(host.as_deref()))
                    .and_then(|v| {
                        serde_json::from_value::<Vec<PoolSummary>>(v).map_err(|e| e.to_string())
                    })
                    .map(|list| {
                        list.into_iter()
                            .filter(|p| p.active || p.autostart)
                            .map(figures)
                            .collect()
                    }),
            };
            match pools {
                Ok(list) => {
                    let list: Vec<PoolFigures> = list
                        .into_iter()
                        .filter(|p| {
                            pool.as_deref()
                                .is_none_or(|want| p.name.rsplit('/').next() == Some(want))
                        })
                        .map(|mut p| {
                            if max_age.is_some() {
                                p.max_age_secs = max_age;
                            }
                            p
                        })
                        .collect();
                    // Without thresholds of its own the plugin judges by uvmmd's
                    // ([monitoring] in its configuration), as the web UI and /metrics do.
                    judge_pools(&list, own_thresholds.then_some(&thresholds))
                }
                Err(e) => Outcome::unknown(format!("cannot read the pools: {e}")),
            }
        }
    }
}

/// What uvmmd says about a pool. A daemon that does not report the figures' age (older
/// than this plugin) leaves them unjudged for age.
fn figures(p: PoolSummary) -> PoolFigures {
    PoolFigures {
        name: format!("{}/{}", p.host_id, p.name),
        usage: Usage {
            capacity: p.capacity,
            allocation: p.allocation,
            available: p.available,
            provisioned: p.provisioned,
        },
        age_secs: p.age_secs,
        max_age_secs: (p.max_age_secs > 0).then_some(p.max_age_secs),
        refresh_error: p.refresh_error,
        stopped: !p.active,
        daemon_verdict: Some((p.level, p.alerts)),
    }
}

/// Read pools straight from libvirt (when uvmmd is down), within the timeout. libvirt
/// reports a pool's figures as of its last refresh, so each active pool is refreshed
/// first; one whose refresh fails is UNKNOWN (its figures may be any age).
fn direct_pools(uri: &str, timeout: Duration) -> Result<Vec<PoolFigures>, String> {
    let uri = uri.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = (|| {
            let hv = LibvirtConnector::default()
                .connect(&uri, Arc::new(|_| {}))
                .map_err(|e| e.to_string())?;
            let mut refresh_errors = std::collections::HashMap::new();
            for p in hv
                .pools()
                .map_err(|e| e.to_string())?
                .iter()
                .filter(|p| p.active)
            {
                if let Err(e) = hv.pool_action(&p.def.name, PoolAction::Refresh) {
                    refresh_errors.insert(p.def.name.clone(), e.message);
                }
            }
            let mut out = Vec::new();
            for p in hv
                .pools()
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|p| p.active)
            {
                let provisioned = hv
                    .volumes(&p.def.name)
                    .map_err(|e| e.to_string())?
                    .iter()
                    .map(|v| v.def.capacity)
                    .sum();
                let refresh_error = refresh_errors.remove(&p.def.name);
                out.push(PoolFigures {
                    name: p.def.name.clone(),
                    usage: Usage {
                        capacity: p.capacity,
                        allocation: p.allocation,
                        available: p.available,
                        provisioned,
                    },
                    age_secs: refresh_error.is_none().then_some(0),
                    max_age_secs: Some(0),
                    refresh_error,
                    daemon_verdict: None,
                    stopped: false,
                });
            }
            Ok(out)
        })();
        let _ = tx.send(result);
    });
    rx.recv_timeout(timeout)
        .map_err(|_| format!("libvirt did not answer within {} s", timeout.as_secs()))?
}

fn main() -> ExitCode {
    // The package build writes the man pages and completions from this very definition.
    if let Some(code) = uvmm_docgen::generate_if_asked(<Cli as clap::CommandFactory>::command) {
        return code;
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            if e.use_stderr() {
                // Usage errors are UNKNOWN for a monitoring plugin. The error goes into
                // the status line; standard error gets only the rest of clap's text
                // (usage, hint), so a person at a terminal reads it once.
                let text = e.to_string();
                let mut lines = text.lines();
                println!("UVMM UNKNOWN - {}", lines.next().unwrap_or("usage error"));
                let rest = lines.collect::<Vec<_>>().join("\n");
                if !rest.trim().is_empty() {
                    eprintln!("{}", rest.trim());
                }
                return ExitCode::from(3);
            }
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    let what = match &cli.check {
        Check::Pools { .. } => "POOLS",
        Check::Daemon => "DAEMON",
        Check::Hosts => "HOSTS",
    };
    let o = run(cli);
    let code = o.code.min(3);
    if o.perf.is_empty() {
        println!("UVMM {what} {} - {}", NAMES[code as usize], o.text);
    } else {
        println!(
            "UVMM {what} {} - {} | {}",
            NAMES[code as usize],
            o.text,
            o.perf.join(" ")
        );
    }
    ExitCode::from(code)
}

/// Directory mode running degraded (on its cache) is a WARNING of the daemon check.
fn judge_directory(mut o: Outcome, d: Option<&DirectoryStatus>) -> Outcome {
    if let Some(d) = d.filter(|d| d.degraded) {
        o.code = o.code.max(1);
        o.text = format!(
            "{}; directory {} unreachable, serving from the cache ({} note edit(s) queued): {}",
            o.text,
            d.uri.as_deref().unwrap_or("-"),
            d.pending_writes,
            d.degraded_reason.as_deref().unwrap_or("unknown reason")
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_degraded_directory_warns() {
        let ok = || Outcome {
            code: 0,
            text: "uvmmd answered".into(),
            perf: vec![],
        };
        let online = DirectoryStatus {
            mode: "directory".into(),
            online: true,
            ..DirectoryStatus::standalone()
        };
        let degraded = DirectoryStatus {
            online: false,
            degraded: true,
            degraded_reason: Some("connection refused".into()),
            pending_writes: 2,
            ..online.clone()
        };
        for (d, code, needle) in [
            (None, 0, "answered"),
            (Some(DirectoryStatus::standalone()), 0, "answered"),
            (Some(online), 0, "answered"),
            (Some(degraded), 1, "connection refused"),
        ] {
            let o = judge_directory(ok(), d.as_ref());
            assert_eq!(o.code, code, "{d:?}");
            assert!(o.text.contains(needle), "{}", o.text);
        }
    }

    const GIB: u64 = 1 << 30;

    #[test]
    fn pools_judged_with_perfdata() {
        let t = Thresholds {
            warning: vec![Threshold::UsedPercent(80.0)],
            critical: vec![Threshold::UsedPercent(90.0)],
            overcommit_warning: Some(1.5),
            overcommit_critical: None,
        };
        let u = |used: u64, prov: u64| Usage {
            capacity: 100 * GIB,
            allocation: used * GIB,
            available: (100 - used) * GIB,
            provisioned: prov * GIB,
        };
        let fresh = |u: Usage| PoolFigures {
            name: "kvm1/default".into(),
            usage: u,
            age_secs: Some(10),
            max_age_secs: Some(60),
            refresh_error: None,
            daemon_verdict: None,
            stopped: false,
        };
        let table = [(10, 10, 0), (85, 10, 1), (95, 10, 2), (10, 200, 1)];
        for (used, prov, code) in table {
            let o = judge_pools(&[fresh(u(used, prov))], Some(&t));
            assert_eq!(o.code, code, "{used}% {prov}: {}", o.text);
            assert_eq!(
                o.perf[0],
                format!(
                    "'kvm1/default'={}B;{};{};0;{}",
                    used * GIB,
                    80 * GIB,
                    90 * GIB,
                    100 * GIB
                )
            );
        }
        assert_eq!(judge_pools(&[], Some(&t)).code, 3);
        // Without thresholds of its own the plugin takes uvmmd's verdict.
        let judged = |level: Level, alerts: &[&str]| PoolFigures {
            daemon_verdict: Some((level, alerts.iter().map(|a| a.to_string()).collect())),
            ..fresh(u(10, 10))
        };
        let o = judge_pools(
            &[judged(Level::Critical, &["95.0% used, threshold 90%"])],
            None,
        );
        assert_eq!(o.code, 2, "{}", o.text);
        assert!(o.text.contains("95.0% used, threshold 90%"), "{}", o.text);
        assert_eq!(judge_pools(&[judged(Level::Ok, &[])], None).code, 0);
        assert_eq!(judge_pools(&[fresh(u(95, 10))], None).code, 3);
        // A pool stopped although marked autostart is a WARNING whatever the thresholds,
        // and a CRITICAL elsewhere still wins.
        let stopped = PoolFigures {
            name: "kvm1/nfs".into(),
            stopped: true,
            ..fresh(u(0, 0))
        };
        let o = judge_pools(std::slice::from_ref(&stopped), Some(&t));
        assert_eq!(o.code, 1, "{}", o.text);
        assert!(o.text.contains("kvm1/nfs WARNING: stopped"), "{}", o.text);
        assert_eq!(judge_pools(&[stopped, fresh(u(95, 10))], Some(&t)).code, 2);
        assert_eq!(label("it's"), "'it''s'");
    }

    #[test]
    fn stale_figures_are_never_ok() {
        let t = Thresholds {
            warning: vec![Threshold::UsedPercent(80.0)],
            critical: vec![Threshold::UsedPercent(90.0)],
            overcommit_warning: None,
            overcommit_critical: None,
        };
        let pool = |name: &str, used: u64, age: Option<u64>, error: Option<&str>| PoolFigures {
            name: name.into(),
            usage: Usage {
                capacity: 100 * GIB,
                allocation: used * GIB,
                available: (100 - used) * GIB,
                provisioned: used * GIB,
            },
            age_secs: age,
            max_age_secs: Some(60),
            refresh_error: error.map(String::from),
            daemon_verdict: None,
            stopped: false,
        };
        // (pools, exit code, text expected)
        let table: Vec<(Vec<PoolFigures>, u8, &str)> = vec![
            (vec![pool("a", 10, Some(60), None)], 0, "within thresholds"),
            (
                vec![pool("a", 10, Some(61), None)],
                3,
                "a UNKNOWN: figures 61 s old, older than 60 s",
            ),
            (
                vec![pool("a", 10, None, Some("pool busy"))],
                3,
                "figures never refreshed (refresh failed: pool busy)",
            ),
            // Old figures that already cross a threshold keep their level.
            (
                vec![pool("a", 95, Some(300), None)],
                2,
                "a critical: 95.0% used",
            ),
            // A real problem outranks an unjudged pool, an unjudged pool outranks OK.
            (
                vec![pool("a", 10, Some(300), None), pool("b", 85, Some(5), None)],
                1,
                "b warning",
            ),
            (
                vec![pool("a", 10, Some(300), None), pool("b", 10, Some(5), None)],
                3,
                "a UNKNOWN",
            ),
        ];
        for (pools, code, text) in table {
            let o = judge_pools(&pools, Some(&t));
            assert_eq!(o.code, code, "{}", o.text);
            assert!(o.text.contains(text), "{text}: {}", o.text);
            // Stale figures are not graphed as current.
            for p in &pools {
                let graphed = o
                    .perf
                    .iter()
                    .any(|l| l.starts_with(&format!("'{}'=", p.name)));
                assert_eq!(graphed, p.stale().is_none(), "{}: {:?}", p.name, o.perf);
            }
        }
    }

    #[test]
    fn hosts_judged() {
        let h = |id: &str, status: HostStatus| HostSummary {
            id: id.into(),
            uri: format!("qemu+ssh://{id}/system"),
            status,
            available: status == HostStatus::Connected,
            origin: uvmm_api::HostOrigin::Config,
            hostname: None,
            driver: None,
            libvirt_version: None,
            hypervisor_version: None,
            cpus: None,
            memory_kib: None,
            free_memory_kib: None,
            running_vcpus: 0,
            running_memory_kib: 0,
            cpu_usage: None,
            vm_count: 0,
            running_count: 0,
            last_error: (status == HostStatus::Unavailable).then(|| "EOF".into()),
            since: String::new(),
            retry_in_secs: None,
        };
        assert_eq!(judge_hosts(&[h("a", HostStatus::Connected)]).code, 0);
        let o = judge_hosts(&[
            h("a", HostStatus::Connected),
            h("b", HostStatus::Unavailable),
        ]);
        assert_eq!(o.code, 2);
        assert!(o.text.contains("b (EOF)"), "{}", o.text);
        assert_eq!(judge_hosts(&[h("a", HostStatus::Connecting)]).code, 1);
    }
}
