// The VNC console in Debian's Chromium against a real QEMU (TCG) guest: run by
// crates/uvmm-daemon/tests/console.rs, which starts a real libvirtd with the guest, the
// local accounts and uvmmd, and passes:
//   UVMM_URL     uvmmd's plain-HTTP loopback listener
//   OPERATOR     user:password of an operator (PAM), VIEWER the same for a viewer
//   VM_NAME, VM_UUID, VM_HOST   the running guest
//   PW_VM_UUID, VNC_PASSWORD    a running guest on the same host whose VNC has a password
//   SCREENSHOT   optional: write the console page there (docs/screenshots/console.png)
//   CHROMIUM     default /usr/bin/chromium
//
//   OPERATOR_TOKEN  an API token of an operator (the UI's "Use an API token instead")
//
// The websocket authenticates with the session cookie of the UI's login, or with the API
// token as its subprotocol `uvmm.bearer.TOKEN` (a browser cannot send an Authorization
// header with a websocket).

import { launchChromium, login, loginWithToken, until } from './harness.mjs';

const env = process.env;
for (const k of ['UVMM_URL', 'OPERATOR', 'OPERATOR_TOKEN', 'VIEWER', 'VM_NAME', 'VM_UUID', 'VM_HOST', 'PW_VM_UUID', 'VNC_PASSWORD']) {
  if (!env[k]) {
    console.error(`${k} is not set (crates/uvmm-daemon/tests/console.rs sets it)`);
    process.exit(2);
  }
}
const uvmmd = { url: env.UVMM_URL };
const consolePath = `/vms/${encodeURIComponent(env.VM_HOST)}/${encodeURIComponent(env.VM_UUID)}/console`;

/** A fresh browser context logged in to the UI as `who` (user:password). */
async function session(browser, who) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  const [user, password] = who.split(':');
  await login(page, uvmmd, { user, password });
  return { context, page };
}

/** How many different colours the console's canvas shows (a sample of its pixels). */
function canvasColours(page) {
  return page.evaluate(() => {
    const c = document.querySelector('[data-testid=console-screen] canvas');
    if (!c || c.width < 100 || c.height < 100) return 0;
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const seen = new Set();
    for (let i = 0; i < data.length; i += 4 * 7) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    return seen.size;
  });
}

const tests = [
  [
    'an operator opens the console from the grid and sees the guest screen; Ctrl-Alt-Del, disconnect and reconnect work',
    async (browser) => {
      const { context, page } = await session(browser, env.OPERATOR);
      const button = page.locator(`.grid-row[data-vm="${env.VM_NAME}"] [data-testid=console-link]`);
      await button.waitFor({ timeout: 10_000 });
      await button.click();
      await page.waitForURL((u) => u.pathname === consolePath);
      const status = page.locator('[data-testid=console-status]');
      await until(async () => (await status.getAttribute('data-state')) === 'connected', 'the console to connect', 20_000);
      // SeaBIOS writes its banner and "No bootable device" within seconds under TCG.
      const colours = await until(async () => {
        const n = await canvasColours(page);
        return n > 1 ? n : 0;
      }, 'the guest screen on the canvas (more than one colour)', 30_000);
      console.log(`  canvas shows ${colours} colours in its sample`);
      const cad = page.locator('[data-testid=console-cad]');
      if (await cad.isDisabled()) throw new Error('Ctrl-Alt-Del is disabled while connected');
      await cad.click();
      if (env.SCREENSHOT) {
        await page.waitForTimeout(500);
        await page.screenshot({ path: env.SCREENSHOT });
      }
      await page.locator('[data-testid=console-disconnect]').click();
      await until(async () => (await status.getAttribute('data-state')) === 'closed', 'disconnected', 10_000);
      await page.locator('[data-testid=console-reconnect]').click();
      await until(async () => (await status.getAttribute('data-state')) === 'connected', 'reconnected', 20_000);
      await until(async () => (await canvasColours(page)) > 1, 'the screen again after reconnecting', 20_000);
      await context.close();
    },
  ],
  [
    'the VM page has a Console button that opens the same console',
    async (browser) => {
      const { context, page } = await session(browser, env.OPERATOR);
      await page.goto(`${uvmmd.url}/vms/${encodeURIComponent(env.VM_HOST)}/${encodeURIComponent(env.VM_UUID)}`);
      await page.locator('.vm-actions [data-action=console]').click();
      await page.waitForURL((u) => u.pathname === consolePath);
      const status = page.locator('[data-testid=console-status]');
      await until(async () => (await status.getAttribute('data-state')) === 'connected', 'the console to connect', 20_000);
      const note = await page.locator('[data-testid=console-keyboard]').textContent();
      if (!/scancode/i.test(note)) throw new Error(`no keyboard note: ${note}`);
      await context.close();
    },
  ],
  [
    'a browser logged in with an operator\'s API token opens the console too',
    async (browser) => {
      const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
      const page = await context.newPage();
      await loginWithToken(page, { url: uvmmd.url, token: env.OPERATOR_TOKEN });
      await page.goto(`${uvmmd.url}${consolePath}`);
      const status = page.locator('[data-testid=console-status]');
      await until(async () => (await status.getAttribute('data-state')) === 'connected', 'the console to connect with the token', 20_000);
      await until(async () => (await canvasColours(page)) > 1, 'the guest screen', 30_000);
      await context.close();
    },
  ],
  [
    'a VM with a VNC password: noVNC asks for it, a wrong one is refused, the right one shows the screen',
    async (browser) => {
      const { context, page } = await session(browser, env.OPERATOR);
      const path = `/vms/${encodeURIComponent(env.VM_HOST)}/${encodeURIComponent(env.PW_VM_UUID)}/console`;
      await page.goto(`${uvmmd.url}${path}`);
      const status = page.locator('[data-testid=console-status]');
      const state = () => status.getAttribute('data-state');
      await until(async () => (await state()) === 'password', 'the password prompt', 20_000);
      await page.fill('#vnc-password', 'wrong-pw');
      await page.click('.console-password button[type=submit]');
      await until(async () => (await state()) === 'failed', 'the wrong password refused', 20_000);
      await page.locator('[data-testid=console-reconnect]').click();
      await until(async () => (await state()) === 'password', 'the prompt again', 20_000);
      await page.fill('#vnc-password', env.VNC_PASSWORD);
      await page.click('.console-password button[type=submit]');
      await until(async () => (await state()) === 'connected', 'connected with the password', 20_000);
      await until(async () => (await canvasColours(page)) > 1, 'the guest screen', 30_000);
      await context.close();
    },
  ],
  [
    'a viewer is refused, and the page says why in words',
    async (browser) => {
      const { context, page } = await session(browser, env.VIEWER);
      await page.goto(`${uvmmd.url}${consolePath}`);
      const status = page.locator('[data-testid=console-status]');
      await until(async () => (await status.getAttribute('data-state')) === 'failed', 'the refusal', 20_000);
      const text = await status.textContent();
      if (!/console/i.test(text) || text.length < 40) throw new Error(`refusal not explained: ${text}`);
      console.log(`  viewer sees: ${text}`);
      const shown = await canvasColours(page);
      if (shown > 1) throw new Error('a viewer sees the screen');
      await context.close();
    },
  ],
];

const started = Date.now();
let passed = 0;
let failed = 0;
const browser = await launchChromium();
try {
  for (const [name, run] of tests) {
    const t0 = Date.now();
    try {
      await run(browser);
      passed++;
      console.log(`ok   ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${e.stack ?? e}`);
    }
  }
} finally {
  await browser.close();
}
console.log(`console browser tests: ${passed} passed, ${failed} failed, 0 skipped in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);
