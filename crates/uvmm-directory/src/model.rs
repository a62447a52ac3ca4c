//! What uvmm reads from the directory, as typed values: hosts (with their libvirt URIs),
//! profiles (every attribute of UCS's `uvmm/profile`), VM notes (UCS's `uvmm/info`) and
//! groups. Everything here is pure: raw entries in, typed values out, so the rules are
//! tested as tables without a server.

use crate::config::DirectoryConfig;
use crate::escape::{fill_template, verbatim};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uvmm_model::profile::Profile;

/// One entry as the directory sent it. Attribute names are lower-cased (LDAP attribute
/// names are case-insensitive), values are kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RawEntry {
    pub dn: String,
    pub attrs: BTreeMap<String, Vec<String>>,
}

impl RawEntry {
    pub fn new(dn: impl Into<String>) -> Self {
        RawEntry {
            dn: dn.into(),
            attrs: BTreeMap::new(),
        }
    }

    /// Builder for tests and fixtures.
    pub fn with(mut self, name: &str, values: &[&str]) -> Self {
        self.attrs.insert(
            name.to_ascii_lowercase(),
            values.iter().map(|v| v.to_string()).collect(),
        );
        self
    }

    pub fn all(&self, name: &str) -> &[String] {
        self.attrs
            .get(&name.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The first non-empty value.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.all(name)
            .iter()
            .map(String::as_str)
            .find(|v| !v.is_empty())
    }

    /// What changes whenever the entry changes: `entryCSN` (OpenLDAP), else
    /// `modifyTimestamp`. `None` if the server sends neither; then the entry is always
    /// re-read.
    pub fn stamp(&self) -> Option<&str> {
        self.first("entryCSN")
            .or_else(|| self.first("modifyTimestamp"))
    }
}

/// A virtualization host found in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    pub dn: String,
    pub cn: String,
    pub fqdn: String,
    /// The libvirt URIs of this host, one per matching service (a host can offer KVM and
    /// Xen), sorted.
    pub uris: Vec<String>,
    pub services: Vec<String>,
    /// `univentionVirtualMachineManageableBy`: the uvmmd FQDNs allowed to manage it (empty =
    /// every uvmmd).
    pub manageable_by: Vec<String>,
}

/// A UCS UVMM profile with every attribute of UDM's `uvmm/profile`, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DirectoryProfile {
    pub dn: String,
    /// `cn`: the profile's name.
    pub name: String,
    pub name_prefix: Option<String>,
    /// `automatic`, `x86_64` or `i686`.
    pub arch: Option<String>,
    /// `kvm-hvm` (UCS 4), earlier also `xen-hvm`, `xen-xen`; uvmm adds `qemu-hvm`.
    pub virttech: Option<String>,
    pub cpus: Option<String>,
    pub cpu_model: Option<String>,
    /// A UVMM capacity, e.g. `2048MB`, `1.5 GiB`, `1073741824`.
    pub ram: Option<String>,
    pub diskspace: Option<String>,
    /// `default`, `none`, `writethrough`, `writeback`, `directsync`, `unsafe`.
    pub driver_cache: Option<String>,
    /// Bridge name (`br0`) in UCS; uvmm also takes `network=NAME` / `bridge=NAME`.
    pub interface: Option<String>,
    pub vnc: Option<String>,
    pub kblayout: Option<String>,
    pub kernel: Option<String>,
    pub kernel_parameter: Option<String>,
    pub initramfs: Option<String>,
    /// `univentionVirtualMachineAdvancedKernelConfig`: TRUE = kernel/initrd given here,
    /// FALSE = pygrub (Xen PV).
    pub advanced_kernel_config: Option<String>,
    /// Boot devices in order (`hd`, `cdrom`, `network`), stored comma-separated.
    pub boot_devices: Vec<String>,
    pub os: Option<String>,
    pub pv_disk: Option<String>,
    pub pv_interface: Option<String>,
    pub pv_cdrom: Option<String>,
    /// `utc` or `localtime`.
    pub rtc_offset: Option<String>,
    /// uvmm's own extension (`uvmmProfileDiskFormat`): `raw` or `qcow2`.
    pub disk_format: Option<String>,
    /// uvmm's own extension (`description` via `uvmmProfileExtension`).
    pub description: Option<String>,
}

/// The LDAP attribute of each profile field (UCS's `uvmm/profile` mapping, verified
/// against UDM's `profile.py`).
pub const PROFILE_ATTRIBUTES: [&str; 25] = [
    "cn",
    "univentionVirtualMachineProfileNamePrefix",
    "univentionVirtualMachineProfileArch",
    "univentionVirtualMachineProfileVirtTech",
    "univentionVirtualMachineProfileCPUs",
    "univentionVirtualMachineProfileCPUModel",
    "univentionVirtualMachineProfileRAM",
    "univentionVirtualMachineProfileDiskspace",
    "univentionVirtualMachineProfileDriverCache",
    "univentionVirtualMachineProfileInterface",
    "univentionVirtualMachineProfileVNC",
    "univentionVirtualMachineProfileKBLayout",
    "univentionVirtualMachineProfileKernel",
    "univentionVirtualMachineProfileKernelParameter",
    "univentionVirtualMachineProfileInitRAMfs",
    "univentionVirtualMachineAdvancedKernelConfig",
    "univentionVirtualMachineProfileBootDevices",
    "univentionVirtualMachineProfileOS",
    "univentionVirtualMachineProfilePVDisk",
    "univentionVirtualMachineProfilePVInterface",
    "univentionVirtualMachineProfilePVCDROM",
    "univentionVirtualMachineProfileRTCOffset",
    "uvmmProfileDiskFormat",
    "description",
    "objectClass",
];

pub const HOST_ATTRIBUTES: [&str; 4] = [
    "cn",
    "associatedDomain",
    "univentionVirtualMachineManageableBy",
    "objectClass",
];

pub const NOTE_ATTRIBUTES: [&str; 5] = [
    ATTR_UUID,
    ATTR_DESCRIPTION,
    ATTR_CONTACT,
    ATTR_OS,
    ATTR_PROFILE_REF,
];
pub const ATTR_UUID: &str = "univentionVirtualMachineUUID";
pub const ATTR_DESCRIPTION: &str = "univentionVirtualMachineDescription";
pub const ATTR_CONTACT: &str = "univentionVirtualMachineContact";
pub const ATTR_OS: &str = "univentionVirtualMachineOS";
pub const ATTR_PROFILE_REF: &str = "univentionVirtualMachineProfileRef";

pub const GROUP_ATTRIBUTES: [&str; 4] = ["cn", "memberUid", "member", "uniqueMember"];

/// The four things uvmm keeps about a VM in the directory (UCS `uvmm/info`). `None` = not
/// set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NoteValues {
    pub description: Option<String>,
    pub contact: Option<String>,
    pub os: Option<String>,
    /// DN of the profile the VM was made from (UCS stores the DN).
    pub profile_ref: Option<String>,
}

/// A VM note as read from the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// The VM's UUID as stored (`univentionVirtualMachineUUID`).
    pub uuid: String,
    pub dn: String,
    pub values: NoteValues,
    /// `modifyTimestamp` (GeneralizedTime) of the entry, for the conflict rule.
    pub modified: Option<String>,
}

/// An edit of a note: `None` leaves a field alone, `Some("")` clears it, `Some(v)` sets it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteEdit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_ref: Option<String>,
}

/// One field of a note, for edits and conflict reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteField {
    Description,
    Contact,
    Os,
    ProfileRef,
}

impl NoteField {
    pub const ALL: [NoteField; 4] = [
        NoteField::Description,
        NoteField::Contact,
        NoteField::Os,
        NoteField::ProfileRef,
    ];

    pub fn attribute(self) -> &'static str {
        match self {
            NoteField::Description => ATTR_DESCRIPTION,
            NoteField::Contact => ATTR_CONTACT,
            NoteField::Os => ATTR_OS,
            NoteField::ProfileRef => ATTR_PROFILE_REF,
        }
    }
}

impl NoteValues {
    pub fn get(&self, f: NoteField) -> Option<&str> {
        match f {
            NoteField::Description => self.description.as_deref(),
            NoteField::Contact => self.contact.as_deref(),
            NoteField::Os => self.os.as_deref(),
            NoteField::ProfileRef => self.profile_ref.as_deref(),
        }
    }

    pub fn set(&mut self, f: NoteField, v: Option<String>) {
        let v = v.filter(|s| !s.is_empty());
        match f {
            NoteField::Description => self.description = v,
            NoteField::Contact => self.contact = v,
            NoteField::Os => self.os = v,
            NoteField::ProfileRef => self.profile_ref = v,
        }
    }

    pub fn is_empty(&self) -> bool {
        NoteField::ALL.iter().all(|f| self.get(*f).is_none())
    }

    /// These values with `edit` applied.
    pub fn apply(&self, edit: &NoteEdit) -> NoteValues {
        let mut out = self.clone();
        for (f, v) in edit.fields() {
            out.set(f, v.map(str::to_string));
        }
        out
    }
}

impl NoteEdit {
    /// The fields this edit touches: `(field, Some(value))` sets, `(field, None)` clears.
    pub fn fields(&self) -> Vec<(NoteField, Option<&str>)> {
        let mut out = Vec::new();
        for (f, v) in [
            (NoteField::Description, &self.description),
            (NoteField::Contact, &self.contact),
            (NoteField::Os, &self.os),
            (NoteField::ProfileRef, &self.profile_ref),
        ] {
            if let Some(v) = v {
                out.push((f, (!v.is_empty()).then_some(v.as_str())));
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.fields().is_empty()
    }
}

/// A group and its members as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub dn: String,
    pub cn: String,
    /// `memberUid`: login names.
    pub member_uids: BTreeSet<String>,
    /// `member` and `uniqueMember`: DNs (users or nested groups), normalised by [`norm_dn`].
    pub member_dns: BTreeSet<String>,
}

/// The typed state of the directory at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Keyed by normalised DN.
    pub hosts: BTreeMap<String, HostEntry>,
    /// Keyed by lower-cased name (`cn` is case-insensitive).
    pub profiles: BTreeMap<String, DirectoryProfile>,
    /// Keyed by lower-cased VM UUID.
    pub notes: BTreeMap<String, Note>,
    /// Keyed by normalised DN.
    pub groups: BTreeMap<String, Group>,
    /// Entries that were skipped, and why (for the log; not part of comparisons).
    #[serde(default)]
    pub problems: Vec<String>,
}

/// A DN in a form that compares equal for the spellings one directory produces: lower case,
/// no spaces around `,` and `=`. (Full RFC 4514 normalisation would need the schema; this
/// is enough to match a `member` value against the DN a search returned.)
pub fn norm_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut escaped = false;
    // Spaces right after an unescaped separator are insignificant; track that explicitly,
    // since an escaped `\,` followed by a space is part of the value.
    let mut after_sep = false;
    // Length of `out` up to the last character that must be kept (escaped or non-space).
    let mut keep = 0;
    for c in dn.trim().chars() {
        if escaped {
            out.extend(c.to_lowercase());
            keep = out.len();
            escaped = false;
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                after_sep = false;
                out.push(c);
            }
            ',' | '=' => {
                out.truncate(keep);
                out.push(c);
                keep = out.len();
                after_sep = true;
            }
            ' ' if after_sep => {}
            ' ' => out.push(c),
            _ => {
                after_sep = false;
                out.extend(c.to_lowercase());
                keep = out.len();
            }
        }
    }
    out
}

/// A host entry -> `HostEntry`, or why it is skipped.
pub fn host_from_entry(e: &RawEntry, cfg: &DirectoryConfig) -> Result<HostEntry, String> {
    let cn = e
        .first("cn")
        .ok_or_else(|| format!("host {}: no cn", e.dn))?
        .to_string();
    let domain = e
        .first("associatedDomain")
        .map(str::to_string)
        .or_else(|| cfg.hosts.default_domain.clone());
    let fqdn = match &domain {
        Some(d) if !d.is_empty() => format!("{cn}.{d}"),
        _ => cn.clone(),
    };
    // A host name goes into a URI unescaped: refuse anything that is not a plain DNS name,
    // so a directory entry cannot smuggle a path, query or user part into the URI.
    if !is_dns_name(&fqdn) {
        return Err(format!("host {}: {fqdn:?} is not a DNS name", e.dn));
    }
    let services: Vec<String> = e.all(&cfg.hosts.service_attribute).to_vec();
    let vals = [
        ("fqdn", fqdn.as_str()),
        ("cn", cn.as_str()),
        ("domain", domain.as_deref().unwrap_or("")),
    ];
    let mut uris = BTreeSet::new();
    for s in &services {
        if let Some(t) = cfg.hosts.services.get(s) {
            uris.insert(
                fill_template(t, &vals, verbatim).map_err(|m| format!("host {}: {m}", e.dn))?,
            );
        }
    }
    if uris.is_empty() {
        match &cfg.hosts.uri_template {
            Some(t) => {
                uris.insert(
                    fill_template(t, &vals, verbatim).map_err(|m| format!("host {}: {m}", e.dn))?,
                );
            }
            None => {
                return Err(format!(
                    "host {}: none of its services {:?} has a URI template",
                    e.dn, services
                ))
            }
        }
    }
    Ok(HostEntry {
        dn: e.dn.clone(),
        cn,
        fqdn,
        uris: uris.into_iter().collect(),
        services,
        manageable_by: e.all("univentionVirtualMachineManageableBy").to_vec(),
    })
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

pub fn profile_from_entry(e: &RawEntry) -> Result<DirectoryProfile, String> {
    let name = e
        .first("cn")
        .ok_or_else(|| format!("profile {}: no cn", e.dn))?
        .to_string();
    let s = |a: &str| e.first(a).map(str::to_string);
    let boot_devices = e
        .all("univentionVirtualMachineProfileBootDevices")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .collect();
    Ok(DirectoryProfile {
        dn: e.dn.clone(),
        name,
        name_prefix: s("univentionVirtualMachineProfileNamePrefix"),
        arch: s("univentionVirtualMachineProfileArch"),
        virttech: s("univentionVirtualMachineProfileVirtTech"),
        cpus: s("univentionVirtualMachineProfileCPUs"),
        cpu_model: s("univentionVirtualMachineProfileCPUModel"),
        ram: s("univentionVirtualMachineProfileRAM"),
        diskspace: s("univentionVirtualMachineProfileDiskspace"),
        driver_cache: s("univentionVirtualMachineProfileDriverCache"),
        interface: s("univentionVirtualMachineProfileInterface"),
        vnc: s("univentionVirtualMachineProfileVNC"),
        kblayout: s("univentionVirtualMachineProfileKBLayout"),
        kernel: s("univentionVirtualMachineProfileKernel"),
        kernel_parameter: s("univentionVirtualMachineProfileKernelParameter"),
        initramfs: s("univentionVirtualMachineProfileInitRAMfs"),
        advanced_kernel_config: s("univentionVirtualMachineAdvancedKernelConfig"),
        boot_devices,
        os: s("univentionVirtualMachineProfileOS"),
        pv_disk: s("univentionVirtualMachineProfilePVDisk"),
        pv_interface: s("univentionVirtualMachineProfilePVInterface"),
        pv_cdrom: s("univentionVirtualMachineProfilePVCDROM"),
        rtc_offset: s("univentionVirtualMachineProfileRTCOffset"),
        disk_format: s("uvmmProfileDiskFormat"),
        description: s("description"),
    })
}

pub fn note_from_entry(e: &RawEntry) -> Result<Note, String> {
    let uuid = e
        .first(ATTR_UUID)
        .ok_or_else(|| format!("note {}: no {ATTR_UUID}", e.dn))?
        .to_string();
    let s = |a: &str| e.first(a).map(str::to_string);
    Ok(Note {
        uuid,
        dn: e.dn.clone(),
        values: NoteValues {
            description: s(ATTR_DESCRIPTION),
            contact: s(ATTR_CONTACT),
            os: s(ATTR_OS),
            profile_ref: s(ATTR_PROFILE_REF),
        },
        modified: s("modifyTimestamp"),
    })
}

pub fn group_from_entry(e: &RawEntry) -> Result<Group, String> {
    let cn = e
        .first("cn")
        .ok_or_else(|| format!("group {}: no cn", e.dn))?
        .to_string();
    Ok(Group {
        dn: e.dn.clone(),
        cn,
        member_uids: e.all("memberUid").iter().cloned().collect(),
        member_dns: e
            .all("member")
            .iter()
            .chain(e.all("uniqueMember"))
            .map(|d| norm_dn(d))
            .collect(),
    })
}

impl Snapshot {
    /// Build the typed state from the raw entries of each kind. Entries that cannot be read
    /// are skipped and listed in `problems`; one bad entry never hides the others.
    pub fn build<'a>(
        cfg: &DirectoryConfig,
        hosts: impl IntoIterator<Item = &'a RawEntry>,
        profiles: impl IntoIterator<Item = &'a RawEntry>,
        notes: impl IntoIterator<Item = &'a RawEntry>,
        groups: impl IntoIterator<Item = &'a RawEntry>,
    ) -> Snapshot {
        let mut s = Snapshot::default();
        for e in hosts {
            match host_from_entry(e, cfg) {
                Ok(h) => {
                    s.hosts.insert(norm_dn(&h.dn), h);
                }
                Err(p) => s.problems.push(p),
            }
        }
        for e in profiles {
            match profile_from_entry(e) {
                Ok(p) => {
                    let key = p.name.to_lowercase();
                    if let Some(old) = s.profiles.get(&key) {
                        s.problems.push(format!(
                            "profile {}: name {:?} also used by {}; the first is kept",
                            p.dn, p.name, old.dn
                        ));
                    } else {
                        s.profiles.insert(key, p);
                    }
                }
                Err(p) => s.problems.push(p),
            }
        }
        for e in notes {
            match note_from_entry(e) {
                Ok(n) => {
                    s.notes.insert(n.uuid.to_lowercase(), n);
                }
                Err(p) => s.problems.push(p),
            }
        }
        for e in groups {
            match group_from_entry(e) {
                Ok(g) => {
                    s.groups.insert(norm_dn(&g.dn), g);
                }
                Err(p) => s.problems.push(p),
            }
        }
        s
    }

    /// Every libvirt URI of every host: what a host source hands the daemon.
    pub fn host_uris(&self) -> BTreeSet<String> {
        self.hosts
            .values()
            .flat_map(|h| h.uris.iter().cloned())
            .collect()
    }

    pub fn note(&self, uuid: &str) -> Option<&Note> {
        self.notes.get(&uuid.to_lowercase())
    }

    pub fn profile(&self, name: &str) -> Option<&DirectoryProfile> {
        self.profiles.get(&name.to_lowercase())
    }

    /// Names (`cn`) of the cached groups a user belongs to: directly by `memberUid` or by
    /// DN (`member`/`uniqueMember`), and through nested groups (a group whose DN is a member
    /// of another group passes its members on).
    pub fn groups_of(&self, uid: &str, user_dn: Option<&str>) -> BTreeSet<String> {
        let user_dn = user_dn.map(norm_dn);
        let mut member_of: BTreeSet<String> = self
            .groups
            .iter()
            .filter(|(_, g)| {
                g.member_uids.contains(uid)
                    || user_dn.as_ref().is_some_and(|d| g.member_dns.contains(d))
            })
            .map(|(k, _)| k.clone())
            .collect();
        // Fixpoint over nesting; bounded by the number of groups, so cycles end.
        for _ in 0..self.groups.len() {
            let more: Vec<String> = self
                .groups
                .iter()
                .filter(|(k, g)| {
                    !member_of.contains(*k) && g.member_dns.iter().any(|d| member_of.contains(d))
                })
                .map(|(k, _)| k.clone())
                .collect();
            if more.is_empty() {
                break;
            }
            member_of.extend(more);
        }
        member_of
            .iter()
            .filter_map(|k| self.groups.get(k).map(|g| g.cn.clone()))
            .collect()
    }
}

/// A directory profile turned into uvmm's own profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertedProfile {
    pub profile: Profile,
    /// Attributes that are set in the directory but that uvmm cannot apply yet; listed so
    /// the profile listing can say so instead of silently dropping them.
    pub ignored: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("directory profile {name:?} ({dn}): {reason}")]
pub struct ProfileConversionError {
    pub name: String,
    pub dn: String,
    pub reason: String,
}

/// UCS's `UvmmCapacity` syntax: `<number>[ ][K|M|G|T|P][i][B]` or `<number>B`; binary
/// multiples (UVMM shows and reads sizes in powers of 1024). Returns bytes.
pub fn parse_capacity(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let unit = unit.trim();
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => return None,
    };
    let num = num.replace(',', ".");
    match num.split_once('.') {
        None => num.parse::<u64>().ok()?.checked_mul(mult),
        Some((int, frac)) => {
            if int.is_empty() || frac.is_empty() || frac.len() > 9 {
                return None;
            }
            let int: u128 = int.parse().ok()?;
            let frac_n: u128 = frac.parse().ok()?;
            // frac.len() <= 9 was checked above.
            let scale = 10u128.pow(u32::try_from(frac.len()).ok()?);
            let mult = u128::from(mult);
            let total = int.checked_mul(mult)? + frac_n * mult / scale;
            u64::try_from(total).ok()
        }
    }
}

/// A size for uvmm's profile fields, in the largest binary unit that is exact.
fn size_string(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes % (1u64 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

fn truthy(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

impl DirectoryProfile {
    /// Convert to uvmm's profile: UCS's virtualisation technology becomes domain and OS type,
    /// the paravirtual flags become bus and NIC models, the bridge becomes `bridge=NAME`,
    /// sizes become exact binary units. The result passes uvmm's own profile checks, or the
    /// error says which attribute is wrong.
    pub fn to_profile(&self) -> Result<ConvertedProfile, ProfileConversionError> {
        let err = |reason: String| ProfileConversionError {
            name: self.name.clone(),
            dn: self.dn.clone(),
            reason,
        };
        let mut ignored = Vec::new();
        let (domain_type, os_type) = match self.virttech.as_deref().map(str::trim) {
            None | Some("") | Some("kvm-hvm") => ("kvm", "hvm"),
            Some("qemu-hvm") => ("qemu", "hvm"),
            Some("xen-hvm") => ("xen", "hvm"),
            Some("xen-xen") => ("xen", "xen"),
            Some(other) => {
                return Err(err(format!(
                    "virtualisation technology {other:?} (expected kvm-hvm, qemu-hvm, xen-hvm or xen-xen)"
                )))
            }
        };
        let xen = domain_type == "xen";
        let flag = |name: &str, v: &Option<String>| -> Result<bool, ProfileConversionError> {
            match v {
                None => Ok(false),
                Some(s) => truthy(s).ok_or_else(|| err(format!("{name} {s:?} is not a boolean"))),
            }
        };
        let pv_disk = flag("pv_disk", &self.pv_disk)?;
        let pv_if = flag("pv_interface", &self.pv_interface)?;
        let pv_cd = flag("pv_cdrom", &self.pv_cdrom)?;
        let arch = match self.arch.as_deref().map(str::trim) {
            None | Some("") | Some("automatic") => None,
            Some(a) => Some(a.to_string()),
        };
        let vcpus = match &self.cpus {
            None => 1,
            Some(c) => c
                .trim()
                .parse::<u32>()
                .map_err(|_| err(format!("CPUs {c:?} is not a number")))?,
        };
        let memory = match &self.ram {
            None => "1GiB".to_string(),
            Some(r) => size_string(
                parse_capacity(r).ok_or_else(|| err(format!("memory {r:?} is not a capacity")))?,
            ),
        };
        let disk_size = match &self.diskspace {
            None => None,
            Some(d) => {
                Some(size_string(parse_capacity(d).ok_or_else(|| {
                    err(format!("disk space {d:?} is not a capacity"))
                })?))
            }
        };
        let network = match self.interface.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(i) if i.contains('=') => Some(i.to_string()),
            Some(i) => Some(format!("bridge={i}")),
        };
        let vnc = match &self.vnc {
            None => true,
            Some(v) => truthy(v).ok_or_else(|| err(format!("VNC {v:?} is not a boolean")))?,
        };
        let rtc = self
            .rtc_offset
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "utc".into());
        let manual_kernel = match &self.advanced_kernel_config {
            None => false,
            Some(v) => truthy(v).ok_or_else(|| {
                err(format!(
                    "advanced kernel configuration {v:?} is not a boolean"
                ))
            })?,
        };
        let bootloader = if os_type == "xen" {
            if manual_kernel {
                return Err(err(
                    "Xen PV with a kernel given in the profile (advanced kernel configuration) is not supported by uvmm; use pygrub".into(),
                ));
            }
            Some("/usr/bin/pygrub".to_string())
        } else {
            None
        };
        for (name, v) in [
            ("kernel", &self.kernel),
            ("kernel_parameter", &self.kernel_parameter),
            ("initramfs", &self.initramfs),
        ] {
            if v.as_deref().is_some_and(|s| !s.is_empty()) {
                ignored.push(format!("{name} (uvmm boots from disk, CD-ROM or network)"));
            }
        }
        if let Some(c) = self
            .driver_cache
            .as_deref()
            .filter(|c| !c.is_empty() && *c != "default")
        {
            ignored.push(format!(
                "driver_cache {c} (uvmm uses the hypervisor default)"
            ));
        }
        let disk_bus = match (pv_disk, xen) {
            (true, true) => "xen",
            (true, false) => "virtio",
            (false, _) => "ide",
        };
        let cdrom_bus = if os_type == "xen" {
            None
        } else if pv_cd {
            // KVM has no virtio-blk CD-ROM; SCSI (virtio-scsi) is the paravirtual path.
            Some("scsi".to_string())
        } else {
            Some("ide".to_string())
        };
        let nic_model = match (pv_if, xen) {
            (true, true) => "netfront",
            (true, false) => "virtio",
            (false, _) => "rtl8139",
        };
        let profile = Profile {
            name: self.name.clone(),
            description: self.description.clone().or_else(|| self.os.clone()),
            name_prefix: self.name_prefix.clone(),
            domain_type: domain_type.into(),
            os_type: os_type.into(),
            arch,
            vcpus,
            memory,
            disk_size,
            disk_format: self.disk_format.clone().unwrap_or_else(|| "qcow2".into()),
            disk_bus: disk_bus.into(),
            cdrom_bus,
            nic_model: Some(nic_model.into()),
            network,
            vnc,
            vnc_listen: "127.0.0.1".into(),
            keymap: self.kblayout.clone(),
            boot: self.boot_devices.clone(),
            rtc,
            hyperv: false,
            pae: false,
            cpu_model: self.cpu_model.clone(),
            driver_iso: None,
            bootloader,
            bootloader_args: None,
            origin: None,
        };
        let profile = profile
            .checked(&format!("ldap:{}", self.dn))
            .map_err(|e| err(e.message))?;
        Ok(ConvertedProfile { profile, ignored })
    }
}

/// Where a profile in a merged listing comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ProfileOrigin {
    /// Built in or from a local profile file (whatever the caller passed in).
    Local,
    /// From the directory entry `dn`; `ignored` lists attributes uvmm cannot apply.
    Directory { dn: String, ignored: Vec<String> },
}

/// Local profiles and the directory's, merged: a directory profile replaces a local one of
/// the same name (case-insensitive), as the issue asks. Directory profiles that cannot be
/// converted are returned separately with the reason, so the listing can show them as
/// unusable instead of hiding them.
pub fn merge_profiles(
    local: Vec<Profile>,
    snapshot: &Snapshot,
) -> (Vec<(Profile, ProfileOrigin)>, Vec<ProfileConversionError>) {
    let mut out: Vec<(Profile, ProfileOrigin)> = local
        .into_iter()
        .map(|p| (p, ProfileOrigin::Local))
        .collect();
    let mut unusable = Vec::new();
    for dp in snapshot.profiles.values() {
        match dp.to_profile() {
            Ok(c) => {
                let origin = ProfileOrigin::Directory {
                    dn: dp.dn.clone(),
                    ignored: c.ignored,
                };
                match out
                    .iter_mut()
                    .find(|(p, _)| p.name.eq_ignore_ascii_case(&c.profile.name))
                {
                    Some(slot) => *slot = (c.profile, origin),
                    None => out.push((c.profile, origin)),
                }
            }
            Err(e) => unusable.push(e),
        }
    }
    (out, unusable)
}

/// Parse an LDAP GeneralizedTime (`20260131235959Z`, optionally with a fraction) into Unix
/// seconds. Only UTC (`Z`) is accepted: that is what OpenLDAP writes in `modifyTimestamp`.
pub fn parse_generalized_time(s: &str) -> Option<i64> {
    let s = s.trim().strip_suffix('Z')?;
    let main = s.split(['.', ',']).next()?;
    if main.len() != 14 || !main.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| main.get(r).and_then(|x| x.parse::<i64>().ok());
    let (y, mo, d, h, mi, se) = (
        n(0..4)?,
        n(4..6)?,
        n(6..8)?,
        n(8..10)?,
        n(10..12)?,
        n(12..14)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm), to avoid a calendar dependency.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DirectoryConfig {
        let mut c = DirectoryConfig::new("ldap://x/dc=example,dc=com");
        c.hosts.default_domain = Some("example.com".into());
        c
    }

    #[test]
    fn hosts_become_uris() {
        let kvm = RawEntry::new("cn=kvm1,cn=computers,dc=example,dc=com")
            .with("cn", &["kvm1"])
            .with("associatedDomain", &["lab.example.com"])
            .with("univentionService", &["KVM Host", "Samba 4"]);
        let both = RawEntry::new("cn=hv,dc=example,dc=com")
            .with("cn", &["hv"])
            .with("univentionService", &["XEN Host", "KVM Host"]);
        let none = RawEntry::new("cn=dc0,dc=example,dc=com")
            .with("cn", &["dc0"])
            .with("univentionService", &["LDAP"]);
        let evil = RawEntry::new("cn=x,dc=example,dc=com")
            .with("cn", &["x/system?socket=/tmp/s#"])
            .with("univentionService", &["KVM Host"]);
        let nocn = RawEntry::new("cn=y,dc=example,dc=com");
        let c = cfg();
        let table: [(&RawEntry, Result<Vec<&str>, &str>); 5] = [
            (&kvm, Ok(vec!["qemu://kvm1.lab.example.com/system"])),
            (
                &both,
                Ok(vec![
                    "qemu://hv.example.com/system",
                    "xen://hv.example.com/",
                ]),
            ),
            (&none, Err("has a URI template")),
            (&evil, Err("not a DNS name")),
            (&nocn, Err("no cn")),
        ];
        for (e, want) in table {
            match (host_from_entry(e, &c), want) {
                (Ok(h), Ok(w)) => assert_eq!(h.uris, w, "{}", e.dn),
                (Err(got), Err(w)) => assert!(got.contains(w), "{}: {got}", e.dn),
                (got, w) => panic!("{}: got {got:?}, want {w:?}", e.dn),
            }
        }
        let mut plain = cfg();
        plain.hosts.uri_template = Some("qemu+ssh://root@{fqdn}/system".into());
        assert_eq!(
            host_from_entry(&none, &plain).unwrap().uris,
            ["qemu+ssh://root@dc0.example.com/system"]
        );
    }

    #[test]
    fn capacities() {
        let table = [
            ("2048MB", Some(2u64 << 30)),
            ("1024 MB", Some(1 << 30)),
            ("1.5 GiB", Some(3 << 29)),
            ("1,5G", Some(3 << 29)),
            ("32GB", Some(32 << 30)),
            ("512", Some(512)),
            ("512 B", Some(512)),
            ("4k", Some(4096)),
            ("lots", None),
            ("1.2.3G", None),
            ("99999999999999999999", None),
            ("20000000P", None),
        ];
        for (s, want) in table {
            assert_eq!(parse_capacity(s), want, "{s}");
        }
        assert_eq!(size_string(2 << 30), "2GiB");
        assert_eq!(size_string(1536 << 20), "1536MiB");
        assert_eq!(size_string(1000), "1000B");
    }

    fn ucs_profile() -> DirectoryProfile {
        DirectoryProfile {
            dn: "cn=UCS 4 (64 Bit),cn=kvm,cn=Profiles,cn=Virtual Machine Manager,dc=x".into(),
            name: "UCS 4 (64 Bit)".into(),
            name_prefix: Some("ucs4-64-".into()),
            arch: Some("x86_64".into()),
            virttech: Some("kvm-hvm".into()),
            cpus: Some("1".into()),
            ram: Some("1024MB".into()),
            diskspace: Some("20GB".into()),
            interface: Some("br0".into()),
            vnc: Some("1".into()),
            kblayout: Some("de".into()),
            boot_devices: vec!["hd".into(), "cdrom".into()],
            os: Some("UCS 4 (64 Bit)".into()),
            pv_disk: Some("1".into()),
            pv_interface: Some("1".into()),
            pv_cdrom: Some("0".into()),
            rtc_offset: Some("utc".into()),
            ..Default::default()
        }
    }

    #[test]
    fn profiles_convert_like_ucs_means_them() {
        let p = ucs_profile().to_profile().unwrap();
        assert!(p.ignored.is_empty());
        let q = p.profile;
        assert_eq!(
            (
                q.domain_type.as_str(),
                q.os_type.as_str(),
                q.arch.as_deref()
            ),
            ("kvm", "hvm", Some("x86_64"))
        );
        assert_eq!(
            (q.memory.as_str(), q.disk_size.as_deref()),
            ("1GiB", Some("20GiB"))
        );
        assert_eq!(
            (q.disk_bus.as_str(), q.cdrom_bus.as_deref()),
            ("virtio", Some("ide"))
        );
        assert_eq!(q.nic_model.as_deref(), Some("virtio"));
        assert_eq!(q.network.as_deref(), Some("bridge=br0"));
        assert_eq!(q.boot, ["hd", "cdrom"]);
        assert_eq!(q.keymap.as_deref(), Some("de"));
        assert_eq!(q.description.as_deref(), Some("UCS 4 (64 Bit)"));

        type Change = fn(&mut DirectoryProfile);
        type Check = fn(&ConvertedProfile) -> bool;
        let table: Vec<(Change, Result<Check, &str>)> = vec![
            (
                |p| p.arch = Some("automatic".into()),
                Ok(|c| c.profile.arch.is_none()),
            ),
            (
                |p| {
                    p.virttech = Some("xen-xen".into());
                    p.advanced_kernel_config = Some("FALSE".into())
                },
                Ok(|c| {
                    c.profile.os_type == "xen"
                        && c.profile.bootloader.as_deref() == Some("/usr/bin/pygrub")
                        && c.profile.disk_bus == "xen"
                        && c.profile.nic_model.as_deref() == Some("netfront")
                }),
            ),
            (
                |p| {
                    p.virttech = Some("xen-xen".into());
                    p.advanced_kernel_config = Some("TRUE".into());
                    p.kernel = Some("/boot/vmlinuz".into())
                },
                Err("not supported"),
            ),
            (
                |p| {
                    p.pv_disk = Some("0".into());
                    p.pv_interface = None;
                    p.pv_cdrom = Some("1".into())
                },
                Ok(|c| {
                    c.profile.disk_bus == "ide"
                        && c.profile.nic_model.as_deref() == Some("rtl8139")
                        && c.profile.cdrom_bus.as_deref() == Some("scsi")
                }),
            ),
            (
                |p| {
                    p.kernel = Some("/vmlinuz".into());
                    p.driver_cache = Some("writeback".into())
                },
                Ok(|c| c.ignored.len() == 2),
            ),
            (
                |p| p.driver_cache = Some("default".into()),
                Ok(|c| c.ignored.is_empty()),
            ),
            (
                |p| p.interface = Some("network=default".into()),
                Ok(|c| c.profile.network.as_deref() == Some("network=default")),
            ),
            (
                |p| p.disk_format = Some("raw".into()),
                Ok(|c| c.profile.disk_format == "raw"),
            ),
            (
                |p| p.rtc_offset = Some("localtime".into()),
                Ok(|c| c.profile.rtc == "localtime"),
            ),
            (|p| p.vnc = Some("0".into()), Ok(|c| !c.profile.vnc)),
            (
                |p| p.cpu_model = Some("host-model".into()),
                Ok(|c| c.profile.cpu_model.as_deref() == Some("host-model")),
            ),
            (
                |p| p.virttech = Some("vmware".into()),
                Err("virtualisation technology"),
            ),
            (|p| p.cpus = Some("two".into()), Err("CPUs")),
            (|p| p.ram = Some("lots".into()), Err("memory")),
            (|p| p.ram = Some("1MB".into()), Err("at least 16MiB")),
            (|p| p.interface = Some("br0; rm -rf".into()), Err("network")),
            (|p| p.boot_devices = vec!["usb".into()], Err("boot device")),
            (|p| p.rtc_offset = Some("gmt".into()), Err("rtc")),
            (|p| p.disk_format = Some("vmdk".into()), Err("disk_format")),
            (|p| p.pv_disk = Some("maybe".into()), Err("not a boolean")),
        ];
        for (i, (change, want)) in table.into_iter().enumerate() {
            let mut p = ucs_profile();
            change(&mut p);
            match (p.to_profile(), want) {
                (Ok(c), Ok(check)) => assert!(check(&c), "case {i}: {c:?}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "case {i}: {e}"),
                (got, _) => panic!("case {i}: unexpected {got:?}"),
            }
        }
    }

    #[test]
    fn directory_profiles_win_over_local_ones() {
        let local = uvmm_model::profile::builtin();
        let n_local = local.len();
        let mut s = Snapshot::default();
        let mut linux = ucs_profile();
        linux.name = "linux".into();
        linux.dn = "cn=linux,dc=x".into();
        s.profiles.insert("linux".into(), linux);
        s.profiles.insert("ucs".into(), ucs_profile());
        let mut broken = ucs_profile();
        broken.name = "broken".into();
        broken.ram = Some("lots".into());
        s.profiles.insert("broken".into(), broken);
        let (all, unusable) = merge_profiles(local, &s);
        assert_eq!(all.len(), n_local + 1);
        let (p, origin) = all.iter().find(|(p, _)| p.name == "linux").unwrap();
        assert_eq!(p.memory, "1GiB");
        assert!(matches!(origin, ProfileOrigin::Directory { dn, .. } if dn == "cn=linux,dc=x"));
        assert!(all
            .iter()
            .any(|(p, o)| p.name == "Windows" && *o == ProfileOrigin::Local));
        assert_eq!(unusable.len(), 1);
        assert!(unusable[0].to_string().contains("memory"));
    }

    #[test]
    fn profile_entries_are_read_with_every_attribute() {
        let e = RawEntry::new("cn=P,dc=x")
            .with("cn", &["P"])
            .with("univentionVirtualMachineProfileBootDevices", &["cdrom,hd"])
            .with(
                "univentionVirtualMachineProfileKernelParameter",
                &["console=ttyS0"],
            )
            .with("univentionVirtualMachineProfileDriverCache", &["none"])
            .with("uvmmProfileDiskFormat", &["raw"]);
        let p = profile_from_entry(&e).unwrap();
        assert_eq!(p.boot_devices, ["cdrom", "hd"]);
        assert_eq!(p.kernel_parameter.as_deref(), Some("console=ttyS0"));
        assert_eq!(p.driver_cache.as_deref(), Some("none"));
        assert_eq!(p.disk_format.as_deref(), Some("raw"));
    }

    #[test]
    fn group_membership_with_nesting() {
        let mk = |dn: &str, cn: &str, uids: &[&str], dns: &[&str]| {
            RawEntry::new(dn)
                .with("cn", &[cn])
                .with("memberUid", uids)
                .with("uniqueMember", dns)
        };
        let g = [
            mk("cn=admins,cn=groups,dc=x", "admins", &["alice"], &[]),
            mk(
                "cn=ops,cn=groups,dc=x",
                "ops",
                &[],
                &["uid=bob, cn=users, dc=x"],
            ),
            mk(
                "cn=all,cn=groups,dc=x",
                "all",
                &[],
                &["CN=ops,cn=groups,dc=x", "cn=loop,cn=groups,dc=x"],
            ),
            mk(
                "cn=loop,cn=groups,dc=x",
                "loop",
                &[],
                &["cn=all,cn=groups,dc=x"],
            ),
        ];
        let s = Snapshot::build(&cfg(), [], [], [], g.iter());
        let names = |uid, dn| s.groups_of(uid, dn).into_iter().collect::<Vec<_>>();
        assert_eq!(names("alice", Some("uid=alice,cn=users,dc=x")), ["admins"]);
        assert_eq!(
            names("bob", Some("uid=bob,cn=users,dc=x")),
            ["all", "loop", "ops"]
        );
        assert!(names("carol", Some("uid=carol,cn=users,dc=x")).is_empty());
        // memberUid is matched exactly: a look-alike name gets nothing.
        assert!(names("alice ", None).is_empty());
    }

    #[test]
    fn dn_normalisation() {
        let table = [
            ("uid=Bob, cn=Users ,dc=X", "uid=bob,cn=users,dc=x"),
            ("cn=a\\, b,dc=x", "cn=a\\, b,dc=x"),
            ("cn=trail\\ ,dc=x", "cn=trail\\ ,dc=x"),
        ];
        for (a, b) in table {
            assert_eq!(norm_dn(a), b, "{a}");
        }
    }

    #[test]
    fn generalized_time() {
        let table = [
            ("19700101000000Z", Some(0)),
            ("20000301000000Z", Some(951_868_800)),
            ("20261129234641Z", Some(1_795_996_001)),
            ("20261129234641.123456Z", Some(1_795_996_001)),
            ("20261129234641", None),
            ("2026112923464Z", None),
            ("20261329234641Z", None),
        ];
        for (s, want) in table {
            assert_eq!(parse_generalized_time(s), want, "{s}");
        }
    }

    #[test]
    fn note_edits() {
        let base = NoteValues {
            description: Some("web".into()),
            contact: Some("ops@x".into()),
            ..Default::default()
        };
        let edit = NoteEdit {
            description: Some("web server".into()),
            contact: Some(String::new()),
            ..Default::default()
        };
        let after = base.apply(&edit);
        assert_eq!(after.description.as_deref(), Some("web server"));
        assert_eq!(after.contact, None);
        assert_eq!(edit.fields().len(), 2);
        assert!(NoteEdit::default().is_empty());
    }
}
