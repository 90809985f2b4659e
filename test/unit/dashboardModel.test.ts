/** The dashboard's rows and charts from the tree's host states, and the messages it accepts. */
import type { ScheduleStatus } from '../../src/backup/schedule';
import { strict as assert } from 'node:assert';
import type { BackupSet, VerifyRecord } from '../../src/backup/manifest';
import { chartsFor, dashboardModel, durationSeconds, hostRow, parseDashboardMessage, storageFiles } from '../../src/ui/dashboardModel';
import { backupSet, job, manifest, overview, profile } from './treeModelFixtures';

const NOW = new Date('2026-11-26T12:00:00Z');
const verified = (patch: Partial<VerifyRecord> = {}): VerifyRecord => ({ level: 'quick', ok: true, problems: [], problemCount: 0, files: 10, bytes: 100, at: '2026-11-26T07:00:00Z', ...patch });

function set(name: string, patch: Partial<BackupSet> = {}, m: Partial<ReturnType<typeof manifest>> = {}): BackupSet {
  return backupSet(name, { manifest: { ...manifest(), ...m }, ...patch });
}

describe('dashboard: rows and charts', () => {
  it('chart series come from the manifests, oldest first: set size, new bytes per set (bars), dump size, duration, storage files', () => {
    const a = set('2026-11-24T06-00-00Z', { size: 1000 }, { startedAt: '2026-11-24T06:00:00Z', endedAt: '2026-11-24T06:01:30Z', trees: { storage: { files: 10, bytes: 50, newFiles: 10, newBytes: 50 } } });
    const b = set('2026-11-25T06-00-00Z', { size: 2000 }, { startedAt: '2026-11-25T06:00:00Z', endedAt: '2026-11-25T06:02:00Z', trees: { storage: { files: 12, bytes: 70, newFiles: 2, newBytes: 20 } } });
    const c = set('2026-11-26T06-00-00Z', { size: 3000 }, { startedAt: undefined, trees: { storage: { files: 15, bytes: 90, newFiles: 3, newBytes: 20 } } });
    const charts = chartsFor([c, a, b]);
    const byId = Object.fromEntries(charts.map((ch) => [ch.id, ch]));
    assert.deepEqual(charts.map((ch) => [ch.id, ch.kind]), [['size', 'line'], ['new', 'bar'], ['dump', 'line'], ['duration', 'line'], ['files', 'line']]);
    assert.deepEqual(byId.size.series[0].points.map((p) => [p.set, p.v]), [[a.name, 1000], [b.name, 2000], [c.name, 3000]]);
    const artifacts = 2048 + 5 * 1024 * 1024 + 300 + 999;
    assert.deepEqual(byId.new.series[0].points.map((p) => p.v), [50 + artifacts, 20 + artifacts, 20 + artifacts]);
    assert.deepEqual(byId.dump.series[0].points.map((p) => p.v), [5 * 1024 * 1024, 5 * 1024 * 1024, 5 * 1024 * 1024]);
    // The set without startedAt has no duration point (not a zero).
    assert.deepEqual(byId.duration.series[0].points.map((p) => [p.set, p.v]), [[a.name, 90], [b.name, 120]]);
    assert.deepEqual(byId.files.series[0].points.map((p) => p.v), [10, 12, 15]);
    assert.equal(byId.size.unit, 'bytes');
    assert.equal(byId.duration.unit, 'seconds');
    assert.equal(byId.files.unit, 'count');
  });

  it('an archive-mode set counts the storage archive\'s files; a backward clock has no duration', () => {
    const archived = set('2026-11-24T06-00-00Z', {}, { trees: {}, artifacts: [{ name: 'db.dump', size: 9, sha256: 'a'.repeat(64) }, { name: 'storage.tar.zst', size: 99, sha256: 'b'.repeat(64), archiveOf: 'storage', files: 321, bytes: 5000 }] });
    assert.equal(storageFiles(archived), 321);
    assert.equal(durationSeconds(set('2026-11-24T06-00-00Z', {}, { startedAt: '2026-11-24T06:05:00Z', endedAt: '2026-11-24T06:00:00Z' })), undefined);
  });

  it('the row shows the newest good set with its age and state, and a newer damaged set besides', () => {
    const damaged = set('2026-11-26T06-00-00Z', { verify: verified({ ok: false, problems: ['db.dump: sha256 mismatch'], problemCount: 1 }), status: 'damaged' });
    const good = set('2026-11-25T06-00-00Z', { verify: verified({ level: 'deep', deep: { mode: 'throwaway-cluster' } }), status: 'verified' });
    const row = hostRow({ profile: profile('prod'), state: { overview: overview({ sets: [damaged, good] }) } }, NOW);
    assert.equal(row.newestGood?.name, good.name);
    assert.equal(row.newestGood?.when, '2026-11-25 06:00:00 UTC');
    assert.equal(row.newestGood?.age, '30 h ago');
    assert.equal(row.newestGood?.stale, true, '30 h is more than the default 26 h');
    assert.equal(row.newestGood?.stateLabel, 'verified (deep)');
    assert.match(row.newestGood?.stateDetail.join('\n') ?? '', /Verified \(deep, throwaway cluster\) 2026-11-26T07:00:00Z/);
    assert.deepEqual(row.newestDamaged, { name: damaged.name, label: 'damaged: 1 problem' });
    assert.equal(row.severity, 'error');
    assert.equal(row.actions.verifySet, damaged.name, 'Verify newest set acts on the newest set');
  });

  it('the four verification states, in the tree\'s words', () => {
    const cases: [VerifyRecord | null, string][] = [
      [null, 'unverified'],
      [verified(), 'verified (quick)'],
      [verified({ ok: false, problems: ['a', 'b'], problemCount: 2 }), 'damaged: 2 problems'],
      [verified({ level: 'quick', deep: { notRun: 'no initdb for PostgreSQL 15', fix: 'install postgresql-15' } }), 'verified (quick); deep verification could not run'],
    ];
    for (const [verify, label] of cases) {
      const s = set('2026-11-26T06-00-00Z', { verify, status: verify && !verify.ok ? 'damaged' : verify ? 'verified' : 'unverified' });
      const row = hostRow({ profile: profile('prod'), state: { overview: overview({ sets: [s] }) } }, NOW);
      const shown = row.newestGood?.stateLabel ?? row.newestDamaged?.label;
      assert.equal(shown, label);
    }
  });

  it('the schedule cell says the calendar, the next and last run, or warns; off-site says "not configured" without a repository', () => {
    const cells = (schedule?: ScheduleStatus): string[][] =>
      hostRow({ profile: profile('prod'), state: { overview: overview(schedule ? { schedule } : {}) } }, NOW).features.map((f) => [f.id, f.state, f.text]);
    assert.deepEqual(cells(), [
      ['schedule', 'absent', 'no schedule'],
      ['offsite', 'absent', 'not configured'],
    ]);
    assert.deepEqual(cells({ state: 'none' })[0], ['schedule', 'warning', 'no schedule']);
    // A stored plan the host cannot use: an error, not "no schedule" (its timer fails every run).
    assert.deepEqual(cells({ state: 'none', error: 'the plan is not JSON: x' })[0], ['schedule', 'error', 'stored plan unusable']);
    assert.deepEqual(cells({ state: 'stored', calendar: 'daily' })[0], ['schedule', 'warning', 'daily (not installed)']);
    const installed = { state: 'installed' as const, calendar: '*-*-* 02:30:00', next: 'Fri 2026-11-27 02:30:00 UTC', lastJob: { id: 'j', kind: 'backup', started: '2026-11-26T02:30:00Z', status: '0' }, unit: { result: 'success', exited: 'x', state: 'inactive' } };
    assert.deepEqual(cells(installed)[0], ['schedule', 'ok', '*-*-* 02:30:00; last run 2026-11-26T02:30:00Z succeeded; next Fri 2026-11-27 02:30:00 UTC']);
    assert.deepEqual(cells({ ...installed, unit: { result: 'exit-code', exited: 'Thu 2026-11-26 02:30:09 UTC', state: 'failed' } })[0], ['schedule', 'error', '*-*-* 02:30:00; last run failed (Thu 2026-11-26 02:30:09 UTC); next Fri 2026-11-27 02:30:00 UTC']);
  });

  it('jobs: the running ones and the last finished one (failed marked)', () => {
    const jobs = [job({ id: 'j3', state: 'running', status: '', kind: 'verify', operator: 'bob', started: '2026-11-26T11:30:00Z' }), job({ id: 'j2', status: '1' }), job({ id: 'j1' })];
    const row = hostRow({ profile: profile('prod'), state: { overview: overview({ jobs }) } }, NOW);
    assert.deepEqual(row.running, ['verify by bob since 11:30']);
    assert.deepEqual(row.lastJob, { text: 'backup failed (1), 5 h ago', failed: true });
  });

  it('the disk cell: not measured, could not be read, free space with the forecast', () => {
    const sets = [set('2026-11-26T06-00-00Z'), set('2026-11-25T06-00-00Z'), set('2026-11-24T06-00-00Z')];
    const base = { profile: profile('prod'), state: { overview: overview({ sets }) } };
    assert.equal(hostRow(base, NOW).disk.text, 'not measured yet');
    assert.equal(hostRow({ ...base, diskLoading: true }, NOW).disk.text, 'measuring…');
    const failed = hostRow({ ...base, disk: { at: NOW, error: 'Permission denied' } }, NOW).disk;
    assert.equal(failed.text, 'could not be read');
    assert.equal(failed.detail, 'Permission denied');
    const growth = 100 + 2048 + 5 * 1024 * 1024 + 300 + 999; // per set, a day apart
    const d = hostRow({ ...base, disk: { at: NOW, freeBytes: growth * 7, sizeBytes: 1024 ** 3, newestSet: sets[0].name } }, NOW).disk;
    assert.match(d.text, /^35\.\d MiB free of 1\.0 GiB$/);
    assert.equal(d.forecast.kind, 'fills');
    assert.equal(d.forecastText, 'full in about 7 days (2026-12-03)');
    assert.equal(d.warning, true, 'a week is within the warning horizon');
    assert.match(d.detail, /after set 2026-11-26T06-00-00Z.*3 sets added .* a day.*Assumes nothing is pruned/);
  });

  it('an unreachable host and one not loaded yet have rows too, with nothing to verify', () => {
    const m = dashboardModel(
      [
        { profile: profile('down'), state: { error: 'connect ECONNREFUSED' } },
        { profile: profile('later'), state: {} },
      ],
      ['kadiOps.hosts[2].ssh: missing'],
      NOW,
    );
    assert.deepEqual(m.rows.map((r) => [r.name, r.severity, r.health.kind]), [
      ['down', 'warning', 'unreachable'],
      ['later', 'unknown', 'not-loaded'],
    ]);
    assert.equal(m.rows[0].actions.verifySet, undefined);
    assert.deepEqual(m.errors, ['kadiOps.hosts[2].ssh: missing']);
  });
});

describe('dashboard: messages from the webview', () => {
  const hosts = ['prod', 'staging'];

  it('accepts the four actions on a configured host, and refresh without one', () => {
    assert.deepEqual(parseDashboardMessage({ type: 'backupNow', host: 'prod' }, hosts), { type: 'backupNow', host: 'prod' });
    assert.deepEqual(parseDashboardMessage({ type: 'verify', host: 'staging' }, hosts), { type: 'verify', host: 'staging' });
    assert.deepEqual(parseDashboardMessage({ type: 'showOutput', host: 'prod' }, hosts), { type: 'showOutput', host: 'prod' });
    assert.deepEqual(parseDashboardMessage({ type: 'refresh', host: 'prod' }, hosts), { type: 'refresh', host: 'prod' });
    assert.deepEqual(parseDashboardMessage({ type: 'refresh' }, hosts), { type: 'refresh' });
  });

  it('refuses unknown hosts, unknown or missing types, wrong shapes and extra tricks', () => {
    const refused: unknown[] = [
      { type: 'backupNow', host: 'nope' },
      { type: 'backupNow' },
      { type: 'verify', host: ['prod'] },
      { type: 'refresh', host: 'nope' },
      { type: 'refresh', host: 42 },
      { type: 'restore', host: 'prod' },
      { type: 'kadiOps.prune', host: 'prod' },
      { type: 'toString', host: 'prod' },
      { type: '__proto__', host: 'prod' },
      { host: 'prod' },
      { type: 42, host: 'prod' },
      ['backupNow', 'prod'],
      'backupNow',
      null,
      undefined,
      42,
    ];
    for (const m of refused) assert.equal(parseDashboardMessage(m, hosts), undefined, JSON.stringify(m));
  });

  it('only the named fields are passed on', () => {
    assert.deepEqual(parseDashboardMessage({ type: 'showOutput', host: 'prod', command: 'rm -rf /' }, hosts), { type: 'showOutput', host: 'prod' });
  });
});
