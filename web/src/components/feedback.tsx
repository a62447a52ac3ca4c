// Messages to the user: toasts (in an aria-live region) and errors in words with what
// to do next. Server messages (English, from uvmmd) are shown after a translated title.

import { ApiError } from '../api/client';
import { t, type Key } from '../i18n';
import { createStore, useStore } from '../store';

export interface Toast {
  id: number;
  kind: 'info' | 'warning' | 'error';
  title: string;
  text?: string;
  hint?: string;
}

const toasts = createStore<Toast[]>([]);
let nextId = 1;

export function toast(kind: Toast['kind'], title: string, text?: string, hint?: string): void {
  const id = nextId++;
  toasts.set([...toasts.get(), { id, kind, title, text, hint }].slice(-5));
  // Errors stay until closed: they say what to do next.
  if (kind !== 'error') setTimeout(() => dismiss(id), kind === 'warning' ? 12000 : 5000);
}

function dismiss(id: number) {
  toasts.set(toasts.get().filter((x) => x.id !== id));
}

/** What went wrong and what to do next, for any error a call can throw. */
export function describeError(e: unknown): { title: string; text: string; hint: string } {
  if (!(e instanceof ApiError)) {
    return { title: t('err.unexpected'), text: String(e), hint: t('hint.unexpected') };
  }
  const byCode: Record<string, [Key, Key]> = {
    network: ['err.network', 'hint.network'],
    not_found: ['err.not_found', 'hint.not_found'],
    conflict: ['err.conflict', 'hint.conflict'],
    invalid_transition: ['err.invalid_transition', 'hint.invalid_transition'],
    ambiguous: ['err.ambiguous', 'hint.ambiguous'],
    bad_request: ['err.bad_request', 'hint.bad_request'],
    host_unavailable: ['err.host_unavailable', 'hint.host_unavailable'],
    timeout: ['err.timeout', 'hint.timeout'],
    not_supported: ['err.not_supported', 'hint.not_supported'],
    libvirt_error: ['err.libvirt_error', 'hint.libvirt_error'],
  };
  let pair = byCode[e.code];
  if (!pair) {
    if (e.status === 401) pair = ['err.unauthorized', 'hint.unauthorized'];
    else if (e.status === 403) pair = ['err.forbidden', 'hint.forbidden'];
    else if (e.status === 413) pair = ['err.too_large', 'hint.bad_request'];
    else if (e.status === 409) pair = ['err.conflict', 'hint.conflict'];
    else if (e.status === 501) pair = ['err.not_supported', 'hint.not_supported'];
    else if (e.status === 429) pair = ['err.too_many', 'hint.too_many'];
    else if (e.status === 503) pair = ['err.unavailable', 'hint.unexpected'];
    else pair = ['err.unexpected', 'hint.unexpected'];
  }
  return { title: t(pair[0]), text: e.message, hint: t(pair[1]) };
}

export function toastError(e: unknown): void {
  if (e instanceof DOMException && e.name === 'AbortError') return;
  const d = describeError(e);
  toast('error', d.title, d.text, d.hint);
}

/** An error shown in place (forms, dialogs). */
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const d = describeError(error);
  return (
    <div class="error-box" role="alert">
      <strong>{d.title}</strong>
      {d.text && <span class="server-text"> {d.text}</span>}
      <div class="hint">{d.hint}</div>
    </div>
  );
}

/** Server warnings and notes after a change (they are English: uvmmd's words). */
export function Notices({ notes, warnings }: { notes?: string[]; warnings?: string[] }) {
  if (!notes?.length && !warnings?.length) return null;
  return (
    <div class="notices" role="status">
      {warnings?.map((w) => (
        <p class="notice warning">
          <strong>{t('common.warning')}:</strong> <span class="server-text">{w}</span>
        </p>
      ))}
      {notes?.map((n) => (
        <p class="notice note">
          <strong>{t('common.note')}:</strong> <span class="server-text">{n}</span>
        </p>
      ))}
    </div>
  );
}

export function Toasts() {
  const list = useStore(toasts);
  return (
    <div class="toasts" aria-live="polite" aria-relevant="additions">
      {list.map((x) => (
        <div class={`toast ${x.kind}`} key={x.id} role={x.kind === 'error' ? 'alert' : 'status'}>
          <div class="toast-body">
            <strong>{x.title}</strong>
            {x.text && <div class="server-text">{x.text}</div>}
            {x.hint && <div class="hint">{x.hint}</div>}
          </div>
          <button type="button" class="icon" aria-label={t('common.close')} onClick={() => dismiss(x.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
