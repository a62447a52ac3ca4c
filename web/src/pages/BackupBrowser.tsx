// The versions of one VM's definition (every change is a version), a side-by-side diff of
// two of them, and restoring one. Used on the VM page and on the backups page (where
// deleted VMs are restored).

import { useEffect, useState } from 'preact/hooks';
import { api, seg } from '../api/client';
import type { BackupDetail, HostSummary, RestoreReport } from '../api/types';
import { Field } from '../components/bits';
import { Modal } from '../components/dialog';
import { ErrorBox, Notices, toast } from '../components/feedback';
import { t, when } from '../i18n';
import { hosts as hostStore, useEvents } from '../live';
import { can } from '../session';
import { useStore } from '../store';

export function BackupBrowser({ vm, hostId, onRestored }: { vm: string; hostId?: string; onRestored?: () => void }) {
  const [detail, setDetail] = useState<BackupDetail | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [from, setFrom] = useState<number | null>(null);
  const [to, setTo] = useState<number | null>(null);
  const [restoring, setRestoring] = useState<number | null>(null);

  const load = async () => {
    try {
      const d = await api.get<BackupDetail>(`/backups/${seg(vm)}`);
      setDetail(d);
      setError(null);
      const vs = d.versions.map((v) => v.version).sort((a, b) => a - b);
      // Default comparison: the latest version against the one before it.
      setTo((x) => (x !== null && vs.includes(x) ? x : vs[vs.length - 1] ?? null));
      setFrom((x) => (x !== null && vs.includes(x) ? x : vs[vs.length - 2] ?? vs[0] ?? null));
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => void load(), [vm]);
  // A change of the VM makes a version.
  useEvents((e) => {
    if (e.uuid === detail?.uuid && (e.kind === 'vm_changed' || e.kind === 'vm_added' || e.kind === 'vm_removed')) void load();
  });

  if (error) return <ErrorBox error={error} />;
  if (!detail) return <p class="muted">{t('common.loading')}</p>;
  const versions = [...detail.versions].sort((a, b) => b.version - a.version);
  return (
    <section aria-labelledby="backups-h" class="backups">
      <h2 id="backups-h">{t('backups.versions_of', { name: detail.name })}</h2>
      {detail.deleted && <p class="notice warning">{t('backups.deleted_vm')}</p>}
      <div class="table-wrap">
        <table class="data">
          <caption class="visually-hidden">{t('backups.versions_of', { name: detail.name })}</caption>
          <thead>
            <tr>
              <th scope="col">{t('backups.version')}</th>
              <th scope="col">{t('backups.time')}</th>
              <th scope="col">{t('backups.cause')}</th>
              <th scope="col">{t('backups.name')}</th>
              <th scope="col">{t('backups.user')}</th>
              {can('restore', {}) && <th scope="col">{t('grid.actions')}</th>}
            </tr>
          </thead>
          <tbody>
            {versions.map((v) => (
              <tr data-version={v.version}>
                <td>{v.version}</td>
                <td>{when(v.time)}</td>
                <td>
                  {v.cause}
                  {v.deleted && <span class="tag">{t('backups.deleted')}</span>}
                </td>
                <td>{v.name}</td>
                <td>{v.user || <span class="muted">–</span>}</td>
                {can('restore', {}) && (
                <td>
                  <button type="button" class="small" onClick={() => setRestoring(v.version)} data-action="restore" aria-label={t('backups.restore_version', { n: v.version })}>
                    {t('backups.restore')}
                  </button>
                </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {versions.length > 1 && from !== null && to !== null && (
        <Diff vm={detail.uuid} from={from} to={to} versions={versions.map((v) => v.version)} onFrom={setFrom} onTo={setTo} />
      )}
      {versions.length === 1 && <p class="muted">{t('backups.one_version')}</p>}
      {restoring !== null && (
        <Restore
          detail={detail}
          version={restoring}
          hostId={hostId}
          onClose={() => setRestoring(null)}
          onDone={() => {
            void load();
            onRestored?.();
          }}
        />
      )}
    </section>
  );
}

interface DiffRow {
  kind: 'hunk' | 'same' | 'change';
  left?: [number, string] | null;
  right?: [number, string] | null;
  text?: string;
}

/** A unified diff as rows of two columns: removed lines left, added lines right, paired. */
export function sideBySide(diff: string): DiffRow[] {
  const rows: DiffRow[] = [];
  let l = 0;
  let r = 0;
  let dels: [number, string][] = [];
  let adds: [number, string][] = [];
  const flush = () => {
    for (let i = 0; i < Math.max(dels.length, adds.length); i++) {
      rows.push({ kind: 'change', left: dels[i] ?? null, right: adds[i] ?? null });
    }
    dels = [];
    adds = [];
  };
  for (const line of diff.split('\n')) {
    if (line.startsWith('---') || line.startsWith('+++')) continue;
    const hunk = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
    if (hunk) {
      flush();
      l = Number(hunk[1]);
      r = Number(hunk[2]);
      rows.push({ kind: 'hunk', text: line });
    } else if (line.startsWith('-')) dels.push([l++, line.slice(1)]);
    else if (line.startsWith('+')) adds.push([r++, line.slice(1)]);
    else if (line.startsWith(' ')) {
      flush();
      rows.push({ kind: 'same', left: [l++, line.slice(1)], right: [r++, line.slice(1)] });
    }
  }
  flush();
  return rows;
}

function Diff(props: { vm: string; from: number; to: number; versions: number[]; onFrom: (n: number) => void; onTo: (n: number) => void }) {
  const [text, setText] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    setText(null);
    api.get<string>(`/backups/${seg(props.vm)}/diff`, { query: { from: props.from, to: props.to } }).then(
      (d) => {
        setText(typeof d === 'string' ? d : '');
        setError(null);
      },
      setError,
    );
  }, [props.vm, props.from, props.to]);
  const pick = (label: string, value: number, on: (n: number) => void) => (
    <Field label={label}>
      {(id) => (
        <select id={id} value={value} onChange={(e) => on(Number((e.currentTarget as HTMLSelectElement).value))}>
          {props.versions.map((v) => (
            <option value={v}>{t('backups.version_n', { n: v })}</option>
          ))}
        </select>
      )}
    </Field>
  );
  const rows = text ? sideBySide(text) : [];
  const cell = (c: [number, string] | null | undefined, cls: string) => (
    <>
      <td class="ln">{c ? c[0] : ''}</td>
      <td class={c ? cls : 'blank'}>
        <code>{c ? c[1] : ''}</code>
      </td>
    </>
  );
  return (
    <section aria-labelledby="diff-h" class="diff">
      <h3 id="diff-h">{t('backups.diff')}</h3>
      <div class="form-grid narrow">
        {pick(t('backups.diff_from'), props.from, props.onFrom)}
        {pick(t('backups.diff_to'), props.to, props.onTo)}
      </div>
      <ErrorBox error={error} />
      {text === null && !error && <p class="muted">{t('common.loading')}</p>}
      {text !== null && rows.length === 0 && <p class="muted">{t('backups.no_diff')}</p>}
      {rows.length > 0 && (
        <div class="table-wrap">
          <table class="diff-table" data-testid="diff">
            <caption class="visually-hidden">{t('backups.diff_caption', { from: props.from, to: props.to })}</caption>
            <thead>
              <tr>
                <th scope="col" colSpan={2}>
                  {t('backups.version_n', { n: props.from })}
                </th>
                <th scope="col" colSpan={2}>
                  {t('backups.version_n', { n: props.to })}
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((row) =>
                row.kind === 'hunk' ? (
                  <tr class="hunk">
                    <td colSpan={4}>{row.text}</td>
                  </tr>
                ) : (
                  <tr class={row.kind}>
                    {cell(row.left, row.kind === 'change' ? 'del' : '')}
                    {cell(row.right, row.kind === 'change' ? 'add' : '')}
                  </tr>
                ),
              )}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function Restore(props: { detail: BackupDetail; version: number; hostId?: string; onClose: () => void; onDone: () => void }) {
  const hostList = useStore(hostStore) ?? [];
  const origin = hostList.find((h: HostSummary) => h.uri === props.detail.host)?.id ?? '';
  const [host, setHost] = useState(props.hostId ?? origin);
  // Restoring over an existing VM (same name) needs force; a deleted VM does not.
  const [force, setForce] = useState(!props.detail.deleted);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [report, setReport] = useState<RestoreReport | null>(null);
  const go = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await api.post<RestoreReport>('/restore', { backup: props.detail.uuid, version: props.version, host: host || null, force });
      setReport(r);
      toast(r.warnings.length ? 'warning' : 'info', t('backups.restored', { name: r.name, n: props.version }), r.warnings.join(' '));
      props.onDone();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal title={t('backups.restore_title', { name: props.detail.name, n: props.version })} onClose={props.onClose} labelId="restore-title">
      {report ? (
        <>
          <p role="status">{t('backups.restored', { name: report.name, n: props.version })}</p>
          <Notices warnings={report.warnings} />
          <div class="buttons">
            <button type="button" class="primary" onClick={props.onClose}>
              {t('common.close')}
            </button>
          </div>
        </>
      ) : (
        <>
          <p>{t('backups.restore_text', { name: props.detail.name, n: props.version })}</p>
          <p class="muted">{t('backups.restore_images')}</p>
          <Field label={t('backups.target_host')}>
            {(id) => (
              <select id={id} value={host} onChange={(e) => setHost((e.currentTarget as HTMLSelectElement).value)}>
                {!origin && <option value="">{t('backups.origin_host')}</option>}
                {hostList.map((h) => (
                  <option value={h.id}>{h.id}</option>
                ))}
              </select>
            )}
          </Field>
          <div class="field checkbox">
            <input id="restore-force" type="checkbox" checked={force} onChange={(e) => setForce((e.currentTarget as HTMLInputElement).checked)} />
            <label for="restore-force">{t('backups.force')}</label>
            <div class="field-hint">{t('backups.force_hint')}</div>
          </div>
          <ErrorBox error={error} />
          <div class="buttons">
            <button type="button" onClick={props.onClose}>
              {t('common.cancel')}
            </button>
            <button type="button" class="danger" disabled={busy} onClick={go} data-testid="confirm-restore">
              {t('backups.restore')}
            </button>
          </div>
        </>
      )}
    </Modal>
  );
}
