// New VM: host → profile → name and resources → drives → network → summary. The server
// adapts the request to the host (e.g. KVM not available: QEMU) and says so in `notes`,
// which the last step shows.

import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/client';
import type { Profile, VmChangeResponse } from '../api/types';
import { Field } from '../components/bits';
import { ErrorBox, Notices, toast } from '../components/feedback';
import { bytes, parseSize, profileSize } from '../format';
import { t, type Key } from '../i18n';
import { hosts as hostStore } from '../live';
import { navigate, onLinkClick, vmPath } from '../router';
import { useStore } from '../store';
import { isoVolumes, loadHostStorage, type HostStorage } from '../volumes';

interface DiskRow {
  pool: string;
  size: string;
  format: string;
}

const STEPS: Key[] = ['create.step.host', 'create.step.profile', 'create.step.resources', 'create.step.drives', 'create.step.network', 'create.step.summary'];

export function CreateWizard() {
  const hostList = useStore(hostStore);
  const [step, setStep] = useState(0);
  const [host, setHost] = useState('');
  const [profiles, setProfiles] = useState<Profile[] | null>(null);
  const [profile, setProfile] = useState('');
  const [name, setName] = useState('');
  const [memory, setMemory] = useState('1024');
  const [vcpus, setVcpus] = useState('1');
  const [description, setDescription] = useState('');
  const [contact, setContact] = useState('');
  const [os, setOs] = useState('');
  const [autostart, setAutostart] = useState(false);
  const [start, setStart] = useState(false);
  const [disks, setDisks] = useState<DiskRow[]>([]);
  const [cdrom, setCdrom] = useState('');
  const [networks, setNetworks] = useState<string[]>([]);
  const [storage, setStorage] = useState<HostStorage | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<VmChangeResponse | null>(null);

  useEffect(() => {
    api.get<Profile[]>('/profiles').then(setProfiles, setError);
  }, []);
  useEffect(() => {
    if (!host && hostList) {
      const first = hostList.find((h) => h.available);
      if (first) setHost(first.id);
    }
  }, [hostList]);
  useEffect(() => {
    setStorage(null);
    if (host) loadHostStorage(host).then(setStorage, () => setStorage(null));
  }, [host]);

  const chosen = profiles?.find((p) => p.name === profile) ?? null;
  // A profile fills in what the next steps start with.
  const applyProfile = (p: Profile) => {
    setProfile(p.name);
    if (!name || profiles?.some((x) => x.name_prefix && name === x.name_prefix)) setName(p.name_prefix ?? '');
    const mem = profileSize(p.memory);
    if (mem) setMemory(String(Math.round(mem / 1024 / 1024)));
    setVcpus(String(p.vcpus));
    const size = profileSize(p.disk_size);
    setDisks(size ? [{ pool: 'default', size: bytes(size).replace(',', '.'), format: p.disk_format }] : []);
    setNetworks(p.network ? [p.network] : []);
    if (!os) setOs(p.name);
  };

  const nameOk = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name);
  const resourcesOk = nameOk && Number(memory) >= 16 && Number(vcpus) >= 1;
  const disksOk = disks.every((d) => d.pool && parseSize(d.size) !== null);
  const canNext = [!!host, !!profile, resourcesOk, disksOk, networks.every((n) => /^(network|bridge|direct)=\S+$/.test(n)), true][step];

  const request = () => ({
    host,
    profile,
    name,
    memory_kib: Math.round(Number(memory) * 1024),
    vcpus: Number(vcpus),
    disks: disks.map((d) => ({ pool: d.pool, size_bytes: parseSize(d.size) ?? 0, format: d.format || null })),
    cdrom: cdrom || null,
    networks,
    description: description || null,
    contact: contact || null,
    os: os || null,
    autostart,
    start,
  });

  const create = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await api.post<VmChangeResponse>('/vms', request());
      setDone(r);
      toast('info', t('create.done', { name: r.vm.name }));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  if (done) {
    return (
      <section class="page wizard" aria-labelledby="create-title">
        <h1 id="create-title">{t('create.done', { name: done.vm.name })}</h1>
        <Notices notes={done.notes} warnings={done.warnings} />
        <p>
          <a class="button primary" href={vmPath(done.vm.host_id, done.vm.uuid)} onClick={onLinkClick} data-testid="open-new-vm">
            {t('create.open')}
          </a>{' '}
          <a class="button" href="/" onClick={onLinkClick}>
            {t('nav.overview')}
          </a>
        </p>
      </section>
    );
  }

  const val = (e: Event) => (e.currentTarget as HTMLInputElement).value;
  const pools = storage?.pools ?? [];
  return (
    <section class="page wizard" aria-labelledby="create-title">
      <h1 id="create-title">{t('nav.create')}</h1>
      <ol class="steps" aria-label={t('wizard.steps')}>
        {STEPS.map((s, i) => (
          <li aria-current={i === step ? 'step' : undefined} class={i < step ? 'done' : ''}>
            {t(s)}
          </li>
        ))}
      </ol>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (step < STEPS.length - 1) {
            if (canNext) setStep(step + 1);
          } else void create();
        }}
      >
        <h2 class="step-title">{t(STEPS[step])}</h2>
        {step === 0 && (
          <fieldset class="choices">
            <legend>{t('create.host_legend')}</legend>
            {(hostList ?? []).map((h) => (
              <label class={`choice${h.available ? '' : ' disabled'}`}>
                <input type="radio" name="host" value={h.id} checked={host === h.id} disabled={!h.available} onChange={() => setHost(h.id)} />
                <span>
                  <strong>{h.id}</strong>
                  <span class="muted">
                    {' '}
                    {h.driver ?? ''} · {t('hosts.vm_counts', { running: h.running_count, total: h.vm_count })}
                    {!h.available && ` · ${t(`hosts.status.${h.status}` as Key)}`}
                  </span>
                </span>
              </label>
            ))}
          </fieldset>
        )}
        {step === 1 && (
          <fieldset class="choices">
            <legend>{t('create.profile_legend')}</legend>
            {(profiles ?? []).map((p) => (
              <label class="choice">
                <input type="radio" name="profile" value={p.name} checked={profile === p.name} onChange={() => applyProfile(p)} />
                <span>
                  <strong>{p.name}</strong>
                  <span class="muted"> {p.description}</span>
                </span>
              </label>
            ))}
          </fieldset>
        )}
        {step === 2 && (
          <div class="form-grid">
            <Field label={t('create.name')} hint={nameOk ? undefined : t('create.name_rule')}>
              {(id, d) => <input id={id} aria-describedby={d} aria-invalid={!nameOk} required value={name} onInput={(e) => setName(val(e))} />}
            </Field>
            <Field label={t('settings.memory_mib')}>
              {(id) => <input id={id} type="number" min={16} value={memory} onInput={(e) => setMemory(val(e))} />}
            </Field>
            <Field label={t('vm.vcpus')}>{(id) => <input id={id} type="number" min={1} value={vcpus} onInput={(e) => setVcpus(val(e))} />}</Field>
            <Field label={t('vm.description')}>{(id) => <input id={id} value={description} onInput={(e) => setDescription(val(e))} />}</Field>
            <Field label={t('vm.contact')}>{(id) => <input id={id} value={contact} onInput={(e) => setContact(val(e))} />}</Field>
            <Field label={t('vm.os')}>{(id) => <input id={id} value={os} onInput={(e) => setOs(val(e))} />}</Field>
          </div>
        )}
        {step === 3 && (
          <div>
            <p class="muted">{t('create.drives_hint')}</p>
            {disks.map((d, i) => (
              <fieldset class="disk-row">
                <legend>{t('create.disk_n', { n: i + 1 })}</legend>
                <div class="form-grid">
                  <Field label={t('wizard.drive.pool')}>
                    {(id) => (
                      <select id={id} value={d.pool} onChange={(e) => setDisks(disks.map((x, j) => (j === i ? { ...x, pool: val(e) } : x)))}>
                        {!pools.some((p) => p.name === d.pool) && <option value={d.pool}>{d.pool}</option>}
                        {pools.map((p) => (
                          <option value={p.name}>
                            {p.name} ({t('storage.free', { size: bytes(p.available) })})
                          </option>
                        ))}
                      </select>
                    )}
                  </Field>
                  <Field label={t('wizard.drive.size')} hint={parseSize(d.size) === null ? t('wizard.size_invalid') : t('create.sparse')}>
                    {(id, dd) => (
                      <input id={id} aria-describedby={dd} value={d.size} aria-invalid={parseSize(d.size) === null} onInput={(e) => setDisks(disks.map((x, j) => (j === i ? { ...x, size: val(e) } : x)))} />
                    )}
                  </Field>
                  <Field label={t('wizard.drive.format')}>
                    {(id) => (
                      <select id={id} value={d.format} onChange={(e) => setDisks(disks.map((x, j) => (j === i ? { ...x, format: val(e) } : x)))}>
                        <option value="qcow2">qcow2</option>
                        <option value="raw">raw</option>
                      </select>
                    )}
                  </Field>
                </div>
                <button type="button" class="small" onClick={() => setDisks(disks.filter((_, j) => j !== i))}>
                  {t('create.remove_disk', { n: i + 1 })}
                </button>
              </fieldset>
            ))}
            <div class="buttons left">
              <button type="button" onClick={() => setDisks([...disks, { pool: 'default', size: '10 GiB', format: chosen?.disk_format ?? 'qcow2' }])}>
                {t('create.add_disk')}
              </button>
            </div>
            <Field label={t('create.cdrom')}>
              {(id) => (
                <select id={id} value={cdrom} onChange={(e) => setCdrom(val(e))}>
                  <option value="">{t('create.no_cdrom')}</option>
                  {storage &&
                    isoVolumes(storage).map(({ pool, vol }) => (
                      <option value={`${pool}/${vol.name}`}>
                        {pool}/{vol.name}
                      </option>
                    ))}
                </select>
              )}
            </Field>
          </div>
        )}
        {step === 4 && (
          <div>
            <p class="muted">{t('create.network_hint')}</p>
            {networks.map((n, i) => (
              <div class="net-row">
                <Field label={t('create.nic_n', { n: i + 1 })}>
                  {(id) => <input id={id} value={n} onInput={(e) => setNetworks(networks.map((x, j) => (j === i ? val(e) : x)))} />}
                </Field>
                <button type="button" class="small" onClick={() => setNetworks(networks.filter((_, j) => j !== i))}>
                  {t('create.remove_nic', { n: i + 1 })}
                </button>
              </div>
            ))}
            {networks.length === 0 && <p>{t('create.no_network')}</p>}
            <div class="buttons left">
              <button type="button" onClick={() => setNetworks([...networks, 'network=default'])}>
                {t('create.add_nic')}
              </button>
            </div>
          </div>
        )}
        {step === 5 && (
          <>
            <dl class="facts summary" data-testid="create-summary">
              <dt>{t('create.step.host')}</dt>
              <dd>{host}</dd>
              <dt>{t('create.step.profile')}</dt>
              <dd>{profile}</dd>
              <dt>{t('create.name')}</dt>
              <dd>{name}</dd>
              <dt>{t('vm.memory')}</dt>
              <dd>{memory} MiB</dd>
              <dt>{t('vm.vcpus')}</dt>
              <dd>{vcpus}</dd>
              <dt>{t('create.step.drives')}</dt>
              <dd>
                {disks.length
                  ? disks.map((d) => `${d.pool}: ${bytes(parseSize(d.size) ?? 0)} ${d.format}`).join('; ')
                  : t('create.no_disks')}
                {cdrom && ` · CD-ROM ${cdrom}`}
              </dd>
              <dt>{t('create.step.network')}</dt>
              <dd>{networks.length ? networks.join(', ') : t('create.no_network')}</dd>
            </dl>
            <div class="field checkbox">
              <input id="create-autostart" type="checkbox" checked={autostart} onChange={(e) => setAutostart((e.currentTarget as HTMLInputElement).checked)} />
              <label for="create-autostart">{t('settings.autostart')}</label>
            </div>
            <div class="field checkbox">
              <input id="create-start" type="checkbox" checked={start} onChange={(e) => setStart((e.currentTarget as HTMLInputElement).checked)} />
              <label for="create-start">{t('create.start')}</label>
            </div>
            <p class="muted">{t('create.notes_hint')}</p>
          </>
        )}
        <ErrorBox error={error} />
        <div class="buttons">
          <button type="button" onClick={() => (step === 0 ? navigate('/') : setStep(step - 1))}>
            {step === 0 ? t('common.cancel') : t('wizard.back')}
          </button>
          {step < STEPS.length - 1 ? (
            <button type="submit" class="primary" disabled={!canNext}>
              {t('wizard.next')}
            </button>
          ) : (
            <button type="submit" class="primary" disabled={busy} data-testid="create-submit">
              {t('create.submit')}
            </button>
          )}
        </div>
      </form>
    </section>
  );
}
