//! Named API tokens: `uvmm token create|list|revoke`, sent as `Authorization: Bearer`.
//!
//! A token is `uvmm_<id>_<secret>`: 8 random bytes of id (hex) to find the record, 32
//! random bytes (256 bits) of secret. The `uvmm_` prefix lets secret scanners recognise a
//! leaked token. The secret is shown once, at creation; the file keeps its SHA-256.
//!
//! **Why SHA-256 and not a slow password hash.** Slow hashes (argon2, bcrypt) protect
//! *low-entropy* secrets, which an attacker holding the hash can guess. A token has 256
//! random bits: no guessing finishes, whatever the hash costs, so a fast hash protects it
//! as well as a slow one — and keeps checking a token on every request cheap (a slow hash
//! per request would also hand anyone a CPU-exhaustion lever). Comparison is constant
//! time; an unknown id still costs one hash and one comparison.
//!
//! The file (`<state_dir>/tokens.json`, 0600) is replaced atomically on every change.

use crate::roles::{Grant, Role, Scope};
use crate::util::{self, ct_eq, hex, random_bytes, sha256, unhex, FileError, RandomError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const TOKEN_PREFIX: &str = "uvmm_";
const FILE_VERSION: u32 = 1;
/// More tokens than anyone manages by hand; a bound on the file and on a lookup.
pub const MAX_TOKENS: usize = 1000;

/// One token as stored. No secret: `hash` is SHA-256 of the whole token text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredToken {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Host patterns; absent: every host.
    #[serde(default, skip_serializing_if = "Scope::is_all")]
    pub hosts: Scope,
    /// VM patterns; absent: every VM.
    #[serde(default, skip_serializing_if = "Scope::is_all")]
    pub vms: Scope,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// Who created it (the principal's `who()`).
    pub created_by: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    pub version: u32,
    pub tokens: Vec<StoredToken>,
}

/// A token as `list` shows it: never the secret, nor its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    /// Host patterns; absent: every host.
    pub hosts: Option<Vec<String>>,
    /// VM patterns; absent: every VM.
    pub vms: Option<Vec<String>>,
    pub created: u64,
    pub expires: Option<u64>,
    pub created_by: String,
    pub expired: bool,
}

/// What `create` returns: the token text (show it once, never store or log it) and the
/// record as `list` shows it.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub token: String,
    pub info: TokenInfo,
}

/// What `create` needs.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub name: String,
    pub grant: Grant,
    /// How long the token is valid; `None`: until revoked.
    pub valid_for: Option<Duration>,
    pub created_by: String,
}

/// A token that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub name: String,
    pub grant: Grant,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a token of ours, or a wrong secret, or revoked: all look the same (`401`).
    #[error("invalid API token")]
    Invalid,
    #[error("the API token '{0}' has expired")]
    Expired(String),
    #[error("a token named '{0}' exists already")]
    Exists(String),
    #[error("no token named '{0}'")]
    NotFound(String),
    #[error("token name '{0}': use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")]
    BadName(String),
    #[error("there are {MAX_TOKENS} tokens already; revoke some first")]
    TooMany,
    #[error("a token's validity must be at least one second")]
    BadExpiry,
    #[error("the token file {path} is damaged: {message}")]
    Damaged { path: PathBuf, message: String },
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Random(#[from] RandomError),
}

fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Parse and check a token file's text (also the fuzzing entry point).
pub fn parse_token_file(text: &str) -> Result<TokenFile, String> {
    let file: TokenFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if file.version != FILE_VERSION {
        return Err(format!(
            "version {} (this uvmmd reads version {FILE_VERSION})",
            file.version
        ));
    }
    if file.tokens.len() > MAX_TOKENS {
        return Err(format!("more than {MAX_TOKENS} tokens"));
    }
    let mut seen_ids = std::collections::HashSet::new();
    let mut seen_names = std::collections::HashSet::new();
    for t in &file.tokens {
        if unhex::<8>(&t.id).is_none() {
            return Err(format!("token '{}': bad id", t.name));
        }
        if unhex::<32>(&t.sha256).is_none() {
            return Err(format!("token '{}': bad sha256", t.name));
        }
        if !valid_name(&t.name) {
            return Err(format!("bad token name {:?}", t.name));
        }
        if !seen_ids.insert(t.id.to_ascii_lowercase()) || !seen_names.insert(&t.name) {
            return Err(format!("token '{}' appears twice", t.name));
        }
    }
    Ok(file)
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn info(t: &StoredToken, now: SystemTime) -> TokenInfo {
    TokenInfo {
        name: t.name.clone(),
        role: t.role,
        hosts: t.hosts.patterns(),
        vms: t.vms.patterns(),
        created: t.created,
        expires: t.expires,
        created_by: t.created_by.clone(),
        expired: t.expires.is_some_and(|e| e <= unix_secs(now)),
    }
}

/// The tokens of one daemon: kept in memory (checking a request reads no file), written
/// through to the file on every change.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    tokens: Mutex<Vec<StoredToken>>,
}

impl StoredToken {
    pub fn grant(&self) -> Grant {
        Grant {
            role: self.role,
            hosts: self.hosts.clone(),
            vms: self.vms.clone(),
        }
    }
}

impl TokenStore {
    /// Open `path` (usually `<state_dir>/tokens.json`). A missing file is an empty store
    /// (created at the first token); an existing one must be 0600 and ours.
    pub fn open(path: &Path) -> Result<TokenStore, TokenError> {
        let tokens = Self::read(path)?;
        Ok(TokenStore {
            path: path.to_path_buf(),
            tokens: Mutex::new(tokens),
        })
    }

    fn read(path: &Path) -> Result<Vec<StoredToken>, TokenError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(FileError::Io {
                    what: "read",
                    path: path.to_path_buf(),
                    source,
                }
                .into())
            }
        };
        util::check_private_file(path)?;
        parse_token_file(&text)
            .map(|f| f.tokens)
            .map_err(|message| TokenError::Damaged {
                path: path.to_path_buf(),
                message,
            })
    }

    /// Read the file again (SIGHUP: an administrator may have removed a line by hand).
    /// On error the tokens in memory stay.
    pub fn reload(&self) -> Result<usize, TokenError> {
        let tokens = Self::read(&self.path)?;
        let n = tokens.len();
        *self.lock() = tokens;
        Ok(n)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<StoredToken>> {
        // Changes are made on a copy and swapped in after the file is written, so a
        // poisoned lock still guards a consistent list.
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, tokens: &[StoredToken]) -> Result<(), TokenError> {
        let file = TokenFile {
            version: FILE_VERSION,
            tokens: tokens.to_vec(),
        };
        let mut text = serde_json::to_string_pretty(&file).map_err(|e| TokenError::Damaged {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        text.push('\n');
        if let Some(dir) = self.path.parent() {
            util::ensure_private_dir(dir)?;
        }
        util::write_atomic(&self.path, text.as_bytes(), 0o600)?;
        Ok(())
    }

    /// Make a token. The returned text is the only copy of the secret.
    pub fn create(&self, req: TokenRequest, now: SystemTime) -> Result<NewToken, TokenError> {
        if !valid_name(&req.name) {
            return Err(TokenError::BadName(req.name));
        }
        if req.valid_for.is_some_and(|d| d.as_secs() == 0) {
            return Err(TokenError::BadExpiry);
        }
        let mut guard = self.lock();
        if guard.iter().any(|t| t.name == req.name) {
            return Err(TokenError::Exists(req.name));
        }
        if guard.len() >= MAX_TOKENS {
            return Err(TokenError::TooMany);
        }
        let id = hex(&random_bytes::<8>()?);
        let secret = hex(&random_bytes::<32>()?);
        let token = format!("{TOKEN_PREFIX}{id}_{secret}");
        let created = unix_secs(now);
        let stored = StoredToken {
            id,
            name: req.name,
            role: req.grant.role,
            hosts: req.grant.hosts,
            vms: req.grant.vms,
            created,
            expires: req.valid_for.map(|d| created.saturating_add(d.as_secs())),
            created_by: req.created_by,
            sha256: hex(&sha256(token.as_bytes())),
        };
        let mut next = guard.clone();
        next.push(stored.clone());
        self.save(&next)?;
        *guard = next;
        Ok(NewToken {
            token,
            info: info(&stored, now),
        })
    }

    /// Every token, without secrets, in creation order.
    pub fn list(&self, now: SystemTime) -> Vec<TokenInfo> {
        self.lock().iter().map(|t| info(t, now)).collect()
    }

    /// Remove a token; requests with it fail from now on.
    pub fn revoke(&self, name: &str, now: SystemTime) -> Result<TokenInfo, TokenError> {
        let mut guard = self.lock();
        let Some(pos) = guard.iter().position(|t| t.name == name) else {
            return Err(TokenError::NotFound(name.to_string()));
        };
        let mut next = guard.clone();
        let removed = next.remove(pos);
        self.save(&next)?;
        *guard = next;
        Ok(info(&removed, now))
    }

    /// Check a bearer token. Every path hashes once and compares once in constant time.
    pub fn verify(&self, presented: &str, now: SystemTime) -> Result<VerifiedToken, TokenError> {
        let digest = sha256(presented.as_bytes());
        let id = presented
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
            .unwrap_or("");
        let guard = self.lock();
        let found = guard.iter().find(|t| t.id == id);
        let stored_hash = found
            .and_then(|t| unhex::<32>(&t.sha256))
            .unwrap_or([0u8; 32]);
        let matches = ct_eq(&digest, &stored_hash);
        let token = match found {
            Some(t) if matches => t,
            _ => return Err(TokenError::Invalid),
        };
        if token.expires.is_some_and(|e| e <= unix_secs(now)) {
            return Err(TokenError::Expired(token.name.clone()));
        }
        Ok(VerifiedToken {
            name: token.name.clone(),
            grant: token.grant(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether a bearer credential looks like a named token (else it may be the legacy
/// `api-token`, which the daemon compares itself).
pub fn is_named_token(bearer: &str) -> bool {
    bearer.starts_with(TOKEN_PREFIX)
}

/// A grant for a token from CLI-style parts (`--role operator --host kvm2 --vm 'web-*'`).
pub fn grant_from_parts(
    role: Role,
    hosts: &[String],
    vms: &[String],
) -> Result<Grant, crate::roles::ScopeError> {
    let scope = |l: &[String]| Scope::from_patterns((!l.is_empty()).then_some(l));
    Ok(Grant {
        role,
        hosts: scope(hosts)?,
        vms: scope(vms)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for (n, ok) in [
            ("ci", true),
            ("prometheus-1.x_y", true),
            ("", false),
            ("-x", false),
            (".x", false),
            ("a b", false),
            ("a/b", false),
            (&"a".repeat(65), false),
        ] {
            assert_eq!(valid_name(n), ok, "{n:?}");
        }
    }

    #[test]
    fn file_checks() {
        let good = r#"{"version":1,"tokens":[{"id":"0011223344556677","name":"ci","role":"viewer","created":1,"created_by":"root","sha256":"0000000000000000000000000000000000000000000000000000000000000000"}]}"#;
        assert_eq!(parse_token_file(good).unwrap().tokens.len(), 1);
        let table = [
            (good.replace("\"version\":1", "\"version\":2"), "version 2"),
            (good.replace("0011223344556677", "xyz"), "bad id"),
            (
                good.replace("\"name\":\"ci\"", "\"name\":\"c i\""),
                "bad token name",
            ),
            (
                good.replace("\"role\":\"viewer\"", "\"role\":\"god\""),
                "unknown variant",
            ),
            (
                good.replace("\"created\":1", "\"created\":1,\"secret\":\"x\""),
                "unknown field",
            ),
            ("{".to_string(), "EOF"),
        ];
        for (text, want) in table {
            let err = parse_token_file(&text).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
        let entry = &good[good.find("[").unwrap() + 1..good.len() - 2];
        let twice = good.replace(entry, &format!("{entry},{entry}"));
        assert!(
            parse_token_file(&twice).unwrap_err().contains("twice"),
            "{twice}"
        );
    }
}
