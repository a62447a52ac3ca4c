// The UI's copy of uvmmd's scope rules (src/scope.ts) against the table uvmm-auth's own
// test checks (crates/uvmm-auth/tests/scope_cases.json): a button the UI shows on a VM
// must be one uvmmd allows there, and the other way round. Runs in `npm run check`.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const web = join(import.meta.dirname, '..');
const out = mkdtempSync(join(tmpdir(), 'uvmm-scope-'));
try {
  execFileSync(join(web, 'node_modules/.bin/tsc'), ['src/scope.ts', '--outDir', out, '--module', 'esnext', '--target', 'es2022', '--moduleResolution', 'bundler', '--skipLibCheck', '--strict'], { cwd: web, stdio: 'inherit' });
  writeFileSync(join(out, 'package.json'), '{"type":"module"}');
  const scope = await import(pathToFileURL(join(out, 'scope.js')).href);
  const cases = JSON.parse(readFileSync(join(web, '../crates/uvmm-auth/tests/scope_cases.json'), 'utf8'));
  const wrong = [];
  let checked = 0;
  for (const c of cases.patterns) {
    checked += 1;
    if (scope.scopePatternMatches(c.pattern, c.name) !== c.matches) wrong.push(`pattern ${c.pattern} vs ${c.name}: expected ${c.matches}`);
  }
  for (const c of cases.authorize) {
    for (const [permission, id, uri, vm, allowed] of c.checks) {
      checked += 1;
      const target = {};
      if (id !== null && uri !== null) target.host = { id, uri };
      if (vm !== null) target.vm = vm;
      if (scope.authorize(c.grants, permission, target) !== allowed) wrong.push(`${c.why}: ${permission} on ${id}/${vm}: expected ${allowed}`);
    }
  }
  if (checked < 50) wrong.push(`only ${checked} cases in the table`);
  if (wrong.length) {
    console.error(`scope rules differ from uvmmd's:\n  ${wrong.join('\n  ')}`);
    process.exit(1);
  }
  console.log(`scope rules: ${checked} cases agree with uvmmd's`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
