//! VMs on their way to another host. While a migration runs, libvirt has the VM on both
//! hosts (the target's incoming copy is paused, the source's runs) and each host's worker
//! would show what its host says: the VM twice. Between the source's undefine and the
//! target's event it would be on neither. So while a VM moves, the target's copy is held
//! back (not in the target's VM list, no events), the source's entry stays even when
//! libvirt has undefined it there, and the end of the move swaps source and
//! target in one cache update (one lock, one batch of events): `vm list` always shows the
//! VM on exactly one host.

use super::Cache;
use uvmm_api::Event;
use uvmm_libvirt::DomainSnapshot;

/// A move in progress: from which host to which (URIs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub from: String,
    pub to: String,
}

impl Cache {
    /// Mark `uuid` as moving; false when it already moves (one move at a time per VM).
    pub fn begin_move(&mut self, uuid: &str, from: &str, to: &str) -> bool {
        if self.moving.contains_key(uuid) {
            return false;
        }
        let m = Move {
            from: from.to_string(),
            to: to.to_string(),
        };
        self.moving.insert(uuid.to_string(), m);
        true
    }

    /// Whether `uuid` is moving to or from `uri`.
    pub fn moving_at(&self, uuid: &str, uri: &str) -> bool {
        self.moving
            .get(uuid)
            .is_some_and(|m| m.from == uri || m.to == uri)
    }

    /// Whether a domain read from `uri` is a moving VM's copy on its target, to be held
    /// back until the move ends.
    pub(super) fn held_back(&self, uri: &str, uuid: &str) -> bool {
        self.moving.get(uuid).is_some_and(|m| m.to == uri)
    }

    /// Whether `uuid` moves away from `uri`: its entry there stays until the move ends
    /// (libvirt undefines it on the source before the move is over for uvmm).
    pub(super) fn kept_until_moved(&self, uri: &str, uuid: &str) -> bool {
        self.moving.get(uuid).is_some_and(|m| m.from == uri)
    }

    /// The move of `uuid` ended: drop the mark and set both hosts' entries to what libvirt
    /// says now, in one update (`Some(None)`: not there; `None`: the host could not be
    /// asked, its entry stays as it is).
    pub fn end_move(
        &mut self,
        uuid: &str,
        source: Option<Option<DomainSnapshot>>,
        target: Option<Option<DomainSnapshot>>,
    ) -> Vec<Event> {
        // The mark goes first: the updates below are the move's own.
        let Some(m) = self.moving.remove(uuid) else {
            return vec![];
        };
        let mut events = Vec::new();
        for (uri, snap) in [(&m.from, source), (&m.to, target)] {
            events.extend(match snap {
                Some(Some(s)) => self.vm_upsert(uri, s),
                Some(None) => self.vm_remove(uri, uuid),
                None => vec![],
            });
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_move_at_a_time_and_only_the_target_is_held() {
        let mut c = Cache::default();
        assert!(c.begin_move("u", "a", "b"));
        assert!(!c.begin_move("u", "a", "c"));
        let cases = [
            ("a", true, false, true),
            ("b", true, true, false),
            ("c", false, false, false),
        ];
        for (uri, moving, held, kept) in cases {
            assert_eq!(c.moving_at("u", uri), moving, "{uri}");
            assert_eq!(c.held_back(uri, "u"), held, "{uri}");
            assert_eq!(c.kept_until_moved(uri, "u"), kept, "{uri}");
        }
        assert!(c.end_move("u", None, None).is_empty());
        assert!(!c.moving_at("u", "b"));
        assert!(c.end_move("u", None, None).is_empty());
    }
}
