//! The lifecycle actions: start, shutdown, stop, pause, resume, suspend, reboot, reset.

use super::{kvm_start_hint, VmError};
use crate::cache::{vm_summary, Cache, HostEntry, VmEntry};
use crate::error::Error;
use crate::jobs::tasks::{Long, Watch};
use crate::jobs::{Job, JobCtx};
use uvmm_api::ActionResponse;
use uvmm_api::{CancelMode, TaskKind};
use uvmm_model::Action;

/// `POST /api/v1/vms/{uuid}/{action}`: answers when the cache shows the result, so a
/// `vm list` right after the request sees the new state.
pub struct VmAction {
    pub action: Action,
    /// What to tell someone whose start failed (see `kvm_start_hint`).
    hint: Option<String>,
}

impl VmAction {
    pub fn new(action: Action) -> VmAction {
        VmAction { action, hint: None }
    }
}

impl Job for VmAction {
    type Output = ActionResponse;
    type Error = VmError;

    /// A managed save writes the VM's memory to disk: seconds to minutes. It runs as a
    /// task, and libvirt can abort it (the VM keeps running).
    fn long(&self) -> Option<Long> {
        (self.action == Action::Suspend).then_some(Long {
            kind: TaskKind::VmSuspend,
            cancel: CancelMode::Abort,
            target: None,
        })
    }

    fn prepare(&mut self, _: &Cache, _: &HostEntry, vm: Option<&VmEntry>) -> Result<(), Error> {
        if let Some(v) = vm {
            self.action.check(v.state).map_err(VmError::from)?;
            if self.action == Action::Start {
                self.hint = kvm_start_hint(&v.name, &v.def.domain_type);
            }
        }
        Ok(())
    }

    fn run(self, ctx: &JobCtx<'_>) -> Result<ActionResponse, VmError> {
        let uuid = ctx.at.vm();
        let (hv, hint) = (ctx.hv, self.hint);
        let poll = || {
            let p = hv.job_progress(uuid, false).ok().flatten()?;
            Some((p.data_processed?, p.data_total.unwrap_or(0)))
        };
        let abort = || {
            if let Err(e) = hv.abort_job(uuid) {
                tracing::debug!(%uuid, "abort: {e}");
            }
        };
        let how = Watch {
            poll: &poll,
            abort: Some(&abort),
        };
        let done = ctx.watch(how, || hv.action(uuid, self.action));
        done.map_err(|mut e| {
            if let Some(h) = hint {
                e.message = format!("{}. {h}", e.message.trim_end_matches('.'));
            }
            e
        })?;
        ctx.refresh(uuid);
        let cache = ctx.cache();
        let vm = cache
            .host(ctx.uri())
            .and_then(|h| h.vms().get(uuid).map(|v| vm_summary(h, v)));
        Ok(ActionResponse {
            action: self.action,
            vm,
        })
    }
}

/// `GET /api/v1/vms/{uuid}/xml`: the libvirt XML (live, or the persistent definition),
/// without secrets.
pub struct ReadXml {
    pub inactive: bool,
}

impl Job for ReadXml {
    type Output = String;
    type Error = VmError;

    fn run(self, ctx: &JobCtx<'_>) -> Result<String, VmError> {
        Ok(ctx.hv.domain_xml(ctx.at.vm(), self.inactive, false)?)
    }
}
