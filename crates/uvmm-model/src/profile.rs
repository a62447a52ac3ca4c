//! VM profiles: templates for new VMs (name prefix, architecture, sizes, bus types, network,
//! VNC, boot order, RTC, Windows driver ISO, Xen PV boot loader).
//!
//! Four profiles are built in (the files in `profiles/` of the repository); TOML files in
//! `/etc/uvmm/profiles.d/` add profiles or replace built-in ones of the same name.

use crate::units::parse_size;
use serde::{Deserialize, Serialize};

pub const BUILTIN: [(&str, &str); 4] = [
    (
        "windows.toml",
        include_str!("../../../profiles/windows.toml"),
    ),
    ("linux.toml", include_str!("../../../profiles/linux.toml")),
    (
        "linux-xen-pv.toml",
        include_str!("../../../profiles/linux-xen-pv.toml"),
    ),
    ("other.toml", include_str!("../../../profiles/other.toml")),
];

fn default_domain_type() -> String {
    "kvm".into()
}
fn default_os_type() -> String {
    "hvm".into()
}
fn one() -> u32 {
    1
}
fn default_memory() -> String {
    "1GiB".into()
}
fn default_format() -> String {
    "qcow2".into()
}
fn default_disk_bus() -> String {
    "virtio".into()
}
fn yes() -> bool {
    true
}
fn default_rtc() -> String {
    "utc".into()
}
fn default_listen() -> String {
    "127.0.0.1".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Unique name, e.g. `Windows`.
    pub name: String,
    pub description: Option<String>,
    /// Suggested prefix of VM names.
    pub name_prefix: Option<String>,
    /// Wanted domain type: `kvm`, `qemu` or `xen`. A KVM profile falls back to `qemu` on a
    /// host without KVM.
    #[serde(default = "default_domain_type")]
    pub domain_type: String,
    /// `hvm` (full virtualisation) or `xen` (Xen paravirtualisation).
    #[serde(default = "default_os_type")]
    pub os_type: String,
    /// `x86_64`, `i686`, ...; default: the host's.
    pub arch: Option<String>,
    #[serde(default = "one")]
    pub vcpus: u32,
    /// Memory, e.g. `2GiB`.
    #[serde(default = "default_memory")]
    pub memory: String,
    /// Size of the first disk, e.g. `20GiB`; no disk when absent.
    pub disk_size: Option<String>,
    /// `raw` or `qcow2`.
    #[serde(default = "default_format")]
    pub disk_format: String,
    /// `virtio`, `xen` (paravirtual) or `ide`, `sata`, `scsi` (emulated).
    #[serde(default = "default_disk_bus")]
    pub disk_bus: String,
    /// Bus of CD-ROM drives (`sata`, `ide`, `scsi`); HVM only.
    pub cdrom_bus: Option<String>,
    /// `virtio`, `e1000`, `rtl8139`, `netfront`.
    pub nic_model: Option<String>,
    /// `network=NAME` or `bridge=NAME`; no NIC when absent.
    pub network: Option<String>,
    #[serde(default = "yes")]
    pub vnc: bool,
    #[serde(default = "default_listen")]
    pub vnc_listen: String,
    pub keymap: Option<String>,
    /// HVM boot order: `hd`, `cdrom`, `network`, `fd`.
    #[serde(default)]
    pub boot: Vec<String>,
    /// `utc` or `localtime` (Windows).
    #[serde(default = "default_rtc")]
    pub rtc: String,
    #[serde(default)]
    pub hyperv: bool,
    #[serde(default)]
    pub pae: bool,
    /// `host-model`, `host-passthrough` or a named model.
    pub cpu_model: Option<String>,
    /// Driver ISO attached as a second CD-ROM (virtio drivers for Windows on KVM).
    pub driver_iso: Option<String>,
    /// Boot loader of Xen PV guests, e.g. `/usr/bin/pygrub`.
    pub bootloader: Option<String>,
    pub bootloader_args: Option<String>,
    /// Where a listed profile comes from: absent = built in or a local profile file,
    /// `directory:<DN>` = that LDAP entry (directory mode). Set by uvmmd; a profile file
    /// that sets it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile {file}: {message}")]
pub struct ProfileError {
    pub file: String,
    pub message: String,
}

impl Profile {
    pub fn parse(file: &str, text: &str) -> Result<Profile, ProfileError> {
        let p: Profile = toml::from_str(text).map_err(|e| ProfileError {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        if p.origin.is_some() {
            return Err(ProfileError {
                file: file.to_string(),
                message: "origin is set by uvmmd (where a profile comes from), not in a file"
                    .into(),
            });
        }
        p.validate().map_err(|message| ProfileError {
            file: file.to_string(),
            message,
        })?;
        Ok(p)
    }

    /// Check a profile built in code (e.g. converted from a directory entry) by the same
    /// rules as a profile file; `source` names it in the error.
    pub fn checked(self, source: &str) -> Result<Profile, ProfileError> {
        self.validate().map_err(|message| ProfileError {
            file: source.to_string(),
            message,
        })?;
        Ok(self)
    }

    pub fn is_xen_pv(&self) -> bool {
        self.os_type == "xen"
    }

    pub fn memory_kib(&self) -> u64 {
        parse_size(&self.memory).map(|b| b / 1024).unwrap_or(0)
    }

    pub fn disk_bytes(&self) -> Option<u64> {
        self.disk_size.as_deref().and_then(|s| parse_size(s).ok())
    }

    /// `(kind, source)` of the network, e.g. `("network", "default")`.
    pub fn network_source(&self) -> Option<(String, String)> {
        self.network.as_deref().and_then(parse_network)
    }

    fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name must not be empty".into());
        }
        if !matches!(self.domain_type.as_str(), "kvm" | "qemu" | "xen") {
            return Err(format!(
                "domain_type '{}' (expected kvm, qemu or xen)",
                self.domain_type
            ));
        }
        if !matches!(self.os_type.as_str(), "hvm" | "xen") {
            return Err(format!("os_type '{}' (expected hvm or xen)", self.os_type));
        }
        if self.vcpus == 0 || self.vcpus > 1024 {
            return Err(format!("vcpus {} out of range 1..1024", self.vcpus));
        }
        let mem = parse_size(&self.memory).map_err(|e| format!("memory: {e}"))?;
        if mem < 16 << 20 {
            return Err("memory must be at least 16MiB".into());
        }
        if let Some(d) = &self.disk_size {
            let b = parse_size(d).map_err(|e| format!("disk_size: {e}"))?;
            if b == 0 {
                return Err("disk_size must not be zero".into());
            }
        }
        if !matches!(self.disk_format.as_str(), "raw" | "qcow2") {
            return Err(format!(
                "disk_format '{}' (expected raw or qcow2)",
                self.disk_format
            ));
        }
        crate::targets::bus_prefix(&self.disk_bus).map_err(|e| e.to_string())?;
        if let Some(b) = &self.cdrom_bus {
            crate::targets::bus_prefix(b).map_err(|e| format!("cdrom_bus: {e}"))?;
        }
        if let Some(n) = &self.network {
            parse_network(n)
                .ok_or_else(|| format!("network '{n}' (expected network=NAME or bridge=NAME)"))?;
        }
        for b in &self.boot {
            if !matches!(b.as_str(), "hd" | "cdrom" | "network" | "fd") {
                return Err(format!(
                    "boot device '{b}' (expected hd, cdrom, network or fd)"
                ));
            }
        }
        if !matches!(self.rtc.as_str(), "utc" | "localtime") {
            return Err(format!("rtc '{}' (expected utc or localtime)", self.rtc));
        }
        if self.is_xen_pv() && self.bootloader.is_none() {
            return Err("a Xen PV profile needs a bootloader (e.g. /usr/bin/pygrub)".into());
        }
        Ok(())
    }
}

/// Parse `network=NAME`, `bridge=NAME` or `direct=DEV`.
pub fn parse_network(spec: &str) -> Option<(String, String)> {
    let (kind, name) = spec.split_once('=')?;
    let ok_name = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    (matches!(kind, "network" | "bridge" | "direct") && ok_name)
        .then(|| (kind.to_string(), name.to_string()))
}

/// The built-in profiles.
pub fn builtin() -> Vec<Profile> {
    BUILTIN
        .iter()
        .map(|(f, t)| Profile::parse(f, t).expect("built-in profiles are valid"))
        .collect()
}

/// Built-in profiles overlaid with local ones (same name replaces).
pub fn overlay(local: Vec<Profile>) -> Vec<Profile> {
    let mut all = builtin();
    for p in local {
        match all
            .iter_mut()
            .find(|b| b.name.eq_ignore_ascii_case(&p.name))
        {
            Some(slot) => *slot = p,
            None => all.push(p),
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_cannot_claim_an_origin() {
        let e =
            Profile::parse("x.toml", "name = \"X\"\norigin = \"directory:cn=x\"\n").unwrap_err();
        assert!(e.message.contains("origin"), "{e}");
        assert_eq!(
            Profile::parse("x.toml", "name = \"X\"\n").unwrap().origin,
            None
        );
    }

    #[test]
    fn builtin_profiles_are_valid() {
        let all = builtin();
        let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Windows", "Linux", "Linux Xen PV", "Other"]);
        let win = &all[0];
        assert!(win.hyperv && win.rtc == "localtime" && win.driver_iso.is_some());
        assert_eq!(win.disk_bus, "virtio");
        assert!(all[2].is_xen_pv());
        assert_eq!(all[3].disk_bus, "ide");
        assert_eq!(win.memory_kib(), 4 * 1024 * 1024);
    }

    #[test]
    fn invalid_profiles_are_refused() {
        let base = "name = \"x\"\n";
        let table = [
            ("name = \"\"", "name must not be empty"),
            ("name = \"x\"\ndomain_type = \"vmware\"", "domain_type"),
            ("name = \"x\"\nos_type = \"pv\"", "os_type"),
            ("name = \"x\"\nvcpus = 0", "vcpus"),
            ("name = \"x\"\nmemory = \"1MiB\"", "at least 16MiB"),
            ("name = \"x\"\nmemory = \"lots\"", "memory"),
            ("name = \"x\"\ndisk_size = \"0\"", "zero"),
            ("name = \"x\"\ndisk_format = \"vmdk\"", "disk_format"),
            ("name = \"x\"\ndisk_bus = \"nvme2\"", "unknown disk bus"),
            ("name = \"x\"\nnetwork = \"br0\"", "network"),
            ("name = \"x\"\nboot = [\"usb\"]", "boot device"),
            ("name = \"x\"\nrtc = \"gmt\"", "rtc"),
            ("name = \"x\"\nos_type = \"xen\"", "bootloader"),
            ("name = \"x\"\ncolour = \"red\"", "unknown field"),
        ];
        assert!(Profile::parse("base.toml", base).is_ok());
        for (text, want) in table {
            let err = Profile::parse("t.toml", text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn local_profiles_overlay_builtin_ones() {
        let mine = Profile::parse("l.toml", "name = \"linux\"\nvcpus = 8\n").unwrap();
        let extra = Profile::parse("e.toml", "name = \"BSD\"\n").unwrap();
        let all = overlay(vec![mine, extra]);
        assert_eq!(all.len(), 5);
        assert_eq!(all.iter().find(|p| p.name == "linux").unwrap().vcpus, 8);
    }

    #[test]
    fn network_specs() {
        assert_eq!(
            parse_network("bridge=br0"),
            Some(("bridge".into(), "br0".into()))
        );
        assert_eq!(
            parse_network("network=default"),
            Some(("network".into(), "default".into()))
        );
        for bad in ["br0", "bridge=", "vlan=3", "bridge=a b", "bridge=x'y"] {
            assert_eq!(parse_network(bad), None, "{bad}");
        }
    }
}
