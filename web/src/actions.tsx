// VM lifecycle actions: which apply in which state (the table of uvmm-model's state.rs,
// so that buttons the server would refuse are not offered), and running one with a
// confirmation where it loses data.

import { api, seg } from './api/client';
import type { Action, VmState, VmSummary } from './api/types';
import { confirmAction } from './components/dialog';
import { toast, toastError } from './components/feedback';
import { t, type Key } from './i18n';

const ALLOWED: Record<Action, VmState[]> = {
  start: ['shutoff', 'crashed'],
  shutdown: ['running', 'blocked'],
  stop: ['running', 'blocked', 'paused', 'shutdown', 'pmsuspended', 'unknown'],
  pause: ['running', 'blocked'],
  resume: ['paused'],
  suspend: ['running', 'blocked', 'paused'],
  reboot: ['running', 'blocked'],
  reset: ['running', 'blocked', 'paused'],
};

/** The grid's quick actions, in button order (the console button follows them). */
export const QUICK: Action[] = ['start', 'shutdown', 'stop', 'pause', 'resume'];
export const ALL_ACTIONS: Action[] = ['start', 'shutdown', 'reboot', 'pause', 'resume', 'suspend', 'reset', 'stop'];

/** Power off and reset lose what the guest has not written; suspend is harmless. */
const DESTRUCTIVE: Action[] = ['stop', 'reset'];

/** Whether a console can be opened: a running or paused VM with a VNC server (uvmmd
 * decides whether the caller may: operators of the VM). */
export function hasConsole(vm: VmSummary): boolean {
  return vm.available && (vm.state === 'running' || vm.state === 'paused') && vm.vnc_port != null;
}

export function allowed(vm: VmSummary, a: Action): boolean {
  return vm.available && ALLOWED[a].includes(vm.state);
}

export function actionLabel(a: Action, vm?: VmSummary): string {
  // A managed-save image makes "start" a resume from where it was suspended.
  if (a === 'start' && vm?.suspended) return t('action.start_resume');
  return t(`action.${a}` as Key);
}

/** Run `a` on `vm` (asking first where it loses data); the new VM, or null. */
export async function runAction(vm: VmSummary, a: Action): Promise<VmSummary | null> {
  if (DESTRUCTIVE.includes(a)) {
    const ok = await confirmAction({
      title: t(`confirm.${a}.title` as Key, { name: vm.name }),
      body: <p>{t(`confirm.${a}.body` as Key, { name: vm.name, host: vm.host_id })}</p>,
      confirm: actionLabel(a),
    });
    if (!ok) return null;
  }
  try {
    const r = await api.post<{ vm: VmSummary | null }>(`/vms/${seg(vm.uuid)}/${a}`, undefined, {
      query: { host: vm.host_id },
    });
    toast('info', t('action.done', { action: actionLabel(a), name: vm.name }));
    return r.vm;
  } catch (e) {
    toastError(e);
    return null;
  }
}
