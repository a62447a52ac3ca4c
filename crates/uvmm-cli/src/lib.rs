//! The client side shared by `uvmm` and `uvmm-restore`: the HTTP client for uvmmd's API
//! and plain-text tables.

pub mod client;
pub mod paths;
pub mod remote;
pub mod shell;
pub mod table;
