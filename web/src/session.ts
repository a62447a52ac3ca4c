// What the logged-in user's role allows, for hiding what it may not do. The server
// decides every request regardless (a forced request answers 403): this only keeps
// buttons away that would be refused.
//
// The table is uvmm-auth's `Permission::min_role`. It looks at the highest role only, not
// at a grant's host or VM scope: a user whose operator grant covers some VMs sees the
// lifecycle buttons on all of them, and the server refuses the others in words.

import { me } from './api/client';
import type { Permission, Role } from './api/types';
import { useStore } from './store';

const RANK: Record<Role, number> = { viewer: 1, operator: 2, admin: 3 };

const MIN_ROLE: Record<Permission, Role> = {
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

/** Whether the logged-in user's role includes `p`. */
export function can(p: Permission): boolean {
  const role = me.get()?.role;
  return !!role && RANK[role] >= RANK[MIN_ROLE[p]];
}

/** `can`, re-rendering the component when the login changes. */
export function useCan(): (p: Permission) => boolean {
  useStore(me);
  return can;
}
