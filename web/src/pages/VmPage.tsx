// One VM: lifecycle actions, and tabs for its general data and notes, settings, drives,
// network interfaces and backups. The page follows the VM's events: a change made
// anywhere (another browser, the CLI, virsh) shows without reloading.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, ApiError, seg } from '../api/client';
import type { DeleteResponse, HostDetail, VmChangeResponse, VmDetail } from '../api/types';
import { actionLabel, ALL_ACTIONS, allowed, hasConsole, runAction } from '../actions';
import { Field, StateBadge, Tabs } from '../components/bits';
import { Modal } from '../components/dialog';
import { ErrorBox, Notices, toast } from '../components/feedback';
import { kib } from '../format';
import { t, type Key, tn } from '../i18n';
import { throttle, useEvents, useResync } from '../live';
import { navigate, onLinkClick, vmPath } from '../router';
import { deletableWith, loadHostStorage, type HostStorage } from '../volumes';
import { BackupBrowser } from './BackupBrowser';
import { Drives } from './vm/Drives';
import { Nics } from './vm/Nics';
import { VmOperations } from './vm/Operations';
import { Snapshots } from './vm/Snapshots';
import { can, vmTarget } from '../session';

const TABS = ['general', 'settings', 'drives', 'network', 'snapshots', 'backups'] as const;

export function VmPage({ hostId, uuid, tab }: { hostId: string; uuid: string; tab: string }) {
  const [vm, setVm] = useState<VmDetail | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [removed, setRemoved] = useState(false);
  const [deleting, setDeleting] = useState(false);

  const load = async () => {
    try {
      const v = await api.get<VmDetail>(`/vms/${seg(uuid)}`, { query: { host: hostId } });
      setVm(v);
      setError(null);
      setRemoved(false);
    } catch (e) {
      if (e instanceof ApiError && e.code === 'not_found') setRemoved(true);
      else setError(e);
    }
  };
  const reload = useMemo(() => throttle(load, 150), [hostId, uuid]);
  useEffect(() => {
    setVm(null);
    void load();
  }, [hostId, uuid]);
  useEvents((e) => {
    if (e.host_id !== hostId) return;
    if (e.uuid === uuid) {
      if (e.kind === 'vm_removed') setRemoved(true);
      else reload();
    } else if (e.kind === 'host_unavailable' || e.kind === 'host_connected') reload();
  });
  useResync(reload);

  // While the delete dialog is open it shows what was deleted and kept; the page says
  // "removed" only for removals from elsewhere.
  if (removed && !deleting) {
    return (
      <section class="page">
        <h1>{t('vm.removed_title')}</h1>
        <p>{t('vm.removed_text')}</p>
        <p>
          <a href="/" onClick={onLinkClick}>
            {t('vm.back')}
          </a>{' '}
          ·{' '}
          <a href="/backups" onClick={onLinkClick}>
            {t('nav.backups')}
          </a>
        </p>
      </section>
    );
  }
  if (!vm) {
    return <section class="page">{error ? <ErrorBox error={error} /> : <p class="muted">{t('common.loading')}</p>}</section>;
  }
  const current = (TABS as readonly string[]).includes(tab) ? tab : 'general';
  const canDelete = vm.available && (vm.state === 'shutoff' || vm.state === 'crashed');
  return (
    <section class="page vm-page" aria-labelledby="vm-name">
      <p class="crumbs">
        <a href="/" onClick={onLinkClick}>
          {t('nav.overview')}
        </a>{' '}
        › {vm.host_id}
      </p>
      <div class="vm-head">
        <h1 id="vm-name">{vm.name}</h1>
        <StateBadge state={vm.state} suspended={vm.suspended} available={vm.available} />
        <div class="vm-actions" role="group" aria-label={t('vm.actions')}>
          {ALL_ACTIONS.filter((a) => can('lifecycle', vmTarget(vm)) && allowed(vm, a)).map((a) => (
            <button
              type="button"
              class={a === 'stop' || a === 'reset' ? 'danger-outline' : a === 'start' ? 'primary' : ''}
              onClick={async () => {
                if (await runAction(vm, a)) void load();
              }}
              data-action={a}
            >
              {actionLabel(a, vm)}
            </button>
          ))}
          {can('console', vmTarget(vm)) && hasConsole(vm) && (
            <a class="button" href={vmPath(hostId, uuid, 'console')} onClick={onLinkClick} data-action="console">
              {t('console.open')}
            </a>
          )}
          {can('delete', vmTarget(vm)) && (
            <button
              type="button"
              class="danger"
              disabled={!canDelete}
              title={canDelete ? undefined : t('vm.delete_needs_shutoff')}
              onClick={() => setDeleting(true)}
              data-action="delete"
            >
              {t('vm.delete')}
            </button>
          )}
        </div>
      </div>
      <VmOperations vm={vm} onChanged={setVm} />
      {can('delete', vmTarget(vm)) && !canDelete && vm.state !== 'shutoff' && <p class="muted small-print">{t('vm.delete_needs_shutoff')}</p>}
      {vm.pending && <p class="pending-banner" role="note">{t('vm.pending_banner')}</p>}
      <Tabs
        current={current}
        tabs={TABS.map((id) => ({ id, label: t(`vm.tab.${id}` as Key), href: vmPath(hostId, uuid, id === 'general' ? undefined : id) }))}
        onSelect={(_, href) => navigate(href)}
      />
      <div class="tab-panel" role="tabpanel" id={`panel-${current}`} aria-labelledby={`tab-${current}`}>
        {current === 'general' && <General vm={vm} onChanged={setVm} />}
        {current === 'settings' && <Settings vm={vm} onChanged={setVm} />}
        {current === 'drives' && <Drives vm={vm} onChanged={setVm} reload={load} />}
        {current === 'network' && <Nics vm={vm} onChanged={setVm} />}
        {current === 'snapshots' && <Snapshots vm={vm} onChanged={setVm} />}
        {current === 'backups' && <BackupBrowser vm={vm.uuid} hostId={vm.host_id} onRestored={load} />}
      </div>
      {deleting && <DeleteDialog vm={vm} onClose={() => setDeleting(false)} />}
    </section>
  );
}

function General({ vm, onChanged }: { vm: VmDetail; onChanged: (v: VmDetail) => void }) {
  const [notes, setNotes] = useState({ description: vm.description ?? '', contact: vm.contact ?? '', os: vm.os ?? '' });
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [result, setResult] = useState<VmChangeResponse | null>(null);
  useEffect(() => setNotes({ description: vm.description ?? '', contact: vm.contact ?? '', os: vm.os ?? '' }), [vm.etag]);
  const save = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await api.patch<VmChangeResponse>(`/vms/${seg(vm.uuid)}`, notes, { query: { host: vm.host_id }, ifMatch: vm.etag });
      setResult(r);
      onChanged(r.vm);
      toast('info', t('vm.saved'));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const row = (label: Key, value: string | number | null | undefined) => (
    <>
      <dt>{t(label)}</dt>
      <dd>{value === null || value === undefined || value === '' ? <span class="muted">–</span> : value}</dd>
    </>
  );
  return (
    <div class="two-col">
      <section aria-labelledby="general-h">
        <h2 id="general-h">{t('vm.general')}</h2>
        <dl class="facts">
          {row('vm.name', vm.name)}
          {row('vm.uuid', vm.uuid)}
          {row('vm.host', vm.host_id)}
          {row('vm.os_type', vm.os_type === 'hvm' ? t('vm.hvm') : t('vm.pv', { type: vm.os_type }))}
          {row('vm.domain_type', vm.domain_type)}
          {row('vm.arch', vm.arch)}
          {row('vm.machine', vm.machine)}
          {row('vm.bootloader', vm.bootloader)}
          {row('vm.vcpus', vm.vcpus)}
          {row('vm.memory', kib(vm.memory_kib))}
          {row('vm.autostart', vm.autostart ? t('common.yes') : t('common.no'))}
          <dt>{t('vm.profile')}</dt>
          <dd class="muted">{t('vm.profile_not_recorded')}</dd>
        </dl>
      </section>
      <form onSubmit={save} aria-labelledby="notes-h">
        <h2 id="notes-h">{t('vm.notes')}</h2>
        <p class="muted">{t('vm.notes_live')}</p>
        <fieldset class="plain" disabled={!can('edit', vmTarget(vm))}>
        <Field label={t('vm.description')}>
          {(id) => (
            <textarea id={id} rows={3} value={notes.description} onInput={(e) => setNotes({ ...notes, description: (e.currentTarget as HTMLTextAreaElement).value })} />
          )}
        </Field>
        <Field label={t('vm.contact')}>
          {(id) => <input id={id} value={notes.contact} onInput={(e) => setNotes({ ...notes, contact: (e.currentTarget as HTMLInputElement).value })} />}
        </Field>
        <Field label={t('vm.os')}>
          {(id) => <input id={id} value={notes.os} onInput={(e) => setNotes({ ...notes, os: (e.currentTarget as HTMLInputElement).value })} />}
        </Field>
        </fieldset>
        <ErrorBox error={error} />
        {result && <Notices notes={result.notes} warnings={result.warnings} />}
        {can('edit', vmTarget(vm)) && (
          <div class="buttons">
            <button type="submit" class="primary" disabled={busy}>
              {t('vm.save_notes')}
            </button>
          </div>
        )}
      </form>
    </div>
  );
}

const BOOT_DEVICES = ['hd', 'cdrom', 'network', 'fd'];

interface SettingsForm {
  vcpus: string;
  memory_mib: string;
  cpu_model: string;
  rtc: string;
  boot: string[];
  autostart: boolean;
  vnc: boolean;
  keymap: string;
  listen: string;
  password: string;
  clear_password: boolean;
  domain_type: string;
}

function formOf(vm: VmDetail): SettingsForm {
  const vnc = vm.graphics.find((g) => g.kind === 'vnc');
  const p = vm.pending;
  // The form edits the definition: for a running VM, the next start's values.
  const bootOrder = p?.boot_order ?? vm.boot_order;
  return {
    vcpus: String(p?.vcpus ?? vm.vcpus),
    memory_mib: String(Math.round((p?.memory_kib ?? vm.memory_kib) / 1024)),
    cpu_model: p?.cpu_model ?? vm.cpu_model ?? '',
    rtc: p?.rtc ?? vm.rtc ?? 'utc',
    boot: bootOrder.filter((b) => BOOT_DEVICES.includes(b)),
    autostart: vm.autostart,
    vnc: !!vnc,
    keymap: vnc?.keymap ?? '',
    listen: vnc?.listen ?? '',
    password: '',
    clear_password: false,
    domain_type: p?.domain_type ?? vm.domain_type,
  };
}

function Settings({ vm, onChanged }: { vm: VmDetail; onChanged: (v: VmDetail) => void }) {
  const [f, setF] = useState<SettingsForm>(() => formOf(vm));
  const [host, setHost] = useState<HostDetail | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [result, setResult] = useState<VmChangeResponse | null>(null);
  useEffect(() => setF(formOf(vm)), [vm.etag]);
  useEffect(() => {
    api.get<HostDetail>(`/hosts/${seg(vm.host_id)}`).then(setHost, () => setHost(null));
  }, [vm.host_id]);
  const running = vm.state !== 'shutoff' && vm.state !== 'crashed';
  const edit = can('edit', vmTarget(vm));
  const pv = vm.os_type !== 'hvm';
  const initial = formOf(vm);
  const domainTypes = useMemo(() => {
    const caps = host?.capabilities.find((c) => c.os_type === vm.os_type && (!vm.arch || c.arch === vm.arch));
    const list = caps?.domain_types ?? [];
    return Array.from(new Set([vm.domain_type, ...list.filter((d) => d === 'qemu' || d === 'kvm')]));
  }, [host, vm.domain_type]);
  // Marker for the fields a running VM takes only at its next start.
  const next = running ? t('settings.next_start') : undefined;
  const pendingText = (v: string | number | undefined) => (v !== undefined ? t('settings.pending', { value: String(v) }) : undefined);
  const set = (patch: Partial<SettingsForm>) => setF({ ...f, ...patch });
  const val = (e: Event) => (e.currentTarget as HTMLInputElement).value;

  const save = async (e: Event) => {
    e.preventDefault();
    const patch: Record<string, unknown> = {};
    if (f.vcpus !== initial.vcpus) patch.vcpus = Number(f.vcpus);
    if (f.memory_mib !== initial.memory_mib) patch.memory_kib = Math.round(Number(f.memory_mib) * 1024);
    if (f.cpu_model !== initial.cpu_model) patch.cpu_model = f.cpu_model;
    if (f.rtc !== initial.rtc) patch.rtc = f.rtc;
    if (!pv && f.boot.join() !== initial.boot.join()) patch.boot = f.boot;
    if (f.autostart !== initial.autostart) patch.autostart = f.autostart;
    if (f.vnc !== initial.vnc) patch.vnc = f.vnc;
    if (f.vnc && f.keymap !== initial.keymap) patch.vnc_keymap = f.keymap;
    if (f.vnc && f.listen !== initial.listen) patch.vnc_listen = f.listen;
    if (f.vnc && f.password) patch.vnc_password = f.password;
    else if (f.vnc && f.clear_password) patch.vnc_password = '';
    if (f.domain_type !== initial.domain_type) patch.domain_type = f.domain_type;
    if (Object.keys(patch).length === 0) {
      toast('info', t('settings.nothing'));
      return;
    }
    if ((patch.vcpus !== undefined && !(Number(f.vcpus) >= 1)) || (patch.memory_kib !== undefined && !(Number(f.memory_mib) >= 16))) {
      setError(new ApiError(400, 'bad_request', t('settings.invalid_numbers')));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const r = await api.patch<VmChangeResponse>(`/vms/${seg(vm.uuid)}`, patch, { query: { host: vm.host_id }, ifMatch: vm.etag });
      setResult(r);
      onChanged(r.vm);
      toast(r.warnings.length ? 'warning' : 'info', t('vm.saved'), r.warnings.join(' '));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const moveBoot = (i: number, d: number) => {
    const b = [...f.boot];
    const j = i + d;
    if (j < 0 || j >= b.length) return;
    [b[i], b[j]] = [b[j], b[i]];
    set({ boot: b });
  };

  return (
    <form onSubmit={save} class="settings" aria-labelledby="settings-h">
      <h2 id="settings-h">{t('vm.tab.settings')}</h2>
      {running && (
        <p class="notice info" role="note">
          {t('settings.running_notice')}
        </p>
      )}
      <fieldset class="plain" disabled={!edit}>
      <div class="form-grid">
        <Field label={t('vm.vcpus')} next={next} hint={pendingText(vm.pending?.vcpus)}>
          {(id, d) => <input id={id} aria-describedby={d} type="number" min={1} max={4096} value={f.vcpus} onInput={(e) => set({ vcpus: val(e) })} />}
        </Field>
        <Field label={t('settings.memory_mib')} next={next} hint={pendingText(vm.pending?.memory_kib !== undefined ? kib(vm.pending.memory_kib) : undefined)}>
          {(id, d) => <input id={id} aria-describedby={d} type="number" min={16} step={1} value={f.memory_mib} onInput={(e) => set({ memory_mib: val(e) })} />}
        </Field>
        <Field label={t('settings.cpu_model')} next={next} hint={t('settings.cpu_model_hint')}>
          {(id, d) => (
            <>
              <input id={id} aria-describedby={d} list="cpu-models" value={f.cpu_model} onInput={(e) => set({ cpu_model: val(e) })} />
              <datalist id="cpu-models">
                <option value="host-model" />
                <option value="host-passthrough" />
              </datalist>
            </>
          )}
        </Field>
        <Field label={t('settings.rtc')} next={next}>
          {(id, d) => (
            <select id={id} aria-describedby={d} value={f.rtc} onChange={(e) => set({ rtc: val(e) })}>
              <option value="utc">{t('settings.rtc_utc')}</option>
              <option value="localtime">{t('settings.rtc_local')}</option>
            </select>
          )}
        </Field>
        <Field label={t('settings.domain_type')} hint={running ? t('settings.domain_type_shutoff') : t('settings.domain_type_hint')}>
          {(id, d) => (
            <select id={id} aria-describedby={d} value={f.domain_type} disabled={running} onChange={(e) => set({ domain_type: val(e) })}>
              {domainTypes.map((x) => (
                <option value={x}>{x}</option>
              ))}
            </select>
          )}
        </Field>
        <div class="field checkbox">
          <input id="autostart" type="checkbox" checked={f.autostart} onChange={(e) => set({ autostart: (e.currentTarget as HTMLInputElement).checked })} />
          <label for="autostart">{t('settings.autostart')}</label>
          <div class="field-hint">{t('settings.autostart_hint')}</div>
        </div>
      </div>

      {!pv && (
        <fieldset class="boot">
          <legend>{t('settings.boot_order')}</legend>
          {next && <p class="next-boot">{next}</p>}
          {vm.pending?.boot_order && <p class="field-hint">{t('settings.pending', { value: vm.pending.boot_order.join(', ') })}</p>}
          <ol>
            {f.boot.map((b, i) => (
              <li>
                <span>{t(`boot.${b}` as Key)}</span>
                {edit && (
                <>
                <button type="button" class="small" onClick={() => moveBoot(i, -1)} disabled={i === 0} aria-label={t('settings.boot_up', { dev: t(`boot.${b}` as Key) })}>
                  ↑
                </button>
                <button type="button" class="small" onClick={() => moveBoot(i, 1)} disabled={i === f.boot.length - 1} aria-label={t('settings.boot_down', { dev: t(`boot.${b}` as Key) })}>
                  ↓
                </button>
                <button type="button" class="small" onClick={() => set({ boot: f.boot.filter((x) => x !== b) })} aria-label={t('settings.boot_remove', { dev: t(`boot.${b}` as Key) })}>
                  {t('common.remove')}
                </button>
                </>
                )}
              </li>
            ))}
          </ol>
          <div class="buttons left">
            {edit && BOOT_DEVICES.filter((b) => !f.boot.includes(b)).map((b) => (
              <button type="button" class="small" onClick={() => set({ boot: [...f.boot, b] })}>
                {t('settings.boot_add', { dev: t(`boot.${b}` as Key) })}
              </button>
            ))}
          </div>
          <p class="field-hint">{t('settings.boot_hint')}</p>
        </fieldset>
      )}
      {pv && <p class="muted">{t('settings.pv_boot')}</p>}

      <fieldset>
        <legend>{t('settings.vnc')}</legend>
        {next && <p class="next-boot">{next}</p>}
        <div class="field checkbox">
          <input id="vnc-on" type="checkbox" checked={f.vnc} onChange={(e) => set({ vnc: (e.currentTarget as HTMLInputElement).checked })} />
          <label for="vnc-on">{t('settings.vnc_on')}</label>
        </div>
        {f.vnc && (
          <div class="form-grid">
            <Field label={t('settings.keymap')} hint={t('settings.keymap_hint')}>
              {(id, d) => (
                <>
                  <input id={id} aria-describedby={d} list="keymaps" value={f.keymap} onInput={(e) => set({ keymap: val(e) })} />
                  <datalist id="keymaps">
                    {['de', 'de-ch', 'en-us', 'en-gb', 'fr', 'it', 'es', 'nl'].map((k) => (
                      <option value={k} />
                    ))}
                  </datalist>
                </>
              )}
            </Field>
            <Field label={t('settings.vnc_listen')}>
              {(id) => <input id={id} value={f.listen} onInput={(e) => set({ listen: val(e) })} />}
            </Field>
            <Field label={t('settings.vnc_password')} hint={vm.graphics.some((g) => g.password_set) ? t('settings.password_set') : t('settings.password_none')}>
              {(id, d) => <input id={id} aria-describedby={d} type="password" autocomplete="new-password" value={f.password} onInput={(e) => set({ password: val(e) })} />}
            </Field>
            <div class="field checkbox">
              <input id="vnc-clear" type="checkbox" checked={f.clear_password} onChange={(e) => set({ clear_password: (e.currentTarget as HTMLInputElement).checked })} />
              <label for="vnc-clear">{t('settings.password_clear')}</label>
            </div>
          </div>
        )}
      </fieldset>
      </fieldset>
      <ErrorBox error={error} />
      {result && <Notices notes={result.notes} warnings={result.warnings} />}
      {edit && (
      <div class="buttons">
        <button type="button" onClick={() => setF(formOf(vm))}>
          {t('common.reset')}
        </button>
        <button type="submit" class="primary" disabled={busy}>
          {t('common.save')}
        </button>
      </div>
      )}
    </form>
  );
}

/** Delete: every image with a checkbox, ticked only where uvmm may delete it with this VM;
 * images of another VM (shared), outside pools or in pools whose volumes uvmm keeps
 * cannot be ticked. CD-ROM media start unticked (installation images are often shared
 * in spirit even when no other VM uses them right now). */
function DeleteDialog({ vm, onClose }: { vm: VmDetail; onClose: () => void }) {
  const [storage, setStorage] = useState<HostStorage | null>(null);
  const [chosen, setChosen] = useState<Set<string>>(new Set());
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<DeleteResponse | null>(null);
  const who = `${vm.name}@${vm.host_id}`;
  useEffect(() => {
    const ctl = new AbortController();
    loadHostStorage(vm.host_id, ctl.signal).then(
      (s) => {
        setStorage(s);
        const tick = new Set<string>();
        for (const d of vm.disks) {
          if (d.source && d.device === 'disk' && deletableWith(s, d.source, who).ok) tick.add(d.source);
        }
        setChosen(tick);
      },
      (e) => setError(e),
    );
    return () => ctl.abort();
  }, []);
  const images = vm.disks.filter((d) => d.source);
  const go = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await api.del<DeleteResponse>(`/vms/${seg(vm.uuid)}`, {
        query: { host: vm.host_id, volumes: chosen.size ? [...chosen].join(',') : 'none' },
        ifMatch: vm.etag,
      });
      setResult(r);
      toast('info', t('delete.done', { name: vm.name }));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  if (result) {
    return (
      <Modal title={t('delete.done', { name: vm.name })} onClose={() => navigate('/')} labelId="delete-title">
        <DeleteResult r={result} />
        <div class="buttons">
          <button type="button" class="primary" onClick={() => navigate('/')}>
            {t('vm.back')}
          </button>
        </div>
      </Modal>
    );
  }
  return (
    <Modal title={t('delete.title', { name: vm.name })} onClose={onClose} labelId="delete-title">
      <p>{t('delete.text', { name: vm.name, host: vm.host_id })}</p>
      {images.length > 0 && <h3>{t('delete.images')}</h3>}
      {!storage && !error && images.length > 0 && <p class="muted">{t('common.loading')}</p>}
      {storage && (
        <ul class="image-list">
          {images.map((d) => {
            const path = d.source as string;
            const verdict = deletableWith(storage, path, who);
            const id = `del-${d.target}`;
            return (
              <li>
                <input
                  type="checkbox"
                  id={id}
                  checked={chosen.has(path)}
                  disabled={!verdict.ok}
                  onChange={(e) => {
                    const s = new Set(chosen);
                    if ((e.currentTarget as HTMLInputElement).checked) s.add(path);
                    else s.delete(path);
                    setChosen(s);
                  }}
                  data-path={path}
                />
                <label for={id}>
                  <code>{path}</code> <span class="muted">({d.device}, {d.target})</span>
                </label>
                {!verdict.ok && (
                  <div class="field-hint">
                    {verdict.why === 'shared'
                      ? t('delete.shared', { others: (verdict.others ?? []).join(', ') })
                      : t(`delete.keep_${verdict.why}` as Key)}
                  </div>
                )}
              </li>
            );
          })}
        </ul>
      )}
      <p class="muted">{t('delete.backup_note')}</p>
      <ErrorBox error={error} />
      <div class="buttons">
        <button type="button" onClick={onClose}>
          {t('common.cancel')}
        </button>
        <button type="button" class="danger" onClick={go} disabled={busy || (!storage && images.length > 0 && !error)} data-testid="confirm-delete">
          {chosen.size ? tn('delete.confirm_with', chosen.size) : t('delete.confirm_keep')}
        </button>
      </div>
    </Modal>
  );
}

export function DeleteResult({ r }: { r: DeleteResponse }) {
  return (
    <div class="delete-result" data-testid="delete-result">
      {r.deleted.length > 0 && (
        <>
          <h3>{t('delete.deleted')}</h3>
          <ul>
            {r.deleted.map((p) => (
              <li>
                <code>{p}</code>
              </li>
            ))}
          </ul>
        </>
      )}
      {r.kept.length > 0 && (
        <>
          <h3>{t('delete.kept')}</h3>
          <ul>
            {r.kept.map((k) => (
              <li>
                <code>{k.path}</code> — <span class="server-text">{k.reason}</span>
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}
