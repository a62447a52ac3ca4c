//! The decisions on targets a request names in its body (where a VM is created, cloned,
//! moved or restored to): the route (`http/auth.rs`, `TargetFrom::Body`/`VmAndBody`) let
//! the request through on its permission somewhere or on the VM of its path; the handler
//! calls one of these before it does anything. A host the caller cannot see answers 404,
//! as on paths; a name outside its scope 403.

use crate::caller::Caller;
use crate::http::error::RequestError;
use uvmm_auth::{authorize as decide, visible, HostRef, Permission, Target};

impl Caller {
    /// The decision on a target named in the body (`TargetFrom::Body`): `host` (id or
    /// URI) and the new VM's `name`. A host the caller may not see is "no such host"
    /// (404), as on paths; a visible host with a name outside the caller's scope is 403.
    pub fn authorize_new(
        &self,
        cache: &crate::cache::Cache,
        p: Permission,
        host: &str,
        name: &str,
    ) -> Result<(), RequestError> {
        let Ok(h) = cache.resolve_host(host) else {
            // The operation says "no such host" itself, to whoever may act somewhere.
            return Ok(());
        };
        // Out of sight: the host (a new VM is not there yet).
        let hidden = || RequestError::Hidden(format!("no host {host:?}"));
        self.decide_on(p, &h.id, &h.uri, name, None, hidden)
    }

    /// The decision on the VM a backup version was (`restore`): `name` on `host` (id or
    /// URI), as a path's VM is decided (out of sight: 404); on a host no longer managed,
    /// a grant for that name on every host.
    pub fn authorize_backup(
        &self,
        cache: &crate::cache::Cache,
        p: Permission,
        host: &str,
        name: &str,
    ) -> Result<(), RequestError> {
        let Ok(h) = cache.resolve_host(host) else {
            let anywhere = Target {
                host: None,
                vm: Some(name),
            };
            decide(&self.grants, p, &anywhere)?;
            return Ok(());
        };
        let hidden = || RequestError::Hidden(format!("no backup of '{name}'"));
        self.decide_on(p, &h.id, &h.uri, name, Some(name), hidden)
    }

    /// `p` on `name` on a host: `hidden()` (404) when the caller cannot see the host (with
    /// `seen`: that VM on it), 403 when it sees it but may not do this.
    fn decide_on(
        &self,
        p: Permission,
        id: &str,
        uri: &str,
        name: &str,
        seen: Option<&str>,
        hidden: impl FnOnce() -> RequestError,
    ) -> Result<(), RequestError> {
        let at = HostRef { id, uri };
        if !visible(&self.grants, at, seen) {
            return Err(hidden());
        }
        decide(&self.grants, p, &Target::vm(at, name))?;
        Ok(())
    }

    /// The decision on where an operation takes a VM of a path, or its copy
    /// (`TargetFrom::VmAndBody`): `to` (host id or URI; `None`: the VM's own host) with
    /// `name` (`None`: the VM's name), as [`Caller::authorize_new`] decides it. The VM
    /// itself was decided by the route; a VM that is not there is the operation's 404.
    pub fn authorize_onto(
        &self,
        cache: &crate::cache::Cache,
        p: Permission,
        vm: &crate::jobs::VmRef,
        to: Option<&str>,
        name: Option<&str>,
    ) -> Result<(), RequestError> {
        let Ok((h, v)) = cache.resolve_vm(&vm.uuid, vm.host.as_deref()) else {
            return Ok(());
        };
        self.authorize_new(cache, p, to.unwrap_or(&h.id), name.unwrap_or(&v.name))
    }
}
