/**
 * Faults caused for real against the sandbox host: cut connections at each phase of a backup,
 * killed processes, a full backup filesystem, corrupted artifacts, and what deep verify finds.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listSets, startBackup, startVerify } from '../../src/backup/backupSets';
import type { HostProfile } from '../../src/config/types';
import { MemorySink, type OutputSink } from '../../src/core/sink';
import { discover, type Discovery } from '../../src/kadi/discovery';
import type { ConnectionPool } from '../../src/remote/connectionPool';
import { cancelJob, type CancelResult, describeOutcome, followJob, jobStatus, listJobs, LockBusyError, type JobOutcome } from '../../src/remote/jobs';
import type { RemoteHost } from '../../src/remote/remoteHost';
import type { SandboxHost } from '../sandbox/sandbox';
import { holdTableLock } from '../sandbox/tableLock';
import { cutConnections, getSandbox, holdStaleLock, newPool, profileOf } from './fixture';
import { setNameFrom, sleep } from './restoreHelpers';

interface Ran {
  id: string;
  outcome: JobOutcome;
  sink: MemorySink;
}

/** Writes a file (or makes a directory) in the live tree as its owner's; `made` remembers it for the cleanup. */
function plant(root: string, made: string[], rel: string, content?: Buffer): string {
  const p = path.join(root, rel);
  if (content) fs.writeFileSync(p, content);
  else fs.mkdirSync(p);
  const own = fs.statSync(root);
  fs.chownSync(p, own.uid, own.gid);
  made.push(p);
  return p;
}

/** Polls every 2 ms (a job's moment can be short) until `check` holds; fails with `what` after 60 s. */
async function pollUntil(what: string, check: () => boolean): Promise<void> {
  const until = Date.now() + 60_000;
  while (!check() && Date.now() < until) await sleep(2);
  assert.ok(check(), what);
}

/** Copies a file to a new inode with one byte flipped (other sets sharing the inode are untouched). */
function flipByte(file: string, at: number): void {
  const b = fs.readFileSync(file);
  b[at % b.length] ^= 0xff;
  const st = fs.statSync(file);
  fs.writeFileSync(file + '.tmp', b, { mode: st.mode });
  fs.chownSync(file + '.tmp', st.uid, st.gid);
  fs.renameSync(file + '.tmp', file);
}

function truncateCopy(file: string): void {
  const b = fs.readFileSync(file);
  const st = fs.statSync(file);
  fs.writeFileSync(file + '.tmp', b.subarray(0, Math.floor(b.length / 2)), { mode: st.mode });
  fs.chownSync(file + '.tmp', st.uid, st.gid);
  fs.renameSync(file + '.tmp', file);
}

describe('backup faults and verification against the sandbox host', function () {
  this.timeout(600000);
  let sb: SandboxHost;
  let pool: ConnectionPool;
  let profile: HostProfile;
  let host: RemoteHost;
  let d: Discovery;

  const run = async (start: () => Promise<string>, sink: OutputSink = new MemorySink()): Promise<Ran> => {
    const id = await start();
    const mem = sink instanceof MemorySink ? sink : new MemorySink();
    const outcome = await followJob(host, id, { sink: sink === mem ? mem : { lines: (s, l) => (mem.lines(s, l), sink.lines(s, l)) }, reconnect: () => pool.get(profile) });
    return { id, outcome, sink: mem };
  };

  before(async () => {
    sb = await getSandbox();
    pool = newPool();
    profile = profileOf(sb, 'direct');
    host = await pool.get(profile);
    // A table big enough that pg_dump runs for a few seconds, so faults land inside the dump.
    await sb.psql("CREATE TABLE IF NOT EXISTS fault_bulk AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS payload FROM generate_series(1, 1500000) g; ALTER TABLE fault_bulk OWNER TO kadi;");
    d = await discover(host);
  });
  after(async () => {
    pool.closeAll();
    await sb.psql('DROP TABLE IF EXISTS fault_bulk;');
  });

  it('a backup whose pg_dump waits for a lock another session holds says who holds it, and goes on when it is released', async () => {
    const lock = await holdTableLock(sb.pg, 'task');
    let released = false;
    try {
      const sink: OutputSink = {
        lines: (_s, lines) => {
          if (!released && lines.some((l) => l.startsWith('database: waiting for a lock held by pid '))) {
            released = true;
            void lock.release();
          }
        },
      };
      const r = await run(() => startBackup(host, d), sink);
      assert.equal(r.outcome.result, 'succeeded', r.sink.text());
      assert.match(r.sink.text(), /^database: waiting for a lock held by pid \d+ \(user kadi, application 'kadi-ops-test-lock', idle in transaction, transaction open \d+ s\); the dump goes on when that transaction ends: end that client's transaction or stop it, or cancel the backup \(nothing changes\)$/m);
      const said = r.sink.text().split('\n').filter((l) => l.startsWith('database: waiting for a lock held by pid '));
      assert.equal(said.length, 1, `the holder is named once, not once per waiting session:\n${said.join('\n')}`);
    } finally {
      await lock.release();
    }
  });

  for (const phase of [
    { name: 'during the dump', marker: /^\[step\] database: pg_dump/ },
    { name: 'during the file copies', marker: /^\[step\] files:/ },
    { name: 'just before sealing', marker: /^\[step\] manifest/ },
  ]) {
    it(`a connection cut ${phase.name} never stops the job; re-attach reports its outcome`, async () => {
      let cut = false;
      const partialsSeenAsGood: string[] = [];
      const watcher: OutputSink = {
        lines: (stream, lines) => {
          if (!cut && stream === 'stdout' && lines.some((l) => phase.marker.test(l))) {
            cut = true;
            assert.ok(cutConnections(sb) > 0, 'connections were cut');
          }
        },
      };
      const r = await run(() => startBackup(host, d), watcher);
      assert.ok(cut, 'the phase was reached and the cut happened');
      assert.equal(r.outcome.result, 'succeeded', r.sink.text());
      assert.match(r.sink.text('warn'), /Connection to .* lost/);
      const set = setNameFrom(r.sink.text('stdout'));
      // A fresh client sees the finished job and the complete set; nothing partial is a set.
      const other = newPool();
      try {
        const h2 = await other.get(profile);
        const info = await jobStatus(h2, r.id);
        assert.equal(info.state, 'finished');
        assert.equal(info.status, '0');
        const listing = await listSets(h2);
        assert.ok(listing.sets.some((s) => s.name === set));
        for (const s of listing.sets) if (s.name.startsWith('.partial')) partialsSeenAsGood.push(s.name);
        assert.deepEqual(partialsSeenAsGood, []);
        assert.equal(listing.partials.length, 0);
      } finally {
        other.closeAll();
      }
    });
  }

  it('a job that finished while nobody watched is reported on re-attach, with its whole log', async () => {
    const id = await startBackup(host, d);
    pool.closeAll(); // the client goes away entirely
    const other = newPool();
    try {
      const h2 = await other.get(profile);
      let info = await jobStatus(h2, id);
      while (info.state === 'running') {
        await new Promise((r) => setTimeout(r, 300));
        info = await jobStatus(h2, id);
      }
      const sink = new MemorySink();
      const outcome = await followJob(h2, id, { sink });
      assert.equal(outcome.result, 'succeeded', sink.text());
      assert.match(sink.text('stdout'), /^set=/m);
      assert.match(sink.text('stdout'), /job .* exit status 0/);
    } finally {
      other.closeAll();
    }
    host = await pool.get(profile);
  });

  it('a killed job is reported as died; its partial set is never listed as a backup and can be cleaned', async () => {
    const id = await startBackup(host, d);
    // Wait for pg_dump to be under way, then kill the job's whole process group.
    let info = await jobStatus(host, id);
    for (let i = 0; i < 100 && !/^pg_dump$/m.test(execFileSync('ps', ['-e', '-o', 'comm']).toString()); i++) await new Promise((r) => setTimeout(r, 50));
    info = await jobStatus(host, id);
    const pgid = Number(fs.readFileSync(path.join(sb.backupDir, '.kadi-ops', 'jobs', id, 'pgid'), 'utf8'));
    assert.ok(pgid > 1);
    process.kill(-pgid, 'SIGKILL');
    const outcome = await followJob(host, id, { sink: new MemorySink() });
    assert.equal(outcome.result, 'died');
    // The job never reached its cleanup; the next look at it removes its secret files.
    const jobDir = path.join(sb.backupDir, '.kadi-ops', 'jobs', id);
    assert.deepEqual(fs.readdirSync(jobDir).filter((f) => f === 'secret' || f === 'pgpass'), []);
    const listing = await listSets(host);
    assert.ok(listing.partials.some((p) => p.job === id), 'the partial set is reported');
    assert.ok(listing.sets.every((s) => !s.name.includes(id)));
    assert.equal(info.id, id);
    // The lock died with the job: the next backup is not refused, and the partial can be removed.
    const { cleanPartials } = await import('../../src/backup/backupSets');
    await cleanPartials(host, [`.partial-${id}`]);
    assert.equal((await listSets(host)).partials.length, 0);
    const next = await run(() => startBackup(host, d));
    assert.equal(next.outcome.result, 'succeeded');
  });

  it('a lock still held after its job leader died is reported as stale; --break-stale-lock kills the holder and the backup runs', async () => {
    // A leftover of a job whose leader is gone: a process that still holds the lock file.
    const stale = await holdStaleLock(sb, '20261126T000000Z-dead00', 300);
    try {
      await assert.rejects(startBackup(host, d), (e: unknown) => {
        assert.ok(e instanceof LockBusyError, String(e));
        assert.equal(e.stale, true);
        assert.match(e.message, /held by a job whose process is gone \(backup 20261126T000000Z-dead00 by someone@laptop since .*\)\. .*--break-stale-lock/);
        return true;
      });
      const r = await run(() => startBackup(host, d, { breakStaleLock: true }));
      assert.equal(r.outcome.result, 'succeeded', r.sink.text());
      assert.notEqual(spawnSync('pgrep', ['-u', sb.kadiUser, '-f', `sleep 300`]).status, 0, 'the leftover holder was killed');
    } finally {
      stale.release();
    }
  });

  it('a backup whose script dies mid-step has what it left running stopped before its partial set is removed', async () => {
    const lock = await holdTableLock(sb.pg, 'task'); // pg_dump waits on it: certainly still running
    try {
      const id = await startBackup(host, d);
      const pgid = Number(fs.readFileSync(path.join(sb.backupDir, '.kadi-ops', 'jobs', id, 'pgid'), 'utf8'));
      const running = (args: string[]): string => spawnSync('pgrep', args, { encoding: 'utf8' }).stdout.trim();
      for (let i = 0; i < 200 && !running(['-g', String(pgid), '-x', 'pg_dump']); i++) await new Promise((r) => setTimeout(r, 25));
      assert.ok(running(['-g', String(pgid), '-x', 'pg_dump']), 'pg_dump is running');
      // The backup's script (the job runner's one child) dies; pg_dump and the session stay behind.
      const script = Number(running(['-P', String(pgid), '-x', 'python3']).split('\n')[0]);
      assert.ok(script > 1);
      process.kill(script, 'SIGKILL');
      const sink = new MemorySink();
      const outcome = await followJob(host, id, { sink });
      assert.equal(outcome.result, 'failed', sink.text());
      assert.match(sink.text(), /^\[kadi-ops\] stopping what the job left running: \d+/m);
      // Only the job runner itself may still be ending (it writes the status, then exits).
      const others = (): string => running(['-g', String(pgid)]).split('\n').filter((p) => p && p !== String(pgid)).map((p) => spawnSync('ps', ['-o', 'pid=,args=', '-p', p], { encoding: 'utf8' }).stdout.trim()).join('; ');
      assert.equal(others(), '', 'nothing the job started is left running');
      for (let i = 0; i < 100 && running(['-g', String(pgid)]); i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(running(['-g', String(pgid)]), '', 'the job runner ended');
      assert.equal((await listSets(host)).partials.length, 0, 'the partial set is removed');
    } finally {
      await lock.release();
    }
  });

  it('a pg_dump killed (SIGKILL, as the OOM killer does) fails the backup, named by its signal, and leaves no set behind', async () => {
    const before = (await listSets(host)).sets.length;
    const id = await startBackup(host, d);
    let killed = false;
    for (let i = 0; i < 200 && !killed; i++) {
      const r = spawnSync('pgrep', ['-u', sb.kadiUser, '-x', 'pg_dump'], { encoding: 'utf8' });
      const pid = Number(r.stdout.trim().split('\n')[0]);
      if (pid > 0) {
        process.kill(pid, 'SIGKILL');
        killed = true;
      } else await new Promise((res) => setTimeout(res, 25));
    }
    assert.ok(killed, 'pg_dump was running');
    const sink = new MemorySink();
    const outcome = await followJob(host, id, { sink });
    assert.equal(outcome.result, 'failed');
    assert.match(sink.text(), /^ERROR: pg_dump was killed by SIGKILL \(if nobody killed it, the system may have run out of memory: dmesg says\)$/m);
    // The notification says why, not only the exit status.
    assert.match(describeOutcome(outcome), /^failed \(exit status 1\): .*pg_dump was killed by SIGKILL/);
    const listing = await listSets(host);
    assert.equal(listing.sets.length, before);
    assert.equal(listing.partials.length, 0, 'the failed job removed its partial set');
  });

  it('a file and a directory deleted on the live instance while the copy runs are left out, named, and the backup succeeds with a warning', async () => {
    // Four big files first in the walk keep the copier's four workers busy; the file behind them
    // is listed (the walk reads 16,384 entries before copying any) but not yet opened when the
    // test deletes it. The directory sorts after 16,400 filler files, so it is read in the walk's
    // second batch, after the test deleted it. The moment: the first big file appears in the set.
    const made: string[] = [];
    const mk = (rel: string, content?: Buffer): string => plant(sb.storagePath, made, rel, content);
    let setDir = '';
    try {
      const big = Buffer.alloc(64 << 20, 7);
      for (let i = 1; i <= 4; i++) mk(`kadi-ops-test-vanish-0big${i}`, big);
      const file = mk('kadi-ops-test-vanish-1file', Buffer.from('deleted while the backup runs'));
      const filler = mk('kadi-ops-test-vanish-2filler');
      for (let i = 0; i < 16400; i++) fs.writeFileSync(path.join(filler, `f${i}`), '');
      const own = fs.statSync(sb.storagePath);
      execFileSync('chown', ['-R', `${own.uid}:${own.gid}`, filler]);
      const dir = mk('kadi-ops-test-vanish-3dir');
      mk('kadi-ops-test-vanish-3dir/inside', Buffer.from('deleted with its directory'));

      const id = await startBackup(host, d);
      const firstBig = path.join(sb.backupDir, `.partial-${id}`, 'storage', 'kadi-ops-test-vanish-0big1');
      await pollUntil('the copier started on the big files', () => fs.existsSync(firstBig));
      fs.rmSync(file);
      fs.rmSync(dir, { recursive: true });
      const sink = new MemorySink();
      const outcome = await followJob(host, id, { sink });
      const log = sink.text();
      assert.equal(outcome.result, 'succeeded', log);
      assert.match(log, /^storage: file kadi-ops-test-vanish-1file vanished during the copy \(deleted on the live instance\); not in the set$/m);
      assert.match(log, /^storage: directory kadi-ops-test-vanish-3dir vanished during the copy \(deleted on the live instance\); the set holds it empty$/m);
      assert.deepEqual(outcome.warnings, ['storage: 2 entries vanished during the copy (deleted on the live instance while the backup ran) and are left out of the set (named above)']);
      assert.equal(describeOutcome(outcome), 'succeeded with 1 warning');

      const set = setNameFrom(sink.text('stdout'));
      setDir = path.join(sb.backupDir, set);
      const listed = fs.readFileSync(path.join(setDir, 'storage.files.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as [string])[0]);
      assert.ok(listed.includes('kadi-ops-test-vanish-0big4'), 'the files still there are in the set');
      assert.ok(!listed.some((r) => r.startsWith('kadi-ops-test-vanish-1') || r.startsWith('kadi-ops-test-vanish-3')), 'nothing deleted is listed');
      assert.ok(!fs.existsSync(path.join(setDir, 'storage', 'kadi-ops-test-vanish-1file')));
      assert.deepEqual(fs.readdirSync(path.join(setDir, 'storage', 'kadi-ops-test-vanish-3dir')), []);
      const manifest = JSON.parse(fs.readFileSync(path.join(setDir, 'manifest.json'), 'utf8')) as { artifacts: { tree?: string; vanished?: number }[] };
      assert.equal(manifest.artifacts.find((a) => a.tree === 'storage')?.vanished, 2);
      assert.equal(manifest.artifacts.find((a) => a.tree === 'uploads')?.vanished, 0);
      // What the set lists is complete and checksummed: quick verify passes.
      const v = await run(() => startVerify(host, d, set, 'quick'));
      assert.equal(v.outcome.result, 'succeeded', v.sink.text());
    } finally {
      for (const p of made.reverse()) fs.rmSync(p, { recursive: true, force: true });
      // The set holds test debris that later tests restoring the newest set must not get.
      if (setDir) fs.rmSync(setDir, { recursive: true, force: true });
    }
  });

  it('in archive mode too, a file deleted while tar runs is left out and the backup succeeds with a warning naming it', async () => {
    // tar archives in name order, one file after the other: while it reads four big files (of
    // random bytes, so the archive grows as it reads), the file named after them is deleted.
    const before = Number(execFileSync('du', ['-sb', sb.storagePath]).toString().split('\t')[0]);
    const made: string[] = [];
    const mk = (rel: string, content: Buffer): string => plant(sb.storagePath, made, rel, content);
    let setDir = '';
    try {
      for (let i = 1; i <= 4; i++) mk(`kadi-ops-test-tarvanish-0big${i}`, randomBytes(64 << 20));
      const file = mk('kadi-ops-test-tarvanish-1file', Buffer.from('deleted while tar runs'));
      const id = await startBackup(host, d, { filesMode: 'archive' });
      const archive = path.join(sb.backupDir, `.partial-${id}`, 'storage.tar.zst');
      const size = (): number => (fs.existsSync(archive) ? fs.statSync(archive).size : 0);
      await pollUntil('tar got into the big files', () => size() >= before + (16 << 20));
      fs.rmSync(file);
      const sink = new MemorySink();
      const outcome = await followJob(host, id, { sink });
      const log = sink.text();
      assert.equal(outcome.result, 'succeeded', log);
      assert.match(log, /^tar: \.\/kadi-ops-test-tarvanish-1file: File removed before we read it$/m);
      assert.deepEqual(outcome.warnings, ['storage: files changed or vanished while tar read them (tar names them above); the archive holds what tar read']);
      setDir = path.join(sb.backupDir, setNameFrom(sink.text('stdout')));
      const listing = execFileSync('tar', ['-tf', path.join(setDir, 'storage.tar.zst'), '--use-compress-program', 'zstd -d']).toString();
      assert.match(listing, /^\.\/kadi-ops-test-tarvanish-0big4$/m);
      assert.doesNotMatch(listing, /kadi-ops-test-tarvanish-1file/);
      const v = await run(() => startVerify(host, d, path.basename(setDir), 'quick'));
      assert.equal(v.outcome.result, 'succeeded', v.sink.text());
    } finally {
      for (const p of made) fs.rmSync(p, { force: true });
      if (setDir) fs.rmSync(setDir, { recursive: true, force: true });
    }
  });

  describe('a full backup filesystem', () => {
    let mnt: string;
    let small: HostProfile;
    let smallHost: RemoteHost;
    before(async () => {
      mnt = fs.mkdtempSync(path.join(sb.root, 'tmpfs-'));
      fs.chmodSync(mnt, 0o755);
    });
    afterEach(() => {
      spawnSync('umount', [mnt]);
    });

    const mount = async (size: string): Promise<void> => {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt]);
      const uid = Number(execFileSync('id', ['-u', sb.kadiUser]).toString());
      const gid = Number(execFileSync('id', ['-g', sb.kadiUser]).toString());
      fs.chownSync(mnt, uid, gid);
      fs.chmodSync(mnt, 0o700);
      small = profileOf(sb, 'direct', (p) => {
        p.name = `sandbox-small-${size}`;
        p.backupDir = mnt;
      });
      smallHost = await pool.get(small);
    };

    it('refuses to start when free space is clearly insufficient', async () => {
      await mount('1m');
      const id = await startBackup(smallHost, d);
      const sink = new MemorySink();
      const outcome = await followJob(smallHost, id, { sink });
      assert.equal(outcome.result, 'failed');
      assert.match(sink.text(), /not enough space in .*: about \d+ MiB needed, \d+ MiB free/);
      assert.match(outcome.reason ?? '', /not enough space in .*: about \d+ MiB needed, \d+ MiB free/);
      assert.equal((await listSets(smallHost)).sets.length, 0);
    });

    it("a first set whose trees cannot fit is stopped while it copies (the trees' size is measured beside the copy) and fails naming the space", async () => {
      await mount('190m'); // not 200m: a profile of its own (the pool keeps a host per profile name)
      await sb.psql('DROP TABLE IF EXISTS fault_bulk;');
      // The database fits; the storage tree (a 250 MB record file in it) does not.
      const big = await sb.addStorageFile({ size: 250 * 1024 * 1024 });
      try {
        const dd = await discover(smallHost);
        const sink = new MemorySink();
        const outcome = await followJob(smallHost, await startBackup(smallHost, dd), { sink });
        assert.equal(outcome.result, 'failed', sink.text());
        assert.match(outcome.reason ?? '', /^not enough space in .*: about \d+ MiB needed, \d+ MiB free$/, sink.text());
        assert.ok(Number(/about (\d+) MiB needed/.exec(outcome.reason ?? '')?.[1]) >= 250, outcome.reason);
        assert.match(sink.text(), /files: copying STORAGE_PATH/, 'the copy did not wait for the measurement');
        const listing = await listSets(smallHost);
        assert.deepEqual([listing.sets.length, listing.partials.length], [0, 0]);
      } finally {
        fs.rmSync(big.path);
        await sb.psql(`DELETE FROM file WHERE id = '${big.id}'`);
      }
    });

    it('a repeat set whose directories would not fit in the free inodes is refused before anything runs, naming df -i', async () => {
      await mount('210m'); // a profile of its own (the pool keeps a host per profile name)
      await sb.psql('DROP TABLE IF EXISTS fault_bulk;');
      // Directories enough that the job's own files fit in the inodes left, the set's do not.
      const many = path.join(sb.storagePath, 'zz-inodes');
      for (let i = 0; i < 300; i++) fs.mkdirSync(path.join(many, String(i)), { recursive: true });
      spawnSync('chown', ['-R', `${sb.kadiUser}:`, many]);
      try {
        const dd = await discover(smallHost);
        const first = await followJob(smallHost, await startBackup(smallHost, dd), { sink: new MemorySink() });
        assert.equal(first.result, 'succeeded');
        const listing = await listSets(smallHost);
        const manifest = JSON.parse(fs.readFileSync(path.join(mnt, listing.sets[0].name, 'manifest.json'), 'utf8')) as { artifacts: { tree?: string; entries?: number; files?: number }[] };
        const others = manifest.artifacts.filter((a) => a.tree).reduce((n, a) => n + (a.entries ?? 0) - (a.files ?? 0), 0);
        assert.ok(others > 300, String(others));
        const st = fs.statfsSync(mnt);
        const used = st.files - st.ffree;
        // What is free is fewer than the next set's directories and links.
        execFileSync('mount', ['-o', `remount,nr_inodes=${used + others - 1}`, mnt]);
        await sleep(1100); // set names have one-second resolution
        const sink = new MemorySink();
        const outcome = await followJob(smallHost, await startBackup(smallHost, dd), { sink });
        assert.equal(outcome.result, 'failed', sink.text());
        assert.match(outcome.reason ?? '', new RegExp(`^not enough inodes in ${mnt}: about ${others} needed \\(a set makes its directories again\\), \\d+ free \\(df -i\\); prune older sets`), sink.text());
        assert.doesNotMatch(sink.text(), /\[step\] (database|files)/, 'refused before the dump or the copies began');
        const after = await listSets(smallHost);
        assert.deepEqual([after.sets.length, after.partials.length], [1, 0]);
      } finally {
        fs.rmSync(many, { recursive: true, force: true });
      }
    });

    it('a repeat set whose new record files (by their rows) cannot fit is refused before copying; a disk that fills during the copy fails the job, removes the partial set and keeps the previous set good', async () => {
      await mount('200m');
      // The first set fits (the bulk table is dropped for this test so the dump is small).
      await sb.psql('DROP TABLE IF EXISTS fault_bulk;');
      const dd = await discover(smallHost);
      const first = await followJob(smallHost, await startBackup(smallHost, dd), { sink: new MemorySink() });
      assert.equal(first.result, 'succeeded');
      // A new 250 MB record file cannot fit next to it. Kadi's file table has its row: the repeat
      // set's space check counts it and refuses before anything is copied.
      const big = await sb.addStorageFile({ size: 250 * 1024 * 1024 });
      try {
        const sink = new MemorySink();
        const outcome = await followJob(smallHost, await startBackup(smallHost, dd), { sink });
        assert.equal(outcome.result, 'failed', sink.text());
        assert.match(outcome.reason ?? '', /^not enough space in .*: about \d+ MiB needed, \d+ MiB free$/, sink.text());
        assert.ok(Number(/about (\d+) MiB needed/.exec(outcome.reason ?? '')?.[1]) >= 250, outcome.reason);
        assert.doesNotMatch(sink.text(), /files: copying STORAGE_PATH/, 'refused before the copies began');
      } finally {
        fs.rmSync(big.path);
        await sb.psql(`DELETE FROM file WHERE id = '${big.id}'`);
      }
      // One the database does not know (no row): only the copy meets the full disk.
      const unlisted = path.join(sb.storagePath, 'zz-unlisted-big');
      fs.writeFileSync(unlisted, randomBytes(1024 * 1024).toString('hex').repeat(125));
      spawnSync('chown', [`${sb.kadiUser}:`, unlisted]);
      try {
        const sink = new MemorySink();
        const outcome = await followJob(smallHost, await startBackup(smallHost, dd), { sink });
        assert.equal(outcome.result, 'failed', sink.text());
        // Whichever write meets the full disk first (the big file, as a rule) names itself.
        assert.match(sink.text(), /^ERROR: (writing (storage|uploads) file \S+|copying (storage|uploads)) into the set failed: \[Errno 28\] No space left on device$/m);
        const listing = await listSets(smallHost);
        assert.equal(listing.sets.length, 1);
        assert.equal(listing.partials.length, 0);
        const v = await followJob(smallHost, await startVerify(smallHost, dd, listing.sets[0].name), { sink: new MemorySink() });
        assert.equal(v.result, 'succeeded');
      } finally {
        fs.rmSync(unlisted, { force: true });
      }
    });
  });

  describe('corruption and deep verification', () => {
    let set: string;
    let dir: string;
    before(async () => {
      // Deep verify needs no CREATEDB (it restores into a throwaway cluster): the role has none here.
      await sb.psql('DROP TABLE IF EXISTS fault_bulk; ALTER ROLE kadi NOCREATEDB;');
      d = await discover(host);
      const r = await run(() => startBackup(host, d));
      assert.equal(r.outcome.result, 'succeeded');
      set = setNameFrom(r.sink.text('stdout'));
      dir = path.join(sb.backupDir, set);
    });

    const verify = async (level: 'quick' | 'deep'): Promise<{ ok: boolean; text: string }> => {
      const r = await run(() => startVerify(host, d, set, level));
      return { ok: r.outcome.result === 'succeeded', text: r.sink.text() };
    };

    it('deep verify passes on an intact set: row counts and every file against its database row', async () => {
      const v = await verify('deep');
      assert.ok(v.ok, v.text);
      assert.match(v.text, /deep: \d+ tables compared, \d+ file rows checked/);
      const rec = JSON.parse(fs.readFileSync(path.join(dir, '.verify.json'), 'utf8')) as { level: string; ok: boolean; deep?: { mode?: string } };
      assert.equal(rec.level, 'deep');
      assert.equal(rec.ok, true);
      assert.equal(rec.deep?.mode, 'throwaway-cluster');
      const scratch = (await sb.psql("select count(*) from pg_database where datname like 'kadi_ops_verify_%'")).trim();
      assert.equal(scratch, '0', 'no scratch database was made');
    });

    it('a deep verify cancelled while it restores into the scratch database (the fallback without server binaries) drops that database', async () => {
      // A set with a table big enough that the scratch restore runs for seconds.
      await sb.psql("CREATE TABLE fault_bulk AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS payload FROM generate_series(1, 1500000) g; ALTER TABLE fault_bulk OWNER TO kadi;");
      let bigSet: string;
      try {
        const b = await run(() => startBackup(host, d));
        assert.equal(b.outcome.result, 'succeeded', b.sink.text());
        bigSet = setNameFrom(b.sink.text('stdout'));
      } finally {
        await sb.psql('DROP TABLE IF EXISTS fault_bulk;');
      }
      const scratchCount = async (): Promise<string> => (await sb.psql("select count(*) from pg_database where datname like 'kadi_ops_verify_%'")).trim();
      // No server binaries where the job looks: the scratch database, which needs CREATEDB.
      await sb.psql('ALTER ROLE kadi CREATEDB;');
      let cancelled: Promise<CancelResult> | undefined;
      const sink = new MemorySink();
      let outcome: JobOutcome;
      try {
        const id = await startVerify(host, d, bigSet, 'deep', { serverBinDir: path.join(sb.root, 'no-such-bin') });
        outcome = await followJob(host, id, {
          sink: {
            lines: (s, l) => {
              sink.lines(s, l);
              if (!cancelled && l.some((x) => x.startsWith('[step] deep: restoring'))) {
                // Cancel once the scratch database exists and pg_restore is filling it.
                cancelled = (async () => {
                  while ((await scratchCount()) === '0') await new Promise((r) => setTimeout(r, 50));
                  return cancelJob(host, id);
                })();
              }
            },
          },
        });
      } finally {
        await sb.psql('ALTER ROLE kadi NOCREATEDB;');
      }
      assert.ok(cancelled, 'the scratch restore was reached');
      assert.equal((await cancelled)?.text, 'cancelled', 'the cancel waited for the cleanup');
      assert.equal(outcome.result, 'cancelled', sink.text());
      assert.equal(await scratchCount(), '0', `the scratch database was left behind:\n${sink.text()}`);
      assert.doesNotMatch(sink.text(), /no password supplied/);
    });

    it('quick verify catches a truncated or flipped byte in every artifact', async () => {
      const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { artifacts: { name: string }[] };
      const names = manifest.artifacts.map((a) => a.name);
      assert.ok(names.includes('db.dump') && names.includes('storage.files.jsonl'));
      for (const name of names) {
        for (const damage of [truncateCopy, (f: string) => flipByte(f, 37)]) {
          const file = path.join(dir, name);
          const keep = file + '.orig';
          fs.linkSync(file, keep);
          try {
            damage(file);
            const v = await verify('quick');
            assert.equal(v.ok, false, `${name} damage went unnoticed`);
            assert.match(v.text, new RegExp(`PROBLEM: ${name.replace('.', '\\.')}`));
          } finally {
            fs.renameSync(keep, file);
          }
        }
      }
      // A flipped byte in a record file of the storage tree, too.
      const list = fs.readFileSync(path.join(dir, 'storage.files.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as [string, number]);
      const victim = path.join(dir, 'storage', list.find((e) => e[1] > 0)![0]);
      fs.linkSync(victim, victim + '.orig');
      try {
        flipByte(victim, 3);
        const v = await verify('quick');
        assert.equal(v.ok, false);
        assert.match(v.text, /sha256 does not match/);
      } finally {
        fs.renameSync(victim + '.orig', victim);
      }
      assert.ok((await verify('quick')).ok, 'the set is whole again');
    });

    it('deep verify finds a deleted file, a same-size content change and a file row whose data was never copied', async () => {
      // A file row whose data never existed on disk: the backup copies what is there, so the set
      // is consistent by checksums (quick verify passes) but not in itself.
      const ghost = await sb.addStorageFile({ size: 2048 });
      fs.rmSync(ghost.path);
      try {
        await deepVerifyFindsDamage(ghost.id);
      } finally {
        await sb.forgetStorageFile(ghost);
      }
    });

    async function deepVerifyFindsDamage(ghostId: string): Promise<void> {
      const r = await run(() => startBackup(host, d));
      assert.equal(r.outcome.result, 'succeeded', r.sink.text());
      set = setNameFrom(r.sink.text('stdout'));
      dir = path.join(sb.backupDir, set);
      const quick = await verify('quick');
      assert.ok(quick.ok, `quick verify cannot see it:\n${quick.text}`);
      const rows = (await sb.psql(`select id, size from file where state = 'active' and size > 16 and id <> '${ghostId}' order by id limit 2`)).trim().split('\n').map((l) => l.split('|'));
      const rel = (id: string): string => path.join(id.slice(0, 2), id.slice(2, 4), id.slice(4, 6), id.slice(6));
      const deleted = path.join(dir, 'storage', rel(rows[0][0]));
      const changed = path.join(dir, 'storage', rel(rows[1][0]));
      fs.linkSync(deleted, deleted + '.keep');
      fs.linkSync(changed, changed + '.keep');
      try {
        fs.rmSync(deleted);
        flipByte(changed, 1);
        const v = await verify('deep');
        assert.equal(v.ok, false);
        assert.match(v.text, new RegExp(`file ${rows[0][0]}: active in the database but missing from the set`));
        assert.match(v.text, new RegExp(`file ${rows[1][0]}: MD5 does not match`));
        assert.match(v.text, new RegExp(`file ${ghostId}: active in the database but missing from the set`));
        const listed = (await listSets(host)).sets.find((s) => s.name === set);
        assert.equal(listed?.status, 'damaged');
      } finally {
        fs.renameSync(deleted + '.keep', deleted);
        fs.renameSync(changed + '.keep', changed);
      }
    }
  });

  describe('afterwards', () => {
    it('keeps a record of every job it ran', async () => {
      const jobs = await listJobs(host);
      assert.ok(jobs.some((j) => j.state === 'died'));
      assert.ok(jobs.some((j) => j.kind === 'verify' && j.status !== '0'));
    });
  });
});
