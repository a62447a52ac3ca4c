//! Backups of VM definitions: recording versions (`record`).

pub mod record;
