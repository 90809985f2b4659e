/**
 * Off-site push benchmark: `kadi-ops offsite push` (startOffsitePush + followJob: restic from inside
 * the set, the newest snapshot as parent, --ignore-ctime) against what an operator runs by hand,
 * `restic backup /mnt/backups/kadi/<set>` (a new path per set, so restic finds no parent and reads
 * every file again; deduplication keeps what it sends small). Both into repositories of their own on
 * a local path of the host (restic's local backend: what is measured is restic's work, not a
 * network). Also: the bytes a repeat set adds after 1% new record files, against the new data plus
 * the dump (goal ≤ 1.2×), and `offsite check` (with and without reading all the data).
 *
 *   npm run bench:offsite -- [--scale S] [--files N] [--file-sizes kadi|large] [--seed X]
 *
 * One run per side (a push cannot be repeated on the same repository: the second finds the set
 * there); the by-hand side runs first for the first set and second for the repeat set.
 */
import { connectOffsite, newRepositoryPassword, startOffsiteCheck, startOffsitePush } from '../src/offsite/offsite';
import type { PlanOffsite } from '../src/core/plan';
import { MemorySink } from '../src/core/sink';
import { followJob } from '../src/remote/jobs';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backUpOnce, benchHost, benchOptions, machineLine, mib, runBench, seedData, SeededBytes, timed, writeTree } from './benchData';

async function main(): Promise<void> {
  const { scale, files, sizes, seed } = benchOptions({ runs: 1, seed: 'kadi-ops-offsite-bench' });
  const b = await benchHost();
  const { sb, host } = b;
  try {
    const gen = new SeededBytes(seed);
    const data = await seedData(b, { scale, files, sizes, gen });
    const work = path.join(sb.root, 'offsite-bench');
    fs.mkdirSync(work, { mode: 0o700 });
    fs.chownSync(work, b.uid, b.gid);
    const ours: PlanOffsite = { repository: path.join(work, 'ours') };
    await connectOffsite(host, ours, { password: newRepositoryPassword(), create: true });
    // By hand: a repository of its own, its password in a 0600 file (RESTIC_PASSWORD_FILE, as the guide for restic would have it).
    const handRepo = path.join(work, 'by-hand');
    const handKey = path.join(work, 'by-hand.key');
    fs.writeFileSync(handKey, `${newRepositoryPassword()}\n`, { mode: 0o600 });
    fs.chownSync(handKey, b.uid, b.gid);
    const restic = (...args: string[]): string[] => ['env', `RESTIC_REPOSITORY=${handRepo}`, `RESTIC_PASSWORD_FILE=${handKey}`, `RESTIC_CACHE_DIR=${path.join(work, 'by-hand-cache')}`, 'restic', ...args];
    const ok = async (argv: string[], what: string): Promise<string> => {
      const r = await host.run({ argv }, { collectLimit: 16 << 20 });
      if (r.code !== 0) throw new Error(`${what} failed: ${r.stderr}`);
      return r.stdout;
    };
    await ok(restic('init'), 'restic init (by hand)');
    const repoBytes = async (repo: string): Promise<number> => Number((await ok(['du', '-sb', repo], 'du')).split('\t')[0]);
    const push = async (set: string): Promise<{ added: number; unmodified: number; changed: number }> => {
      const s = new MemorySink();
      const out = await followJob(host, await startOffsitePush(host, ours, set), { sink: s });
      if (out.result !== 'succeeded') throw new Error(`push failed:\n${s.text()}`);
      const t = s.text('stdout');
      return { added: Number(/^data_added=(\d+)$/m.exec(t)?.[1]), unmodified: Number(/^files_unmodified=(\d+)$/m.exec(t)?.[1]), changed: Number(/(\d+) changed/.exec(t)?.[1]) };
    };
    const byHand = async (set: string): Promise<number> => {
      const summary = (await ok(restic('backup', '--json', path.join(sb.backupDir, set)), 'restic backup (by hand)')).trim().split('\n').pop() ?? '{}';
      return Number((JSON.parse(summary) as { data_added?: number }).data_added);
    };

    const first = await backUpOnce(b);
    const setBytes = Number((await ok(['du', '-sb', '--exclude=.*', path.join(sb.backupDir, first.set)], 'du')).split('\t')[0]);
    let handFirstAdded = 0;
    const handFirst = await timed(async () => void (handFirstAdded = await byHand(first.set)));
    let oursFirst = { added: 0, unmodified: 0, changed: 0 };
    const oursFirstT = await timed(async () => void (oursFirst = await push(first.set)));

    // 1% new record files, then the next set (hard links for every unchanged file).
    const newFiles = Math.max(1, Math.round(files / 100));
    const newBytes = writeTree(sb.storagePath, newFiles, gen, sizes, b.uid, b.gid, 3);
    const second = await backUpOnce(b);
    const dumpBytes = fs.statSync(path.join(sb.backupDir, second.set, 'db.dump')).size;
    const before = await repoBytes(ours.repository);
    let oursRepeat = { added: 0, unmodified: 0, changed: 0 };
    const oursRepeatT = await timed(async () => void (oursRepeat = await push(second.set)));
    const grown = (await repoBytes(ours.repository)) - before;
    let handRepeatAdded = 0;
    const handRepeat = await timed(async () => void (handRepeatAdded = await byHand(second.set)));

    const check = async (subset?: string): Promise<number> =>
      timed(async () => {
        const s = new MemorySink();
        const out = await followJob(host, await startOffsiteCheck(host, ours, subset), { sink: s });
        if (out.result !== 'succeeded') throw new Error(`check failed:\n${s.text()}`);
      });
    const checkT = await check();
    const checkAllT = await check('100%');
    const handCheckT = await timed(async () => void (await ok(restic('check'), 'restic check (by hand)')));

    const newData = newBytes + dumpBytes;
    process.stdout.write(
      [
        `Data: pgbench scale ${scale} + Kadi tables (${mib(data.dbBytes)} MiB database), ${files} record files (${mib(data.storageBytes)} MiB) + uploads; first set ${mib(setBytes)} MiB; seed "${seed}". One run per side, repositories on the host's local disk.`,
        machineLine(),
        '',
        '| | by hand: `restic backup <set dir>` | kadi-ops offsite push | ÷ by hand |',
        '|---|---:|---:|---:|',
        `| first set | ${handFirst.toFixed(1)} s | ${oursFirstT.toFixed(1)} s | ${(oursFirstT / handFirst).toFixed(2)}× |`,
        `| repeat set after ${newFiles} new files (1%) | ${handRepeat.toFixed(1)} s | ${oursRepeatT.toFixed(1)} s | ${(oursRepeatT / handRepeat).toFixed(2)}× |`,
        `| bytes added, first set | ${mib(handFirstAdded)} MiB | ${mib(oursFirst.added)} MiB | |`,
        `| bytes added, repeat set | ${(handRepeatAdded / 1048576).toFixed(1)} MiB | ${(oursRepeat.added / 1048576).toFixed(1)} MiB | |`,
        '',
        `Repeat set: new data ${(newBytes / 1048576).toFixed(1)} MiB in ${newFiles} files + dump ${(dumpBytes / 1048576).toFixed(1)} MiB = ${(newData / 1048576).toFixed(1)} MiB; the repository grew ${(grown / 1048576).toFixed(1)} MiB = ${(grown / newData).toFixed(2)}× of it (goal ≤ 1.2×); restic read ${oursRepeat.changed} changed files and left ${oursRepeat.unmodified} unread.`,
        `offsite check: ${checkT.toFixed(1)} s (structure), ${checkAllT.toFixed(1)} s (--read-data-subset 100%); by hand \`restic check\`: ${handCheckT.toFixed(1)} s.`,
      ].join('\n') + '\n',
    );
  } finally {
    await b.stop();
  }
}

runBench(main);
