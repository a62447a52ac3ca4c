// Translations: English and German (the original UVMM's administrators speak German).
// Every visible string of the UI is a key of locales/en.json; locales/de.json has the same
// keys (tests/i18n-keys.mjs fails the build otherwise, and checks that every key used in
// the code exists). Texts that come from the server (its error messages, warnings and
// notes, VM names and notes) are shown as they are.

import en from './locales/en.json';
import de from './locales/de.json';

export type Key = keyof typeof en;
export type Lang = 'en' | 'de';
export const LANGS: Lang[] = ['en', 'de'];

const tables: Record<Lang, Record<string, string>> = { en, de };
const STORE_KEY = 'uvmm.lang';

/** The language: the user's choice, else the browser's preference, else English. */
export function initialLang(): Lang {
  const chosen = localStorage.getItem(STORE_KEY);
  if (chosen === 'en' || chosen === 'de') return chosen;
  for (const l of navigator.languages ?? [navigator.language]) {
    const base = l.toLowerCase().split('-')[0];
    if (base === 'de' || base === 'en') return base;
  }
  return 'en';
}

let current: Lang = 'en';
let numbers = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });

export function setLang(l: Lang, remember: boolean): void {
  current = l;
  numbers = new Intl.NumberFormat(l, { maximumFractionDigits: 1 });
  document.documentElement.lang = l;
  if (remember) localStorage.setItem(STORE_KEY, l);
}

export function lang(): Lang {
  return current;
}

/** The text for `key`, with `{name}` placeholders filled from `params`. */
export function t(key: Key, params?: Record<string, string | number>): string {
  const s = tables[current][key] ?? tables.en[key] ?? key;
  if (!params) return s;
  return s.replace(/\{(\w+)\}/g, (m, k: string) =>
    k in params ? (typeof params[k] === 'number' ? numbers.format(params[k] as number) : String(params[k])) : m,
  );
}

/** Keys that come in `_one` and `_other` forms. */
type PluralBase<K> = K extends `${infer B}_one` ? B : never;
export type PluralKey = PluralBase<Key>;

/** The form of `key` for the count `n` (`{n}` is filled in). */
export function tn(key: PluralKey, n: number, params?: Record<string, string | number>): string {
  const form = new Intl.PluralRules(current).select(n) === 'one' ? 'one' : 'other';
  return t(`${key}_${form}` as Key, { n, ...params });
}

/** A number in the language's format (one decimal at most). */
export function num(n: number): string {
  return numbers.format(n);
}

/** A time stamp (RFC 3339) in the language's format. */
export function when(rfc3339: string): string {
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return rfc3339;
  return d.toLocaleString(current, { dateStyle: 'medium', timeStyle: 'medium' });
}
