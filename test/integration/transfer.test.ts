import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { listSets, startBackup, startVerify } from '../../src/backup/backupSets';
import type { HostProfile } from '../../src/config/types';
import { MemorySink } from '../../src/core/sink';
import { discover, type Discovery } from '../../src/kadi/discovery';
import type { ConnectionPool } from '../../src/remote/connectionPool';
import { followJob } from '../../src/remote/jobs';
import type { RemoteHost } from '../../src/remote/remoteHost';
import { downloadSet, LEFT_OUT_NOTE, TransferError, uploadSet, type TransferProgress } from '../../src/transfer/transfer';
import type { SandboxHost } from '../sandbox/sandbox';
import { getSandbox, newPool, profileOf } from './fixture';

/** Every regular file under root (relative path → content digest). */
function files(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.set(path.relative(root, p), execFileSync('sha256sum', [p]).toString().split(' ')[0]);
    }
  };
  walk(root);
  return out;
}

/** The set as a transfer moves it: no dot files (pin and verify marks belong to the host). */
function setFiles(root: string): Map<string, string> {
  return new Map([...files(root)].filter(([rel]) => !rel.split('/').some((x) => x.startsWith('.'))));
}

describe('set transfers against the sandbox host', function () {
  this.timeout(300000);
  let sb: SandboxHost;
  let pool: ConnectionPool;
  let host: RemoteHost;
  let d: Discovery;
  let set: string;
  let local: string;

  before(async () => {
    sb = await getSandbox();
    pool = newPool();
    host = await pool.get(profileOf(sb, 'sudo'));
    d = await discover(host);
    const id = await startBackup(host, d);
    const sink = new MemorySink();
    const out = await followJob(host, id, { sink });
    assert.equal(out.result, 'succeeded', sink.text());
    set = /^set=(\S+)$/m.exec(sink.text('stdout'))?.[1] ?? '';
    assert.ok(set);
    local = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-transfer-'));
  });
  after(() => {
    pool.closeAll();
    fs.rmSync(local, { recursive: true, force: true });
  });

  /** Another backupDir of the Kadi user on the sandbox, and a sudo-mode host profile for it. */
  const uploadTarget = async (n: string): Promise<{ backupDir: string; host: RemoteHost }> => {
    const backupDir = path.join(sb.root, `backups-upload${n}`);
    fs.mkdirSync(backupDir, { mode: 0o700, recursive: true });
    execFileSync('chown', [`${sb.kadiUser}:`, backupDir]);
    const target = await pool.get(profileOf(sb, 'sudo', (p) => {
      p.name = `sandbox-upload${n}`;
      p.backupDir = backupDir;
    }));
    return { backupDir, host: target };
  };

  it('downloads a set (sudo mode): every file equals the host copy, with progress', async () => {
    const seen: TransferProgress[] = [];
    const r = await downloadSet(host, set, local, { onProgress: (p) => seen.push(p), withConfig: true });
    assert.deepEqual(r.problems, []);
    assert.equal(r.skippedFiles, 0);
    const remote = setFiles(path.join(sb.backupDir, set));
    assert.deepEqual(files(path.join(local, set)), remote);
    assert.ok(remote.size > 10, 'the set has tree files');
    assert.ok(seen.some((p) => p.phase === 'transferring' && p.bytes === p.totalBytes && p.totalBytes > 0));
    assert.ok(seen.some((p) => p.phase === 'verifying'));
  });

  it('resumes: only missing or damaged files are fetched again', async () => {
    const dir = path.join(local, set);
    const again = await downloadSet(host, set, local, { withConfig: true });
    assert.equal(again.transferredFiles, 0);
    const storageFile = [...files(dir).keys()].find((k) => k.startsWith('storage/')) as string;
    fs.rmSync(path.join(dir, 'db.toc'));
    fs.truncateSync(path.join(dir, storageFile), 1);
    const r = await downloadSet(host, set, local, { withConfig: true });
    assert.deepEqual(r.problems, []);
    assert.equal(r.transferredFiles, 2);
    assert.deepEqual(files(dir), setFiles(path.join(sb.backupDir, set)));
  });

  it('detects a corrupted download: a file that does not match the manifest is reported', async () => {
    // A copy of the set on the host with one storage file damaged in place (same size).
    const bad = '2001-01-01T00-00-00Z';
    const src = path.join(sb.backupDir, set);
    const copy = path.join(sb.backupDir, bad);
    execFileSync('cp', ['-a', src, copy]);
    try {
      // A file with content: flipping the first byte of an empty file would change nothing.
      const victim = [...setFiles(copy).keys()].find((k) => k.startsWith('storage/') && fs.statSync(path.join(copy, k)).size > 0) as string;
      const p = path.join(copy, victim);
      fs.rmSync(p); // break the hard link before writing
      const data = fs.readFileSync(path.join(src, victim));
      data[0] ^= 0xff;
      fs.writeFileSync(p, data);
      const r = await downloadSet(host, bad, local);
      assert.equal(r.problems.length, 1);
      assert.equal(r.problems[0].path, victim);
      assert.equal(r.problems[0].problem, 'sha256');
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  it('leaves the configuration out unless asked: the copy says so, and cannot be uploaded as a set until it has it', async () => {
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-transfer-noconfig-'));
    try {
      const r = await downloadSet(host, set, parent);
      assert.deepEqual(r.problems, []);
      assert.deepEqual(r.leftOut, ['config.tar.gz']);
      const dir = path.join(parent, set);
      assert.equal(fs.existsSync(path.join(dir, 'config.tar.gz')), false, 'the secrets did not leave the host');
      assert.match(fs.readFileSync(path.join(dir, LEFT_OUT_NOTE), 'utf8'), /config\.tar\.gz/);
      await assert.rejects(uploadSet(host, dir), (e: unknown) => e instanceof TransferError && /downloaded without its config\.tar\.gz/.test(e.message));
      const full = await downloadSet(host, set, parent, { withConfig: true });
      assert.deepEqual(full.leftOut, []);
      assert.equal(full.transferredFiles, 1, 'only the configuration was fetched');
      assert.equal(fs.existsSync(path.join(dir, LEFT_OUT_NOTE)), false);
    } finally {
      fs.rmSync(parent, { recursive: true, force: true });
    }
  });

  it('uploads the set to another backupDir (direct mode); it is listed there and verifies', async () => {
    const backupDir2 = path.join(sb.root, 'backups-upload');
    fs.mkdirSync(backupDir2, { mode: 0o700, recursive: true });
    const uid = Number(execFileSync('id', ['-u', sb.kadiUser]).toString().trim());
    const gid = Number(execFileSync('id', ['-g', sb.kadiUser]).toString().trim());
    fs.chownSync(backupDir2, uid, gid);
    const profile2: HostProfile = profileOf(sb, 'direct', (p) => {
      p.name = 'sandbox-upload';
      p.backupDir = backupDir2;
    });
    const host2 = await pool.get(profile2);
    const d2 = await discover(host2);

    // An interrupted earlier upload: one stale file in the partial directory is replaced.
    const partial = path.join(backupDir2, `.partial-upload-${set}`);
    fs.mkdirSync(partial, { mode: 0o700 });
    fs.writeFileSync(path.join(partial, 'db.toc'), 'stale');
    execFileSync('chown', ['-R', `${uid}:${gid}`, partial]);

    const r = await uploadSet(host2, path.join(local, set));
    assert.equal(r.transferredFiles, r.files);
    assert.equal(fs.existsSync(partial), false);
    const listing = await listSets(host2);
    const uploaded = listing.sets.find((s) => s.name === set);
    assert.ok(uploaded, 'the uploaded set is listed');
    assert.equal(listing.partials.length, 0);
    assert.deepEqual(setFiles(path.join(backupDir2, set)), setFiles(path.join(sb.backupDir, set)));

    const id = await startVerify(host2, d2, set, 'quick');
    const sink = new MemorySink();
    const out = await followJob(host2, id, { sink });
    assert.equal(out.result, 'succeeded', sink.text());
    assert.equal((await listSets(host2)).sets.find((s) => s.name === set)?.status, 'verified');

    // Uploading again is refused: the set exists.
    await assert.rejects(uploadSet(host2, path.join(local, set)), /already exists/);
  });

  it('moves a set a few files at a time (batches of three): the same copy down and up, resuming per batch', async () => {
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-transfer-batches-'));
    try {
      const seen: TransferProgress[] = [];
      const r = await downloadSet(host, set, parent, { withConfig: true, batchFiles: 3, onProgress: (p) => seen.push(p) });
      assert.deepEqual(r.problems, []);
      const remote = setFiles(path.join(sb.backupDir, set));
      assert.deepEqual(files(path.join(parent, set)), remote);
      assert.equal(r.files, remote.size);
      // A tree's progress runs over the whole tree, not batch by batch.
      const storage = seen.filter((p) => p.phase === 'transferring' && p.totalFiles > 3);
      assert.ok(storage.length > 0 && storage.some((p) => p.files === p.totalFiles && p.bytes === p.totalBytes));

      const { backupDir: backupDir5, host: host5 } = await uploadTarget('5');
      // An earlier upload left one complete tree file and one damaged one.
      const [good, damaged] = [...remote.keys()].filter((k) => k.startsWith('storage/') && fs.statSync(path.join(sb.backupDir, set, k)).size > 0);
      const partial = path.join(backupDir5, `.partial-upload-${set}`);
      for (const k of [good, damaged]) {
        fs.mkdirSync(path.dirname(path.join(partial, k)), { recursive: true });
        fs.copyFileSync(path.join(sb.backupDir, set, k), path.join(partial, k));
      }
      fs.appendFileSync(path.join(partial, damaged), 'x');
      execFileSync('chown', ['-R', `${sb.kadiUser}:`, partial]);
      const up = await uploadSet(host5, path.join(parent, set), { batchFiles: 3 });
      assert.equal(up.files, remote.size);
      assert.equal(up.skippedFiles, 1, 'the complete file of the earlier upload');
      assert.equal(up.transferredFiles, up.files - 1);
      assert.deepEqual(setFiles(path.join(backupDir5, set)), remote);
      assert.deepEqual((await listSets(host5)).partials, []);
    } finally {
      fs.rmSync(parent, { recursive: true, force: true });
    }
  });

  it('refuses to upload a local set whose files do not match its manifest; nothing is sealed', async () => {
    const { backupDir: backupDir3, host: host3 } = await uploadTarget('3');
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-transfer-bad-'));
    try {
      execFileSync('cp', ['-a', path.join(local, set), copy]);
      fs.appendFileSync(path.join(copy, set, 'db.counts.json'), ' ');
      await assert.rejects(uploadSet(host3, path.join(copy, set)), /db\.counts\.json/);
      assert.equal(fs.existsSync(path.join(backupDir3, set)), false);
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  it('a cancelled download or upload stops, and running it again resumes where it stopped', async () => {
    const big = await sb.addStorageFile({ size: 96 * 1024 * 1024 });
    const rel = `storage/${path.relative(sb.storagePath, big.path)}`;
    await new Promise((r) => setTimeout(r, 1100)); // set names have one-second resolution
    const id = await startBackup(host, d);
    const sink = new MemorySink();
    assert.equal((await followJob(host, id, { sink })).result, 'succeeded', sink.text());
    const bigSet = /^set=(\S+)$/m.exec(sink.text('stdout'))?.[1] ?? '';

    /** Aborts as soon as `file` has some but not all of its bytes. */
    const abortWhenGrowing = (file: string): { signal: AbortSignal; stop(): void } => {
      const abort = new AbortController();
      const t = setInterval(() => {
        try {
          if (fs.statSync(file).size > 0) abort.abort();
        } catch {
          /* not there yet */
        }
      }, 2);
      return { signal: abort.signal, stop: () => clearInterval(t) };
    };

    const localBig = path.join(local, bigSet, ...rel.split('/'));
    const w = abortWhenGrowing(localBig);
    try {
      await assert.rejects(downloadSet(host, bigSet, local, { signal: w.signal, withConfig: true }), /cancelled/);
    } finally {
      w.stop();
    }
    assert.ok(fs.statSync(localBig).size < 96 * 1024 * 1024, 'stopped in the middle of the big file');
    const resumed = await downloadSet(host, bigSet, local, { withConfig: true });
    assert.deepEqual(resumed.problems, []);
    assert.ok(resumed.skippedFiles > 0, 'files completed before the cancel are not fetched again');
    assert.deepEqual(files(path.join(local, bigSet)), setFiles(path.join(sb.backupDir, bigSet)));

    const { backupDir: backupDir4, host: host4 } = await uploadTarget('4');
    const remoteBig = path.join(backupDir4, `.partial-upload-${bigSet}`, ...rel.split('/'));
    const u = abortWhenGrowing(remoteBig);
    try {
      await assert.rejects(uploadSet(host4, path.join(local, bigSet), { signal: u.signal }), /cancelled/);
    } finally {
      u.stop();
    }
    assert.equal(fs.existsSync(path.join(backupDir4, bigSet)), false, 'nothing sealed');
    const partials = (await listSets(host4)).partials.map((x) => x.name);
    assert.deepEqual(partials, [`.partial-upload-${bigSet}`]);
    const up = await uploadSet(host4, path.join(local, bigSet));
    assert.ok(up.skippedFiles > 0, 'files uploaded before the cancel are not sent again');
    assert.ok(up.transferredFiles < up.files);
    assert.deepEqual(setFiles(path.join(backupDir4, bigSet)), setFiles(path.join(sb.backupDir, bigSet)));
    assert.deepEqual((await listSets(host4)).partials, []);

    // A second (older) set uploaded next to it: files the host already has are hard-linked, not sent.
    const second = await uploadSet(host4, path.join(local, set));
    assert.ok((second.linkedFiles ?? 0) > 0, 'tree files are linked from the set already there');
    assert.ok(second.transferredFiles < second.files);
    assert.deepEqual(setFiles(path.join(backupDir4, set)), setFiles(path.join(sb.backupDir, set)));
    const shared = [...setFiles(path.join(backupDir4, set)).keys()].find((k) => k.startsWith('storage/') && fs.existsSync(path.join(backupDir4, bigSet, k))) as string;
    assert.equal(fs.statSync(path.join(backupDir4, set, shared)).ino, fs.statSync(path.join(backupDir4, bigSet, shared)).ino);
  });
});
