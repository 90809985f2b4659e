import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROFILE_DEFAULTS } from '../../src/config/defaults';
import { formatConfigError, resolveProfiles } from '../../src/config/hostProfiles';
import { PROFILE_SPEC, specPaths, type ObjectSpec } from '../../src/config/profileSpec';
import { DEFAULT_REUSE_VERIFICATION_HOURS } from '../../src/restore/preflight';

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  required?: string[];
  additionalProperties?: boolean;
  default?: unknown;
  enum?: string[];
  markdownDescription?: string;
  description?: string;
}

/** The repository's package.json (not the copy tsc may place in out/). */
function readManifest(): { contributes: { configuration: { title: string; properties: Record<string, Schema> } } } {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json')) || !fs.existsSync(path.join(dir, 'src'))) {
    if (path.dirname(dir) === dir) throw new Error('package.json not found');
    dir = path.dirname(dir);
  }
  if (path.basename(dir) === 'out') dir = path.dirname(dir);
  return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
}

const settings = readManifest().contributes.configuration;
const hostSchema = settings.properties['kadiOps.hosts'].items as Schema;

function schemaPaths(s: Schema, prefix = ''): string[] {
  const out: string[] = [];
  for (const [key, child] of Object.entries(s.properties ?? {})) {
    out.push(`${prefix}${key}`);
    if (child.type === 'object') out.push(...schemaPaths(child, `${prefix}${key}.`));
  }
  return out;
}

function objectNodes(s: Schema, spec: ObjectSpec, at: string, visit: (s: Schema, spec: ObjectSpec, at: string) => void): void {
  visit(s, spec, at);
  for (const [key, child] of Object.entries(spec.fields)) {
    const sub = s.properties?.[key];
    if (child.kind === 'object' && sub) objectNodes(sub, child, at === '' ? key : `${at}.${key}`, visit);
  }
}

function schemaDefaults(s: Schema, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(s.properties ?? {})) {
    if (child.default !== undefined) out[`${prefix}${key}`] = child.default;
    Object.assign(out, schemaDefaults(child, `${prefix}${key}.`));
  }
  return out;
}

function flatten(o: object, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(o)) {
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) Object.assign(out, flatten(v, `${prefix}${key}.`));
    else out[`${prefix}${key}`] = v;
  }
  return out;
}

const minimal = { name: 'prod', ssh: { host: 'kadi.example.org' } };

describe('kadiOps.hosts settings schema matches the validator', () => {
  it('is contributed under the title "Kadi Ops"', () => {
    assert.equal(settings.title, 'Kadi Ops');
    assert.equal(settings.properties['kadiOps.hosts'].type, 'array');
  });

  it('every property in the schema is known to the validator, and every validator key is in the schema', () => {
    assert.deepEqual(schemaPaths(hostSchema).sort(), specPaths(PROFILE_SPEC).sort());
  });

  it('every object in the schema forbids unknown keys and requires what the validator requires', () => {
    let visited = 0;
    objectNodes(hostSchema, PROFILE_SPEC, '', (s, spec, at) => {
      visited++;
      assert.equal(s.additionalProperties, false, `${at || 'host'} must set additionalProperties: false`);
      assert.deepEqual([...(s.required ?? [])].sort(), [...(spec.required ?? [])].sort(), `required of ${at || 'host'}`);
    });
    assert.equal(visited, 13);
  });

  it('every default in the schema is the default the resolver applies, and vice versa', () => {
    // A host's backupMaxAgeHours defaults to the kadiOps.backupMaxAgeHours setting, which carries the default.
    const { backupMaxAgeHours, ...perHost } = PROFILE_DEFAULTS;
    assert.deepEqual(schemaDefaults(hostSchema), flatten(perHost, ''));
    assert.equal(settings.properties['kadiOps.backupMaxAgeHours'].default, backupMaxAgeHours);
  });

  it('every schema default passes the validator', () => {
    for (const [field, value] of Object.entries(schemaDefaults(hostSchema))) {
      const entry: Record<string, unknown> = { ...minimal, ssh: { ...minimal.ssh } };
      let node = entry;
      const keys = field.split('.');
      for (const key of keys.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
      node[keys[keys.length - 1]] = value;
      const { errors } = resolveProfiles([entry], { homeDir: '/nonexistent' });
      assert.deepEqual(errors.map(formatConfigError), [], field);
    }
  });

  it('the runAs enum is exactly what the validator accepts', () => {
    const runAs = hostSchema.properties?.runAs?.enum ?? [];
    assert.deepEqual(runAs, ['direct', 'sudo']);
    for (const mode of runAs) {
      assert.deepEqual(resolveProfiles([{ ...minimal, runAs: mode }], { homeDir: '/nonexistent', localUser: 'kadi' }).errors, []);
    }
    assert.equal(resolveProfiles([{ ...minimal, runAs: 'su' }], { homeDir: '/nonexistent' }).errors.length, 1);
  });

  it('every property has a description', () => {
    const missing = schemaPaths(hostSchema).filter((p) => {
      let s: Schema | undefined = hostSchema;
      for (const key of p.split('.')) s = s?.properties?.[key];
      return !s?.description && !s?.markdownDescription;
    });
    assert.deepEqual(missing, []);
  });

  it('the example in the setting description is valid configuration', () => {
    const md = settings.properties['kadiOps.hosts'].markdownDescription ?? '';
    const block = /```json\n([\s\S]*?)```/.exec(md);
    assert.ok(block, 'kadiOps.hosts has a JSON example');
    const example = JSON.parse(`{${block[1]}}`) as Record<string, unknown>;
    const { profiles, errors } = resolveProfiles(example['kadiOps.hosts'], { homeDir: '/nonexistent', localUser: 'admin' });
    assert.deepEqual(errors.map(formatConfigError), []);
    assert.equal(profiles.length, 2);
  });

  it('the global settings have the documented defaults', () => {
    assert.equal(settings.properties['kadiOps.backupMaxAgeHours'].default, PROFILE_DEFAULTS.backupMaxAgeHours);
    assert.equal(settings.properties['kadiOps.confirmRestoreByTypingHostName'].default, true);
    assert.deepEqual(settings.properties['kadiOps.retention'].default, { keepDaily: 7, keepWeekly: 4, keepMonthly: 6, minKeep: 3 });
    assert.equal(settings.properties['kadiOps.restore.reuseVerificationHours'].default, DEFAULT_REUSE_VERIFICATION_HOURS);
    assert.equal(settings.properties['kadiOps.output.verbose'].default, false, 'tool chatter only on request');
    assert.deepEqual(Object.keys(settings.properties).sort(), ['kadiOps.backupMaxAgeHours', 'kadiOps.confirmRestoreByTypingHostName', 'kadiOps.hosts', 'kadiOps.output.verbose', 'kadiOps.restore.reuseVerificationHours', 'kadiOps.retention']);
  });
});
