// Shared by the browser tests (run.mjs) and the benchmark (bench/first-paint.mjs): start a
// real uvmmd, talk to its API as a second client, drive Debian's Chromium headless.
// Nothing here mocks the API: every request goes to the uvmmd this starts.

import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync, openSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll `f` until it returns a truthy value; throw after `ms` saying what was awaited. */
export async function until(f, what, ms = 10_000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(50);
  }
}

/** A uvmmd process on `hosts` with its own state, backup and socket directory, listening
 * on 127.0.0.1:PORT. `restart()` keeps the state directory (and so the API token). */
export class Uvmmd {
  constructor({ bin, hosts, config = '', dir, directory = '', accounts = null }) {
    this.bin = bin;
    // LocalAccounts whose `[auth]` table is in `config`: `login()` uses its admin.
    this.accounts = accounts;
    // -b: '' is standalone (the seed's meaning), an ldap:// URI is directory mode.
    this.directory = directory;
    this.hosts = hosts;
    this.dir = dir ?? mkdtempSync(join(tmpdir(), 'uvmm-web-'));
    this.ownDir = !dir;
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(join(this.dir, 'uvmmd.toml'), config);
    this.child = null;
  }

  async start() {
    this.port ??= await freePort();
    const args = [
      '-b', this.directory,
      '-u', join(this.dir, 'uvmm.sock'),
      '-c', join(this.dir, 'state'),
      '--config', join(this.dir, 'uvmmd.toml'),
      '--backup-dir', join(this.dir, 'backups'),
      '-s', `127.0.0.1:${this.port}`,
      // Plain HTTP on loopback (the browser test has no certificate to trust).
      '--plain-http',
      '--audit-log', join(this.dir, 'audit.log'),
      ...this.hosts,
    ];
    const log = openSync(join(this.dir, 'uvmmd.log'), 'a');
    this.child = spawn(this.bin, args, { stdio: ['ignore', 'ignore', log], env: { ...process.env, UVMM_LOG: 'info' } });
    this.exited = new Promise((r) => this.child.once('exit', r));
    const tokenFile = join(this.dir, 'state', 'api-token');
    await until(() => existsSync(tokenFile), 'the API token file', 20_000);
    this.token = readFileSync(tokenFile, 'utf8').trim();
    this.url = `http://127.0.0.1:${this.port}`;
    await until(async () => (await fetch(`${this.url}/api/v1/version`, { headers: this.headers() })).ok, 'uvmmd to answer', 20_000);
    await until(async () => (await this.get('/hosts')).every((h) => h.status !== 'connecting'), 'hosts to connect', 30_000);
    return this;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.token}`, ...extra };
  }

  /** One API call as a second client; throws with the server's message on errors. */
  async api(method, path, body, { query } = {}) {
    const q = query ? `?${new URLSearchParams(query)}` : '';
    const res = await fetch(`${this.url}/api/v1${path}${q}`, {
      method,
      headers: this.headers(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    const json = text && res.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : text;
    if (!res.ok) {
      const err = new Error(`${method} ${path}: ${res.status} ${json?.error?.message ?? text}`);
      err.status = res.status;
      throw err;
    }
    return json;
  }

  get(path, query) {
    return this.api('GET', path, undefined, { query });
  }

  /** The VM called `name` on host id `host`. */
  async vm(name, host) {
    const page = await this.get('/vms', { name, host });
    if (page.items.length !== 1) throw new Error(`no single VM ${name} on ${host}`);
    return this.get(`/vms/${page.items[0].uuid}`, { host });
  }

  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }

  async restart() {
    await this.stop();
    await this.start();
  }

  log() {
    try {
      return readFileSync(join(this.dir, 'uvmmd.log'), 'utf8');
    } catch {
      return '';
    }
  }

  cleanup() {
    if (this.ownDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Debian's Chromium through playwright-core (no browser download: the path is given). */
export async function launchChromium() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (scripts/test.sh does)`);
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Local accounts for the logins (PAM service `uvmm`), one per role, each in a group of
 * its own that the `[auth]` table (`authConfig()`) maps to the role. Created with
 * groupadd, useradd and chpasswd as CI runs the tests (as root), with random passwords;
 * `remove()` deletes them (and leftovers of an interrupted run are replaced at start). */
export class LocalAccounts {
  constructor(prefix = 'uvmm-ui-') {
    if (process.getuid?.() !== 0) throw new Error('the browser tests create local accounts (useradd) for PAM logins and need root, as CI runs them');
    this.prefix = prefix;
    // uvmmd refuses PAM logins without its service file: the package's, as the package
    // installs it (and as crates/uvmm-daemon/tests/common/remote.rs does).
    this.pamFile = '/etc/pam.d/uvmm';
    this.pamCreated = !existsSync(this.pamFile);
    if (this.pamCreated) copyFileSync(join(import.meta.dirname, '../../packaging/debian/uvmm-daemon.uvmm.pam'), this.pamFile);
    this.users = {};
    // `scoped` has no group role: its grants (authConfig) make it a viewer everywhere and
    // an operator of the web-* VMs on demo-kvm1 only.
    for (const role of ['admin', 'operator', 'viewer', 'scoped']) {
      const user = `${prefix}${role}`;
      const group = `${prefix}${role}s`;
      this.drop(user, group);
      execFileSync('groupadd', [group]);
      execFileSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', '--groups', group, user]);
      const password = randomBytes(12).toString('base64url');
      execFileSync('chpasswd', [], { input: `${user}:${password}\n` });
      this.users[role] = { user, password, group };
    }
  }

  drop(user, group) {
    for (const [cmd, args] of [['userdel', ['-f', user]], ['groupdel', [group]]]) {
      try {
        execFileSync(cmd, args, { stdio: 'ignore' });
      } catch {
        // Not there: nothing to remove.
      }
    }
  }

  /** The `[auth]` table that gives each account its role (`scoped`: by its grants). */
  authConfig() {
    const g = (r) => JSON.stringify([this.users[r].group]);
    return `[auth]
failure_delay_ms = 200
[auth.unix_groups]
admin = ${g('admin')}
operator = ${g('operator')}
viewer = ${g('viewer')}
[[auth.grant]]
user = "${this.users.scoped.user}"
role = "viewer"
[[auth.grant]]
user = "${this.users.scoped.user}"
role = "operator"
hosts = ["demo-kvm1"]
vms = ["web-*"]
`;
  }

  remove() {
    for (const { user, group } of Object.values(this.users)) this.drop(user, group);
    if (this.pamCreated) rmSync(this.pamFile, { force: true });
  }
}

/** Log in through the UI's login page with user name and password. */
export async function login(page, uvmmd, account = uvmmd.accounts?.users.admin) {
  if (!account) return loginWithToken(page, uvmmd);
  await page.goto(`${uvmmd.url}/`);
  await page.fill('#user', account.user);
  await page.fill('#password', account.password);
  await page.click('form.login-form button[type=submit]');
  await page.waitForSelector('[data-testid=vm-grid] .grid-row[data-vm]');
}

/** Log in with the API token (the secondary way in, "Use an API token instead"). */
export async function loginWithToken(page, uvmmd) {
  await page.goto(`${uvmmd.url}/`);
  await page.click('[data-testid=login-mode]');
  await page.fill('#token', uvmmd.token);
  await page.click('form.login-form button[type=submit]');
  await page.waitForSelector('[data-testid=vm-grid] .grid-row[data-vm]');
}
