//! A connector and hypervisor that forward every call to another one, with hooks a test
//! sets to inject faults around the real libvirt test driver: refused connections, calls
//! that hang or fail, lost events, and a count of the calls made.

use crate::{
    Connector, CpuCompatibility, DetachOutcome, DomainSnapshot, DomainStats, EventSink, HostEvent,
    HostInfo, Hypervisor, JobProgress, LibvirtError, MigrateParams, NetworkInfo, PoolAction,
    PoolInfo, SnapshotDeleteOutcome, SnapshotInfo, SnapshotSpec, VolumeInfo,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uvmm_model::Action;

/// `(host URI, call name) -> decision`; see [`Hooks::hang_while`] and [`Hooks::fail_when`].
type Rule<T> = Box<dyn Fn(&str, &str) -> T + Send + Sync>;

/// What a test controls. Call names are the [`Hypervisor`] method names.
#[derive(Default)]
pub struct Hooks {
    /// Refuse this many of the next connection attempts.
    pub refuse_connects: AtomicUsize,
    /// Connection attempts made (refused ones included).
    pub connects: AtomicUsize,
    /// Domain events are dropped (connection events still arrive).
    pub lose_events: AtomicBool,
    hang: Mutex<Option<Rule<bool>>>,
    fail: Mutex<Option<Rule<Option<LibvirtError>>>>,
    calls: Mutex<HashMap<&'static str, usize>>,
    sinks: Mutex<Vec<EventSink>>,
    opened: Mutex<Vec<Arc<dyn Hypervisor>>>,
}

impl Hooks {
    /// Calls for which `rule(uri, call)` holds wait until it no longer does (a hung host).
    pub fn hang_while(&self, rule: impl Fn(&str, &str) -> bool + Send + Sync + 'static) {
        *lock(&self.hang) = Some(Box::new(rule));
    }

    /// Calls for which `rule(uri, call)` gives an error fail with it.
    pub fn fail_when(
        &self,
        rule: impl Fn(&str, &str) -> Option<LibvirtError> + Send + Sync + 'static,
    ) {
        *lock(&self.fail) = Some(Box::new(rule));
    }

    /// Remove the hang and fail rules.
    pub fn clear(&self) {
        *lock(&self.hang) = None;
        *lock(&self.fail) = None;
    }

    /// How often `call` was made.
    pub fn calls(&self, call: &str) -> usize {
        lock(&self.calls).get(call).copied().unwrap_or(0)
    }

    /// The event sink of the latest connection (to inject `Closed`, say).
    pub fn last_sink(&self) -> Option<EventSink> {
        lock(&self.sinks).last().cloned()
    }

    /// The latest real connection, for changes made behind the daemon's back.
    pub fn last_connection(&self) -> Option<Arc<dyn Hypervisor>> {
        lock(&self.opened).last().cloned()
    }

    fn before(&self, uri: &str, call: &'static str) -> Result<(), LibvirtError> {
        *lock(&self.calls).entry(call).or_default() += 1;
        while lock(&self.hang).as_ref().is_some_and(|r| r(uri, call)) {
            std::thread::sleep(Duration::from_millis(10));
        }
        match lock(&self.fail).as_ref().and_then(|r| r(uri, call)) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A poisoned lock only means a test thread panicked; its data is still what it was.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Opens connections through `inner` and wraps them.
pub struct InterceptConnector {
    pub inner: Arc<dyn Connector>,
    pub hooks: Arc<Hooks>,
}

impl Connector for InterceptConnector {
    fn connect(&self, uri: &str, sink: EventSink) -> Result<Arc<dyn Hypervisor>, LibvirtError> {
        let hooks = &self.hooks;
        hooks.connects.fetch_add(1, Ordering::SeqCst);
        let refused = hooks
            .refuse_connects
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refused {
            return Err(LibvirtError::new(
                crate::ErrorKind::Connection,
                "injected: connection refused",
            ));
        }
        lock(&hooks.sinks).push(sink.clone());
        let filter = hooks.clone();
        let lossy: EventSink = Arc::new(move |e| {
            let lost =
                filter.lose_events.load(Ordering::SeqCst) && !matches!(e, HostEvent::Closed { .. });
            if !lost {
                sink(e)
            }
        });
        let inner = self.inner.connect(uri, lossy)?;
        lock(&hooks.opened).push(inner.clone());
        Ok(Arc::new(Intercepted {
            inner,
            hooks: hooks.clone(),
        }))
    }
}

struct Intercepted {
    inner: Arc<dyn Hypervisor>,
    hooks: Arc<Hooks>,
}

/// Every method: the hooks first, then the wrapped connection.
macro_rules! forward {
    ($( fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        $(
            fn $name(&self $(, $arg: $ty)*) -> $ret {
                self.hooks.before(self.inner.uri(), stringify!($name))?;
                self.inner.$name($($arg),*)
            }
        )*
    };
}

impl Hypervisor for Intercepted {
    fn uri(&self) -> &str {
        self.inner.uri()
    }

    fn is_alive(&self) -> bool {
        self.inner.is_alive()
    }

    forward! {
        fn host_info(&self) -> Result<HostInfo, LibvirtError>;
        fn list_domains(&self) -> Result<Vec<DomainSnapshot>, LibvirtError>;
        fn domain(&self, uuid: &str) -> Result<Option<DomainSnapshot>, LibvirtError>;
        fn action(&self, uuid: &str, action: Action) -> Result<(), LibvirtError>;
        fn job_progress(&self, uuid: &str, completed: bool) -> Result<Option<JobProgress>, LibvirtError>;
        fn abort_job(&self, uuid: &str) -> Result<(), LibvirtError>;
        fn domain_stats(&self, active_only: bool) -> Result<Vec<DomainStats>, LibvirtError>;
        fn free_memory_kib(&self) -> Result<u64, LibvirtError>;
        fn domain_xml(&self, uuid: &str, inactive: bool, secure: bool) -> Result<String, LibvirtError>;
        fn persistent_definitions(&self, wanted: &[String]) -> Result<Vec<(String, String)>, LibvirtError>;
        fn define(&self, xml: &str) -> Result<String, LibvirtError>;
        fn undefine(&self, uuid: &str) -> Result<(), LibvirtError>;
        fn set_autostart(&self, uuid: &str, on: bool) -> Result<(), LibvirtError>;
        fn update_device(&self, uuid: &str, device_xml: &str, live: bool) -> Result<(), LibvirtError>;
        fn set_live_notes(&self, uuid: &str, description: Option<&str>, notes_xml: Option<&str>) -> Result<(), LibvirtError>;
        fn pools(&self) -> Result<Vec<PoolInfo>, LibvirtError>;
        fn volumes(&self, pool: &str) -> Result<Vec<VolumeInfo>, LibvirtError>;
        fn volume(&self, pool: &str, name: &str) -> Result<Option<VolumeInfo>, LibvirtError>;
        fn create_volume(&self, pool: &str, xml: &str) -> Result<VolumeInfo, LibvirtError>;
        fn delete_volume(&self, pool: &str, name: &str) -> Result<(), LibvirtError>;
        fn volume_by_path(&self, path: &str) -> Result<Option<VolumeInfo>, LibvirtError>;
        fn read_volume(&self, pool: &str, name: &str, len: u64) -> Result<Vec<u8>, LibvirtError>;
        fn define_pool(&self, xml: &str) -> Result<(), LibvirtError>;
        fn pool_action(&self, pool: &str, action: PoolAction) -> Result<(), LibvirtError>;
        fn clone_volume(&self, pool: &str, source: &str, xml: &str) -> Result<VolumeInfo, LibvirtError>;
        fn resize_volume(&self, pool: &str, name: &str, capacity: u64) -> Result<(), LibvirtError>;
        fn networks(&self) -> Result<Vec<NetworkInfo>, LibvirtError>;
        fn interfaces(&self) -> Result<Vec<String>, LibvirtError>;
        fn migrate_to(&self, uuid: &str, dest_uri: &str, params: &MigrateParams) -> Result<(), LibvirtError>;
        fn start_post_copy(&self, uuid: &str) -> Result<(), LibvirtError>;
        fn compare_cpu(&self, cpu_xml: &str, arch: Option<&str>, machine: Option<&str>, virt_type: Option<&str>) -> Result<CpuCompatibility, LibvirtError>;
        fn download_volume(&self, pool: &str, name: &str, sink: &mut dyn FnMut(&[u8]) -> Result<(), LibvirtError>) -> Result<u64, LibvirtError>;
        fn upload_volume(&self, pool: &str, name: &str, source: &mut dyn FnMut(&mut [u8]) -> Result<usize, LibvirtError>) -> Result<u64, LibvirtError>;
        fn snapshot_redefine(&self, uuid: &str, xml: &str, current: bool) -> Result<(), LibvirtError>;
        fn snapshot_create(&self, uuid: &str, spec: &SnapshotSpec) -> Result<String, LibvirtError>;
        fn snapshots(&self, uuid: &str) -> Result<Vec<SnapshotInfo>, LibvirtError>;
        fn snapshot_revert(&self, uuid: &str, name: &str, running: bool) -> Result<(), LibvirtError>;
        fn snapshot_delete(&self, uuid: &str, name: &str, timeout: Duration) -> Result<SnapshotDeleteOutcome, LibvirtError>;
        fn snapshot_merge_external(&self, uuid: &str, name: &str, timeout: Duration) -> Result<SnapshotDeleteOutcome, LibvirtError>;
        fn attach_device(&self, uuid: &str, device_xml: &str, live: bool, persist: bool) -> Result<(), LibvirtError>;
        fn detach_device(&self, uuid: &str, device_xml: &str, live: bool, persist: bool, timeout: Duration) -> Result<DetachOutcome, LibvirtError>;
        fn rename(&self, uuid: &str, new_name: &str) -> Result<(), LibvirtError>;
        fn start_paused(&self, uuid: &str) -> Result<(), LibvirtError>;
    }
}
