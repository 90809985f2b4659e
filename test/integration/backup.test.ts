import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listSets, startBackup, startPrune, startVerify } from '../../src/backup/backupSets';
import { planFromProfile } from '../../src/backup/hostPlan';
import type { BackupSet } from '../../src/backup/manifest';
import type { HostProfile } from '../../src/config/types';
import { MemorySink } from '../../src/core/sink';
import { discover, type Discovery } from '../../src/kadi/discovery';
import { runAgent } from '../../src/remote/agent';
import type { ConnectionPool } from '../../src/remote/connectionPool';
import { followJob, jobLog, LockBusyError, listJobs, type JobOutcome } from '../../src/remote/jobs';
import type { RemoteHost } from '../../src/remote/remoteHost';
import type { SandboxHost } from '../sandbox/sandbox';
import { getSandbox, newPool, profileOf } from './fixture';
import { sleep, tableDigests, treeState } from './restoreHelpers';

interface Ran {
  id: string;
  outcome: JobOutcome;
  sink: MemorySink;
}

async function runJob(host: RemoteHost, pool: ConnectionPool, start: () => Promise<string>): Promise<Ran> {
  const id = await start();
  const sink = new MemorySink();
  const outcome = await followJob(host, id, { sink, reconnect: () => pool.get(host.profile) });
  return { id, outcome, sink };
}

function setNameFrom(r: Ran): string {
  const m = /^set=(\S+)$/m.exec(r.sink.text('stdout'));
  assert.ok(m, `backup printed no set name:\n${r.sink.text()}`);
  return m[1];
}

describe('backup engine against the sandbox host', function () {
  this.timeout(300000);
  let sb: SandboxHost;
  let pool: ConnectionPool;
  let profile: HostProfile;
  let host: RemoteHost;
  let d: Discovery;
  let first: string;

  before(async () => {
    sb = await getSandbox();
    pool = newPool();
    profile = profileOf(sb, 'sudo');
    host = await pool.get(profile);
    d = await discover(host);
    assert.deepEqual(d.facts.problems, []);
  });
  after(() => pool.closeAll());

  /** Runs fn with a set's storage file list rewritten (renamed into place), then puts the original back. */
  async function withStorageList(set: string, rewrite: (original: string) => string, fn: () => Promise<void>): Promise<void> {
    const list = path.join(sb.backupDir, set, 'storage.files.jsonl');
    const original = fs.readFileSync(list, 'utf8');
    const swap = (text: string): void => {
      fs.writeFileSync(`${list}.swap`, text);
      fs.renameSync(`${list}.swap`, list);
    };
    swap(rewrite(original));
    try {
      await fn();
    } finally {
      swap(original);
    }
  }

  it('discovers the sandbox host: Kadi version, schema revision, PostgreSQL and paths', () => {
    assert.match(d.facts.kadiVersion ?? '', /^\d+\.\d+\.\d+$/);
    assert.match(d.facts.alembicRevision ?? '', /^[0-9a-f]+$/);
    assert.equal(d.facts.storagePath, sb.storagePath);
    assert.equal(d.facts.uploadsPath, sb.uploadsPath);
    assert.equal(d.facts.database.port, sb.pg.port);
    assert.ok(d.facts.pg.pgDump?.includes(`/${d.facts.pg.serverMajor}/`), d.facts.pg.pgDump);
    assert.equal(JSON.stringify(d.facts).includes(sb.pg.password), false, 'facts carry no password');
  });

  it('reuses the Kadi configuration read on a connection until the config file changes; a new connection reads it again', async () => {
    const file = sb.kadiConfig;
    const original = fs.readFileSync(file, 'utf8');
    const st = fs.statSync(file);
    const past = new Date(Date.now() - 60_000);
    fs.utimesSync(file, past, past);
    // The kadi CLI and the Kadi package's metadata are part of the stamp too; a file changed in the
    // last seconds is never cached, and the sandbox has just written them when this file runs first
    // or alone.
    fs.utimesSync(sb.kadiCli, past, past);
    const site = path.join(path.dirname(path.dirname(sb.kadiCli)), 'lib', 'python3.11', 'site-packages');
    const metadata = (): string => path.join(site, fs.readdirSync(site).find((n) => n.startsWith('kadi-')) ?? 'none');
    fs.utimesSync(metadata(), past, past);
    const other = newPool();
    try {
      const h = await other.get(profile);
      assert.equal((await discover(h)).facts.uploadsPath, sb.uploadsPath);
      // An edit that keeps the file's identity (inode, size, mtime) is not seen on this connection:
      // the proof that `kadi utils config` was not run again.
      const edited = original.replace(`MISC_UPLOADS_PATH = "${sb.uploadsPath}"`, `MISC_UPLOADS_PATH = "${sb.uploadsPath.slice(0, -1)}X"`);
      assert.notEqual(edited, original);
      fs.writeFileSync(file, edited);
      fs.utimesSync(file, past, past);
      assert.equal(fs.statSync(file).ino, st.ino);
      assert.equal((await discover(h)).facts.uploadsPath, sb.uploadsPath);
      // Nor is `kadi --version` run again: the double told to print another version without being
      // installed anew (its knob file is no part of a real installation) is not asked.
      const knobs = path.join(path.dirname(sb.kadiConfig), 'kadi-double.json');
      const knobsBefore = fs.existsSync(knobs) ? fs.readFileSync(knobs, 'utf8') : undefined;
      fs.writeFileSync(knobs, JSON.stringify({ ...(knobsBefore ? (JSON.parse(knobsBefore) as object) : {}), version: '1.13.0rc9' }));
      try {
        assert.equal((await discover(h)).facts.kadiVersion, '1.13.0');
        // A fresh connection asks it.
        const fresh0 = newPool();
        try {
          assert.equal((await discover(await fresh0.get(profile))).facts.kadiVersion, '1.13.0rc9');
        } finally {
          fresh0.closeAll();
        }
        // So does this connection once Kadi is installed anew (pip writes the CLI again).
        fs.copyFileSync(sb.kadiCli, `${sb.kadiCli}.new`);
        fs.chownSync(`${sb.kadiCli}.new`, fs.statSync(sb.kadiCli).uid, fs.statSync(sb.kadiCli).gid);
        fs.chmodSync(`${sb.kadiCli}.new`, 0o755);
        fs.renameSync(`${sb.kadiCli}.new`, sb.kadiCli);
        const installed = new Date(Date.now() - 20_000);
        fs.utimesSync(sb.kadiCli, installed, installed);
        assert.equal((await discover(h)).facts.kadiVersion, '1.13.0rc9');
      } finally {
        if (knobsBefore === undefined) fs.rmSync(knobs);
        else fs.writeFileSync(knobs, knobsBefore);
      }
      // A fresh connection reads the configuration.
      const fresh = newPool();
      try {
        assert.equal((await discover(await fresh.get(profile))).facts.uploadsPath, `${sb.uploadsPath.slice(0, -1)}X`);
      } finally {
        fresh.closeAll();
      }
      // Any change of the file's mtime makes this connection read it again.
      const later = new Date(Date.now() - 30_000);
      fs.utimesSync(file, later, later);
      assert.equal((await discover(h)).facts.uploadsPath, `${sb.uploadsPath.slice(0, -1)}X`);
    } finally {
      other.closeAll();
      fs.writeFileSync(file, original);
    }
  });

  it('a backup restores with plain pg_restore to identical tables, and its trees equal the originals', async () => {
    const r = await runJob(host, pool, () => startBackup(host, d));
    assert.equal(r.outcome.result, 'succeeded', r.sink.text());
    first = setNameFrom(r);
    // Progress: every entry of each tree (files and directories, as rsync counts them), and the
    // manifest's hashing, end at 100%.
    const out = r.sink.text('stdout');
    for (const [tree, root] of [['storage', sb.storagePath], ['uploads', sb.uploadsPath]] as const) {
      const n = treeState(root).size + 1; // + the tree's root directory
      assert.match(out, new RegExp(`^\\[progress\\] ${tree} 100% ${n}/${n} entries$`, 'm'));
    }
    assert.match(out, /^\[progress\] manifest 100% (\d+)\/\1 bytes$/m);
    const listing = await listSets(host);
    const set = listing.sets.find((s) => s.name === first) as BackupSet;
    assert.ok(set, 'the new set is listed');
    assert.equal(set.status, 'unverified');
    assert.equal(listing.partials.length, 0);
    const dir = path.join(sb.backupDir, first);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    for (const n of fs.readdirSync(dir)) {
      const st = fs.lstatSync(path.join(dir, n));
      if (st.isFile()) assert.equal(st.mode & 0o077, 0, `${n} is readable by others: ${(st.mode & 0o777).toString(8)}`);
    }
    // The profile's default dump compression, as pg_restore reads it from the dump's header.
    assert.equal(set.manifest.options.dumpCompression, 3);
    assert.match(fs.readFileSync(path.join(dir, 'db.toc'), 'utf8'), /^;\s+Compression: 3$/m);
    for (const a of set.manifest.artifacts) {
      const sha = execFileSync('sha256sum', [path.join(dir, a.name)]).toString().split(' ')[0];
      assert.equal(sha, a.sha256, a.name);
    }
    // Plain pg_restore into a fresh database: identical table contents.
    await sb.psql('drop database if exists restored_check');
    await sb.psql('create database restored_check');
    execFileSync(path.join(sb.pg.binDir, 'pg_restore'), ['-h', sb.pg.socketDir, '-p', String(sb.pg.port), '-U', 'postgres', '-d', 'restored_check', '--no-owner', path.join(dir, 'db.dump')]);
    assert.equal(await tableDigests(sb, 'restored_check'), await tableDigests(sb, 'kadi'));
    assert.deepEqual(treeState(path.join(dir, 'storage')), treeState(sb.storagePath));
    assert.deepEqual(treeState(path.join(dir, 'uploads')), treeState(sb.uploadsPath));
  });

  it('quick verify marks a good set verified', async () => {
    const r = await runJob(host, pool, () => startVerify(host, d, first));
    assert.equal(r.outcome.result, 'succeeded', r.sink.text());
    const set = (await listSets(host)).sets.find((s) => s.name === first);
    assert.equal(set?.status, 'verified');
    // Progress over every byte checked: the artifacts and the trees' files.
    const m = set?.manifest;
    const bytes = (m?.artifacts ?? []).reduce((n, a) => n + a.size, 0) + Object.values(m?.trees ?? {}).reduce((n, t) => n + t.bytes, 0);
    assert.match(r.sink.text('stdout'), new RegExp(`^\\[progress\\] verify 100% ${bytes}/${bytes} bytes$`, 'm'));
  });

  it('a second backup copies only new files; the rest are hard links, and each set stands alone', async () => {
    const added = [await sb.addStorageFile({ size: 4096 }), await sb.addStorageFile({ size: 10 })];
    await sleep(1100); // set names have one-second resolution
    const r = await runJob(host, pool, () => startBackup(host, d));
    assert.equal(r.outcome.result, 'succeeded', r.sink.text());
    const second = setNameFrom(r);
    const s1 = path.join(sb.backupDir, first, 'storage');
    const s2 = path.join(sb.backupDir, second, 'storage');
    const rels = [...treeState(s1).keys()].filter((k) => !k.endsWith('/'));
    assert.ok(rels.length > 10);
    for (const rel of rels) assert.equal(fs.statSync(path.join(s2, rel)).ino, fs.statSync(path.join(s1, rel)).ino, `${rel} is linked`);
    for (const a of added) {
      const rel = path.relative(sb.storagePath, a.path);
      assert.ok(fs.existsSync(path.join(s2, rel)));
      assert.equal(fs.existsSync(path.join(s1, rel)), false);
    }
    const set2 = (await listSets(host)).sets.find((s) => s.name === second);
    assert.equal(set2?.manifest.trees?.storage.newFiles, 2);
    // Progress: the repeat set's total is the previous set's entry count, shown as an estimate,
    // and the last line is the exact count, which the manifest records for the next set.
    const entries = (set: string): number => treeState(path.join(sb.backupDir, set, 'storage')).size + 1;
    const entriesOf = (s: BackupSet | undefined): number | undefined => s?.manifest.artifacts.find((a) => a.tree === 'storage')?.entries;
    const set1 = (await listSets(host)).sets.find((s) => s.name === first);
    assert.equal(entriesOf(set1), entries(first));
    assert.equal(entriesOf(set2), entries(second));
    const out = r.sink.text('stdout');
    assert.match(out, new RegExp(`^\\[progress\\] storage ~\\d+% \\d+/~${entries(first)} entries$`, 'm'));
    assert.match(out, new RegExp(`^\\[progress\\] storage 100% ${entries(second)}/${entries(second)} entries$`, 'm'));
    // Deleting the first set leaves the second complete and verifiable.
    const p = await runJob(host, pool, () => startPrune(host, [first]));
    assert.equal(p.outcome.result, 'succeeded', p.sink.text());
    const v = await runJob(host, pool, () => startVerify(host, d, second));
    assert.equal(v.outcome.result, 'succeeded', v.sink.text());
    first = second;
  });

  it('copies only what changed since the previous set (content or mode), keeps every mode and time, and reports what is no file', async () => {
    const changed = await sb.addStorageFile({ size: 2048 });
    const chmodded = await sb.addStorageFile({ size: 2048 });
    await sleep(1100); // set names have one-second resolution
    const r0 = await runJob(host, pool, () => startBackup(host, d));
    assert.equal(r0.outcome.result, 'succeeded', r0.sink.text());
    const base = setNameFrom(r0);
    // Same size, other content (and a new mtime); the other file's mode only. Both are put back
    // afterwards: the file's database row holds the original's checksum (deep verify checks it).
    const original = fs.readFileSync(changed.path);
    fs.writeFileSync(changed.path, Buffer.alloc(2048, 7));
    const mode = fs.statSync(chmodded.path).mode & 0o7777;
    fs.chmodSync(chmodded.path, 0o600);
    const link = path.join(sb.storagePath, 'kadi-ops-test-link');
    const fifo = path.join(sb.storagePath, 'kadi-ops-test-fifo');
    fs.symlinkSync('no/such/target', link);
    execFileSync('mkfifo', [fifo]);
    try {
      await sleep(1100);
      const r = await runJob(host, pool, () => startBackup(host, d));
      assert.equal(r.outcome.result, 'succeeded', r.sink.text());
      const name = setNameFrom(r);
      assert.match(r.sink.text('stdout'), /^storage: symbolic link kadi-ops-test-link copied as a link \(not checksummed\)$/m);
      assert.match(r.sink.text(), /^WARNING: storage: skipping special file kadi-ops-test-fifo$/m);
      const set = (await listSets(host)).sets.find((s) => s.name === name) as BackupSet;
      assert.equal(set.manifest.trees?.storage.newFiles, 2);
      const prevTree = path.join(sb.backupDir, base, 'storage');
      const tree = path.join(sb.backupDir, name, 'storage');
      const listed = new Map(
        fs.readFileSync(path.join(sb.backupDir, name, 'storage.files.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as [string, number, number, string]).map((e) => [e[0], e]),
      );
      for (const f of [changed, chmodded]) {
        const rel = path.relative(sb.storagePath, f.path);
        assert.notEqual(fs.statSync(path.join(tree, rel)).ino, fs.statSync(path.join(prevTree, rel)).ino, `${rel} is a new copy`);
        assert.equal(listed.get(rel)?.[3], execFileSync('sha256sum', [f.path]).toString().split(' ')[0]);
      }
      assert.deepEqual(fs.readFileSync(path.join(tree, path.relative(sb.storagePath, changed.path))), Buffer.alloc(2048, 7));
      // Every directory, file and link of the source is in the set with its mode and mtime (to the
      // nanosecond: the next set links by them); the FIFO is not.
      const walk = (rel: string): void => {
        for (const e of fs.readdirSync(path.join(sb.storagePath, rel), { withFileTypes: true })) {
          const r2 = path.join(rel, e.name);
          if (e.isFIFO()) {
            assert.equal(fs.existsSync(path.join(tree, r2)), false);
            continue;
          }
          const s = fs.lstatSync(path.join(sb.storagePath, r2), { bigint: true });
          const t = fs.lstatSync(path.join(tree, r2), { bigint: true });
          assert.equal(t.mode, s.mode, `${r2} mode`);
          assert.equal(t.mtimeNs, s.mtimeNs, `${r2} mtime`);
          if (e.isDirectory()) walk(r2);
          else if (e.isFile() && r2 !== path.relative(sb.storagePath, changed.path) && r2 !== path.relative(sb.storagePath, chmodded.path)) {
            assert.equal(t.ino, fs.lstatSync(path.join(prevTree, r2), { bigint: true }).ino, `${r2} is linked`);
          }
        }
      };
      walk('');
      assert.equal(fs.readlinkSync(path.join(tree, 'kadi-ops-test-link')), 'no/such/target');
      assert.equal(listed.has('kadi-ops-test-link'), false);
      first = name;
    } finally {
      fs.rmSync(link);
      fs.rmSync(fifo);
      fs.chmodSync(chmodded.path, mode);
      fs.writeFileSync(changed.path, original);
    }
  });

  it("a readable file of another owner is copied once, then linked like the Kadi user's own files", async () => {
    const foreign = path.join(sb.storagePath, 'kadi-ops-test-foreign');
    fs.writeFileSync(foreign, 'owned by root, readable by all', { mode: 0o644 }); // the job runs as kadi
    try {
      const sets: string[] = [];
      for (let i = 0; i < 2; i++) {
        await sleep(1100);
        const r = await runJob(host, pool, () => startBackup(host, d));
        assert.equal(r.outcome.result, 'succeeded', r.sink.text());
        sets.push(setNameFrom(r));
      }
      const [a, b] = sets.map((s) => fs.statSync(path.join(sb.backupDir, s, 'storage', 'kadi-ops-test-foreign')));
      assert.notEqual(a.uid, fs.statSync(foreign).uid, 'the copy is the Kadi user\'s');
      assert.equal(b.ino, a.ino, 'the second set links the first copy');
      const set = (await listSets(host)).sets.find((s) => s.name === sets[1]) as BackupSet;
      assert.equal(set.manifest.trees?.storage.newFiles, 0);
      first = sets[1];
    } finally {
      fs.rmSync(foreign);
    }
  });

  it("a previous set whose file list is in another order (an older version's) still has every unchanged file linked", async () => {
    // The copier reads the previous list in step with its walk; a list in any other order is read whole.
    await withStorageList(first, (original) => `${original.trim().split('\n').reverse().join('\n')}\n`, async () => {
      await sleep(1100);
      const r = await runJob(host, pool, () => startBackup(host, d));
      assert.equal(r.outcome.result, 'succeeded', r.sink.text());
      const name = setNameFrom(r);
      const set = (await listSets(host)).sets.find((s) => s.name === name) as BackupSet;
      assert.equal(set.manifest.trees?.storage.newFiles, 0, r.sink.text());
      const rels = [...treeState(path.join(sb.backupDir, name, 'storage')).keys()].filter((k) => !k.endsWith('/'));
      assert.ok(rels.length > 10);
      for (const rel of rels) assert.equal(fs.statSync(path.join(sb.backupDir, name, 'storage', rel)).ino, fs.statSync(path.join(sb.backupDir, first, 'storage', rel)).ino, `${rel} is linked`);
      first = name;
    });
  });

  it("a previous set's file list that cannot be read links nothing: every file is copied and hashed again, with a warning", async () => {
    await withStorageList(first, (original) => `${original}["half a line", 3\n`, async () => {
      await sleep(1100);
      const r = await runJob(host, pool, () => startBackup(host, d));
      assert.equal(r.outcome.result, 'succeeded', r.sink.text());
      assert.match(r.sink.text(), /^WARNING: storage: the previous set's file list is unreadable \(.+\); copying every file$/m);
      const set = (await listSets(host)).sets.find((s) => s.name === setNameFrom(r)) as BackupSet;
      assert.equal(set.manifest.trees?.storage.newFiles, set.manifest.trees?.storage.files);
      const v = await runJob(host, pool, () => startVerify(host, d, set.name));
      assert.equal(v.outcome.result, 'succeeded', v.sink.text());
      const p = await runJob(host, pool, () => startPrune(host, [set.name]));
      assert.equal(p.outcome.result, 'succeeded', p.sink.text());
    });
  });

  it("files whose copy in the previous set cannot be looked at are copied afresh; the backup does not fail", async () => {
    const prev = (await listSets(host)).sets[0].name;
    const list = fs.readFileSync(path.join(sb.backupDir, prev, 'storage.files.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as [string])[0]);
    const top = (list.find((r) => r.includes('/')) as string).split('/')[0];
    const under = list.filter((r) => r.startsWith(top + '/')).length;
    const blocked = path.join(sb.backupDir, prev, 'storage', top);
    const mode = fs.statSync(blocked).mode & 0o7777;
    fs.chmodSync(blocked, 0); // the job runs as the Kadi user: lstat under it is refused
    try {
      const r = await runJob(host, pool, () => startBackup(host, d));
      assert.equal(r.outcome.result, 'succeeded', r.sink.text());
      const set = (await listSets(host)).sets.find((x) => x.name === setNameFrom(r)) as BackupSet;
      const t = set.manifest.trees?.storage;
      assert.ok(t && t.newFiles >= under && t.newFiles < t.files, `copied ${t?.newFiles} of ${t?.files}; ${under} under ${top}`);
      const v = await runJob(host, pool, () => startVerify(host, d, set.name));
      assert.equal(v.outcome.result, 'succeeded', v.sink.text());
      const p = await runJob(host, pool, () => startPrune(host, [set.name]));
      assert.equal(p.outcome.result, 'succeeded', p.sink.text());
    } finally {
      fs.chmodSync(blocked, mode);
    }
  });

  it('a file the Kadi user cannot read fails the backup, naming it, and leaves no partial set', async () => {
    const unreadable = path.join(sb.storagePath, 'kadi-ops-test-unreadable');
    fs.writeFileSync(unreadable, 'root only', { mode: 0o600 }); // owned by root, the job runs as kadi
    try {
      const r = await runJob(host, pool, () => startBackup(host, d));
      assert.equal(r.outcome.result, 'failed', r.sink.text());
      assert.match(r.sink.text(), /copying .*kadi-ops-test-unreadable failed: .*Permission denied/);
      const listing = await listSets(host);
      assert.equal(listing.partials.length, 0);
      assert.equal(listing.sets[0].name, first, 'the newest set is still the last good one');
    } finally {
      fs.rmSync(unreadable);
    }
  });

  it('a table the Kadi role cannot count fails the backup once the dump and copies have ended, naming it', async () => {
    // A directory without write permission for its owner (the set keeps it so): the partial set
    // must still be removed by the job, which runs as the Kadi user.
    const readOnly = path.join(sb.storagePath, 'kadi-ops-test-readonly');
    const owner = fs.statSync(sb.storagePath);
    fs.mkdirSync(readOnly);
    fs.writeFileSync(path.join(readOnly, 'inside'), 'kept read-only', { mode: 0o440 });
    for (const p of [path.join(readOnly, 'inside'), readOnly]) fs.chownSync(p, owner.uid, owner.gid);
    fs.chmodSync(readOnly, 0o550);
    await sb.psql('CREATE TABLE kadi_ops_test_private (x int); INSERT INTO kadi_ops_test_private VALUES (1);');
    try {
      const r = await runJob(host, pool, () => startBackup(host, d));
      assert.equal(r.outcome.result, 'failed', r.sink.text());
      assert.match(r.sink.text(), /^ERROR: counting rows: .*permission denied for table kadi_ops_test_private/m);
      // The copies ran to their end before the failure: their progress reached 100%.
      assert.match(r.sink.text(), /^\[progress\] storage 100% /m);
      assert.match(r.sink.text(), /^\[kadi-ops\] removed partial set /m);
      const listing = await listSets(host);
      assert.equal(listing.partials.length, 0);
      assert.equal(listing.sets[0].name, first);
      assert.deepEqual(fs.readdirSync(sb.backupDir).filter((n) => n.startsWith('.partial-')), []);
      // A complete set with that directory is pruned whole, too.
      await sb.psql('DROP TABLE kadi_ops_test_private');
      await sleep(1100);
      const ok = await runJob(host, pool, () => startBackup(host, d));
      assert.equal(ok.outcome.result, 'succeeded', ok.sink.text());
      const name = setNameFrom(ok);
      assert.equal(fs.statSync(path.join(sb.backupDir, name, 'storage', 'kadi-ops-test-readonly')).mode & 0o777, 0o550);
      const p = await runJob(host, pool, () => startPrune(host, [name]));
      assert.equal(p.outcome.result, 'succeeded', p.sink.text());
      assert.deepEqual(fs.readdirSync(sb.backupDir).filter((n) => n.includes(name)), []);
    } finally {
      await sb.psql('DROP TABLE IF EXISTS kadi_ops_test_private');
      fs.rmSync(readOnly, { recursive: true });
    }
  });

  it('a second backup while one runs is refused at once, naming the holder', async () => {
    const id = await startBackup(host, d);
    try {
      await assert.rejects(startBackup(host, d), (e: unknown) => {
        assert.ok(e instanceof LockBusyError);
        assert.match((e as Error).message, new RegExp(`backup ${id} by \\S+@\\S+ since`));
        return true;
      });
    } finally {
      const out = await followJob(host, id, { sink: new MemorySink() });
      assert.equal(out.result, 'succeeded');
    }
  });

  it('the database password is in no argv, log, job file or output line during a backup', async () => {
    const seen: string[] = [];
    const watcher = setInterval(() => {
      const r = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
      if (r.stdout.includes(sb.pg.password)) seen.push(r.stdout.split('\n').filter((l) => l.includes(sb.pg.password)).join('\n'));
    }, 20);
    let r: Ran;
    try {
      r = await runJob(host, pool, () => startBackup(host, d));
    } finally {
      clearInterval(watcher);
    }
    assert.equal(r.outcome.result, 'succeeded', r.sink.text());
    assert.deepEqual(seen, []);
    assert.equal(r.sink.text().includes(sb.pg.password), false);
    const grep = spawnSync('grep', ['-rlF', '--', sb.pg.password, sb.backupDir], { encoding: 'utf8' });
    assert.equal(grep.stdout.trim(), '', `password found in ${grep.stdout}`);
  });

  it('a plan stored on the host runs without a client: the password comes from Kadi\'s configuration, the set is complete and verifies', async () => {
    const plan = planFromProfile(profile);
    const stored = await runAgent(host, 'plan-store', [profile.backupDir], { stdin: JSON.stringify(plan) });
    assert.equal(stored.code, 0, stored.stderr);
    const planFile = path.join(sb.backupDir, '.kadi-ops', 'plan.json');
    assert.equal(fs.statSync(planFile).mode & 0o777, 0o600);
    const seen: string[] = [];
    const watcher = setInterval(() => {
      const r = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
      if (r.stdout.includes(sb.pg.password)) seen.push('a process argv');
    }, 20);
    let ran;
    try {
      // No stdin, no options: what a systemd timer's service would run on the host.
      ran = await runAgent(host, 'run-plan', [profile.backupDir, 'wait=yes']);
    } finally {
      clearInterval(watcher);
    }
    assert.equal(ran.code, 0, ran.stdout + ran.stderr);
    assert.match(ran.stdout, /^job_status=0$/m);
    const name = /^set=(\S+)$/m.exec(ran.stdout)?.[1] as string;
    assert.ok(name, ran.stdout);
    assert.deepEqual(seen, []);
    assert.equal((ran.stdout + ran.stderr).includes(sb.pg.password), false);
    assert.equal(spawnSync('grep', ['-rlF', '--', sb.pg.password, sb.backupDir], { encoding: 'utf8' }).stdout.trim(), '');
    const job = (await listJobs(host)).find((j) => j.id === /^job=(\S+)$/m.exec(ran.stdout)?.[1]);
    assert.equal(job?.operator, 'scheduled');
    const set = (await listSets(host)).sets.find((s) => s.name === name) as BackupSet;
    assert.equal(set.manifest.profile, profile.name);
    assert.equal(set.manifest.kadiVersion, d.facts.kadiVersion);
    assert.deepEqual(set.manifest.paths, { storage: d.facts.storagePath, uploads: d.facts.uploadsPath, kadiConfig: profile.kadi.configFile });
    const v = await runJob(host, pool, () => startVerify(host, d, name));
    assert.equal(v.outcome.result, 'succeeded', v.sink.text());
    const p = await runJob(host, pool, () => startPrune(host, [name]));
    assert.equal(p.outcome.result, 'succeeded', p.sink.text());
    // A plan that is not valid is refused before anything is stored.
    const bad = await runAgent(host, 'plan-store', [profile.backupDir], { stdin: JSON.stringify({ ...plan, password: 'x' }) });
    assert.equal(bad.code, 2);
    assert.match(bad.stdout, /^plan_error=plan: unknown key password$/m);
    fs.rmSync(planFile);
  });

  it("a host's dumpCompression is the dump's gzip level, recorded in the manifest", async () => {
    const plain = await pool.get(profileOf(sb, 'sudo', (p) => Object.assign(p, { name: 'sandbox-z0', dumpCompression: 0 })));
    const r = await runJob(plain, pool, async () => startBackup(plain, await discover(plain)));
    assert.equal(r.outcome.result, 'succeeded', r.sink.text());
    assert.match(r.sink.text('stdout'), /^\[step\] database: pg_dump -Fc -Z 0 /m);
    const name = setNameFrom(r);
    const set = (await listSets(plain)).sets.find((s) => s.name === name) as BackupSet;
    assert.equal(set.manifest.options.dumpCompression, 0);
    const toc = execFileSync(path.join(sb.pg.binDir, 'pg_restore'), ['-l', path.join(sb.backupDir, name, 'db.dump')]).toString();
    assert.match(toc, /^;\s+Compression: 0$/m);
    // Uncompressed, the dump is larger than the default level's dump of the same database.
    const compressed = (await listSets(host)).sets.find((s) => s.name === first) as BackupSet;
    const size = (s: BackupSet): number => s.manifest.artifacts.find((a) => a.name === 'db.dump')?.size ?? 0;
    assert.ok(size(set) > size(compressed), `${size(set)} > ${size(compressed)}`);
    const p = await runJob(host, pool, () => startPrune(host, [name]));
    assert.equal(p.outcome.result, 'succeeded', p.sink.text());
  });

  it('lists recent jobs with their outcome', async () => {
    const jobs = await listJobs(host);
    assert.ok(jobs.length >= 3);
    assert.ok(jobs.every((j) => j.state === 'finished'), JSON.stringify(jobs.map((j) => [j.id, j.kind, j.state, j.status])));
    assert.ok(jobs.some((j) => j.kind === 'backup' && j.status === '0'));
    const done = jobs.find((j) => j.kind === 'backup' && j.status === '0')!;
    const log = await jobLog(host, done.id);
    assert.match(log, new RegExp(`job ${done.id}: backup started`));
    assert.match(log, /exit status 0/);
    await assert.rejects(jobLog(host, '../../etc'), /no job/);
  });
});
