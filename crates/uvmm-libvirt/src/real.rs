//! The real [`Connector`] and [`Hypervisor`], backed by the `virt` crate.

use crate::events::{self, into_opaque};
use crate::{
    Connector, DomainSnapshot, DomainStats, ErrorKind, EventSink, HostInfo, Hypervisor,
    LibvirtError, NetworkInfo, PoolAction, PoolInfo, VolumeInfo,
};
use std::ffi::c_int;
use std::sync::Arc;
use uvmm_model::caps::parse_capabilities;
use uvmm_model::{Action, VmState};
use virt::connect::Connect;
use virt::domain::Domain;
use virt::storage_vol::StorageVol;
use virt::stream::Stream;
use virt::sys;

/// Opens real libvirt connections with keepalive and event callbacks.
#[derive(Debug, Clone)]
pub struct LibvirtConnector {
    /// Seconds between keepalive probes on remote connections.
    pub keepalive_interval: i32,
    /// Unanswered probes after which the connection counts as dead.
    pub keepalive_count: u32,
}

impl Default for LibvirtConnector {
    fn default() -> Self {
        LibvirtConnector {
            keepalive_interval: 2,
            keepalive_count: 2,
        }
    }
}

struct LibvirtHost {
    uri: String,
    conn: Connect,
    callback_ids: Vec<c_int>,
    close_registered: bool,
}

/// A libvirt enum value (bindgen makes them `u32`) as the `i32` the `virt` crate's
/// signatures and error codes use.
pub(crate) fn code(v: u32) -> i32 {
    // libvirt's enum values are small; one that is not is no valid value anyway.
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn version_string(v: u32) -> String {
    format!("{}.{}.{}", v / 1_000_000, (v / 1000) % 1000, v % 1000)
}

impl Connector for LibvirtConnector {
    fn connect(&self, uri: &str, sink: EventSink) -> Result<Arc<dyn Hypervisor>, LibvirtError> {
        events::ensure_event_loop().map_err(|e| {
            LibvirtError::new(
                ErrorKind::Other,
                format!("libvirt event loop unavailable: {e}"),
            )
        })?;
        let conn = Connect::open(Some(uri)).map_err(|e| {
            let mut err = LibvirtError::from(e);
            err.kind = ErrorKind::Connection;
            err
        })?;
        // Local drivers have no keepalive; that is not an error worth reporting.
        let _ = conn.set_keep_alive(self.keepalive_interval, self.keepalive_count);

        let mut host = LibvirtHost {
            uri: uri.to_string(),
            conn,
            callback_ids: Vec::new(),
            close_registered: false,
        };
        host.register(sink)?;
        Ok(Arc::new(host))
    }
}

impl LibvirtHost {
    fn register(&mut self, sink: EventSink) -> Result<(), LibvirtError> {
        type Generic =
            unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, *mut std::ffi::c_void);
        // SAFETY: (all transmutes below) libvirt calls each callback with the signature
        // that belongs to its event id; VIR_DOMAIN_EVENT_CALLBACK in C does the same cast.
        let table: [(u32, Generic); 6] = unsafe {
            [
                (
                    sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                    std::mem::transmute::<*const (), Generic>(events::lifecycle_cb as *const ()),
                ),
                (
                    sys::VIR_DOMAIN_EVENT_ID_DEVICE_ADDED,
                    std::mem::transmute::<*const (), Generic>(events::device_cb as *const ()),
                ),
                (
                    sys::VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
                    std::mem::transmute::<*const (), Generic>(events::device_cb as *const ()),
                ),
                (
                    sys::VIR_DOMAIN_EVENT_ID_TRAY_CHANGE,
                    std::mem::transmute::<*const (), Generic>(events::tray_cb as *const ()),
                ),
                (
                    sys::VIR_DOMAIN_EVENT_ID_DISK_CHANGE,
                    std::mem::transmute::<*const (), Generic>(events::disk_cb as *const ()),
                ),
                (
                    sys::VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
                    std::mem::transmute::<*const (), Generic>(events::metadata_cb as *const ()),
                ),
            ]
        };
        for (id, cb) in table {
            let opaque = into_opaque(sink.clone());
            // SAFETY: conn is live; opaque is released by free_sink (also on failure, per
            // libvirt's contract only on success - so free it ourselves when it fails).
            let ret = unsafe {
                sys::virConnectDomainEventRegisterAny(
                    self.conn.as_ptr(),
                    std::ptr::null_mut(),
                    c_int::try_from(id).unwrap_or(c_int::MAX),
                    Some(cb),
                    opaque,
                    Some(events::free_sink),
                )
            };
            if ret < 0 {
                // SAFETY: registration failed, so libvirt did not take ownership.
                unsafe { events::free_sink(opaque) };
                let err = LibvirtError::from(virt::error::Error::last_error());
                // Lifecycle events are essential; the others only refine the cache.
                if id == sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE {
                    return Err(err);
                }
                tracing::debug!(uri = %self.uri, event = id, "event not supported: {err}");
                continue;
            }
            self.callback_ids.push(ret);
        }

        let opaque = into_opaque(sink);
        // SAFETY: as above; close_cb matches virConnectCloseFunc.
        let ret = unsafe {
            sys::virConnectRegisterCloseCallback(
                self.conn.as_ptr(),
                Some(events::close_cb),
                opaque,
                Some(events::free_sink),
            )
        };
        if ret < 0 {
            // SAFETY: not registered, still ours.
            unsafe { events::free_sink(opaque) };
        } else {
            self.close_registered = true;
        }
        Ok(())
    }

    fn lookup(&self, uuid: &str) -> Result<Option<Domain>, LibvirtError> {
        match self.conn.lookup_domain_by_uuid_string(uuid) {
            Ok(d) => Ok(Some(d)),
            Err(e) => {
                let e = LibvirtError::from(e);
                if e.kind == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The persistent definition of an active persistent domain (see
    /// [`DomainSnapshot::next_boot_xml`]).
    fn next_boot_xml(
        dom: &Domain,
        active: bool,
        persistent: bool,
    ) -> Result<Option<String>, LibvirtError> {
        if !(active && persistent) {
            return Ok(None);
        }
        Ok(Some(dom.xml_desc(
            sys::VIR_DOMAIN_XML_INACTIVE | sys::VIR_DOMAIN_XML_SECURE,
        )?))
    }

    fn snapshot(&self, dom: &Domain) -> Result<DomainSnapshot, LibvirtError> {
        let uuid = dom.uuid_string()?;
        let name = dom.name()?;
        let (mut state, mut reason): (c_int, c_int) = (0, 0);
        // SAFETY: dom is a live domain handle; state/reason are valid out-pointers.
        if unsafe { sys::virDomainGetState(dom.as_ptr(), &mut state, &mut reason, 0) } < 0 {
            return Err(virt::error::Error::last_error().into());
        }
        let info = dom.info()?;
        let persistent = dom.is_persistent()?;
        // Transient domains have no autostart flag or managed save.
        let autostart = persistent && dom.autostart().unwrap_or(false);
        let managed_save = persistent && dom.has_managed_save(0).unwrap_or(false);
        // With secrets: the cache then knows whether a VNC password is set (it never
        // shows the password), and a password change changes the ETag.
        let xml = dom.xml_desc(sys::VIR_DOMAIN_XML_SECURE)?;
        let state = VmState::from_libvirt(u32::try_from(state).unwrap_or(0));
        let next_boot_xml = Self::next_boot_xml(dom, state.is_active(), persistent)?;
        Ok(DomainSnapshot {
            uuid,
            name,
            state,
            reason: u32::try_from(reason).unwrap_or(0),
            persistent,
            autostart,
            managed_save,
            max_memory_kib: info.max_mem,
            memory_kib: info.memory,
            vcpus: info.nr_virt_cpu,
            cpu_time_ns: info.cpu_time,
            xml,
            next_boot_xml,
        })
    }
}

impl Hypervisor for LibvirtHost {
    fn uri(&self) -> &str {
        &self.uri
    }

    fn host_info(&self) -> Result<HostInfo, LibvirtError> {
        let node = self.conn.node_info()?;
        let caps_xml = self.conn.capabilities()?;
        let caps = parse_capabilities(&caps_xml).map_err(|e| {
            LibvirtError::new(ErrorKind::Other, format!("unreadable capabilities: {e}"))
        })?;
        Ok(HostInfo {
            hostname: self.conn.hostname()?,
            driver: self.conn.driver_type()?,
            libvirt_version: version_string(self.conn.lib_version()?),
            hypervisor_version: self
                .conn
                .hyp_version()
                .map(version_string)
                .unwrap_or_default(),
            cpus: node.cpus,
            cpu_model: node.model,
            cpu_mhz: node.mhz,
            memory_kib: node.memory,
            caps,
        })
    }

    fn list_domains(&self) -> Result<Vec<DomainSnapshot>, LibvirtError> {
        // Bulk calls instead of six calls per domain: flag-filtered lists tell persistent,
        // autostart and managed-save domains apart, one stats call gives states and sizes;
        // only the XML is read per domain. (Name and UUID come with the list, no call.)
        let domains = self.conn.list_all_domains(0)?;
        let stats = match crate::stats::all_domain_stats(&self.conn, false) {
            Ok(s) => s,
            Err(e) if e.kind == ErrorKind::NotSupported => {
                return self.list_domains_one_by_one(&domains)
            }
            Err(e) => return Err(e),
        };
        let stats: std::collections::HashMap<String, DomainStats> =
            stats.into_iter().map(|s| (s.uuid.clone(), s)).collect();
        let set = |flags: u32| -> Result<std::collections::HashSet<String>, LibvirtError> {
            Ok(self
                .conn
                .list_all_domains(flags)?
                .iter()
                .filter_map(|d| d.uuid_string().ok())
                .collect())
        };
        let persistent = set(sys::VIR_CONNECT_LIST_DOMAINS_PERSISTENT)?;
        let autostart = set(sys::VIR_CONNECT_LIST_DOMAINS_AUTOSTART)?;
        let managed = set(sys::VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE)?;
        let mut out = Vec::with_capacity(domains.len());
        for dom in &domains {
            let uuid = dom.uuid_string()?;
            let Some(st) = stats.get(&uuid) else {
                // Defined after the stats call: read it the long way.
                if let Ok(s) = self.snapshot(dom) {
                    out.push(s);
                }
                continue;
            };
            let xml = match dom.xml_desc(sys::VIR_DOMAIN_XML_SECURE) {
                Ok(x) => x,
                Err(e) if LibvirtError::from(e.clone()).kind == ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let state = st.state.unwrap_or(VmState::Unknown);
            let next_boot_xml =
                match Self::next_boot_xml(dom, state.is_active(), persistent.contains(&uuid)) {
                    Ok(x) => x,
                    Err(e) if e.kind == ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
            out.push(DomainSnapshot {
                name: dom.name()?,
                state,
                reason: st.reason.unwrap_or(0),
                persistent: persistent.contains(&uuid),
                autostart: autostart.contains(&uuid),
                managed_save: managed.contains(&uuid),
                // Zero means "not reported" (inactive domains): the cache takes the XML's.
                max_memory_kib: st.balloon_maximum_kib.unwrap_or(0),
                memory_kib: st.balloon_current_kib.unwrap_or(0),
                vcpus: st.vcpus_current.unwrap_or(0),
                cpu_time_ns: st.cpu_time_ns.unwrap_or(0),
                uuid,
                xml,
                next_boot_xml,
            });
        }
        Ok(out)
    }

    fn domain(&self, uuid: &str) -> Result<Option<DomainSnapshot>, LibvirtError> {
        let Some(dom) = self.lookup(uuid)? else {
            return Ok(None);
        };
        match self.snapshot(&dom) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn action(&self, uuid: &str, action: Action) -> Result<(), LibvirtError> {
        let dom = self.lookup(uuid)?.ok_or_else(|| {
            LibvirtError::new(ErrorKind::NotFound, format!("domain {uuid} not found"))
        })?;
        match action {
            Action::Start => dom.create().map(|_| ()),
            Action::Shutdown => dom.shutdown().map(|_| ()),
            Action::Stop => dom.destroy(),
            Action::Pause => dom.suspend().map(|_| ()),
            Action::Resume => dom.resume().map(|_| ()),
            Action::Suspend => dom.managed_save(0),
            Action::Reboot => dom.reboot(0),
            Action::Reset => dom.reset().map(|_| ()),
        }
        .map_err(LibvirtError::from)
    }

    fn domain_stats(&self, active_only: bool) -> Result<Vec<DomainStats>, LibvirtError> {
        crate::stats::all_domain_stats(&self.conn, active_only)
    }

    fn free_memory_kib(&self) -> Result<u64, LibvirtError> {
        Ok(self.conn.free_memory()? / 1024)
    }

    fn is_alive(&self) -> bool {
        self.conn.is_alive().unwrap_or(false)
    }

    fn domain_xml(&self, uuid: &str, inactive: bool, secure: bool) -> Result<String, LibvirtError> {
        let dom = self.must(uuid)?;
        let mut flags = 0;
        if inactive {
            flags |= sys::VIR_DOMAIN_XML_INACTIVE;
        }
        if secure {
            flags |= sys::VIR_DOMAIN_XML_SECURE;
        }
        Ok(dom.xml_desc(flags)?)
    }

    fn persistent_definitions(
        &self,
        wanted: &[String],
    ) -> Result<Vec<(String, String)>, LibvirtError> {
        if wanted.is_empty() {
            return Ok(vec![]);
        }
        let wanted: std::collections::HashSet<&str> = wanted.iter().map(String::as_str).collect();
        let mut out = Vec::with_capacity(wanted.len());
        // One listing for the handles (UUIDs come with them, no call), then one XML read
        // per wanted domain.
        for dom in self
            .conn
            .list_all_domains(sys::VIR_CONNECT_LIST_DOMAINS_PERSISTENT)?
        {
            let Ok(uuid) = dom.uuid_string() else {
                continue;
            };
            if !wanted.contains(uuid.as_str()) {
                continue;
            }
            match dom.xml_desc(sys::VIR_DOMAIN_XML_INACTIVE | sys::VIR_DOMAIN_XML_SECURE) {
                Ok(xml) => out.push((uuid, xml)),
                Err(e) => {
                    let e = LibvirtError::from(e);
                    // Undefined since the listing: simply gone. Another odd answer about
                    // one domain must not hide the others; it is looked at next time.
                    if e.kind == ErrorKind::Connection {
                        return Err(e);
                    }
                }
            }
        }
        Ok(out)
    }

    fn define(&self, xml: &str) -> Result<String, LibvirtError> {
        // Let libvirt check its schema too where the driver supports it.
        let dom = match self
            .conn
            .define_domain_xml_flags(xml, sys::VIR_DOMAIN_DEFINE_VALIDATE)
        {
            Ok(d) => d,
            Err(e) => {
                let e = LibvirtError::from(e);
                if e.kind != ErrorKind::NotSupported && e.code != code(sys::VIR_ERR_INVALID_ARG) {
                    return Err(e);
                }
                self.conn.define_domain_xml(xml)?
            }
        };
        Ok(dom.uuid_string()?)
    }

    fn undefine(&self, uuid: &str) -> Result<(), LibvirtError> {
        let dom = self.must(uuid)?;
        let full = sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
            | sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            | sys::VIR_DOMAIN_UNDEFINE_NVRAM
            | sys::VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA;
        // Drivers refuse flags they do not know; fall back step by step.
        for flags in [
            full,
            sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
            0,
        ] {
            match dom.undefine_flags(flags) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let e = LibvirtError::from(e);
                    if flags == 0
                        || !matches!(e.kind, ErrorKind::NotSupported | ErrorKind::InvalidInput)
                    {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    fn set_autostart(&self, uuid: &str, on: bool) -> Result<(), LibvirtError> {
        self.must(uuid)?.set_autostart(on)?;
        Ok(())
    }

    fn update_device(&self, uuid: &str, device_xml: &str, live: bool) -> Result<(), LibvirtError> {
        let flags = if live {
            sys::VIR_DOMAIN_AFFECT_LIVE
        } else {
            sys::VIR_DOMAIN_AFFECT_CONFIG
        };
        self.must(uuid)?.update_device_flags(device_xml, flags)?;
        Ok(())
    }

    fn set_live_notes(
        &self,
        uuid: &str,
        description: Option<&str>,
        notes_xml: Option<&str>,
    ) -> Result<(), LibvirtError> {
        let dom = self.must(uuid)?;
        let live = sys::VIR_DOMAIN_AFFECT_LIVE;
        dom.set_metadata(
            code(sys::VIR_DOMAIN_METADATA_DESCRIPTION),
            description,
            None,
            None,
            live,
        )?;
        dom.set_metadata(
            code(sys::VIR_DOMAIN_METADATA_ELEMENT),
            notes_xml,
            Some("uvmm"),
            Some(uvmm_model::domain::UVMM_NS),
            live,
        )?;
        Ok(())
    }

    fn pools(&self) -> Result<Vec<PoolInfo>, LibvirtError> {
        let mut out = Vec::new();
        for pool in self.conn.list_all_storage_pools(0)? {
            let xml = pool.xml_desc(0)?;
            let def = uvmm_model::storage::parse_pool(&xml).map_err(|e| {
                LibvirtError::new(ErrorKind::Other, format!("unreadable pool XML: {e}"))
            })?;
            let info = pool.info()?;
            out.push(PoolInfo {
                def,
                active: pool.is_active()?,
                autostart: pool.autostart().unwrap_or(false),
                persistent: pool.is_persistent().unwrap_or(true),
                capacity: info.capacity,
                allocation: info.allocation,
                available: info.available,
            });
        }
        Ok(out)
    }

    fn volumes(&self, pool: &str) -> Result<Vec<VolumeInfo>, LibvirtError> {
        let p = self.conn.lookup_storage_pool_by_name(pool)?;
        let mut out = Vec::new();
        for vol in p.list_all_volumes(0)? {
            out.push(volume_info(pool, &vol)?);
        }
        Ok(out)
    }

    fn volume(&self, pool: &str, name: &str) -> Result<Option<VolumeInfo>, LibvirtError> {
        let p = self.conn.lookup_storage_pool_by_name(pool)?;
        match p.lookup_storage_vol_by_name(name) {
            Ok(vol) => Ok(Some(volume_info(pool, &vol)?)),
            Err(e) => {
                let e = LibvirtError::from(e);
                if e.kind == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    fn create_volume(&self, pool: &str, xml: &str) -> Result<VolumeInfo, LibvirtError> {
        let p = self.conn.lookup_storage_pool_by_name(pool)?;
        let vol = StorageVol::create_xml(&p, xml, 0)?;
        volume_info(pool, &vol)
    }

    fn delete_volume(&self, pool: &str, name: &str) -> Result<(), LibvirtError> {
        let p = self.conn.lookup_storage_pool_by_name(pool)?;
        p.lookup_storage_vol_by_name(name)?.delete(0)?;
        Ok(())
    }

    fn volume_by_path(&self, path: &str) -> Result<Option<VolumeInfo>, LibvirtError> {
        match self.conn.lookup_storage_vol_by_path(path) {
            Ok(vol) => {
                let pool = vol.lookup_storage_pool()?.name()?;
                Ok(Some(volume_info(&pool, &vol)?))
            }
            Err(e) => {
                let e = LibvirtError::from(e);
                if e.kind == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    fn read_volume(&self, pool: &str, name: &str, len: u64) -> Result<Vec<u8>, LibvirtError> {
        let p = self.conn.lookup_storage_pool_by_name(pool)?;
        let vol = p.lookup_storage_vol_by_name(name)?;
        let stream = Stream::new(&self.conn, 0)?;
        vol.download(&stream, 0, len, 0)?;
        let want = usize::try_from(len).unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(want.min(1 << 20));
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stream.recv(&mut buf)?;
            if n <= 0 || out.len() >= want {
                break;
            }
            out.extend_from_slice(&buf[..n.unsigned_abs()]);
        }
        out.truncate(want);
        let _ = stream.finish();
        Ok(out)
    }

    fn define_pool(&self, xml: &str) -> Result<(), LibvirtError> {
        self.conn.define_storage_pool_xml(xml, 0)?;
        Ok(())
    }

    fn pool_action(&self, pool: &str, action: PoolAction) -> Result<(), LibvirtError> {
        let p = self.conn.lookup_storage_pool_by_name(pool)?;
        match action {
            PoolAction::Build => {
                // Building a dir or netfs pool only makes a directory; for the others it
                // formats storage, which must never overwrite existing data.
                let kind = uvmm_model::storage::parse_pool(&p.xml_desc(0)?)
                    .map(|d| d.kind)
                    .unwrap_or_default();
                let flags = if matches!(kind.as_str(), "dir" | "netfs") {
                    0
                } else {
                    sys::VIR_STORAGE_POOL_BUILD_NO_OVERWRITE
                };
                p.build(flags)?
            }
            PoolAction::Start => p.create(0)?,
            PoolAction::Stop => p.destroy()?,
            PoolAction::Refresh => p.refresh(0)?,
            PoolAction::Undefine => p.undefine()?,
            PoolAction::DeleteStorage => p.delete(0)?,
            PoolAction::Autostart(on) => p.set_autostart(on)?,
        }
        Ok(())
    }

    fn clone_volume(
        &self,
        pool: &str,
        source: &str,
        xml: &str,
    ) -> Result<VolumeInfo, LibvirtError> {
        let p = self.conn.lookup_storage_pool_by_name(pool)?;
        let src = p.lookup_storage_vol_by_name(source)?;
        let vol = StorageVol::create_xml_from(&p, xml, &src, 0)?;
        volume_info(pool, &vol)
    }

    fn resize_volume(&self, pool: &str, name: &str, capacity: u64) -> Result<(), LibvirtError> {
        let p = self.conn.lookup_storage_pool_by_name(pool)?;
        p.lookup_storage_vol_by_name(name)?.resize(capacity, 0)?;
        Ok(())
    }

    fn networks(&self) -> Result<Vec<NetworkInfo>, LibvirtError> {
        let mut out = Vec::new();
        for net in self.conn.list_all_networks(0)? {
            out.push(NetworkInfo {
                name: net.name()?,
                bridge: net.bridge_name().ok(),
                active: net.is_active().unwrap_or(false),
            });
        }
        Ok(out)
    }

    fn migrate_to(
        &self,
        uuid: &str,
        dest_uri: &str,
        params: &crate::MigrateParams,
    ) -> Result<(), LibvirtError> {
        crate::real_ext::migrate_to(&self.must(uuid)?, dest_uri, params)
    }

    fn job_progress(
        &self,
        uuid: &str,
        completed: bool,
    ) -> Result<Option<crate::JobProgress>, LibvirtError> {
        crate::real_ext::job_progress(&self.must(uuid)?, completed)
    }

    fn abort_job(&self, uuid: &str) -> Result<(), LibvirtError> {
        crate::real_ext::abort_job(&self.must(uuid)?)
    }

    fn start_post_copy(&self, uuid: &str) -> Result<(), LibvirtError> {
        crate::real_ext::start_post_copy(&self.must(uuid)?)
    }

    fn compare_cpu(
        &self,
        cpu_xml: &str,
        arch: Option<&str>,
        machine: Option<&str>,
        virt_type: Option<&str>,
    ) -> Result<crate::CpuCompatibility, LibvirtError> {
        crate::real_ext::compare_cpu(&self.conn, cpu_xml, arch, machine, virt_type)
    }

    fn download_volume(
        &self,
        pool: &str,
        name: &str,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), LibvirtError>,
    ) -> Result<u64, LibvirtError> {
        crate::real_ext::download_volume(&self.conn, pool, name, sink)
    }

    fn upload_volume(
        &self,
        pool: &str,
        name: &str,
        source: &mut dyn FnMut(&mut [u8]) -> Result<usize, LibvirtError>,
    ) -> Result<u64, LibvirtError> {
        crate::real_ext::upload_volume(&self.conn, pool, name, source)
    }

    fn snapshot_redefine(&self, uuid: &str, xml: &str, current: bool) -> Result<(), LibvirtError> {
        crate::real_ext::snapshot_redefine(&self.must(uuid)?, xml, current)
    }

    fn snapshot_create(
        &self,
        uuid: &str,
        spec: &crate::SnapshotSpec,
    ) -> Result<String, LibvirtError> {
        crate::real_ext::snapshot_create(&self.must(uuid)?, spec)
    }

    fn snapshots(&self, uuid: &str) -> Result<Vec<crate::SnapshotInfo>, LibvirtError> {
        crate::real_ext::snapshots(&self.must(uuid)?)
    }

    fn snapshot_revert(&self, uuid: &str, name: &str, running: bool) -> Result<(), LibvirtError> {
        crate::real_ext::snapshot_revert(&self.must(uuid)?, name, running)
    }

    fn snapshot_delete(
        &self,
        uuid: &str,
        name: &str,
        timeout: std::time::Duration,
    ) -> Result<crate::SnapshotDeleteOutcome, LibvirtError> {
        crate::real_ext::snapshot_delete(&self.must(uuid)?, name, timeout)
    }

    fn snapshot_merge_external(
        &self,
        uuid: &str,
        name: &str,
        timeout: std::time::Duration,
    ) -> Result<crate::SnapshotDeleteOutcome, LibvirtError> {
        crate::real_ext::snapshot_merge_external(&self.must(uuid)?, name, timeout)
    }

    fn attach_device(
        &self,
        uuid: &str,
        device_xml: &str,
        live: bool,
        persist: bool,
    ) -> Result<(), LibvirtError> {
        crate::real_ext::attach_device(&self.must(uuid)?, device_xml, live, persist)
    }

    fn detach_device(
        &self,
        uuid: &str,
        device_xml: &str,
        live: bool,
        persist: bool,
        timeout: std::time::Duration,
    ) -> Result<crate::DetachOutcome, LibvirtError> {
        crate::real_ext::detach_device(&self.must(uuid)?, device_xml, live, persist, timeout)
    }

    fn rename(&self, uuid: &str, new_name: &str) -> Result<(), LibvirtError> {
        self.must(uuid)?.rename(new_name, 0)?;
        Ok(())
    }

    fn start_paused(&self, uuid: &str) -> Result<(), LibvirtError> {
        self.must(uuid)?
            .create_with_flags(sys::VIR_DOMAIN_START_PAUSED)?;
        Ok(())
    }

    fn interfaces(&self) -> Result<Vec<String>, LibvirtError> {
        Ok(self
            .conn
            .list_all_interfaces(0)?
            .iter()
            .filter_map(|i| i.name().ok())
            .collect())
    }
}

fn volume_info(pool: &str, vol: &StorageVol) -> Result<VolumeInfo, LibvirtError> {
    let xml = vol.xml_desc(0)?;
    let mut def = uvmm_model::storage::parse_volume(&xml)
        .map_err(|e| LibvirtError::new(ErrorKind::Other, format!("unreadable volume XML: {e}")))?;
    if def.path.is_none() {
        def.path = vol.path().ok();
    }
    Ok(VolumeInfo {
        pool: pool.to_string(),
        def,
    })
}

impl LibvirtHost {
    /// Drivers without bulk statistics: every domain on its own.
    fn list_domains_one_by_one(
        &self,
        domains: &[Domain],
    ) -> Result<Vec<DomainSnapshot>, LibvirtError> {
        let mut out = Vec::with_capacity(domains.len());
        for dom in domains {
            match self.snapshot(dom) {
                Ok(s) => out.push(s),
                // Undefined between listing and reading: simply gone.
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn must(&self, uuid: &str) -> Result<Domain, LibvirtError> {
        self.lookup(uuid)?.ok_or_else(|| {
            LibvirtError::new(ErrorKind::NotFound, format!("domain {uuid} not found"))
        })
    }
}

impl Drop for LibvirtHost {
    fn drop(&mut self) {
        for id in self.callback_ids.drain(..) {
            // SAFETY: id was returned by a successful registration on this connection.
            unsafe { sys::virConnectDomainEventDeregisterAny(self.conn.as_ptr(), id) };
        }
        if self.close_registered {
            // SAFETY: the same callback was registered on this connection.
            unsafe {
                sys::virConnectUnregisterCloseCallback(self.conn.as_ptr(), Some(events::close_cb))
            };
        }
    }
}
