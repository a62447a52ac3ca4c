//! Snapshots: what to create, what libvirt reports, and how a delete ended.
//!
//! What libvirt 9.0 (Debian 12's 9.0.0) with QEMU does, verified by `tests/snapshots.rs`:
//! - internal snapshots (qcow2 only) are created, listed, reverted and deleted by libvirt;
//!   with memory when the VM runs (an internal snapshot of a running VM cannot leave the
//!   memory out);
//! - external snapshots (overlay images; disk-only, or with a memory file) are created and
//!   listed, and **deleted** by libvirt itself: it merges the overlay with a block commit
//!   (an active commit and pivot for the newest one, a commit into the parent for an
//!   older one), starting the VM's QEMU paused when the VM is off, and removes the
//!   overlay files (the memory file of a snapshot with memory is left);
//! - reverting to an external snapshot is refused ("revert to external snapshot not
//!   supported yet").
//!
//! Older libvirt refuses to delete external snapshots at all. For those hosts
//! `snapshot_delete` falls back to uvmm's own merge (`snapshot_merge_external`), which
//! handles the case that cannot lose data — the newest snapshot, whose overlays the VM
//! uses now: an active block commit into the backing image and a pivot — and refuses the
//! rest with the reason.

/// Internal (inside the qcow2 images) or external (new overlay images).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    Internal,
    External,
}

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSpec {
    pub name: String,
    pub description: Option<String>,
    pub kind: SnapshotKind,
    /// With the memory state of a running VM (internal: inside the image; external: in
    /// `memory_file`). Without it only the disks are captured.
    pub memory: bool,
    /// External snapshots with memory: where the memory goes (a path on the host).
    pub memory_file: Option<String>,
}

/// One snapshot as libvirt reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub name: String,
    pub parent: Option<String>,
    /// The snapshot the VM's current state descends from.
    pub current: bool,
    pub kind: SnapshotKind,
    /// The VM's state when it was taken (`running`, `shutoff`, `disk-snapshot`, ...).
    pub state: String,
    pub description: Option<String>,
    /// Seconds since the epoch.
    pub created: i64,
    /// Whether the memory state was captured.
    pub memory: bool,
    /// The snapshot's XML (what `snapshot_redefine` takes on another host).
    pub xml: String,
}

/// How a snapshot delete ended (errors are refusals: nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotDeleteOutcome {
    /// An internal snapshot, deleted by libvirt.
    Deleted,
    /// An external snapshot, merged by libvirt (9.0+): the overlays named here were
    /// committed into their backing images and removed; a memory file is left.
    MergedByLibvirt {
        removed_overlays: Vec<String>,
        memory_file: Option<String>,
    },
    /// An external snapshot merged by uvmm (older libvirt): each disk's overlay was committed into its
    /// backing image (the VM now runs on that), the metadata is gone, and the overlay
    /// files named here are no longer used (kept on disk; the caller may remove them).
    Merged {
        disks: Vec<String>,
        unused_overlays: Vec<String>,
    },
}

/// A snapshot and its children, for showing the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotNode {
    pub info: SnapshotInfo,
    pub children: Vec<SnapshotNode>,
}

/// Arrange snapshots as a forest (roots first, children in creation order). Snapshots
/// whose parent is missing become roots, so none is ever hidden.
pub fn snapshot_tree(list: &[SnapshotInfo]) -> Vec<SnapshotNode> {
    let names: std::collections::HashSet<&str> = list.iter().map(|s| s.name.as_str()).collect();
    fn build(
        parent: Option<&str>,
        list: &[SnapshotInfo],
        names: &std::collections::HashSet<&str>,
    ) -> Vec<SnapshotNode> {
        let mut kids: Vec<&SnapshotInfo> = list
            .iter()
            .filter(|s| {
                let p = s.parent.as_deref().filter(|p| names.contains(p));
                p == parent
            })
            .collect();
        kids.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        kids.into_iter()
            .map(|s| SnapshotNode {
                info: s.clone(),
                children: build(Some(&s.name), list, names),
            })
            .collect()
    }
    build(None, list, &names)
}

/// Order snapshots parents first (what redefining them elsewhere needs).
pub fn parents_first(list: &[SnapshotInfo]) -> Vec<SnapshotInfo> {
    fn walk(nodes: &[SnapshotNode], out: &mut Vec<SnapshotInfo>) {
        for n in nodes {
            out.push(n.info.clone());
            walk(&n.children, out);
        }
    }
    let mut out = Vec::with_capacity(list.len());
    walk(&snapshot_tree(list), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, parent: Option<&str>, created: i64) -> SnapshotInfo {
        SnapshotInfo {
            name: name.into(),
            parent: parent.map(str::to_string),
            current: false,
            kind: SnapshotKind::Internal,
            state: "shutoff".into(),
            description: None,
            created,
            memory: false,
            xml: String::new(),
        }
    }

    #[test]
    fn tree_shapes() {
        // (input, expected pre-order with depth)
        // (snapshots, expected (name, depth) in pre-order)
        type Case = (Vec<SnapshotInfo>, Vec<(&'static str, usize)>);
        let cases: Vec<Case> = vec![
            (vec![], vec![]),
            (vec![s("a", None, 1)], vec![("a", 0)]),
            (
                vec![s("c", Some("a"), 3), s("a", None, 1), s("b", Some("a"), 2)],
                vec![("a", 0), ("b", 1), ("c", 1)],
            ),
            (
                vec![s("a", None, 1), s("b", Some("a"), 2), s("c", Some("b"), 3)],
                vec![("a", 0), ("b", 1), ("c", 2)],
            ),
            // A missing parent makes a root.
            (vec![s("x", Some("gone"), 5)], vec![("x", 0)]),
        ];
        for (input, want) in cases {
            fn flat(n: &[SnapshotNode], d: usize, out: &mut Vec<(String, usize)>) {
                for x in n {
                    out.push((x.info.name.clone(), d));
                    flat(&x.children, d + 1, out);
                }
            }
            let mut got = Vec::new();
            flat(&snapshot_tree(&input), 0, &mut got);
            let want: Vec<(String, usize)> =
                want.into_iter().map(|(a, b)| (a.to_string(), b)).collect();
            assert_eq!(got, want);
            assert_eq!(parents_first(&input).len(), input.len());
        }
    }
}
