// Every backed-up VM, deleted ones too: the way back for a VM that is gone (the original
// UVMM's restore tool, in the browser).

import { useEffect, useState } from 'preact/hooks';
import { api } from '../api/client';
import type { BackupSummary } from '../api/types';
import { ErrorBox } from '../components/feedback';
import { t, when } from '../i18n';
import { useEvents } from '../live';
import { BackupBrowser } from './BackupBrowser';

export function Backups() {
  const [list, setList] = useState<BackupSummary[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [q, setQ] = useState('');
  const [selected, setSelected] = useState<string | null>(null);
  const load = async (pattern: string) => {
    try {
      setList(await api.get<BackupSummary[]>('/backups', { query: { q: pattern ? (/[*?[]/.test(pattern) ? pattern : `*${pattern}*`) : undefined } }));
      setError(null);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    const id = setTimeout(() => void load(q), 150);
    return () => clearTimeout(id);
  }, [q]);
  useEvents((e) => {
    if (e.kind === 'vm_added' || e.kind === 'vm_removed' || e.kind === 'vm_changed') void load(q);
  });
  return (
    <section class="page backups-page" aria-labelledby="backups-title">
      <h1 id="backups-title">{t('nav.backups')}</h1>
      <p class="muted">{t('backups.intro')}</p>
      <div class="toolbar">
        <div class="field inline grow">
          <label for="backup-search">{t('backups.search')}</label>
          <input id="backup-search" type="search" value={q} placeholder="*winxp*" onInput={(e) => setQ((e.currentTarget as HTMLInputElement).value)} />
        </div>
      </div>
      <ErrorBox error={error} />
      {list && (
        <div class="table-wrap">
          <table class="data">
            <caption class="visually-hidden">{t('nav.backups')}</caption>
            <thead>
              <tr>
                <th scope="col">{t('backups.name')}</th>
                <th scope="col">{t('backups.host')}</th>
                <th scope="col">{t('backups.versions')}</th>
                <th scope="col">{t('backups.last_change')}</th>
                <th scope="col">{t('backups.state')}</th>
              </tr>
            </thead>
            <tbody>
              {list.map((b) => (
                <tr class={selected === b.uuid ? 'selected' : ''} data-backup={b.name}>
                  <td>
                    <button type="button" class="link-button" aria-pressed={selected === b.uuid} onClick={() => setSelected(selected === b.uuid ? null : b.uuid)}>
                      {b.name}
                    </button>
                    <div class="muted small-print">{b.uuid}</div>
                  </td>
                  <td class="uri">{b.host}</td>
                  <td>{b.version_count}</td>
                  <td>
                    {when(b.last_change)} ({b.last_cause})
                  </td>
                  <td>{b.deleted ? <span class="tag warning">{t('backups.deleted')}</span> : t('backups.defined')}</td>
                </tr>
              ))}
              {list.length === 0 && (
                <tr>
                  <td colSpan={5} class="muted">
                    {t('backups.none')}
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      )}
      {selected && <BackupBrowser vm={selected} />}
    </section>
  );
}
