//! What a job needs to know about its host, taken from the cache before it runs.

use uvmm_model::caps::HostCaps;
use uvmm_model::validate::HostLimits;

/// Everything a job needs to know about the host, taken from the cache beforehand.
#[derive(Clone)]
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
    /// Directories below which client paths outside pools are accepted (`[api] image_dirs`).
    pub image_dirs: Vec<String>,
}

impl HostFacts {
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
