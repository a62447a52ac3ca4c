//! uvmmd: the daemon. See docs/ARCHITECTURE.md for how the parts fit together.

pub mod api;
pub mod bus;
pub mod cache;
pub mod check_config;
pub mod config;
pub mod conn;
pub mod defwatch;
pub mod error;
pub mod host;
pub mod http_guard;
pub mod listing;
pub mod manager;
pub mod metrics;
pub mod process;
pub mod profiles;
pub mod server;
pub mod storage;
pub mod systemd;
pub mod vmops;
pub mod web;
