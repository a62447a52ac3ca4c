// All traffic between the UI and uvmmd goes through this module: the base URL, how a
// request is authenticated, the CSRF header, and how errors look.
//
// Authentication: `POST /api/v1/login` with a local account's user name and password
// (PAM service `uvmm`) sets uvmmd's HttpOnly, SameSite=Strict session cookie and answers
// the session's CSRF token, which every changing request sends as `X-CSRF-Token`. The UI
// keeps that token (not the cookie, which scripts cannot read) in sessionStorage: gone
// when the tab closes, not shared with other tabs or sites. A second, secondary way in is
// an API token (`Authorization: Bearer`), kept the same way; a token needs no CSRF token.
// `GET /api/v1/whoami` says who is logged in and with which role (`me`): the UI hides
// what that role may not do, and the server checks every request regardless.

import { createStore } from '../store';
import type { Task, UvmmEvent, WhoAmI } from './types';

/** Where the API is: the same origin that served the UI. */
export const API_BASE = '/api/v1';

/** An error answer of the API (`{"error": {"code", "message", "details"}}`) or a failed
 * connection (`code` = `network`). */
export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public details?: unknown,
  ) {
    super(message);
  }
}

// ---- authentication ----

const CSRF_KEY = 'uvmm.csrf';
const TOKEN_KEY = 'uvmm.api-token';
let unauthorizedHandler: ((e: ApiError) => void) | null = null;

/** Who is logged in (null: nobody, or not known yet). */
export const me = createStore<WhoAmI | null>(null);

export const auth = {
  /** Whether this tab holds a session (its CSRF token) or an API token to try. */
  hasCredential(): boolean {
    return !!sessionStorage.getItem(CSRF_KEY) || !!sessionStorage.getItem(TOKEN_KEY);
  },
  /** The websocket subprotocols that carry this tab's credentials: a browser's WebSocket
   * sends the session cookie by itself but cannot send `Authorization`, so an API token
   * travels as the subprotocol `uvmm.bearer.TOKEN` (uvmmd answers `binary`, never the
   * token). */
  /** `Authorization` for a request made outside `api` (the console's plain GET). */
  authorization(): Record<string, string> {
    const tok = sessionStorage.getItem(TOKEN_KEY);
    return tok ? { Authorization: `Bearer ${tok}` } : {};
  },
  websocketProtocols(): string[] {
    const tok = sessionStorage.getItem(TOKEN_KEY);
    return tok ? ['binary', `uvmm.bearer.${tok}`] : ['binary'];
  },
  /** Log in with user name and password. Throws ApiError (401 for a wrong password,
   * 429 after too many failures, 503 when PAM is not set up). */
  async login(user: string, password: string): Promise<WhoAmI> {
    this.forget();
    const res = await send('POST', `${API_BASE}/login`, { body: { user, password } });
    if (!res.ok) throw await errorOf(res);
    const who = (await res.json()) as WhoAmI;
    if (who.csrf) sessionStorage.setItem(CSRF_KEY, who.csrf);
    me.set(who);
    return who;
  },
  /** The secondary way in: an API token, checked against /whoami. */
  async loginToken(token: string): Promise<WhoAmI> {
    this.forget();
    const tok = token.trim();
    const res = await send('GET', `${API_BASE}/whoami`, { token: tok });
    if (!res.ok) throw await errorOf(res);
    sessionStorage.setItem(TOKEN_KEY, tok);
    const who = (await res.json()) as WhoAmI;
    me.set(who);
    return who;
  },
  /** After a reload or in a new tab: whether the kept token or the browser's session
   * cookie still works (and who it is). A session's CSRF token comes back with it, so a
   * second tab needs no second login. */
  async resume(): Promise<WhoAmI | null> {
    const had = this.hasCredential();
    const res = await send('GET', `${API_BASE}/whoami`, {});
    if (!res.ok) {
      this.forget();
      // Nothing kept in this tab and no live cookie: simply not logged in yet.
      if (!had && res.status === 401) return null;
      throw await errorOf(res);
    }
    const who = (await res.json()) as WhoAmI;
    if (who.csrf) sessionStorage.setItem(CSRF_KEY, who.csrf);
    me.set(who);
    return who;
  },
  /** Forget the login here, then end the session on the server (best effort). Forgotten
   * first: a request still under way that the ended session makes fail is then not taken
   * for an expiry. */
  async logout(): Promise<void> {
    const csrf = sessionStorage.getItem(CSRF_KEY);
    this.forget();
    if (csrf) await send('POST', `${API_BASE}/logout`, { csrf }).catch(() => undefined);
  },
  /** Forget the credential of this tab (the server already refused it). */
  forget(): void {
    sessionStorage.removeItem(CSRF_KEY);
    sessionStorage.removeItem(TOKEN_KEY);
    me.set(null);
  },
  /** Called once by the app: what to do when the server says the credential is bad
   * (expired session, revoked token). */
  onUnauthorized(f: (e: ApiError) => void): void {
    unauthorizedHandler = f;
  },
};

function authHeaders(method: string, token?: string, csrfToken?: string): Record<string, string> {
  const h: Record<string, string> = {};
  const tok = token ?? sessionStorage.getItem(TOKEN_KEY);
  if (tok) h['Authorization'] = `Bearer ${tok}`;
  const csrf = csrfToken ?? sessionStorage.getItem(CSRF_KEY);
  if (csrf && method !== 'GET' && method !== 'HEAD') h['X-CSRF-Token'] = csrf;
  return h;
}

// ---- requests ----

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined | null>;
  ifMatch?: string;
  signal?: AbortSignal;
  token?: string;
  csrf?: string;
}

function url(path: string, query?: RequestOptions['query']): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

async function send(method: string, fullPath: string, o: RequestOptions): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json', ...authHeaders(method, o.token, o.csrf) };
  let body: string | undefined;
  if (o.body !== undefined) {
    // uvmmd refuses bodies that are not declared JSON (cross-site protection).
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(o.body);
  }
  if (o.ifMatch) headers['If-Match'] = o.ifMatch;
  try {
    return await fetch(url(fullPath, o.query), {
      method,
      headers,
      body,
      signal: o.signal,
      // Sends the session cookie.
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', String(e instanceof Error ? e.message : e));
  }
}

async function errorOf(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = res.statusText;
  let details: unknown;
  try {
    const j = await res.json();
    if (j && j.error) {
      code = j.error.code ?? code;
      message = j.error.message ?? message;
      details = j.error.details;
    }
  } catch {
    // Not JSON (a proxy's page): keep the status line.
  }
  return new ApiError(res.status, code, message, details);
}

async function checked(method: string, path: string, o: RequestOptions): Promise<Response> {
  const res = await send(method, `${API_BASE}${path}`, o);
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401 && unauthorizedHandler) unauthorizedHandler(err);
    throw err;
  }
  return res;
}

/** One API call: the answer's JSON (or text for text/plain answers). Throws ApiError. */
export async function request<T>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
  const res = await checked(method, path, o);
  if (res.status === 204) return undefined as T;
  const type = res.headers.get('Content-Type') ?? '';
  if (type.startsWith('application/json')) return (await res.json()) as T;
  return (await res.text()) as unknown as T;
}

export const api = {
  get: <T>(path: string, o?: RequestOptions) => request<T>('GET', path, o),
  post: <T>(path: string, body?: unknown, o?: RequestOptions) => request<T>('POST', path, { ...o, body }),
  put: <T>(path: string, body?: unknown, o?: RequestOptions) => request<T>('PUT', path, { ...o, body }),
  patch: <T>(path: string, body?: unknown, o?: RequestOptions) => request<T>('PATCH', path, { ...o, body }),
  del: <T>(path: string, o?: RequestOptions) => request<T>('DELETE', path, o),
};

/** Start an operation that may become a task (`?wait=false`): `task` when uvmmd answered
 * 202 (follow it on the event stream), `done` with the answer when it finished at once. */
export async function startTask<T>(path: string, body: unknown, query: RequestOptions['query']): Promise<{ task: Task } | { done: T }> {
  const res = await checked('POST', path, { body, query: { ...query, wait: false } });
  const json = await res.json();
  return res.status === 202 ? { task: json as Task } : { done: json as T };
}

/** A path segment, encoded. */
export const seg = encodeURIComponent;

// ---- the event stream ----

export type StreamState = 'connecting' | 'live' | 'lost';

/** Follow `GET /api/v1/events` (Server-Sent Events) until `stop()` is called.
 *
 * It is read with fetch, not EventSource, because EventSource cannot send the
 * Authorization header of an API-token login (fetch works with both ways in). A lost
 * stream (error, end, or no byte for 45 s although the server sends a keep-alive every
 * 15 s) is reopened with back-off; every (re)connection calls `onOpen`, after which the
 * caller reloads what it shows, since events in between are lost. A `resync` event is
 * reported the same way; a gap in the sequence numbers is not a loss (the server leaves
 * out what this caller may not see). */
export function followEvents(
  onEvent: (e: UvmmEvent) => void,
  onState: (s: StreamState) => void,
  onResync: () => void,
): () => void {
  let stopped = false;
  let controller: AbortController | null = null;
  let delay = 500;

  const run = async () => {
    while (!stopped) {
      onState('connecting');
      controller = new AbortController();
      const ctl = controller;
      let watchdog = 0;
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = window.setTimeout(() => ctl.abort(), 45_000);
      };
      try {
        arm();
        const res = await send('GET', `${API_BASE}/events`, { signal: ctl.signal });
        if (res.status === 401) {
          unauthorizedHandler?.(await errorOf(res));
          return;
        }
        if (!res.ok || !res.body) throw await errorOf(res);
        onState('live');
        onResync();
        delay = 500;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          arm();
          buf += value.replace(/\r\n?/g, '\n');
          let cut: number;
          while ((cut = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const data = block
              .split('\n')
              .filter((l) => l.startsWith('data:'))
              .map((l) => l.slice(5).replace(/^ /, ''))
              .join('\n');
            if (!data) continue;
            let ev: UvmmEvent;
            try {
              ev = JSON.parse(data);
            } catch {
              continue;
            }
            // Only `resync` means lost events: a gap in `seq` is an event this caller
            // may not see (another's VM, an audit record), not a lost one.
            if (ev.kind === 'resync') onResync();
            else onEvent(ev);
          }
        }
      } catch {
        // Lost: fall through to the retry below.
      } finally {
        clearTimeout(watchdog);
      }
      if (stopped) return;
      onState('lost');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 8_000);
    }
  };
  void run();
  return () => {
    stopped = true;
    controller?.abort();
  };
}
