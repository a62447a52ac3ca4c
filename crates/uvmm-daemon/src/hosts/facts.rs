//! What a job needs to know about its host, taken from the cache before it runs.

use crate::cache::{Cache, HostEntry};
use uvmm_model::caps::HostCaps;
use uvmm_model::hosts::HostUri;
use uvmm_model::validate::HostLimits;

/// Everything a job needs to know about the host, taken from the cache beforehand.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub uri: String,
    pub host_id: String,
    pub local: bool,
    pub caps: HostCaps,
    pub limits: HostLimits,
    /// Disk sources of all VMs on this host: (path, "name@host-id").
    pub users_here: Vec<(String, String)>,
    /// Disk sources of VMs on every host (for shared pools).
    pub users_anywhere: Vec<(String, String)>,
    /// The "name@host-id" of every VM on this host with a running (or paused) process:
    /// an image such a VM has open must not be handed to another VM as a writable disk.
    pub active_here: Vec<String>,
    /// Directories below which client paths outside pools are accepted (`[api] image_dirs`).
    pub image_dirs: Vec<String>,
}

impl HostFacts {
    /// The facts of host `h` as the cache has them now.
    pub fn of(cache: &Cache, h: &HostEntry, image_dirs: &[String]) -> HostFacts {
        let sources = |h: &HostEntry| -> Vec<(String, String)> {
            h.vms()
                .values()
                .flat_map(|v| {
                    let who = format!("{}@{}", v.name, h.id);
                    v.disk_sources().map(move |p| (p.to_string(), who.clone()))
                })
                .collect()
        };
        let info = h.info.clone().unwrap_or_default();
        HostFacts {
            uri: h.uri.clone(),
            host_id: h.id.clone(),
            local: HostUri::parse(&h.uri)
                .map(|u| u.is_local())
                .unwrap_or(false),
            caps: info.caps.clone(),
            limits: HostLimits {
                memory_kib: Some(info.memory_kib),
                cpus: Some(info.cpus),
            },
            users_here: sources(h),
            active_here: h
                .vms()
                .values()
                .filter(|v| v.state.is_active())
                .map(|v| format!("{}@{}", v.name, h.id))
                .collect(),
            users_anywhere: cache.hosts().flat_map(sources).collect(),
            image_dirs: image_dirs.to_vec(),
        }
    }

    pub fn users_of(&self, path: &str, except: &str, shared: bool) -> Vec<String> {
        let list = if shared {
            &self.users_anywhere
        } else {
            &self.users_here
        };
        let mut users: Vec<String> = list
            .iter()
            .filter(|(p, who)| p == path && who != except)
            .map(|(_, who)| who.clone())
            .collect();
        users.sort();
        users.dedup();
        users
    }
}
