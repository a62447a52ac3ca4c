// The live picture shared by every page: the event stream, the hosts and the pools.
//
// Pages subscribe to events (useEvents) and to "resync" (useResync: the stream was
// (re)opened or fell behind, reload what you show). Hosts and pools are kept here because
// the header, the overview and the storage page all show them. Events say what changed;
// where an event carries the new object (vm_state, vm_changed carry `vm`) pages use it
// directly, otherwise they reload the affected part, throttled so that a burst of events
// costs one request.

import { useEffect, useRef } from 'preact/hooks';
import { api, followEvents, type StreamState } from './api/client';
import type { DirectoryStatus, HostSummary, PoolSummary, UvmmEvent } from './api/types';
import { toast } from './components/feedback';
import { clearTasks, loadTasks, trackTask } from './components/tasks';
import { t, type Key } from './i18n';
import { createStore } from './store';

export const streamState = createStore<StreamState>('connecting');
export const hosts = createStore<HostSummary[] | null>(null);
export const pools = createStore<PoolSummary[] | null>(null);
/** The LDAP directory's state (directory mode); shown in the header while degraded. */
export const directory = createStore<DirectoryStatus | null>(null);

const eventSubs = new Set<(e: UvmmEvent) => void>();
const resyncSubs = new Set<() => void>();

/** Call `f` at most once per `ms`, at the end of the window (a burst costs one call). */
export function throttle(f: () => void, ms: number): () => void {
  let timer = 0;
  return () => {
    if (timer) return;
    timer = window.setTimeout(() => {
      timer = 0;
      f();
    }, ms);
  };
}

async function loadHosts() {
  try {
    hosts.set(await api.get<HostSummary[]>('/hosts'));
  } catch {
    // The stream state and the pages show connection trouble; keep the last list.
  }
}

async function loadPools() {
  try {
    pools.set(await api.get<PoolSummary[]>('/pools'));
  } catch {
    // As above.
  }
}

async function loadDirectory() {
  try {
    directory.set(await api.get<DirectoryStatus>('/directory'));
  } catch {
    // As above; an older uvmmd has no /directory.
  }
}

const reloadHosts = throttle(loadHosts, 250);
const reloadPools = throttle(loadPools, 250);

let stop: (() => void) | null = null;
let ticker = 0;

/** Start following uvmmd (after login). */
export function startLive(): void {
  if (stop) return;
  stop = followEvents(
    (e) => {
      if (e.kind.startsWith('host_') || e.kind === 'vm_added' || e.kind === 'vm_removed' || e.kind === 'vm_state') {
        reloadHosts();
      }
      if (e.kind === 'pool_alert' || e.kind === 'pool_changed' || e.kind.startsWith('host_')) reloadPools();
      // What needs an administrator's eye is said wherever they are in the UI.
      if (e.kind === 'pool_alert') {
        toast(e.level === 'ok' ? 'info' : 'warning', t('live.pool_alert', { pool: e.pool ?? '', host: e.host_id, level: t(`level.${e.level ?? 'ok'}` as Key) }), e.message ?? undefined);
      } else if (e.kind === 'host_unavailable') {
        toast('warning', t('live.host_unavailable', { host: e.host_id }), e.message ?? undefined, t('hint.host_unavailable'));
      } else if (e.kind === 'host_connected') {
        toast('info', t('live.host_connected', { host: e.host_id }));
      } else if (e.kind === 'directory_state') {
        void loadDirectory();
        toast(e.available === false ? 'warning' : 'info', t(e.available === false ? 'live.directory_down' : 'live.directory_back'), e.message ?? undefined);
      }
      if ((e.kind === 'task_progress' || e.kind === 'task_done') && e.task) trackTask(e.task);
      eventSubs.forEach((f) => f(e));
    },
    (s) => streamState.set(s),
    () => {
      void loadHosts();
      void loadPools();
      void loadDirectory();
      void loadTasks();
      resyncSubs.forEach((f) => f());
    },
  );
  // CPU and memory figures change without events (statistics rounds every 5 s).
  ticker = window.setInterval(() => {
    if (document.visibilityState === 'visible') void loadHosts();
  }, 5000);
}

export function stopLive(): void {
  stop?.();
  stop = null;
  clearInterval(ticker);
  hosts.set(null);
  pools.set(null);
  directory.set(null);
  clearTasks();
}

/** Subscribe a component to events; `f` may change between renders. */
export function useEvents(f: (e: UvmmEvent) => void): void {
  const ref = useRef(f);
  ref.current = f;
  useEffect(() => {
    const g = (e: UvmmEvent) => ref.current(e);
    eventSubs.add(g);
    return () => void eventSubs.delete(g);
  }, []);
}

/** Subscribe a component to resynchronisation (reload everything it shows). */
export function useResync(f: () => void): void {
  const ref = useRef(f);
  ref.current = f;
  useEffect(() => {
    const g = () => ref.current();
    resyncSubs.add(g);
    return () => void resyncSubs.delete(g);
  }, []);
}

export function reloadPoolsNow(): void {
  void loadPools();
}

export function reloadHostsNow(): void {
  void loadHosts();
}
