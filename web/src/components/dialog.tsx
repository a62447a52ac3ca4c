// Modal dialogs on the native <dialog> element: it traps focus, closes with Escape and
// returns focus to where it was, without code of ours. `confirmAction` asks before
// anything destructive.

import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import { t } from '../i18n';
import { createStore, useStore } from '../store';

export function Modal(props: { title: string; onClose: () => void; children: ComponentChildren; wide?: boolean; labelId?: string }) {
  const ref = useRef<HTMLDialogElement>(null);
  const close = useRef(props.onClose);
  close.current = props.onClose;
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    const opener = document.activeElement as HTMLElement | null;
    d.showModal();
    const onCancel = (e: Event) => {
      e.preventDefault();
      close.current();
    };
    d.addEventListener('cancel', onCancel);
    return () => {
      d.removeEventListener('cancel', onCancel);
      if (d.open) d.close();
      opener?.focus?.();
    };
  }, []);
  const titleId = props.labelId ?? 'dialog-title';
  return (
    <dialog ref={ref} class={props.wide ? 'wide' : ''} aria-labelledby={titleId}>
      <div class="dialog-head">
        <h2 id={titleId}>{props.title}</h2>
        <button type="button" class="icon" aria-label={t('common.close')} onClick={() => close.current()}>
          ×
        </button>
      </div>
      <div class="dialog-body">{props.children}</div>
    </dialog>
  );
}

interface Ask {
  title: string;
  body: ComponentChildren;
  confirm: string;
  danger: boolean;
  resolve: (ok: boolean) => void;
}

const asking = createStore<Ask | null>(null);

/** Ask before a destructive action; resolves true when confirmed. */
export function confirmAction(o: { title: string; body: ComponentChildren; confirm: string; danger?: boolean }): Promise<boolean> {
  return new Promise((resolve) => {
    asking.set({ ...o, danger: o.danger ?? true, resolve });
  });
}

export function ConfirmHost() {
  const a = useStore(asking);
  if (!a) return null;
  const done = (ok: boolean) => {
    asking.set(null);
    a.resolve(ok);
  };
  return (
    <Modal title={a.title} onClose={() => done(false)} labelId="confirm-title">
      <div class="confirm-body">{a.body}</div>
      <div class="buttons">
        <button type="button" onClick={() => done(false)}>
          {t('common.cancel')}
        </button>
        <button type="button" class={a.danger ? 'danger' : 'primary'} onClick={() => done(true)} data-testid="confirm">
          {a.confirm}
        </button>
      </div>
    </Modal>
  );
}
