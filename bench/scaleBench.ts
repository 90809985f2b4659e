/**
 * Scale benchmark (issue 19): how the cost of a set grows with the number of files, against the
 * best by-hand tools, on the same generated data in one run over SSH on the sandbox host.
 *
 *   npm run bench:scale -- [--files N] [--file-sizes small|kadi|large] [--scale S] [--seed X] [--tar yes|no]
 *
 * N record files (default 1,000,000) in Kadi's uuid layout (STORAGE_PATH/ab/cd/ef/<rest>, as
 * writeTree), N/20 uploads, and a matching `file` table (one row per record file with its size and
 * MD5, ten files per record) beside pgbench tables of scale S (default 1). The default file sizes
 * ("small": mostly notes and metadata of a few KiB, ~9 KiB on average) keep a million files at ~9
 * GiB so that every copy the bench makes fits on one disk; "kadi" is the other benches' shape
 * (~97 KiB on average). Measured, side by side:
 *
 *   - first set, repeat set after 0.1% and after 1% new files: kadi-ops backup (discover +
 *     startBackup + followJob, tree mode) against `pg_dump -Fc` + `rsync -a [--link-dest=<previous>]`
 *     of storage and uploads by hand; the first set also against the guide's `pg_dump -Fc` +
 *     `tar czf` (tar re-reads and re-compresses everything every time, so a repeat costs what the
 *     first did; `--tar no` skips it);
 *   - prune of the first set (kadi-ops prune job) against `rm -rf` of an identical hard-linked
 *     copy of it (`cp -al`, untimed) and against `rm -rf` of the by-hand first set;
 *   - quick verify of the last set against `find | xargs sha256sum` of the same files;
 *   - restore of the trees onto the instance after 1% new files: kadi-ops (discover, preflight
 *     relying on the verification just made, restore job of storage and uploads) against
 *     `rsync -a --delete` of the by-hand last set;
 *   - listing of the sets (listSets, what `kadi-ops list` runs);
 *   - inodes used per set (`df -i` of the backup filesystem before/after) and the set's own
 *     directory and file entries (`find`);
 *   - peak memory: the largest VmHWM of any agent process (python3 of the Kadi user, sampled from
 *     /proc every 100 ms) and of the by-hand tools, and the client's (this process's) peak RSS.
 *
 * Everything lives in the sandbox root under /tmp and is removed when the sandbox stops.
 * Not part of `npm test`.
 */
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listSets, startBackup, startPrune, startVerify } from '../src/backup/backupSets';
import { MemorySink } from '../src/core/sink';
import { discover, type Discovery } from '../src/kadi/discovery';
import { followJob } from '../src/remote/jobs';
import { preflight } from '../src/restore/preflight';
import { startRestore } from '../src/restore/restoreJob';
import type { ShellNode } from '../src/core/shellCommand';
import { benchHost, byHandDir, fileSize, flag, jobSteps, machineLine, mib, runBench, SeededBytes, settle, timed, uuidFrom, writeKadiFile, type BenchHost } from './benchData';

type Sizes = 'small' | 'kadi' | 'large';

/** Mostly small files: 85% 0.25–8 KiB, 14.5% 8–48 KiB, 0.5% 64–576 KiB (~9 KiB on average). */
function scaleFileSize(r: SeededBytes, sizes: Sizes): number {
  if (sizes !== 'small') return fileSize(r, sizes);
  const p = r.random();
  if (p < 0.85) return 256 + Math.floor(r.random() * 7936);
  if (p < 0.995) return 8192 + Math.floor(r.random() * 40960);
  return 65536 + Math.floor(r.random() * 512 * 1024);
}

/** Where the CSV of `file` rows goes (readable by the postgres server), and the next row number. */
interface RowSink {
  csv: string;
  seq: number;
}

/**
 * Writes `count` files in Kadi's layout below `root` (depth 3 for STORAGE_PATH, 2 for uploads) with
 * writeKadiFile, as writeTree does, and for storage files appends `id,seq,size,md5` rows to `rows.csv`.
 */
function writeFiles(root: string, count: number, r: SeededBytes, sizes: Sizes, uid: number, gid: number, depth: 3 | 2, rows?: RowSink): number {
  let bytes = 0;
  const fd = rows ? fs.openSync(rows.csv, 'w', 0o644) : undefined;
  let buf: string[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const id = uuidFrom(r);
      const size = scaleFileSize(r, sizes);
      const data = r.bytes(size);
      writeKadiFile(root, id, depth, data, uid, gid);
      bytes += size;
      if (rows && fd !== undefined) {
        buf.push(`${id},${rows.seq++},${size},${createHash('md5').update(data).digest('hex')}\n`);
        if (buf.length >= 4096) {
          fs.writeSync(fd, buf.join(''));
          buf = [];
        }
      }
    }
    if (fd !== undefined && buf.length) fs.writeSync(fd, buf.join(''));
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  return bytes;
}

/** Loads the rows written by writeFiles into Kadi's `file` table (ten files per record). */
async function loadFileRows(b: BenchHost, csv: string): Promise<void> {
  await b.sb.psql(
    [
      '\\set ON_ERROR_STOP on',
      'CREATE TABLE scale_stage (id uuid, seq int, size bigint, checksum text);',
      `COPY scale_stage FROM '${csv}' WITH (FORMAT csv);`,
      `INSERT INTO record (identifier, title, creator_id) SELECT 'scale-' || g, 'Scale record ' || g, (SELECT min(id) FROM "user")
         FROM generate_series((SELECT min(seq) FROM scale_stage) / 10, (SELECT max(seq) FROM scale_stage) / 10) g ON CONFLICT (identifier) DO NOTHING;`,
      `INSERT INTO file (id, record_id, creator_id, name, size, checksum, state)
         SELECT s.id, r.id, r.creator_id, 'file-' || s.seq || '.dat', s.size, s.checksum, 'active' FROM scale_stage s JOIN record r ON r.identifier = 'scale-' || (s.seq / 10);`,
      'DROP TABLE scale_stage;',
      'ANALYZE record; ANALYZE file;',
    ].join('\n'),
  );
  fs.rmSync(csv, { force: true });
}

/**
 * Peak memory while a phase runs: per command name, the largest VmHWM (kB) of any process of the
 * Kadi user whose command line names this sandbox's root, seen in /proc (sampled every 100 ms, so a process living < 100 ms may be missed), and
 * this process's peak RSS.
 */
class MemorySampler {
  private timer?: NodeJS.Timeout;
  readonly peakKb = new Map<string, number>();
  clientPeak = 0;
  constructor(
    private readonly uid: number,
    private readonly root: string,
  ) {}
  start(): void {
    this.peakKb.clear();
    this.clientPeak = process.memoryUsage().rss;
    this.sample();
    this.timer = setInterval(() => this.sample(), 100);
  }
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.sample();
  }
  private sample(): void {
    this.clientPeak = Math.max(this.clientPeak, process.memoryUsage().rss);
    for (const pid of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      let status: string;
      try {
        status = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
      } catch {
        continue;
      }
      const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
      if (Number(uid) !== this.uid) continue;
      // Other sandboxes (another bench, tests) run processes as the same Kadi user.
      let cmdline = '';
      try {
        cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1');
      } catch {
        continue;
      }
      if (!cmdline.includes(this.root)) continue;
      const name = /^Name:\s+(.*)$/m.exec(status)?.[1] ?? '?';
      const hwm = Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      if (hwm > (this.peakKb.get(name) ?? 0)) this.peakKb.set(name, hwm);
    }
  }
  /** Largest VmHWM among the given command names, in MiB (0 when none was seen). */
  peakMiB(...names: string[]): number {
    return Math.max(0, ...names.map((n) => this.peakKb.get(n) ?? 0)) / 1024;
  }
}

interface Row {
  name: string;
  hand: string;
  handS: number;
  ours: number;
  note?: string;
}

async function main(): Promise<void> {
  const num = (name: string, d: number): number => {
    const v = Number(flag(name, String(d)));
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`);
    return v;
  };
  const files = num('files', 1_000_000);
  const scale = num('scale', 1);
  const sizes = flag('file-sizes', 'small') as Sizes;
  if (!['small', 'kadi', 'large'].includes(sizes)) throw new Error(`--file-sizes must be small, kadi or large, got ${sizes}`);
  const seed = flag('seed', 'kadi-ops-scale-bench');
  const withTar = flag('tar', 'yes') !== 'no';
  const t0 = Date.now();
  const log = (s: string): void => void process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${s}\n`);

  const b = await benchHost();
  const { sb, host, uid, gid } = b;
  log(`sandbox root ${sb.root} (removed when the bench ends)`);
  const mem = new MemorySampler(uid, sb.root);
  try {
    // Room first: inodes (storage + 3 dir-trees of each side's sets with files in two of them, the
    // prune copy's directories) and bytes: the data of the live tree and of a first set on each side
    // (and tar's archive while it is timed), and a 4 KiB block per directory of every tree (the live
    // one, three sets on each side, the prune copy): ~1.05 directories per file at 1M, which the
    // estimate up to 2026-12-01 left out (two 1M runs filled the disk at the repeat after 1%).
    const dirsPerTree = 16_777_216 * (1 - Math.exp(-files / 16_777_216)) + 65_536 * (1 - Math.exp(-files / 65_536)) + 256;
    const inodesNeeded = Math.round(1.05 * (3 * files + 8 * dirsPerTree));
    const ifree = Number(execFileSync('df', ['--output=iavail', sb.root]).toString().trim().split('\n')[1]);
    const bytesFree = Number(execFileSync('df', ['-B1', '--output=avail', sb.root]).toString().trim().split('\n')[1]);
    const meanBytes = sizes === 'small' ? 9.5 * 1024 : sizes === 'kadi' ? 100 * 1024 : 380 * 1024;
    const dirBytes = dirsPerTree * 4096;
    const dataBytes = files * meanBytes;
    const bytesNeeded = Math.max((withTar ? 4 : 3) * dataBytes + 3 * dirBytes, 3 * dataBytes + 8 * dirBytes) * 1.1 + 2 * 2 ** 30;
    log(`needs ~${(inodesNeeded / 1e6).toFixed(1)} M inodes (${(ifree / 1e6).toFixed(1)} M free), ~${(bytesNeeded / 2 ** 30).toFixed(0)} GiB (${(bytesFree / 2 ** 30).toFixed(0)} GiB free)`);
    if (inodesNeeded > ifree * 0.9 || bytesNeeded > bytesFree * 0.9) throw new Error('not enough room on the sandbox filesystem for this --files');

    // Data.
    const gen = new SeededBytes(seed);
    const rows: RowSink = { csv: path.join(sb.root, 'file-rows.csv'), seq: 0 };
    log(`generating: pgbench scale ${scale}, ${files} record files ("${sizes}"), ${Math.max(10, Math.floor(files / 20))} uploads, the file table`);
    execFileSync(path.join(sb.pg.binDir, 'pgbench'), ['-i', '-q', '-s', String(scale), '-h', sb.pg.socketDir, '-p', String(sb.pg.port), '-U', 'postgres', 'kadi'], { stdio: 'ignore' });
    await sb.psql("DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE tablename LIKE 'pgbench_%' LOOP EXECUTE format('ALTER TABLE %I OWNER TO kadi', t); END LOOP; END $$;");
    const data = { storageBytes: 0, uploadsBytes: 0 };
    const genTime = await timed(async () => {
      data.storageBytes = writeFiles(sb.storagePath, files, gen, sizes, uid, gid, 3, rows);
      data.uploadsBytes = writeFiles(sb.uploadsPath, Math.max(10, Math.floor(files / 20)), gen, sizes, uid, gid, 2);
      await loadFileRows(b, rows.csv);
    });
    const dbBytes = Number((await sb.psql("select pg_database_size('kadi')")).trim());
    log(`generated in ${genTime.toFixed(0)} s: storage ${mib(data.storageBytes)} MiB, uploads ${mib(data.uploadsBytes)} MiB, database ${mib(dbBytes)} MiB`);
    const addFiles = async (n: number): Promise<void> => {
      rows.csv = path.join(sb.root, `file-rows-${rows.seq}.csv`);
      data.storageBytes += writeFiles(sb.storagePath, n, gen, sizes, uid, gid, 3, rows);
      await loadFileRows(b, rows.csv);
    };

    const { dir: handDir, pgpass } = byHandDir(b);
    const pgDump = path.join(sb.pg.binDir, 'pg_dump');
    const run = async (what: string, node: ShellNode): Promise<string> => {
      const r = await host.run(node, { collectLimit: 1 << 20 });
      if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr}`);
      return r.stdout;
    };
    const dumpCmd = (out: string): string[] => ['env', `PGPASSFILE=${pgpass}`, pgDump, '-Fc', '-h', '127.0.0.1', '-p', String(sb.pg.port), '-U', 'kadi', '-f', out, 'kadi'];
    const inodesUsed = async (): Promise<number> => Number((await run('df', ['df', '--output=iused', sb.backupDir])).trim().split('\n')[1]);
    const entries = async (dir: string): Promise<{ dirs: number; files: number }> => {
      const out = await run('find', { pipe: [['find', dir, '-printf', '%y\\n'], ['sort'], ['uniq', '-c']] });
      const c = (y: string): number => Number(new RegExp(`(\\d+) ${y}$`, 'm').exec(out)?.[1] ?? 0);
      return { dirs: c('d'), files: c('f') };
    };

    // The two sides of a set, each also timing its parts.
    let d: Discovery | undefined;
    let handPrev: string | undefined;
    const handSets: string[] = [];
    const ourSets: string[] = [];
    interface SideResult {
      total: number;
      parts: string;
      inodes: number;
      agentMiB: number;
      toolMiB: number;
      clientMiB: number;
      clientRiseMiB: number;
    }
    const measure = async (fn: () => Promise<string>, agentNames: string[]): Promise<SideResult> => {
      settle();
      const before = await inodesUsed();
      const rss0 = process.memoryUsage().rss;
      mem.start();
      let parts = '';
      const total = await timed(async () => void (parts = await fn()));
      mem.stop();
      const after = await inodesUsed();
      return {
        total,
        parts,
        inodes: after - before,
        agentMiB: mem.peakMiB(...agentNames),
        toolMiB: mem.peakMiB('rsync', 'tar', 'gzip', 'pg_dump', 'sha256sum', 'find', 'xargs', 'rm', 'cp'),
        clientMiB: mem.clientPeak / 2 ** 20,
        clientRiseMiB: (mem.clientPeak - rss0) / 2 ** 20,
      };
    };
    const ourBackup = async (): Promise<string> => {
      d = await discover(host);
      const sink = new MemorySink();
      const out = await followJob(host, await startBackup(host, d), { sink });
      if (out.result !== 'succeeded') throw new Error(`kadi-ops backup failed:\n${sink.text()}`);
      const set = /^set=(\S+)$/m.exec(sink.text('stdout'))?.[1];
      if (!set) throw new Error('the backup named no set');
      ourSets.push(set);
      return /^timing: (.*)$/m.exec(sink.text('stdout'))?.[1] ?? '';
    };
    const rsyncBackup = async (): Promise<string> => {
      const dest = path.join(handDir, `rsync-${handSets.length + 1}`);
      const tDump = await timed(async () => void (await run('mkdir + pg_dump', { and: [['mkdir', dest], dumpCmd(path.join(dest, 'db.dump'))] })));
      const link = (tree: string): string[] => (handPrev ? [`--link-dest=${path.join(handPrev, tree)}`] : []);
      const tStorage = await timed(async () => void (await run('rsync storage', ['rsync', '-a', ...link('storage'), `${sb.storagePath}/`, path.join(dest, 'storage')])));
      const tUploads = await timed(async () => void (await run('rsync uploads', ['rsync', '-a', ...link('uploads'), `${sb.uploadsPath}/`, path.join(dest, 'uploads')])));
      handPrev = dest;
      handSets.push(dest);
      return `pg_dump ${tDump.toFixed(1)} s, rsync storage ${tStorage.toFixed(1)} s, uploads ${tUploads.toFixed(1)} s`;
    };
    const tarBackup = async (): Promise<string> => {
      const dest = path.join(handDir, 'tar');
      const tDump = await timed(async () => void (await run('mkdir + pg_dump', { and: [['rm', '-rf', dest], ['mkdir', dest], dumpCmd(path.join(dest, 'db.dump'))] })));
      const tStorage = await timed(async () => void (await run('tar storage', ['tar', 'czf', path.join(dest, 'storage.tar.gz'), '-C', sb.storagePath, '.'])));
      const tUploads = await timed(async () => void (await run('tar uploads', ['tar', 'czf', path.join(dest, 'uploads.tar.gz'), '-C', sb.uploadsPath, '.'])));
      return `pg_dump ${tDump.toFixed(1)} s, tar czf storage ${tStorage.toFixed(1)} s, uploads ${tUploads.toFixed(1)} s`;
    };

    const rows_: Row[] = [];
    const memRows: string[] = [];
    const inodeRows: string[] = [];
    const sec = (s: number): string => `${s.toFixed(1)} s`;
    let tarTotal: number | undefined;
    const setRound = async (label: string, first: boolean): Promise<void> => {
      log(`${label}: rsync by hand…`);
      const hand = await measure(rsyncBackup, []);
      log(`  ${sec(hand.total)} (${hand.parts}), ${hand.inodes} inodes, tools ${hand.toolMiB.toFixed(0)} MiB`);
      log(`${label}: kadi-ops…`);
      const ours = await measure(ourBackup, ['python3']);
      log(`  ${sec(ours.total)} (${ours.parts}), ${ours.inodes} inodes, agent ${ours.agentMiB.toFixed(0)} MiB, client peak ${ours.clientMiB.toFixed(0)} MiB`);
      const ourEntries = await entries(path.join(sb.backupDir, ourSets[ourSets.length - 1]));
      const handEntries = await entries(handSets[handSets.length - 1]);
      rows_.push({ name: `${label}: kadi-ops backup vs \`pg_dump -Fc\` + \`rsync -a${first ? '' : ' --link-dest'}\``, hand: sec(hand.total), handS: hand.total, ours: ours.total, note: `job: ${ours.parts}; by hand: ${hand.parts}` });
      if (first && withTar) {
        log(`${label}: tar czf by hand…`);
        const tar = await measure(tarBackup, []);
        tarTotal = tar.total;
        log(`  ${sec(tar.total)} (${tar.parts})`);
        await run('rm -rf', ['rm', '-rf', path.join(handDir, 'tar')]); // its time is all that is needed, not its ~data-sized archive
        rows_.push({ name: `${label}: kadi-ops backup vs the guide's \`pg_dump -Fc\` + \`tar czf\``, hand: sec(tar.total), handS: tar.total, ours: ours.total, note: `by hand: ${tar.parts}` });
        memRows.push(`| ${label}, tar czf by hand | ${tar.toolMiB.toFixed(0)} MiB (largest of pg_dump/tar/gzip) | |`);
      } else if (!first && tarTotal !== undefined) {
        rows_.push({ name: `${label}: kadi-ops backup vs \`tar czf\` (the first set's time: tar re-reads everything)`, hand: sec(tarTotal), handS: tarTotal, ours: ours.total });
      }
      memRows.push(`| ${label}, kadi-ops backup | ${ours.agentMiB.toFixed(0)} MiB (python3) | ${ours.clientMiB.toFixed(0)} MiB (+${ours.clientRiseMiB.toFixed(0)}) |`);
      memRows.push(`| ${label}, rsync by hand | ${hand.toolMiB.toFixed(0)} MiB (largest of pg_dump/rsync) | |`);
      inodeRows.push(`| ${label} | ${ours.inodes} | ${ourEntries.dirs} / ${ourEntries.files} | ${hand.inodes} | ${handEntries.dirs} / ${handEntries.files} |`);
    };

    await setRound('first set', true);
    const small = Math.max(1, Math.round(files / 1000));
    await addFiles(small);
    await setRound(`repeat set after 0.1% (${small}) new files`, false);
    const big = Math.max(1, Math.round(files / 100));
    await addFiles(big);
    await setRound(`repeat set after 1% (${big}) new files`, false);

    // Listing (what `kadi-ops list` runs).
    let listed = 0;
    const tList = await timed(async () => void (listed = (await listSets(host)).sets.length));
    log(`listSets: ${listed} sets in ${tList.toFixed(2)} s`);

    // Prune the first set vs rm -rf of an identical hard-linked copy of it.
    const firstSet = ourSets[0];
    const copy = path.join(handDir, 'prune-copy');
    log('prune: cp -al of the first set (untimed)…');
    await run('cp -al', ['cp', '-al', path.join(sb.backupDir, firstSet), copy]);
    const copyEntries = await entries(copy);
    log('prune: rm -rf by hand…');
    const rm = await measure(async () => {
      await run('rm -rf', ['rm', '-rf', copy]);
      return '';
    }, []);
    log(`  ${sec(rm.total)}, ${rm.inodes} inodes`);
    log('prune: kadi-ops prune job…');
    const prune = await measure(async () => {
      const sink = new MemorySink();
      const out = await followJob(host, await startPrune(host, [firstSet]), { sink });
      if (out.result !== 'succeeded') throw new Error(`prune failed:\n${sink.text()}`);
      return '';
    }, ['python3']);
    log(`  ${sec(prune.total)}, ${prune.inodes} inodes, agent ${prune.agentMiB.toFixed(0)} MiB`);
    // The copy's directories were made seconds ago by one walk; the set's, minutes ago between the
    // other sets'. rm -rf of the by-hand first set (made in the same minutes) is the second reference.
    log('prune: rm -rf of the by-hand first set…');
    const rmHand = await measure(async () => {
      await run('rm -rf', ['rm', '-rf', handSets[0]]);
      return '';
    }, []);
    log(`  ${sec(rmHand.total)}, ${rmHand.inodes} inodes`);
    rows_.push({ name: `prune of the first set (${copyEntries.dirs} dirs, ${copyEntries.files} files): kadi-ops prune job vs \`rm -rf\` of a \`cp -al\` copy of it`, hand: sec(rm.total), handS: rm.total, ours: prune.total });
    rows_.push({ name: 'prune of the first set: kadi-ops prune job vs `rm -rf` of the by-hand first set (made in the same minutes)', hand: sec(rmHand.total), handS: rmHand.total, ours: prune.total });
    memRows.push(`| prune, kadi-ops | ${prune.agentMiB.toFixed(0)} MiB (python3) | ${prune.clientMiB.toFixed(0)} MiB (+${prune.clientRiseMiB.toFixed(0)}) |`);
    inodeRows.push(`| prune of the first set (freed) | ${-prune.inodes} | | ${-rm.inodes} (rm -rf of the copy), ${-rmHand.inodes} (of the by-hand first set) | |`);

    // Quick verify of the last set vs sha256sum of its files (page cache warmed by one sha256sum first).
    const lastSet = ourSets[ourSets.length - 1];
    const setDir = path.join(sb.backupDir, lastSet);
    const sha = async (): Promise<string> => {
      const n = Number((await run('sha256sum', ['bash', '-c', 'set -o pipefail; find "$1" -type f ! -name ".*" -print0 | xargs -0 sha256sum | wc -l', 'sha', setDir])).trim());
      return `${n} files`;
    };
    log('verify: warm-up sha256sum…');
    await sha();
    const shaR = await measure(sha, []);
    log(`  sha256sum ${sec(shaR.total)} (${shaR.parts})`);
    const verify = await measure(async () => {
      const sink = new MemorySink();
      if (!d) throw new Error('no discovery');
      const out = await followJob(host, await startVerify(host, d, lastSet, 'quick'), { sink });
      if (out.result !== 'succeeded') throw new Error(`quick verify failed:\n${sink.text()}`);
      return /^checked .*$/m.exec(sink.text('stdout'))?.[0] ?? '';
    }, ['python3']);
    log(`  quick verify ${sec(verify.total)} (${verify.parts}), agent ${verify.agentMiB.toFixed(0)} MiB`);
    rows_.push({ name: `quick verify of the last set vs \`find \\| xargs sha256sum\` (${shaR.parts})`, hand: sec(shaR.total), handS: shaR.total, ours: verify.total, note: verify.parts });
    memRows.push(`| quick verify, kadi-ops | ${verify.agentMiB.toFixed(0)} MiB (python3) | ${verify.clientMiB.toFixed(0)} MiB (+${verify.clientRiseMiB.toFixed(0)}) |`);
    memRows.push(`| quick verify, sha256sum by hand | ${shaR.toolMiB.toFixed(0)} MiB (largest of find/xargs/sha256sum) | |`);

    // Restore of the trees onto an instance changed since the last set (1% new record files the
    // set does not have): kadi-ops (preflight relying on the verification just made, then the
    // restore job of storage and uploads) against `rsync -a --delete` of the by-hand last set.
    const change = Math.max(1, Math.round(files / 100));
    const changeLive = (): void => void (data.storageBytes += writeFiles(sb.storagePath, change, gen, sizes, uid, gid, 3));
    changeLive();
    log(`restore after ${change} new files: rsync --delete by hand…`);
    const handLast = handSets[handSets.length - 1];
    const rsyncRestore = await measure(async () => {
      const t = await timed(async () => void (await run('rsync --delete storage', ['rsync', '-a', '--delete', `${path.join(handLast, 'storage')}/`, `${sb.storagePath}/`])));
      const u = await timed(async () => void (await run('rsync --delete uploads', ['rsync', '-a', '--delete', `${path.join(handLast, 'uploads')}/`, `${sb.uploadsPath}/`])));
      return `storage ${sec(t)}, uploads ${sec(u)}`;
    }, []);
    log(`  ${sec(rsyncRestore.total)} (${rsyncRestore.parts}), rsync ${rsyncRestore.toolMiB.toFixed(0)} MiB`);
    changeLive();
    log('restore: kadi-ops (preflight + restore job of storage and uploads)…');
    let jobTime = 0;
    const ourRestore = await measure(async () => {
      const dd = await discover(host);
      const t = Date.now();
      const plan = await preflight(host, dd, lastSet, { components: ['storage', 'uploads'], safetyBackup: false, reuseVerificationHours: 24 });
      const tPlan = (Date.now() - t) / 1000;
      const sink = new MemorySink();
      jobTime = await timed(async () => {
        const out = await followJob(host, await startRestore(host, dd, plan), { sink });
        if (out.result !== 'succeeded') throw new Error(`kadi-ops restore failed: ${out.result}\n${sink.text()}`);
      });
      const steps = jobSteps(sink.text('stdout')).map(([n, t]) => `${n} ${t} s`);
      return `preflight ${sec(tPlan)}, job ${sec(jobTime)}${steps.length ? ` (${steps.join(', ')})` : ''}`;
    }, ['python3']);
    log(`  ${sec(ourRestore.total)} (${ourRestore.parts}), agent ${ourRestore.agentMiB.toFixed(0)} MiB, rsync ${ourRestore.toolMiB.toFixed(0)} MiB`);
    // A time is only worth something for a complete restore: the trees must now be the set's (names,
    // types, sizes, times, link targets; modes aside: the restore gives the guide's), untimed.
    for (const tree of ['storage', 'uploads'] as const) {
      const live = tree === 'storage' ? sb.storagePath : sb.uploadsPath;
      const left = (await run('rsync --dry-run', ['rsync', '-rlt', '--delete', '--dry-run', '--itemize-changes', `${path.join(sb.backupDir, lastSet, tree)}/`, `${live}/`])).trim();
      if (left) throw new Error(`kadi-ops restore left ${tree} different from the set:\n${left.split('\n').slice(0, 20).join('\n')}`);
    }
    rows_.push({ name: `restore of the trees onto the instance after ${change} new files: kadi-ops (discover + preflight + job) vs \`rsync -a --delete\` of the by-hand set`, hand: sec(rsyncRestore.total), handS: rsyncRestore.total, ours: ourRestore.total, note: `kadi-ops: ${ourRestore.parts}; by hand: ${rsyncRestore.parts}` });
    rows_.push({ name: 'restore of the trees: the restore job alone vs `rsync -a --delete`', hand: sec(rsyncRestore.total), handS: rsyncRestore.total, ours: jobTime });
    memRows.push(`| restore of the trees, kadi-ops | ${ourRestore.agentMiB.toFixed(0)} MiB (python3); rsync ${ourRestore.toolMiB.toFixed(0)} MiB | ${ourRestore.clientMiB.toFixed(0)} MiB (+${ourRestore.clientRiseMiB.toFixed(0)}) |`);
    memRows.push(`| restore of the trees, rsync --delete by hand | ${rsyncRestore.toolMiB.toFixed(0)} MiB (rsync) | |`);

    const lines = [
      `Data: ${files} record files / ${mib(data.storageBytes)} MiB at the end (file sizes "${sizes}", uuid layout), uploads ${mib(data.uploadsBytes)} MiB, database ${mib(dbBytes)} MiB at the start (pgbench scale ${scale} + Kadi tables with ${files} \`file\` rows); seed "${seed}"; one run, page cache warm; generated in ${genTime.toFixed(0)} s; whole bench ${((Date.now() - t0) / 1000).toFixed(0)} s.`,
      machineLine(),
      '',
      '| scenario | by hand | kadi-ops | ratio |',
      '|---|---:|---:|---:|',
      ...rows_.map((r) => `| ${r.name} | ${r.hand} | ${sec(r.ours)} | ${(r.ours / r.handS).toFixed(2)}× |`),
      `| list the sets (listSets, what \`kadi-ops list\` runs; ${listed} sets) | | ${tList.toFixed(2)} s | |`,
      '',
      'Where the time goes:',
      '',
      ...rows_.filter((r) => r.note).map((r) => `- ${r.name.split(':')[0]}: ${r.note}`),
      '',
      '| inodes used (`df -i` of the backup filesystem, after − before; other processes on it count too) | kadi-ops set | its dirs / files (`find`) | rsync set by hand | its dirs / files |',
      '|---|---:|---:|---:|---:|',
      ...inodeRows,
      '',
      '| peak memory | agent (largest VmHWM) / by-hand tools | client RSS peak (rise in the phase) |',
      '|---|---:|---:|',
      ...memRows,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    mem.stop();
    // The big trees go first with one rm -rf (about three times as fast as the sandbox's own
    // recursive removal, which then has little left: ~4 min for 100,000 files without this).
    const big = [path.join(sb.root, 'by-hand'), sb.backupDir, sb.storagePath, sb.uploadsPath].filter((p) => fs.existsSync(p));
    log('removing the generated trees…');
    const tRm = Date.now();
    spawnSync('rm', ['-rf', '--', ...big], { stdio: 'ignore' });
    log(`  removed in ${((Date.now() - tRm) / 1000).toFixed(0)} s`);
    await b.stop();
    log(`sandbox stopped; ${fs.existsSync(sb.root) ? `ROOT LEFT BEHIND: ${sb.root}` : 'root removed'}`);
  }
}

runBench(main);
