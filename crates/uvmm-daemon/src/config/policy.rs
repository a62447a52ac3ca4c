//! `[api]`: what API clients may ask for.

use super::{ApiFile, ConfigError};
use std::path::PathBuf;
use std::time::Duration;

/// The API policy and limits after merging (see `ApiFile`).
#[derive(Debug, Clone)]
pub struct ApiPolicy {
    pub runtime_hosts: uvmm_model::hosts::RuntimeHostPolicy,
    pub image_dirs: Vec<String>,
    pub tcp_host_names: Vec<String>,
    pub max_connections_per_peer: usize,
    pub max_connections: usize,
    pub request_timeout: Duration,
    pub socket_mode: u32,
    /// Directory mode: connect to the directory's hosts without `runtime_hosts` (set from
    /// `[directory] trust_host_uris`).
    pub trust_directory_hosts: bool,
}

impl Default for ApiPolicy {
    fn default() -> Self {
        ApiPolicy {
            runtime_hosts: Default::default(),
            image_dirs: vec![],
            tcp_host_names: vec![],
            max_connections_per_peer: 64,
            max_connections: 1024,
            request_timeout: Duration::from_secs(30),
            socket_mode: 0o666,
            trust_directory_hosts: false,
        }
    }
}

pub(super) fn plain_dirs(
    list: Option<Vec<PathBuf>>,
    key: &str,
) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for d in list.unwrap_or_default() {
        let s = d.to_string_lossy().trim_end_matches('/').to_string();
        if s.is_empty() || !uvmm_model::hosts::plain_absolute_path(&s) {
            return Err(ConfigError::Invalid(format!(
                "[api] {key}: '{}' must be a plain absolute directory path (not /, no '..')",
                d.display()
            )));
        }
        out.push(s);
    }
    Ok(out)
}

pub(super) fn api_policy(f: Option<ApiFile>) -> Result<ApiPolicy, ConfigError> {
    let f = f.unwrap_or_default();
    let d = ApiPolicy::default();
    let positive = |v: Option<usize>, key: &str, def: usize| match v {
        Some(0) => Err(ConfigError::Invalid(format!(
            "[api] {key} must be at least 1"
        ))),
        Some(n) => Ok(n),
        None => Ok(def),
    };
    let request_timeout = match f.request_timeout_secs {
        Some(0) => {
            return Err(ConfigError::Invalid(
                "[api] request_timeout_secs must be at least 1".into(),
            ))
        }
        Some(s) if s > 3600 => {
            return Err(ConfigError::Invalid(
                "[api] request_timeout_secs must be at most 3600".into(),
            ))
        }
        Some(s) => Duration::from_secs(s),
        None => d.request_timeout,
    };
    for n in f.tcp_host_names.iter().flatten() {
        let ok = !n.is_empty()
            && n.len() <= 253
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !ok {
            return Err(ConfigError::Invalid(format!(
                "[api] tcp_host_names: '{n}' is not a host name"
            )));
        }
    }
    Ok(ApiPolicy {
        runtime_hosts: uvmm_model::hosts::RuntimeHostPolicy {
            allow_local_programs: f.allow_local_program_uris.unwrap_or(false),
            test_dirs: plain_dirs(f.test_host_dirs, "test_host_dirs")?,
        },
        image_dirs: plain_dirs(f.image_dirs, "image_dirs")?,
        tcp_host_names: f
            .tcp_host_names
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.to_ascii_lowercase())
            .collect(),
        max_connections_per_peer: positive(
            f.max_connections_per_peer,
            "max_connections_per_peer",
            d.max_connections_per_peer,
        )?,
        max_connections: positive(f.max_connections, "max_connections", d.max_connections)?,
        request_timeout,
        socket_mode: match f.socket_mode.as_deref() {
            None => d.socket_mode,
            Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o666 && m & 0o600 == 0o600)
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "[api] socket_mode '{m}': an octal mode like \"0660\" or \"0666\" (read and write for the owner, no execute bits)"
                    ))
                })?,
        },
        trust_directory_hosts: false,
    })
}
