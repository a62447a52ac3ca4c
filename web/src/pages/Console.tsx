// A VM's screen in the browser: noVNC (npm @novnc/novnc, bundled) over uvmmd's websocket
// `GET /api/v1/vms/{uuid}/console`, which relays RFB to the VM's VNC server. The browser
// authenticates the websocket with its session cookie (a websocket cannot carry an
// Authorization header); uvmmd lets only operators of the VM in.
//
// A VNC password is never sent by uvmmd: noVNC asks for it (`credentialsrequired`) and the
// user types it here; it goes to the VNC server through the relay.

import type RFB from '@novnc/novnc';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, auth, seg } from '../api/client';
import type { VmDetail } from '../api/types';
import { t } from '../i18n';
import { onLinkClick, vmPath } from '../router';

type Status =
  | { kind: 'connecting' }
  | { kind: 'connected'; desktop: string }
  | { kind: 'password' }
  | { kind: 'closed'; reason: string }
  | { kind: 'failed'; reason: string };

function consoleUrl(hostId: string, uuid: string): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/api/v1/vms/${seg(uuid)}/console?host=${seg(hostId)}`;
}

/** Why the handshake failed: a browser hides the websocket's HTTP status, so the same URL
 * is asked with a plain GET carrying the same credentials as the websocket (the cookie,
 * or the API token the websocket carried as its subprotocol), which answers with uvmmd's
 * error in words. */
async function whyRefused(hostId: string, uuid: string): Promise<string> {
  try {
    const res = await fetch(`/api/v1/vms/${seg(uuid)}/console?host=${seg(hostId)}`, { credentials: 'same-origin', headers: auth.authorization() });
    if (res.status === 401) return t('console.need_session');
    if (res.status !== 400) {
      const body = (await res.json()) as { error?: { message?: string } };
      if (body.error?.message) return body.error.message;
    }
  } catch {
    // No answer at all: uvmmd is not reachable; the generic text says what to do.
  }
  return t('console.dropped');
}

export function ConsolePage({ hostId, uuid }: { hostId: string; uuid: string }) {
  const screen = useRef<HTMLDivElement>(null);
  const rfb = useRef<RFB | null>(null);
  const [vm, setVm] = useState<VmDetail | null>(null);
  const [status, setStatus] = useState<Status>({ kind: 'connecting' });
  const [password, setPassword] = useState('');
  const [attempt, setAttempt] = useState(0);
  // Whether the end of the connection was asked for here (disconnect, leaving the page).
  const userClosed = useRef(false);

  useEffect(() => {
    api
      .get<VmDetail>(`/vms/${seg(uuid)}`, { query: { host: hostId } })
      .then(setVm)
      .catch(() => setVm(null));
  }, [hostId, uuid]);

  useEffect(() => {
    let r: RFB | null = null;
    let gone = false;
    setStatus({ kind: 'connecting' });
    userClosed.current = false;
    // noVNC is loaded with the console only: the overview's first paint does not wait for it.
    import('@novnc/novnc')
      .then(({ default: Rfb }) => {
        // Gone, or disconnected while noVNC was still loading: no connection.
        if (gone || userClosed.current || !screen.current) return;
        r = new Rfb(screen.current, consoleUrl(hostId, uuid), { wsProtocols: auth.websocketProtocols() });
        attach(r, () => gone);
      })
      .catch((e: unknown) => setStatus({ kind: 'failed', reason: String(e) }));
    return () => {
      gone = true;
      userClosed.current = true;
      r?.disconnect();
    };
  }, [hostId, uuid, attempt]);

  // `stale`: the page moved on (another attempt, or left); the old connection's events
  // no longer speak for it.
  const attach = (r: RFB, stale: () => boolean) => {
    let connected = false;
    r.scaleViewport = true;
    r.resizeSession = false;
    r.focusOnClick = true;
    rfb.current = r;
    r.addEventListener('connect', () => {
      connected = true;
      setStatus({ kind: 'connected', desktop: '' });
      r.focus();
    });
    r.addEventListener('desktopname', (e: CustomEvent<{ name: string }>) => {
      if (connected) setStatus({ kind: 'connected', desktop: e.detail.name });
    });
    r.addEventListener('credentialsrequired', () => setStatus({ kind: 'password' }));
    r.addEventListener('securityfailure', (e: CustomEvent<{ status: number; reason?: string }>) => {
      setStatus({ kind: 'failed', reason: e.detail.reason || t('console.security_failure') });
      userClosed.current = true;
    });
    r.addEventListener('disconnect', async () => {
      if (stale()) return;
      rfb.current = null;
      if (userClosed.current) {
        setStatus((s) => (s.kind === 'failed' ? s : { kind: 'closed', reason: t('console.closed_by_you') }));
      } else if (connected) {
        setStatus({ kind: 'closed', reason: t('console.closed_by_server') });
      } else {
        setStatus({ kind: 'failed', reason: await whyRefused(hostId, uuid) });
      }
    });
  };

  const disconnect = () => {
    userClosed.current = true;
    if (rfb.current) rfb.current.disconnect();
    else setStatus({ kind: 'closed', reason: t('console.closed_by_you') });
  };
  const sendPassword = (e: Event) => {
    e.preventDefault();
    rfb.current?.sendCredentials({ password });
    setPassword('');
    setStatus({ kind: 'connecting' });
  };
  const live = status.kind === 'connected';
  const keymap = vm?.graphics.find((g) => g.kind === 'vnc')?.keymap ?? null;

  return (
    <section class="page console-page" aria-labelledby="console-title">
      <p class="crumbs">
        <a href={vmPath(hostId, uuid)} onClick={onLinkClick}>
          {t('console.back')}
        </a>
      </p>
      <div class="vm-head">
        <h1 id="console-title">{t('console.title', { name: vm?.name ?? uuid })}</h1>
        <div class="vm-actions" role="group" aria-label={t('console.actions')}>
          <button type="button" disabled={!live} onClick={() => rfb.current?.sendCtrlAltDel()} data-testid="console-cad">
            {t('console.ctrl_alt_del')}
          </button>
          {status.kind !== 'closed' && status.kind !== 'failed' ? (
            <button type="button" onClick={disconnect} data-testid="console-disconnect">
              {t('console.disconnect')}
            </button>
          ) : (
            <button type="button" class="primary" onClick={() => setAttempt((n) => n + 1)} data-testid="console-reconnect">
              {t('console.reconnect')}
            </button>
          )}
        </div>
      </div>
      <p class="console-status" role="status" data-testid="console-status" data-state={status.kind}>
        {status.kind === 'connecting' && t('console.connecting')}
        {status.kind === 'connected' && (status.desktop ? t('console.connected_to', { name: status.desktop }) : t('console.connected'))}
        {status.kind === 'password' && t('console.password_needed')}
        {status.kind === 'closed' && t('console.closed', { reason: status.reason })}
        {status.kind === 'failed' && t('console.failed', { reason: status.reason })}
      </p>
      {status.kind === 'password' && (
        <form class="console-password" onSubmit={sendPassword}>
          <label for="vnc-password">{t('console.password')}</label>
          <input id="vnc-password" type="password" autoComplete="off" value={password} onInput={(e) => setPassword((e.currentTarget as HTMLInputElement).value)} />
          <button type="submit" class="primary">
            {t('console.send_password')}
          </button>
        </form>
      )}
      <div class="console-screen" ref={screen} data-testid="console-screen" />
      <p class="muted small-print" data-testid="console-keyboard">
        {t('console.keyboard', { keymap: keymap ?? t('console.keymap_default') })}
      </p>
    </section>
  );
}
