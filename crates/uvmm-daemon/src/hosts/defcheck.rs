//! The worker's side of the definition watch: a definition changed without a libvirt
//! event (`virsh ... --config`) is found, recorded as `external` and re-read.

use super::worker::Worker;
use crate::backup::record::{definition_hash, record_definition, Record};
use crate::defwatch::Seen;
use std::time::Instant;
use uvmm_backup::Cause;
use uvmm_libvirt::{ErrorKind, Hypervisor, LibvirtError};

impl Worker {
    /// Record a change uvmm did not make (or found itself): no user.
    pub(crate) fn backup(
        &self,
        hv: &dyn Hypervisor,
        uuid: &str,
        cause: Cause,
    ) -> Result<(), String> {
        self.record(hv, Record::seen(uuid, cause))
    }

    /// Record a definition (see `record_definition`) and remember what was read, so the
    /// definition watch does not mistake a change it has just recorded for a new one.
    pub(crate) fn record(&self, hv: &dyn Hypervisor, rec: Record<'_>) -> Result<(), String> {
        let r = record_definition(&self.shared, &self.uri, hv, rec)?;
        let mut defs = self.defs.borrow_mut();
        match r.hash {
            Some(h) if !rec.deleting => {
                defs.observe(rec.uuid, h);
            }
            _ => defs.forget(rec.uuid),
        }
        Ok(())
    }

    /// Compare one VM's persistent definition with the one seen last (before a change
    /// through uvmm). Only a broken connection is an error.
    pub(crate) fn check_definition(
        &self,
        hv: &dyn Hypervisor,
        uuid: &str,
    ) -> Result<(), LibvirtError> {
        match hv.domain_xml(uuid, true, true) {
            Ok(xml) => self.compare_definition(hv, uuid, &xml),
            Err(e) if e.kind == ErrorKind::NotFound => self.definition_gone(hv, uuid),
            Err(e) if e.kind == ErrorKind::Connection => Err(e),
            Err(e) => {
                tracing::debug!(uri = %self.uri, %uuid, "cannot read the definition: {e}");
                Ok(())
            }
        }
    }

    /// A definition read now against the one seen last: a change that came without an
    /// event is recorded as `external` and the VM re-read (its view and ETag).
    pub(crate) fn compare_definition(
        &self,
        hv: &dyn Hypervisor,
        uuid: &str,
        xml: &str,
    ) -> Result<(), LibvirtError> {
        let seen = self.defs.borrow_mut().observe(uuid, definition_hash(xml));
        match seen {
            Seen::Same => {}
            Seen::New => {
                let _ = self.backup(hv, uuid, Cause::External);
            }
            Seen::Changed => {
                tracing::info!(uri = %self.uri, %uuid, "definition changed without an event (e.g. virsh --config): recorded as external");
                // Version first: whoever sees the new view finds its version too.
                let _ = self.backup(hv, uuid, Cause::External);
                self.refresh(hv, uuid)?;
            }
        }
        Ok(())
    }

    /// No persistent definition any more, without an event (or the event is still
    /// queued): the cache learns, and the backup store records the deletion.
    pub(crate) fn definition_gone(
        &self,
        hv: &dyn Hypervisor,
        uuid: &str,
    ) -> Result<(), LibvirtError> {
        self.defs.borrow_mut().forget(uuid);
        self.refresh(hv, uuid)?;
        let _ = self.backup(hv, uuid, Cause::External);
        Ok(())
    }

    /// The slice of the definition watch's cycle that is due now.
    pub(crate) fn sweep_definitions(
        &self,
        hv: &dyn Hypervisor,
        now: Instant,
    ) -> Result<(), LibvirtError> {
        let interval = self.shared.timing.reconcile_interval;
        let due = self.defs.borrow_mut().due(now, interval, || {
            self.shared
                .read()
                .host(&self.uri)
                .map(|h| {
                    h.vms()
                        .values()
                        .filter(|v| v.persistent)
                        .map(|v| v.uuid.clone())
                        .collect()
                })
                .unwrap_or_default()
        });
        if due.is_empty() {
            return Ok(());
        }
        let read = hv.persistent_definitions(&due)?;
        for (uuid, xml) in &read {
            self.compare_definition(hv, uuid, xml)?;
        }
        let listed: std::collections::HashSet<&str> =
            read.iter().map(|(u, _)| u.as_str()).collect();
        for uuid in due.iter().filter(|u| !listed.contains(u.as_str())) {
            // Not listed as persistent: undefined, made transient, or unreadable; one
            // look at the domain tells which.
            match hv.domain(uuid)? {
                Some(s) if s.persistent => {}
                _ => self.definition_gone(hv, uuid)?,
            }
        }
        Ok(())
    }
}
