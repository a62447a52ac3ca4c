//! The real implementations of the issue-16 primitives (migration, job statistics, CPU
//! comparison, volume streams, snapshots, hot-plug, rename), called by `real.rs`'s
//! `Hypervisor` impl. Where the `virt` crate has no safe wrapper the call goes through
//! `virt::sys`, each with its `SAFETY` reasoning.

use crate::devices::{CpuCompatibility, DetachOutcome};
use crate::migrate::{CopyStorage, JobProgress, MigrateParams};
use crate::real::code;
use crate::snapshot::{
    parents_first, SnapshotDeleteOutcome, SnapshotInfo, SnapshotKind, SnapshotSpec,
};
use crate::{ErrorKind, LibvirtError};
use std::ffi::{c_char, c_int, c_uint, CStr, CString};
use std::time::{Duration, Instant};
use uvmm_model::xml::{self, Element};
use virt::connect::Connect;
use virt::domain::{Domain, MigrateParameters};
use virt::domain_snapshot::DomainSnapshot;
use virt::storage_vol::StorageVol;
use virt::stream::Stream;
use virt::sys;

fn last_error() -> LibvirtError {
    virt::error::Error::last_error().into()
}

fn cstring(s: &str) -> Result<CString, LibvirtError> {
    CString::new(s).map_err(|_| LibvirtError::new(ErrorKind::InvalidInput, "NUL byte in argument"))
}

pub(crate) fn migrate_to(
    dom: &Domain,
    dest_uri: &str,
    p: &MigrateParams,
) -> Result<(), LibvirtError> {
    let mut flags =
        sys::VIR_MIGRATE_LIVE | sys::VIR_MIGRATE_PEER2PEER | sys::VIR_MIGRATE_ABORT_ON_ERROR;
    if p.persist_on_target || p.undefine_source {
        // Undefining the source without a definition on the target would lose the VM.
        flags |= sys::VIR_MIGRATE_PERSIST_DEST;
    }
    if p.undefine_source {
        flags |= sys::VIR_MIGRATE_UNDEFINE_SOURCE;
    }
    match p.copy_storage {
        CopyStorage::All => flags |= sys::VIR_MIGRATE_NON_SHARED_DISK,
        CopyStorage::Incremental => flags |= sys::VIR_MIGRATE_NON_SHARED_INC,
        CopyStorage::Auto | CopyStorage::Never => {}
    }
    if p.auto_converge {
        flags |= sys::VIR_MIGRATE_AUTO_CONVERGE;
    }
    if p.post_copy {
        flags |= sys::VIR_MIGRATE_POSTCOPY;
    }
    if p.unsafe_ok {
        flags |= sys::VIR_MIGRATE_UNSAFE;
    }
    let params = MigrateParameters {
        bandwidth: p.bandwidth_mib_s,
        dest_xml: p.dest_xml.clone(),
        uri: p.migration_uri.clone(),
        migrate_disks: if matches!(p.copy_storage, CopyStorage::All | CopyStorage::Incremental) {
            p.migrate_disks.clone()
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    dom.migrate_to_uri3(Some(dest_uri), params, flags)?;
    Ok(())
}

pub(crate) fn job_progress(
    dom: &Domain,
    completed: bool,
) -> Result<Option<JobProgress>, LibvirtError> {
    let mut job_type: c_int = 0;
    let mut params: sys::virTypedParameterPtr = std::ptr::null_mut();
    let mut n: c_int = 0;
    let flags = if completed {
        // Keep them: a later caller (the daemon's report) may want them too.
        sys::VIR_DOMAIN_JOB_STATS_COMPLETED | sys::VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED
    } else {
        0
    };
    // SAFETY: dom is a live handle; libvirt allocates `params` (n entries) for us, freed
    // below with virTypedParamsFree.
    let ret = unsafe {
        sys::virDomainGetJobStats(dom.as_ptr(), &mut job_type, &mut params, &mut n, flags)
    };
    if ret < 0 {
        let e = last_error();
        // An inactive domain has no job: not an error for a progress poll.
        if e.kind == ErrorKind::InvalidOperation {
            return Ok(None);
        }
        return Err(e);
    }
    let ull = |name: &CStr| -> Option<u64> {
        let mut v: std::ffi::c_ulonglong = 0;
        // SAFETY: params/n come from libvirt above and are still alive; name is a valid
        // C string; v is a valid out-pointer. Returns 1 when found.
        (unsafe { sys::virTypedParamsGetULLong(params, n, name.as_ptr(), &mut v) } == 1)
            .then_some(v)
    };
    let int = |name: &CStr| -> Option<i32> {
        let mut v: c_int = 0;
        // SAFETY: as above.
        (unsafe { sys::virTypedParamsGetInt(params, n, name.as_ptr(), &mut v) } == 1).then_some(v)
    };
    let string = |name: &CStr| -> Option<String> {
        let mut v: *const c_char = std::ptr::null();
        // SAFETY: as above; the returned string points into params, copied before the free.
        let found = unsafe { sys::virTypedParamsGetString(params, n, name.as_ptr(), &mut v) } == 1;
        // SAFETY: when found, v is a NUL-terminated string owned by params.
        (found && !v.is_null()).then(|| unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned())
    };
    let out = JobProgress {
        job_type,
        operation: int(sys::VIR_DOMAIN_JOB_OPERATION),
        time_elapsed_ms: ull(sys::VIR_DOMAIN_JOB_TIME_ELAPSED),
        time_remaining_ms: ull(sys::VIR_DOMAIN_JOB_TIME_REMAINING),
        data_total: ull(sys::VIR_DOMAIN_JOB_DATA_TOTAL),
        data_processed: ull(sys::VIR_DOMAIN_JOB_DATA_PROCESSED),
        data_remaining: ull(sys::VIR_DOMAIN_JOB_DATA_REMAINING),
        mem_total: ull(sys::VIR_DOMAIN_JOB_MEMORY_TOTAL),
        mem_processed: ull(sys::VIR_DOMAIN_JOB_MEMORY_PROCESSED),
        mem_remaining: ull(sys::VIR_DOMAIN_JOB_MEMORY_REMAINING),
        mem_bps: ull(sys::VIR_DOMAIN_JOB_MEMORY_BPS),
        mem_dirty_rate: ull(sys::VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE),
        mem_iteration: ull(sys::VIR_DOMAIN_JOB_MEMORY_ITERATION),
        disk_total: ull(sys::VIR_DOMAIN_JOB_DISK_TOTAL),
        disk_processed: ull(sys::VIR_DOMAIN_JOB_DISK_PROCESSED),
        disk_remaining: ull(sys::VIR_DOMAIN_JOB_DISK_REMAINING),
        disk_bps: ull(sys::VIR_DOMAIN_JOB_DISK_BPS),
        downtime_ms: ull(sys::VIR_DOMAIN_JOB_DOWNTIME),
        setup_time_ms: ull(sys::VIR_DOMAIN_JOB_SETUP_TIME),
        auto_converge_throttle: int(sys::VIR_DOMAIN_JOB_AUTO_CONVERGE_THROTTLE),
        postcopy_requests: ull(sys::VIR_DOMAIN_JOB_MEMORY_POSTCOPY_REQS),
        error_message: string(sys::VIR_DOMAIN_JOB_ERRMSG),
    };
    // SAFETY: params/n were allocated by libvirt in virDomainGetJobStats; freed once.
    unsafe { sys::virTypedParamsFree(params, n) };
    if job_type == code(sys::VIR_DOMAIN_JOB_NONE) {
        return Ok(None);
    }
    Ok(Some(out))
}

pub(crate) fn abort_job(dom: &Domain) -> Result<(), LibvirtError> {
    // SAFETY: dom is a live domain handle.
    if unsafe { sys::virDomainAbortJob(dom.as_ptr()) } < 0 {
        return Err(last_error());
    }
    Ok(())
}

pub(crate) fn start_post_copy(dom: &Domain) -> Result<(), LibvirtError> {
    // SAFETY: dom is a live domain handle; no flags.
    if unsafe { sys::virDomainMigrateStartPostCopy(dom.as_ptr(), 0) } < 0 {
        return Err(last_error());
    }
    Ok(())
}

pub(crate) fn compare_cpu(
    conn: &Connect,
    cpu_xml: &str,
    arch: Option<&str>,
    machine: Option<&str>,
    virt_type: Option<&str>,
) -> Result<CpuCompatibility, LibvirtError> {
    let xml = cstring(cpu_xml)?;
    let arch = arch.map(cstring).transpose()?;
    let machine = machine.map(cstring).transpose()?;
    let virt_type = virt_type.map(cstring).transpose()?;
    let opt = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: conn is open; every pointer is a valid C string or NULL (libvirt's default
    // emulator/arch/machine/type for NULL). FAIL_INCOMPATIBLE makes libvirt say why.
    let ret = unsafe {
        sys::virConnectCompareHypervisorCPU(
            conn.as_ptr(),
            std::ptr::null(),
            opt(&arch),
            opt(&machine),
            opt(&virt_type),
            xml.as_ptr(),
            sys::VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE,
        )
    };
    match ret {
        r if r == sys::VIR_CPU_COMPARE_IDENTICAL => Ok(CpuCompatibility::Identical),
        r if r == sys::VIR_CPU_COMPARE_SUPERSET => Ok(CpuCompatibility::Superset),
        r if r == sys::VIR_CPU_COMPARE_INCOMPATIBLE => Ok(CpuCompatibility::Incompatible(
            "the target's hypervisor cannot provide this CPU".into(),
        )),
        _ => {
            let e = last_error();
            if e.code == code(sys::VIR_ERR_CPU_INCOMPATIBLE) {
                Ok(CpuCompatibility::Incompatible(e.message))
            } else {
                Err(e)
            }
        }
    }
}

fn lookup_vol(conn: &Connect, pool: &str, name: &str) -> Result<StorageVol, LibvirtError> {
    let p = conn.lookup_storage_pool_by_name(pool)?;
    Ok(p.lookup_storage_vol_by_name(name)?)
}

pub(crate) fn download_volume(
    conn: &Connect,
    pool: &str,
    name: &str,
    sink: &mut dyn FnMut(&[u8]) -> Result<(), LibvirtError>,
) -> Result<u64, LibvirtError> {
    let vol = lookup_vol(conn, pool, name)?;
    let stream = Stream::new(conn, 0)?;
    vol.download(&stream, 0, 0, 0)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match stream.recv(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = stream.abort();
                return Err(e.into());
            }
        };
        // Negative is an error the call already returned; 0 is the end.
        let n = match usize::try_from(n) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Err(e) = sink(&buf[..n]) {
            let _ = stream.abort();
            return Err(e);
        }
        total += u64::try_from(n).unwrap_or(u64::MAX);
    }
    stream.finish()?;
    Ok(total)
}

pub(crate) fn upload_volume(
    conn: &Connect,
    pool: &str,
    name: &str,
    source: &mut dyn FnMut(&mut [u8]) -> Result<usize, LibvirtError>,
) -> Result<u64, LibvirtError> {
    let vol = lookup_vol(conn, pool, name)?;
    let stream = Stream::new(conn, 0)?;
    vol.upload(&stream, 0, 0, 0)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match source(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = stream.abort();
                return Err(e);
            }
        };
        if n == 0 {
            break;
        }
        let mut off = 0;
        while off < n {
            match stream.send(&buf[off..n]) {
                Ok(sent) if sent > 0 => off += sent.unsigned_abs(),
                Ok(_) => {
                    let _ = stream.abort();
                    return Err(LibvirtError::new(
                        ErrorKind::Other,
                        "the upload stream closed",
                    ));
                }
                Err(e) => {
                    let _ = stream.abort();
                    return Err(e.into());
                }
            }
        }
        total += n as u64;
    }
    stream.finish()?;
    Ok(total)
}

/// The snapshot XML for a spec. `active`: the domain runs.
fn snapshot_xml(spec: &SnapshotSpec, active: bool) -> Result<(String, u32), LibvirtError> {
    let mut root = Element::new("domainsnapshot")
        .with_child(Element::new("name").with_text(spec.name.clone()));
    if let Some(d) = &spec.description {
        root.push_child(Element::new("description").with_text(d.clone()));
    }
    let mut flags = sys::VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC;
    match spec.kind {
        SnapshotKind::Internal => {
            if active && !spec.memory {
                return Err(LibvirtError::new(
                    ErrorKind::InvalidInput,
                    "an internal snapshot of a running VM always includes its memory (QEMU \
                     saves both together); ask for memory, or take an external disk-only \
                     snapshot",
                ));
            }
        }
        SnapshotKind::External => {
            if spec.memory && active {
                let file = spec.memory_file.clone().ok_or_else(|| {
                    LibvirtError::new(
                        ErrorKind::InvalidInput,
                        "an external snapshot with memory needs a file for the memory",
                    )
                })?;
                root.push_child(
                    Element::new("memory")
                        .with_attr("snapshot", "external")
                        .with_attr("file", file),
                );
                // The guest keeps running while its memory is written.
                flags |= sys::VIR_DOMAIN_SNAPSHOT_CREATE_LIVE;
            } else {
                flags |= sys::VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY;
            }
        }
    }
    Ok((root.to_xml(), flags))
}

pub(crate) fn snapshot_create(dom: &Domain, spec: &SnapshotSpec) -> Result<String, LibvirtError> {
    let active = dom.is_active()?;
    let (xml, mut flags) = snapshot_xml(spec, active)?;
    if spec.kind == SnapshotKind::External && !active {
        // Offline external snapshots are always disk-only.
        flags |= sys::VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY;
        flags &= !sys::VIR_DOMAIN_SNAPSHOT_CREATE_LIVE;
    }
    let snap = dom.create_snapshot_xml(&xml, flags)?;
    Ok(snap.name()?)
}

fn snapshot_info(s: &DomainSnapshot) -> Result<SnapshotInfo, LibvirtError> {
    let xml_text = s.xml_desc(sys::VIR_DOMAIN_SNAPSHOT_XML_SECURE)?;
    let root = xml::parse(&xml_text).map_err(|e| {
        LibvirtError::new(ErrorKind::Other, format!("unreadable snapshot XML: {e}"))
    })?;
    let external = root
        .child("disks")
        .is_some_and(|d| d.elements().any(|e| e.attr("snapshot") == Some("external")))
        || root.child("memory").and_then(|m| m.attr("snapshot")) == Some("external");
    let memory = matches!(
        root.child("memory").and_then(|m| m.attr("snapshot")),
        Some("internal" | "external")
    );
    let parent = root
        .child("parent")
        .and_then(|p| p.child_text("name"))
        .map(|n| n.trim().to_string());
    Ok(SnapshotInfo {
        name: s.name()?,
        parent,
        current: s.is_current(0).unwrap_or(false),
        kind: if external {
            SnapshotKind::External
        } else {
            SnapshotKind::Internal
        },
        state: root
            .child_text("state")
            .unwrap_or_default()
            .trim()
            .to_string(),
        description: root.child_text("description"),
        created: root
            .child_text("creationTime")
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0),
        memory,
        xml: xml_text,
    })
}

pub(crate) fn snapshots(dom: &Domain) -> Result<Vec<SnapshotInfo>, LibvirtError> {
    let mut out = Vec::new();
    for s in dom.list_all_snapshots(0)? {
        out.push(snapshot_info(&s)?);
    }
    Ok(parents_first(&out))
}

pub(crate) fn snapshot_redefine(
    dom: &Domain,
    xml: &str,
    current: bool,
) -> Result<(), LibvirtError> {
    let mut flags = sys::VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE;
    if current {
        flags |= sys::VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT;
    }
    dom.create_snapshot_xml(xml, flags)?;
    Ok(())
}

pub(crate) fn snapshot_revert(dom: &Domain, name: &str, running: bool) -> Result<(), LibvirtError> {
    let snap = Domain::lookup_snapshot_by_name(dom, name, 0)?;
    let info = snapshot_info(&snap)?;
    if info.kind == SnapshotKind::External {
        // libvirt 9.0 refuses it too ("revert to external snapshot not supported yet");
        // say so in uvmm's words.
        return Err(LibvirtError::new(
            ErrorKind::NotSupported,
            format!(
                "snapshot '{name}' is external: libvirt 9.0 cannot revert to external \
                 snapshots (\"revert to external snapshot not supported yet\")"
            ),
        ));
    }
    let flags = if running {
        sys::VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING
    } else {
        0
    };
    snap.revert(flags)?;
    Ok(())
}

/// (target, source path, format) of a domain's disks (live XML when active).
fn disk_sources(xml_text: &str) -> Vec<(String, String, Option<String>)> {
    let Ok(root) = xml::parse(xml_text) else {
        return vec![];
    };
    let Some(devices) = root.child("devices") else {
        return vec![];
    };
    devices
        .elements()
        .filter(|e| e.local_name() == "disk")
        .filter_map(|d| {
            let target = d.child("target")?.attr("dev")?.to_string();
            let src = d.child("source")?;
            let path = src.attr("file").or(src.attr("dev"))?.to_string();
            let format = d
                .child("driver")
                .and_then(|x| x.attr("type"))
                .map(str::to_string);
            Some((target, path, format))
        })
        .collect()
}

fn block_job_cursor(dom: &Domain, disk: &str) -> Result<Option<(u64, u64)>, LibvirtError> {
    let d = cstring(disk)?;
    let mut info = std::mem::MaybeUninit::<sys::virDomainBlockJobInfo>::zeroed();
    // SAFETY: dom is live, d a valid C string, info a valid out-pointer of the right type.
    let r =
        unsafe { sys::virDomainGetBlockJobInfo(dom.as_ptr(), d.as_ptr(), info.as_mut_ptr(), 0) };
    if r < 0 {
        return Err(last_error());
    }
    if r == 0 {
        return Ok(None);
    }
    // SAFETY: r == 1: libvirt filled info.
    let info = unsafe { info.assume_init() };
    Ok(Some((info.cur, info.end)))
}

fn block_job_abort(dom: &Domain, disk: &str, flags: c_uint) -> Result<(), LibvirtError> {
    let d = cstring(disk)?;
    // SAFETY: dom is live, d a valid C string.
    if unsafe { sys::virDomainBlockJobAbort(dom.as_ptr(), d.as_ptr(), flags) } < 0 {
        return Err(last_error());
    }
    Ok(())
}

/// Merge the active overlay of `disk` into its backing image (active block commit) and
/// pivot the running domain to the backing image.
fn commit_active_layer(dom: &Domain, disk: &str, deadline: Instant) -> Result<(), LibvirtError> {
    let d = cstring(disk)?;
    // SAFETY: dom is live, d a valid C string; NULL base and top with SHALLOW|ACTIVE mean
    // "the active image into its immediate backing image"; bandwidth 0 = unlimited.
    let r = unsafe {
        sys::virDomainBlockCommit(
            dom.as_ptr(),
            d.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            0,
            sys::VIR_DOMAIN_BLOCK_COMMIT_ACTIVE | sys::VIR_DOMAIN_BLOCK_COMMIT_SHALLOW,
        )
    };
    if r < 0 {
        return Err(last_error());
    }
    // The job becomes "ready" when both images are in sync; only then can it pivot.
    loop {
        match block_job_cursor(dom, disk)? {
            Some((cur, end)) if end > 0 && cur == end => {
                match block_job_abort(dom, disk, sys::VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT) {
                    Ok(()) => break,
                    // Not ready yet although the cursor says so: try again.
                    Err(e)
                        if e.kind == ErrorKind::InvalidOperation
                            || e.code == code(sys::VIR_ERR_BLOCK_COPY_ACTIVE) => {}
                    Err(e) => return Err(e),
                }
            }
            Some(_) => {}
            None => {
                return Err(LibvirtError::new(
                    ErrorKind::Other,
                    format!("the block commit of {disk} ended without being pivoted"),
                ))
            }
        }
        if Instant::now() > deadline {
            // Leave the overlay in use: abort the commit (no pivot), nothing is lost.
            let _ = block_job_abort(dom, disk, 0);
            return Err(LibvirtError::new(
                ErrorKind::Timeout,
                format!("the block commit of {disk} did not finish in time; aborted, the snapshot is kept"),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The pivot completes asynchronously: wait until the job is gone.
    while block_job_cursor(dom, disk)?.is_some() {
        if Instant::now() > deadline {
            return Err(LibvirtError::new(
                ErrorKind::Timeout,
                format!("the pivot of {disk} did not complete in time"),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// (disk, overlay file) per disk of an external snapshot, and its memory file.
type ExternalFiles = (Vec<(String, String)>, Option<String>);

fn external_files(info: &SnapshotInfo) -> Result<ExternalFiles, LibvirtError> {
    let root = xml::parse(&info.xml).map_err(|e| {
        LibvirtError::new(ErrorKind::Other, format!("unreadable snapshot XML: {e}"))
    })?;
    let overlays = root
        .child("disks")
        .map(|d| {
            d.elements()
                .filter(|e| e.attr("snapshot") == Some("external"))
                .filter_map(|e| {
                    let n = e.attr("name")?.to_string();
                    let f = e
                        .child("source")
                        .and_then(|s| s.attr("file").or(s.attr("dev")))?
                        .to_string();
                    Some((n, f))
                })
                .collect()
        })
        .unwrap_or_default();
    let memory = root
        .child("memory")
        .and_then(|m| m.attr("file"))
        .map(str::to_string);
    Ok((overlays, memory))
}

pub(crate) fn snapshot_delete(
    dom: &Domain,
    name: &str,
    timeout: Duration,
) -> Result<SnapshotDeleteOutcome, LibvirtError> {
    let snap = Domain::lookup_snapshot_by_name(dom, name, 0)?;
    let info = snapshot_info(&snap)?;
    if info.kind == SnapshotKind::Internal {
        // libvirt merges nothing here: the data of other snapshots and of the current state
        // stays in the image; only this snapshot's clusters are freed.
        snap.delete(0)?;
        return Ok(SnapshotDeleteOutcome::Deleted);
    }
    // External: libvirt 9.0 merges it (block commit) and refuses what it cannot do safely.
    let (overlays, memory_file) = external_files(&info)?;
    match snap.delete(0) {
        Ok(()) => Ok(SnapshotDeleteOutcome::MergedByLibvirt {
            removed_overlays: overlays.into_iter().map(|(_, f)| f).collect(),
            memory_file,
        }),
        Err(e) => {
            let e = LibvirtError::from(e);
            if e.kind == ErrorKind::NotSupported {
                // An older libvirt: uvmm's own merge, for the case it can do safely.
                tracing::debug!(snapshot = %name, "libvirt cannot delete it ({e}); merging");
                snapshot_merge_external(dom, name, timeout)
            } else {
                Err(e)
            }
        }
    }
}

pub(crate) fn snapshot_merge_external(
    dom: &Domain,
    name: &str,
    timeout: Duration,
) -> Result<SnapshotDeleteOutcome, LibvirtError> {
    let snap = Domain::lookup_snapshot_by_name(dom, name, 0)?;
    let info = snapshot_info(&snap)?;
    if info.kind != SnapshotKind::External {
        return Err(LibvirtError::new(
            ErrorKind::InvalidInput,
            format!("snapshot '{name}' is internal: there is nothing to merge"),
        ));
    }
    // Only the newest snapshot (whose overlays the VM uses now) can be merged by an active
    // commit without touching anything else; refuse the rest.
    if snap.num_children(0)? > 0 {
        return Err(LibvirtError::new(
            ErrorKind::NotSupported,
            format!(
                "external snapshot '{name}' has newer snapshots; uvmm's own merge takes only \
                 the newest one (delete those first)"
            ),
        ));
    }
    let (overlays, memory_file) = external_files(&info)?;
    let started_here = !dom.is_active()?;
    let current = disk_sources(&dom.xml_desc(0)?);
    for (disk, overlay) in &overlays {
        let in_use = current.iter().any(|(t, p, _)| t == disk && p == overlay);
        if !in_use {
            return Err(LibvirtError::new(
                ErrorKind::NotSupported,
                format!(
                    "external snapshot '{name}': disk {disk} no longer runs on its overlay \
                     {overlay}; merging it would need a commit below the active image, which \
                     uvmm does not do (refused, nothing changed)"
                ),
            ));
        }
    }
    let deadline = Instant::now() + timeout;
    if started_here {
        // Block jobs need a running QEMU: start it paused (the guest never runs) and stop it
        // again afterwards.
        dom.create_with_flags(sys::VIR_DOMAIN_START_PAUSED)?;
    }
    let persistent = dom.is_persistent().unwrap_or(false);
    let before_inactive = if persistent {
        Some(dom.xml_desc(sys::VIR_DOMAIN_XML_INACTIVE | sys::VIR_DOMAIN_XML_SECURE)?)
    } else {
        None
    };
    let mut merged = Vec::new();
    let result = (|| {
        for (disk, _) in &overlays {
            commit_active_layer(dom, disk, deadline)?;
            merged.push(disk.clone());
        }
        Ok::<(), LibvirtError>(())
    })();
    // libvirt updates the live definition on pivot; make sure the persistent one points at
    // the merged (backing) images too, or the next start would use the stale overlays.
    let after_live = dom.xml_desc(0).unwrap_or_default();
    if let (Some(inactive), true) = (before_inactive, !merged.is_empty()) {
        let live_now = disk_sources(&after_live);
        if let Some(fixed) = repoint_disks(&inactive, &live_now, &merged) {
            let conn = dom.connect()?;
            conn.define_domain_xml(&fixed)?;
        }
    }
    if started_here {
        let _ = dom.destroy();
    }
    result?;
    // Only the metadata is left; the overlays are unused now (their data is in the backing
    // images).
    snap.delete(sys::VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY)?;
    let mut unused: Vec<String> = overlays.into_iter().map(|(_, f)| f).collect();
    unused.extend(memory_file);
    Ok(SnapshotDeleteOutcome::Merged {
        disks: merged,
        unused_overlays: unused,
    })
}

/// The persistent definition with the merged disks' sources set to what the live domain
/// uses now; `None` when nothing differs.
fn repoint_disks(
    inactive: &str,
    live: &[(String, String, Option<String>)],
    merged: &[String],
) -> Option<String> {
    let mut root = xml::parse(inactive).ok()?;
    let mut changed = false;
    let devices = root.child_mut("devices")?;
    for d in devices.elements_mut() {
        if d.local_name() != "disk" {
            continue;
        }
        let Some(target) = d
            .child("target")
            .and_then(|t| t.attr("dev"))
            .map(str::to_string)
        else {
            continue;
        };
        if !merged.contains(&target) {
            continue;
        }
        let Some((_, path, format)) = live.iter().find(|(t, _, _)| *t == target) else {
            continue;
        };
        // The overlay was qcow2; the image merged into may be raw.
        if let (Some(f), Some(driver)) = (format, d.child_mut("driver")) {
            if driver.attr("type") != Some(f.as_str()) {
                driver.set_attr("type", f.clone());
                changed = true;
            }
        }
        if let Some(src) = d.child_mut("source") {
            let key = if src.attr("dev").is_some() {
                "dev"
            } else {
                "file"
            };
            if src.attr(key) != Some(path.as_str()) {
                src.set_attr(key, path.clone());
                changed = true;
            }
        }
        // The overlay's chain description is stale: libvirt reads the chain anew.
        d.remove_children(|e| e.local_name() == "backingStore");
    }
    changed.then(|| root.to_xml())
}

fn affect(live: bool, persist: bool) -> u32 {
    let mut f = 0;
    if live {
        f |= sys::VIR_DOMAIN_AFFECT_LIVE;
    }
    if persist {
        f |= sys::VIR_DOMAIN_AFFECT_CONFIG;
    }
    f
}

pub(crate) fn attach_device(
    dom: &Domain,
    xml: &str,
    live: bool,
    persist: bool,
) -> Result<(), LibvirtError> {
    dom.attach_device_flags(xml, affect(live, persist))?;
    Ok(())
}

/// How to recognise a device in a domain XML: (element, identifying attribute path, value).
fn device_key(device_xml: &str) -> Result<(String, String), LibvirtError> {
    let el = xml::parse(device_xml)
        .map_err(|e| LibvirtError::new(ErrorKind::InvalidInput, format!("device XML: {e}")))?;
    let key = match el.local_name() {
        "disk" => el
            .child("target")
            .and_then(|t| t.attr("dev"))
            .map(str::to_string),
        "interface" => el
            .child("mac")
            .and_then(|m| m.attr("address"))
            .map(|m| m.to_ascii_lowercase()),
        _ => None,
    };
    let key = key.ok_or_else(|| {
        LibvirtError::new(
            ErrorKind::InvalidInput,
            "a device to detach must be a <disk> with a <target dev> or an <interface> with a <mac address>",
        )
    })?;
    Ok((el.local_name().to_string(), key))
}

fn has_device(domain_xml: &str, kind: &str, key: &str) -> bool {
    let Ok(root) = xml::parse(domain_xml) else {
        return true;
    };
    let Some(devices) = root.child("devices") else {
        return false;
    };
    let found = devices
        .elements()
        .filter(|e| e.local_name() == kind)
        .any(|e| match kind {
            "disk" => e.child("target").and_then(|t| t.attr("dev")) == Some(key),
            _ => e
                .child("mac")
                .and_then(|m| m.attr("address"))
                .is_some_and(|m| m.eq_ignore_ascii_case(key)),
        });
    found
}

pub(crate) fn detach_device(
    dom: &Domain,
    xml: &str,
    live: bool,
    persist: bool,
    timeout: Duration,
) -> Result<DetachOutcome, LibvirtError> {
    let (kind, key) = device_key(xml)?;
    if persist {
        // The definition first: it changes at once and does not depend on the guest.
        dom.detach_device_flags(xml, sys::VIR_DOMAIN_AFFECT_CONFIG)?;
    }
    if !live {
        return Ok(DetachOutcome::Removed);
    }
    // QEMU asks the guest to release the device (ACPI/PCI hot-unplug); libvirt waits a few
    // seconds for it and then returns while the request is still pending.
    match dom.detach_device_flags(xml, sys::VIR_DOMAIN_AFFECT_LIVE) {
        Ok(()) => {}
        Err(e) => {
            let e = LibvirtError::from(e);
            // A timeout here means the same as ours below: the guest did not answer.
            if e.kind != ErrorKind::Timeout {
                return Err(e);
            }
        }
    }
    let deadline = Instant::now() + timeout;
    loop {
        if !has_device(&dom.xml_desc(0)?, &kind, &key) {
            return Ok(DetachOutcome::Removed);
        }
        if Instant::now() >= deadline {
            return Ok(DetachOutcome::TimedOut { persisted: persist });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_keys() {
        let cases = [
            (
                "<disk type='file'><target dev='vdb'/></disk>",
                Some(("disk", "vdb")),
            ),
            (
                "<interface type='user'><mac address='52:54:00:AA:00:01'/></interface>",
                Some(("interface", "52:54:00:aa:00:01")),
            ),
            ("<disk type='file'/>", None),
            ("<hostdev/>", None),
        ];
        for (xml, want) in cases {
            let got = device_key(xml).ok();
            assert_eq!(
                got.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                want,
                "{xml}"
            );
        }
        let dom = "<domain><devices><disk><target dev='vda'/></disk><interface><mac address='52:54:00:aa:00:01'/></interface></devices></domain>";
        assert!(has_device(dom, "disk", "vda"));
        assert!(!has_device(dom, "disk", "vdb"));
        assert!(has_device(dom, "interface", "52:54:00:AA:00:01"));
    }

    #[test]
    fn repoint_only_merged_disks() {
        let inactive = "<domain><devices><disk><driver type='qcow2'/><source file='/o/a.snap'/><backingStore/><target dev='vda'/></disk><disk><source file='/o/b.qcow2'/><target dev='vdb'/></disk></devices></domain>";
        let live = vec![
            (
                "vda".to_string(),
                "/o/a.qcow2".to_string(),
                Some("raw".to_string()),
            ),
            ("vdb".to_string(), "/o/b-other".to_string(), None),
        ];
        let fixed = repoint_disks(inactive, &live, &["vda".to_string()]).unwrap();
        assert!(
            fixed.contains("/o/a.qcow2") && !fixed.contains("a.snap"),
            "{fixed}"
        );
        assert!(
            fixed.contains("raw") && !fixed.contains("backingStore"),
            "{fixed}"
        );
        assert!(fixed.contains("/o/b.qcow2"), "unmerged disks stay: {fixed}");
        assert!(repoint_disks(inactive, &live, &[]).is_none());
    }

    #[test]
    fn internal_snapshot_of_running_vm_needs_memory() {
        let spec = SnapshotSpec {
            name: "s".into(),
            description: None,
            kind: SnapshotKind::Internal,
            memory: false,
            memory_file: None,
        };
        assert!(snapshot_xml(&spec, true).is_err());
        assert!(snapshot_xml(&spec, false).is_ok());
        let ext = SnapshotSpec {
            kind: SnapshotKind::External,
            memory: true,
            ..spec
        };
        assert!(snapshot_xml(&ext, true).is_err(), "memory needs a file");
        let (x, f) = snapshot_xml(
            &SnapshotSpec {
                memory_file: Some("/m".into()),
                ..ext
            },
            true,
        )
        .unwrap();
        assert!(x.contains("external") && f & sys::VIR_DOMAIN_SNAPSHOT_CREATE_LIVE != 0);
    }
}
