/**
 * Quick-verify benchmark: `startVerify(…, 'quick')` followed to the end with `followJob` (every
 * artifact's and tree file's size and sha256 against the manifest and file lists, the dump's table
 * of contents, the .verify.json result) against the floor an operator could do by hand: plain
 * `sha256sum` of every file of the set, run over SSH on the same host (no comparison, no TOC).
 * Also timed: `openssl dgst -sha256` of the same files, because coreutils' sha256sum does not use
 * the CPU's SHA extensions and OpenSSL (hence Python's hashlib) does. Same set, same process,
 * sides rotating, medians.
 *
 *   npm run bench:verify -- [--scale S] [--files N] [--file-sizes kadi|large] [--runs R] [--seed X]
 *
 * The set is made by a real `kadi-ops backup` of generated data (pgbench scale S + Kadi tables,
 * N record files of mixed sizes). Discovery (`kadi utils config` and the facts query), which the
 * CLI's `verify` runs once before starting the job, is timed separately and not in the ratio.
 */
import { startVerify } from '../src/backup/backupSets';
import { MemorySink } from '../src/core/sink';
import { discover } from '../src/kadi/discovery';
import { followJob } from '../src/remote/jobs';
import { backUpOnce, benchHost, benchOptions, machineLine, median, mib, runBench, seedData, SeededBytes, timed } from './benchData';

async function main(): Promise<void> {
  const { scale, files, sizes, runs, seed } = benchOptions({ runs: 5, seed: 'kadi-ops-verify-bench' });
  const b = await benchHost();
  const { sb, host } = b;
  try {
    await seedData(b, { scale, files, sizes, gen: new SeededBytes(seed) });
    const { d, set } = await backUpOnce(b);
    const setDir = `${sb.backupDir}/${set}`;
    // What the set holds (regular files, no dot files: those are the host's marks, not the set).
    const du = await host.run({ pipe: [['find', setDir, '-type', 'f', '!', '-name', '.*', '-printf', '%s\\n'], ['awk', '{n++; s+=$1} END {print n, s}']] });
    const [setFiles, setBytes] = du.stdout.trim().split(' ').map(Number);

    // Phases of our side from the job's own lines as they arrive (tail -f polls every 0.2 s).
    const phaseNames = ['start → first step', 'TOC + hashing (first python)', 'result file (second python)', 'last line → outcome'] as const;
    const phases: number[][] = phaseNames.map(() => []);
    let checked = '';
    const ours = async (): Promise<void> => {
      const s = new MemorySink();
      const t0 = performance.now();
      const at: Record<string, number> = {};
      const out = await followJob(host, await startVerify(host, d, set, 'quick'), {
        sink: s,
        onLine: (l) => {
          const key = l.startsWith('[step] verifying') ? 'step' : l.startsWith('checked ') ? 'checked' : l.startsWith('verified=') ? 'verified' : undefined;
          if (key) at[key] = performance.now();
        },
      });
      const t1 = performance.now();
      if (out.result !== 'succeeded') throw new Error(`quick verify failed:\n${s.text()}`);
      checked = /^checked .*$/m.exec(s.text('stdout'))?.[0] ?? '';
      const marks = [t0, at.step, at.checked, at.verified, t1];
      marks.slice(1).forEach((m, k) => phases[k].push((m - marks[k]) / 1000));
    };
    const hashAll = async (hasher: string[], what: string): Promise<void> => {
      const r = await host.run({ pipe: [['find', setDir, '-type', 'f', '!', '-name', '.*', '-print0'], ['xargs', '-0', ...hasher]] }, { collectLimit: 16 << 20 });
      if (r.code !== 0) throw new Error(`${what} failed: ${r.stderr}`);
      const lines = r.stdout.split('\n').filter((l) => l).length;
      if (lines !== setFiles) throw new Error(`${what} hashed ${lines} files, the set has ${setFiles}`);
    };
    const sides: { name: string; run: () => Promise<void>; times: number[] }[] = [
      { name: '`find \\| xargs sha256sum` over SSH (the floor)', run: () => hashAll(['sha256sum'], 'sha256sum'), times: [] },
      { name: '`find \\| xargs openssl dgst -sha256` over SSH', run: () => hashAll(['openssl', 'dgst', '-sha256'], 'openssl dgst'), times: [] },
      { name: 'kadi-ops quick verify (startVerify + followJob)', run: ours, times: [] },
    ];
    const discoverTimes: number[] = [];
    await sides[0].run(); // warm-up: every side then reads from the page cache, as a verify right after a backup does
    for (let i = 0; i < runs; i++) {
      // Rotate the order so no side always runs first.
      for (let k = 0; k < sides.length; k++) {
        const side = sides[(k + i) % sides.length];
        side.times.push(await timed(side.run));
      }
      discoverTimes.push(await timed(async () => void (await discover(host))));
      process.stderr.write(`run ${i + 1}: ${sides.map((x) => `${x.times[i].toFixed(2)} s`).join(', ')} (${checked})\n`);
    }
    const floor = median(sides[0].times);
    const rate = (t: number): string => `${(setBytes / 1048576 / t).toFixed(0)} MiB/s`;
    process.stdout.write(
      [
        `Data: set ${set} of ${setFiles} files / ${mib(setBytes)} MiB (pgbench scale ${scale} + Kadi tables, ${files} record files; seed "${seed}"); ${runs} rotating runs per side, medians; page cache warm.`,
        machineLine(),
        '',
        '| quick verify of one set | median time | rate | ÷ sha256sum |',
        '|---|---:|---:|---:|',
        ...sides.map((x) => `| ${x.name} | ${median(x.times).toFixed(2)} s | ${rate(median(x.times))} | ${(median(x.times) / floor).toFixed(2)}× |`),
        '',
        `kadi-ops quick verify ÷ sha256sum: ${(median(sides[2].times) / floor).toFixed(2)}× (goal ≤ 1.3×).`,
        `Phases of the kadi-ops side (medians, ±0.2 s from tail polling): ${phaseNames.map((nm, k) => `${nm} ${median(phases[k]).toFixed(2)} s`).join('; ')}.`,
        `Discovery before the job (the CLI runs it once; not in the ratio): ${median(discoverTimes).toFixed(2)} s.`,
      ].join('\n') + '\n',
    );
  } finally {
    await b.stop();
  }
}

runBench(main);
