import { strict as assert } from 'node:assert';
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startBackup, startVerify } from '../../src/backup/backupSets';
import type { HostProfile } from '../../src/config/types';
import { MemorySink } from '../../src/core/sink';
import { discover, type Discovery } from '../../src/kadi/discovery';
import type { ConnectionPool } from '../../src/remote/connectionPool';
import { followJob, listJobs, LockBusyError } from '../../src/remote/jobs';
import type { RemoteHost } from '../../src/remote/remoteHost';
import type { RestoreComponent } from '../../src/components';
import { formatPlan, preflight, type RestorePlan } from '../../src/restore/preflight';
import { parseJobReport } from '../../src/restore/report';
import { startRestore } from '../../src/restore/restoreJob';
import type { SandboxHost } from '../sandbox/sandbox';
import { holdTableLock } from '../sandbox/tableLock';
import { cutConnections, getSandbox, newPool, profileOf } from './fixture';
import { jobDir, runJob, setNameFrom, sleep, tableDigests, treeState, type Ran } from './restoreHelpers';

describe('restore against the sandbox host', function () {
  this.timeout(600000);
  let sb: SandboxHost;
  let pool: ConnectionPool;
  let profile: HostProfile;
  let host: RemoteHost;

  before(async () => {
    sb = await getSandbox();
    pool = newPool();
    profile = profileOf(sb, 'sudo');
    host = await pool.get(profile);
  });
  after(() => pool.closeAll());

  async function d(): Promise<Discovery> {
    return discover(host);
  }

  async function backup(opts: { filesMode?: 'tree' | 'archive' } = {}): Promise<string> {
    await sleep(1100); // set names have one-second resolution
    const r = await runJob(host, pool, async () => startBackup(host, await d(), opts));
    assert.equal(r.outcome.result, 'succeeded', r.log);
    return setNameFrom(r.log);
  }

  interface Restored extends Ran {
    plan: RestorePlan;
  }

  async function restore(set: string, opts: { components?: RestoreComponent[]; safetyBackup?: boolean; compareContent?: boolean; listing?: string; jobs?: number; onLine?: (l: string) => void } = {}): Promise<Restored> {
    const disc = await d();
    const plan = await preflight(host, disc, set, { components: opts.components, safetyBackup: opts.safetyBackup ?? false, compareContent: opts.compareContent, listing: opts.listing, jobs: opts.jobs });
    assert.deepEqual(plan.blockers, [], 'preflight found no blockers');
    const r = await runJob(host, pool, () => startRestore(host, disc, plan), opts.onLine);
    return { ...r, plan };
  }

  /** The restore job that runs now: by its kind, its missing status and its live process group, not as the last by id (ids sort by their start to the second, and the verification before it may share its second). */
  function runningRestore(): string {
    const dir = path.join(sb.backupDir, '.kadi-ops', 'jobs');
    const read = (j: string, f: string): string => (fs.existsSync(path.join(dir, j, f)) ? fs.readFileSync(path.join(dir, j, f), 'utf8') : '');
    const alive = (j: string): boolean => {
      try {
        process.kill(-Number(read(j, 'pgid')), 0);
        return true;
      } catch {
        return false; // died (killed outright by an earlier test): no status, but not running
      }
    };
    const found = fs.readdirSync(dir).filter((j) => /^kind=restore$/m.test(read(j, 'meta')) && read(j, 'status').trim() === '' && alive(j));
    assert.equal(found.length, 1, found.join(', '));
    return found[0];
  }

  async function snapshot(): Promise<{ db: string; storage: Map<string, string>; uploads: Map<string, string> }> {
    return { db: await tableDigests(sb), storage: treeState(sb.storagePath), uploads: treeState(sb.uploadsPath) };
  }

  it('round trip: rows, files, modes and groups changed after a backup are all back as they were, with a pre-restore safety set', async () => {
    const set = await backup();
    const before = await snapshot();
    // Change rows, add and alter files, break modes and group.
    await sb.psql(`UPDATE record SET title = title || ' (edited)'; DELETE FROM file WHERE id = '${sb.seed.deletedFileId}';`);
    const added = await sb.addStorageFile({ size: 2048 });
    const victim = path.join(sb.storagePath, [...before.storage.keys()].find((k) => !k.endsWith('/') && before.storage.get(k)?.split(' ')[2] !== '0') as string);
    fs.appendFileSync(victim, 'tampered');
    fs.chmodSync(victim, 0o604);
    fs.chownSync(victim, fs.statSync(victim).uid, 100); // group "users"
    const someDir = path.dirname(victim);
    fs.chmodSync(someDir, 0o700);
    // A file whose content is unchanged but whose mode and group are not: rsync copies nothing, yet
    // mode and group must come back (the restore's one pass sets them; no walk after it).
    const attrsOnly = path.join(sb.storagePath, [...before.storage.keys()].find((k) => !k.endsWith('/') && path.join(sb.storagePath, k) !== victim) as string);
    fs.chmodSync(attrsOnly, 0o664);
    fs.chownSync(attrsOnly, fs.statSync(attrsOnly).uid, 100);
    const upl = [...before.uploads.keys()].find((k) => !k.endsWith('/')) as string;
    fs.rmSync(path.join(sb.uploadsPath, upl));
    assert.notEqual(await tableDigests(sb), before.db);

    const r = await restore(set, { safetyBackup: true });
    assert.equal(r.outcome.result, 'succeeded', r.log);
    assert.equal(r.plan.database.mode, 'clean');
    assert.equal(r.plan.verify.ok, true);
    assert.match(r.log, /pg_restore -v --single-transaction --exit-on-error .* --clean --if-exists/);
    const after = await snapshot();
    assert.equal(after.db, before.db, 'database contents as at backup time');
    assert.deepEqual(after.storage, before.storage, 'storage tree, modes and owners as at backup time');
    assert.deepEqual(after.uploads, before.uploads, 'uploads tree as at backup time');
    assert.equal(fs.existsSync(added.path), false, 'a file added after the backup is gone');
    for (const [rel, st] of after.storage) assert.match(st, rel.endsWith('/') ? /^750 / : /^640 /, rel);
    // What it wrote into each tree is noted for the next backup's space check (the files it wrote
    // are copied again: their ctime is after the safety set's copy).
    const notes = fs.readFileSync(path.join(sb.backupDir, '.kadi-ops', 'restored-trees.jsonl'), 'utf8').trim().split('\n').slice(-2).map((l) => JSON.parse(l) as { tree: string; copiedBytes: number });
    assert.deepEqual(notes.map((n) => n.tree).sort(), ['storage', 'uploads']);
    assert.ok(notes.find((n) => n.tree === 'storage')!.copiedBytes >= fs.statSync(victim).size, JSON.stringify(notes));
    // Never hard-linked to the backup.
    const rel = path.relative(sb.storagePath, victim);
    assert.notEqual(fs.statSync(victim).ino, fs.statSync(path.join(sb.backupDir, set, 'storage', rel)).ino);
    // The safety set holds the state before the restore and is marked.
    assert.ok(r.report.safetySet, r.log);
    assert.ok(fs.existsSync(path.join(sb.backupDir, r.report.safetySet as string, '.pre-restore')));
    const safetyTree = treeState(path.join(sb.backupDir, r.report.safetySet as string, 'storage'));
    assert.ok(safetyTree.has(path.relative(sb.storagePath, added.path)), 'the safety set has the file added after the backup');
    // Post-restore checks ran and were parsed.
    assert.equal(r.report.reindex?.success, true, r.log);
    assert.deepEqual(r.report.orphans, []);
    assert.equal(r.report.filesCheck?.clean, true, r.log);
    assert.equal(r.report.result, 'ok');
    assert.equal(r.log.includes(sb.pg.password), false, 'no password in the job log');
    const grep = spawnSync('grep', ['-rlF', '--', sb.pg.password, sb.backupDir], { encoding: 'utf8' });
    assert.equal(grep.stdout.trim(), '', `password found in ${grep.stdout}`);
    // The database first, the files once it is the set's (a failed database step then leaves both as they were).
    const names = r.report.steps.map((s) => s.name);
    assert.deepEqual(names, ['stop-services', 'safety-backup', 'database', 'files', 'redis', 'db-upgrade', 'start-services', 'reindex', 'indices', 'files-check']);
    const at = (re: RegExp): number => r.log.split('\n').findIndex((l) => re.test(l));
    assert.ok(at(/^timing=database /) < at(/^\[step\] files$/), r.log);
  });

  it("the guide's modes and the live tree's group on every entry after a restore, whatever the set recorded; an entry of another owner is named for a root chown", async () => {
    const files = [...treeState(sb.storagePath).keys()].filter((k) => !k.endsWith('/'));
    const [loose, wrongGroup, foreign] = files.map((k) => path.join(sb.storagePath, k));
    // At backup time: a file 644 and its directory 755 (the set records them so).
    fs.chmodSync(loose, 0o644);
    fs.chmodSync(path.dirname(loose), 0o755);
    const set = await backup();
    const kadi = fs.statSync(sb.storagePath);
    // After it: an unchanged file in another group, one owned by root (content as in the set).
    fs.chownSync(wrongGroup, kadi.uid, 100);
    fs.chownSync(foreign, 0, kadi.gid);
    fs.chmodSync(foreign, 0o640);
    const r = await restore(set);
    assert.equal(r.outcome.result, 'succeeded', r.log);
    const after = treeState(sb.storagePath);
    for (const [rel, st] of after) assert.match(st, rel.endsWith('/') ? /^750 / : /^640 /, rel);
    assert.equal(fs.statSync(wrongGroup).gid, kadi.gid, 'group set back');
    assert.equal(fs.statSync(foreign).uid, 0, 'the Kadi user cannot chown: left, and named');
    assert.ok(r.report.attention.some((a) => /^1 entries under .* are not owned by .*; run as root: chown -R /.test(a)), r.log);
    fs.chownSync(foreign, kadi.uid, kadi.gid);
  });

  it('restores into an empty database with a plain pg_restore in one transaction (--jobs 2 is named as not used); the DBA\'s extensions and function are created by the Kadi role', async () => {
    const set = await backup();
    const before = await tableDigests(sb);
    await sb.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'kadi' AND pid <> pg_backend_pid()", 'postgres');
    await sb.psql('DROP DATABASE kadi', 'postgres');
    await sb.psql('CREATE DATABASE kadi OWNER kadi', 'postgres');
    // The DBA installed one of the two extensions into the new database; the other is missing.
    await sb.psql('CREATE EXTENSION pg_trgm');
    const r = await restore(set, { components: ['db'], jobs: 2 });
    assert.equal(r.plan.database.empty, true);
    assert.match(r.log, /^not using --jobs 2: /m);
    assert.match(r.log, /pg_restore -v --single-transaction --exit-on-error .*--no-owner/);
    assert.ok(r.plan.warnings.some((w) => /--jobs 2 is not used/.test(w)), r.plan.warnings.join('\n'));
    // Missing in the new database: the trusted extension and the other role's function are created;
    // the installed extension is kept.
    const decided = (o: string, action: string): boolean => r.plan.db?.decisions.some((x) => x.object === o && x.action === action) ?? false;
    for (const o of ['EXTENSION pgcrypto', 'FUNCTION public.dba_normalize(text)', 'COLLATION public.dba_c', 'TEXT SEARCH CONFIGURATION public.dba_english']) assert.ok(decided(o, 'create'), `${o} is created: ${JSON.stringify(r.plan.db?.decisions)}`);
    assert.ok(decided('EXTENSION pg_trgm', 'keep'), JSON.stringify(r.plan.db?.decisions));
    assert.equal(r.outcome.result, 'succeeded', r.log);
    // Progress counts the TOC entries restored (large objects too) and ends at all the plan enables.
    const entries = (r.plan.db?.listing ?? '').split('\n').filter((l) => /^\d+;/.test(l)).length;
    assert.equal(entries, fs.readFileSync(path.join(sb.backupDir, set, 'db.toc'), 'utf8').split('\n').filter((l) => /^\d+;/.test(l)).length - 2, 'all but the kept pg_trgm and its comment');
    const progress = [...r.log.matchAll(/^\[progress\] database (\d+)% (\d+)\/(\d+) entries$/gm)];
    assert.ok(progress.length > 0, r.log);
    assert.deepEqual(progress.at(-1)?.slice(1), ['100', String(entries), String(entries)], r.log);
    for (const m of progress) assert.equal(Number(m[1]), Math.floor((Number(m[2]) * 100) / entries), m[0]);
    assert.match(r.log, /database is empty: plain pg_restore/);
    assert.doesNotMatch(r.log, /--clean/);
    assert.equal(await tableDigests(sb), before);
    assert.equal((await sb.psql("SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'dba_normalize'")).trim(), 'kadi');
    assert.equal((await sb.psql("SELECT pg_get_userbyid(extowner) FROM pg_extension WHERE extname = 'pgcrypto'")).trim(), 'kadi');
    // The DBA's function goes back to its role for the tests after this one (pgcrypto stays the Kadi role's).
    await sb.psql('ALTER FUNCTION dba_normalize(text) OWNER TO kadi_dba; ALTER COLLATION dba_c OWNER TO kadi_dba; ALTER TEXT SEARCH CONFIGURATION dba_english OWNER TO kadi_dba');
  });

  it('an archive-mode set is extracted and synced: both trees are back as at backup time', async () => {
    await sleep(1100);
    const b = await runJob(host, pool, async () => startBackup(host, await d(), { filesMode: 'archive' }));
    assert.equal(b.outcome.result, 'succeeded', b.log);
    const set = setNameFrom(b.log);
    const before = await snapshot();
    const added = await sb.addStorageFile({ size: 512 });
    const upl = [...before.uploads.keys()].find((k) => !k.endsWith('/')) as string;
    fs.writeFileSync(path.join(sb.uploadsPath, upl), 'changed');
    try {
      const r = await restore(set, { components: ['storage', 'uploads'] });
      assert.equal(r.outcome.result, 'succeeded', r.log);
      assert.match(r.log, /extracting .*storage\.tar\./);
      const after = await snapshot();
      assert.deepEqual(after.storage, before.storage);
      assert.deepEqual(after.uploads, before.uploads);
      assert.equal(fs.readdirSync(jobDir(sb, r.id)).some((n) => n.startsWith('extract-')), false, 'extracted copies are removed');
      // The database was not part of this restore: the row of the added file is still there, and files check reports it.
      assert.deepEqual(r.report.filesCheck?.findings.map((f) => [f.kind, f.fileId]), [['orphaned-active', added.id]], r.log);
    } finally {
      await sb.forgetStorageFile(added);
    }
  });

  it('a file whose bytes changed under the set\'s size and time is kept by a restore by size and time, and repaired and named by one that compares content', async () => {
    const set = await backup();
    const before = await snapshot();
    const rel = [...before.storage.keys()].find((k) => !k.endsWith('/') && Number(before.storage.get(k)?.split(' ')[2]) > 16) as string;
    const live = path.join(sb.storagePath, rel);
    const original = fs.readFileSync(live);
    // Rot: one byte flipped in place, the size and the time (to the nanosecond) as they were.
    const fd = fs.openSync(live, 'r+');
    fs.writeSync(fd, Buffer.from([original[7] ^ 0xff]), 0, 1, 7);
    fs.closeSync(fd);
    const inSet = path.join(sb.backupDir, set, 'storage', rel);
    assert.equal(spawnSync('touch', ['-r', inSet, live]).status, 0);
    const sizeAndTime = (p: string): [bigint, bigint] => {
      const st = fs.statSync(p, { bigint: true });
      return [st.size, st.mtimeNs];
    };
    assert.deepEqual(sizeAndTime(live), sizeAndTime(inSet), 'size and time as in the set');

    let r: Restored;
    try {
      const plain = await restore(set, { components: ['storage'] });
      assert.equal(plain.outcome.result, 'succeeded', plain.log);
      assert.ok(formatPlan(plain.plan).some((l) => /files +compared by size and modification time/.test(l)), formatPlan(plain.plan).join('\n'));
      assert.notDeepEqual(fs.readFileSync(live), original, 'by size and time (as rsync -a) the rotted file is kept');

      r = await restore(set, { components: ['storage'], compareContent: true });
    } finally {
      if (!fs.readFileSync(live).equals(original)) fs.writeFileSync(live, original);
    }
    assert.equal(r.outcome.result, 'succeeded', r.log);
    assert.ok(formatPlan(r.plan).some((l) => /files +compared by content/.test(l)), formatPlan(r.plan).join('\n'));
    assert.deepEqual(fs.readFileSync(live), original, 'repaired from the set');
    assert.equal(r.report.result, 'attention', r.log);
    assert.ok(r.report.attention.some((a) => a.startsWith(`1 files under ${sb.storagePath} had the set's size and modification time but other content (the first: ${live})`)), r.log);
    assert.match(r.log, /storage: \d+ entries checked, 1 files copied .*, \d+ files compared by content \(1 differed\)/);
    assert.deepEqual(treeState(sb.storagePath), before.storage);
  });

  it('a corrupted set is refused at preflight and nothing is started', async () => {
    const set = await backup();
    fs.appendFileSync(path.join(sb.backupDir, set, 'db.dump'), 'x');
    try {
      const plan = await preflight(host, await d(), set, {});
      assert.equal(plan.verify.ok, false);
      assert.ok(plan.blockers.some((b) => /failed verification/.test(b)), plan.blockers.join('\n'));
      await assert.rejects(startRestore(host, await d(), plan), /refused/);
    } finally {
      fs.rmSync(path.join(sb.backupDir, set), { recursive: true, force: true });
    }
  });

  it('a passing verification of the last 24 h is relied on (no re-hash of the trees, shown in the plan); the restore job hashes the dump again and refuses one changed since; 0 hours verifies again and finds damage', async () => {
    const set = await backup();
    const v = await runJob(host, pool, async () => startVerify(host, await d(), set));
    assert.equal(v.outcome.result, 'succeeded', v.log);
    const verifies = async (): Promise<string[]> => (await listJobs(host)).filter((j) => j.kind === 'verify').map((j) => j.id);
    const before = await verifies();
    const plan = await preflight(host, await d(), set, { components: ['db'], safetyBackup: false });
    assert.equal(plan.verify.ok, true);
    assert.equal(plan.verify.jobId, undefined);
    assert.equal(plan.verify.reused?.level, 'quick');
    assert.deepEqual(await verifies(), before, 'no verify job ran');
    assert.match(formatPlan(plan).join('\n'), /verification {7}ok \(quick verification of \S+, relied on; verify again/);
    // The same verification is too old for a 24-hour window a day later.
    const later = await preflight(host, await d(), set, { components: ['db'], safetyBackup: false, now: new Date(Date.now() + 25 * 3600_000) });
    assert.equal(later.verify.reused, undefined);
    assert.ok(later.verify.jobId);
    // Damage after the verification: a byte of the dump changed in place, one pg_restore would not
    // notice (the case of a letter in a table's definition: SQL keywords are case-insensitive). The
    // plan still relies on the verification; the restore job hashes what it reads whole again and
    // refuses, changing nothing.
    const dump = path.join(sb.backupDir, set, 'db.dump');
    const bytes = fs.readFileSync(dump);
    const at = bytes.indexOf('CREATE TABLE ') + 'CREATE '.length;
    assert.ok(at > 'CREATE '.length, 'the dump holds a table definition');
    const fd = fs.openSync(dump, 'r+');
    fs.writeSync(fd, Buffer.from('t'), 0, 1, at);
    fs.closeSync(fd);
    await sb.psql(`UPDATE record SET title = title || ' (after the set)'`);
    const digests = await tableDigests(sb);
    const relied = await preflight(host, await d(), set, { components: ['db'], safetyBackup: false });
    assert.ok(relied.verify.reused, 'the plan relies on the verification');
    assert.deepEqual(relied.blockers, []);
    const refused = await runJob(host, pool, async () => startRestore(host, await d(), relied));
    assert.equal(refused.outcome.result, 'failed', refused.log);
    assert.ok(refused.log.includes("refusing to restore: the set's db.dump is not what its manifest says (its sha256 differs): it changed since the set was made or last verified. Verify the set; nothing was changed"), refused.log);
    assert.equal(await tableDigests(sb), digests, 'the database is as it was');
    // Only a fresh verification (0 hours) sees it at the preflight.
    fs.appendFileSync(path.join(sb.backupDir, set, 'db.dump'), 'x');
    try {
      const again = await preflight(host, await d(), set, { components: ['db'], safetyBackup: false, reuseVerificationHours: 0 });
      assert.equal(again.verify.ok, false);
      assert.ok(again.blockers.some((b) => /failed verification/.test(b)), again.blockers.join('\n'));
    } finally {
      fs.rmSync(path.join(sb.backupDir, set), { recursive: true, force: true });
    }
  });

  it('a restore while a backup runs is refused, naming the holder (relying on a verification or verifying now)', async () => {
    const disc = await d();
    const set = await backup();
    assert.equal((await runJob(host, pool, () => startVerify(host, disc, set))).outcome.result, 'succeeded');
    // The backup waits for a table lock, so it is certainly still running during both preflights.
    const lock = await holdTableLock(sb.pg, 'task');
    const id = await startBackup(host, disc);
    try {
      for (const reuseVerificationHours of [24, 0]) {
        await assert.rejects(preflight(host, disc, set, { reuseVerificationHours }), (e: unknown) => {
          assert.ok(e instanceof LockBusyError, String(e));
          assert.match((e as Error).message, new RegExp(`backup ${id} by \\S+@\\S+ since`));
          return true;
        });
      }
    } finally {
      await lock.release();
      const out = await followJob(host, id, { sink: new MemorySink() });
      assert.equal(out.result, 'succeeded');
    }
  });

  it('a listing that alters a TOC entry is refused at preflight; a valid one restores only what it enables', async () => {
    const set = await backup();
    const toc = fs.readFileSync(path.join(sb.backupDir, set, 'db.toc'), 'utf8');
    const altered = toc.replace(/^(\d+; \d+ \d+ TABLE DATA public record )/m, '$1x');
    const bad = await preflight(host, await d(), set, { components: ['db'], safetyBackup: false, listing: altered });
    assert.ok(bad.blockers.some((b) => /was changed/.test(b)), bad.blockers.join('\n'));
    // Only the record table's data, into the live database after emptying that table.
    const only = toc.split('\n').map((l) => (/^\d+; \d+ \d+ TABLE DATA public record /.test(l) || !/^\d+;/.test(l) ? l : `;${l}`)).join('\n');
    const titles = await sb.psql('SELECT string_agg(title, \',\' ORDER BY id) FROM record');
    await sb.psql('TRUNCATE record CASCADE');
    const r = await restore(set, { components: ['db'], listing: only });
    assert.ok(r.plan.warnings.some((w) => /the rows of TABLE public\.record \(entry \d+\) but leaves out the table itself \(entry \d+\): they are added to the rows the live table holds/.test(w)), r.plan.warnings.join('\n'));
    assert.equal(r.outcome.result, 'succeeded', r.log);
    assert.match(r.log, /restoring the 1 enabled entries of the plan's listing/);
    assert.match(r.log, /^\[progress\] database 100% 1\/1 entries$/m);
    assert.equal(await sb.psql('SELECT string_agg(title, \',\' ORDER BY id) FROM record'), titles);
    // TRUNCATE ... CASCADE emptied the tables referencing record too: a full restore brings them back.
    const full = await restore(set, { components: ['db'] });
    assert.equal(full.outcome.result, 'succeeded', full.log);
    assert.notEqual((await sb.psql('SELECT count(*) FROM file')).trim(), '0');
  });

  it('a pg_restore error fails the restore, shows the failing TOC entry, leaves the database and the files as they were, and running it again completes it', async () => {
    const set = await backup();
    const before = await tableDigests(sb);
    // The DBA refuses the drop of one table (an event trigger, which only a superuser can make):
    // pg_restore fails on that entry, after preflight found nothing against it.
    await sb.psql(
      "CREATE FUNCTION public.kadi_test_refuse_record_drop() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN IF EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() WHERE object_type = 'table' AND object_name = 'record') THEN RAISE EXCEPTION 'dropping record is refused (test)'; END IF; END $$;\n" +
        'CREATE EVENT TRIGGER kadi_test_refuse_record_drop ON sql_drop EXECUTE FUNCTION public.kadi_test_refuse_record_drop();',
    );
    // A storage file added since the set, with its row: after the failed database step the files
    // are not touched, so the row still names a file that is there (side by side, the files step
    // had removed it).
    const extra = await sb.addStorageFile({ size: 100 });
    const beforeRestore = await tableDigests(sb); // the new file's row is in the database now
    const treeBefore = treeState(sb.storagePath);
    try {
      let r: Ran;
      try {
        r = await restore(set, { components: ['db', 'storage'] });
      } finally {
        await sb.psql('DROP EVENT TRIGGER kadi_test_refuse_record_drop; DROP FUNCTION public.kadi_test_refuse_record_drop();');
      }
      assert.equal(r.outcome.result, 'failed', r.log);
      assert.ok(r.report.failedTocEntries.some((e) => /TABLE public record /.test(e)), r.log);
      assert.equal(r.report.failedStep, 'database', r.log);
      assert.doesNotMatch(r.log, /^\[step\] files$/m);
      assert.doesNotMatch(r.log, /inconsistent/);
      assert.equal(fs.existsSync(extra.path), true, 'the files were not touched');
      assert.deepEqual(treeState(sb.storagePath), treeBefore);
      assert.match(r.log, /pg_restore failed .* the database is unchanged/);
      assert.equal(await tableDigests(sb), beforeRestore, 'the failed restore changed nothing in the database');
      const again = await restore(set, { components: ['db', 'storage'] });
      assert.equal(again.outcome.result, 'succeeded', again.log);
      assert.equal(await tableDigests(sb), before);
    } finally {
      await sb.forgetStorageFile(extra); // gone already when the second restore succeeded
    }
  });

  it('a view, a foreign key, a column of a type, a function of a type and a default from a sequence, made after the set on what the restore drops, are named at preflight, and nothing runs', async () => {
    await sb.psql(`SET ROLE kadi; CREATE TYPE "record state; ü" AS ENUM ('draft', 'published'); RESET ROLE;`);
    try {
      const set = await backup();
      // What a newer Kadi's migration leaves: a table referencing record, a view on it, a column of
      // the set's enum, a function taking it, a column numbered from the set's sequence.
      await sb.psql(
        'SET ROLE kadi; CREATE TABLE collection (id serial PRIMARY KEY, record_id integer REFERENCES record (id)); CREATE VIEW record_titles AS SELECT id, title FROM record;' +
          ` CREATE TABLE tagged (s "record state; ü"); CREATE FUNCTION state_label("record state; ü") RETURNS text LANGUAGE sql AS 'SELECT $1::text';` +
          ` CREATE TABLE counter (n integer DEFAULT nextval('record_id_seq')); RESET ROLE;`,
      );
      try {
        const plan = await preflight(host, await d(), set, { components: ['db', 'storage'], safetyBackup: false });
        const blocker = plan.blockers.find((b) => b.includes('depend on what this restore drops')) ?? plan.blockers.join('\n');
        assert.match(blocker, /^5 object\(s\) of the database depend on what this restore drops and creates again/);
        for (const said of [
          'FK CONSTRAINT public.collection collection_record_id_fkey depends on TABLE public.record, and is not in the set',
          'VIEW public.record_titles depends on TABLE public.record, and is not in the set',
          'TABLE public.tagged depends on TYPE public.record state; ü, and is not in the set',
          // Argument types as pg_dump names them (format_type with an empty search_path: schema-qualified).
          'FUNCTION public.state_label(public."record state; ü") depends on TYPE public.record state; ü, and is not in the set',
          'TABLE public.counter depends on SEQUENCE public.record_id_seq, and is not in the set',
        ]) assert.ok(blocker.includes(said), `${said}\n${blocker}`);
      } finally {
        await sb.psql('DROP VIEW record_titles; DROP TABLE collection; DROP TABLE tagged; DROP FUNCTION state_label; DROP TABLE counter;');
      }
      const plan = await preflight(host, await d(), set, { components: ['db', 'storage'], safetyBackup: false });
      assert.deepEqual(plan.blockers, []);
      // In the set with what they depend on, they are dropped and made again with it: nothing named
      // (the set's entries and the live objects are matched by the same names).
      await sb.psql(`SET ROLE kadi; CREATE TABLE tagged (s "record state; ü"); CREATE FUNCTION state_label("record state; ü") RETURNS text LANGUAGE sql AS 'SELECT $1::text'; RESET ROLE;`);
      try {
        const withThem = await backup();
        const again = await preflight(host, await d(), withThem, { components: ['db', 'storage'], safetyBackup: false });
        assert.deepEqual(again.blockers, []);
      } finally {
        await sb.psql('DROP TABLE tagged; DROP FUNCTION state_label;');
      }
    } finally {
      await sb.psql(`DROP TYPE "record state; ü";`);
    }
  });

  it('a partition or an inheriting table made after the set on a table the restore drops is named at preflight (PostgreSQL would drop a partition with its rows); detached, it keeps its rows through the restore', async () => {
    await sb.psql(
      `SET ROLE kadi; CREATE TABLE "events; ü" (id integer, at date) PARTITION BY RANGE (at); CREATE TABLE "events; ü 2025" PARTITION OF "events; ü" FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');` +
        ` CREATE TABLE base_log (n integer); RESET ROLE; INSERT INTO "events; ü" VALUES (1, '2025-05-01');`,
    );
    try {
      const set = await backup();
      // A DBA's partition (another role's) with a row, and a table of Kadi's that inherits.
      await sb.psql(
        `CREATE TABLE "events; ü 2030" PARTITION OF "events; ü" FOR VALUES FROM ('2030-01-01') TO ('2031-01-01'); ALTER TABLE "events; ü 2030" OWNER TO kadi_dba;` +
          ` INSERT INTO "events; ü" VALUES (9, '2030-03-01'); SET ROLE kadi; CREATE TABLE child_log (more integer) INHERITS (base_log); RESET ROLE;`,
      );
      const plan = await preflight(host, await d(), set, { components: ['db'], safetyBackup: false });
      assert.ok(
        plan.blockers.some((b) => b.startsWith('1 partition(s) would be dropped with their rows') && b.includes('TABLE public.events; ü 2030 (a partition of public.events; ü, not in the set)') && b.includes('ALTER TABLE "public"."events; ü" DETACH PARTITION "public"."events; ü 2030";')),
        plan.blockers.join('\n'),
      );
      assert.ok(plan.blockers.some((b) => b.includes('TABLE public.child_log inherits from TABLE public.base_log, and is not in the set')), plan.blockers.join('\n'));
      // The statements the plan names, run: the restore goes ahead, and the detached partition keeps its row.
      await sb.psql('ALTER TABLE "public"."events; ü" DETACH PARTITION "public"."events; ü 2030"; SET ROLE kadi; ALTER TABLE child_log NO INHERIT base_log; RESET ROLE;');
      const r = await restore(set, { components: ['db'] });
      assert.equal(r.outcome.result, 'succeeded', r.log);
      assert.equal((await sb.psql(`SELECT id || ' ' || pg_get_userbyid(relowner) FROM "events; ü 2030", pg_class WHERE oid = '"events; ü 2030"'::regclass`)).trim(), '9 kadi_dba');
      assert.equal((await sb.psql(`SELECT string_agg(id::text, ',') FROM "events; ü"`)).trim(), '1', "the partitioned table is the set's");
    } finally {
      await sb.psql('DROP TABLE IF EXISTS "events; ü", "events; ü 2030", child_log, base_log;');
    }
  });

  it('a grant in the set to a role the server no longer has is named at preflight with the statement to make it; with the role back the restore runs', async () => {
    await sb.psql('CREATE ROLE "kadi reader; ü" NOLOGIN; GRANT SELECT ON record TO "kadi reader; ü";');
    let set: string;
    try {
      set = await backup();
    } finally {
      await sb.psql('REVOKE SELECT ON record FROM "kadi reader; ü"; DROP ROLE "kadi reader; ü";');
    }
    const plan = await preflight(host, await d(), set, { components: ['db'], safetyBackup: false });
    const blocker = plan.blockers.find((b) => b.includes('role(s) this server does not have')) ?? plan.blockers.join('\n');
    assert.match(blocker, /^The set's privileges name 1 role\(s\) this server does not have \("kadi reader; ü"\).*CREATE ROLE "kadi reader; ü" NOLOGIN;.*leaves out the privilege entries \d+\.$/);
    await sb.psql('CREATE ROLE "kadi reader; ü" NOLOGIN;');
    try {
      const r = await restore(set, { components: ['db'] });
      assert.equal(r.outcome.result, 'succeeded', r.log);
      assert.equal((await sb.psql(`SELECT has_table_privilege('kadi reader; ü', 'public.record', 'SELECT')`)).trim(), 't');
    } finally {
      await sb.psql('REVOKE SELECT ON record FROM "kadi reader; ü"; DROP ROLE "kadi reader; ü";');
    }
  });

  it('a row security policy in the set for a role the server no longer has is named at preflight (it used to fail the restore part way); with the role back the restore runs', async () => {
    await sb.psql(`CREATE ROLE "auditor; ü" NOLOGIN; SET ROLE kadi; CREATE POLICY "audit; TO x" ON record FOR SELECT TO "auditor; ü" USING (id IN (SELECT r.id FROM record r)); RESET ROLE;`);
    let set: string;
    try {
      set = await backup();
    } finally {
      await sb.psql('DROP POLICY "audit; TO x" ON record; DROP ROLE "auditor; ü";');
    }
    const plan = await preflight(host, await d(), set, { components: ['db'], safetyBackup: false });
    const blocker = plan.blockers.find((b) => b.includes('role(s) this server does not have')) ?? plan.blockers.join('\n');
    assert.match(blocker, /^The set's row security policies name 1 role\(s\) this server does not have \("auditor; ü"\): PostgreSQL would refuse those policies .*CREATE ROLE "auditor; ü" NOLOGIN;.*leaves out the policy entries \d+\.$/);
    await sb.psql('CREATE ROLE "auditor; ü" NOLOGIN;');
    try {
      const r = await restore(set, { components: ['db'] });
      assert.equal(r.outcome.result, 'succeeded', r.log);
      assert.equal((await sb.psql(`SELECT string_agg(polname, ',') FROM pg_policy`)).trim(), 'audit; TO x');
    } finally {
      await sb.psql('DROP POLICY IF EXISTS "audit; TO x" ON record; DROP ROLE "auditor; ü";');
    }
  });

  it('a partitioned table with a primary key restores onto the live database (its partitions\' constraints dropped with the parent\'s)', async () => {
    await sb.psql(
      // With a foreign key to a table the restore drops: PostgreSQL copies it to each partition,
      // copies pg_dump never dumps (and which must not read as objects the set lacks).
      'SET ROLE kadi; CREATE TABLE measurement (id bigserial, at date NOT NULL, user_id integer REFERENCES "user" (id), PRIMARY KEY (id, at)) PARTITION BY RANGE (at); ' +
        "CREATE TABLE measurement_2024 PARTITION OF measurement FOR VALUES FROM ('2024-01-01') TO ('2025-01-01'); " +
        "CREATE TABLE measurement_2025 PARTITION OF measurement FOR VALUES FROM ('2025-01-01') TO ('2026-01-01'); " +
        "INSERT INTO measurement (at) VALUES ('2024-03-01'), ('2025-03-01'); RESET ROLE;",
    );
    try {
      const set = await backup();
      const before = await tableDigests(sb);
      await sb.psql("INSERT INTO measurement (at) VALUES ('2024-04-01'); DELETE FROM measurement WHERE at = '2025-03-01';");
      const r = await restore(set, { components: ['db'] });
      assert.equal(r.outcome.result, 'succeeded', r.log);
      assert.equal(await tableDigests(sb), before);
      assert.equal((await sb.psql("SELECT count(*) FROM pg_constraint WHERE conname LIKE 'measurement%pkey'")).trim(), '3', 'the keys are back, joined');
    } finally {
      await sb.psql('DROP TABLE measurement');
    }
  });

  it('a restore waiting for a lock another session holds says who holds it, and goes on when it is released', async () => {
    const set = await backup();
    const lock = await holdTableLock(sb.pg, 'task');
    let released = false;
    try {
      const r = await restore(set, {
        components: ['db'],
        onLine: (l) => {
          if (!released && l.startsWith('database: waiting for a lock held by pid ')) {
            released = true;
            void lock.release();
          }
        },
      });
      assert.equal(r.outcome.result, 'succeeded', r.log);
      assert.match(r.log, /^database: waiting for a lock held by pid \d+ \(user kadi, application 'kadi-ops-test-lock', idle in transaction, transaction open \d+ s\); the restore goes on when that transaction ends/m);
      assert.equal(r.log.split('\n').filter((l) => l.startsWith('database: waiting for a lock')).length, 1, 'said once while the same session holds it');
    } finally {
      await lock.release();
    }
  });

  it('a files step that fails after the database was restored says the instance may be inconsistent, pins the pre-restore set, and running the restore again completes it', async () => {
    const set = await backup();
    const before = await snapshot();
    await sb.psql(`UPDATE record SET title = title || ' (edited)'`);
    // A file changed since the set, whose copy in the set the Kadi user can no longer read once the
    // preflight verified it (what a disk error gives): the sync cannot put the set's file back.
    const rel = [...before.storage.keys()].find((k) => !k.endsWith('/') && before.storage.get(k)?.split(' ')[2] !== '0') as string;
    fs.appendFileSync(path.join(sb.storagePath, rel), 'changed since the set');
    const disc = await d();
    const plan = await preflight(host, disc, set, { components: ['db', 'storage'], safetyBackup: true });
    assert.deepEqual(plan.blockers, []);
    const setFile = path.join(sb.backupDir, set, 'storage', rel);
    const st = fs.statSync(setFile);
    fs.chownSync(setFile, 0, 0);
    fs.chmodSync(setFile, 0o000);
    let r: Ran;
    try {
      r = await runJob(host, pool, () => startRestore(host, disc, plan));
    } finally {
      fs.chownSync(setFile, st.uid, st.gid);
      fs.chmodSync(setFile, st.mode & 0o7777);
    }
    assert.equal(r.outcome.result, 'failed', r.log);
    assert.equal(r.report.failedStep, 'files', r.log);
    const safety = r.report.safetySet as string;
    assert.ok(safety, r.log);
    assert.ok(
      r.log.includes(`the files step failed part way: the trees are partly the set's, the database is the set's, so the instance may be inconsistent: restore again (it completes what was done), or restore the pre-restore set ${safety} (pinned, so that retention keeps it)`),
      r.log,
    );
    const pin = path.join(sb.backupDir, safety, '.pinned');
    assert.ok(fs.existsSync(pin), 'the one whole state from before is pinned');
    fs.rmSync(pin);
    assert.equal(await tableDigests(sb), before.db, 'the database step had committed');
    const again = await restore(set, { components: ['db', 'storage'] });
    assert.equal(again.outcome.result, 'succeeded', again.log);
    assert.doesNotMatch(again.log, /inconsistent/);
    assert.deepEqual(treeState(sb.storagePath), before.storage);
  });

  for (const filesMode of ['tree', 'archive'] as const) it(`a directory of the set the Kadi user cannot write in the live tree (root's, a stray sudo mkdir) is refused before anything runs: the database, the files and the sets stay as they were (a set of ${filesMode} mode)`, async () => {
    const set = await backup({ filesMode });
    assert.equal(fs.readdirSync(path.join(sb.backupDir, set)).some((n) => /^storage\.tar\./.test(n)), filesMode === 'archive', `a set of ${filesMode} mode`);
    await sb.psql(`UPDATE record SET title = title || ' (edited)'`);
    const before = await snapshot();
    const rel = [...before.storage.keys()].find((k) => !k.endsWith('/') && before.storage.get(k)?.split(' ')[2] !== '0') as string;
    fs.appendFileSync(path.join(sb.storagePath, rel), 'changed since the set');
    const changed = await snapshot();
    const dir = path.dirname(path.join(sb.storagePath, rel));
    const st = fs.statSync(dir);
    fs.chownSync(dir, 0, 0);
    fs.chmodSync(dir, 0o755);
    const sets = fs.readdirSync(sb.backupDir).filter((n) => /^\d{4}-/.test(n));
    let r: Restored;
    try {
      r = await restore(set, { components: ['db', 'storage'], safetyBackup: true });
    } finally {
      fs.chownSync(dir, st.uid, st.gid);
      fs.chmodSync(dir, st.mode & 0o7777);
    }
    assert.equal(r.outcome.result, 'failed', r.log);
    assert.ok(
      r.log.includes(`refusing to restore: 1 directory under STORAGE_PATH ${sb.storagePath} that the set also has cannot be written by ${sb.kadiUser} (${dir} (owner root, mode 755)): its files could not be restored, and that would only show after the database was. As root, run: chown -R ${sb.kadiUser}:`),
      r.log,
    );
    assert.doesNotMatch(r.log, /\[step\] (safety-backup|stop|database|files)/, 'refused before a step ran');
    assert.equal(await tableDigests(sb), changed.db, 'the database is as it was');
    assert.deepEqual(treeState(sb.storagePath), changed.storage, 'the files are as they were');
    assert.deepEqual(fs.readdirSync(sb.backupDir).filter((n) => /^\d{4}-/.test(n)), sets, 'no set was made or removed');
    const again = await restore(set, { components: ['db', 'storage'] });
    assert.equal(again.outcome.result, 'succeeded', again.log);
  });

  it('a restore killed outright during the file sync (its cleanup never runs) is told as died half done, its pre-restore set stays pinned, and a restore again completes it', async () => {
    // Enough files that the sync is still copying them when it is killed.
    const bulk = path.join(sb.storagePath, 'zz-bulk');
    fs.mkdirSync(bulk, { mode: 0o750 });
    for (let i = 0; i < 20000; i++) fs.writeFileSync(path.join(bulk, String(i)), 'x'.repeat(64), { mode: 0o640 });
    spawnSync('chown', ['-R', `${fs.statSync(sb.storagePath).uid}:${fs.statSync(sb.storagePath).gid}`, bulk]);
    try {
      const set = await backup();
      const before = await snapshot();
      fs.rmSync(bulk, { recursive: true });
      await sb.psql(`UPDATE record SET title = title || ' (edited)'`);
      const disc = await d();
      const plan = await preflight(host, disc, set, { components: ['db', 'storage'], safetyBackup: true });
      assert.deepEqual(plan.blockers, []);
      const id = await startRestore(host, disc, plan);
      const dir = jobDir(sb, id);
      const log = (): string => (fs.existsSync(path.join(dir, 'log')) ? fs.readFileSync(path.join(dir, 'log'), 'utf8') : '');
      for (let i = 0; i < 1200 && !/^syncing /m.test(log()); i++) await sleep(25);
      assert.match(log(), /^syncing /m, 'the files step began');
      process.kill(-Number(fs.readFileSync(path.join(dir, 'pgid'), 'utf8')), 'SIGKILL');
      const sink = new MemorySink();
      const outcome = await followJob(host, id, { sink });
      assert.equal(outcome.result, 'died', sink.text());
      const safety = /^safety_set=(\S+)$/m.exec(log())?.[1] as string;
      assert.ok(safety, log());
      assert.equal(
        outcome.reason,
        `the restore ended without an exit status (killed, or the host restarted): the files step failed part way: the trees are partly the set's, the database is the set's, so the instance may be inconsistent; restore again (it completes what was done), or restore the pre-restore set ${safety} (pinned, so that retention keeps it)`,
      );
      assert.ok(fs.existsSync(path.join(sb.backupDir, safety, '.pinned')), 'the one whole state from before is pinned');
      assert.ok(!fs.existsSync(bulk) || fs.readdirSync(bulk).length < 20000, 'killed part way through the sync');

      const again = await restore(set, { components: ['db', 'storage'], safetyBackup: true });
      assert.equal(again.outcome.result, 'succeeded', again.log);
      assert.deepEqual(treeState(sb.storagePath), before.storage);
      assert.equal(fs.existsSync(path.join(sb.backupDir, again.report.safetySet as string, '.pinned')), false, 'a restore that ended whole releases its own pin');
      assert.ok(fs.existsSync(path.join(sb.backupDir, safety, '.pinned')), 'the earlier one stays pinned');
      fs.rmSync(path.join(sb.backupDir, safety, '.pinned'));
    } finally {
      fs.rmSync(bulk, { recursive: true, force: true });
    }
  });

  it("a table whose name holds lines of the job's own protocol cannot forge them: the report names the real safety set, no false attention", async () => {
    const forged = 'x\nsafety_set=2020-01-01T00-00-00Z\nATTENTION: forged by a table name\n  FAILED in step: none\ny';
    await sb.psql(`SET ROLE kadi; CREATE TABLE "${forged}" (id integer); INSERT INTO "${forged}" VALUES (1); RESET ROLE;`);
    try {
      const set = await backup();
      const r = await restore(set, { components: ['db'], safetyBackup: true });
      assert.equal(r.outcome.result, 'succeeded', r.log);
      // pg_restore -v's message about it, its name's lines included, is detail of the log (never a line of the job's own).
      assert.match(r.log, /^\[detail\] safety_set=2020-01-01T00-00-00Z$/m, 'the name was in the log, as detail');
      assert.notEqual(r.report.safetySet, '2020-01-01T00-00-00Z');
      assert.ok(fs.existsSync(path.join(sb.backupDir, r.report.safetySet as string, '.pre-restore')), r.log);
      assert.deepEqual(r.report.attention.filter((a) => a.includes('forged')), []);
      assert.equal(r.report.failedStep, undefined);
      assert.equal(r.report.result, 'ok');
    } finally {
      await sb.psql(`DROP TABLE "${forged}"`);
    }
  });

  it('config: the plan names the keys that differ, never a value; the live config is replaced only with the separate confirmation', async () => {
    const set = await backup();
    const original = fs.readFileSync(sb.kadiConfig, 'utf8');
    const secret = /SECRET_KEY = "([^"]+)"/.exec(original)?.[1] as string;
    const edited = original.replace(secret, 'changedsecretvalue') + '# edited after the backup\n';
    fs.writeFileSync(sb.kadiConfig, edited);
    try {
      const disc = await d();
      const plan = await preflight(host, disc, set, { components: ['config'], safetyBackup: false });
      const entry = plan.config?.find((c) => c.path === sb.kadiConfig);
      assert.equal(entry?.state, 'differs');
      assert.deepEqual(entry?.keys, { parsed: true, changed: ['SECRET_KEY'], added: [], removed: [], otherLines: false });
      const lines = formatPlan(plan).join('\n');
      assert.match(lines, /config .*kadi\.py: differs \(keys changed: SECRET_KEY\)/);
      assert.doesNotMatch(JSON.stringify(plan) + lines, new RegExp(`${secret}|changedsecretvalue|${sb.pg.password}`));
      const kept = await runJob(host, pool, () => startRestore(host, disc, plan));
      assert.equal(kept.outcome.result, 'succeeded', kept.log);
      assert.match(kept.log, /^skipped=config \(not overwritten without confirmation\)$/m);
      assert.equal(fs.readFileSync(sb.kadiConfig, 'utf8'), edited);
      const replaced = await runJob(host, pool, () => startRestore(host, disc, plan, { overwriteConfig: true }));
      assert.equal(replaced.outcome.result, 'succeeded', replaced.log);
      assert.equal(fs.readFileSync(sb.kadiConfig, 'utf8'), original);
    } finally {
      fs.writeFileSync(sb.kadiConfig, original);
    }
  });

  it('the CLI prints the plan and changes nothing without --yes naming the host; with it, restores and summarises', async () => {
    const set = await backup();
    const config = sb.writeConfigFile();
    const cli = path.resolve(__dirname, '../../src/cli/main.js');
    const run = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      new Promise((resolve) => {
        execFile(process.execPath, [cli, ...args, '--config', config], { maxBuffer: 1 << 24 }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
      });
    const jobsBefore = new Set(fs.readdirSync(path.join(sb.backupDir, '.kadi-ops', 'jobs')));
    const no = await run('restore', 'sandbox-sudo', set, '--components', 'db', '--no-safety-backup');
    assert.equal(no.code, 2, no.stderr);
    assert.match(no.stdout, /Restore plan for sandbox-sudo/);
    assert.match(no.stdout, /database +\d+ relations: pg_restore --clean --if-exists/);
    assert.match(no.stderr, /repeat with --yes sandbox-sudo/);
    const wrongJobs = fs.readdirSync(path.join(sb.backupDir, '.kadi-ops', 'jobs')).length;
    const wrong = await run('restore', 'sandbox-sudo', set, '--components', 'db', '--no-safety-backup', '--yes', 'sandbox');
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /does not name this host/);
    // With --json the refusal is the error line every usage error is.
    const wrongJson = await run('restore', 'sandbox-sudo', set, '--components', 'db', '--no-safety-backup', '--yes', 'sandbox', '--json');
    assert.equal(wrongJson.code, 2);
    const err = JSON.parse(wrongJson.stderr.trim()) as { error: { kind: string; message: string; exitCode: number; command: string } };
    assert.deepEqual([err.error.kind, err.error.exitCode, err.error.command], ['usage', 2, 'restore']);
    assert.match(err.error.message, /does not name this host/);
    // Said before anything runs: no preflight verify job (before: the set was verified first), no plan.
    assert.equal(fs.readdirSync(path.join(sb.backupDir, '.kadi-ops', 'jobs')).length, wrongJobs, wrong.stderr);
    assert.equal(wrong.stdout, '');
    // A --listing that cannot be read: a usage error naming it, before anything connects.
    const missing = await run('restore', 'sandbox-sudo', set, '--listing', path.join(sb.root, 'no-such-listing'), '--yes', 'sandbox-sudo');
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /--listing \S+no-such-listing: cannot read it \(no such file\); nothing changed/);
    assert.doesNotMatch(missing.stderr, /ENOENT|verif/i);
    const checksum = await run('restore', 'sandbox-sudo', set, '--components', 'storage', '--no-safety-backup', '--checksum');
    assert.equal(checksum.code, 2, checksum.stderr);
    assert.match(checksum.stdout, /^ {2}files {14}compared by content: every file of the set and of the live trees is read/m);
    // Only the two preflight verify jobs ran; no restore job was started.
    // The new jobs by name, not the last by id: ids sort by their start to the second, and the
    // backup just before may share its second with them (it was taken for one once, in CI).
    const kinds = fs.readdirSync(path.join(sb.backupDir, '.kadi-ops', 'jobs')).filter((j) => !jobsBefore.has(j)).map((j) => /kind=(\S+)/.exec(fs.readFileSync(path.join(jobDir(sb, j), 'meta'), 'utf8'))?.[1]);
    assert.ok(kinds.every((k) => k === 'verify'), kinds.join(','));
    const yes = await run('restore', 'sandbox-sudo', set, '--components', 'db', '--no-safety-backup', '--yes', 'sandbox-sudo');
    assert.equal(yes.code, 0, yes.stderr);
    assert.match(yes.stderr, /Restore of \S+ onto sandbox-sudo: succeeded/);
    assert.match(yes.stderr, /database +\d+s/);
    assert.match(yes.stderr, /search reindex: ok/);
    // Quiet by default: steps, progress and summaries on the console; pg_restore -v's per-entry
    // messages and each system table ANALYZE skipped only in the job's log, ANALYZE's counted.
    assert.match(yes.stdout, /^\[progress\] database 100% /m);
    assert.doesNotMatch(yes.stdout, /^pg_restore: (creating|processing|executing) |^\[detail\] |^WARNING: .*analyze/m);
    const restoreJob = fs.readdirSync(path.join(sb.backupDir, '.kadi-ops', 'jobs')).sort().reverse().find((j) => /kind=restore/.test(fs.readFileSync(path.join(jobDir(sb, j), 'meta'), 'utf8')));
    const log = fs.readFileSync(path.join(jobDir(sb, restoreJob ?? ''), 'log'), 'utf8');
    assert.match(log, /^\[detail\] pg_restore: creating TABLE /m, 'the job log keeps the chatter');
    const skipped = log.match(/^\[detail\] WARNING: .*analyze/gm)?.length ?? 0;
    assert.ok(skipped > 0, 'the Kadi role is no superuser: ANALYZE skips system tables');
    assert.match(yes.stdout, new RegExp(`^ANALYZE skipped ${skipped} system tables only their owner or a superuser may analyze$`, 'm'));
    const verbose = await run('restore', 'sandbox-sudo', set, '--components', 'db', '--no-safety-backup', '--yes', 'sandbox-sudo', '--verbose');
    assert.equal(verbose.code, 0, verbose.stderr);
    assert.match(verbose.stdout, /^\[detail\] pg_restore: creating TABLE /m, '--verbose shows it live');
  });

  it('reindex errors after a restore fail the job and name the objects', async () => {
    const id = sb.seed.recordIds[1];
    await sb.psql(`UPDATE record SET title = 'broken [index-error]' WHERE id = ${id}`);
    const set = await backup();
    try {
      const r = await restore(set, { components: ['db'] });
      assert.equal(r.outcome.result, 'failed', r.log);
      assert.equal(r.report.reindex?.success, false);
      assert.deepEqual(r.report.reindex?.errors, [{ model: 'record', id: String(id) }]);
      assert.ok(r.report.attention.some((a) => /could not be indexed/.test(a)), r.log);
      assert.equal(r.report.result, 'failed');
    } finally {
      await sb.psql(`UPDATE record SET title = 'record ${id}' WHERE id = ${id}`);
    }
  });

  it('a restore whose SSH connection is cut during pg_restore completes on the host and re-attach reports it', async () => {
    await sb.psql("SET ROLE kadi; CREATE TABLE bulk AS SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b FROM generate_series(1, 1500000) g; ALTER TABLE bulk ADD PRIMARY KEY (id); CREATE INDEX ON bulk (a); RESET ROLE;");
    const set = await backup();
    const before = await tableDigests(sb);
    await sb.psql('UPDATE bulk SET a = b WHERE id % 1000 = 0');
    let cutAt = '';
    let id = '';
    const r = await restore(set, {
      components: ['db'],
      onLine: (l) => {
        if (l.startsWith('pg_restore -v --single-transaction') && !cutAt) {
          id = runningRestore();
          setTimeout(() => {
            cutAt = fs.readFileSync(path.join(jobDir(sb, id), 'log'), 'utf8');
            cutConnections(sb);
          }, 700);
        }
      },
    });
    assert.ok(cutAt, 'the connection was cut');
    assert.doesNotMatch(cutAt, /^timing=database /m, 'the cut happened while pg_restore ran');
    assert.equal(r.outcome.result, 'succeeded', r.log);
    assert.match(r.log, /^timing=database \d+$/m);
    assert.equal(await tableDigests(sb), before);
    await sb.psql('DROP TABLE bulk');
  });

  it('a restore cancelled during pg_restore ends cancelled, names the step and the safety set, and a new restore completes it', async () => {
    await sb.psql("SET ROLE kadi; CREATE TABLE bulk AS SELECT g AS id, md5(g::text) AS a FROM generate_series(1, 1500000) g; ALTER TABLE bulk ADD PRIMARY KEY (id); CREATE INDEX ON bulk (a); RESET ROLE;");
    try {
      const set = await backup();
      const before = await tableDigests(sb);
      const disc = await d();
      const plan = await preflight(host, disc, set, { components: ['db'], safetyBackup: true });
      const id = await startRestore(host, disc, plan);
      const ac = new AbortController();
      const sink = new MemorySink();
      const outcome = await followJob(host, id, {
        sink,
        signal: ac.signal,
        onLine: (l) => {
          if (l.startsWith('pg_restore -v --single-transaction')) setTimeout(() => ac.abort(), 500);
        },
      });
      const log = sink.text('stdout');
      assert.equal(outcome.result, 'cancelled', log);
      const report = parseJobReport(log);
      assert.equal(report.failedStep, 'database', log);
      assert.ok(report.safetySet, log);
      assert.match(log, new RegExp(`The state before this restore is in the pre-restore set ${report.safetySet}`));
      // One transaction: the cancelled restore's drops and loads were rolled back, and the job
      // asked PostgreSQL so rather than saying it may have committed.
      assert.match(log, /^database: pg_restore's transaction was rolled back as the job ended: the database is as it was$/m);
      assert.doesNotMatch(log, /unless pg_restore had just committed/);
      assert.equal(await tableDigests(sb), before, 'the cancelled restore changed nothing in the database');
      const again = await restore(set, { components: ['db'] });
      assert.equal(again.outcome.result, 'succeeded', again.log);
      assert.equal(await tableDigests(sb), before);
    } finally {
      await sb.psql('DROP TABLE IF EXISTS bulk');
    }
  });

  it('a restore whose SSH connection is cut during the file sync completes on the host and re-attach reports it', async () => {
    // Not a hex directory: no Kadi file id can live under it, so removing it touches only these.
    const bulk = path.join(sb.storagePath, 'zz-bulk');
    fs.mkdirSync(bulk, { recursive: true });
    for (let i = 0; i < 20000; i++) fs.writeFileSync(path.join(bulk, `bulk-${i}`), `content ${i}\n`.repeat(20));
    spawnChown(sb.storagePath);
    const set = await backup();
    const before = treeState(sb.storagePath);
    fs.rmSync(bulk, { recursive: true });
    let cutAt = '';
    const r = await restore(set, {
      components: ['storage'],
      onLine: (l) => {
        if (l.startsWith('syncing ') && !cutAt) {
          const id = runningRestore();
          cutAt = fs.readFileSync(path.join(jobDir(sb, id), 'log'), 'utf8');
          cutConnections(sb);
        }
      },
    });
    assert.ok(cutAt, 'the connection was cut');
    assert.doesNotMatch(cutAt, /^timing=files /m, 'the cut happened during the file step');
    assert.equal(r.outcome.result, 'succeeded', r.log);
    assert.deepEqual(treeState(sb.storagePath), before);
    fs.rmSync(bulk, { recursive: true });
  });

  it('a set from another Kadi version runs kadi db upgrade after the restore', async () => {
    const set = await backup();
    sb.configureDouble({ version: '1.14.0' });
    try {
      const disc = await d();
      assert.equal(disc.facts.kadiVersion, '1.14.0');
      const r = await restore(set, { components: ['db'] });
      assert.equal(r.plan.kadi.upgrade, true);
      assert.equal(r.outcome.result, 'succeeded', r.log);
      assert.equal(r.report.dbUpgrade?.success, true, r.log);
      assert.equal(r.report.dbUpgrade?.migrations.length, 1);
      const rev = (await sb.psql('SELECT version_num FROM alembic_version')).trim();
      assert.equal(rev, r.report.dbUpgrade?.migrations[0].to);
    } finally {
      sb.configureDouble({ version: '1.13.0' });
    }
    // Back on the set's version the schema is newer than the set's: restoring it again resets it.
    const back = await restore(set, { components: ['db'] });
    assert.equal(back.outcome.result, 'succeeded', back.log);
    assert.equal((await sb.psql('SELECT version_num FROM alembic_version')).trim(), back.plan.kadi.setRevision);
  });
});

function spawnChown(dir: string): void {
  const st = fs.statSync(dir);
  const walk = (p: string): void => {
    for (const e of fs.readdirSync(p, { withFileTypes: true })) {
      const q = path.join(p, e.name);
      fs.chownSync(q, st.uid, st.gid);
      fs.chmodSync(q, e.isDirectory() ? 0o750 : 0o640);
      if (e.isDirectory()) walk(q);
    }
  };
  walk(dir);
}
