//! `uvmmd --check-config`: validate what a start would use — the command line (for the
//! service: `DAEMON_OPTS` from /etc/default/uvmmd), the configuration file it names and the
//! profiles — without starting anything, so that a change can be checked before a restart
//! (the unit runs it as `ExecStartPre`). Exit 0 when uvmmd would start, 1 with the reason
//! when it would not.

use super::{self as config, Args, DEFAULT_CONFIG};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::ExitCode;

/// What the check found: facts about the settings, and warnings about what uvmmd would
/// skip or repair at start (they do not stop it).
#[derive(Debug, Default)]
pub struct Report {
    pub config_file: String,
    pub facts: Vec<String>,
    pub warnings: Vec<String>,
}

/// Check everything a start reads before it opens sockets. `Err` is the reason the start
/// would fail.
pub fn check(args: Args) -> Result<Report, String> {
    let (config_path, explicit) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (DEFAULT_CONFIG.into(), false),
    };
    let mut report = Report {
        config_file: if config_path.exists() || explicit {
            config_path.display().to_string()
        } else {
            format!("{} (absent: built-in defaults)", config_path.display())
        },
        ..Report::default()
    };
    let file = config::load_file(&config_path, explicit).map_err(|e| e.to_string())?;
    let settings = config::merge(args, file).map_err(|e| e.to_string())?;

    let facts = &mut report.facts;
    facts.push(format!(
        "hosts: {}{}",
        settings.hosts.len(),
        if settings.hosts.is_empty() {
            String::new()
        } else {
            format!(" ({})", settings.hosts.join(", "))
        }
    ));
    match &settings.directory {
        None => facts.push("directory: none (standalone, -b \"\")".into()),
        Some(d) => {
            // Read as uvmmd will, so that a wrong mode or owner shows before a restart; the
            // password itself is dropped unseen.
            d.config
                .read_password()
                .map_err(|e| uvmm_directory::error_chain(&e))?;
            facts.push(format!(
                "directory: {} (bind: {}; cache: {})",
                d.config.uri,
                d.config.bind_dn.as_deref().unwrap_or("anonymous"),
                d.config.cache_dir.display()
            ));
        }
    }
    facts.push(format!("socket: {}", settings.socket.display()));
    if let Some(addr) = settings.listen {
        if settings.tls.plain_http {
            facts.push(format!("tcp: {addr} (plain HTTP, loopback)"));
        } else {
            facts.push(format!("tcp: {addr} (HTTPS)"));
        }
    }
    facts.push(format!("audit log: {}", settings.audit_log.display()));
    facts.push(format!("state directory: {}", settings.state_dir.display()));
    facts.push(format!(
        "backup directory: {}",
        settings.backup_dir.display()
    ));
    if let Some(l) = &settings.logfile {
        facts.push(format!("log file: {}", l.display()));
    }
    if settings.detach {
        facts.push(
            "-d: detaches when started by hand; stays in the foreground under systemd \
             (Type=notify sets NOTIFY_SOCKET)"
                .into(),
        );
    }

    for dir in [&settings.state_dir, &settings.backup_dir] {
        match std::fs::metadata(dir) {
            Ok(m) if !m.is_dir() => {
                return Err(format!("{} exists and is not a directory", dir.display()))
            }
            Ok(m) if m.permissions().mode() & 0o077 != 0 => report.warnings.push(format!(
                "{} is open to other users (mode {:o}); it holds secrets: chmod 0700",
                dir.display(),
                m.permissions().mode() & 0o777
            )),
            _ => {}
        }
    }

    // The TCP listener refuses to start with a token file it cannot trust; a missing one
    // is made at start.
    if settings.listen.is_some() {
        let token = settings.state_dir.join(crate::http::guard::TOKEN_FILE);
        if token.exists() {
            crate::http::guard::load_or_create_token(&settings.state_dir)?;
        } else {
            report.facts.push(format!(
                "API token: {} will be made at start",
                token.display()
            ));
        }
    }

    let (profiles, problems) = crate::profiles::load(&settings.profiles_dir);
    report.facts.push(format!(
        "profiles: {} ({})",
        profiles.len(),
        profiles
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for p in problems {
        report
            .warnings
            .push(format!("profile skipped at start: {p}"));
    }
    if let Some(parent) = settings.logfile.as_deref().and_then(Path::parent) {
        if !parent.as_os_str().is_empty() && !parent.is_dir() {
            report.warnings.push(format!(
                "log directory {} does not exist yet (made at start)",
                parent.display()
            ));
        }
    }
    Ok(report)
}

/// `uvmmd --check-config …`: print the result, exit 0 (would start) or 1 (would not).
pub fn run(args: Args) -> ExitCode {
    match check(args) {
        Ok(report) => {
            println!("uvmmd: configuration OK: {}", report.config_file);
            for f in &report.facts {
                println!("  {f}");
            }
            for w in &report.warnings {
                eprintln!("uvmmd: warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("uvmmd: configuration invalid: {reason}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(dir: &Path, extra: &[&str]) -> Args {
        let config = dir.join("uvmmd.toml");
        let state = dir.join("state");
        let backups = dir.join("backups");
        let mut v = vec![
            "uvmmd".to_string(),
            "--check-config".into(),
            "--config".into(),
            config.display().to_string(),
            "-c".into(),
            state.display().to_string(),
            "--backup-dir".into(),
            backups.display().to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        Args::try_parse_from(v).unwrap()
    }

    #[test]
    fn verdicts() {
        // (configuration file, extra options, Ok(fact or warning it mentions) or Err(reason))
        let table: &[(&str, &[&str], Result<&str, &str>)] = &[
            ("", &[], Ok("hosts: 0")),
            (
                "hosts = [\"test:///default\"]\n",
                &["-s", "127.0.0.1", "-d"],
                Ok("tcp: 127.0.0.1:2106"),
            ),
            (
                "",
                &["-s", "0.0.0.0", "-d"],
                Ok("tcp: 0.0.0.0:2106 (HTTPS)"),
            ),
            (
                "",
                &["-s", "0.0.0.0", "--plain-http"],
                Err("only allowed on loopback"),
            ),
            ("[auth]\nsession_idle_mins = 0\n", &[], Err("[auth]")),
            ("[tls]\ncert = \"/x.pem\"\n", &[], Err("both cert and key")),
            ("stats_interval_secs = 0\n", &[], Err("stats_interval_secs")),
            ("hosts = [\n", &[], Err("uvmmd.toml")),
            ("colour = 1\n", &[], Err("unknown field")),
            ("", &["-b", "ldap://dc"], Err("base DN is needed")),
            ("", &["-b", ""], Ok("directory: none")),
            (
                "[directory]\nuri = \"ldap://dc/dc=x\"\n",
                &[],
                Ok("directory: ldap://dc/dc=x (bind: anonymous"),
            ),
            (
                "[directory]\nuri = \"ldap://dc/dc=x\"\nbind_dn = \"cn=a,dc=x\"\npassword_file = \"/nonexistent/pw\"\n",
                &[],
                Err("/nonexistent/pw"),
            ),
            ("", &["http://not-libvirt/"], Err("http://not-libvirt/")),
            (
                "profiles_dir = \"PROFILES\"\n",
                &[],
                Ok("profile skipped at start"),
            ),
        ];
        for (text, extra, want) in table {
            let dir = tempfile::tempdir().unwrap();
            let profiles = dir.path().join("profiles");
            std::fs::create_dir(&profiles).unwrap();
            std::fs::write(profiles.join("broken.toml"), "name = ").unwrap();
            let text = text.replace("PROFILES", &profiles.display().to_string());
            std::fs::write(dir.path().join("uvmmd.toml"), text).unwrap();
            let got = check(args(dir.path(), extra));
            match (want, got) {
                (Ok(needle), Ok(r)) => {
                    let all = format!("{:?} {:?}", r.facts, r.warnings);
                    assert!(all.contains(needle), "{needle} not in {all}");
                }
                (Err(needle), Err(e)) => assert!(e.contains(needle), "{needle} not in {e}"),
                (want, got) => panic!("{extra:?}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn an_untrustworthy_token_or_state_path_fails_and_open_directories_warn() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("uvmmd.toml"), "").unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let token = state.join(crate::http::guard::TOKEN_FILE);
        std::fs::write(&token, format!("{}\n", "a".repeat(64))).unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check(args(dir.path(), &["-s", "127.0.0.1"])).unwrap_err();
        assert!(e.contains("readable by others"), "{e}");
        // Without -s the token is not used, so it does not matter.
        assert!(check(args(dir.path(), &[])).is_ok());

        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        let r = check(args(dir.path(), &["-s", "127.0.0.1"])).unwrap();
        assert!(
            r.warnings.iter().any(|w| w.contains("chmod 0700")),
            "{:?}",
            r.warnings
        );

        std::fs::remove_dir_all(&state).unwrap();
        std::fs::write(&state, "").unwrap();
        let e = check(args(dir.path(), &[])).unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
    }

    #[test]
    fn a_missing_explicit_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        let e = check(args(dir.path(), &[])).unwrap_err();
        assert!(e.contains("cannot read configuration file"), "{e}");
    }
}
