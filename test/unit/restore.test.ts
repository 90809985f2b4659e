import { strict as assert } from 'node:assert';
import { parseComponents, RestoreUsageError } from '../../src/components';
import { describeKeyChanges, parseConfigDiff, type ConfigKeyChanges } from '../../src/restore/configDiff';
import { parseProbe } from '../../src/restore/probe';
import { formatPlan, recentVerification, type RestorePlan } from '../../src/restore/preflight';
import type { VerifyRecord } from '../../src/backup/manifest';
import { formatReport, parseJobReport } from '../../src/restore/report';

const LOG = [
  '[kadi-ops] job J: restore started',
  'safety_set=2026-11-26T08-00-00Z',
  'timing=safety-backup 12',
  'skipped=redis (opted out)',
  '[kadi-ops] begin reindex',
  "Rebuilding index for 'record'.",
  "Populating new index 'record_20261126080000000001' with 3 record(s)...",
  "Error indexing record with ID '7'.",
  "Moved alias 'record' from old index 'record_20261126070000000001' to new index 'record_20261126080000000001'.",
  'Search indices rebuilt successfully.',
  '[kadi-ops] end reindex rc=0',
  'ATTENTION: 1 object(s) could not be indexed',
  '[kadi-ops] begin search-ls',
  "Indices for 'record':",
  "* record_20261126080000000001 (pointed to by alias 'record')",
  '* record_20261126070000000009',
  '[kadi-ops] end search-ls rc=0',
  'FAILED TOC ENTRY: 215; 1259 16390 TABLE public record kadi',
  '[kadi-ops] begin files-check',
  'Checking 2 files...',
  "[1] Found orphaned active file with storage type 'local' and ID 'abc'.",
  'Found 1 inconsistency.',
  'Do you want to resolve all inconsistencies automatically by deleting all inconsistent database objects and associated data? [y/N]: ',
  '[kadi-ops] end files-check rc=0',
  'restore_result=failed',
].join('\n');

describe('restore: job report', () => {
  it('parses steps, sections and verdict of a restore log', () => {
    const r = parseJobReport(LOG);
    assert.deepEqual(r.steps, [
      { name: 'safety-backup', seconds: 12, result: 'ok' },
      { name: 'redis', seconds: 0, result: 'skipped', note: 'opted out' },
    ]);
    assert.equal(r.safetySet, '2026-11-26T08-00-00Z');
    assert.equal(r.reindex?.success, false);
    assert.deepEqual(r.reindex?.errors, [{ model: 'record', id: '7' }]);
    assert.deepEqual(r.orphans, [{ model: 'record', name: 'record_20261126070000000009' }]);
    assert.equal(r.filesCheck?.reportedCount, 1);
    assert.equal(r.filesCheck?.clean, false);
    assert.deepEqual(r.failedTocEntries, ['215; 1259 16390 TABLE public record kadi']);
    assert.deepEqual(r.attention, ['1 object(s) could not be indexed']);
    assert.equal(r.result, 'failed');
    const text = formatReport('Restore', r, 'failed').join('\n');
    assert.match(text, /search reindex: FAILED: 1 object\(s\) not indexed \(record 7\)/);
    assert.match(text, /orphaned indices: record_20261126070000000009/);
  });

  it('a job that ended 0 with items needing attention is never headed "succeeded" alone', () => {
    const r = parseJobReport('ATTENTION: kadi files check failed (exit status 1: x)\nATTENTION: search reindex: 2 object(s)\nrestore_result=attention');
    assert.equal(r.result, 'attention');
    const text = formatReport('Restore of s', r, 'succeeded');
    assert.equal(text[0], 'Restore of s: succeeded, 2 item(s) need attention');
    assert.deepEqual(text.slice(-3), ['  needs attention:', '    - kadi files check failed (exit status 1: x)', '    - search reindex: 2 object(s)']);
    assert.equal(formatReport('Restore of s', parseJobReport('restore_result=ok'), 'succeeded')[0], 'Restore of s: succeeded');
    // Warnings the job printed (a special file of the set left out) are said, not a plain success.
    const warned = formatReport('Restore of s', parseJobReport('restore_result=ok'), 'succeeded', { warnings: ['storage: skipping special file zz/fifo in the set'], moreWarnings: 2 });
    assert.deepEqual(warned, ['Restore of s: succeeded with 3 warnings', '  warning: storage: skipping special file zz/fifo in the set', '  … and 2 more warnings in the output above']);
    assert.equal(formatReport('Restore of s', r, 'failed')[0], 'Restore of s: failed');
  });

  it('keeps what an unterminated section printed (a job cut off mid-command)', () => {
    const r = parseJobReport('[kadi-ops] begin db-upgrade\nINFO  [alembic.runtime.migration] Running upgrade a -> b, x');
    assert.equal(r.dbUpgrade?.success, false);
    assert.deepEqual(r.dbUpgrade?.migrations, [{ from: 'a', to: 'b', message: 'x' }]);
  });

  it('does not read ATTENTION or timing lines printed by kadi inside a section as the agent\'s', () => {
    const r = parseJobReport('[kadi-ops] begin files-check\nATTENTION: fake\ntiming=x 1\n[kadi-ops] end files-check rc=0');
    assert.deepEqual(r.attention, []);
    assert.deepEqual(r.steps, []);
  });
});

describe('restore: components, probe and config diff', () => {
  it('defaults to db, storage and uploads; redis and config only when named', () => {
    assert.deepEqual(parseComponents(undefined), ['db', 'storage', 'uploads']);
    assert.deepEqual(parseComponents('config,db'), ['db', 'config']);
    assert.throws(() => parseComponents('db,elastic'), RestoreUsageError);
    assert.throws(() => parseComponents(''), RestoreUsageError);
  });

  it('parses the probe: owners, free space, empty database, services', () => {
    const p = parseProbe('me=kadi\nstorage_owner=kadi\nstorage_group=www-data\nstorage_free_kb=10\nstorage_kb=4\nuploads_missing=yes\ndb_relations=0\nsystemctl=yes\nservice=apache2 exists active sudo-ok\nservice=kadi-celery missing\n');
    assert.equal(p.storage.group, 'www-data');
    assert.equal(p.storage.freeBytes, 10240);
    assert.equal(p.uploads.missing, true);
    assert.equal(p.dbRelations, 0);
    assert.deepEqual(p.services, [
      { name: 'apache2', exists: true, active: true, sudoAllowed: true },
      { name: 'kadi-celery', exists: false },
    ]);
  });

  it('reads which configuration keys differ, by name only; a line that tries more is ignored', () => {
    const raw = [
      'config_file=/opt/kadi/config/kadi.py differs',
      'config_keys={"parsed": true, "changed": ["SECRET_KEY", "AUTH_PROVIDERS", "x = \\"secret\\""], "added": ["SERVER_NAME"], "removed": [], "path": "/opt/kadi/config/kadi.py"}',
      'config_file=/opt/kadi/config/oidc.pem differs',
      'config_file=/opt/kadi/config/other.py same',
      'config_file=/opt/kadi/config/broken.py differs',
      'config_keys={"parsed": false, "path": "/opt/kadi/config/broken.py"}',
    ].join('\n');
    const files = parseConfigDiff(raw);
    assert.deepEqual(files.map((f) => [f.path, f.state]), [
      ['/opt/kadi/config/kadi.py', 'differs'],
      ['/opt/kadi/config/oidc.pem', 'differs'],
      ['/opt/kadi/config/other.py', 'same'],
      ['/opt/kadi/config/broken.py', 'differs'],
    ]);
    assert.deepEqual(files[0].keys?.changed, ['SECRET_KEY', 'AUTH_PROVIDERS']);
    assert.equal(describeKeyChanges(files[0].keys as ConfigKeyChanges), 'keys changed: SECRET_KEY, AUTH_PROVIDERS; added live: SERVER_NAME');
    assert.equal(files[1].keys, undefined);
    assert.match(describeKeyChanges(files[3].keys as ConfigKeyChanges), /which keys differ is unknown/);
  });
});

describe('relying on a recent verification before a restore', () => {
  const setWith = (verify: VerifyRecord | null): VerifyRecord | null => verify;
  const passed = (at: string, level: 'quick' | 'deep' = 'quick'): VerifyRecord => ({ level, ok: true, problems: [], problemCount: 0, files: 1, bytes: 1, at });
  const now = new Date('2026-11-26T12:00:00Z');

  it('relies on a passing verification inside the window, quick or deep', () => {
    assert.deepEqual(recentVerification(setWith(passed('2026-11-26T06:30:00Z')), 24, now), { level: 'quick', at: '2026-11-26T06:30:00Z' });
    assert.deepEqual(recentVerification(setWith(passed('2026-11-25T12:00:01Z', 'deep')), 24, now), { level: 'deep', at: '2026-11-25T12:00:01Z' });
  });

  it('verifies again when the verification failed, is too old, is missing, is from the future, or the window is 0', () => {
    assert.equal(recentVerification(setWith({ ...passed('2026-11-26T11:00:00Z'), ok: false }), 24, now), undefined);
    assert.equal(recentVerification(setWith(passed('2026-11-25T12:00:00Z')), 24, now), undefined);
    assert.equal(recentVerification(setWith(null), 24, now), undefined);
    assert.equal(recentVerification(setWith(passed('2026-11-26T13:00:00Z')), 24, now), undefined);
    assert.equal(recentVerification(setWith(passed('2026-11-26T11:59:00Z')), 0, now), undefined);
    assert.equal(recentVerification(setWith(passed('not a date')), 24, now), undefined);
  });
});

describe('restore: the plan as text', () => {
  it('keeps one line per item whatever a name holds (a role name with a newline, a control character)', () => {
    const plan = {
      host: 'prod',
      set: { name: 's1', manifest: { kadiVersion: '1.2.3', startedAt: 't' } },
      components: ['db'],
      safetyBackup: true,
      compareContent: false,
      verify: { ok: true, problems: [] },
      kadi: { upgrade: false },
      postgres: {},
      database: { empty: false, mode: 'clean' },
      disk: [],
      servicesToStop: [],
      servicesSkipped: [],
      probe: {},
      blockers: ['The set\'s privileges name 1 role(s) this server does not have ("kadi\nreader\u0007"): CREATE ROLE "kadi\nreader\u0007" NOLOGIN;'],
      warnings: ['a\r\nb\\n\u2028\u0085'],
    } as unknown as RestorePlan;
    const lines = formatPlan(plan);
    assert.ok(lines.every((l) => !/[\r\n\x07\u2028\u0085]/.test(l)), JSON.stringify(lines));
    assert.equal(lines.at(-1), '  REFUSED: The set\'s privileges name 1 role(s) this server does not have ("kadi\\nreader\\u0007"): CREATE ROLE "kadi\\nreader\\u0007" NOLOGIN;');
    // A backslash of the name itself is doubled: a literal backslash-n is not a newline.
    assert.equal(lines.at(-2), '  warning: a\\r\\nb\\\\n\\u2028\\u0085');
  });
});
