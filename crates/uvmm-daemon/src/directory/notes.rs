//! VM notes in directory mode. uvmm writes a note edit to both places: the definition's
//! `<metadata>` (the VM job, as standalone) and the directory entry (keyed by UUID; queued
//! in the journal while the directory is down). What the API shows is the directory's
//! note (with queued edits) where there is one (`cache/notes.rs`).
//!
//! Which side wins: the directory. A note edited there by another tool replaces the
//! shown values at the next refresh (the `<metadata>` copy is left as it was until the
//! next edit through uvmm); a queued edit meets changes made meanwhile by the library's
//! rule (docs/directory.md, "Conflict rule": per field, the newer change wins, ties go to
//! the directory), logged.

use super::DirectoryMode;
use crate::caller::Caller;
use crate::error::Error;
use crate::jobs::Target;
use crate::ops::Ops;
use crate::vm::create::CreateVm;
use crate::vm::edit::EditVm;
use crate::vm::Edit;
use uvmm_api::{CreateVmRequest, VmChangeResponse, VmPatch};
use uvmm_directory::{error_chain, NoteEdit, NoteValues, NoteWrite};
use uvmm_model::domain::Notes;

pub(super) fn shown(v: NoteValues) -> Notes {
    Notes {
        description: v.description,
        contact: v.contact,
        os: v.os,
    }
}

/// All notes of the directory's state (with queued edits), by UUID.
pub fn all_notes(d: &uvmm_directory::Directory) -> Vec<(String, Option<Notes>)> {
    let mut uuids: Vec<String> = d.snapshot().notes.keys().cloned().collect();
    uuids.extend(d.pending().iter().map(|p| p.uuid.to_ascii_lowercase()));
    uuids.sort();
    uuids.dedup();
    uuids
        .into_iter()
        .map(|u| {
            let n = d.note(&u).map(shown);
            (u, n)
        })
        .collect()
}

impl DirectoryMode {
    /// Write `edit` of the note of `uuid` (queued while the directory is down) and show
    /// the result at once. `Err` says why the directory refused it.
    pub async fn write_note(
        &self,
        shared: &crate::hosts::shared::Shared,
        uuid: &str,
        edit: NoteEdit,
    ) -> Result<(), String> {
        if edit == NoteEdit::default() {
            return Ok(());
        }
        let mut d = self.dir.lock().await;
        let result = d.set_note(uuid, edit).await;
        let now = d.note(uuid).map(shown);
        self.store_status(&d);
        drop(d);
        shared.update(|c| ((), c.set_directory_notes(vec![(uuid.to_string(), now)])));
        match result {
            Ok(NoteWrite::Applied { report }) => {
                super::log_replay(&report);
                Ok(())
            }
            Ok(NoteWrite::Queued { pending }) => {
                tracing::warn!(%uuid, pending, "directory down: note edit queued");
                Ok(())
            }
            Err(e) => Err(error_chain(&e)),
        }
    }

    /// The DN of a directory profile, for the note's profile reference.
    async fn profile_dn(&self, name: &str) -> Option<String> {
        let d = self.dir.lock().await;
        d.snapshot().profile(name).map(|p| p.dn.clone())
    }
}

impl Ops {
    /// Directory mode: write `edit` of the answered VM's note, and answer with the note
    /// as the directory has it now. Standalone: the answer as it is.
    async fn with_directory_note(
        &self,
        mut resp: VmChangeResponse,
        edit: NoteEdit,
    ) -> VmChangeResponse {
        let Some(d) = &self.directory else {
            return resp;
        };
        let written = d
            .write_note(&self.shared, &resp.vm.summary.uuid, edit)
            .await;
        if let Err(why) = written {
            resp.warnings.push(format!(
                "the note could not be written to the directory: {why}"
            ));
        }
        let notes = {
            let cache = self.shared.read();
            let found = cache.hosts().find_map(|h| {
                h.vms()
                    .get(&resp.vm.summary.uuid)
                    .map(|v| v.def.notes.clone())
            });
            found
        };
        if let Some(n) = notes {
            resp.vm.summary.description = n.description;
            resp.vm.contact = n.contact;
            resp.vm.os = n.os;
        }
        resp
    }

    /// `PATCH /api/v1/vms/{uuid}`: the edit job, then (directory mode) the note.
    pub async fn edit_vm(
        &self,
        caller: &Caller,
        target: impl Into<Target>,
        if_match: Option<String>,
        patch: VmPatch,
    ) -> Result<VmChangeResponse, Error> {
        let edit = NoteEdit {
            description: patch.description.clone(),
            contact: patch.contact.clone(),
            os: patch.os.clone(),
            profile_ref: None,
        };
        let resp = self
            .run(caller, target, Edit::new(if_match, EditVm { patch }))
            .await?;
        Ok(self.with_directory_note(resp, edit).await)
    }

    /// `POST /api/v1/vms`: the create job, then (directory mode) the note, with the
    /// profile's DN when it came from the directory.
    pub async fn create_vm(
        &self,
        caller: &Caller,
        req: CreateVmRequest,
    ) -> Result<VmChangeResponse, Error> {
        let host = Target::Host(req.host.clone());
        let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let mut edit = NoteEdit {
            description: nonempty(&req.description),
            contact: nonempty(&req.contact),
            os: nonempty(&req.os),
            profile_ref: None,
        };
        if let Some(d) = &self.directory {
            edit.profile_ref = d.profile_dn(&req.profile).await;
        }
        let job = CreateVm::new(self, req)?;
        let resp = self.run(caller, host, job).await?;
        Ok(self.with_directory_note(resp, edit).await)
    }
}
