//! uvmmd: the daemon. See docs/ARCHITECTURE.md for how the parts fit together.

pub mod access;
pub mod actor;
pub mod backup;
pub mod bus;
pub mod cache;
pub mod caller;
pub mod config;
pub mod defwatch;
pub mod directory;
pub mod error;
pub mod hosts;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod metrics;
pub mod ops;
pub mod process;
pub mod profiles;
pub mod server;
pub mod storage;
pub mod systemd;
pub mod vm;
