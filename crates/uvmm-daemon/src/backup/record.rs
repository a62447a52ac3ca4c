//! Recording a VM's persistent definition as a backup version.

use crate::hosts::shared::Shared;
use std::time::SystemTime;
use uvmm_backup::{BatchItem, Cause, SnapshotNote, VersionInput};
use uvmm_libvirt::{ErrorKind, Hypervisor};
use uvmm_model::domain::parse_domain;

/// What recording a definition found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Hash of the persistent definition that was read (None: nothing read, e.g. the VM
    /// is gone or transient).
    pub hash: Option<u64>,
    /// A new backup version was written.
    pub new_version: bool,
}

/// Hash of a definition without its layout (`xml::without_layout`): the definition watch
/// compares these, so a definition that was only re-indented (by libvirt, or by a tool
/// that re-serialised it) is not a change.
pub fn definition_hash(xml: &str) -> u64 {
    crate::cache::hash_str(&uvmm_model::xml::without_layout(xml))
}

/// One definition to record.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub uuid: &'a str,
    pub cause: Cause,
    /// Who made the change (`Caller::user`); `None` for changes made outside uvmm.
    pub user: Option<&'a str>,
    /// The VM goes away with this change: its last definition is recorded as deleted.
    pub deleting: bool,
    /// Whether the domain is persistent, when the recorder knows; otherwise the cache
    /// says.
    pub persistent: Option<bool>,
    /// A snapshot taken or deleted with this change (a version is written for it).
    pub snapshot: Option<&'a SnapshotNote>,
}

impl<'a> Record<'a> {
    /// A change made outside uvmm (or found by uvmm itself): no user.
    pub fn seen(uuid: &'a str, cause: Cause) -> Record<'a> {
        Record {
            uuid,
            cause,
            user: None,
            deleting: false,
            persistent: None,
            snapshot: None,
        }
    }
}

/// Save the persistent definition of `rec.uuid` as a new backup version if it changed; a
/// domain that is gone is recorded as deleted. Transient domains have no definition to
/// keep. Returns which definition it read (hashed) and whether it wrote a version; the
/// definition is read even without a backup store, since the definition watch compares
/// the hash.
pub fn record_definition(
    shared: &Shared,
    uri: &str,
    hv: &dyn Hypervisor,
    rec: Record<'_>,
) -> Result<Recorded, String> {
    let Record {
        uuid,
        cause,
        user,
        deleting,
        persistent,
        snapshot,
    } = rec;
    // A moving VM is recorded by its move, once, on its new host (cause `migrate`): the
    // source's undefine and the target's define on the way are not changes of their own.
    if shared.read().moving_at(uuid, uri) {
        return Ok(Recorded::default());
    }
    let mut input = VersionInput {
        host: uri.to_string(),
        cause,
        user: user.map(str::to_string),
        deleted: deleting,
        snapshot: snapshot.cloned(),
        ..VersionInput::default()
    };
    let mark_deleted = |input: &VersionInput| match &shared.backups {
        None => Ok(Recorded::default()),
        Some(store) => store
            .mark_deleted(uuid, input)
            .map(|v| Recorded {
                hash: None,
                new_version: v.is_some(),
            })
            .map_err(|e| e.to_string()),
    };
    let persistent = persistent.or_else(|| {
        shared
            .read()
            .host(uri)
            .and_then(|h| h.vms().get(uuid))
            .map(|v| v.persistent)
    });
    match persistent {
        None => return mark_deleted(&input),
        Some(false) => return Ok(Recorded::default()),
        Some(true) => {}
    }
    let xml = match hv.domain_xml(uuid, true, true) {
        Ok(x) => x,
        Err(e) if e.kind == ErrorKind::NotFound => return mark_deleted(&input),
        Err(e) => return Err(e.to_string()),
    };
    let hash = Some(definition_hash(&xml));
    let Some(store) = &shared.backups else {
        return Ok(Recorded {
            hash,
            new_version: false,
        });
    };
    // The common case at start and in every statistics round: nothing to parse or write.
    // A move is recorded even with the same definition (the store compares hosts).
    if !deleting && cause != Cause::Migrate && snapshot.is_none() && store.unchanged(uuid, &xml) {
        return Ok(Recorded {
            hash,
            new_version: false,
        });
    }
    if let Ok(def) = parse_domain(&xml) {
        input.name = def.name;
        input.hypervisor = def.domain_type;
        input.os_type = def.os_type;
    }
    match store.save(uuid, &xml, &input) {
        Ok(Some(v)) => {
            tracing::debug!(%uri, %uuid, version = v, %cause, "definition backed up");
            if let Err(e) = store.prune_vm(uuid, shared.retention, SystemTime::now()) {
                tracing::warn!(%uuid, "pruning old versions failed: {e}");
            }
            Ok(Recorded {
                hash,
                new_version: true,
            })
        }
        Ok(None) => Ok(Recorded {
            hash,
            new_version: false,
        }),
        Err(e) => {
            tracing::error!(%uri, %uuid, "backup failed: {e}");
            Err(e.to_string())
        }
    }
}

/// What the resync of one host found (see [`record_resync`]).
#[derive(Debug, Default)]
pub struct Resynced {
    /// The hash of every persistent definition read.
    pub hashes: Vec<(String, u64)>,
    /// The VMs for which a new version was recorded.
    pub changed: Vec<String>,
    /// VMs whose definition could not be read or recorded.
    pub failed: usize,
}

/// [`record_definition`] with cause `resync` for every persistent VM of a host just
/// (re)connected, with the new versions written as one batch (`BackupStore::save_batch`:
/// two filesystem syncs for the host instead of several fsyncs per VM; on a first start
/// every VM is new).
pub fn record_resync(
    shared: &Shared,
    uri: &str,
    hv: &dyn Hypervisor,
    persistent: Vec<String>,
) -> Resynced {
    let mut out = Resynced {
        hashes: Vec::with_capacity(persistent.len()),
        ..Resynced::default()
    };
    // (uuid, definition, record) of the VMs whose definition differs from the latest
    // version this process knows.
    let mut batch: Vec<(String, String, VersionInput)> = Vec::new();
    for uuid in persistent {
        let rec = Record {
            persistent: Some(true),
            ..Record::seen(&uuid, Cause::Resync)
        };
        let Some(store) = shared.backups.as_deref() else {
            // Without a store only the hashes matter: the single path reads them.
            match record_definition(shared, uri, hv, rec) {
                Ok(r) => out.hashes.extend(r.hash.map(|h| (uuid.clone(), h))),
                Err(_) => out.failed += 1,
            }
            continue;
        };
        if shared.read().moving_at(&uuid, uri) {
            continue;
        }
        let xml = match hv.domain_xml(&uuid, true, true) {
            Ok(x) => x,
            // Gone since the listing: recorded as deleted, one by one (rare).
            Err(e) if e.kind == ErrorKind::NotFound => {
                match record_definition(shared, uri, hv, rec) {
                    Ok(r) => out.changed.extend(r.new_version.then(|| uuid.clone())),
                    Err(_) => out.failed += 1,
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(%uri, %uuid, "reading the definition failed: {e}");
                out.failed += 1;
                continue;
            }
        };
        if store.unchanged(&uuid, &xml) {
            out.hashes.push((uuid, definition_hash(&xml)));
            continue;
        }
        let mut input = VersionInput {
            host: uri.to_string(),
            cause: Cause::Resync,
            ..VersionInput::default()
        };
        if let Ok(def) = parse_domain(&xml) {
            input.name = def.name;
            input.hypervisor = def.domain_type;
            input.os_type = def.os_type;
        }
        batch.push((uuid, xml, input));
    }
    let Some(store) = shared.backups.as_deref() else {
        return out;
    };
    let items: Vec<BatchItem<'_>> = batch
        .iter()
        .map(|(uuid, xml, input)| BatchItem { uuid, xml, input })
        .collect();
    for ((uuid, xml, _), saved) in batch.iter().zip(store.save_batch(&items)) {
        match saved {
            Ok(v) => {
                out.hashes.push((uuid.clone(), definition_hash(xml)));
                // A first version has nothing to prune.
                if v.is_some_and(|v| v > 1) {
                    if let Err(e) = store.prune_vm(uuid, shared.retention, SystemTime::now()) {
                        tracing::warn!(%uuid, "pruning old versions failed: {e}");
                    }
                }
                out.changed.extend(v.map(|_| uuid.clone()));
            }
            Err(e) => {
                tracing::error!(%uri, %uuid, "backup failed: {e}");
                out.failed += 1;
            }
        }
    }
    out
}
