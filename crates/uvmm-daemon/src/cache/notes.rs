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
        vm.def.notes = n.clone();
    }
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
                let want = map
                    .get(&uuid.to_ascii_lowercase())
                    .cloned()
                    .unwrap_or_else(|| vm.metadata_notes.clone());
                if vm.def.notes != want {
                    vm.def.notes = want;
                    let vm = vm.clone();
                    events.push(vm_changed(host, &vm, vm.state, false));
                }
            }
        }
        events
    }
}
