//! The live cache of hosts and VMs. Every read of the API is answered from here; host
//! workers write into it. Each update returns the events it caused, so "what changed" is
//! decided in one pure place that the unit tests cover with tables (`update.rs`). `views`
//! turns entries into API types, `query` finds and lists, `listing` keeps the rows pages
//! filter and sort, `pages` the daemon-wide name order that pages sorted by name use.

pub mod listing;
mod moving;
mod notes;
mod pages;
mod query;
mod update;
pub mod views;

pub use query::LookupError;
pub use views::*;

use crate::jobs::JobError;
use listing::ListRows;
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};
use uvmm_api::{HostOrigin, HostStatus};
use uvmm_libvirt::{DomainSnapshot, HostInfo, PoolInfo};
use uvmm_model::domain::{parse_domain, DomainDef};
use uvmm_model::monitor::{Level, Usage};
use uvmm_model::pending::{pending, Pending};
use uvmm_model::storage::VolumeDef;
use uvmm_model::VmState;

#[derive(Debug, Clone)]
pub struct VmEntry {
    pub uuid: String,
    pub name: String,
    pub state: VmState,
    pub reason: u32,
    pub persistent: bool,
    pub autostart: bool,
    pub managed_save: bool,
    pub max_memory_kib: u64,
    pub memory_kib: u64,
    pub vcpus: u32,
    pub def: DomainDef,
    /// The notes of the definition's `<metadata>` while `def.notes` shows the directory's
    /// instead (`notes.rs`); they come back when its entry goes. `None`: `def.notes` are
    /// the definition's (standalone, every VM; not kept twice).
    pub metadata_notes: Option<uvmm_model::domain::Notes>,
    /// What the next start of a running VM brings (its persistent definition differs).
    pub pending: Option<Pending>,
    /// Hash of the live XML (and of the persistent one of a running VM): tells definition
    /// changes apart from state changes, and is the ETag.
    pub xml_hash: u64,
    pub cpu_usage: f64,
    cpu_sample: Option<(u64, Instant)>,
}

impl VmEntry {
    /// The images of every drive the VM has now or will have at its next start: a volume
    /// that only the stored definition names is still in use (it is needed at the next
    /// start), so it must not look free to delete.
    pub fn disk_sources(&self) -> impl Iterator<Item = &str> {
        let next = self
            .pending
            .as_ref()
            .and_then(|p| p.disks.as_deref())
            .unwrap_or_default();
        self.def
            .disks
            .iter()
            .chain(next)
            .filter_map(|d| d.source.as_deref())
    }

    /// Build from what libvirt returned. XML the model cannot read still gives an entry
    /// (with what the snapshot knows), so one odd domain never hides a host's others.
    pub fn from_snapshot(s: DomainSnapshot) -> VmEntry {
        let def = parse_domain(&s.xml).unwrap_or_else(|e| {
            tracing::warn!(uuid = %s.uuid, name = %s.name, "unreadable domain XML: {e}");
            DomainDef {
                name: s.name.clone(),
                uuid: s.uuid.clone(),
                ..DomainDef::default()
            }
        });
        // A change stored for the next start is a change of the VM: it shows, and it
        // changes the ETag (an edit based on the old persistent definition must fail).
        let pending = s.next_boot_xml.as_deref().and_then(|x| match parse_domain(x) {
            Ok(next) => pending(&def, &next),
            Err(e) => {
                tracing::warn!(uuid = %s.uuid, name = %s.name, "unreadable persistent XML: {e}");
                None
            }
        });
        VmEntry {
            xml_hash: xml_hash(&s.xml, s.next_boot_xml.as_deref()),
            pending,
            uuid: s.uuid,
            name: s.name,
            state: s.state,
            reason: s.reason,
            persistent: s.persistent,
            autostart: s.autostart,
            managed_save: s.managed_save,
            // Bulk statistics leave sizes of inactive domains out: the XML has them.
            max_memory_kib: if s.max_memory_kib > 0 {
                s.max_memory_kib
            } else {
                def.max_memory_kib
            },
            memory_kib: if s.memory_kib > 0 {
                s.memory_kib
            } else {
                def.memory_kib
            },
            vcpus: if s.vcpus > 0 { s.vcpus } else { def.vcpus },
            metadata_notes: None,
            def,
            cpu_usage: 0.0,
            cpu_sample: None,
        }
    }

    /// Fields whose change is worth a `vm_changed` event (not statistics).
    fn same_definition(&self, other: &VmEntry) -> bool {
        self.name == other.name
            && self.persistent == other.persistent
            && self.autostart == other.autostart
            && self.max_memory_kib == other.max_memory_kib
            && self.xml_hash == other.xml_hash
    }
}

/// FNV-1a: stable across processes and releases, unlike std's DefaultHasher.
pub fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Hash of the live XML, combined with the persistent XML of a running VM. A shut-off VM
/// keeps the hash of its one definition.
fn xml_hash(live: &str, next_boot: Option<&str>) -> u64 {
    match next_boot {
        None => hash_str(live),
        Some(next) => hash_str(live) ^ hash_str(next).rotate_left(1),
    }
}

/// The ETag of a VM: a hash of its live XML and, while it runs, of its persistent XML
/// (both as read with secrets, so a password change counts as a change).
pub fn etag_of(live: &str, next_boot: Option<&str>) -> String {
    format!("\"{:016x}\"", xml_hash(live, next_boot))
}

/// How fresh a pool's figures are: libvirt reports them as of its last refresh of the
/// pool (virStoragePoolRefresh).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolFreshness {
    /// When the refresh behind these figures started; None: never on this connection.
    pub refreshed_at: Option<SystemTime>,
    /// Why the last refresh failed (the figures are then those of an earlier one).
    pub error: Option<String>,
}

/// A storage pool as last read, with the monitoring verdict.
#[derive(Debug, Clone)]
pub struct PoolEntry {
    pub info: PoolInfo,
    pub volumes: Vec<VolumeDef>,
    pub provisioned: u64,
    pub level: Level,
    pub alerts: Vec<String>,
    pub freshness: PoolFreshness,
    /// The longest age the daemon lets these figures reach (`pool_interval_secs`).
    pub max_age: std::time::Duration,
}

impl PoolEntry {
    pub fn usage(&self) -> Usage {
        Usage {
            capacity: self.info.capacity,
            allocation: self.info.allocation,
            available: self.info.available,
            provisioned: self.provisioned,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HostEntry {
    pub id: String,
    pub uri: String,
    pub origin: HostOrigin,
    pub status: HostStatus,
    pub info: Option<HostInfo>,
    pub free_memory_kib: Option<u64>,
    pub last_error: Option<String>,
    pub since: SystemTime,
    pub retry_at: Option<SystemTime>,
    /// Private: every change must go through `vms_mut` or `refresh_rows`, so the
    /// listing rows never disagree with the entries.
    vms: BTreeMap<String, VmEntry>,
    rows: OnceLock<ListRows>,
    pub pools: Vec<PoolEntry>,
}

impl HostEntry {
    pub fn available(&self) -> bool {
        self.status == HostStatus::Connected
    }

    /// Ok when connected; otherwise the error a request for this host answers with.
    pub fn ensure_available(&self) -> Result<(), JobError> {
        if self.available() {
            return Ok(());
        }
        Err(JobError::HostUnavailable {
            host: self.uri.clone(),
            reason: self
                .last_error
                .clone()
                .unwrap_or_else(|| "not connected yet".into()),
        })
    }

    pub fn vms(&self) -> &BTreeMap<String, VmEntry> {
        &self.vms
    }

    /// For changes of the VM set or of names and notes: the rows are rebuilt, and so is
    /// the cache's name order (`pages`), which callers must hand in so none forgets it.
    fn vms_mut(
        &mut self,
        pages: &mut OnceLock<pages::NameIndex>,
    ) -> &mut BTreeMap<String, VmEntry> {
        self.rows = OnceLock::new();
        *pages = OnceLock::new();
        &mut self.vms
    }

    /// After figures changed in place (statistics): copy them into the rows.
    fn refresh_rows(&mut self) {
        if let Some(rows) = self.rows.get_mut() {
            rows.refresh_figures(&self.vms);
        }
    }

    /// The listing rows, built on first use after a change.
    pub fn rows(&self) -> &ListRows {
        self.rows.get_or_init(|| ListRows::build(&self.vms))
    }
}

#[derive(Debug, Default)]
pub struct Cache {
    hosts: BTreeMap<String, HostEntry>,
    ids: HashMap<String, String>,
    /// Bumped by every change that produced an event (see `Shared::update`).
    pub generation: u64,
    /// Bumped by every statistics round.
    pub stats_generation: u64,
    /// VMs moving between hosts (`moving.rs`), by UUID.
    moving: HashMap<String, moving::Move>,
    /// Directory mode: the VM notes of the directory by lower-case UUID (`notes.rs`);
    /// `None` standalone, where notes are the definition's `<metadata>`.
    directory_notes: Option<HashMap<String, uvmm_model::domain::Notes>>,
    /// Every VM in name order, built on the first page after a change of the host set,
    /// a VM set, a name or notes (`pages.rs`).
    pages: OnceLock<pages::NameIndex>,
}
