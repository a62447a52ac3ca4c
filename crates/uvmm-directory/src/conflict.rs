//! The conflict rule for queued note edits, as a pure function.
//!
//! A queued edit remembers the note as this client saw it (`base`). At replay, for every
//! field the edit touches:
//! - the directory already has the edited value: nothing to do;
//! - the directory still has the base value: nobody else changed it, the edit is written;
//! - otherwise someone changed the field in the directory meanwhile: a **conflict**. The
//!   newer change wins: the directory's if its `modifyTimestamp` is at or after the
//!   second of the local edit, else the local edit. Ties go to the directory (it is the
//!   shared state other uvmmd already show). A note deleted in the directory has no
//!   timestamp, so a queued edit recreates it.
//!
//! Fields the edit does not touch are never written, so concurrent edits of different
//! fields merge without conflict. Every conflict is reported with both values and the
//! winner.

use crate::model::{parse_generalized_time, Note, NoteField};
use crate::store::PendingEdit;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Winner {
    Local,
    Directory,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub uuid: String,
    pub field: NoteField,
    /// The value the local edit started from.
    pub base: Option<String>,
    pub local: Option<String>,
    pub directory: Option<String>,
    pub winner: Winner,
    /// The directory entry's `modifyTimestamp`, if the entry exists.
    pub directory_modified: Option<String>,
    pub edited_at_ms: i64,
}

/// What replaying one edit writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Merge {
    /// `(field, value)`; `None` clears the attribute.
    pub writes: Vec<(NoteField, Option<String>)>,
    pub conflicts: Vec<Conflict>,
}

pub fn merge(p: &PendingEdit, current: Option<&Note>) -> Merge {
    let mut m = Merge::default();
    let dir_secs = current
        .and_then(|n| n.modified.as_deref())
        .and_then(parse_generalized_time);
    let local_secs = p.edited_at_ms.div_euclid(1000);
    for (field, local) in p.edit.fields() {
        let dir = current.and_then(|n| n.values.get(field));
        let base = p.base.get(field);
        if dir == local {
            continue;
        }
        if dir == base {
            m.writes.push((field, local.map(str::to_string)));
            continue;
        }
        let winner = match dir_secs {
            Some(t) if t >= local_secs => Winner::Directory,
            _ => Winner::Local,
        };
        if winner == Winner::Local {
            m.writes.push((field, local.map(str::to_string)));
        }
        m.conflicts.push(Conflict {
            uuid: p.uuid.clone(),
            field,
            base: base.map(str::to_string),
            local: local.map(str::to_string),
            directory: dir.map(str::to_string),
            winner,
            directory_modified: current.and_then(|n| n.modified.clone()),
            edited_at_ms: p.edited_at_ms,
        });
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NoteEdit, NoteValues};

    fn vals(desc: Option<&str>, contact: Option<&str>) -> NoteValues {
        NoteValues {
            description: desc.map(Into::into),
            contact: contact.map(Into::into),
            ..Default::default()
        }
    }
    fn note(v: NoteValues, modified: &str) -> Note {
        Note {
            uuid: "u".into(),
            dn: "x".into(),
            values: v,
            modified: Some(modified.into()),
        }
    }
    // 2026-01-01T12:00:00Z
    const EDIT_MS: i64 = 1_767_268_800_000;

    #[test]
    fn conflict_rule() {
        let edit = PendingEdit {
            seq: 1,
            uuid: "u".into(),
            edit: NoteEdit {
                description: Some("local".into()),
                ..Default::default()
            },
            base: vals(Some("base"), Some("ops")),
            edited_at_ms: EDIT_MS + 500,
        };
        type Case = (
            &'static str,
            Option<Note>,
            Vec<(NoteField, Option<&'static str>)>,
            Option<Winner>,
        );
        let table: Vec<Case> = vec![
            (
                "unchanged in the directory: written",
                Some(note(vals(Some("base"), Some("ops")), "20260101110000Z")),
                vec![(NoteField::Description, Some("local"))],
                None,
            ),
            (
                "already the edited value: nothing",
                Some(note(vals(Some("local"), Some("ops")), "20260101130000Z")),
                vec![],
                None,
            ),
            (
                "other field changed in the directory: merged, no conflict",
                Some(note(
                    vals(Some("base"), Some("someone else")),
                    "20260101130000Z",
                )),
                vec![(NoteField::Description, Some("local"))],
                None,
            ),
            (
                "changed in the directory later: directory wins",
                Some(note(vals(Some("theirs"), Some("ops")), "20260101120100Z")),
                vec![],
                Some(Winner::Directory),
            ),
            (
                "changed in the directory in the same second: directory wins",
                Some(note(vals(Some("theirs"), Some("ops")), "20260101120000Z")),
                vec![],
                Some(Winner::Directory),
            ),
            (
                "changed in the directory earlier: local wins",
                Some(note(vals(Some("theirs"), Some("ops")), "20260101115959Z")),
                vec![(NoteField::Description, Some("local"))],
                Some(Winner::Local),
            ),
            (
                "deleted in the directory: recreated",
                None,
                vec![(NoteField::Description, Some("local"))],
                Some(Winner::Local),
            ),
        ];
        for (name, current, writes, conflict) in table {
            let m = merge(&edit, current.as_ref());
            let got: Vec<(NoteField, Option<&str>)> =
                m.writes.iter().map(|(f, v)| (*f, v.as_deref())).collect();
            assert_eq!(got, writes, "{name}");
            assert_eq!(m.conflicts.first().map(|c| c.winner), conflict, "{name}");
            if let Some(c) = m.conflicts.first() {
                assert_eq!(c.local.as_deref(), Some("local"), "{name}");
                assert_eq!(c.base.as_deref(), Some("base"), "{name}");
            }
        }
    }

    #[test]
    fn new_note_and_cleared_fields() {
        let create = PendingEdit {
            seq: 1,
            uuid: "u".into(),
            edit: NoteEdit {
                description: Some("new".into()),
                contact: Some(String::new()),
                ..Default::default()
            },
            base: NoteValues::default(),
            edited_at_ms: EDIT_MS,
        };
        let m = merge(&create, None);
        assert_eq!(m.writes, [(NoteField::Description, Some("new".into()))]);
        assert!(m.conflicts.is_empty());
        let clear = PendingEdit {
            base: vals(Some("x"), Some("ops")),
            ..create
        };
        let m = merge(
            &clear,
            Some(&note(vals(Some("x"), Some("ops")), "20260101110000Z")),
        );
        assert_eq!(
            m.writes,
            [
                (NoteField::Description, Some("new".into())),
                (NoteField::Contact, None)
            ]
        );
    }
}
