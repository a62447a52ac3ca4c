// The drives of a VM: the grid, the add-drive wizard, change medium, detach, and
// "Set as boot medium" (with the pygrub preflight for Xen PV guests).

import { useEffect, useState } from 'preact/hooks';
import { api, seg } from '../../api/client';
import type { DeleteResponse, Disk, VmChangeResponse, VmDetail } from '../../api/types';
import { Field } from '../../components/bits';
import { confirmAction, Modal } from '../../components/dialog';
import { ErrorBox, Notices, toast, toastError } from '../../components/feedback';
import { bytes, parseSize } from '../../format';
import { t, type Key } from '../../i18n';
import { can, vmTarget } from '../../session';
import { deletableWith, isoVolumes, loadHostStorage, type HostStorage } from '../../volumes';

type Props = { vm: VmDetail; onChanged: (v: VmDetail) => void; reload: () => void };

export function Drives({ vm, onChanged, reload }: Props) {
  const [storage, setStorage] = useState<HostStorage | null>(null);
  const [adding, setAdding] = useState(false);
  const [media, setMedia] = useState<Disk | null>(null);
  const [detach, setDetach] = useState<Disk | null>(null);
  const [result, setResult] = useState<VmChangeResponse | null>(null);
  const pv = vm.os_type !== 'hvm';

  const loadStorage = () => loadHostStorage(vm.host_id).then(setStorage, () => setStorage(null));
  useEffect(() => void loadStorage(), [vm.host_id, vm.etag]);

  const changed = (r: VmChangeResponse) => {
    setResult(r);
    onChanged(r.vm);
  };

  const setBoot = async (d: Disk) => {
    const ok = await confirmAction({
      title: t('drives.boot_title', { target: d.target }),
      body: (
        <>
          <p>{pv ? t('drives.boot_pv_text', { target: d.target }) : t('drives.boot_hvm_text', { target: d.target })}</p>
          {pv && <p class="notice info">{t('drives.pygrub_rules')}</p>}
        </>
      ),
      confirm: t('drives.set_boot'),
      danger: false,
    });
    if (!ok) return;
    try {
      const r = await api.post<VmChangeResponse>(`/vms/${seg(vm.uuid)}/disks/${seg(d.target)}/boot`, undefined, {
        query: { host: vm.host_id },
        ifMatch: vm.etag,
      });
      changed(r);
      toast(r.warnings.length ? 'warning' : 'info', t('drives.boot_done', { target: d.target }), r.warnings.join(' '));
    } catch (e) {
      toastError(e);
    }
  };

  const position = (d: Disk, list: Disk[]): string => {
    if (d.boot_order != null) return String(d.boot_order);
    if (pv) {
      // pygrub boots the first disk of the list.
      const disks = list.filter((x) => x.device === 'disk');
      return disks[0] === d ? '1' : '–';
    }
    const kind = d.device === 'cdrom' ? 'cdrom' : d.device === 'floppy' ? 'fd' : 'hd';
    const i = vm.boot_order.indexOf(kind);
    return i >= 0 ? t('drives.by_type', { n: i + 1, dev: t(`boot.${kind}` as Key) }) : '–';
  };

  // Viewers see no change buttons; operators only "Change medium" (issue 13's roles).
  const table = (list: Disk[], caption: string, withActions: boolean, actions = withActions && (can('edit', vmTarget(vm)) || can('media', vmTarget(vm)))) => (
    <div class="table-wrap">
      <table class="data">
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">{t('drives.device')}</th>
            <th scope="col">{t('drives.target')}</th>
            <th scope="col">{t('drives.source')}</th>
            <th scope="col">{t('drives.size')}</th>
            <th scope="col">{t('drives.bus')}</th>
            <th scope="col">{t('drives.format')}</th>
            <th scope="col">{t('drives.boot')}</th>
            {actions && <th scope="col">{t('grid.actions')}</th>}
          </tr>
        </thead>
        <tbody>
          {list.map((d) => {
            const vol = d.source ? storage?.byPath.get(d.source) : undefined;
            const removable = d.device === 'cdrom' || d.device === 'floppy';
            return (
              <tr data-target={d.target}>
                <td>{t(`drives.kind.${d.device}` as Key)}</td>
                <td>
                  <code>{d.target}</code>
                </td>
                <td class="source">
                  {d.source ? (
                    <>
                      <code>{d.source}</code>
                      {vol && <div class="muted">{t('drives.volume_in', { vol: vol.vol.name, pool: vol.pool.name })}</div>}
                    </>
                  ) : (
                    <span class="muted">{removable ? t('drives.empty') : '–'}</span>
                  )}
                </td>
                <td>{vol ? bytes(vol.vol.capacity) : <span class="muted">–</span>}</td>
                <td>{d.bus ?? '–'}</td>
                <td>{d.format ?? '–'}</td>
                <td class="boot-pos">{position(d, list)}</td>
                {actions && (
                  <td>
                    <div class="row-actions">
                    {can('edit', vmTarget(vm)) && (
                    <button type="button" class="small" onClick={() => setBoot(d)} data-action="boot" aria-label={`${t('drives.set_boot')}: ${d.target}`}>
                      {t('drives.set_boot')}
                    </button>
                    )}
                    {removable && can('media', vmTarget(vm)) && (
                      <button type="button" class="small" onClick={() => setMedia(d)} data-action="media" aria-label={`${t('drives.change_medium')}: ${d.target}`}>
                        {t('drives.change_medium')}
                      </button>
                    )}
                    {can('edit', vmTarget(vm)) && (
                    <button type="button" class="small danger-outline" onClick={() => setDetach(d)} data-action="detach" aria-label={`${t('drives.detach')}: ${d.target}`}>
                      {t('drives.detach')}
                    </button>
                    )}
                    </div>
                  </td>
                )}
              </tr>
            );
          })}
          {list.length === 0 && (
            <tr>
              <td colSpan={actions ? 8 : 7} class="muted">
                {t('drives.none')}
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );

  return (
    <section aria-labelledby="drives-h">
      <div class="panel-head">
        <h2 id="drives-h">{t('vm.tab.drives')}</h2>
        {can('edit', vmTarget(vm)) && (
          <button type="button" class="primary" onClick={() => setAdding(true)}>
            {t('drives.add')}
          </button>
        )}
      </div>
      {pv && <p class="notice info">{t('drives.pv_explained')}</p>}
      {result && <Notices notes={result.notes} warnings={result.warnings} />}
      {table(vm.disks, vm.state === 'running' ? t('drives.caption_running') : t('drives.caption'), true)}
      {vm.pending?.disks && table(vm.pending.disks, t('drives.caption_next'), false)}
      {adding && (
        <AddDrive
          vm={vm}
          storage={storage}
          onClose={() => setAdding(false)}
          onDone={(r) => {
            setAdding(false);
            changed(r);
            void loadStorage();
          }}
        />
      )}
      {media && storage && (
        <ChangeMedium
          vm={vm}
          disk={media}
          storage={storage}
          onClose={() => setMedia(null)}
          onDone={(r) => {
            setMedia(null);
            changed(r);
          }}
        />
      )}
      {detach && (
        <Detach
          vm={vm}
          disk={detach}
          storage={storage}
          onClose={() => setDetach(null)}
          onDone={() => {
            setDetach(null);
            reload();
            void loadStorage();
          }}
        />
      )}
    </section>
  );
}

type Kind = 'new' | 'volume' | 'block' | 'cdrom';

/** The add-drive wizard: what kind of drive, its details, then a summary to confirm. */
function AddDrive({ vm, storage, onClose, onDone }: { vm: VmDetail; storage: HostStorage | null; onClose: () => void; onDone: (r: VmChangeResponse) => void }) {
  const [step, setStep] = useState(0);
  const [kind, setKind] = useState<Kind>('new');
  const pools = storage?.pools ?? [];
  const [pool, setPool] = useState(pools.find((p) => p.name === 'default')?.name ?? pools[0]?.name ?? '');
  const [size, setSize] = useState('10 GiB');
  const [format, setFormat] = useState('qcow2');
  const [name, setName] = useState('');
  const [preallocate, setPreallocate] = useState(false);
  const [volume, setVolume] = useState('');
  const [path, setPath] = useState('');
  const [iso, setIso] = useState('');
  const [bus, setBus] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (!pool && pools.length) setPool(pools.find((p) => p.name === 'default')?.name ?? pools[0].name);
  }, [storage]);
  const sizeBytes = parseSize(size);
  const pv = vm.os_type !== 'hvm';
  const buses = pv ? ['xen'] : kind === 'cdrom' ? ['sata', 'ide', 'scsi'] : ['virtio', 'sata', 'ide', 'scsi'];

  const source = () => {
    switch (kind) {
      case 'new':
        return { kind, pool, size_bytes: sizeBytes ?? 0, format, name: name.trim() || null, preallocate };
      case 'volume':
        return { kind, volume };
      case 'block':
        return { kind, path: path.trim() };
      case 'cdrom':
        return { kind, source: iso || null };
    }
  };
  const detailsOk =
    (kind === 'new' && !!pool && sizeBytes !== null) || (kind === 'volume' && !!volume) || (kind === 'block' && path.trim().startsWith('/')) || kind === 'cdrom';

  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await api.post<VmChangeResponse>(`/vms/${seg(vm.uuid)}/disks`, { source: source(), bus: bus || null }, { query: { host: vm.host_id } });
      toast(r.warnings.length ? 'warning' : 'info', t('drives.added'), r.warnings.join(' '));
      onDone(r);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const steps = [t('wizard.drive.kind'), t('wizard.drive.details'), t('wizard.summary')];
  return (
    <Modal title={t('drives.add')} onClose={onClose} wide labelId="add-drive-title">
      <ol class="steps" aria-label={t('wizard.steps')}>
        {steps.map((s, i) => (
          <li aria-current={i === step ? 'step' : undefined} class={i < step ? 'done' : ''}>
            {s}
          </li>
        ))}
      </ol>
      {step === 0 && (
        <fieldset class="choices">
          <legend>{t('wizard.drive.kind')}</legend>
          {(['new', 'volume', 'block', 'cdrom'] as Kind[]).map((k) => (
            <label class="choice">
              <input type="radio" name="drive-kind" value={k} checked={kind === k} onChange={() => setKind(k)} />
              <span>
                <strong>{t(`wizard.drive.${k}` as Key)}</strong>
                <span class="muted"> {t(`wizard.drive.${k}_hint` as Key)}</span>
              </span>
            </label>
          ))}
        </fieldset>
      )}
      {step === 1 && (
        <div class="form-grid">
          {(kind === 'new' || kind === 'volume') && (
            <Field label={t('wizard.drive.pool')}>
              {(id) => (
                <select id={id} value={pool} onChange={(e) => setPool((e.currentTarget as HTMLSelectElement).value)}>
                  {pools.map((p) => (
                    <option value={p.name}>
                      {p.name} ({t('storage.free', { size: bytes(p.available) })})
                    </option>
                  ))}
                </select>
              )}
            </Field>
          )}
          {kind === 'new' && (
            <>
              <Field label={t('wizard.drive.size')} hint={sizeBytes === null ? t('wizard.size_invalid') : bytes(sizeBytes)}>
                {(id, d) => <input id={id} aria-describedby={d} value={size} onInput={(e) => setSize((e.currentTarget as HTMLInputElement).value)} aria-invalid={sizeBytes === null} />}
              </Field>
              <Field label={t('wizard.drive.format')}>
                {(id) => (
                  <select id={id} value={format} onChange={(e) => setFormat((e.currentTarget as HTMLSelectElement).value)}>
                    <option value="qcow2">qcow2</option>
                    <option value="raw">raw</option>
                  </select>
                )}
              </Field>
              <Field label={t('wizard.drive.name')} hint={t('wizard.drive.name_hint')}>
                {(id, d) => <input id={id} aria-describedby={d} value={name} onInput={(e) => setName((e.currentTarget as HTMLInputElement).value)} />}
              </Field>
              <div class="field checkbox">
                <input id="prealloc" type="checkbox" checked={preallocate} onChange={(e) => setPreallocate((e.currentTarget as HTMLInputElement).checked)} />
                <label for="prealloc">{t('wizard.drive.preallocate')}</label>
                <div class="field-hint">{t('wizard.drive.sparse_hint')}</div>
              </div>
            </>
          )}
          {kind === 'volume' && (
            <Field label={t('wizard.drive.volume')}>
              {(id) => (
                <select id={id} value={volume} onChange={(e) => setVolume((e.currentTarget as HTMLSelectElement).value)}>
                  <option value="">{t('common.choose')}</option>
                  {(pools.find((p) => p.name === pool)?.volumes ?? []).map((v) => (
                    <option value={`${pool}/${v.name}`}>
                      {v.name} ({bytes(v.capacity)}){v.used_by.length ? ` — ${t('storage.used_by', { vms: v.used_by.join(', ') })}` : ''}
                    </option>
                  ))}
                </select>
              )}
            </Field>
          )}
          {kind === 'block' && (
            <Field label={t('wizard.drive.block_path')} hint={t('wizard.drive.block_hint')}>
              {(id, d) => <input id={id} aria-describedby={d} placeholder="/dev/vg0/data" value={path} onInput={(e) => setPath((e.currentTarget as HTMLInputElement).value)} />}
            </Field>
          )}
          {kind === 'cdrom' && (
            <Field label={t('wizard.drive.iso')}>
              {(id) => (
                <select id={id} value={iso} onChange={(e) => setIso((e.currentTarget as HTMLSelectElement).value)}>
                  <option value="">{t('wizard.drive.empty_cdrom')}</option>
                  {storage &&
                    isoVolumes(storage).map(({ pool: p, vol }) => (
                      <option value={`${p}/${vol.name}`}>
                        {p}/{vol.name} ({bytes(vol.capacity)})
                      </option>
                    ))}
                </select>
              )}
            </Field>
          )}
          <Field label={t('wizard.drive.bus')} hint={t('wizard.drive.bus_hint')}>
            {(id, d) => (
              <select id={id} aria-describedby={d} value={bus} onChange={(e) => setBus((e.currentTarget as HTMLSelectElement).value)}>
                <option value="">{t('wizard.drive.bus_default')}</option>
                {buses.map((b) => (
                  <option value={b}>{b}</option>
                ))}
              </select>
            )}
          </Field>
        </div>
      )}
      {step === 2 && (
        <dl class="facts summary">
          <dt>{t('wizard.drive.kind')}</dt>
          <dd>{t(`wizard.drive.${kind}` as Key)}</dd>
          {kind === 'new' && (
            <>
              <dt>{t('wizard.drive.pool')}</dt>
              <dd>{pool}</dd>
              <dt>{t('wizard.drive.size')}</dt>
              <dd>{sizeBytes !== null ? bytes(sizeBytes) : '–'}</dd>
              <dt>{t('wizard.drive.format')}</dt>
              <dd>
                {format}, {preallocate ? t('wizard.drive.preallocated') : t('wizard.drive.sparse')}
              </dd>
            </>
          )}
          {kind === 'volume' && (
            <>
              <dt>{t('wizard.drive.volume')}</dt>
              <dd>{volume}</dd>
            </>
          )}
          {kind === 'block' && (
            <>
              <dt>{t('wizard.drive.block_path')}</dt>
              <dd>{path}</dd>
            </>
          )}
          {kind === 'cdrom' && (
            <>
              <dt>{t('wizard.drive.iso')}</dt>
              <dd>{iso || t('wizard.drive.empty_cdrom')}</dd>
            </>
          )}
          <dt>{t('wizard.drive.bus')}</dt>
          <dd>{bus || t('wizard.drive.bus_default')}</dd>
        </dl>
      )}
      {step === 2 && vm.state === 'running' && <p class="notice info">{t('drives.added_running')}</p>}
      <ErrorBox error={error} />
      <div class="buttons">
        <button type="button" onClick={step === 0 ? onClose : () => setStep(step - 1)}>
          {step === 0 ? t('common.cancel') : t('wizard.back')}
        </button>
        {step < 2 ? (
          <button type="button" class="primary" disabled={step === 1 && !detailsOk} onClick={() => setStep(step + 1)}>
            {t('wizard.next')}
          </button>
        ) : (
          <button type="button" class="primary" disabled={busy} onClick={submit} data-testid="add-drive-submit">
            {t('drives.add')}
          </button>
        )}
      </div>
    </Modal>
  );
}

function ChangeMedium({ vm, disk, storage, onClose, onDone }: { vm: VmDetail; disk: Disk; storage: HostStorage; onClose: () => void; onDone: (r: VmChangeResponse) => void }) {
  const [choice, setChoice] = useState(disk.source ?? '');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const put = async (source: string | null) => {
    setBusy(true);
    setError(null);
    try {
      const r = await api.put<VmChangeResponse>(`/vms/${seg(vm.uuid)}/disks/${seg(disk.target)}/media`, { source }, { query: { host: vm.host_id } });
      toast(r.warnings.length ? 'warning' : 'info', source ? t('media.inserted', { target: disk.target }) : t('media.ejected', { target: disk.target }), r.warnings.join(' '));
      onDone(r);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const options = isoVolumes(storage);
  return (
    <Modal title={t('media.title', { target: disk.target })} onClose={onClose} labelId="media-title">
      <p>
        {t('media.current')}: {disk.source ? <code>{disk.source}</code> : <span class="muted">{t('drives.empty')}</span>}
      </p>
      <Field label={t('media.choose')}>
        {(id) => (
          <select id={id} value={choice} onChange={(e) => setChoice((e.currentTarget as HTMLSelectElement).value)}>
            <option value="">{t('common.choose')}</option>
            {options.map(({ pool, vol }) => (
              <option value={vol.path ?? `${pool}/${vol.name}`}>
                {pool}/{vol.name} ({bytes(vol.capacity)})
              </option>
            ))}
          </select>
        )}
      </Field>
      {vm.state === 'running' && <p class="muted">{t('media.live')}</p>}
      <ErrorBox error={error} />
      <div class="buttons">
        <button type="button" onClick={onClose}>
          {t('common.cancel')}
        </button>
        <button type="button" disabled={busy || !disk.source} onClick={() => put(null)} data-testid="eject">
          {t('media.eject')}
        </button>
        <button type="button" class="primary" disabled={busy || !choice || choice === disk.source} onClick={() => put(choice)} data-testid="insert">
          {t('media.insert')}
        </button>
      </div>
    </Modal>
  );
}

function Detach({ vm, disk, storage, onClose, onDone }: { vm: VmDetail; disk: Disk; storage: HostStorage | null; onClose: () => void; onDone: () => void }) {
  const verdict = disk.source && storage ? deletableWith(storage, disk.source, `${vm.name}@${vm.host_id}`) : null;
  const [also, setAlso] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const go = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await api.del<DeleteResponse>(`/vms/${seg(vm.uuid)}/disks/${seg(disk.target)}`, {
        query: { host: vm.host_id, delete_volume: also ? 'true' : undefined },
      });
      toast('info', t('drives.detached', { target: disk.target }), [...r.deleted.map((p) => t('delete.deleted_one', { path: p })), ...r.kept.map((k) => `${k.path}: ${k.reason}`)].join(' '));
      onDone();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal title={t('drives.detach_title', { target: disk.target })} onClose={onClose} labelId="detach-title">
      <p>{t('drives.detach_text', { target: disk.target, name: vm.name })}</p>
      {vm.state === 'running' && <p class="notice info">{t('drives.detach_running')}</p>}
      {disk.source && disk.device === 'disk' && (
        <div class="field checkbox">
          <input id="also-delete" type="checkbox" checked={also} disabled={!verdict?.ok} onChange={(e) => setAlso((e.currentTarget as HTMLInputElement).checked)} />
          <label for="also-delete">
            {t('drives.also_delete')} <code>{disk.source}</code>
          </label>
          {verdict && !verdict.ok && (
            <div class="field-hint">
              {verdict.why === 'shared' ? t('delete.shared', { others: (verdict.others ?? []).join(', ') }) : t(`delete.keep_${verdict.why}` as Key)}
            </div>
          )}
        </div>
      )}
      <ErrorBox error={error} />
      <div class="buttons">
        <button type="button" onClick={onClose}>
          {t('common.cancel')}
        </button>
        <button type="button" class="danger" disabled={busy} onClick={go} data-testid="confirm-detach">
          {t('drives.detach')}
        </button>
      </div>
    </Modal>
  );
}
