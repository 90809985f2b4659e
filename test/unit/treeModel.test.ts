import { strict as assert } from 'node:assert';
import { formatBytes } from '../../src/core/format';
import { childrenOf, formatAge, viewOf, type ModelNode } from '../../src/ui/treeModel';
import { backupSet, job, overview, profile } from './treeModelFixtures';

const NOW = new Date('2026-11-26T08:00:00Z');

describe('tree model', () => {
  it('formats sizes and ages', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(5 * 1024 ** 3), '5.0 GiB');
    assert.equal(formatAge(5 * 60000), '5 min');
    assert.equal(formatAge(20_000), '<1 min', 'never "0 min ago"');
    assert.equal(formatAge(3 * 3600_000), '3 h');
    assert.equal(formatAge(72 * 3600_000), '3 d');
  });

  it('host: the Kadi version the newest set recorded, said so, until the session has read the running one', () => {
    const p = profile();
    const sets = [backupSet('2026-11-26T06-37-07Z', { status: 'verified' })];
    const v = viewOf({ kind: 'host', profile: p, state: { overview: overview({ sets }) } }, NOW);
    assert.equal(v.description, `Kadi ${sets[0].manifest.kadiVersion} · last backup 1 h ago`);
    assert.match(v.tooltip ?? '', new RegExp(`Kadi ${sets[0].manifest.kadiVersion} at the newest backup \\(Check Host reads the running version\\)`));
    assert.equal(viewOf({ kind: 'host', profile: p, state: { overview: overview() } }, NOW).description, 'no backup', 'no set, no version');
  });

  it('host: label, last good backup age, tags, and no stale warning within backupMaxAgeHours', () => {
    const p = profile();
    const sets = [backupSet('2026-11-26T06-37-07Z', { status: 'damaged' }), backupSet('2026-11-25T20-00-00Z', { status: 'verified' })];
    const v = viewOf({ kind: 'host', profile: p, state: { overview: overview({ sets }), kadiVersion: '1.2.3' } }, NOW);
    assert.equal(v.label, 'prod');
    assert.equal(v.description, 'Kadi 1.2.3 · last backup 12 h ago', 'the damaged set does not count');
    assert.equal(v.contextValue, 'host;loaded;idle;');
    assert.equal(v.icon, 'vm-active');
    assert.equal(v.color, undefined);
    assert.match(v.tooltip ?? '', /kadi@kadi\.example\.org:22/);
  });

  it('host: stale warning after backupMaxAgeHours (host setting wins) and with no backup at all', () => {
    const sets = [backupSet('2026-11-25T05-00-00Z')];
    const stale = viewOf({ kind: 'host', profile: profile(), state: { overview: overview({ sets }) } }, NOW);
    assert.equal(stale.icon, 'warning');
    assert.equal(stale.color, 'problemsWarningIcon.foreground');
    assert.match(stale.tooltip ?? '', /older than 26 h/);
    const relaxed = viewOf({ kind: 'host', profile: profile('prod', { backupMaxAgeHours: 48 }), state: { overview: overview({ sets }) } }, NOW);
    assert.equal(relaxed.icon, 'vm-active');
    const none = viewOf({ kind: 'host', profile: profile(), state: { overview: overview() } }, NOW);
    assert.match(none.description ?? '', /no backup/);
    assert.equal(none.icon, 'warning');
  });

  it('host: a running job shows as "backup by alice since 06:37" and tags the host busy', () => {
    const o = overview({ sets: [backupSet('2026-11-26T06-00-00Z')], jobs: [job({ state: 'running', status: '', started: '2026-11-26T06:37:12Z' })] });
    const v = viewOf({ kind: 'host', profile: profile(), state: { overview: o } }, NOW);
    assert.match(v.description ?? '', /backup by alice since 06:37/);
    assert.equal(v.contextValue, 'host;loaded;busy;');
    assert.equal(v.icon, 'sync~spin');
  });

  it('host: unreachable and unloaded states; redis tag', () => {
    const err = viewOf({ kind: 'host', profile: profile(), state: { error: 'connection refused' } }, NOW);
    assert.equal(err.contextValue, 'host;error;idle;');
    assert.match(err.description ?? '', /unreachable/);
    assert.equal(err.color, 'problemsErrorIcon.foreground');
    const p = profile('r', { redis: { enabled: true } });
    assert.equal(viewOf({ kind: 'host', profile: p, state: {} }, NOW).contextValue, 'host;unloaded;idle;redis;');
    assert.equal(viewOf({ kind: 'host', profile: p, state: { loading: true } }, NOW).description, 'loading…');
  });

  it('children: groups under a host (partials only when present), sets newest first, artifacts, error message', () => {
    const p = profile();
    const sets = [backupSet('2026-11-26T06-37-07Z'), backupSet('2026-11-25T06-37-07Z')];
    const host: ModelNode = { kind: 'host', profile: p, state: { overview: overview({ sets }) } };
    assert.deepEqual(childrenOf(host).map((n) => (n.kind === 'group' ? n.group : n.kind)), ['backups', 'jobs', 'indices']);
    const withPartial: ModelNode = { kind: 'host', profile: p, state: { overview: overview({ sets, partials: [{ name: '.partial-x', job: 'x', mtime: 0 }] }) } };
    assert.deepEqual(childrenOf(withPartial).map((n) => (n.kind === 'group' ? n.group : n.kind)), ['backups', 'jobs', 'partials', 'indices']);
    const backups = childrenOf(childrenOf(host)[0]);
    assert.deepEqual(backups.map((n) => (n.kind === 'set' ? n.set.name : '')), sets.map((s) => s.name));
    const arts = childrenOf(backups[0]);
    assert.deepEqual(arts.map((n) => viewOf(n, NOW).contextValue), ['artifact;file;', 'artifact;dbdump;', 'artifact;filelist;', 'artifact;archive;']);
    assert.equal(viewOf(arts[2], NOW).description, '300 B · 12 files, 4.0 KiB');
    // Files Kadi deleted while the backup ran are named where the operator looks at the set.
    const set2 = { ...sets[0], manifest: { ...sets[0].manifest, artifacts: sets[0].manifest.artifacts.map((a) => (a.tree === 'storage' ? { ...a, vanished: 2 } : a)) } };
    const vanished = childrenOf({ kind: 'set', profile: p, set: set2 }).map((n) => viewOf(n, NOW));
    assert.equal(vanished[2].description, '300 B · 12 files, 4.0 KiB, 2 vanished during the backup');
    assert.match(String(vanished[2].tooltip), /12 files, 4.0 KiB, 2 vanished during the backup$/);
    const err = childrenOf({ kind: 'host', profile: p, state: { error: 'boom' } });
    assert.equal(err.length, 1);
    assert.equal(viewOf(err[0], NOW).contextValue, 'message;');
    const empty = childrenOf(childrenOf({ kind: 'host', profile: p, state: { overview: overview() } })[0]);
    assert.equal(empty[0].kind === 'message' && empty[0].text, 'No backups yet');
  });

  it('set: label, description and tags like backup;verified;pinned;', () => {
    const p = profile();
    const s = backupSet('2026-11-26T06-37-07Z', { status: 'verified', pinned: true, verify: { level: 'quick', ok: true, problems: [], problemCount: 0, files: 3, bytes: 10, at: '2026-11-26T07:00:00Z' } });
    const v = viewOf({ kind: 'set', profile: p, set: s }, NOW);
    assert.equal(v.label, '2026-11-26 06:37:07 UTC');
    assert.equal(v.contextValue, 'backup;verified;pinned;');
    assert.equal(v.description, '5.0 MiB · 1 h ago · verified (quick), pinned');
    assert.match(v.tooltip ?? '', /Verified \(quick\) 2026-11-26T07:00:00Z: no problems\./);
    const deep = backupSet('2026-11-26T06-37-07Z', { status: 'verified', verify: { level: 'deep', ok: true, problems: [], problemCount: 0, files: 3, bytes: 10, at: '2026-11-26T07:00:00Z', deep: { mode: 'throwaway-cluster' } } });
    assert.match(viewOf({ kind: 'set', profile: p, set: deep }, NOW).tooltip ?? '', /Verified \(deep, throwaway cluster\) 2026-11-26T07:00:00Z: no problems\./);
    assert.match(v.tooltip ?? '', /Kadi 1\.2\.3, schema abc123, PostgreSQL 15/);
    assert.equal(v.icon, 'verified');
    const damaged = { level: 'quick' as const, ok: false, problems: ['db.dump: sha256 does not match the manifest'], problemCount: 1, files: 3, bytes: 10, at: '2026-11-26T07:00:00Z' };
    const pre = viewOf({ kind: 'set', profile: p, set: backupSet('2026-11-26T06-37-07Z', { status: 'damaged', preRestore: true, verify: damaged }) }, NOW);
    assert.equal(pre.contextValue, 'backup;damaged;unpinned;prerestore;');
    assert.equal(pre.color, 'problemsErrorIcon.foreground');
    assert.equal(pre.icon, 'error');
    assert.match(pre.description ?? '', /damaged: 1 problem, pre-restore/);
    assert.match(pre.tooltip ?? '', /Damaged: quick verification 2026-11-26T07:00:00Z found 1 problem:\n  db\.dump: sha256 does not match the manifest/);
    // A deep verification that could not run is neither damaged nor plainly verified: a warning with the fix.
    const notRun = { level: 'quick' as const, ok: true, problems: [], problemCount: 0, files: 3, bytes: 10, at: '2026-11-26T07:00:00Z', deep: { notRun: 'no throwaway PostgreSQL cluster (x), and role kadi may not create a scratch database on the production server (CREATEDB)', fix: 'install postgresql-15 on this host' } };
    const nr = viewOf({ kind: 'set', profile: p, set: backupSet('2026-11-26T06-37-07Z', { status: 'verified', verify: notRun }) }, NOW);
    assert.equal(nr.icon, 'warning');
    assert.equal(nr.color, 'problemsWarningIcon.foreground');
    assert.match(nr.description ?? '', /verified \(quick\); deep verification could not run/);
    assert.match(nr.tooltip ?? '', /Deep verification could not run here: no throwaway PostgreSQL cluster .*\nFix: install postgresql-15 on this host\./);
  });

  it('artifact: size and checksum in the tooltip; db.dump details', () => {
    const p = profile();
    const s = backupSet('2026-11-26T06-37-07Z');
    const dump = viewOf({ kind: 'artifact', profile: p, set: s, artifact: s.manifest.artifacts[1] }, NOW);
    assert.equal(dump.label, 'db.dump');
    assert.equal(dump.description, '5.0 MiB · 51 TOC entries, 1234 rows');
    assert.match(dump.tooltip ?? '', new RegExp(`sha256 ${'a'.repeat(64)}`));
    assert.equal(dump.icon, 'database');
  });

  it('jobs: running, succeeded, failed, cancelled and died', () => {
    const p = profile();
    const cases: [Partial<Parameters<typeof job>[0]>, string, string][] = [
      [{ state: 'running', status: '' }, 'job;running;', 'running · alice@laptop'],
      [{ status: '0' }, 'job;finished;', 'succeeded · alice@laptop'],
      [{ status: '2' }, 'job;finished;', 'failed (2) · alice@laptop'],
      [{ status: '3', kind: 'verify' }, 'job;finished;', 'could not run · alice@laptop'],
      [{ status: 'cancelled' }, 'job;finished;', 'cancelled · alice@laptop'],
      [{ state: 'died', status: '' }, 'job;died;', 'died · alice@laptop'],
    ];
    for (const [patch, ctx, desc] of cases) {
      const v = viewOf({ kind: 'job', profile: p, job: job(patch) }, NOW);
      assert.equal(v.contextValue, ctx);
      assert.equal(v.description, desc);
      assert.equal(v.label, `${patch?.kind ?? 'backup'} 2026-11-26 06:37:00 UTC`);
    }
    // Exit status 3 means "could not run" only for a verify; any other job with it failed.
    assert.equal(viewOf({ kind: 'job', profile: p, job: job({ status: '3' }) }, NOW).description, 'failed (3) · alice@laptop');
  });

  it('ids are unique across hosts', () => {
    const ids = ['a', 'b'].flatMap((h) => {
      const p = profile(h);
      const s = backupSet('2026-11-26T06-37-07Z');
      return [viewOf({ kind: 'host', profile: p, state: {} }).id, viewOf({ kind: 'set', profile: p, set: s }).id, viewOf({ kind: 'artifact', profile: p, set: s, artifact: s.manifest.artifacts[0] }).id];
    });
    assert.equal(new Set(ids).size, ids.length);
  });
});
