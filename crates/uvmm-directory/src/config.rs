//! The `[directory]` configuration: where the directory is, how to bind, and where hosts,
//! profiles, notes, users and groups are. The defaults match a UCS directory, so in a UCS
//! domain `uri`, `bind_dn` and `password_file` are all that is needed.

use crate::error::{Error, Result};
use crate::escape::{fill_template, filter_value, verbatim};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where uvmm's own entries live below the base, as in UCS (`LDAP_UVMM_RDN`,
/// `LDAP_INFO_RDN`, `LDAP_PROFILES_RDN` of UCS's uvmmd `ldap.py`).
pub const UCS_UVMM_RDN: &str = "cn=Virtual Machine Manager";
pub const UCS_PROFILES_RDN: &str = "cn=Profiles,cn=Virtual Machine Manager";
pub const UCS_INFO_RDN: &str = "cn=Information,cn=Virtual Machine Manager";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// `ldap://HOST[:PORT]/BASE` or `ldaps://HOST[:PORT]/BASE`; the base is percent-encoded
    /// as in any URL (`dc=example,dc=com` needs no encoding, a space is `%20`).
    pub uri: String,
    /// Upgrade an `ldap://` connection with StartTLS (refused together with `ldaps://`).
    #[serde(default)]
    pub starttls: bool,
    /// PEM file with the CA certificate(s) that signed the server's certificate; default:
    /// the system's trusted CAs.
    pub ca_file: Option<PathBuf>,
    /// DN of uvmmd's own account (in UCS: the machine account, `ldap/hostdn`); anonymous
    /// when absent.
    pub bind_dn: Option<String>,
    /// File holding the bind password (in UCS: `/etc/machine.secret`). Never on the command
    /// line, so it does not show in the process list. Must not be readable by others.
    pub password_file: Option<PathBuf>,
    /// Seconds to wait for the TCP (and TLS) connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Seconds to wait for one directory operation (a whole refresh counts as one).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Seconds between two refreshes.
    #[serde(default = "default_poll_interval")]
    pub poll_interval_secs: u64,
    /// How changes are found: `auto` (syncrepl-style refresh when the server offers the
    /// content synchronisation control, else polling), `sync` or `poll`.
    #[serde(default)]
    pub change_detection: ChangeDetection,
    /// Directory for the cache of the last directory state and the journal of queued note
    /// writes (created 0700; files 0600).
    #[serde(default = "default_cache_dir")]
    pub cache_dir: PathBuf,
    #[serde(default)]
    pub hosts: HostsConfig,
    #[serde(default)]
    pub profiles: ProfilesConfig,
    #[serde(default)]
    pub notes: NotesConfig,
    #[serde(default)]
    pub users: UsersConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeDetection {
    #[default]
    Auto,
    Sync,
    Poll,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostsConfig {
    /// Search base relative to the URI's base (`""` = the base itself), e.g.
    /// `cn=computers`.
    pub base: String,
    /// Which entries are virtualization hosts.
    pub filter: String,
    /// Attribute whose values pick the URI template in `services`.
    pub service_attribute: String,
    /// Service value -> libvirt URI template. Placeholders: `{fqdn}`, `{cn}`, `{domain}`.
    pub services: BTreeMap<String, String>,
    /// Template for entries that have none of the services above (a plain directory whose
    /// filter selects hosts some other way); such entries are skipped when absent.
    pub uri_template: Option<String>,
    /// Domain for entries without `associatedDomain` (UCS uses its `domainname`).
    pub default_domain: Option<String>,
    /// FQDN of this uvmmd. When set, only hosts without `univentionVirtualMachineManageableBy`
    /// or with this value in it are managed, as in UCS.
    pub managed_by: Option<String>,
}

impl Default for HostsConfig {
    fn default() -> Self {
        HostsConfig {
            base: String::new(),
            filter: "(|(univentionService=KVM Host)(univentionService=XEN Host))".into(),
            service_attribute: "univentionService".into(),
            services: BTreeMap::from([
                ("KVM Host".to_string(), "qemu://{fqdn}/system".to_string()),
                ("XEN Host".to_string(), "xen://{fqdn}/".to_string()),
            ]),
            uri_template: None,
            default_domain: None,
            managed_by: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfilesConfig {
    pub base: String,
    pub filter: String,
}

impl Default for ProfilesConfig {
    fn default() -> Self {
        ProfilesConfig {
            base: UCS_PROFILES_RDN.into(),
            filter: "(objectClass=univentionVirtualMachineProfile)".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotesConfig {
    /// Container of the note entries; a note's DN is
    /// `univentionVirtualMachineUUID=<uuid>,<base>,<directory base>` as UCS writes it.
    pub base: String,
    /// Also write `objectClass: univentionObject` and `univentionObjectType: uvmm/info` on
    /// new notes, as UCS's UDM does. Only for a directory with the UCS schema.
    pub ucs_object_type: bool,
}

impl Default for NotesConfig {
    fn default() -> Self {
        NotesConfig {
            base: UCS_INFO_RDN.into(),
            ucs_object_type: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersConfig {
    /// Where users are searched (relative to the base), e.g. `cn=users`.
    pub base: String,
    /// Finds the one user with a login name; `{uid}` is the escaped name.
    pub user_filter: String,
    /// Where groups are searched (relative to the base), e.g. `cn=groups`.
    pub group_base: String,
    /// Which entries are groups. Members are read from `memberUid` (login names),
    /// `member` and `uniqueMember` (DNs of users or of nested groups).
    pub group_filter: String,
    /// Only these groups (by `cn`) are read and cached, e.g. the groups mapped to roles;
    /// empty = every group.
    pub groups: Vec<String>,
}

impl Default for UsersConfig {
    fn default() -> Self {
        UsersConfig {
            base: String::new(),
            user_filter: "(&(|(objectClass=posixAccount)(objectClass=inetOrgPerson))(uid={uid}))"
                .into(),
            group_base: String::new(),
            group_filter:
                "(|(objectClass=posixGroup)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"
                    .into(),
            groups: Vec::new(),
        }
    }
}

fn default_connect_timeout() -> u64 {
    5
}
fn default_timeout() -> u64 {
    30
}
fn default_poll_interval() -> u64 {
    60
}
fn default_cache_dir() -> PathBuf {
    PathBuf::from("/var/lib/uvmm/directory")
}

/// The parts of `uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The base DN, percent-decoded.
    pub base: String,
}

impl LdapUrl {
    /// The URL ldap3 connects to (without the base).
    pub fn server_url(&self) -> String {
        let scheme = if self.tls { "ldaps" } else { "ldap" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Parse `ldap://HOST[:PORT]/BASE` or `ldaps://…`. A host and a base are required; LDAP URL
/// extensions (`?attrs?scope?filter`) are refused, since the searches are configured
/// separately and a half-honoured URL would mislead.
pub fn parse_ldap_url(uri: &str) -> Result<LdapUrl> {
    let bad = |why: &str| Error::Config(format!("directory URI {uri:?}: {why}"));
    let url = url::Url::parse(uri).map_err(|e| bad(&e.to_string()))?;
    let tls = match url.scheme() {
        "ldap" => false,
        "ldaps" => true,
        other => {
            return Err(bad(&format!(
                "scheme {other}:// is not supported (ldap:// or ldaps://)"
            )))
        }
    };
    let host = match url.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        _ => return Err(bad("a server name is needed (ldap://HOST/BASE)")),
    };
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "LDAP URL extensions (?attributes?scope?filter) are not supported; configure the searches instead",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials do not belong in the URI; use bind_dn and password_file",
        ));
    }
    let port = url.port().unwrap_or(if tls { 636 } else { 389 });
    let path = url.path().trim_start_matches('/');
    let base = percent_decode(path).map_err(|e| bad(&e))?;
    if base.trim().is_empty() {
        return Err(bad("a base DN is needed (ldap://HOST/dc=example,dc=com)"));
    }
    Ok(LdapUrl {
        tls,
        host,
        port,
        base,
    })
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding at {:?}", &s[i..]))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the base DN is not UTF-8".to_string())
}

/// `rdn` below `base`: `("cn=users", "dc=x")` -> `cn=users,dc=x`; `""` -> the base.
pub fn join_dn(rdn: &str, base: &str) -> String {
    let rdn = rdn.trim().trim_end_matches(',');
    if rdn.is_empty() {
        base.to_string()
    } else {
        format!("{rdn},{base}")
    }
}

impl DirectoryConfig {
    /// A configuration with every default and this URI.
    pub fn new(uri: impl Into<String>) -> Self {
        DirectoryConfig {
            uri: uri.into(),
            starttls: false,
            ca_file: None,
            bind_dn: None,
            password_file: None,
            connect_timeout_secs: default_connect_timeout(),
            timeout_secs: default_timeout(),
            poll_interval_secs: default_poll_interval(),
            change_detection: ChangeDetection::Auto,
            cache_dir: default_cache_dir(),
            hosts: HostsConfig::default(),
            profiles: ProfilesConfig::default(),
            notes: NotesConfig::default(),
            users: UsersConfig::default(),
        }
    }

    /// Check everything that can be checked without the network, so a bad configuration
    /// stops uvmmd at start instead of degrading it later.
    pub fn validate(&self) -> Result<LdapUrl> {
        let url = parse_ldap_url(&self.uri)?;
        if url.tls && self.starttls {
            return Err(Error::Config(
                "starttls with an ldaps:// URI: choose one (ldaps:// is already encrypted)".into(),
            ));
        }
        if self.bind_dn.is_some() != self.password_file.is_some() {
            return Err(Error::Config(
                "bind_dn and password_file go together (both or neither)".into(),
            ));
        }
        for (name, secs) in [
            ("connect_timeout_secs", self.connect_timeout_secs),
            ("timeout_secs", self.timeout_secs),
            ("poll_interval_secs", self.poll_interval_secs),
        ] {
            if secs == 0 || secs > 86_400 {
                return Err(Error::Config(format!(
                    "{name} = {secs}: expected 1 to 86400 seconds"
                )));
            }
        }
        for (what, filter) in [
            ("hosts.filter", &self.hosts.filter),
            ("profiles.filter", &self.profiles.filter),
            ("users.group_filter", &self.users.group_filter),
        ] {
            ldap3::parse_filter(filter)
                .map_err(|_| Error::Config(format!("{what} {filter:?} is not an LDAP filter")))?;
        }
        let user = self.user_filter("probe")?;
        ldap3::parse_filter(&user).map_err(|_| {
            Error::Config(format!(
                "users.user_filter {:?} is not an LDAP filter",
                self.users.user_filter
            ))
        })?;
        let probe = [
            ("fqdn", "h.example.com"),
            ("cn", "h"),
            ("domain", "example.com"),
        ];
        for t in self
            .hosts
            .services
            .values()
            .chain(self.hosts.uri_template.iter())
        {
            fill_template(t, &probe, verbatim)
                .map_err(|e| Error::Config(format!("hosts URI template: {e}")))?;
        }
        let attr = &self.hosts.service_attribute;
        if attr.is_empty()
            || !attr
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(Error::Config(format!(
                "hosts.service_attribute {attr:?} is not an attribute name"
            )));
        }
        if self.hosts.services.is_empty() && self.hosts.uri_template.is_none() {
            return Err(Error::Config(
                "hosts: no services and no uri_template, so no entry could become a host".into(),
            ));
        }
        Ok(url)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_secs(self.poll_interval_secs)
    }

    /// The host search filter, limited to this uvmmd's hosts when `managed_by` is set
    /// (the same filter UCS's uvmmd builds).
    pub fn host_filter(&self) -> String {
        match &self.hosts.managed_by {
            Some(fqdn) => format!(
                "(&{}(|(!(univentionVirtualMachineManageableBy=*))(univentionVirtualMachineManageableBy={})))",
                self.hosts.filter,
                filter_value(fqdn)
            ),
            None => self.hosts.filter.clone(),
        }
    }

    pub fn user_filter(&self, uid: &str) -> Result<String> {
        fill_template(&self.users.user_filter, &[("uid", uid)], filter_value)
            .map_err(|e| Error::Config(format!("users.user_filter: {e}")))
    }

    /// The group filter, narrowed to the configured group names.
    pub fn group_filter(&self) -> String {
        if self.users.groups.is_empty() {
            return self.users.group_filter.clone();
        }
        let names: String = self
            .users
            .groups
            .iter()
            .map(|g| format!("(cn={})", filter_value(g)))
            .collect();
        format!("(&{}(|{names}))", self.users.group_filter)
    }

    /// The bind password, read from `password_file`. The file must not be readable or
    /// writable by others: a world-readable secret would be one any local user could use.
    pub fn read_password(&self) -> Result<Option<String>> {
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        read_password_file(path).map(Some)
    }
}

pub(crate) fn read_password_file(path: &Path) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| Error::PasswordFile {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(Error::PasswordFileUnsafe {
            path: path.to_path_buf(),
            reason: format!("mode {mode:04o} lets every local user read it; chmod 600 it"),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::PasswordFile {
        path: path.to_path_buf(),
        source,
    })?;
    // Only the line end is dropped: a password may begin or end with other white space.
    let pw = text.trim_end_matches(['\n', '\r']);
    if pw.is_empty() {
        return Err(Error::PasswordFileUnsafe {
            path: path.to_path_buf(),
            reason: "it is empty (an empty password would be an anonymous bind)".into(),
        });
    }
    if pw.contains('\n') {
        return Err(Error::PasswordFileUnsafe {
            path: path.to_path_buf(),
            reason: "it holds more than one line".into(),
        });
    }
    Ok(pw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldap_urls() {
        let ok = [
            (
                "ldap://ldap.example.com/dc=example,dc=com",
                (false, "ldap.example.com", 389, "dc=example,dc=com"),
            ),
            (
                "ldaps://ldap.example.com:7636/dc=example,dc=com",
                (true, "ldap.example.com", 7636, "dc=example,dc=com"),
            ),
            (
                "ldap://127.0.0.1:7389/o=Acme%20Corp,c=de",
                (false, "127.0.0.1", 7389, "o=Acme Corp,c=de"),
            ),
            ("ldap://[::1]:7389/dc=x", (false, "::1", 7389, "dc=x")),
        ];
        for (uri, (tls, host, port, base)) in ok {
            let u = parse_ldap_url(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
            assert_eq!(
                (u.tls, u.host.as_str(), u.port, u.base.as_str()),
                (tls, host, port, base)
            );
        }
        assert_eq!(
            parse_ldap_url("ldap://[::1]:7389/dc=x")
                .unwrap()
                .server_url(),
            "ldap://[::1]:7389"
        );
        let bad = [
            ("", "directory URI"),
            ("http://x/dc=x", "scheme http"),
            ("ldapi:///dc=x", "scheme ldapi"),
            ("ldap:///dc=x", "server name"),
            ("ldap://x/", "base DN"),
            ("ldap://x", "base DN"),
            ("ldap://x/dc=x?cn?sub?(cn=*)", "extensions"),
            ("ldap://u:p@x/dc=x", "credentials"),
            ("ldap://x/dc=%zz", "percent"),
        ];
        for (uri, want) in bad {
            let e = parse_ldap_url(uri).unwrap_err().to_string();
            assert!(e.contains(want), "{uri}: {e}");
        }
    }

    #[test]
    fn config_from_toml_with_defaults() {
        let text = r#"
            uri = "ldap://ucs-master.example.com/dc=example,dc=com"
            bind_dn = "cn=uvmm1,cn=dc,cn=computers,dc=example,dc=com"
            password_file = "/etc/machine.secret"
            [hosts]
            managed_by = "uvmm1.example.com"
        "#;
        let c: DirectoryConfig = toml::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.poll_interval_secs, 60);
        assert_eq!(c.profiles.base, UCS_PROFILES_RDN);
        assert_eq!(c.hosts.services["KVM Host"], "qemu://{fqdn}/system");
        assert_eq!(
            c.host_filter(),
            "(&(|(univentionService=KVM Host)(univentionService=XEN Host))\
             (|(!(univentionVirtualMachineManageableBy=*))(univentionVirtualMachineManageableBy=uvmm1.example.com)))"
        );
        let e = toml::from_str::<DirectoryConfig>("uri = \"ldap://x/dc=x\"\ncolour = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn invalid_configs_are_refused() {
        let base = DirectoryConfig::new("ldap://x/dc=x");
        type Change = Box<dyn Fn(&mut DirectoryConfig)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|c| {
                    c.uri = "ldaps://x/dc=x".into();
                    c.starttls = true
                }),
                "choose one",
            ),
            (Box::new(|c| c.bind_dn = Some("cn=a".into())), "go together"),
            (Box::new(|c| c.timeout_secs = 0), "timeout_secs"),
            (
                Box::new(|c| c.poll_interval_secs = 100_000),
                "poll_interval",
            ),
            (
                Box::new(|c| c.hosts.filter = "(cn=x".into()),
                "hosts.filter",
            ),
            (
                Box::new(|c| c.users.user_filter = "(uid={user})".into()),
                "unknown placeholder",
            ),
            (
                Box::new(|c| {
                    c.hosts
                        .services
                        .insert("KVM Host".into(), "qemu://{host}/".into());
                }),
                "unknown placeholder",
            ),
            (
                Box::new(|c| c.hosts.services.clear()),
                "no entry could become a host",
            ),
            (
                Box::new(|c| c.hosts.service_attribute = "*".into()),
                "not an attribute name",
            ),
        ];
        for (change, want) in cases {
            let mut c = base.clone();
            change(&mut c);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn filters_escape_their_values() {
        let mut c = DirectoryConfig::new("ldap://x/dc=x");
        c.hosts.managed_by = Some("evil*)(cn=*".into());
        assert!(c
            .host_filter()
            .ends_with("(univentionVirtualMachineManageableBy=evil\\2a\\29\\28cn=\\2a)))"));
        c.users.groups = vec!["admins".into(), "x)(cn=*".into()];
        assert!(
            c.group_filter()
                .ends_with("(|(cn=admins)(cn=x\\29\\28cn=\\2a)))"),
            "{}",
            c.group_filter()
        );
        assert_eq!(
            c.user_filter("*").unwrap(),
            "(&(|(objectClass=posixAccount)(objectClass=inetOrgPerson))(uid=\\2a))"
        );
    }

    #[test]
    fn password_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, u32, Result<&str, &str>); 6] = [
            ("secret\n", 0o600, Ok("secret")),
            ("secret", 0o640, Ok("secret")),
            (" spaced secret \r\n", 0o400, Ok(" spaced secret ")),
            ("secret\n", 0o644, Err("chmod 600")),
            ("\n", 0o600, Err("empty")),
            ("a\nb\n", 0o600, Err("more than one line")),
        ];
        for (i, (text, mode, want)) in cases.into_iter().enumerate() {
            let p = dir.path().join(format!("pw{i}"));
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            match (read_password_file(&p), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{e}"),
                (got, w) => panic!("case {i}: got {got:?}, want {w:?}"),
            }
        }
        let e = read_password_file(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(e, Error::PasswordFile { .. }));
    }
}
