// Sizes and figures as people read them. Sizes are binary (KiB, MiB, GiB: what libvirt
// and the CLI use).

import { num } from './i18n';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

export function bytes(n: number): string {
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${num(v)} ${UNITS[i]}`;
}

export function kib(n: number): string {
  return bytes(n * 1024);
}

export function percent(part: number, whole: number): number {
  if (!whole || whole <= 0) return 0;
  return Math.max(0, Math.min(100, (part / whole) * 100));
}

/** "20GiB", "512 MiB", "1.5 G", "4096" (MiB) → bytes; null when it is not a size. */
export function parseSize(text: string, defaultUnit: 'MiB' | 'GiB' = 'GiB'): number | null {
  const m = /^\s*(\d+(?:[.,]\d+)?)\s*([kmgtp]?)(i?b?)\s*$/i.exec(text);
  if (!m) return null;
  const value = Number(m[1].replace(',', '.'));
  const unit = m[2].toLowerCase() || (defaultUnit === 'GiB' ? 'g' : 'm');
  const power = { k: 1, m: 2, g: 3, t: 4, p: 5 }[unit] ?? 0;
  const result = Math.round(value * 1024 ** power);
  return Number.isFinite(result) && result > 0 ? result : null;
}

/** A profile's size text ("4GiB") in bytes, or null. */
export function profileSize(text: string | null): number | null {
  return text ? parseSize(text) : null;
}
