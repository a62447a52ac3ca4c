// Checks the translations (run by `npm run check`, so by every `npm run build`):
// - English and German have exactly the same keys, none empty;
// - both use the same {placeholders} in each text;
// - every key the code uses exists: literal t('key') calls, plural tn('key', n) calls
//   (key_one and key_other), and the key families the code builds from values
//   (t(`state.${state}`) ...), expanded from the lists below;
// - no key is unused.
// Exits 1 with every problem listed.

import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'src');
const en = JSON.parse(readFileSync(join(root, 'locales/en.json'), 'utf8'));
const de = JSON.parse(readFileSync(join(root, 'locales/de.json'), 'utf8'));
const problems = [];

for (const k of Object.keys(en)) if (!(k in de)) problems.push(`de.json lacks ${k}`);
for (const k of Object.keys(de)) if (!(k in en)) problems.push(`en.json lacks ${k}`);
const holes = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort().join(',');
for (const k of Object.keys(en)) {
  for (const [name, table] of [['en', en], ['de', de]]) {
    if (typeof table[k] !== 'string' || !table[k].trim()) problems.push(`${name}.json: ${k} is empty`);
  }
  if (k in de && holes(en[k]) !== holes(de[k])) problems.push(`${k}: placeholders differ (en: ${holes(en[k])}, de: ${holes(de[k])})`);
}

// Keys built from values at run time: family pattern -> the values it takes.
const STATES = ['running', 'paused', 'shutoff', 'crashed', 'shutdown', 'pmsuspended', 'blocked', 'unknown'];
const ACTIONS = ['start', 'shutdown', 'stop', 'pause', 'resume', 'suspend', 'reboot', 'reset'];
const FAMILIES = {
  'state.${}': STATES,
  'action.${}': ACTIONS,
  'confirm.${}.title': ['stop', 'reset'],
  'confirm.${}.body': ['stop', 'reset'],
  'hosts.status.${}': ['connecting', 'connected', 'unavailable'],
  'live.${}': ['connecting', 'live', 'lost'],
  'lang.${}': ['en', 'de'],
  'vm.tab.${}': ['general', 'settings', 'drives', 'network', 'snapshots', 'backups'],
  'role.${}': ['viewer', 'operator', 'admin'],
  'task.kind.${}': ['volume_clone', 'vm_suspend', 'vm_migrate', 'host_evacuate', 'snapshot_create', 'snapshot_revert', 'snapshot_delete', 'vm_clone'],
  'task.state.${}': ['running', 'cancelling', 'succeeded', 'failed', 'cancelled'],
  'boot.${}': ['hd', 'cdrom', 'network', 'fd'],
  'drives.kind.${}': ['disk', 'cdrom', 'floppy', 'lun'],
  'wizard.drive.${}': ['new', 'volume', 'block', 'cdrom'],
  'wizard.drive.${}_hint': ['new', 'volume', 'block', 'cdrom'],
  'delete.keep_${}': ['outside', 'kind'],
  'level.${}': ['ok', 'warning', 'critical'],
};

function files(dir) {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : /\.tsx?$/.test(f) ? [p] : [];
  });
}

const used = new Set();
const families = new Set();
for (const f of files(root)) {
  const src = readFileSync(f, 'utf8');
  // Literal keys: t('x.y'), and 'x.y' strings typed as Key (tables of keys in the code).
  for (const m of src.matchAll(/'([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)'/g)) {
    // tn('key', n) uses key_one and key_other.
    if (/\btn\(\s*$/.test(src.slice(Math.max(0, m.index - 8), m.index))) {
      for (const form of ['one', 'other']) {
        if (`${m[1]}_${form}` in en) used.add(`${m[1]}_${form}`);
        else problems.push(`${f}: plural key ${m[1]} lacks ${m[1]}_${form}`);
      }
      continue;
    }
    if (m[1] in en) used.add(m[1]);
    else if (/\bt\(\s*$/.test(src.slice(Math.max(0, m.index - 8), m.index))) problems.push(`${f}: unknown key ${m[1]}`);
  }
  // i18n.ts builds the plural forms itself (checked above through tn calls).
  for (const m of f.endsWith('i18n.ts') ? [] : src.matchAll(/(?<![\w.])t\(`([^`]*)`/g)) {
    const pattern = m[1].replace(/\$\{[^}]*\}/g, '${}');
    if (!pattern.includes('${}')) continue;
    if (!(pattern in FAMILIES)) {
      problems.push(`${f}: key family ${pattern} is not listed in tests/i18n-keys.mjs`);
      continue;
    }
    families.add(pattern);
  }
}
for (const fam of families) {
  for (const v of FAMILIES[fam]) {
    const k = fam.replace('${}', v);
    if (!(k in en)) problems.push(`family ${fam}: missing key ${k}`);
    used.add(k);
  }
}
for (const k of Object.keys(en)) if (!used.has(k)) problems.push(`unused key ${k}`);

if (problems.length) {
  console.error(`translations: ${problems.length} problems\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`translations: ${Object.keys(en).length} keys in English and German, all used, none missing`);
