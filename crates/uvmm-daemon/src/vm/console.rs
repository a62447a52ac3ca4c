//! Where a VM's VNC server listens, for the console proxy (`http/console.rs`).
//!
//! The answer comes only from the VM's live definition on its host (the `<graphics
//! type='vnc'>` element: port, listen address or UNIX socket) and the host's URI: a client
//! never names an address or port, so the proxy cannot be used to probe anything else.

use crate::cache::{Cache, HostEntry, VmEntry};
use crate::error::Error;
use crate::jobs::{Job, JobCtx};
use crate::vm::VmError;
use serde::Serialize;
use uvmm_model::hosts::HostUri;
use uvmm_model::xml::Element;
use uvmm_model::VmState;

/// Where to connect for a VM's VNC console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Endpoint {
    /// A TCP address (an IP or a host name) and port.
    Tcp { host: String, port: u16 },
    /// A UNIX socket on the machine uvmmd runs on.
    Unix { path: String },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Unix { path } => write!(f, "unix:{path}"),
        }
    }
}

/// Why a console cannot be opened (each a `409`, except where noted).
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("VM {name} is {state}: a console needs a running (or paused) VM; start it first")]
    NotRunning { name: String, state: String },
    #[error("the VM has no VNC console; turn it on in the VM's settings (VNC) and restart the VM")]
    NoVnc,
    #[error("{why}")]
    Unreachable { why: String },
    /// `429`: the caller already has that many consoles of this VM open.
    #[error("you already have {limit} consoles of this VM open; close one first")]
    Busy { limit: usize },
    /// `502`: the VNC server did not accept the connection.
    #[error("cannot connect to the VM's VNC server at {endpoint}: {why}")]
    Connect { endpoint: String, why: String },
    #[error(transparent)]
    Vm(#[from] VmError),
}

/// The job: read the live definition and pick the endpoint.
pub struct VncEndpoint;

impl Job for VncEndpoint {
    type Output = Endpoint;
    type Error = ConsoleError;

    fn prepare(&mut self, _: &Cache, _: &HostEntry, vm: Option<&VmEntry>) -> Result<(), Error> {
        if let Some(v) = vm {
            if !matches!(v.state, VmState::Running | VmState::Paused) {
                return Err(ConsoleError::NotRunning {
                    name: v.name.clone(),
                    state: v.state.to_string(),
                }
                .into());
            }
        }
        Ok(())
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<Endpoint, ConsoleError> {
        // Without secrets: the password stays on the host (the client types it).
        let xml = ctx
            .hv
            .domain_xml(ctx.at.vm(), false, false)
            .map_err(VmError::from)?;
        endpoint(&xml, &ctx.at.host)
    }
}

fn is_wildcard(addr: &str) -> bool {
    matches!(addr, "" | "0.0.0.0" | "::" | "[::]")
}

fn is_loopback(addr: &str) -> bool {
    addr == "localhost"
        || addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The endpoint of the live definition `xml` of a VM on `host`.
pub fn endpoint(xml: &str, host: &HostUri) -> Result<Endpoint, ConsoleError> {
    let root =
        uvmm_model::xml::parse_root(xml, "domain").map_err(|e| VmError::Unreadable(Box::new(e)))?;
    let g = root
        .child("devices")
        .and_then(|d| {
            d.children_named("graphics")
                .find(|g| g.attr("type") == Some("vnc"))
        })
        .ok_or(ConsoleError::NoVnc)?;
    let listen: Option<&Element> = g.children_named("listen").next();
    let socket = g.attr("socket").or_else(|| {
        listen
            .filter(|l| l.attr("type") == Some("socket"))
            .and_then(|l| l.attr("socket"))
    });
    let remote = || host.host.clone().filter(|_| !host.is_local());
    if let Some(path) = socket {
        return match remote() {
            None => Ok(Endpoint::Unix {
                path: path.to_string(),
            }),
            Some(h) => Err(ConsoleError::Unreachable {
                why: format!(
                    "the VM's VNC server listens only on a UNIX socket of host {h}, which uvmmd cannot reach; give the VM a VNC listen address (e.g. 0.0.0.0) and restart it"
                ),
            }),
        };
    }
    if listen.is_some_and(|l| l.attr("type") == Some("none")) {
        return Err(ConsoleError::Unreachable {
            why: "the VM's VNC server has no listener (listen type 'none'); give it a listen address and restart the VM".into(),
        });
    }
    let port = g
        .attr("port")
        .and_then(|p| p.parse::<i32>().ok())
        .filter(|p| *p > 0)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| ConsoleError::Unreachable {
            why: "the VM's VNC server has no port yet (the live definition shows none)".into(),
        })?;
    let addr = g
        .attr("listen")
        .or_else(|| listen.and_then(|l| l.attr("address")))
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let host = match remote() {
        None if is_wildcard(addr) => "127.0.0.1".to_string(),
        None => addr.to_string(),
        Some(h) if is_wildcard(addr) => h,
        Some(h) if is_loopback(addr) => {
            return Err(ConsoleError::Unreachable {
                why: format!(
                    "the VM's VNC server listens only on the loopback address of host {h} ({addr}), which uvmmd cannot reach; set the VM's VNC listen address to 0.0.0.0 or an address of {h} and restart it"
                ),
            })
        }
        Some(_) => addr.to_string(),
    };
    Ok(Endpoint::Tcp { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom(graphics: &str) -> String {
        format!("<domain type='qemu'><name>v</name><devices>{graphics}</devices></domain>")
    }

    #[test]
    fn endpoints_come_from_the_live_definition_and_the_host() {
        let local = HostUri::parse("qemu:///system").unwrap();
        let tcp_local = HostUri::parse("qemu+tcp://127.0.0.1:16509/system").unwrap();
        let remote = HostUri::parse("qemu+ssh://root@kvm1.example/system").unwrap();
        let tcp = |h: &str, p| {
            Ok(Endpoint::Tcp {
                host: h.into(),
                port: p,
            })
        };
        let cases: &[(&str, &HostUri, Result<Endpoint, &str>)] = &[
            ("<graphics type='vnc' port='5900' listen='127.0.0.1'/>", &local, tcp("127.0.0.1", 5900)),
            ("<graphics type='vnc' port='5901' listen='0.0.0.0'/>", &local, tcp("127.0.0.1", 5901)),
            ("<graphics type='vnc' port='5902'/>", &tcp_local, tcp("127.0.0.1", 5902)),
            ("<graphics type='vnc' port='5903'><listen type='address' address='::1'/></graphics>", &local, tcp("::1", 5903)),
            ("<graphics type='vnc' port='5904' listen='0.0.0.0'/>", &remote, tcp("kvm1.example", 5904)),
            ("<graphics type='vnc' port='5905' listen='192.0.2.7'/>", &remote, tcp("192.0.2.7", 5905)),
            ("<graphics type='spice' port='5906'/><graphics type='vnc' port='5907' listen='0.0.0.0'/>", &local, tcp("127.0.0.1", 5907)),
            ("<graphics type='vnc' socket='/run/vnc.sock'/>", &local, Ok(Endpoint::Unix { path: "/run/vnc.sock".into() })),
            ("<graphics type='vnc'><listen type='socket' socket='/run/l.sock'/></graphics>", &local, Ok(Endpoint::Unix { path: "/run/l.sock".into() })),
            // Refused, in words.
            ("<graphics type='vnc' port='5908' listen='127.0.0.1'/>", &remote, Err("loopback address of host kvm1.example")),
            ("<graphics type='vnc' socket='/run/vnc.sock'/>", &remote, Err("UNIX socket of host kvm1.example")),
            ("<graphics type='vnc' port='-1' autoport='yes'/>", &local, Err("no port")),
            ("<graphics type='vnc'><listen type='none'/></graphics>", &local, Err("no listener")),
            ("<graphics type='spice' port='5909'/>", &local, Err("no VNC console")),
            ("", &local, Err("no VNC console")),
        ];
        for (g, host, want) in cases {
            let got = endpoint(&dom(g), host);
            match (want, got) {
                (Ok(w), Ok(e)) => assert_eq!(&e, w, "{g}"),
                (Err(w), Err(e)) => assert!(e.to_string().contains(w), "{g}: {e}"),
                (w, e) => panic!("{g}: wanted {w:?}, got {e:?}"),
            }
        }
        assert!(endpoint("<nope/>", &local).is_err());
    }

    #[test]
    fn endpoints_print_as_addresses() {
        let e = |host: &str| {
            Endpoint::Tcp {
                host: host.into(),
                port: 5900,
            }
            .to_string()
        };
        assert_eq!(e("127.0.0.1"), "127.0.0.1:5900");
        assert_eq!(e("::1"), "[::1]:5900");
        assert_eq!(Endpoint::Unix { path: "/s".into() }.to_string(), "unix:/s");
    }
}
