// A VM's snapshots: list, create (a running VM's, with its memory, runs as a task), revert
// and delete, each refusal from uvmmd (an external snapshot libvirt cannot revert to, a
// host that cannot do it) shown in words.

import { useEffect, useState } from 'preact/hooks';
import { api, seg, startTask } from '../../api/client';
import type { Snapshot, VmChangeResponse, VmDetail } from '../../api/types';
import { Field } from '../../components/bits';
import { confirmAction } from '../../components/dialog';
import { ErrorBox, toast, toastError } from '../../components/feedback';
import { trackTask } from '../../components/tasks';
import { t, type Key, when } from '../../i18n';
import { useEvents } from '../../live';
import { useCan, vmTarget } from '../../session';

/** Snapshot states that are VM states (libvirt also has e.g. `disk-snapshot`). */
const SNAP_STATES = ['running', 'paused', 'shutoff', 'crashed', 'shutdown', 'pmsuspended', 'blocked'];

export function Snapshots({ vm, onChanged }: { vm: VmDetail; onChanged: (v: VmDetail) => void }) {
  const can = useCan();
  const [list, setList] = useState<Snapshot[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [memory, setMemory] = useState(false);
  const [busy, setBusy] = useState(false);
  const [formError, setFormError] = useState<unknown>(null);
  const base = `/vms/${seg(vm.uuid)}/snapshots`;
  const query = { host: vm.host_id };
  const running = vm.state !== 'shutoff' && vm.state !== 'crashed';

  const load = async () => {
    try {
      setList(await api.get<Snapshot[]>(base, { query }));
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => void load(), [vm.uuid, vm.host_id]);
  // A snapshot made as a task appears when it ends.
  useEvents((e) => {
    if (e.kind === 'task_done' && e.task?.uuid === vm.uuid) void load();
  });

  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setFormError(null);
    try {
      const body = { name: name.trim(), description: description.trim() || undefined, memory: running && memory };
      const r = await startTask<Snapshot>(base, body, query);
      if ('task' in r) {
        trackTask(r.task);
        toast('info', t('ops.started', { what: t('snap.create'), name: vm.name }));
      } else toast('info', t('snap.created', { name: r.done.name }));
      setName('');
      setDescription('');
      await load();
    } catch (err) {
      setFormError(err);
    } finally {
      setBusy(false);
    }
  };
  const revert = async (s: Snapshot) => {
    const ok = await confirmAction({ title: t('snap.revert_title', { name: s.name }), body: <p>{t('snap.revert_body', { name: s.name, vm: vm.name })}</p>, confirm: t('snap.revert') });
    if (!ok) return;
    try {
      const r = await api.post<VmChangeResponse>(`${base}/${seg(s.name)}/revert`, undefined, { query });
      toast('info', t('snap.reverted', { name: s.name }));
      onChanged(r.vm);
      await load();
    } catch (err) {
      toastError(err);
    }
  };
  const remove = async (s: Snapshot) => {
    const ok = await confirmAction({ title: t('snap.delete_title', { name: s.name }), body: <p>{t('snap.delete_body', { name: s.name })}</p>, confirm: t('snap.delete') });
    if (!ok) return;
    try {
      await api.del(`${base}/${seg(s.name)}`, { query });
      toast('info', t('snap.deleted', { name: s.name }));
      await load();
    } catch (err) {
      toastError(err);
    }
  };

  return (
    <div>
      <h2>{t('snap.title')}</h2>
      <ErrorBox error={error} />
      {list && list.length === 0 && <p class="muted">{t('snap.none')}</p>}
      {list && list.length > 0 && (
        <table class="table" data-testid="snapshots">
          <thead>
            <tr>
              <th scope="col">{t('snap.name')}</th>
              <th scope="col">{t('snap.created_at')}</th>
              <th scope="col">{t('snap.state')}</th>
              <th scope="col">{t('snap.kind')}</th>
              <th scope="col">{t('snap.description')}</th>
              {can('edit', vmTarget(vm)) && <th scope="col">{t('grid.actions')}</th>}
            </tr>
          </thead>
          <tbody>
            {list.map((s) => (
              <tr data-snapshot={s.name}>
                <td style={{ paddingLeft: `${0.5 + s.depth}em` }}>
                  {s.name}
                  {s.current && <span class="tag"> {t('snap.current')}</span>}
                </td>
                <td>{when(s.created)}</td>
                <td>{SNAP_STATES.includes(s.state) ? t(`state.${s.state}` as Key) : s.state}</td>
                <td>
                  {t(s.kind === 'internal' ? 'snap.internal' : 'snap.external')}
                  {s.memory ? ` · ${t('snap.with_memory')}` : ''}
                </td>
                <td class="server-text">{s.description ?? ''}</td>
                {can('edit', vmTarget(vm)) && (
                  <td class="row-actions">
                    <button type="button" class="small" onClick={() => revert(s)} data-action="revert" aria-label={`${t('snap.revert')}: ${s.name}`}>
                      {t('snap.revert')}
                    </button>
                    <button type="button" class="small danger-outline" onClick={() => remove(s)} data-action="delete-snapshot" aria-label={`${t('snap.delete')}: ${s.name}`}>
                      {t('snap.delete')}
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {can('edit', vmTarget(vm)) && (
        <form class="inline-form" onSubmit={create} aria-labelledby="snap-new-h">
          <h3 id="snap-new-h">{t('snap.new')}</h3>
          <Field label={t('snap.name')} hint={t('ops.name_rule')}>
            {(id, d) => <input id={id} aria-describedby={d} value={name} required onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)} data-testid="snapshot-name" />}
          </Field>
          <Field label={t('snap.description')}>
            {(id) => <input id={id} value={description} onInput={(e) => setDescription((e.currentTarget as HTMLInputElement).value)} />}
          </Field>
          {running && (
            <label class="check">
              <input type="checkbox" checked={memory} onChange={(e) => setMemory((e.currentTarget as HTMLInputElement).checked)} /> {t('snap.memory')}
            </label>
          )}
          <ErrorBox error={formError} />
          <button type="submit" class="primary" disabled={busy || !name.trim()} data-testid="snapshot-create">
            {t('snap.create')}
          </button>
        </form>
      )}
    </div>
  );
}
