// Moving and copying a VM (issue 16's operations): migrate to another host, clone, rename.
// Migration and clone run as tasks (`?wait=false`): their progress and result show in the
// task panel; what uvmmd refuses (a test-driver host that cannot migrate, a name in use)
// shows in words in the dialog.

import { useState } from 'preact/hooks';
import { api, seg, startTask } from '../../api/client';
import type { MigrateResult, VmChangeResponse, VmDetail } from '../../api/types';
import { Field } from '../../components/bits';
import { Modal } from '../../components/dialog';
import { ErrorBox, Notices, toast } from '../../components/feedback';
import { trackTask } from '../../components/tasks';
import { t } from '../../i18n';
import { hosts as hostStore } from '../../live';
import { navigate, vmPath } from '../../router';
import { useCan, vmTarget } from '../../session';
import { useStore } from '../../store';

type Open = 'migrate' | 'clone' | 'rename' | null;

export function VmOperations({ vm, onChanged }: { vm: VmDetail; onChanged: (v: VmDetail) => void }) {
  const can = useCan();
  const [open, setOpen] = useState<Open>(null);
  const shutOff = vm.state === 'shutoff' || vm.state === 'crashed';
  const buttons = [
    can('hosts', vmTarget(vm)) && (
      <button type="button" disabled={!vm.available} onClick={() => setOpen('migrate')} data-op="migrate">
        {t('ops.migrate')}
      </button>
    ),
    can('create', vmTarget(vm)) && (
      <button
        type="button"
        disabled={!vm.available || !shutOff}
        title={shutOff ? undefined : t('ops.clone_needs_shutoff')}
        onClick={() => setOpen('clone')}
        data-op="clone"
      >
        {t('ops.clone')}
      </button>
    ),
    can('edit', vmTarget(vm)) && (
      <button
        type="button"
        disabled={!vm.available || !shutOff}
        title={shutOff ? undefined : t('ops.rename_needs_shutoff')}
        onClick={() => setOpen('rename')}
        data-op="rename"
      >
        {t('ops.rename')}
      </button>
    ),
  ].filter(Boolean);
  if (buttons.length === 0) return null;
  return (
    <div class="vm-ops" role="group" aria-label={t('ops.group')}>
      {buttons}
      {open === 'migrate' && <MigrateDialog vm={vm} onClose={() => setOpen(null)} />}
      {open === 'clone' && <CloneDialog vm={vm} onClose={() => setOpen(null)} />}
      {open === 'rename' && (
        <RenameDialog
          vm={vm}
          onClose={() => setOpen(null)}
          onDone={(v) => {
            setOpen(null);
            onChanged(v);
          }}
        />
      )}
    </div>
  );
}

function Buttons(props: { busy: boolean; ok: boolean; label: string; testid: string; onClose: () => void }) {
  return (
    <div class="buttons">
      <button type="button" onClick={props.onClose}>
        {t('common.cancel')}
      </button>
      <button type="submit" class="primary" disabled={props.busy || !props.ok} data-testid={props.testid}>
        {props.label}
      </button>
    </div>
  );
}

function MigrateDialog({ vm, onClose }: { vm: VmDetail; onClose: () => void }) {
  const all = useStore(hostStore) ?? [];
  const targets = all.filter((h) => h.id !== vm.host_id);
  const shutOff = vm.state === 'shutoff' || vm.state === 'crashed';
  const [to, setTo] = useState(targets.find((h) => h.available)?.id ?? '');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const go = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await startTask<MigrateResult>(`/vms/${seg(vm.uuid)}/migrate`, { to, offline: shutOff }, { host: vm.host_id });
      if ('task' in r) {
        trackTask(r.task);
        toast('info', t('ops.started', { what: t('ops.migrate'), name: vm.name }));
        onClose();
      } else {
        toast('info', t('ops.migrated', { name: vm.name, host: to }));
        onClose();
        navigate(vmPath(to, vm.uuid));
      }
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal title={t('ops.migrate_title', { name: vm.name })} onClose={onClose} labelId="migrate-title">
      <form onSubmit={go}>
        <p>{shutOff ? t('ops.migrate_offline') : t('ops.migrate_live')}</p>
        <Field label={t('ops.target_host')}>
          {(id) => (
            <select id={id} value={to} onChange={(e) => setTo((e.currentTarget as HTMLSelectElement).value)} data-testid="migrate-target">
              {targets.map((h) => (
                <option value={h.id} disabled={!h.available}>
                  {h.available ? h.id : `${h.id} (${t('hosts.status.unavailable')})`}
                </option>
              ))}
            </select>
          )}
        </Field>
        <ErrorBox error={error} />
        <Buttons busy={busy} ok={!!to} label={t('ops.migrate')} testid="migrate-submit" onClose={onClose} />
      </form>
    </Modal>
  );
}

function CloneDialog({ vm, onClose }: { vm: VmDetail; onClose: () => void }) {
  const [name, setName] = useState(`${vm.name}-clone`);
  const [mode, setMode] = useState<'copy' | 'linked'>('copy');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<VmChangeResponse | null>(null);
  const go = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await startTask<VmChangeResponse>(`/vms/${seg(vm.uuid)}/clone`, { name: name.trim(), mode }, { host: vm.host_id });
      if ('task' in r) {
        trackTask(r.task);
        toast('info', t('ops.started', { what: t('ops.clone'), name: vm.name }));
        onClose();
      } else setDone(r.done);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  if (done) {
    return (
      <Modal title={t('ops.clone_title', { name: vm.name })} onClose={onClose} labelId="clone-title">
        <p role="status">{t('ops.cloned', { name: done.vm.name })}</p>
        <Notices notes={done.notes} warnings={done.warnings} />
        <div class="buttons">
          <button type="button" onClick={onClose}>
            {t('common.close')}
          </button>
          <button type="button" class="primary" onClick={() => navigate(vmPath(done.vm.host_id, done.vm.uuid))}>
            {t('ops.open_clone')}
          </button>
        </div>
      </Modal>
    );
  }
  return (
    <Modal title={t('ops.clone_title', { name: vm.name })} onClose={onClose} labelId="clone-title">
      <form onSubmit={go}>
        <Field label={t('ops.new_name')} hint={t('ops.name_rule')}>
          {(id, d) => <input id={id} aria-describedby={d} value={name} required onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)} data-testid="clone-name" />}
        </Field>
        <fieldset class="choices">
          <legend>{t('ops.clone_mode')}</legend>
          {(['copy', 'linked'] as const).map((m) => (
            <label>
              <input type="radio" name="clone-mode" value={m} checked={mode === m} onChange={() => setMode(m)} /> {t(m === 'copy' ? 'ops.mode_copy' : 'ops.mode_linked')}
            </label>
          ))}
        </fieldset>
        <ErrorBox error={error} />
        <Buttons busy={busy} ok={!!name.trim()} label={t('ops.clone')} testid="clone-submit" onClose={onClose} />
      </form>
    </Modal>
  );
}

function RenameDialog({ vm, onClose, onDone }: { vm: VmDetail; onClose: () => void; onDone: (v: VmDetail) => void }) {
  const [name, setName] = useState(vm.name);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const go = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await api.post<VmChangeResponse>(`/vms/${seg(vm.uuid)}/rename`, { name: name.trim() }, { query: { host: vm.host_id } });
      toast('info', t('ops.renamed', { old: vm.name, name: r.vm.name }));
      onDone(r.vm);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal title={t('ops.rename_title', { name: vm.name })} onClose={onClose} labelId="rename-title">
      <form onSubmit={go}>
        <Field label={t('ops.new_name')} hint={t('ops.name_rule')}>
          {(id, d) => <input id={id} aria-describedby={d} value={name} required onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)} data-testid="rename-name" />}
        </Field>
        <ErrorBox error={error} />
        <Buttons busy={busy} ok={!!name.trim() && name.trim() !== vm.name} label={t('ops.rename')} testid="rename-submit" onClose={onClose} />
      </form>
    </Modal>
  );
}
