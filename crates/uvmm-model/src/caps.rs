//! Host capabilities (`virConnectGetCapabilities`): which guest OS types, architectures,
//! domain types and machine types a host offers.

use crate::xml::{self, XmlError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GuestCaps {
    /// `hvm`, `xen` (PV), `linux`, `exe`, ...
    pub os_type: String,
    pub arch: String,
    /// Domain types usable for this guest: `qemu`, `kvm`, `xen`, `test`.
    pub domain_types: Vec<String>,
    /// Machine types (first is the default), e.g. `pc-i440fx-7.2`, `q35`.
    pub machines: Vec<String>,
    pub emulator: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostCaps {
    pub host_arch: Option<String>,
    pub guests: Vec<GuestCaps>,
}

pub fn parse_capabilities(input: &str) -> Result<HostCaps, XmlError> {
    let root = xml::parse_root(input, "capabilities")?;
    let host_arch = root.find("host/cpu").and_then(|c| c.child_text("arch"));
    let mut guests = Vec::new();
    for g in root.children_named("guest") {
        let arch_el = g.child("arch");
        let mut machines: Vec<String> = Vec::new();
        let mut push_machines = |el: &xml::Element| {
            for m in el.children_named("machine") {
                let name = m.text().trim().to_string();
                if !name.is_empty() && !machines.contains(&name) {
                    machines.push(name);
                }
            }
        };
        if let Some(a) = arch_el {
            push_machines(a);
        }
        let mut domain_types = Vec::new();
        if let Some(a) = arch_el {
            for d in a.children_named("domain") {
                if let Some(t) = d.attr("type") {
                    if !domain_types.iter().any(|x| x == t) {
                        domain_types.push(t.to_string());
                    }
                }
                push_machines(d);
            }
        }
        guests.push(GuestCaps {
            os_type: g.child_text("os_type").unwrap_or_default(),
            arch: arch_el
                .and_then(|a| a.attr("name"))
                .unwrap_or("")
                .to_string(),
            domain_types,
            machines,
            emulator: arch_el.and_then(|a| a.child_text("emulator")),
        });
    }
    Ok(HostCaps { host_arch, guests })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qemu_and_test_caps() {
        let xml = r#"<capabilities><host><cpu><arch>x86_64</arch></cpu></host>
          <guest><os_type>hvm</os_type><arch name='x86_64'><wordsize>64</wordsize>
            <emulator>/usr/bin/qemu-system-x86_64</emulator>
            <machine maxCpus='255'>pc-i440fx-7.2</machine><machine canonical='pc-i440fx-7.2' maxCpus='255'>pc</machine>
            <domain type='qemu'/><domain type='kvm'><machine>pc-q35-7.2</machine></domain></arch></guest>
          <guest><os_type>xen</os_type><arch name='x86_64'><domain type='xen'/></arch></guest>
        </capabilities>"#;
        let caps = parse_capabilities(xml).unwrap();
        assert_eq!(caps.host_arch.as_deref(), Some("x86_64"));
        assert_eq!(caps.guests.len(), 2);
        assert_eq!(caps.guests[0].domain_types, vec!["qemu", "kvm"]);
        assert_eq!(
            caps.guests[0].machines,
            vec!["pc-i440fx-7.2", "pc", "pc-q35-7.2"]
        );
        assert_eq!(caps.guests[1].os_type, "xen");
        assert!(parse_capabilities("<domain/>").is_err());
    }
}
