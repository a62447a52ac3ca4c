// The storage of one host as the VM pages need it: its pools with their volumes, and a
// lookup from an image path to its volume (sizes, users, whether uvmm may delete it).

import { api, seg } from './api/client';
import type { PoolDetail, PoolSummary, VolumeSummary } from './api/types';

export interface HostStorage {
  pools: PoolDetail[];
  byPath: Map<string, { pool: PoolDetail; vol: VolumeSummary }>;
}

export async function loadHostStorage(hostId: string, signal?: AbortSignal): Promise<HostStorage> {
  const list = await api.get<PoolSummary[]>('/pools', { query: { host: hostId }, signal });
  const pools = await Promise.all(
    list
      .filter((p) => p.active)
      .map((p) => api.get<PoolDetail>(`/hosts/${seg(hostId)}/pools/${seg(p.name)}`, { signal })),
  );
  const byPath = new Map<string, { pool: PoolDetail; vol: VolumeSummary }>();
  for (const pool of pools) {
    for (const vol of pool.volumes) {
      if (vol.path) byPath.set(vol.path, { pool, vol });
      byPath.set(`${pool.name}/${vol.name}`, { pool, vol });
    }
  }
  return { pools, byPath };
}

/** Pool types whose volumes uvmm deletes (uvmm-model's `pool_allows_delete`; the server
 * applies the rule again, this only decides what the dialogs offer). */
const DELETABLE_KINDS = ['dir', 'fs', 'netfs', 'logical', 'disk', 'zfs', 'rbd', 'gluster', 'vstorage'];

/** Whether an image may be deleted together with VM `who` (`name@host-id`), and if not,
 * why: not in a pool, a pool whose volumes uvmm keeps, or used by another VM (shared). */
export function deletableWith(
  s: HostStorage,
  path: string,
  who: string,
): { ok: true; size: number } | { ok: false; why: 'outside' | 'kind' | 'shared'; others?: string[] } {
  const hit = s.byPath.get(path);
  if (!hit) return { ok: false, why: 'outside' };
  if (!DELETABLE_KINDS.includes(hit.pool.kind)) return { ok: false, why: 'kind' };
  const others = hit.vol.used_by.filter((u) => u !== who);
  if (others.length) return { ok: false, why: 'shared', others };
  return { ok: true, size: hit.vol.capacity };
}

/** A volume a CD-ROM drive can hold: an ISO image (libvirt's probe says `iso`, or the
 * name ends in .iso). Disk images (qcow2, raw .img, ...) are not offered as media:
 * inserting a VM's disk as a CD is never what was meant. */
export function isMedium(v: VolumeSummary): boolean {
  return v.format === 'iso' || /\.iso$/i.test(v.name);
}

/** The installation media of a host, by name. */
export function isoVolumes(s: HostStorage): { pool: string; vol: VolumeSummary }[] {
  const out: { pool: string; vol: VolumeSummary }[] = [];
  for (const p of s.pools) for (const v of p.volumes) if (isMedium(v)) out.push({ pool: p.name, vol: v });
  return out.sort((a, b) => a.vol.name.localeCompare(b.vol.name) || a.pool.localeCompare(b.pool));
}
