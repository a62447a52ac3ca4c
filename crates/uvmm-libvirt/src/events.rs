//! libvirt's event loop and the domain/connection event callbacks.
//!
//! virt 0.5 has no safe wrapper for `virConnectDomainEventRegisterAny`, so this module is
//! the one place that registers C callbacks. Safety rests on three rules:
//! - each registration owns a `Box<EventSink>` passed as `opaque`; libvirt frees it through
//!   `free_sink` exactly once, after the last callback has returned;
//! - callbacks only read the borrowed `virDomainPtr` (never free it) and copy what they
//!   need into owned Rust values before calling the sink;
//! - no panic crosses the FFI boundary (`catch_unwind`).

use crate::{EventSink, HostEvent, Lifecycle};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;
use virt::sys;

static EVENT_LOOP: OnceLock<Result<(), String>> = OnceLock::new();

/// Environment variable that selects libvirt's own (GLib) event loop instead of ours:
/// `UVMM_LIBVIRT_EVENT_LOOP=default`. A way out should the epoll loop misbehave with some
/// libvirt version; it costs O(hosts) per wakeup (see `eventloop`).
pub const EVENT_LOOP_ENV: &str = "UVMM_LIBVIRT_EVENT_LOOP";

/// Register the event loop implementation and run it on a thread. Must happen before the
/// first connection is opened, or that connection gets no events and no keepalive.
/// Idempotent.
pub fn ensure_event_loop() -> Result<(), String> {
    EVENT_LOOP
        .get_or_init(|| {
            // libvirt prints every error to stderr unless a handler is installed; errors
            // are reported through Result values instead.
            virt::error::clear_error_callback();
            let use_default = std::env::var(EVENT_LOOP_ENV).is_ok_and(|v| v == "default");
            let spawned = if use_default {
                virt::event::event_register_default_impl().map_err(|e| e.to_string())?;
                std::thread::Builder::new()
                    .name("libvirt-events".into())
                    .spawn(|| loop {
                        if let Err(e) = virt::event::event_run_default_impl() {
                            tracing::error!("libvirt event loop iteration failed: {e}");
                            std::thread::sleep(std::time::Duration::from_millis(100));
                        }
                    })
            } else {
                let l = crate::eventloop::register().map_err(|e| e.to_string())?;
                std::thread::Builder::new()
                    .name("libvirt-events".into())
                    .spawn(move || loop {
                        if let Err(e) = l.iterate(None) {
                            tracing::error!("libvirt event loop iteration failed: {e}");
                            std::thread::sleep(std::time::Duration::from_millis(100));
                        }
                    })
            };
            spawned.map_err(|e| e.to_string())?;
            Ok(())
        })
        .clone()
}

/// Identity of a domain handed to a callback.
///
/// # Safety
/// `dom` must be the valid domain pointer libvirt passed to the callback.
unsafe fn domain_identity(dom: sys::virDomainPtr) -> (String, String) {
    let mut buf = [0 as c_char; sys::VIR_UUID_STRING_BUFLEN as usize];
    // SAFETY: buf has the documented size for a UUID string; dom is valid per contract.
    let uuid = if unsafe { sys::virDomainGetUUIDString(dom, buf.as_mut_ptr()) } == 0 {
        // SAFETY: libvirt wrote a NUL-terminated string into buf.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    } else {
        String::new()
    };
    // SAFETY: dom is valid; the returned name is owned by the domain object.
    let name_ptr = unsafe { sys::virDomainGetName(dom) };
    let name = if name_ptr.is_null() {
        String::new()
    } else {
        // SAFETY: non-null, NUL-terminated, valid while dom is.
        unsafe { CStr::from_ptr(name_ptr) }
            .to_string_lossy()
            .into_owned()
    };
    (uuid, name)
}

/// # Safety
/// `opaque` must be a pointer created by `into_opaque`.
unsafe fn sink_of<'a>(opaque: *mut c_void) -> &'a EventSink {
    // SAFETY: per contract opaque is a live Box<EventSink>; libvirt keeps it alive until
    // free_sink runs, which happens after the last callback.
    unsafe { &*(opaque as *const EventSink) }
}

fn deliver(opaque: *mut c_void, make: impl FnOnce() -> HostEvent) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let event = make();
        // SAFETY: every opaque given to libvirt by this module comes from into_opaque.
        let sink = unsafe { sink_of(opaque) };
        sink(event);
    }));
}

pub(crate) fn into_opaque(sink: EventSink) -> *mut c_void {
    Box::into_raw(Box::new(sink)).cast::<c_void>()
}

pub(crate) unsafe extern "C" fn free_sink(opaque: *mut c_void) {
    if !opaque.is_null() {
        let _ = catch_unwind(|| {
            // SAFETY: opaque came from into_opaque and libvirt frees it once.
            drop(unsafe { Box::from_raw(opaque.cast::<EventSink>()) });
        });
    }
}

pub(crate) unsafe extern "C" fn lifecycle_cb(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    event: c_int,
    detail: c_int,
    opaque: *mut c_void,
) -> c_int {
    deliver(opaque, || {
        // SAFETY: dom is the domain libvirt passed to this callback.
        let (uuid, name) = unsafe { domain_identity(dom) };
        HostEvent::Lifecycle {
            uuid,
            name,
            event: Lifecycle::from_raw(event),
            detail,
        }
    });
    0
}

fn changed(dom: sys::virDomainPtr, opaque: *mut c_void) {
    deliver(opaque, || {
        // SAFETY: dom is the domain libvirt passed to the calling callback.
        let (uuid, name) = unsafe { domain_identity(dom) };
        HostEvent::DomainChanged { uuid, name }
    });
}

/// DEVICE_ADDED / DEVICE_REMOVED: (conn, dom, alias, opaque).
pub(crate) unsafe extern "C" fn device_cb(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    _alias: *const c_char,
    opaque: *mut c_void,
) {
    changed(dom, opaque);
}

/// TRAY_CHANGE: (conn, dom, alias, reason, opaque).
pub(crate) unsafe extern "C" fn tray_cb(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    _alias: *const c_char,
    _reason: c_int,
    opaque: *mut c_void,
) {
    changed(dom, opaque);
}

/// DISK_CHANGE: (conn, dom, old, new, alias, reason, opaque).
pub(crate) unsafe extern "C" fn disk_cb(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    _old: *const c_char,
    _new: *const c_char,
    _alias: *const c_char,
    _reason: c_int,
    opaque: *mut c_void,
) {
    changed(dom, opaque);
}

/// METADATA_CHANGE: (conn, dom, type, nsuri, opaque).
pub(crate) unsafe extern "C" fn metadata_cb(
    _conn: sys::virConnectPtr,
    dom: sys::virDomainPtr,
    _type: c_int,
    _nsuri: *const c_char,
    opaque: *mut c_void,
) {
    changed(dom, opaque);
}

pub(crate) unsafe extern "C" fn close_cb(
    _conn: sys::virConnectPtr,
    reason: c_int,
    opaque: *mut c_void,
) {
    deliver(opaque, || {
        let reason = match u32::try_from(reason).unwrap_or(u32::MAX) {
            sys::VIR_CONNECT_CLOSE_REASON_ERROR => "connection error",
            sys::VIR_CONNECT_CLOSE_REASON_EOF => "connection closed by the host (EOF)",
            sys::VIR_CONNECT_CLOSE_REASON_KEEPALIVE => "keepalive timeout",
            sys::VIR_CONNECT_CLOSE_REASON_CLIENT => "closed by client",
            _ => "connection closed",
        };
        HostEvent::Closed {
            reason: reason.to_string(),
        }
    });
}
