//! Devices and disks of a VM: CPU compatibility, live hot-plug outcomes, and disk copies
//! for clones (full copies with progress, linked clones on qcow2 backing files).

use crate::{ErrorKind, Hypervisor, LibvirtError, VolumeInfo};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What `virConnectCompareHypervisorCPU` said about a guest CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuCompatibility {
    /// The host provides exactly this CPU.
    Identical,
    /// The host provides this CPU and more.
    Superset,
    /// The host cannot provide it; libvirt's reason.
    Incompatible(String),
}

/// How a live detach ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetachOutcome {
    /// The device is gone from the running VM (and from the definition, if asked).
    Removed,
    /// The guest did not release the device within the timeout (it ignored or has not
    /// yet answered the unplug request: a guest without ACPI hot-plug support, or a busy
    /// one). The request stays pending in QEMU, so the device may still disappear later;
    /// the definition was changed if asked (`persisted`).
    TimedOut { persisted: bool },
}

/// The disks of a clone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneMode {
    /// Full copy of every disk (any format; the source must not be running).
    Copy,
    /// A new qcow2 image per disk whose backing file is the source's image. The source
    /// must not write to its images any more (shut off, and kept so): every clone reads
    /// them.
    Linked,
}

/// Copy volume `source` of `pool` into a new volume `new_name` of the same pool (same
/// format), reporting the new volume's allocation while libvirt copies
/// (`virStorageVolCreateXMLFrom` on `host`, progress read over `monitor`, a second
/// connection to the same host, every `interval`). `progress(done, total)`.
pub fn clone_volume_with_progress(
    host: &dyn Hypervisor,
    monitor: &dyn Hypervisor,
    pool: &str,
    source: &str,
    new_name: &str,
    interval: Duration,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VolumeInfo, LibvirtError> {
    let src = host.volume(pool, source)?.ok_or_else(|| {
        LibvirtError::new(
            ErrorKind::NotFound,
            format!("no volume {source} in pool {pool}"),
        )
    })?;
    let total = src.def.allocation.max(1);
    let xml = uvmm_model::clone::copy_volume_xml(new_name, &src.def);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let job = s.spawn(|| {
            let r = host.clone_volume(pool, source, &xml);
            done.store(true, Ordering::SeqCst);
            r
        });
        while !done.load(Ordering::SeqCst) {
            std::thread::sleep(interval);
            if let Ok(Some(v)) = monitor.volume(pool, new_name) {
                progress(v.def.allocation.min(total), total);
            }
        }
        let r = job.join().unwrap_or_else(|_| {
            Err(LibvirtError::new(
                ErrorKind::Other,
                "the clone thread panicked",
            ))
        });
        if r.is_ok() {
            progress(total, total);
        }
        r
    })
}

/// Create a linked clone of volume `source` of `pool`: a new qcow2 volume `new_name` whose
/// backing file is the source image (same virtual size).
pub fn linked_clone_volume(
    host: &dyn Hypervisor,
    pool: &str,
    source: &str,
    new_name: &str,
) -> Result<VolumeInfo, LibvirtError> {
    let src = host.volume(pool, source)?.ok_or_else(|| {
        LibvirtError::new(
            ErrorKind::NotFound,
            format!("no volume {source} in pool {pool}"),
        )
    })?;
    let path = src.def.path.clone().ok_or_else(|| {
        LibvirtError::new(
            ErrorKind::InvalidInput,
            format!("volume {source} has no path to use as a backing file"),
        )
    })?;
    let xml = uvmm_model::clone::linked_volume_xml(
        new_name,
        src.def.capacity,
        &path,
        src.def.format.as_deref().unwrap_or("raw"),
    );
    host.create_volume(pool, &xml)
}
