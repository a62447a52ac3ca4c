//! The managed hosts: one worker thread per host (`worker`), what it reads (`reads`), its
//! side of the definition watch (`defcheck`), and what the parts share (`shared`).

pub mod defcheck;
pub mod facts;
pub mod reads;
pub mod shared;
pub mod worker;
