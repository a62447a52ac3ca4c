// A tiny router over the History API. uvmmd answers every path outside /api/ with
// index.html, so pages can be reloaded and linked: /, /vms/HOST/UUID[/tab], /create,
// /storage, /backups, /login.

import { useEffect, useState } from 'preact/hooks';

type Listener = () => void;
const listeners = new Set<Listener>();

export function navigate(to: string, replace = false): void {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  listeners.forEach((l) => l());
}

window.addEventListener('popstate', () => listeners.forEach((l) => l()));

/** The current path, split into decoded segments. */
export function useRoute(): string[] {
  const [, setTick] = useState(0);
  useEffect(() => {
    const l = () => setTick((n) => n + 1);
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return location.pathname
    .split('/')
    .filter(Boolean)
    .map((s) => decodeURIComponent(s));
}

/** Follow a link inside the app without reloading (plain clicks only). */
export function onLinkClick(e: MouseEvent): void {
  const a = (e.currentTarget as HTMLAnchorElement) ?? null;
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href') ?? '/');
}

export function vmPath(hostId: string, uuid: string, tab?: string): string {
  const base = `/vms/${encodeURIComponent(hostId)}/${encodeURIComponent(uuid)}`;
  return tab ? `${base}/${tab}` : base;
}
