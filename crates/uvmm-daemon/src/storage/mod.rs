//! Storage pools and volumes. Volume creation lives here; VM operations call it.

pub mod pools;
pub mod volumes;
