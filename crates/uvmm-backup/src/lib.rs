//! Versioned backups of VM definitions and restoring them: shared by uvmmd (which writes
//! the store on every change) and uvmm-restore (which must work when uvmmd does not).

pub mod atomic;
pub mod batch;
pub mod restore;
pub mod store;

pub use batch::{BatchItem, BatchSync};
pub use store::{
    BackupStore, BackupSummary, Cause, Retention, SnapshotEvent, SnapshotNote, VersionInput,
    VersionMeta,
};
