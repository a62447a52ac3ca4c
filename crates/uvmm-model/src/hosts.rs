//! libvirt connection URIs: validation before anything is opened, and the short host id
//! the API and CLI use (`GET /api/v1/hosts/{id}`).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("'{0}' is not a libvirt URI (expected e.g. qemu:///system, qemu+ssh://host/system, xen://host/, test:///default)")]
    Form(String),
    #[error("unknown hypervisor driver '{driver}' in '{uri}' (known: {known})")]
    Driver {
        driver: String,
        uri: String,
        known: String,
    },
    #[error("unknown transport '{transport}' in '{uri}' (known: {known})")]
    Transport {
        transport: String,
        uri: String,
        known: String,
    },
}

const DRIVERS: [&str; 8] = ["qemu", "test", "xen", "libxl", "lxc", "bhyve", "vz", "ch"];
const TRANSPORTS: [&str; 7] = ["unix", "tcp", "tls", "ssh", "libssh", "libssh2", "ext"];

/// The parts of a URI that matter to uvmm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUri {
    pub uri: String,
    pub driver: String,
    pub transport: Option<String>,
    pub host: Option<String>,
    pub path: String,
}

impl HostUri {
    pub fn parse(uri: &str) -> Result<HostUri, UriError> {
        let bad = || UriError::Form(uri.to_string());
        // URIs are ASCII (RFC 3986: anything else is percent-encoded).
        if uri.is_empty()
            || uri.len() > 1024
            || !uri.is_ascii()
            || uri.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad());
        }
        let (scheme, rest) = uri.split_once("://").ok_or_else(bad)?;
        let (driver, transport) = match scheme.split_once('+') {
            Some((d, t)) => (d, Some(t)),
            None => (scheme, None),
        };
        if !DRIVERS.contains(&driver) {
            return Err(UriError::Driver {
                driver: driver.to_string(),
                uri: uri.to_string(),
                known: DRIVERS.join(", "),
            });
        }
        if let Some(t) = transport {
            if !TRANSPORTS.contains(&t) {
                return Err(UriError::Transport {
                    transport: t.to_string(),
                    uri: uri.to_string(),
                    known: TRANSPORTS.join(", "),
                });
            }
        }
        let rest = rest.split_once('?').map(|(r, _)| r).unwrap_or(rest);
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let host = authority
            .rsplit_once('@')
            .map(|(_, h)| h)
            .unwrap_or(authority);
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.split_once(']').map(|(h, _)| h))
            .unwrap_or_else(|| host.split(':').next().unwrap_or(""));
        if host
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')))
        {
            return Err(bad());
        }
        Ok(HostUri {
            uri: uri.to_string(),
            driver: driver.to_string(),
            transport: transport.map(str::to_string),
            host: (!host.is_empty()).then(|| host.to_string()),
            path: path.to_string(),
        })
    }

    /// True when the connection reaches the local machine (no remote host part).
    pub fn is_local(&self) -> bool {
        match &self.host {
            None => true,
            Some(h) => matches!(h.as_str(), "localhost" | "127.0.0.1" | "::1"),
        }
    }

    /// Whether every connection to this URI opens a host of its own: the libvirt test
    /// driver with a node file (`test:///PATH`) starts afresh on every open, even in one
    /// process; `test:///default` is shared. Work for such a host must use the
    /// connection it already has.
    pub fn host_per_connection(&self) -> bool {
        self.driver == "test" && self.path != "/default"
    }

    /// The kind of host, in words, for messages ("not supported on …").
    pub fn driver_words(&self) -> &'static str {
        match self.driver.as_str() {
            "qemu" => "QEMU/KVM",
            "test" => "libvirt's test driver",
            "xen" | "libxl" => "Xen",
            "lxc" => "LXC containers",
            "bhyve" => "bhyve",
            "vz" => "Virtuozzo",
            "ch" => "Cloud Hypervisor",
            _ => "this hypervisor",
        }
    }

    /// A short, readable id: the host name for remote URIs, the file stem for
    /// `test:///path/node.xml`, `default` for `test:///default`, `localhost` otherwise.
    pub fn default_id(&self) -> String {
        if let Some(h) = &self.host {
            if !self.is_local() {
                return h.clone();
            }
        }
        if self.driver == "test" {
            let stem = self
                .path
                .rsplit('/')
                .next()
                .unwrap_or("")
                .trim_end_matches(".xml");
            if !stem.is_empty() {
                return stem.to_string();
            }
        }
        "localhost".to_string()
    }
}

/// Where hosts added at runtime (through the API) may point. Hosts in the configuration
/// file or on the command line are the administrator's word and are not checked; a host
/// added by an API client is, because libvirt acts on a URI with uvmmd's rights (root):
/// `qemu+ext://…?command=PROG` runs PROG, `?socket=`, `?keyfile=`, `?pkipath=` … name local
/// files, and `test:///FILE` makes libvirt parse FILE (and echo parts of it in errors).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeHostPolicy {
    /// Allow the `ext` transport and URI parameters that name local programs, sockets or
    /// files (`[api] allow_local_program_uris = true` in the configuration).
    pub allow_local_programs: bool,
    /// Directories below which `test:///PATH` node files may be opened.
    pub test_dirs: Vec<String>,
}

/// URI parameters that name nothing on the local machine. Everything else (`command`,
/// `netcat`, `socket`, `keyfile`, `pkipath`, `known_hosts`, `name`, …) is refused for
/// runtime hosts unless the configuration allows local programs.
const HARMLESS_PARAMS: [&str; 6] = [
    "no_verify",
    "no_tty",
    "sshauth",
    "mode",
    "proxy",
    "tls_priority",
];

/// Paths that select a driver instance, the only ones a runtime host may use (a path such as
/// `/embed?root=…` makes libvirt create files wherever it says).
const INSTANCE_PATHS: [&str; 4] = ["", "/", "/system", "/session"];

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `dir` as a prefix: absolute, no trailing slash (except `/` itself).
fn under_dir(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    !dir.is_empty()
        && path.len() > dir.len() + 1
        && path.starts_with(dir)
        && path.as_bytes()[dir.len()] == b'/'
}

/// True when `path` is absolute and plain: no `.` or `..` segments, no empty segments, no
/// percent escapes or control characters (so what is checked is what libvirt opens).
pub fn plain_absolute_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= 4096
        && !path
            .chars()
            .any(|c| c.is_control() || c == '%' || c == '\\')
        && path[1..]
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// True when `path` is a plain absolute path below one of `dirs`.
pub fn path_under(path: &str, dirs: &[String]) -> bool {
    plain_absolute_path(path) && dirs.iter().any(|d| under_dir(path, d))
}

/// Why a runtime host URI is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UriRefused(pub String);

impl HostUri {
    /// Check a URI that an API client wants to add (see `RuntimeHostPolicy`).
    pub fn check_runtime(&self, policy: &RuntimeHostPolicy) -> Result<(), UriRefused> {
        let refuse = |why: String| Err(UriRefused(why));
        let local_hint = "; an administrator can add it to the configuration file, or allow \
                          such URIs with [api] allow_local_program_uris = true";
        if self.transport.as_deref() == Some("ext") && !policy.allow_local_programs {
            return refuse(format!(
                "the ext transport runs a local program as uvmmd's user and is not accepted \
                 from API clients{local_hint}"
            ));
        }
        let (rest, query) = match self.uri.split_once("://") {
            Some((_, r)) => match r.split_once('?') {
                Some((r, q)) => (r, Some(q)),
                None => (r, None),
            },
            None => return refuse("not a URI".into()),
        };
        if let Some(q) = query {
            for pair in q.split('&').filter(|p| !p.is_empty()) {
                let raw = pair.split_once('=').map(|(k, _)| k).unwrap_or(pair);
                let Some(key) = percent_decode(raw) else {
                    return refuse(format!("unreadable URI parameter '{raw}'"));
                };
                if !HARMLESS_PARAMS.contains(&key.to_ascii_lowercase().as_str())
                    && !policy.allow_local_programs
                {
                    return refuse(format!(
                        "URI parameter '{key}' is not accepted from API clients (it can name a \
                         local program, socket or file; accepted: {}){local_hint}",
                        HARMLESS_PARAMS.join(", ")
                    ));
                }
            }
        }
        // Authority: user and host end up as ssh arguments; an argument that starts with
        // '-' would be read as an option.
        let authority = rest.split('/').next().unwrap_or("");
        if let Some((user, _)) = authority.rsplit_once('@') {
            let ok = !user.is_empty()
                && !user.starts_with('-')
                && user
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !ok {
                return refuse(format!(
                    "user name '{user}' in the URI (expected letters, digits, '.', '_', '-')"
                ));
            }
        }
        if self.host.as_deref().is_some_and(|h| h.starts_with('-')) {
            return refuse("a host name cannot start with '-'".into());
        }
        if self.driver == "test" {
            if self.path == "/default" {
                return Ok(());
            }
            if path_under(&self.path, &policy.test_dirs) {
                return Ok(());
            }
            return refuse(if policy.test_dirs.is_empty() {
                "test:///PATH hosts are not accepted from API clients (libvirt would read \
                 PATH with uvmmd's rights); use test:///default, or let an administrator name \
                 a directory for node files with [api] test_host_dirs"
                    .to_string()
            } else {
                format!(
                    "test:///PATH must be a plain path below {} (libvirt reads it with \
                     uvmmd's rights)",
                    policy.test_dirs.join(", ")
                )
            });
        }
        if !INSTANCE_PATHS.contains(&self.path.as_str()) {
            return refuse(format!(
                "URI path '{}' is not accepted from API clients (expected /system, /session \
                 or /)",
                self.path
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_words() {
        let table = [
            ("qemu:///system", "QEMU/KVM"),
            ("qemu+ssh://kvm1/system", "QEMU/KVM"),
            ("test:///default", "libvirt's test driver"),
            ("test+unix:///default?socket=/x", "libvirt's test driver"),
            ("xen://xen1/", "Xen"),
            ("libxl:///system", "Xen"),
            ("lxc:///", "LXC containers"),
        ];
        for (uri, want) in table {
            assert_eq!(HostUri::parse(uri).unwrap().driver_words(), want, "{uri}");
        }
    }

    #[test]
    fn valid_uris() {
        let table = [
            ("qemu:///system", "qemu", None, None, "localhost"),
            (
                "qemu+ssh://root@kvm1.example.com/system",
                "qemu",
                Some("ssh"),
                Some("kvm1.example.com"),
                "kvm1.example.com",
            ),
            (
                "qemu+tcp://127.0.0.1:16509/system",
                "qemu",
                Some("tcp"),
                Some("127.0.0.1"),
                "localhost",
            ),
            (
                "xen://xen1.example.com/",
                "xen",
                None,
                Some("xen1.example.com"),
                "xen1.example.com",
            ),
            ("test:///default", "test", None, None, "default"),
            (
                "test:///opt/uvmm/demo/alpha.xml",
                "test",
                None,
                None,
                "alpha",
            ),
            (
                "test+unix:///default?socket=/tmp/x/libvirt-sock",
                "test",
                Some("unix"),
                None,
                "default",
            ),
            (
                "qemu+tls://[fe80::1]:16514/system",
                "qemu",
                Some("tls"),
                Some("fe80::1"),
                "fe80::1",
            ),
        ];
        for (uri, driver, transport, host, id) in table {
            let u = HostUri::parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
            assert_eq!(u.driver, driver, "{uri}");
            assert_eq!(u.transport.as_deref(), transport, "{uri}");
            assert_eq!(u.host.as_deref(), host, "{uri}");
            assert_eq!(u.default_id(), id, "{uri}");
        }
    }

    #[test]
    fn invalid_uris() {
        for bad in [
            "",
            "qemu",
            "qemu:/system",
            "http://example.com/",
            "qemu+smtp://x/system",
            "qemu:// /system",
            "qemu:///sys tem",
            "test://ho$t/default",
            "qemu:///system\n",
        ] {
            assert!(HostUri::parse(bad).is_err(), "{bad:?} accepted");
        }
        let e = HostUri::parse("http://x/").unwrap_err().to_string();
        assert!(e.contains("unknown hypervisor driver 'http'"), "{e}");
    }

    #[test]
    fn runtime_policy() {
        let strict = RuntimeHostPolicy {
            allow_local_programs: false,
            test_dirs: vec!["/var/lib/uvmm/test-hosts".into()],
        };
        let lax = RuntimeHostPolicy {
            allow_local_programs: true,
            test_dirs: vec![],
        };
        // (uri, accepted when strict, accepted when local programs are allowed)
        let table = [
            ("qemu:///system", true, true),
            ("qemu:///session", true, true),
            ("qemu+ssh://root@kvm1.example.com/system", true, true),
            (
                "qemu+ssh://kvm1/system?no_verify=1&sshauth=privkey",
                true,
                true,
            ),
            (
                "qemu+tls://kvm1:16514/system?tls_priority=NORMAL",
                true,
                true,
            ),
            ("xen://xen1.example.com/", true, true),
            ("xen://xen1.example.com", true, true),
            ("test:///default", true, true),
            ("test:///var/lib/uvmm/test-hosts/a.xml", true, false),
            ("test:///var/lib/uvmm/test-hosts/sub/a.xml", true, false),
            ("qemu+ext:///system?command=/tmp/evil", false, true),
            ("qemu+ext:///system", false, true),
            ("qemu+ssh://kvm1/system?command=/tmp/evil", false, true),
            ("qemu+ssh://kvm1/system?netcat=/tmp/nc", false, true),
            ("qemu+unix:///system?socket=/tmp/sock", false, true),
            (
                "qemu+ssh://kvm1/system?keyfile=/root/.ssh/id_rsa",
                false,
                true,
            ),
            ("qemu+tls://kvm1/system?pkipath=/root", false, true),
            (
                "qemu+ssh://kvm1/system?known_hosts=/etc/shadow",
                false,
                true,
            ),
            ("qemu+unix:///system?name=test:///etc/shadow", false, true),
            ("qemu+ssh://kvm1/system?%63ommand=/tmp/evil", false, true),
            ("qemu+ssh://kvm1/system?COMMAND=/tmp/evil", false, true),
            ("qemu+ssh://kvm1/system?x=%zz", false, true),
            ("test:///etc/shadow", false, false),
            (
                "test:///var/lib/uvmm/test-hosts/../../../../etc/shadow",
                false,
                false,
            ),
            ("test:///var/lib/uvmm/test-hosts/%2e%2e/x.xml", false, false),
            ("test:///var/lib/uvmm/test-hosts", false, false),
            ("test:///var/lib/uvmm/test-hostsX/a.xml", false, false),
            ("test:///var/lib/uvmm/test-hosts//a.xml", false, false),
            ("qemu:///embed?root=/etc", false, false),
            ("qemu:///embed", false, false),
            ("qemu+ssh://-oProxyCommand/system", false, false),
            ("qemu+ssh://-v@kvm1/system", false, false),
            ("qemu+ssh://us%65r@kvm1/system", false, false),
        ];
        for (uri, strict_ok, lax_ok) in table {
            let u = HostUri::parse(uri);
            let check = |p: &RuntimeHostPolicy| u.as_ref().map(|u| u.check_runtime(p).is_ok());
            assert_eq!(check(&strict).unwrap_or(false), strict_ok, "strict: {uri}");
            assert_eq!(check(&lax).unwrap_or(false), lax_ok, "lax: {uri}");
        }
        let msg = HostUri::parse("qemu+ext:///system?command=/x")
            .unwrap()
            .check_runtime(&RuntimeHostPolicy::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("allow_local_program_uris"), "{msg}");
    }

    #[test]
    fn paths_under_directories() {
        let dirs = vec!["/srv/iso".to_string(), "/data/".to_string()];
        for (p, ok) in [
            ("/srv/iso/debian.iso", true),
            ("/data/x/y.img", true),
            ("/srv/iso", false),
            ("/srv/isofiles/x", false),
            ("/srv/iso/../../etc/shadow", false),
            ("/srv/iso/./x", false),
            ("/srv/iso//x", false),
            ("/srv/iso/a%2fb", false),
            ("srv/iso/x", false),
            ("/etc/shadow", false),
        ] {
            assert_eq!(path_under(p, &dirs), ok, "{p}");
        }
        assert!(!path_under("/srv/iso/x", &[]));
    }
}
