//! Man pages and shell completions of uvmm's programs, made from the very clap `Command`
//! each program parses its arguments with, so that `--help`, the man page and the
//! completions cannot drift apart.
//!
//! Each program calls [`generate_if_asked`] first thing in `main`; the package build runs
//! `PROGRAM --generate-docs DIR` with the binary it is about to ship. The option is not part
//! of the clap definitions: it stays out of `--help`, and the required subcommand of `uvmm`
//! does not get in its way. Generating from the shipped binary (rather than from a separate
//! build tool) needs no second copy of the definitions, which live in the programs' `main`.

use clap::Command;
use clap_complete::Shell;
use clap_mangen::roff::{bold, roman, Roff};
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The hidden option that makes a program write its documentation instead of running.
pub const GENERATE_FLAG: &str = "--generate-docs";

/// A hand-written section of a program's page: what the options cannot say (files,
/// signals, environment). Entries are (term, explanation).
struct Extra {
    heading: &'static str,
    entries: &'static [(&'static str, &'static str)],
}

/// What the pages of a program say beyond its clap definition, and where they go.
struct Program {
    section: &'static str,
    /// Other names the program is installed under: they get their own completions (bash
    /// and zsh look completions up by command name); the package links the man page.
    aliases: &'static [&'static str],
    /// Programs outside PATH (check_uvmm) gain nothing from completions.
    completions: bool,
    extras: &'static [Extra],
    see_also: &'static [&'static str],
}

const DAEMON_FILES: Extra = Extra {
    heading: "FILES",
    entries: &[
        (
            "/etc/default/uvmmd",
            "DAEMON_OPTS: the options uvmmd.service starts uvmmd with.",
        ),
        (
            "/etc/uvmm/uvmmd.toml",
            "The configuration file (see --config).",
        ),
        (
            "/etc/uvmm/profiles.d/*.toml",
            "VM profiles that add to or replace the built-in ones.",
        ),
        (
            "/var/lib/uvmm/hosts.json",
            "Hosts added or removed at runtime.",
        ),
        (
            "/var/lib/uvmm/api-token",
            "The legacy API token (admin) TCP clients may send (mode 0600).",
        ),
        (
            "/var/lib/uvmm/tokens.json",
            "API tokens of uvmm token create, as SHA-256 (mode 0600).",
        ),
        (
            "/var/lib/uvmm/tls/",
            "The self-signed certificate of the HTTPS listener and its key (0600).",
        ),
        (
            "/etc/pam.d/uvmm",
            "The PAM service of logins (POST /api/v1/login, uvmm login).",
        ),
        (
            "/var/log/uvmm/audit.log",
            "Every change as a JSON line: who, from where, what, result (--audit-log).",
        ),
        (
            "/var/backups/uvmm/",
            "Every version of every VM definition (see uvmm-restore(8)).",
        ),
        ("/run/uvmm/uvmm.sock", "The API's UNIX socket."),
        (
            "/var/log/uvmm/uvmmd.log",
            "The log with -d (rotated by logrotate, reopened on SIGHUP).",
        ),
    ],
};

const DAEMON_SIGNALS: Extra = Extra {
    heading: "SIGNALS",
    entries: &[
        (
            "SIGTERM, SIGINT",
            "Stop: close the sockets, remove socket and pid file.",
        ),
        (
            "SIGHUP",
            "Reopen the log file and the audit log, reload [auth], the API tokens and \
             the TLS certificate (systemctl reload uvmmd; logrotate).",
        ),
    ],
};

const DAEMON_ENVIRONMENT: Extra = Extra {
    heading: "ENVIRONMENT",
    entries: &[
        (
            "UVMM_LOG",
            "Log filter, e.g. uvmm_daemon=debug (overrides -v).",
        ),
        (
            "NOTIFY_SOCKET",
            "Set by systemd for Type=notify: uvmmd reports READY=1 there once its sockets \
             accept connections, and -d does not detach.",
        ),
    ],
};

const CLIENT_ENVIRONMENT: Extra = Extra {
    heading: "ENVIRONMENT",
    entries: &[
        (
            "UVMM_SOCKET",
            "uvmmd's UNIX socket (default /run/uvmm/uvmm.sock).",
        ),
        ("UVMM_URL", "uvmmd's HTTPS address, as --url."),
        ("UVMM_TOKEN", "An API token for --url."),
        (
            "UVMM_TOKEN_FILE",
            "File with an API token (default: the session of uvmm login, else \
             /var/lib/uvmm/api-token).",
        ),
        (
            "XDG_CONFIG_HOME",
            "Where uvmm keeps known_hosts (pinned certificate fingerprints) and the \
             sessions of uvmm login (default ~/.config/uvmm).",
        ),
    ],
};

const CLIENT_EXIT: Extra = Extra {
    heading: "EXIT STATUS",
    entries: &[
        ("0", "Success."),
        ("1", "The operation failed."),
        ("2", "Usage error."),
    ],
};

const RESTORE_EXIT: Extra = Extra {
    heading: "EXIT STATUS",
    entries: &[
        ("0", "Restored (or listed)."),
        ("1", "Refused or failed."),
        ("2", "Usage error."),
    ],
};

const CHECK_EXIT: Extra = Extra {
    heading: "EXIT STATUS",
    entries: &[
        ("0", "OK."),
        ("1", "WARNING."),
        ("2", "CRITICAL."),
        ("3", "UNKNOWN (also usage errors)."),
    ],
};

fn program(name: &str) -> Program {
    match name {
        "uvmmd" => Program {
            section: "8",
            aliases: &[],
            completions: true,
            extras: &[DAEMON_FILES, DAEMON_SIGNALS, DAEMON_ENVIRONMENT],
            see_also: &[
                "uvmm(1)",
                "uvmm-restore(8)",
                "check_uvmm(1)",
                "systemctl(1)",
            ],
        },
        "uvmm" => Program {
            section: "1",
            aliases: &[],
            completions: true,
            extras: &[CLIENT_ENVIRONMENT, CLIENT_EXIT],
            see_also: &["uvmmd(8)", "uvmm-restore(8)"],
        },
        "uvmm-restore" => Program {
            section: "8",
            aliases: &["univention-virtual-machine-manager-restore"],
            completions: true,
            extras: &[RESTORE_EXIT],
            see_also: &["uvmm(1)", "uvmmd(8)"],
        },
        "check_uvmm" => Program {
            section: "1",
            aliases: &[],
            completions: false,
            extras: &[CHECK_EXIT],
            see_also: &["uvmmd(8)", "uvmm(1)"],
        },
        _ => Program {
            section: "1",
            aliases: &[],
            completions: true,
            extras: &[],
            see_also: &[],
        },
    }
}

/// If the program was started as `PROGRAM --generate-docs DIR`, write its man pages and
/// completions into DIR and return the exit code; otherwise return `None` and let the
/// program run. `command` is only called when asked, so normal runs pay nothing.
pub fn generate_if_asked(command: impl FnOnce() -> Command) -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(OsStr::new(GENERATE_FLAG)) {
        return None;
    }
    let cmd = command();
    let name = cmd.get_name().to_string();
    let code = match (args.next(), args.next()) {
        (Some(dir), None) => match generate(cmd, Path::new(&dir)) {
            Ok(files) => {
                println!(
                    "{name}: wrote {} files below {}",
                    files.len(),
                    dir.to_string_lossy()
                );
                0
            }
            Err(e) => {
                eprintln!(
                    "{name}: cannot write the documentation below {}: {e}",
                    dir.to_string_lossy()
                );
                1
            }
        },
        _ => {
            eprintln!("{name}: usage: {name} {GENERATE_FLAG} DIR");
            2
        }
    };
    Some(ExitCode::from(code))
}

/// Write `DIR/man/*.N` (a page for the program and one for every subcommand, like git's)
/// and `DIR/completions/{bash,zsh,fish}/…`. Returns the files written.
pub fn generate(cmd: Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let name = cmd.get_name().to_string();
    let info = program(&name);
    // `help` is clap's own subcommand: it has no page of its own, as in clap_mangen.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();

    let man_dir = dir.join("man");
    std::fs::create_dir_all(&man_dir)?;
    write_pages(&cmd, &info, &man_dir, &mut written)?;

    if info.completions {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let shell_dir = dir.join("completions").join(shell.to_string());
            std::fs::create_dir_all(&shell_dir)?;
            for bin in std::iter::once(name.as_str()).chain(info.aliases.iter().copied()) {
                let file_name = match shell {
                    Shell::Zsh => format!("_{bin}"),
                    Shell::Fish => format!("{bin}.fish"),
                    _ => bin.to_string(),
                };
                let path = shell_dir.join(file_name);
                let mut buf = Vec::new();
                clap_complete::generate(shell, &mut cmd.clone(), bin, &mut buf);
                std::fs::write(&path, buf)?;
                written.push(path);
            }
        }
    }
    Ok(written)
}

fn write_pages(
    cmd: &Command,
    info: &Program,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, info, dir, written)?;
    }
    let page_name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let path = dir.join(format!("{page_name}.{}", info.section));
    let mut file = std::fs::File::create(&path)?;
    render(cmd, info, &mut file)?;
    file.flush()?;
    written.push(path);
    Ok(())
}

/// One page: clap_mangen's sections from the definition, our NAME line (clap's `about` of
/// the programs repeats the name) and the hand-written sections of the program.
fn render(cmd: &Command, info: &Program, w: &mut dyn Write) -> std::io::Result<()> {
    let page_name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let is_root = cmd.get_bin_name().is_none_or(|b| !b.contains(' '));
    let man = clap_mangen::Man::new(cmd.clone())
        .title(page_name.to_uppercase())
        .section(info.section)
        .date(build_date())
        .source(format!("uvmm {}", env!("CARGO_PKG_VERSION")))
        .manual("uvmm");
    man.render_title(w)?;

    let mut name = Roff::default();
    name.control("SH", ["NAME"]);
    name.text([roman(format!("{page_name} - {}", summary(cmd, page_name)))]);
    name.to_writer(w)?;

    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    let has_options = cmd.get_arguments().any(|a| !a.is_hide_set());
    if has_options {
        man.render_options_section(w)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(w)?;
    }

    let mut roff = Roff::default();
    if is_root {
        for extra in info.extras {
            roff.control("SH", [extra.heading]);
            for (term, text) in extra.entries {
                roff.control("TP", []);
                roff.text([bold(*term)]);
                roff.text([roman(*text)]);
            }
        }
    }
    let mut see_also: Vec<String> = Vec::new();
    if let Some(parent) = parent_page(cmd) {
        see_also.push(format!("{parent}({})", info.section));
    }
    if is_root {
        see_also.extend(info.see_also.iter().map(|s| s.to_string()));
    }
    if !see_also.is_empty() {
        roff.control("SH", ["SEE ALSO"]);
        roff.text([roman(see_also.join(", "))]);
    }
    roff.to_writer(w)?;
    if is_root && cmd.get_version().is_some() {
        man.render_version_section(w)?;
    }
    Ok(())
}

/// The one-line summary for NAME: `about` without a leading "NAME - " that the programs'
/// doc comments start with.
fn summary(cmd: &Command, page_name: &str) -> String {
    let about = cmd
        .get_about()
        .or_else(|| cmd.get_long_about())
        .map(|a| a.to_string())
        .unwrap_or_default();
    let first = about.lines().next().unwrap_or_default().trim();
    let stripped = first
        .strip_prefix(cmd.get_name())
        .or_else(|| first.strip_prefix(page_name))
        .and_then(|rest| rest.trim_start().strip_prefix('-'))
        .map(str::trim)
        .unwrap_or(first);
    if stripped.is_empty() {
        page_name.to_string()
    } else {
        stripped.to_string()
    }
}

/// `uvmm-vm-list` → `uvmm-vm`; root pages have no parent.
fn parent_page(cmd: &Command) -> Option<String> {
    let bin = cmd.get_bin_name()?;
    let words: Vec<&str> = bin.split(' ').collect();
    (words.len() > 1).then(|| words[..words.len() - 1].join("-"))
}

/// The page date: the build's SOURCE_DATE_EPOCH (dpkg-buildpackage sets it from
/// debian/changelog, so rebuilds give identical pages), else none.
fn build_date() -> String {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map(|secs| {
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            format!("{y:04}-{m:02}-{d:02}")
        })
        .unwrap_or_default()
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "doy is 0..=365 and mp 0..=11 here, so the day is 1..=31 and the month 1..=12"
    )]
    let (d, m) = (
        (doy - (153 * mp + 2) / 5 + 1) as u32,
        if mp < 10 { mp + 3 } else { mp - 9 } as u32,
    );
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn sample() -> Command {
        Command::new("uvmm")
            .about("uvmm - manage the virtual machines")
            .version("1.0")
            .arg(
                Arg::new("json")
                    .long("json")
                    .action(ArgAction::SetTrue)
                    .help("JSON output"),
            )
            .subcommand(
                Command::new("vm")
                    .about("Virtual machines")
                    .subcommand(Command::new("list").about("List VMs"))
                    .subcommand(Command::new("secret").hide(true)),
            )
    }

    #[test]
    fn dates() {
        for (days, want) in [
            (0, (1970, 1, 1)),
            (-1, (1969, 12, 31)),
            (11_016, (2000, 2, 29)),
            (20_000, (2024, 10, 4)),
        ] {
            assert_eq!(civil_from_days(days), want, "{days}");
        }
    }

    #[test]
    fn a_page_per_visible_command_and_completions() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(sample(), dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        for want in [
            "man/uvmm.1",
            "man/uvmm-vm.1",
            "man/uvmm-vm-list.1",
            "completions/bash/uvmm",
            "completions/zsh/_uvmm",
            "completions/fish/uvmm.fish",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing in {names:?}"
            );
        }
        // Hidden commands and clap's `help` have no page.
        assert!(!names
            .iter()
            .any(|n| n.contains("secret") || n.contains("help")));
        let root = std::fs::read_to_string(dir.path().join("man/uvmm.1")).unwrap();
        // NAME says the name once; the subcommands are listed by page.
        assert!(
            root.contains("uvmm \\- manage the virtual machines"),
            "{root}"
        );
        assert!(root.contains("uvmm\\-vm(1)"), "{root}");
        let leaf = std::fs::read_to_string(dir.path().join("man/uvmm-vm-list.1")).unwrap();
        assert!(leaf.contains("uvmm\\-vm\\-list \\- List VMs"), "{leaf}");
        assert!(
            leaf.contains("uvmm\\-vm(1)"),
            "SEE ALSO names the parent: {leaf}"
        );
    }

    #[test]
    fn aliases_get_completions_and_sections_come_from_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = Command::new("uvmm-restore").about("Restore a VM");
        generate(cmd, dir.path()).unwrap();
        assert!(dir.path().join("man/uvmm-restore.8").exists());
        for f in [
            "completions/bash/univention-virtual-machine-manager-restore",
            "completions/zsh/_univention-virtual-machine-manager-restore",
            "completions/fish/univention-virtual-machine-manager-restore.fish",
        ] {
            assert!(dir.path().join(f).exists(), "{f}");
        }
        let check = Command::new("check_uvmm").about("check");
        let dir2 = tempfile::tempdir().unwrap();
        generate(check, dir2.path()).unwrap();
        assert!(dir2.path().join("man/check_uvmm.1").exists());
        assert!(!dir2.path().join("completions").exists());
    }

    #[test]
    fn an_unwritable_directory_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "").unwrap();
        assert!(generate(sample(), &file).is_err());
    }
}
