//! The typed model of uvmm: libvirt XML in and out, VM states and actions, units and
//! validation. Pure code: no I/O and no libvirt, so everything here is tested with tables.

pub mod boot;
pub mod caps;
pub mod change;
pub mod clone;
pub mod domain;
pub mod edit;
pub mod foreign;
pub mod generate;
pub mod glob;
pub mod hosts;
pub mod memory;
pub mod monitor;
pub mod pending;
pub mod profile;
pub mod secrets;
pub mod state;
pub mod storage;
pub mod targets;
pub mod units;
pub mod uuid;
pub mod validate;
pub mod xml;

pub use state::{Action, VmState};
