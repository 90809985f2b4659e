/**
 * Restore benchmark: the guide's by-hand restore (pg_restore --clean, tar x of storage and
 * uploads, chown -R, then `find -exec chmod {} \;` once per file) against
 * `kadi-ops restore --yes` (preflight on, safety backup off), on the same generated data in the
 * same process, alternating sides. kadi-ops runs twice per round: relying on the set's passing
 * quick verify from right after the backup (the default: a nightly backup and verify, a restore
 * within 24 h), and with --verify-again (every checksum re-hashed before the restore).
 *
 *   npm run bench:restore -- [--scale S] [--files N] [--file-sizes kadi|large] [--runs R]
 *
 * Scenarios: into an emptied instance (database dropped and recreated empty, trees emptied), and
 * onto an instance that changed 1% since the set (new files and changed rows).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startVerify } from '../src/backup/backupSets';
import { MemorySink } from '../src/core/sink';
import { discover } from '../src/kadi/discovery';
import { followJob } from '../src/remote/jobs';
import { buildCommand } from '../src/core/shellCommand';
import { preflight } from '../src/restore/preflight';
import { startRestore } from '../src/restore/restoreJob';
import { backUpOnce, benchHost, benchOptions, byHandDir, jobSteps, machineLine, median, runBench, seedData, SeededBytes, settle, timed, writeTree } from './benchData';

async function main(): Promise<void> {
  const { scale, files, sizes, runs, seed } = benchOptions({ runs: 3, seed: 'kadi-ops-restore-bench' });
  // The same data as the by-hand side can restore: without the superuser's extension (sandbox.ts).
  const b = await benchHost({ dbaObjects: false });
  const { sb, host, uid, gid } = b;
  try {
    const gen = new SeededBytes(seed);
    await seedData(b, { scale, files, sizes, gen });
    // The set kadi-ops restores, and the by-hand backup the guide's restore starts from.
    const { d, set } = await backUpOnce(b);
    const vf = await followJob(host, await startVerify(host, d, set), { sink: new MemorySink() });
    if (vf.result !== 'succeeded') throw new Error('verify failed');
    const { dir: hand, pgpass } = byHandDir(b);
    const pgBin = (t: string): string => path.join(sb.pg.binDir, t);
    const conn = ['-h', '127.0.0.1', '-p', String(sb.pg.port), '-U', 'kadi'];
    const runHand = async (node: Parameters<typeof buildCommand>[0]): Promise<void> => {
      const r = await host.run({ argv: ['sh', '-c', buildCommand(node)] });
      if (r.code !== 0) throw new Error(`by-hand step failed: ${r.stderr.slice(-500)}`);
    };
    await runHand({
      and: [
        ['env', `PGPASSFILE=${pgpass}`, pgBin('pg_dump'), '-Fc', ...conn, '-f', path.join(hand, 'db.dump'), 'kadi'],
        ['tar', 'czf', path.join(hand, 'storage.tar.gz'), '-C', sb.storagePath, '.'],
        ['tar', 'czf', path.join(hand, 'uploads.tar.gz'), '-C', sb.uploadsPath, '.'],
      ],
    });

    const byHand = async (): Promise<void> => {
      const steps: Parameters<typeof buildCommand>[0][] = [['env', `PGPASSFILE=${pgpass}`, pgBin('pg_restore'), '--clean', '--if-exists', ...conn, '-d', 'kadi', path.join(hand, 'db.dump')]];
      for (const [tree, archive] of [[sb.storagePath, 'storage.tar.gz'], [sb.uploadsPath, 'uploads.tar.gz']] as const) {
        steps.push(
          ['find', tree, '-mindepth', '1', '-delete'],
          ['tar', 'xzf', path.join(hand, archive), '-C', tree],
          ['chown', '-R', `${sb.kadiUser}:${sb.kadiUser}`, tree],
          ['find', tree, '-type', 'd', '-exec', 'chmod', '750', '{}', ';'],
          ['find', tree, '-type', 'f', '-exec', 'chmod', '640', '{}', ';'],
        );
      }
      await runHand({ and: steps });
    };
    const ours = async (reuseVerificationHours: number): Promise<void> => {
      const dd = await discover(host);
      const t = Date.now();
      const plan = await preflight(host, dd, set, { safetyBackup: false, reuseVerificationHours });
      const tPlan = (Date.now() - t) / 1000;
      const sink = new MemorySink();
      const out = await followJob(host, await startRestore(host, dd, plan), { sink });
      if (out.result !== 'succeeded') throw new Error(`kadi-ops restore failed: ${out.result}\n${sink.text()}`);
      const steps = jobSteps(sink.text('stdout')).map(([n, t]) => `${n}=${t}s`);
      process.stderr.write(`  preflight=${tPlan.toFixed(1)}s ${steps.join(' ')}\n`);
    };
    const emptyInstance = async (): Promise<void> => {
      await sb.psql(`DROP DATABASE kadi WITH (FORCE); CREATE DATABASE kadi OWNER kadi;`, 'postgres');
      for (const t of [sb.storagePath, sb.uploadsPath]) for (const e of fs.readdirSync(t)) fs.rmSync(path.join(t, e), { recursive: true, force: true });
    };
    const changeOnePercent = async (): Promise<void> => {
      writeTree(sb.storagePath, Math.max(1, Math.floor(files / 100)), gen, sizes, uid, gid, 3);
      await sb.psql('UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 100 = 0;');
    };

    const results: { name: string; hand: number; ours: number; again: number }[] = [];
    for (const [name, prepare] of [
      ['into an emptied instance', emptyInstance],
      ['onto an instance changed 1% since the set', changeOnePercent],
    ] as const) {
      const h: number[] = [];
      const o: number[] = [];
      const a: number[] = [];
      for (let i = 0; i < runs; i++) {
        // settle(): no run pays for the write-back of what the one before it (or prepare) wrote.
        await prepare();
        settle();
        h.push(await timed(byHand));
        await prepare();
        settle();
        o.push(await timed(() => ours(24)));
        await prepare();
        settle();
        a.push(await timed(() => ours(0)));
        process.stderr.write(`${name} run ${i + 1}: by hand ${h[i].toFixed(1)} s, kadi-ops ${o[i].toFixed(1)} s, with --verify-again ${a[i].toFixed(1)} s\n`);
      }
      results.push({ name, hand: median(h), ours: median(o), again: median(a) });
    }
    const dbBytes = Number((await sb.psql("select pg_database_size('kadi')")).trim());
    process.stdout.write(
      [
        `Data: database ${(dbBytes / 1048576).toFixed(0)} MiB (pgbench scale ${scale} + Kadi tables), storage ${files} files (file sizes "${sizes}"); ${runs} alternating runs per side, medians.`,
        machineLine(),
        '',
        '| scenario | by hand (guide) | kadi-ops restore (verified last night) | ratio | kadi-ops restore --verify-again | ratio |',
        '|---|---:|---:|---:|---:|---:|',
        ...results.map((r) => `| ${r.name} | ${r.hand.toFixed(1)} s | ${r.ours.toFixed(1)} s | ${(r.ours / r.hand).toFixed(2)}× | ${r.again.toFixed(1)} s | ${(r.again / r.hand).toFixed(2)}× |`),
      ].join('\n') + '\n',
    );
  } finally {
    await b.stop();
  }
}

runBench(main);
