// The server's scope rules (uvmm-auth's `authorize`, `Grant::covers`, `ScopePattern` and
// uvmm_model's glob), so the UI can hide a button on a VM the caller's grants do not
// cover. The server still decides every request; this only keeps refused buttons away.
// Both sides are checked against one table of cases,
// crates/uvmm-auth/tests/scope_cases.json (web/tests/scope-cases.mjs here,
// crates/uvmm-auth/tests/scope_cases.rs there), so the two cannot drift apart unnoticed.

import type { Permission, Role } from './api/types';

export interface Grant {
  role: Role;
  hosts: string[] | null;
  vms: string[] | null;
}

/** What a request is about: a host (its id and URI) and a VM name on it. Absent parts
 * mean the request is not about one (a global operation, or a host-level one). */
export interface Target {
  host?: { id: string; uri: string };
  vm?: string;
}

const RANK: Record<Role, number> = { viewer: 1, operator: 2, admin: 3 };

/** uvmm-auth's `Permission::min_role`. */
export const MIN_ROLE: Record<Permission, Role> = {
  read: 'viewer',
  lifecycle: 'operator',
  media: 'operator',
  console: 'operator',
  edit: 'admin',
  create: 'admin',
  delete: 'admin',
  storage: 'admin',
  hosts: 'admin',
  restore: 'admin',
  tokens: 'admin',
  audit: 'admin',
};

type Reach = 'vm' | 'host' | 'global';

/** uvmm-auth's `Permission::reach`: how much of the world a permission's target spans. */
const REACH: Record<Permission, Reach> = {
  read: 'vm',
  lifecycle: 'vm',
  media: 'vm',
  console: 'vm',
  edit: 'vm',
  create: 'vm',
  delete: 'vm',
  restore: 'vm',
  storage: 'host',
  hosts: 'host',
  tokens: 'global',
  audit: 'global',
};

export function roleAllows(role: Role, p: Permission): boolean {
  return RANK[role] >= RANK[MIN_ROLE[p]];
}

/** The first code point of a character's lower case, as Rust's `to_lowercase().next()`. */
function lower(c: string): string {
  const l = c.toLowerCase();
  return l.codePointAt(0) === undefined ? c : String.fromCodePoint(l.codePointAt(0) as number);
}

/** A bracket class at the start of `p`: [matched, its length], or null when unclosed. */
function bracket(p: string[], c: string): [boolean, number] | null {
  let i = 1;
  const negate = p[i] === '!' || p[i] === '^';
  if (negate) i += 1;
  let matched = false;
  let first = true;
  while (i < p.length) {
    if (p[i] === ']' && !first) return [matched !== negate, i + 1];
    first = false;
    if (i + 2 < p.length && p[i + 1] === '-' && p[i + 2] !== ']') {
      // Rust compares chars by code point; so does this (single code points only).
      if ((p[i].codePointAt(0) ?? 0) <= (c.codePointAt(0) ?? 0) && (c.codePointAt(0) ?? 0) <= (p[i + 2].codePointAt(0) ?? 0)) matched = true;
      i += 3;
    } else {
      if (p[i] === c) matched = true;
      i += 1;
    }
  }
  return null;
}

/** uvmm_model's case-insensitive glob; without glob characters a substring match. */
export function globMatches(pattern: string, text: string): boolean {
  const p = Array.from(pattern).map(lower);
  if (!p.some((c) => c === '*' || c === '?' || c === '[')) {
    p.unshift('*');
    p.push('*');
  }
  const t = Array.from(text).map(lower);
  let pi = 0;
  let ti = 0;
  let star: [number, number] | null = null;
  while (ti < t.length) {
    const c = t[ti];
    if (pi < p.length) {
      const pc = p[pi];
      if (pc === '*') {
        star = [pi, ti];
        pi += 1;
        continue;
      }
      if (pc === '?') {
        pi += 1;
        ti += 1;
        continue;
      }
      if (pc === '[') {
        const cls = bracket(p.slice(pi), c);
        if (cls) {
          if (cls[0]) {
            pi += cls[1];
            ti += 1;
            continue;
          }
        } else if (c === '[') {
          pi += 1;
          ti += 1;
          continue;
        }
      } else if (pc === c) {
        pi += 1;
        ti += 1;
        continue;
      }
    }
    if (!star) return false;
    pi = star[0] + 1;
    ti = star[1] + 1;
    star = [star[0], star[1] + 1];
  }
  return p.slice(pi).every((c) => c === '*');
}

/** One pattern of a grant's scope: a glob, or without glob characters an exact name
 * (ignoring case), as uvmm-auth's `ScopePattern`. */
export function scopePatternMatches(pattern: string, name: string): boolean {
  if (/[*?[]/.test(pattern)) return globMatches(pattern, name);
  const fold = (s: string) => Array.from(s).map((c) => c.toLowerCase()).join('');
  return fold(pattern) === fold(name);
}

function scopeMatches(scope: string[] | null, name: string): boolean {
  return scope === null || scope.some((p) => scopePatternMatches(p, name));
}

/** uvmm-auth's `Grant::covers`. */
function covers(g: Grant, p: Permission, target: Target): boolean {
  const hostOk = target.host ? scopeMatches(g.hosts, target.host.id) || scopeMatches(g.hosts, target.host.uri) : g.hosts === null;
  if (!hostOk) return false;
  switch (REACH[p]) {
    case 'global':
      return g.hosts === null && g.vms === null;
    case 'host':
      return g.vms === null;
    case 'vm':
      return target.vm !== undefined ? scopeMatches(g.vms, target.vm) : p === 'read' || g.vms === null;
  }
}

/** uvmm-auth's `authorize`: whether some grant both allows `p` and covers `target`. */
export function authorize(grants: Grant[], p: Permission, target: Target): boolean {
  return grants.some((g) => roleAllows(g.role, p) && covers(g, p, target));
}

/** Whether some grant allows `p` anywhere: for buttons that are not about one VM or host
 * yet (New VM), where the server decides on what the user then picks. */
export function heldAnywhere(grants: Grant[], p: Permission): boolean {
  return grants.some((g) => roleAllows(g.role, p));
}
