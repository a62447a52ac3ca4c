// Network interfaces of a VM: list, add, remove.

import { useState } from 'preact/hooks';
import { api, seg } from '../../api/client';
import type { Nic, VmChangeResponse, VmDetail } from '../../api/types';
import { Field } from '../../components/bits';
import { confirmAction } from '../../components/dialog';
import { ErrorBox, Notices, toast, toastError } from '../../components/feedback';
import { t } from '../../i18n';
import { can, vmTarget } from '../../session';

export function Nics({ vm, onChanged }: { vm: VmDetail; onChanged: (v: VmDetail) => void }) {
  const [kind, setKind] = useState('network');
  const [name, setName] = useState('default');
  const [model, setModel] = useState('');
  const [mac, setMac] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<VmChangeResponse | null>(null);
  const pv = vm.os_type !== 'hvm';

  const add = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await api.post<VmChangeResponse>(
        `/vms/${seg(vm.uuid)}/nics`,
        { source: `${kind}=${name.trim()}`, model: model || null, mac: mac.trim() || null },
        { query: { host: vm.host_id } },
      );
      setResult(r);
      onChanged(r.vm);
      toast(r.warnings.length ? 'warning' : 'info', t('nics.added'), r.warnings.join(' '));
      setMac('');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const remove = async (n: Nic) => {
    if (!n.mac) return;
    const ok = await confirmAction({
      title: t('nics.remove_title', { mac: n.mac }),
      body: <p>{t('nics.remove_text', { mac: n.mac, name: vm.name })}</p>,
      confirm: t('common.remove'),
    });
    if (!ok) return;
    try {
      const r = await api.del<VmChangeResponse>(`/vms/${seg(vm.uuid)}/nics/${seg(n.mac)}`, { query: { host: vm.host_id } });
      setResult(r);
      onChanged(r.vm);
      toast(r.warnings.length ? 'warning' : 'info', t('nics.removed'), r.warnings.join(' '));
    } catch (err) {
      toastError(err);
    }
  };

  const table = (list: Nic[], caption: string, withActions: boolean, actions = withActions && can('edit', vmTarget(vm))) => (
    <div class="table-wrap">
      <table class="data">
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">{t('nics.kind')}</th>
            <th scope="col">{t('nics.source')}</th>
            <th scope="col">{t('nics.model')}</th>
            <th scope="col">{t('nics.mac')}</th>
            <th scope="col">{t('nics.device')}</th>
            {actions && <th scope="col">{t('grid.actions')}</th>}
          </tr>
        </thead>
        <tbody>
          {list.map((n) => (
            <tr>
              <td>{n.kind}</td>
              <td>{n.source ?? '–'}</td>
              <td>{n.model ?? '–'}</td>
              <td>
                <code>{n.mac ?? '–'}</code>
              </td>
              <td>{n.target ?? '–'}</td>
              {actions && (
                <td>
                  <button type="button" class="small danger-outline" onClick={() => remove(n)} disabled={!n.mac} aria-label={`${t('common.remove')}: ${n.mac}`}>
                    {t('common.remove')}
                  </button>
                </td>
              )}
            </tr>
          ))}
          {list.length === 0 && (
            <tr>
              <td colSpan={actions ? 6 : 5} class="muted">
                {t('nics.none')}
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );

  return (
    <section aria-labelledby="nics-h">
      <h2 id="nics-h">{t('vm.tab.network')}</h2>
      {result && <Notices notes={result.notes} warnings={result.warnings} />}
      {table(vm.nics, t('nics.caption'), true)}
      {vm.pending?.nics && table(vm.pending.nics, t('nics.caption_next'), false)}
      {can('edit', vmTarget(vm)) && (
      <form onSubmit={add} class="inline-form" aria-labelledby="nic-add-h">
        <h3 id="nic-add-h">{t('nics.add')}</h3>
        <div class="form-grid">
          <Field label={t('nics.kind')}>
            {(id) => (
              <select id={id} value={kind} onChange={(e) => setKind((e.currentTarget as HTMLSelectElement).value)}>
                <option value="network">{t('nics.kind_network')}</option>
                <option value="bridge">{t('nics.kind_bridge')}</option>
                <option value="direct">{t('nics.kind_direct')}</option>
              </select>
            )}
          </Field>
          <Field label={t('nics.source_name')}>
            {(id) => <input id={id} required value={name} onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)} />}
          </Field>
          <Field label={t('nics.model')}>
            {(id) => (
              <select id={id} value={model} onChange={(e) => setModel((e.currentTarget as HTMLSelectElement).value)}>
                <option value="">{t('nics.model_default')}</option>
                {(pv ? ['netfront'] : ['virtio', 'e1000', 'rtl8139']).map((m) => (
                  <option value={m}>{m}</option>
                ))}
              </select>
            )}
          </Field>
          <Field label={t('nics.mac')} hint={t('nics.mac_hint')}>
            {(id, d) => <input id={id} aria-describedby={d} placeholder="52:54:00:…" value={mac} onInput={(e) => setMac((e.currentTarget as HTMLInputElement).value)} />}
          </Field>
        </div>
        <ErrorBox error={error} />
        <div class="buttons">
          <button type="submit" class="primary" disabled={busy || !name.trim()}>
            {t('nics.add')}
          </button>
        </div>
      </form>
      )}
    </section>
  );
}
