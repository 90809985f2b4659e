/**
 * Backup benchmark: the guide's by-hand sequence (pg_dump -Fc, then tar czf of storage and
 * uploads, one after the other, over SSH) against `kadi-ops backup` (checksums and manifest
 * included), on the same generated data in the same process, alternating sides, several runs.
 *
 *   npm run bench:backup -- [--scale S] [--files N] [--file-sizes kadi|large] [--runs R]
 *   npm run bench:backup -- --small      (the small instance: --scale 5 --files 4000, ~75 MB database)
 *
 * Each kadi-ops run is split into its phases: discovery, starting the job, the job's own work (its
 * `timing: total=` line) and the rest until the outcome is known (following the log, the job's end
 * reaching the client). Everything but the job's own work is the fixed cost per job.
 *
 * S: pgbench scale for the database (1 ≈ 15 MB); N: record files in STORAGE_PATH (mixed sizes,
 * reproducible from --seed). Prints a Markdown table for BENCHMARKS.md.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startBackup } from '../src/backup/backupSets';
import { MemorySink } from '../src/core/sink';
import { discover } from '../src/kadi/discovery';
import { followJob } from '../src/remote/jobs';
import { buildCommand } from '../src/core/shellCommand';
import { benchHost, benchOptions, byHandDir, machineLine, median, mib, runBench, seedData, SeededBytes, settle, timed, writeTree } from './benchData';

async function main(): Promise<void> {
  const o = benchOptions({ runs: 3, seed: 'kadi-ops-bench' });
  if (process.argv.includes('--small')) {
    // The small instance of issue 19: ~75 MB database, ~4,000 small files (unless given otherwise).
    if (!process.argv.includes('--scale')) o.scale = 5;
    if (!process.argv.includes('--files')) o.files = 4000;
  }
  const phases: Record<'discover' | 'start' | 'work' | 'follow', number[]> = { discover: [], start: [], work: [], follow: [] };
  const b = await benchHost();
  const { sb, host, uid, gid } = b;
  try {
    const gen = new SeededBytes(o.seed);
    const { dbBytes, storageBytes, uploadsBytes } = await seedData(b, { scale: o.scale, files: o.files, sizes: o.sizes, gen });
    const { dir: handDir, pgpass } = byHandDir(b);
    const pgDump = path.join(sb.pg.binDir, 'pg_dump');

    const byHand = async (): Promise<void> => {
      const out = path.join(handDir, 'run');
      const cmd = buildCommand({
        and: [
          ['rm', '-rf', out],
          ['mkdir', out],
          ['env', `PGPASSFILE=${pgpass}`, pgDump, '-Fc', '-h', '127.0.0.1', '-p', String(sb.pg.port), '-U', 'kadi', '-f', path.join(out, 'db.dump'), 'kadi'],
          ['tar', 'czf', path.join(out, 'storage.tar.gz'), '-C', sb.storagePath, '.'],
          ['tar', 'czf', path.join(out, 'uploads.tar.gz'), '-C', sb.uploadsPath, '.'],
        ],
      });
      const r = await host.run({ argv: ['sh', '-c', cmd] });
      if (r.code !== 0) throw new Error(`by-hand backup failed: ${r.stderr}`);
    };
    const ours = async (): Promise<void> => {
      const t0 = performance.now();
      const d = await discover(host);
      const t1 = performance.now();
      const id = await startBackup(host, d);
      const t2 = performance.now();
      const sink = new MemorySink();
      const out = await followJob(host, id, { sink });
      const t3 = performance.now();
      if (out.result !== 'succeeded') throw new Error(`kadi-ops backup failed:\n${sink.text()}`);
      const timing = /^timing: .*$/m.exec(sink.text('stdout'))?.[0] ?? '';
      const work = 1000 * Number(/total=([0-9.]+)s/.exec(timing)?.[1] ?? 'NaN');
      phases.discover.push(t1 - t0);
      phases.start.push(t2 - t1);
      phases.work.push(work);
      phases.follow.push(t3 - t2 - work);
      process.stderr.write(`  ${timing}\n`);
    };
    const clearSets = (): void => {
      for (const n of fs.readdirSync(sb.backupDir)) if (/^\d{4}-/.test(n)) fs.rmSync(path.join(sb.backupDir, n), { recursive: true, force: true });
    };

    const results: { name: string; hand: number; ours: number }[] = [];
    // First (full) set: no previous set for kadi-ops on each run.
    const handFull: number[] = [];
    const oursFull: number[] = [];
    for (let i = 0; i < o.runs; i++) {
      // Sets are cleared before the by-hand run: ext4 is slow to make inodes right after
      // deleting tens of thousands (it avoids reusing recently deleted ones), which a real first
      // set never meets.
      clearSets();
      settle();
      handFull.push(await timed(byHand));
      settle();
      oursFull.push(await timed(ours));
      process.stderr.write(`full run ${i + 1}: by hand ${handFull[i].toFixed(1)} s, kadi-ops ${oursFull[i].toFixed(1)} s\n`);
    }
    results.push({ name: 'first (full) set', hand: median(handFull), ours: median(oursFull) });
    // Repeat set after 1% new files (each run adds its own 1%).
    const handRep: number[] = [];
    const oursRep: number[] = [];
    for (let i = 0; i < o.runs; i++) {
      writeTree(sb.storagePath, Math.max(1, Math.floor(o.files / 100)), gen, o.sizes, uid, gid, 3);
      settle();
      handRep.push(await timed(byHand));
      settle();
      oursRep.push(await timed(ours));
      process.stderr.write(`repeat run ${i + 1}: by hand ${handRep[i].toFixed(1)} s, kadi-ops ${oursRep[i].toFixed(1)} s\n`);
    }
    results.push({ name: 'repeat set after 1% new files', hand: median(handRep), ours: median(oursRep) });

    const lines = [
      `Data: database ${mib(dbBytes)} MiB (pgbench scale ${o.scale} + Kadi tables), storage ${o.files} files / ${mib(storageBytes)} MiB (file sizes "${o.sizes}"), uploads ${mib(uploadsBytes)} MiB; seed "${o.seed}"; ${o.runs} alternating runs per side, medians.`,
      machineLine(),
      '',
      '| scenario | by hand (guide) | kadi-ops backup | ratio |',
      '|---|---:|---:|---:|',
      ...results.map((r) => `| ${r.name} | ${r.hand.toFixed(1)} s | ${r.ours.toFixed(1)} s | ${(r.ours / r.hand).toFixed(2)}× |`),
      '',
      `Phases of a kadi-ops backup (medians over all its runs; the connection is open already): discovery ${median(phases.discover).toFixed(0)} ms, ` +
        `job start ${median(phases.start).toFixed(0)} ms, the job's own work ${median(phases.work).toFixed(0)} ms (its timing line, 0.1 s resolution), ` +
        `following until the outcome is known ${median(phases.follow).toFixed(0)} ms; fixed cost (all but the work) ${(median(phases.discover) + median(phases.start) + median(phases.follow)).toFixed(0)} ms.`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    await b.stop();
  }
}

runBench(main);
