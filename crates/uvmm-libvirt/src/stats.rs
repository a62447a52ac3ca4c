//! `virConnectGetAllDomainStats` without the leak in virt 0.5's wrapper (which never calls
//! `virDomainStatsRecordListFree`).

use crate::{DomainStats, LibvirtError};
use std::ffi::{c_char, CStr};
use uvmm_model::VmState;
use virt::sys;

/// Read state, total CPU time, balloon and vCPU figures of every domain in one call.
pub fn all_domain_stats(conn: &virt::connect::Connect) -> Result<Vec<DomainStats>, LibvirtError> {
    let mut records: *mut sys::virDomainStatsRecordPtr = std::ptr::null_mut();
    let wanted = sys::VIR_DOMAIN_STATS_STATE
        | sys::VIR_DOMAIN_STATS_CPU_TOTAL
        | sys::VIR_DOMAIN_STATS_BALLOON
        | sys::VIR_DOMAIN_STATS_VCPU;
    // SAFETY: conn is a live connection; records receives a libvirt-allocated array that
    // is released below with virDomainStatsRecordListFree.
    let n = unsafe { sys::virConnectGetAllDomainStats(conn.as_ptr(), wanted, &mut records, 0) };
    if n < 0 {
        return Err(virt::error::Error::last_error().into());
    }
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        // SAFETY: records holds n valid record pointers.
        let rec = unsafe { &**records.add(i) };
        out.push(read_record(rec));
    }
    // SAFETY: records came from virConnectGetAllDomainStats and is freed exactly once.
    unsafe { sys::virDomainStatsRecordListFree(records) };
    Ok(out)
}

fn read_record(rec: &sys::virDomainStatsRecord) -> DomainStats {
    let mut buf = [0 as c_char; sys::VIR_UUID_STRING_BUFLEN as usize];
    // SAFETY: rec.dom is valid while the record list lives; buf has the documented size.
    let uuid = if unsafe { sys::virDomainGetUUIDString(rec.dom, buf.as_mut_ptr()) } == 0 {
        // SAFETY: NUL-terminated by libvirt.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    } else {
        String::new()
    };
    let mut stats = DomainStats {
        uuid,
        ..DomainStats::default()
    };
    let params: &[sys::virTypedParameter] = if rec.params.is_null() || rec.nparams <= 0 {
        &[]
    } else {
        // SAFETY: params points to nparams typed parameters owned by the record.
        unsafe { std::slice::from_raw_parts(rec.params, rec.nparams as usize) }
    };
    for p in params {
        // SAFETY: field is a NUL-terminated array inside the parameter.
        let field = unsafe { CStr::from_ptr(p.field.as_ptr()) }.to_bytes();
        let as_u64 = || -> Option<u64> {
            // SAFETY: the union member read matches the declared type_.
            unsafe {
                match p.type_ as u32 {
                    sys::VIR_TYPED_PARAM_INT => u64::try_from(p.value.i).ok(),
                    sys::VIR_TYPED_PARAM_UINT => Some(p.value.ui as u64),
                    sys::VIR_TYPED_PARAM_LLONG => u64::try_from(p.value.l).ok(),
                    sys::VIR_TYPED_PARAM_ULLONG => Some(p.value.ul),
                    _ => None,
                }
            }
        };
        match field {
            b"state.state" => {
                stats.state = as_u64().map(|s| VmState::from_libvirt(s as u32));
            }
            b"state.reason" => stats.reason = as_u64().map(|r| r as u32),
            b"balloon.maximum" => stats.balloon_maximum_kib = as_u64(),
            b"cpu.time" => stats.cpu_time_ns = as_u64(),
            b"balloon.current" => stats.balloon_current_kib = as_u64(),
            b"vcpu.current" => stats.vcpus_current = as_u64().map(|v| v as u32),
            _ => {}
        }
    }
    stats
}
