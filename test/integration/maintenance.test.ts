import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { HostProfile } from '../../src/config/types';
import { discover } from '../../src/kadi/discovery';
import type { ConnectionPool } from '../../src/remote/connectionPool';
import { startJob } from '../../src/remote/jobs';
import type { RemoteHost } from '../../src/remote/remoteHost';
import { listIndices, MaintenanceRefusedError, startDbUpgrade, startFilesCheck, startFixPermissions, startRedisSnapshot, startReindex, startRemoveOrphans } from '../../src/restore/maintenance';
import type { SandboxHost } from '../sandbox/sandbox';
import { storageFilePath } from '../sandbox/sandbox';
import { getSandbox, newPool, profileOf } from './fixture';
import { runJob, sleep, treeState } from './restoreHelpers';

interface Registry {
  indices: Record<string, { alias: string | null; docs: number }>;
}

describe('maintenance jobs against the sandbox host', function () {
  this.timeout(300000);
  let sb: SandboxHost;
  let pool: ConnectionPool;
  let profile: HostProfile;
  let host: RemoteHost;

  let config: string;
  const CLI = path.resolve(__dirname, '..', '..', '..', 'dist', 'cli.js');
  /** The headless CLI users run (dist/cli.js), as in cli.test.ts: exit status and everything it printed. */
  function kadiOps(...args: string[]): { code: number; out: string } {
    const r = spawnSync(process.execPath, [CLI, ...args, '--config', config], { encoding: 'utf8', timeout: 240000 });
    return { code: r.status ?? -1, out: r.stdout + r.stderr };
  }

  before(async () => {
    sb = await getSandbox();
    config = sb.writeConfigFile(path.join(sb.root, 'maintenance-hosts.json'));
    pool = newPool();
    profile = profileOf(sb, 'sudo');
    host = await pool.get(profile);
  });
  after(() => pool.closeAll());

  function registry(): Registry {
    return JSON.parse(fs.readFileSync(sb.searchIndexFile, 'utf8')) as Registry;
  }
  function addOrphan(name: string): void {
    const st = fs.statSync(sb.searchIndexFile);
    const r = registry();
    r.indices[name] = { alias: null, docs: 0 };
    fs.writeFileSync(sb.searchIndexFile, JSON.stringify(r));
    fs.chownSync(sb.searchIndexFile, st.uid, st.gid);
  }
  function liveIndices(): string[] {
    return Object.entries(registry().indices).filter(([, i]) => i.alias).map(([n]) => n).sort();
  }

  it('indices lists the live index behind each alias and the orphans', async () => {
    addOrphan('record_20200101000000000001');
    const l = await listIndices(host);
    assert.deepEqual(l.live.map((x) => x.name).sort(), liveIndices());
    assert.deepEqual(l.orphaned, [{ model: 'record', name: 'record_20200101000000000001' }]);
  });

  it('remove-orphans removes the orphans and never touches a live index', async () => {
    addOrphan('record_20200101000000000002');
    addOrphan('group_20200101000000000003');
    const live = liveIndices();
    const l = await listIndices(host);
    const r = await runJob(host, pool, () => startRemoveOrphans(host, l, l.orphaned.map((o) => o.name)));
    assert.equal(r.outcome.result, 'succeeded', r.log);
    assert.deepEqual(liveIndices(), live);
    assert.deepEqual(Object.keys(registry().indices).sort(), live, 'only the live indices are left');
  });

  it('remove-orphans refuses alias and live index names, in the client and in the job itself', async () => {
    const live = liveIndices();
    const l = await listIndices(host);
    assert.throws(() => startRemoveOrphans(host, l, ['record']), MaintenanceRefusedError);
    assert.throws(() => startRemoveOrphans(host, l, [live[0]]), MaintenanceRefusedError);
    assert.throws(() => startRemoveOrphans(host, l, ['record_*']), MaintenanceRefusedError);
    // The CLI refuses a name that is not an orphan before it shows the plan or asks anything.
    const c = kadiOps('remove-orphans', 'sandbox', live[0], '--yes', 'sandbox');
    assert.equal(c.code, 1, c.out);
    assert.ok(c.out.includes(`Refusing to remove "${live[0]}": it is a live index or an alias.`), c.out);
    assert.doesNotMatch(c.out, /^remove /m, 'no plan line for a refused name');
    // Bypassing the client's checks: the job re-checks against a fresh `kadi search ls`.
    const kadi = [`kadi_cli=${profile.kadi.cli}`, `kadi_config=${profile.kadi.configFile}`];
    for (const names of ['record', live[0], 'record_*']) {
      const r = await runJob(host, pool, () => startJob(host, { kind: 'remove-orphans', verb: 'remove_orphans', args: [...kadi, `names=${names}`] }));
      assert.equal(r.outcome.result, 'failed', r.log);
      assert.match(r.log, /refusing to remove/);
    }
    assert.deepEqual(liveIndices(), live);
  });

  it('db-upgrade succeeds with the success line and fails on an unknown revision', async () => {
    const ok = await runJob(host, pool, () => startDbUpgrade(host));
    assert.equal(ok.outcome.result, 'succeeded', ok.log);
    assert.equal(ok.report.dbUpgrade?.success, true);
    const rev = (await sb.psql('SELECT version_num FROM alembic_version')).trim();
    await sb.psql("UPDATE alembic_version SET version_num = 'ffffffffffff'");
    try {
      const bad = await runJob(host, pool, () => startDbUpgrade(host));
      assert.equal(bad.outcome.result, 'failed', bad.log);
      assert.equal(bad.report.dbUpgrade?.success, false);
      assert.match(bad.log, /Can't locate revision/);
    } finally {
      await sb.psql(`UPDATE alembic_version SET version_num = '${rev}'`);
    }
  });

  it('reindex fails when objects could not be indexed and names them', async () => {
    const id = sb.seed.recordIds[0];
    const title = (await sb.psql(`SELECT title FROM record WHERE id = ${id}`)).trim();
    await sb.psql(`UPDATE record SET title = 'x [index-error]' WHERE id = ${id}`);
    try {
      const r = await runJob(host, pool, () => startReindex(host, 'record'));
      assert.equal(r.outcome.result, 'failed', r.log);
      assert.deepEqual(r.report.reindex?.errors, [{ model: 'record', id: String(id) }]);
      assert.equal(r.report.reindex?.rebuilt.length, 1, 'only the record model was rebuilt');
    } finally {
      await sb.psql(`UPDATE record SET title = '${title.replace(/'/g, "''")}' WHERE id = ${id}`);
    }
    const clean = await runJob(host, pool, () => startReindex(host));
    assert.equal(clean.outcome.result, 'succeeded', clean.log);
    assert.equal(clean.report.reindex?.rebuilt.length, 4);
    assert.throws(() => startReindex(host, 'record_*'), MaintenanceRefusedError);
  });

  it('files-check reports inconsistencies and resolves them only when the confirmed count matches', async () => {
    const fileId = sb.seed.activeFileIds[0];
    const data = storageFilePath(sb.storagePath, fileId);
    const saved = fs.readFileSync(data);
    const st = fs.statSync(data);
    fs.rmSync(data);
    try {
      const check = await runJob(host, pool, () => startFilesCheck(host));
      assert.equal(check.outcome.result, 'succeeded', check.log);
      assert.equal(check.report.filesCheck?.reportedCount, 1, check.log);
      assert.deepEqual(check.report.filesCheck?.findings.map((f) => [f.kind, f.fileId]), [['orphaned-active', fileId]]);
      assert.ok(check.report.attention.some((a) => /found 1 inconsistencies/.test(a)), check.log);
      assert.throws(() => startFilesCheck(host, { resolve: true }), MaintenanceRefusedError);
      const wrong = await runJob(host, pool, () => startFilesCheck(host, { resolve: true, confirmCount: 2 }));
      assert.equal(wrong.outcome.result, 'failed', wrong.log);
      assert.match(wrong.log, /not the confirmed 2; answered n/);
      assert.equal((await sb.psql(`SELECT count(*) FROM file WHERE id = '${fileId}'`)).trim(), '1', 'nothing was deleted');
      // Put the data back before anything deletes the row: the resolve path is not exercised destructively here.
    } finally {
      fs.mkdirSync(path.dirname(data), { recursive: true });
      fs.writeFileSync(data, saved);
      fs.chownSync(data, st.uid, st.gid);
      fs.chmodSync(data, st.mode & 0o7777);
    }
    const after = await runJob(host, pool, () => startFilesCheck(host));
    assert.equal(after.report.filesCheck?.clean, true, after.log);
  });

  it('files-check --resolve with the matching count deletes the inconsistent row', async () => {
    const added = await sb.addStorageFile({ size: 100 });
    fs.rmSync(added.path);
    try {
      const r = await runJob(host, pool, () => startFilesCheck(host, { resolve: true, confirmCount: 1 }));
      assert.equal(r.outcome.result, 'succeeded', r.log);
      assert.match(r.log, /Inconsistencies resolved successfully\./);
      assert.equal((await sb.psql(`SELECT count(*) FROM file WHERE id = '${added.id}'`)).trim(), '0');
    } finally {
      await sb.forgetStorageFile(added);
    }
  });

  it('fix-permissions gives every entry the live directory group and 750/640 modes', async () => {
    const before = treeState(sb.storagePath);
    const file = storageFilePath(sb.storagePath, sb.seed.activeFileIds[1]);
    fs.chmodSync(file, 0o777);
    fs.chownSync(file, fs.statSync(file).uid, 100);
    fs.chmodSync(path.dirname(file), 0o755);
    const r = await runJob(host, pool, async () => startFixPermissions(host, await discover(host)));
    assert.equal(r.outcome.result, 'succeeded', r.log);
    assert.deepEqual(treeState(sb.storagePath), before);
  });

  it('files-check against a database without its file table fails with exit status 1, never with "0 inconsistencies"', async () => {
    await sb.psql('ALTER TABLE file RENAME TO file_away');
    try {
      const c = kadiOps('files-check', 'sandbox');
      assert.equal(c.code, 1, c.out);
      assert.match(c.out, /relation "file" does not exist/);
      assert.match(c.out, /^kadi files check: failed$/m, c.out);
      assert.match(c.out, /files check: FAILED: it did not run to its end \(sqlalchemy\.exc\.ProgrammingError: \(psycopg2\.errors\.UndefinedTable\) relation "file" does not exist\)/, c.out);
      assert.doesNotMatch(c.out, /0 inconsistenc|: succeeded/, c.out);
      const r = await runJob(host, pool, () => startFilesCheck(host));
      assert.equal(r.outcome.result, 'failed', r.log);
      assert.equal(r.report.filesCheck?.completed, false);
      assert.deepEqual(r.report.steps.map((st) => [st.name, st.result]), [['files-check', 'failed']]);
      assert.ok(r.report.attention.some((a) => /^kadi files check failed \(exit status 1: .*relation "file" does not exist/.test(a)), r.log);
      // The resolving run fails the same way and resolves nothing.
      const resolve = await runJob(host, pool, () => startFilesCheck(host, { resolve: true, confirmCount: 1 }));
      assert.equal(resolve.outcome.result, 'failed', resolve.log);
      assert.match(resolve.log, /kadi files check --resolve failed \(exit status 1: .*relation "file" does not exist/);
    } finally {
      await sb.psql('ALTER TABLE file_away RENAME TO file');
    }
    const after = await runJob(host, pool, () => startFilesCheck(host));
    assert.equal(after.report.filesCheck?.clean, true, after.log);
  });

  it('reindex against a database without its record table fails with exit status 1 and the reason', async () => {
    const saved = fs.readFileSync(sb.searchIndexFile);
    const st = fs.statSync(sb.searchIndexFile);
    await sb.psql('ALTER TABLE record RENAME TO record_away');
    try {
      const c = kadiOps('reindex', 'sandbox', '--model', 'record');
      assert.equal(c.code, 1, c.out);
      assert.match(c.out, /search reindex: FAILED: sqlalchemy\.exc\.ProgrammingError: \(psycopg2\.errors\.UndefinedTable\) relation "record" does not exist/, c.out);
      assert.match(c.out, /^ {2}reindex\s+\d+s {2}FAILED$/m, c.out);
      assert.doesNotMatch(c.out, /: succeeded/);
    } finally {
      await sb.psql('ALTER TABLE record_away RENAME TO record');
      // Kadi leaves the new, unfilled index behind as an orphan; so did the double.
      fs.writeFileSync(sb.searchIndexFile, saved);
      fs.chownSync(sb.searchIndexFile, st.uid, st.gid);
    }
  });

  it('with search down, reindex fails and its orphans are unknown, not none; indices and remove-orphans fail too', async () => {
    sb.configureDouble({ searchUnavailable: true });
    try {
      const c = kadiOps('reindex', 'sandbox');
      assert.equal(c.code, 1, c.out);
      assert.match(c.out, /search reindex: FAILED: elastic_transport\.ConnectionError/, c.out);
      assert.match(c.out, /orphaned indices: unknown \(kadi search ls failed: elastic_transport\.ConnectionError/, c.out);
      assert.doesNotMatch(c.out, /orphaned indices: none/);
      assert.notEqual(kadiOps('indices', 'sandbox').code, 0);
      const rm = kadiOps('remove-orphans', 'sandbox', 'record_20200101000000000009', '--yes', 'sandbox');
      assert.notEqual(rm.code, 0, rm.out);
    } finally {
      sb.configureDouble({ searchUnavailable: false });
    }
  });

  it('db-upgrade that kadi fails exits 1 with the reason', async () => {
    const rev = (await sb.psql('SELECT version_num FROM alembic_version')).trim();
    await sb.psql("UPDATE alembic_version SET version_num = 'ffffffffffff'");
    try {
      const c = kadiOps('db-upgrade', 'sandbox');
      assert.equal(c.code, 1, c.out);
      assert.match(c.out, /kadi db upgrade: FAILED: ERROR \[flask_migrate\] Error: Can't locate revision identified by 'ffffffffffff'/, c.out);
    } finally {
      await sb.psql(`UPDATE alembic_version SET version_num = '${rev}'`);
    }
  });

  it('redis-snapshot makes Redis write a new snapshot', async () => {
    const r = await runJob(host, pool, () => startRedisSnapshot(host));
    assert.equal(r.outcome.result, 'succeeded', r.log);
    assert.match(r.log, /^redis_lastsave=\d+$/m);
    assert.ok(fs.existsSync(sb.redis?.dumpPath ?? ''), 'dump.rdb exists');
  });

  it('a snapshot that ends in the same second as the one before it is seen to end (LASTSAVE counts whole seconds)', async () => {
    // A save of the small sandbox Redis takes milliseconds: one made at the start of a second,
    // then the job's own, end in the same second, so LASTSAVE does not move between them.
    const port = String(sb.redis?.port);
    const cli = (...a: string[]): string => execFileSync('redis-cli', ['-p', port, ...a]).toString().trim();
    while (Date.now() % 1000 > 50) await sleep(5);
    cli('BGSAVE');
    while (!cli('INFO', 'persistence').includes('rdb_bgsave_in_progress:0')) await sleep(5);
    const started = Date.now();
    const r = await runJob(host, pool, () => startRedisSnapshot(host));
    assert.equal(r.outcome.result, 'succeeded', r.log);
    assert.match(r.log, /^redis_lastsave=\d+$/m);
    assert.ok(Date.now() - started < 20_000, `it took ${Date.now() - started} ms`);
  });
});
