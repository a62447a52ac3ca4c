//! The audit log: one JSON line per mutating request (and per login), appended to
//! `/var/log/uvmm/audit.log` (0640), reopened on SIGHUP (after logrotate moved it).
//!
//! A record is built from typed fields only — who, from where, what, target, result, task
//! — never from a request's body or headers, so a password, a token or a cookie cannot end
//! up in it by accident. The path is recorded without its query values for keys that name
//! secrets, and free text (error messages) has such values masked too.

use crate::caller::{Origin, Principal};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

pub const DEFAULT_AUDIT_LOG: &str = "/var/log/uvmm/audit.log";

/// Query and JSON keys whose values are never written.
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "pw",
    "token",
    "secret",
    "key",
    "cookie",
    "csrf",
    "authorization",
    "auth",
    "credential",
    "credentials",
    "session",
];

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_KEYS
        .iter()
        .any(|s| k == *s || k.ends_with(&format!("_{s}")) || k.starts_with(&format!("{s}_")))
}

/// Who: the principal as the audit log names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Who {
    /// `unix_peer`, `session`, `token`, `legacy_token`, or `login` (an attempt).
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// The token's name (never the token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl From<&Principal> for Who {
    fn from(p: &Principal) -> Who {
        let none = Who {
            kind: "",
            user: None,
            uid: None,
            pid: None,
            token: None,
        };
        match p {
            Principal::UnixPeer { uid, pid, user } => Who {
                kind: "unix_peer",
                user: user.clone(),
                uid: Some(*uid),
                pid: *pid,
                ..none
            },
            Principal::Session { user } => Who {
                kind: "session",
                user: Some(user.clone()),
                ..none
            },
            Principal::Token { name } => Who {
                kind: "token",
                token: Some(name.clone()),
                ..none
            },
            Principal::LegacyToken => Who {
                kind: "legacy_token",
                ..none
            },
        }
    }
}

/// What was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct What {
    pub method: String,
    /// The route as declared (`/api/v1/vms/{uuid}/start`).
    pub route: String,
    /// The path as requested, without secret query values.
    pub path: String,
    /// The operation (`vm.start`, `token.create`, `login`).
    pub operation: String,
}

/// What it was done to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditTarget {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Another object: a pool, a volume, a token name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

/// How it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub status: u16,
    /// The API's error code (`forbidden`, `conflict`, …) when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub who: Who,
    /// `unix` or `tcp=ADDR:PORT`.
    pub from: String,
    pub what: What,
    pub target: AuditTarget,
    pub result: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

impl AuditRecord {
    /// A record for a request. `path` may carry a query; secret values are masked.
    pub fn request(
        time: SystemTime,
        principal: &Principal,
        origin: Origin,
        method: &str,
        route: &str,
        path: &str,
        operation: &str,
    ) -> AuditRecord {
        AuditRecord {
            time: humantime::format_rfc3339_millis(time).to_string(),
            who: principal.into(),
            from: origin.to_string(),
            what: What {
                method: method.to_string(),
                route: route.to_string(),
                path: redact_path(path),
                operation: operation.to_string(),
            },
            target: AuditTarget::default(),
            result: Outcome {
                status: 0,
                error: None,
                message: None,
            },
            task: None,
        }
    }

    /// A record for a login attempt: the user name as typed (never the password).
    pub fn login(
        time: SystemTime,
        user: &str,
        origin: Origin,
        status: u16,
        reason: Option<&str>,
    ) -> AuditRecord {
        let mut r = AuditRecord::request(
            time,
            &Principal::Session {
                user: String::new(),
            },
            origin,
            "POST",
            "/api/v1/login",
            "/api/v1/login",
            "login",
        );
        r.who = Who {
            kind: "login",
            user: Some(clip(user, 256)),
            uid: None,
            pid: None,
            token: None,
        };
        r.result.status = status;
        r.result.message = reason.map(redact_text);
        r
    }

    pub fn target(mut self, target: AuditTarget) -> Self {
        self.target = target;
        self
    }

    pub fn task(mut self, task: Option<String>) -> Self {
        self.task = task;
        self
    }

    /// The result. `message` is masked like the path (an error may quote input).
    pub fn result(mut self, status: u16, error: Option<&str>, message: Option<&str>) -> Self {
        self.result = Outcome {
            status,
            error: error.map(str::to_string),
            message: message.map(redact_text),
        };
        self
    }

    /// The JSON line (no newline inside: serde_json escapes control characters).
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                "{{\"time\":{:?},\"error\":\"audit record not serialisable: {e}\"}}",
                self.time
            )
        });
        s.push('\n');
        s
    }
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// A path with the values of secret query keys replaced by `(hidden)`.
pub fn redact_path(path: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return clip(path, 2048);
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if is_secret_key(k) => format!("{k}=(hidden)"),
            _ => kv.to_string(),
        })
        .collect();
    clip(&format!("{base}?{}", parts.join("&")), 2048)
}

/// Free text with `key=value` / `key: value` / `"key":"value"` pairs of secret keys
/// masked, and `Bearer …` credentials and `uvmm_` tokens removed.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut hide_next = false;
    for word in text.split_inclusive(|c: char| c.is_whitespace() || c == ',' || c == '&') {
        let (body, sep) = split_sep(word);
        if hide_next {
            out.push_str("(hidden)");
            out.push_str(sep);
            // `Authorization: Bearer XYZ`: the scheme is hidden, and so is what follows.
            hide_next = body.eq_ignore_ascii_case("bearer") || body.eq_ignore_ascii_case("basic");
            continue;
        }
        if body.eq_ignore_ascii_case("bearer") || body.eq_ignore_ascii_case("basic") {
            out.push_str(body);
            out.push_str(sep);
            hide_next = true;
            continue;
        }
        if body.contains(crate::tokens::TOKEN_PREFIX) {
            out.push_str("(hidden)");
            out.push_str(sep);
            continue;
        }
        let masked = ['=', ':'].iter().find_map(|d| {
            let (k, v) = body.split_once(*d)?;
            let key = k.trim_matches(|c: char| c == '"' || c == '\'' || c == '{');
            is_secret_key(key).then(|| {
                if v.is_empty() {
                    // `password: value` with the value as the next word.
                    hide_next = true;
                    format!("{k}{d}")
                } else {
                    format!("{k}{d}(hidden)")
                }
            })
        });
        match masked {
            Some(m) => out.push_str(&m),
            None => out.push_str(body),
        }
        out.push_str(sep);
    }
    clip(&out, 4096)
}

fn split_sep(word: &str) -> (&str, &str) {
    match word.char_indices().last() {
        Some((i, c)) if c.is_whitespace() || c == ',' || c == '&' => (&word[..i], &word[i..]),
        _ => (word, ""),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the audit log {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write to the audit log {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The append-only audit file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

fn open_append(path: &Path) -> Result<File, AuditError> {
    let open_err = |source| AuditError::Open {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(dir)
                .map_err(open_err)?;
        }
    }
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(open_err)?;
    // An older file, or one logrotate made with its own mode, is tightened: the log says
    // who did what and from where.
    let meta = file.metadata().map_err(open_err)?;
    if meta.permissions().mode() & 0o027 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o640))
            .map_err(open_err)?;
    }
    Ok(file)
}

impl AuditLog {
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        Ok(AuditLog {
            file: Mutex::new(open_append(path)?),
            path: path.to_path_buf(),
        })
    }

    /// SIGHUP: open the path again (logrotate renamed the old file).
    pub fn reopen(&self) -> Result<(), AuditError> {
        let new = open_append(&self.path)?;
        *self.file.lock().unwrap_or_else(|p| p.into_inner()) = new;
        Ok(())
    }

    /// Append one record: one `write` of the whole line on an `O_APPEND` file, so lines of
    /// concurrent writers (and of a second process) never interleave.
    pub fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let line = record.to_line();
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(line.as_bytes())
            .map_err(|source| AuditError::Write {
                path: self.path.clone(),
                source,
            })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_path_table() {
        let table = [
            ("/api/v1/vms", "/api/v1/vms"),
            (
                "/api/v1/vms?host=kvm2&limit=5",
                "/api/v1/vms?host=kvm2&limit=5",
            ),
            ("/x?token=abc&host=h", "/x?token=(hidden)&host=h"),
            (
                "/x?password=p&Password=q&api_key=k",
                "/x?password=(hidden)&Password=(hidden)&api_key=(hidden)",
            ),
            ("/x?flag&session_id=1", "/x?flag&session_id=(hidden)"),
            ("/x?monkey=1&keyboard=de", "/x?monkey=1&keyboard=de"),
        ];
        for (input, want) in table {
            assert_eq!(redact_path(input), want);
        }
    }

    #[test]
    fn redact_text_table() {
        let table = [
            ("plain failure", "plain failure"),
            (
                "bind failed for password=hunter2 at x",
                "bind failed for password=(hidden) at x",
            ),
            ("Authorization: Bearer abc.def", "Authorization: (hidden)"),
            (
                "header Bearer abc.def, next",
                "header Bearer (hidden), next",
            ),
            ("got uvmm_0011_secret in body", "got (hidden) in body"),
            (r#"{"password":"x","name":"vm"}"#, r#"{"password":(hidden)"#),
            ("passwd: s3cret end", "passwd: (hidden) end"),
            ("vnc_password=abc", "vnc_password=(hidden)"),
        ];
        for (input, want) in table {
            let got = redact_text(input);
            assert!(got.starts_with(want) || got == want, "{input:?} → {got:?}");
            for secret in ["hunter2", "abc.def", "uvmm_0011", "s3cret", "\"x\""] {
                assert!(!got.contains(secret), "{input:?} → {got:?}");
            }
        }
    }

    #[test]
    fn login_record_has_no_password_field() {
        let r = AuditRecord::login(
            SystemTime::UNIX_EPOCH,
            "alice",
            Origin::Unix,
            401,
            Some("bad credentials"),
        );
        let line = r.to_line();
        assert!(
            line.starts_with(
                r#"{"time":"1970-01-01T00:00:00.000Z","who":{"kind":"login","user":"alice"}"#
            ),
            "{line}"
        );
        assert!(line.ends_with("}\n"));
        assert_eq!(line.matches('\n').count(), 1);
    }
}
