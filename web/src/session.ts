// What the logged-in user's grants allow, for hiding what they may not do. The server
// decides every request regardless (a forced request answers 403): this only keeps
// buttons away that would be refused.
//
// With a target (a VM and its host, or a host) the grants' host and VM scopes count as on
// the server (scope.ts, checked against the server's own table of cases); without one the
// question is whether the user holds the permission anywhere (New VM, where the server
// decides on the host and name picked in the wizard).

import { me } from './api/client';
import type { Permission } from './api/types';
import { authorize, heldAnywhere, type Target } from './scope';
import { useStore } from './store';

export type { Target } from './scope';

/** Whether the logged-in user may do `p`, on `target` when given. */
export function can(p: Permission, target?: Target): boolean {
  const who = me.get();
  if (!who) return false;
  return target ? authorize(who.grants, p, target) : heldAnywhere(who.grants, p);
}

/** The target of a request about `vm`: its host (id and URI) and its name. */
export function vmTarget(vm: { host: string; host_id: string; name: string }): Target {
  return { host: { id: vm.host_id, uri: vm.host }, vm: vm.name };
}

/** The target of a host-level request (storage, host settings) on `host`. */
export function hostTarget(host: { id: string; uri: string }): Target {
  return { host: { id: host.id, uri: host.uri } };
}

/** `can`, re-rendering the component when the login changes. */
export function useCan(): (p: Permission, target?: Target) => boolean {
  useStore(me);
  return can;
}
