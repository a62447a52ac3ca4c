// Storage: the pools of every host with fill bars, what their sparse volumes may grow to
// (provisioned against capacity: overcommit), and the monitoring level check_uvmm reports;
// the volumes of a pool with the VMs that use them; create and delete volumes.

import { useEffect, useState } from 'preact/hooks';
import { api, seg } from '../api/client';
import type { PoolDetail, PoolSummary, VolumeSummary } from '../api/types';
import { Bar, Field } from '../components/bits';
import { confirmAction } from '../components/dialog';
import { ErrorBox, toast, toastError } from '../components/feedback';
import { bytes, parseSize, percent } from '../format';
import { num, t, type Key, tn } from '../i18n';
import { hosts as hostStore, pools as poolStore, reloadPoolsNow, throttle, useEvents } from '../live';
import { can, hostTarget } from '../session';
import { useStore } from '../store';

export function Storage() {
  const pools = useStore(poolStore);
  const hostList = useStore(hostStore);
  useEffect(() => reloadPoolsNow(), []);
  if (!pools || !hostList) return <section class="page"><p class="muted">{t('common.loading')}</p></section>;
  const alerts = pools.filter((p) => p.level !== 'ok');
  return (
    <section class="page storage" aria-labelledby="storage-title">
      <h1 id="storage-title">{t('nav.storage')}</h1>
      <p class="muted">{t('storage.intro')}</p>
      {alerts.length > 0 && (
        <div class="notice warning" role="status" data-testid="pool-alerts">
          <strong>{tn('storage.alerts', alerts.length)}</strong>
          <ul>
            {alerts.map((p) => (
              <li>
                {p.host_id}/{p.name}: {t(`level.${p.level}` as Key)} — <span class="server-text">{p.alerts.join('; ')}</span>
              </li>
            ))}
          </ul>
        </div>
      )}
      {hostList.map((h) => {
        const mine = pools.filter((p) => p.host_id === h.id);
        return (
          <section class="host-pools" aria-labelledby={`pools-${h.id}`}>
            <h2 id={`pools-${h.id}`}>
              {h.id} <span class={`host-status ${h.status}`}>{t(`hosts.status.${h.status}` as Key)}</span>
            </h2>
            {mine.length === 0 && <p class="muted">{t('storage.no_pools')}</p>}
            <div class="pool-list">
              {mine.map((p) => (
                <PoolCard pool={p} key={`${p.host_id}/${p.name}`} />
              ))}
            </div>
          </section>
        );
      })}
    </section>
  );
}

function PoolCard({ pool: p }: { pool: PoolSummary }) {
  const [open, setOpen] = useState(false);
  const used = percent(p.allocation, p.capacity);
  const over = p.capacity ? (p.provisioned / p.capacity) * 100 : 0;
  return (
    <article class={`pool-card level-${p.level}${open ? ' open' : ''}`} data-pool={`${p.host_id}/${p.name}`} data-level={p.level} aria-labelledby={`pool-${p.host_id}-${p.name}`}>
      <header>
        <h3 id={`pool-${p.host_id}-${p.name}`}>{p.name}</h3>
        <span class={`level level-${p.level}`}>{t(`level.${p.level}` as Key)}</span>
        <span class="muted">
          {p.kind} · {p.active ? t('storage.active') : t('storage.inactive')}
          {!p.available_host && ` · ${t('storage.host_unavailable')}`}
        </span>
      </header>
      {p.target_path && (
        <div class="muted small-print">
          <code>{p.target_path}</code>
        </div>
      )}
      <div class="fig">
        <span class="fig-label">{t('storage.used')}</span>
        <Bar value={used} level={p.level} label={t('storage.used_of', { pool: p.name })} text={`${bytes(p.allocation)} / ${bytes(p.capacity)} (${num(used)} %)`} />
      </div>
      <div class="fig">
        <span class="fig-label">{t('storage.provisioned')}</span>
        <Bar
          value={Math.min(100, over)}
          level={over > 100 ? 'warning' : 'ok'}
          label={t('storage.provisioned_of', { pool: p.name })}
          text={`${bytes(p.provisioned)} / ${bytes(p.capacity)} (${num(over)} %)`}
        />
      </div>
      {over > 100 && <p class="small-print">{t('storage.overcommitted', { pct: Math.round(over) })}</p>}
      {p.alerts.length > 0 && (
        <ul class="alerts">
          {p.alerts.map((a) => (
            <li class="server-text">{a}</li>
          ))}
        </ul>
      )}
      <button type="button" class="small" aria-expanded={open} onClick={() => setOpen(!open)}>
        {open ? t('storage.hide_volumes') : t('storage.show_volumes', { n: p.volume_count })}
      </button>
      {open && <Volumes pool={p} />}
    </article>
  );
}

function Volumes({ pool }: { pool: PoolSummary }) {
  const [detail, setDetail] = useState<PoolDetail | null>(null);
  const [error, setError] = useState<unknown>(null);
  const path = `/hosts/${seg(pool.host_id)}/pools/${seg(pool.name)}`;
  const load = async () => {
    try {
      setDetail(await api.get<PoolDetail>(path));
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  const [reload] = useState(() => throttle(() => void load(), 300));
  useEffect(() => void load(), [path]);
  useEvents((e) => {
    if (e.host_id === pool.host_id && (e.kind.startsWith('vm_') || e.kind.startsWith('pool_'))) reload();
  });
  const remove = async (v: VolumeSummary) => {
    const ok = await confirmAction({
      title: t('volumes.delete_title', { name: v.name }),
      body: <p>{t('volumes.delete_text', { name: v.name, pool: pool.name, host: pool.host_id })}</p>,
      confirm: t('volumes.delete'),
    });
    if (!ok) return;
    try {
      await api.del(`${path}/volumes/${seg(v.name)}`);
      toast('info', t('volumes.deleted', { name: v.name }));
      void load();
      reloadPoolsNow();
    } catch (e) {
      toastError(e);
    }
  };
  if (error) return <ErrorBox error={error} />;
  if (!detail) return <p class="muted">{t('common.loading')}</p>;
  return (
    <div class="volumes">
      <div class="table-wrap">
        <table class="data">
          <caption class="visually-hidden">{t('volumes.caption', { pool: pool.name })}</caption>
          <thead>
            <tr>
              <th scope="col">{t('volumes.name')}</th>
              <th scope="col">{t('volumes.format')}</th>
              <th scope="col">{t('volumes.capacity')}</th>
              <th scope="col">{t('volumes.allocation')}</th>
              <th scope="col">{t('volumes.used_by')}</th>
              {can('storage', hostTarget({ id: pool.host_id, uri: pool.host })) && <th scope="col">{t('grid.actions')}</th>}
            </tr>
          </thead>
          <tbody>
            {detail.volumes.map((v) => (
              <tr data-volume={v.name}>
                <td>{v.name}</td>
                <td>{v.format ?? '–'}</td>
                <td>{bytes(v.capacity)}</td>
                <td>{bytes(v.allocation)}</td>
                <td>{v.used_by.length ? v.used_by.join(', ') : <span class="muted">{t('volumes.unused')}</span>}</td>
                {can('storage', hostTarget({ id: pool.host_id, uri: pool.host })) && (
                <td>
                  <button
                    type="button"
                    class="small danger-outline"
                    disabled={!v.deletable}
                    title={v.keep_reason ?? undefined}
                    onClick={() => remove(v)}
                    aria-label={`${t('volumes.delete')}: ${v.name}`}
                  >
                    {t('volumes.delete')}
                  </button>
                  {!v.deletable && v.keep_reason && <div class="small-print muted server-text">{v.keep_reason}</div>}
                </td>
                )}
              </tr>
            ))}
            {detail.volumes.length === 0 && (
              <tr>
                <td colSpan={6} class="muted">
                  {t('volumes.none')}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {can('storage', hostTarget({ id: pool.host_id, uri: pool.host })) && (
        <NewVolume
          pool={pool}
          onDone={() => {
            void load();
            reloadPoolsNow();
          }}
        />
      )}
    </div>
  );
}

function NewVolume({ pool, onDone }: { pool: PoolSummary; onDone: () => void }) {
  const [name, setName] = useState('');
  const [size, setSize] = useState('10 GiB');
  const [format, setFormat] = useState('qcow2');
  const [prealloc, setPrealloc] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const sizeBytes = parseSize(size);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (sizeBytes === null) return;
    setBusy(true);
    setError(null);
    try {
      await api.post(`/hosts/${seg(pool.host_id)}/pools/${seg(pool.name)}/volumes`, { name: name.trim(), size_bytes: sizeBytes, format, preallocate: prealloc });
      toast('info', t('volumes.created', { name: name.trim() }));
      setName('');
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="inline-form" onSubmit={submit} aria-label={t('volumes.new_in', { pool: pool.name })}>
      <h4>{t('volumes.new')}</h4>
      <div class="form-grid">
        <Field label={t('volumes.name')}>{(id) => <input id={id} required value={name} onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)} />}</Field>
        <Field label={t('volumes.capacity')} hint={sizeBytes === null ? t('wizard.size_invalid') : bytes(sizeBytes)}>
          {(id, d) => <input id={id} aria-describedby={d} aria-invalid={sizeBytes === null} value={size} onInput={(e) => setSize((e.currentTarget as HTMLInputElement).value)} />}
        </Field>
        <Field label={t('volumes.format')}>
          {(id) => (
            <select id={id} value={format} onChange={(e) => setFormat((e.currentTarget as HTMLSelectElement).value)}>
              <option value="qcow2">qcow2</option>
              <option value="raw">raw</option>
            </select>
          )}
        </Field>
        <div class="field checkbox">
          <input id={`prealloc-${pool.host_id}-${pool.name}`} type="checkbox" checked={prealloc} onChange={(e) => setPrealloc((e.currentTarget as HTMLInputElement).checked)} />
          <label for={`prealloc-${pool.host_id}-${pool.name}`}>{t('wizard.drive.preallocate')}</label>
        </div>
      </div>
      <ErrorBox error={error} />
      <div class="buttons">
        <button type="submit" class="primary" disabled={busy || !name.trim() || sizeBytes === null}>
          {t('volumes.create')}
        </button>
      </div>
    </form>
  );
}
