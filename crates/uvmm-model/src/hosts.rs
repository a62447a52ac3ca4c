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
        if uri.is_empty()
            || uri.len() > 1024
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
