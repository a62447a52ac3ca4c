//! Directory mode: VM notes (description, contact, OS) come from the directory. A VM with
//! a note entry shows the entry's values (with this daemon's queued edits); a VM without
//! one shows its definition's `<metadata>` as in standalone mode. The definition keeps its
//! own copy (uvmm writes both), so a VM moved to a standalone uvmmd keeps its notes.

use super::update::vm_changed;
use super::{Cache, VmEntry};
use std::collections::HashMap;
use uvmm_api::Event;
use uvmm_model::domain::Notes;

/// Put the directory's note of `vm` (if any) over the definition's.
pub(super) fn overlay_notes(notes: Option<&HashMap<String, Notes>>, vm: &mut VmEntry) {
    if let Some(n) = notes.and_then(|m| m.get(&vm.uuid.to_ascii_lowercase())) {
        show_directory_note(vm, n);
    }
}

/// Show the directory's `note` over the definition's notes, which are kept aside.
/// Returns whether the VM shows something else now.
fn show_directory_note(vm: &mut VmEntry, note: &Notes) -> bool {
    if vm.def.notes == *note {
        return false;
    }
    let shown = std::mem::replace(&mut vm.def.notes, note.clone());
    vm.metadata_notes.get_or_insert(shown);
    true
}

impl Cache {
    /// Directory mode: replace the notes of the VMs named in `changed` (`None`: the
    /// note is gone, the definition's show again) and announce each VM that shows
    /// something else now.
    pub fn set_directory_notes(&mut self, changed: Vec<(String, Option<Notes>)>) -> Vec<Event> {
        let map = self.directory_notes.get_or_insert_with(HashMap::new);
        let mut touched = Vec::new();
        for (uuid, notes) in changed {
            let uuid = uuid.to_ascii_lowercase();
            match notes {
                Some(n) => map.insert(uuid.clone(), n),
                None => map.remove(&uuid),
            };
            touched.push(uuid);
        }
        let mut events = Vec::new();
        for host in self.hosts.values_mut() {
            let hit: Vec<String> = host
                .vms
                .keys()
                .filter(|u| touched.contains(&u.to_ascii_lowercase()))
                .cloned()
                .collect();
            for uuid in hit {
                let vms = host.vms_mut(&mut self.pages);
                let Some(vm) = vms.get_mut(&uuid) else {
                    continue;
                };
                let changed = match map.get(&uuid.to_ascii_lowercase()) {
                    Some(note) => show_directory_note(vm, note),
                    None => vm.metadata_notes.take().is_some_and(|own| {
                        let changed = vm.def.notes != own;
                        vm.def.notes = own;
                        changed
                    }),
                };
                if changed {
                    let vm = vm.clone();
                    events.push(vm_changed(host, &vm, vm.state, false));
                }
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::super::update::tests::*;
    use super::*;
    use uvmm_model::VmState;

    fn note(d: &str) -> Option<Notes> {
        Some(Notes {
            description: Some(d.into()),
            ..Notes::default()
        })
    }

    /// The definition's notes are kept aside only while the directory's show, and come
    /// back when the directory's entry goes.
    #[test]
    fn directory_notes_show_over_the_definitions_and_go_back() {
        // `snap` gives the definition the description "d-web".
        let mut c = cache_with(vec![snap(U1, "web", VmState::Running)]);
        let shown = |c: &Cache| {
            let vm = &c.host(URI).unwrap().vms()[U1];
            (
                vm.def.notes.description.clone().unwrap_or_default(),
                vm.metadata_notes.is_some(),
            )
        };
        // (change, events, shown description, definition's notes kept aside)
        let steps: [(Option<Notes>, usize, &str, bool); 7] = [
            (None, 0, "d-web", false),
            (note("d-web"), 0, "d-web", false),
            (note("dir"), 1, "dir", true),
            (note("dir"), 0, "dir", true),
            (note("dir2"), 1, "dir2", true),
            (None, 1, "d-web", false),
            (None, 0, "d-web", false),
        ];
        for (i, (change, events, want, kept)) in steps.into_iter().enumerate() {
            let ev = c.set_directory_notes(vec![(U1.to_uppercase(), change)]);
            assert_eq!(ev.len(), events, "step {i}");
            assert_eq!(shown(&c), (want.to_string(), kept), "step {i}");
        }
        // A VM read anew while the directory has a note shows it, and gets its own back.
        c.set_directory_notes(vec![(U1.into(), note("dir"))]);
        c.vm_upsert(URI, snap(U1, "web", VmState::Shutoff));
        assert_eq!(shown(&c), ("dir".to_string(), true));
        c.set_directory_notes(vec![(U1.into(), None)]);
        assert_eq!(shown(&c), ("d-web".to_string(), false));
    }
}
