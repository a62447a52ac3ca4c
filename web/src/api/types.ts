// The JSON types of uvmm's API as the UI uses them: written after crates/uvmm-api
// (whose doc comments say what each field means) and the OpenAPI document at
// /api/v1/openapi.json. Only what the UI reads is typed; the server may send more.

export type VmState =
  | 'running'
  | 'paused'
  | 'shutoff'
  | 'crashed'
  | 'shutdown'
  | 'pmsuspended'
  | 'blocked'
  | 'unknown';

export const VM_STATES: VmState[] = [
  'running',
  'paused',
  'shutoff',
  'crashed',
  'shutdown',
  'pmsuspended',
  'blocked',
  'unknown',
];

export type Action =
  | 'start'
  | 'shutdown'
  | 'stop'
  | 'pause'
  | 'resume'
  | 'suspend'
  | 'reboot'
  | 'reset';

export type Level = 'ok' | 'warning' | 'critical';

export interface HostSummary {
  id: string;
  uri: string;
  status: 'connecting' | 'connected' | 'unavailable';
  available: boolean;
  origin: 'cmdline' | 'config' | 'runtime' | 'directory';
  hostname: string | null;
  driver: string | null;
  cpus: number | null;
  memory_kib: number | null;
  free_memory_kib: number | null;
  vm_count: number;
  running_count: number;
  running_vcpus?: number;
  running_memory_kib?: number;
  cpu_usage?: number | null;
  last_error: string | null;
  since: string;
  retry_in_secs: number | null;
}

export interface GuestCaps {
  os_type: string;
  arch: string;
  domain_types: string[];
  machines: string[];
}

export interface HostDetail extends HostSummary {
  cpu_model: string | null;
  cpu_mhz: number | null;
  capabilities: GuestCaps[];
}

export interface VmSummary {
  name: string;
  uuid: string;
  host: string;
  host_id: string;
  state: VmState;
  reason: string;
  suspended: boolean;
  available: boolean;
  persistent: boolean;
  autostart: boolean;
  memory_kib: number;
  max_memory_kib: number;
  vcpus: number;
  cpu_usage: number;
  vnc_port: number | null;
  description: string | null;
  os_type: string;
  domain_type: string;
}

export interface Disk {
  device: string;
  kind: string;
  target: string;
  bus: string | null;
  source: string | null;
  format: string | null;
  readonly: boolean;
  boot_order: number | null;
}

export interface Nic {
  kind: string;
  source: string | null;
  mac: string | null;
  model: string | null;
  target: string | null;
  boot_order: number | null;
}

export interface Graphics {
  kind: string;
  port: number | null;
  autoport: boolean;
  listen: string | null;
  keymap: string | null;
  password_set: boolean;
}

export interface Pending {
  memory_kib?: number;
  max_memory_kib?: number;
  vcpus?: number;
  domain_type?: string;
  boot_order?: string[];
  disks?: Disk[];
  nics?: Nic[];
  graphics?: Graphics[];
  cpu_model?: string;
  rtc?: string;
}

export interface VmDetail extends VmSummary {
  title: string | null;
  contact: string | null;
  os: string | null;
  arch: string | null;
  machine: string | null;
  bootloader: string | null;
  boot_order: string[];
  disks: Disk[];
  nics: Nic[];
  graphics: Graphics[];
  rtc: string | null;
  cpu_model: string | null;
  etag: string;
  pending: Pending | null;
}

export interface VmPage {
  total: number;
  offset: number;
  limit: number | null;
  items: VmSummary[];
}

export interface VmChangeResponse {
  vm: VmDetail;
  notes: string[];
  warnings: string[];
}

export interface DeleteResponse {
  name: string;
  uuid: string;
  deleted: string[];
  kept: { path: string; reason: string }[];
}

export interface Profile {
  name: string;
  description: string | null;
  name_prefix: string | null;
  domain_type: string;
  os_type: string;
  vcpus: number;
  memory: string;
  disk_size: string | null;
  disk_format: string;
  disk_bus: string;
  network: string | null;
  boot: string[];
}

export interface PoolSummary {
  name: string;
  host: string;
  host_id: string;
  kind: string;
  active: boolean;
  autostart: boolean;
  target_path: string | null;
  source: string | null;
  capacity: number;
  allocation: number;
  available: number;
  provisioned: number;
  volume_count: number;
  level: Level;
  alerts: string[];
  available_host: boolean;
}

export interface VolumeSummary {
  name: string;
  pool: string;
  path: string | null;
  kind: string;
  format: string | null;
  capacity: number;
  allocation: number;
  used_by: string[];
  deletable: boolean;
  keep_reason: string | null;
}

export interface PoolDetail extends PoolSummary {
  volumes: VolumeSummary[];
}

export interface BackupSummary {
  uuid: string;
  name: string;
  host: string;
  hypervisor: string;
  os_type: string;
  version_count: number;
  latest: number;
  last_change: string;
  last_cause: string;
  deleted: boolean;
  old_layout: boolean;
}

export interface VersionMeta {
  version: number;
  time: string;
  host: string;
  name: string;
  hypervisor: string;
  os_type: string;
  cause: string;
  user: string | null;
  deleted: boolean;
  xml_bytes: number;
}

export interface BackupDetail extends BackupSummary {
  versions: VersionMeta[];
}

export interface RestoreReport {
  name: string;
  uuid: string;
  forced: boolean;
  replaced: string | null;
  warnings: string[];
  host: string;
}

export type EventKind =
  | 'host_added'
  | 'host_removed'
  | 'host_connected'
  | 'host_unavailable'
  | 'vm_added'
  | 'vm_removed'
  | 'vm_state'
  | 'vm_changed'
  | 'pool_alert'
  | 'pool_changed'
  | 'directory_state'
  | 'task_progress'
  | 'task_done'
  | 'audit'
  | 'resync';

/** GET /api/v1/directory: standalone, or the LDAP directory's state. */
export interface DirectoryStatus {
  mode: 'standalone' | 'directory' | string;
  uri: string | null;
  online: boolean;
  degraded: boolean;
  degraded_reason: string | null;
  degraded_since: number | null;
  from_cache: boolean;
  state_time: number | null;
  pending_writes: number;
  method: string | null;
  refresh_interval_secs: number | null;
  hosts: number;
  profiles: number;
  /** Host entries not connected: their URI fails the runtime host policy. */
  refused_hosts: { uri: string; reason: string }[];
}

export interface UvmmEvent {
  seq: number;
  time: string;
  kind: EventKind;
  host: string;
  host_id: string;
  uuid: string | null;
  name: string | null;
  state: VmState | null;
  previous_state: VmState | null;
  available: boolean | null;
  message: string | null;
  vm: VmSummary | null;
  pool?: string;
  level?: Level;
  /** task_progress, task_done: the task as it is now. */
  task?: Task | null;
  /** `audit` events (admins only): the audit record. */
  audit?: Record<string, unknown>;
}

/** GET /api/v1/whoami (and the answer of POST /api/v1/login, with `csrf`). */
export interface WhoAmI {
  user: string;
  via: 'session' | 'token' | 'legacy_token' | 'unix_peer' | string;
  role: Role | null;
  grants: { role: Role; hosts: string[] | null; vms: string[] | null }[];
  csrf: string | null;
}

export type Role = 'viewer' | 'operator' | 'admin';

/** What a route needs (uvmm-auth's `Permission`). */
export type Permission = 'read' | 'lifecycle' | 'media' | 'console' | 'edit' | 'create' | 'delete' | 'storage' | 'hosts' | 'restore' | 'tokens' | 'audit';

/** A long operation (GET /api/v1/tasks/{id}; task_progress and task_done events). */
export interface Task {
  id: string;
  kind: 'volume_clone' | 'vm_suspend' | 'vm_migrate' | 'host_evacuate' | 'snapshot_create' | 'snapshot_revert' | 'snapshot_delete' | 'vm_clone' | string;
  state: 'running' | 'cancelling' | 'succeeded' | 'failed' | 'cancelled';
  host: string;
  host_id: string;
  target: string;
  uuid: string | null;
  user: string;
  started: string;
  ended: string | null;
  percent: number | null;
  bytes_done: number | null;
  bytes_total: number | null;
  cancel: 'abort' | 'undo' | 'none';
  result: unknown;
  error: { code: string; message: string } | null;
  migration?: { phase: string } | null;
}

/** GET /api/v1/vms/{uuid}/snapshots. */
export interface Snapshot {
  name: string;
  parent: string | null;
  current: boolean;
  kind: 'internal' | 'external';
  state: string;
  description: string | null;
  created: string;
  memory: boolean;
  depth: number;
}

/** POST /api/v1/vms/{uuid}/migrate, when done. */
export interface MigrateResult {
  uuid: string;
  name: string;
  from: string;
  to: string;
  live: boolean;
  duration_ms: number;
  notes: string[];
  warnings: string[];
}
