//! `-b LDAP_URI` and `[directory]`: directory mode, or standalone.
//!
//! The seed's meaning of `-b`: a URI runs uvmmd in directory mode, `-b ""` standalone (no
//! directory connection at all, whatever the file says). Without `-b` the file decides:
//! `[directory] uri` (or the older top-level `ldap = …`), else standalone.

use super::ConfigError;
use std::path::Path;
use uvmm_directory::DirectoryConfig;

/// Directory mode after merging.
#[derive(Debug, Clone)]
pub struct DirectorySettings {
    /// Handed to `uvmm_directory::Directory::open` (validated).
    pub config: DirectoryConfig,
    /// Connect to the hosts the directory names without the runtime host policy (`[api]`,
    /// docs/security.md): only when whoever can write host entries may make uvmmd (root)
    /// connect anywhere. Default false.
    pub trust_host_uris: bool,
}

/// The key of `[directory]` that is uvmmd's, not the directory library's.
const TRUST_KEY: &str = "trust_host_uris";

/// Decide the mode. `arg` is `-b`, `file_uri` the top-level `ldap`, `table` `[directory]`.
pub fn directory_settings(
    arg: Option<&str>,
    file_uri: Option<&str>,
    table: Option<&toml::Table>,
    state_dir: &Path,
) -> Result<Option<DirectorySettings>, ConfigError> {
    let invalid = |m: String| ConfigError::Invalid(format!("[directory]: {m}"));
    let table_uri = table
        .and_then(|t| t.get("uri"))
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid("uri must be a string".into()))
        })
        .transpose()?;
    let uri = match arg {
        Some(a) => a.to_string(),
        None => table_uri
            .or(file_uri.map(str::to_string))
            .unwrap_or_default(),
    };
    if uri.trim().is_empty() {
        return Ok(None);
    }
    let mut t = table.cloned().unwrap_or_default();
    let trust_host_uris = match t.remove(TRUST_KEY) {
        None => false,
        Some(toml::Value::Boolean(b)) => b,
        Some(_) => return Err(invalid(format!("{TRUST_KEY} must be true or false"))),
    };
    t.insert("uri".into(), toml::Value::String(uri));
    if !t.contains_key("cache_dir") {
        // Beside the daemon's other state, so one -c keeps everything of one daemon.
        t.insert(
            "cache_dir".into(),
            toml::Value::String(state_dir.join("directory").display().to_string()),
        );
    }
    let config: DirectoryConfig = t
        .try_into()
        .map_err(|e: toml::de::Error| invalid(e.message().to_string()))?;
    config
        .validate()
        .map_err(|e| invalid(uvmm_directory::error_chain(&e)))?;
    Ok(Some(DirectorySettings {
        config,
        trust_host_uris,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (-b, top-level ldap, [directory]) → the directory URI, or None for standalone.
    type Case<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a toml::Table>,
        Option<&'a str>,
    );

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn which_mode() {
        let state = Path::new("/var/lib/uvmm");
        let full = table(
            "uri = \"ldap://file.example.com/dc=x\"\nbind_dn = \"cn=u,dc=x\"\n\
             password_file = \"/etc/uvmm/ldap.secret\"\n",
        );
        let cases: Vec<Case> = vec![
            (None, None, None, None),
            (Some(""), None, Some(&full), None),
            (Some("  "), None, None, None),
            (None, Some(""), None, None),
            (
                None,
                None,
                Some(&full),
                Some("ldap://file.example.com/dc=x"),
            ),
            (
                Some("ldap://arg.example.com/dc=y"),
                None,
                Some(&full),
                Some("ldap://arg.example.com/dc=y"),
            ),
            (
                None,
                Some("ldaps://old.example.com/dc=z"),
                None,
                Some("ldaps://old.example.com/dc=z"),
            ),
        ];
        for (arg, file_uri, t, want) in cases {
            let got = directory_settings(arg, file_uri, t, state).unwrap();
            assert_eq!(
                got.as_ref().map(|d| d.config.uri.as_str()),
                want,
                "{arg:?} {file_uri:?}"
            );
            if let Some(d) = got {
                assert_eq!(d.config.cache_dir, state.join("directory"));
                assert!(!d.trust_host_uris);
            }
        }
        let kept = directory_settings(None, None, Some(&full), state)
            .unwrap()
            .unwrap();
        assert_eq!(kept.config.bind_dn.as_deref(), Some("cn=u,dc=x"));
        let trusted =
            table("uri = \"ldap://h/dc=x\"\ntrust_host_uris = true\ncache_dir = \"/c\"\n");
        let t = directory_settings(None, None, Some(&trusted), state)
            .unwrap()
            .unwrap();
        assert!(t.trust_host_uris);
        assert_eq!(t.config.cache_dir, Path::new("/c"));
    }

    #[test]
    fn refused() {
        let state = Path::new("/s");
        for (arg, text, needle) in [
            (Some("http://x/"), "", "ldap"),
            (None, "uri = 5", "uri must be a string"),
            (
                None,
                "uri = \"ldap://h/dc=x\"\nbind_pw = \"x\"",
                "unknown field",
            ),
            (
                None,
                "uri = \"ldap://h/dc=x\"\ntrust_host_uris = \"yes\"",
                "true or false",
            ),
            (
                None,
                "uri = \"ldaps://h/dc=x\"\nstarttls = true",
                "starttls",
            ),
            (None, "uri = \"ldap://h/dc=x\"\ntimeout_secs = 0", "timeout"),
        ] {
            let t = table(text);
            let e = directory_settings(arg, None, Some(&t), state)
                .unwrap_err()
                .to_string();
            assert!(e.to_lowercase().contains(needle), "{text}: {e}");
        }
    }
}
