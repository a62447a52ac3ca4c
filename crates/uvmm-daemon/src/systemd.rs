//! systemd integration without libsystemd: the readiness notification of `Type=notify`
//! units (the sd_notify protocol: one datagram with `KEY=VALUE` lines sent to the UNIX
//! socket named by `$NOTIFY_SOCKET`), and knowing that systemd supervises the process.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

/// Where systemd listens for notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyAddr {
    /// A socket file, e.g. `/run/systemd/notify`.
    Path(PathBuf),
    /// A Linux abstract socket: `$NOTIFY_SOCKET` starts with `@`, the name follows.
    Abstract(Vec<u8>),
}

impl NotifyAddr {
    /// Parse a `$NOTIFY_SOCKET` value. systemd 252 (Debian 12) sends absolute paths or
    /// `@abstract` names; anything else (newer systemd's `vsock:`) is refused with the
    /// reason rather than guessed at.
    pub fn parse(value: &OsStr) -> Result<NotifyAddr, String> {
        let bytes = value.as_bytes();
        match bytes.first() {
            Some(b'/') => Ok(NotifyAddr::Path(PathBuf::from(value))),
            Some(b'@') if bytes.len() > 1 => Ok(NotifyAddr::Abstract(bytes[1..].to_vec())),
            _ => Err(format!(
                "NOTIFY_SOCKET={}: not an absolute path or @abstract socket name",
                value.to_string_lossy()
            )),
        }
    }
}

/// The readiness channel to systemd, if systemd asked for one.
#[derive(Debug, Default)]
pub struct Notifier {
    addr: Option<Result<NotifyAddr, String>>,
}

impl Notifier {
    /// Take `$NOTIFY_SOCKET` from the environment and remove it there, so that the
    /// programs uvmmd starts (ssh for `qemu+ssh://` hosts, qemu-img) cannot send systemd
    /// notifications in uvmmd's name. Must run before any thread is started (changing the
    /// environment is not thread-safe).
    pub fn from_env() -> Notifier {
        let Some(value) = std::env::var_os("NOTIFY_SOCKET").filter(|v| !v.is_empty()) else {
            return Notifier::default();
        };
        std::env::remove_var("NOTIFY_SOCKET");
        Notifier {
            addr: Some(NotifyAddr::parse(&value)),
        }
    }

    #[cfg(test)]
    fn to(addr: NotifyAddr) -> Notifier {
        Notifier {
            addr: Some(Ok(addr)),
        }
    }

    /// systemd runs uvmmd as a `Type=notify` service and waits for READY=1 from this very
    /// process. Detaching (`-d`) would then be wrong: the forked child is not the main
    /// process systemd knows, so its notification would be refused and the start would
    /// time out. `$INVOCATION_ID` alone is not used: it is set for every unit type,
    /// including `Type=forking`, where detaching is exactly what systemd expects.
    pub fn supervised(&self) -> bool {
        self.addr.is_some()
    }

    /// Send `state` (newline-separated `KEY=VALUE` assignments). Without `$NOTIFY_SOCKET`
    /// this does nothing.
    pub fn notify(&self, state: &str) -> Result<(), String> {
        let addr = match &self.addr {
            None => return Ok(()),
            Some(Err(e)) => return Err(e.clone()),
            Some(Ok(a)) => a,
        };
        let sock = UnixDatagram::unbound().map_err(|e| format!("notify socket: {e}"))?;
        let sent = match addr {
            NotifyAddr::Path(p) => sock.send_to(state.as_bytes(), p),
            NotifyAddr::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let sa = std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .map_err(|e| format!("notify socket: {e}"))?;
                sock.send_to_addr(state.as_bytes(), &sa)
            }
        };
        match sent {
            Ok(n) if n == state.len() => Ok(()),
            Ok(n) => Err(format!("notify socket took {n} of {} bytes", state.len())),
            Err(e) => Err(format!("cannot notify systemd: {e}")),
        }
    }

    /// The sockets accept connections: tell systemd the start is done.
    pub fn ready(&self, status: &str) -> Result<(), String> {
        let status = status.replace('\n', " ");
        self.notify(&format!(
            "READY=1\nMAINPID={}\nSTATUS={status}",
            std::process::id()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn notify_socket_values() {
        let table: [(&str, Option<NotifyAddr>); 6] = [
            (
                "/run/systemd/notify",
                Some(NotifyAddr::Path("/run/systemd/notify".into())),
            ),
            (
                "@/org/freedesktop/systemd1/notify/123",
                Some(NotifyAddr::Abstract(
                    b"/org/freedesktop/systemd1/notify/123".to_vec(),
                )),
            ),
            ("@", None),
            ("relative/path", None),
            ("vsock:2:1234", None),
            ("", None),
        ];
        for (value, want) in table {
            assert_eq!(NotifyAddr::parse(OsStr::new(value)).ok(), want, "{value}");
        }
    }

    fn received(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn ready_reaches_a_socket_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to(NotifyAddr::Path(path));
        assert!(n.supervised());
        n.ready("2 hosts\nand more").unwrap();
        let msg = received(&sock);
        assert!(msg.starts_with("READY=1\n"), "{msg}");
        assert!(
            msg.contains(&format!("MAINPID={}", std::process::id())),
            "{msg}"
        );
        assert!(msg.ends_with("STATUS=2 hosts and more"), "{msg}");
    }

    #[test]
    fn ready_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("uvmm-test-notify-{}", std::process::id());
        let sa = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&sa).unwrap();
        let value = format!("@{name}");
        let addr = NotifyAddr::parse(OsStr::new(&value)).unwrap();
        Notifier::to(addr).notify("STOPPING=1").unwrap();
        assert_eq!(received(&sock), "STOPPING=1");
    }

    #[test]
    fn without_systemd_nothing_is_sent_and_errors_are_reported() {
        let n = Notifier::default();
        assert!(!n.supervised());
        assert!(n.ready("x").is_ok());
        let dir = tempfile::tempdir().unwrap();
        let gone = Notifier::to(NotifyAddr::Path(dir.path().join("absent")));
        let e = gone.ready("x").unwrap_err();
        assert!(e.contains("cannot notify systemd"), "{e}");
        let bad = Notifier {
            addr: Some(NotifyAddr::parse(OsStr::new("vsock:1:2"))),
        };
        assert!(bad.supervised());
        assert!(bad.ready("x").unwrap_err().contains("vsock"));
    }
}
