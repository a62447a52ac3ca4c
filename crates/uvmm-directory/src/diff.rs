//! What changed from one directory snapshot to the next, as typed change sets: the one
//! place that decides "host added", "profile changed", "note changed". Pure, so it is
//! tested as a table.

use crate::model::{NoteValues, Snapshot};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSet {
    /// libvirt URIs that appeared: connect them.
    pub hosts_added: Vec<String>,
    /// libvirt URIs that are gone: drop them (unless given on the command line).
    pub hosts_removed: Vec<String>,
    /// Profile names.
    pub profiles_added: Vec<String>,
    pub profiles_changed: Vec<String>,
    pub profiles_removed: Vec<String>,
    pub notes: Vec<NoteChange>,
    /// Names of groups that appeared, vanished or whose members changed (roles of logged-in
    /// users may need a recheck).
    pub groups_changed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteChange {
    pub uuid: String,
    /// `None`: the note is new.
    pub before: Option<NoteValues>,
    /// `None`: the note was removed.
    pub after: Option<NoteValues>,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self == &ChangeSet::default()
    }
}

pub fn diff(old: &Snapshot, new: &Snapshot) -> ChangeSet {
    let mut c = ChangeSet::default();
    let (old_uris, new_uris) = (old.host_uris(), new.host_uris());
    c.hosts_added = new_uris.difference(&old_uris).cloned().collect();
    c.hosts_removed = old_uris.difference(&new_uris).cloned().collect();

    for (k, p) in &new.profiles {
        match old.profiles.get(k) {
            None => c.profiles_added.push(p.name.clone()),
            Some(o) if o != p => c.profiles_changed.push(p.name.clone()),
            Some(_) => {}
        }
    }
    for (k, p) in &old.profiles {
        if !new.profiles.contains_key(k) {
            c.profiles_removed.push(p.name.clone());
        }
    }

    for (k, n) in &new.notes {
        let before = old.notes.get(k).map(|o| &o.values);
        if before != Some(&n.values) {
            c.notes.push(NoteChange {
                uuid: n.uuid.clone(),
                before: before.cloned(),
                after: Some(n.values.clone()),
            });
        }
    }
    for (k, n) in &old.notes {
        if !new.notes.contains_key(k) {
            c.notes.push(NoteChange {
                uuid: n.uuid.clone(),
                before: Some(n.values.clone()),
                after: None,
            });
        }
    }
    c.notes.sort_by(|a, b| a.uuid.cmp(&b.uuid));

    let mut groups = std::collections::BTreeSet::new();
    for (k, g) in &new.groups {
        match old.groups.get(k) {
            Some(o) if o.member_uids == g.member_uids && o.member_dns == g.member_dns => {}
            _ => {
                groups.insert(g.cn.clone());
            }
        }
    }
    for (k, g) in &old.groups {
        if !new.groups.contains_key(k) {
            groups.insert(g.cn.clone());
        }
    }
    c.groups_changed = groups.into_iter().collect();
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DirectoryConfig;
    use crate::model::RawEntry;

    fn host(cn: &str, services: &[&str]) -> RawEntry {
        RawEntry::new(format!("cn={cn},cn=computers,dc=x"))
            .with("cn", &[cn])
            .with("associatedDomain", &["example.com"])
            .with("univentionService", services)
    }
    fn profile(cn: &str, ram: &str) -> RawEntry {
        RawEntry::new(format!("cn={cn},cn=Profiles,dc=x"))
            .with("cn", &[cn])
            .with("univentionVirtualMachineProfileRAM", &[ram])
    }
    fn note(uuid: &str, desc: &str, stamp: &str) -> RawEntry {
        RawEntry::new(format!("univentionVirtualMachineUUID={uuid},dc=x"))
            .with("univentionVirtualMachineUUID", &[uuid])
            .with("univentionVirtualMachineDescription", &[desc])
            .with("modifyTimestamp", &[stamp])
    }
    fn group(cn: &str, uids: &[&str]) -> RawEntry {
        RawEntry::new(format!("cn={cn},cn=groups,dc=x"))
            .with("cn", &[cn])
            .with("memberUid", uids)
    }

    struct State {
        hosts: Vec<RawEntry>,
        profiles: Vec<RawEntry>,
        notes: Vec<RawEntry>,
        groups: Vec<RawEntry>,
    }
    fn snap(s: &State) -> Snapshot {
        Snapshot::build(
            &DirectoryConfig::new("ldap://x/dc=x"),
            &s.hosts,
            &s.profiles,
            &s.notes,
            &s.groups,
        )
    }
    fn base() -> State {
        State {
            hosts: vec![host("kvm1", &["KVM Host"]), host("xen1", &["XEN Host"])],
            profiles: vec![profile("Linux", "1GB"), profile("Windows", "4GB")],
            notes: vec![note("u1", "web", "20260101000000Z")],
            groups: vec![group("admins", &["alice"])],
        }
    }

    #[test]
    fn change_sets() {
        type Edit = fn(&mut State);
        type Check = fn(&ChangeSet) -> bool;
        let table: Vec<(&str, Edit, Check)> = vec![
            ("nothing", |_| {}, |c| c.is_empty()),
            (
                "host added",
                |s| s.hosts.push(host("kvm2", &["KVM Host"])),
                |c| {
                    c.hosts_added == ["qemu://kvm2.example.com/system"]
                        && c.hosts_removed.is_empty()
                },
            ),
            (
                "host removed",
                |s| {
                    s.hosts.remove(0);
                },
                |c| {
                    c.hosts_removed == ["qemu://kvm1.example.com/system"]
                        && c.hosts_added.is_empty()
                },
            ),
            (
                "host gains a service",
                |s| s.hosts[1] = host("xen1", &["XEN Host", "KVM Host"]),
                |c| {
                    c.hosts_added == ["qemu://xen1.example.com/system"]
                        && c.hosts_removed.is_empty()
                },
            ),
            (
                "host loses its virtualization service",
                |s| s.hosts[0] = host("kvm1", &["Samba 4"]),
                |c| c.hosts_removed == ["qemu://kvm1.example.com/system"],
            ),
            (
                "profile changed",
                |s| s.profiles[0] = profile("Linux", "2GB"),
                |c| c.profiles_changed == ["Linux"] && c.profiles_added.is_empty(),
            ),
            (
                "profile added and removed",
                |s| s.profiles[1] = profile("BSD", "1GB"),
                |c| c.profiles_added == ["BSD"] && c.profiles_removed == ["Windows"],
            ),
            (
                "note changed",
                |s| s.notes[0] = note("u1", "web server", "20260102000000Z"),
                |c| {
                    c.notes.len() == 1
                        && c.notes[0]
                            .before
                            .as_ref()
                            .and_then(|v| v.description.as_deref())
                            == Some("web")
                        && c.notes[0]
                            .after
                            .as_ref()
                            .and_then(|v| v.description.as_deref())
                            == Some("web server")
                },
            ),
            (
                "only the timestamp changed: no note change",
                |s| s.notes[0] = note("u1", "web", "20260103000000Z"),
                |c| c.is_empty(),
            ),
            (
                "note added and removed",
                |s| s.notes[0] = note("u2", "db", "20260101000000Z"),
                |c| {
                    c.notes.len() == 2
                        && c.notes[0].uuid == "u1"
                        && c.notes[0].after.is_none()
                        && c.notes[1].uuid == "u2"
                        && c.notes[1].before.is_none()
                },
            ),
            (
                "group members changed",
                |s| s.groups[0] = group("admins", &["alice", "bob"]),
                |c| c.groups_changed == ["admins"],
            ),
            (
                "group removed",
                |s| s.groups.clear(),
                |c| c.groups_changed == ["admins"],
            ),
        ];
        let old = snap(&base());
        for (name, edit, check) in table {
            let mut s = base();
            edit(&mut s);
            let c = diff(&old, &snap(&s));
            assert!(check(&c), "{name}: {c:?}");
        }
    }
}
