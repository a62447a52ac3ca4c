// All traffic between the UI and uvmmd goes through this module: the base URL, how a
// request is authenticated, the CSRF header, and how errors look. Login (issue 13)
// changes this file and the login page, nothing else.
//
// Authentication today (INTERIM, until issue 13): uvmmd's TCP listener takes exactly one
// credential, the API token from its state directory (`Authorization: Bearer TOKEN`, see
// docs/security.md). The login page asks for that token and keeps it in sessionStorage
// (gone when the tab closes; not shared with other tabs or sites). Issue 13 replaces it:
// `POST /api/v1/login` sets an HttpOnly session cookie, and every changing request sends
// the CSRF header. The places to change are marked "ISSUE 13".

import type { UvmmEvent } from './types';

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

// ---- authentication (INTERIM: the API token; ISSUE 13: session cookie + CSRF) ----

const TOKEN_KEY = 'uvmm.interim-api-token';
let unauthorizedHandler: (() => void) | null = null;

export const auth = {
  /** Whether the UI holds a credential to try (the token; with issue 13: a session). */
  loggedIn(): boolean {
    return !!sessionStorage.getItem(TOKEN_KEY);
  },
  /** INTERIM: check a token against the API and keep it for this tab. Throws ApiError
   * (401 for a wrong token). ISSUE 13: becomes `login(user, password)` posting to
   * /api/v1/login. */
  async login(token: string): Promise<void> {
    const t = token.trim();
    const res = await send('GET', `${API_BASE}/version`, { token: t });
    if (!res.ok) throw await errorOf(res);
    sessionStorage.setItem(TOKEN_KEY, t);
  },
  /** ISSUE 13: also `POST /api/v1/logout`. */
  logout(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
  /** Called once by the app: what to do when the server says the credential is bad. */
  onUnauthorized(f: () => void): void {
    unauthorizedHandler = f;
  },
};

function authHeaders(method: string, token?: string): Record<string, string> {
  const h: Record<string, string> = {};
  const t = token ?? sessionStorage.getItem(TOKEN_KEY);
  if (t) h['Authorization'] = `Bearer ${t}`;
  // ISSUE 13: with a session cookie, changing requests carry the CSRF token, e.g.
  // if (method !== 'GET' && method !== 'HEAD') h['X-CSRF-Token'] = csrfToken();
  void method;
  return h;
}

// ---- requests ----

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined | null>;
  ifMatch?: string;
  signal?: AbortSignal;
  token?: string;
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
  const headers: Record<string, string> = { Accept: 'application/json', ...authHeaders(method, o.token) };
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
      // ISSUE 13: 'same-origin' sends the session cookie.
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

/** One API call: the answer's JSON (or text for text/plain answers). Throws ApiError. */
export async function request<T>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
  const res = await send(method, `${API_BASE}${path}`, o);
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401 && unauthorizedHandler) unauthorizedHandler();
    throw err;
  }
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

/** A path segment, encoded. */
export const seg = encodeURIComponent;

// ---- the event stream ----

export type StreamState = 'connecting' | 'live' | 'lost';

/** Follow `GET /api/v1/events` (Server-Sent Events) until `stop()` is called.
 *
 * It is read with fetch, not EventSource, because EventSource cannot send the
 * Authorization header (with issue 13's cookie it could; fetch works with both). A lost
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
          unauthorizedHandler?.();
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
