//! uvmm's directory mode, as a library: which virtualization hosts to manage, VM profiles,
//! VM notes and logins, read from (and notes written to) an LDAP directory — a UCS domain's
//! or a plain OpenLDAP — and cached on disk so uvmmd keeps running while the directory is
//! down. No libvirt and no daemon code: the daemon holds one [`Directory`] and plugs its
//! parts in (host source, profile source, notes store, login backend).
//!
//! The schema files (`schema/`) and `docs/directory.md` describe the entries.

pub mod ber;
pub mod client;
pub mod config;
pub mod conflict;
mod conn;
pub mod diff;
pub mod error;
pub mod escape;
pub mod login;
pub mod model;
pub mod store;
pub mod sync;
pub mod watch;

pub use client::{
    error_chain, Directory, NoteWrite, Opened, RefreshOutcome, ReplayReport, Status, User,
};
pub use config::{ChangeDetection, DirectoryConfig};
pub use conflict::{Conflict, Winner};
pub use diff::{diff, ChangeSet, NoteChange};
pub use error::{Error, Result};
pub use model::{
    merge_profiles, ConvertedProfile, DirectoryProfile, Group, HostEntry, Note, NoteEdit,
    NoteField, NoteValues, ProfileConversionError, ProfileOrigin, Snapshot,
};
pub use watch::{spawn_refresh_loop, DirectoryEvent};

/// The schema files shipped with the crate, for tools that install them.
pub mod schema {
    pub const UVMM_SCHEMA: &str = include_str!("../schema/uvmm.schema");
    pub const UVMM_LDIF: &str = include_str!("../schema/uvmm.ldif");
    pub const EXT_SCHEMA: &str = include_str!("../schema/uvmm-ext.schema");
    pub const EXT_LDIF: &str = include_str!("../schema/uvmm-ext.ldif");
    pub const HOST_COMPAT_SCHEMA: &str = include_str!("../schema/uvmm-host-compat.schema");
    pub const HOST_COMPAT_LDIF: &str = include_str!("../schema/uvmm-host-compat.ldif");
}
