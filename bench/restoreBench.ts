/**
 * Restore benchmark: the guide's by-hand restore (pg_restore --clean, tar x of storage and
 * uploads, chown -R, then `find -exec chmod {} \;` once per file) against
 * `kadi-ops restore --yes` (preflight with its quick verify on, safety backup off), on the same
 * generated data in the same process, alternating sides.
 *
 *   npm run bench:restore -- [--scale S] [--files N] [--runs R]
 *
 * Scenarios: into an emptied instance (database dropped and recreated empty, trees emptied), and
 * onto an instance that changed 1% since the set (new files and changed rows).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { listSets, startBackup } from '../src/backup/backupSets';
import { resolveProfiles } from '../src/config/hostProfiles';
import { MemorySink } from '../src/core/sink';
import { discover } from '../src/kadi/discovery';
import { ConnectionPool } from '../src/remote/connectionPool';
import { followJob } from '../src/remote/jobs';
import type { RemoteHost } from '../src/remote/remoteHost';
import { buildCommand } from '../src/remote/shellCommand';
import { preflight } from '../src/restore/preflight';
import { startRestore } from '../src/restore/restoreJob';
import { startSandbox } from '../test/sandbox/sandbox';
import { median, SeededBytes, timed, writeTree } from './benchData';

function arg(argv: string[], name: string, def: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : def;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const scale = Number(arg(argv, 'scale', '10'));
  const files = Number(arg(argv, 'files', '4000'));
  const runs = Number(arg(argv, 'runs', '3'));
  const sb = await startSandbox({ withRedis: false });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void sb.stop().finally(() => process.exit(130)));
  const pool = new ConnectionPool({ secrets: { get: async () => undefined }, hostKeys: { onUnknownHostKey: async () => 'reject' } });
  try {
    const uid = Number(execFileSync('id', ['-u', sb.kadiUser]).toString());
    const gid = Number(execFileSync('id', ['-g', sb.kadiUser]).toString());
    const gen = new SeededBytes('kadi-ops-restore-bench');
    process.stderr.write(`Generating data: pgbench scale ${scale}, ${files} record files…\n`);
    execFileSync(path.join(sb.pg.binDir, 'pgbench'), ['-i', '-q', '-s', String(scale), '-h', sb.pg.socketDir, '-p', String(sb.pg.port), '-U', 'postgres', 'kadi'], { stdio: 'ignore' });
    await sb.psql("DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE tablename LIKE 'pgbench_%' LOOP EXECUTE format('ALTER TABLE %I OWNER TO kadi', t); END LOOP; END $$;");
    writeTree(sb.storagePath, files, gen, uid, gid, 3);
    writeTree(sb.uploadsPath, Math.max(10, Math.floor(files / 40)), gen, uid, gid, 2);
    const { profiles } = resolveProfiles([sb.hostsProfile('direct')], { sshConfigText: '' });
    const host: RemoteHost = await pool.get(profiles[0]);
    const d = await discover(host);
    // The set kadi-ops restores, and the by-hand backup the guide's restore starts from.
    const b = await followJob(host, await startBackup(host, d), { sink: new MemorySink() });
    if (b.result !== 'succeeded') throw new Error('backup failed');
    const set = (await listSets(host)).sets[0].name;
    const hand = path.join(sb.root, 'by-hand');
    fs.mkdirSync(hand, { mode: 0o700 });
    fs.chownSync(hand, uid, gid);
    const pgpass = path.join(hand, '.pgpass');
    fs.writeFileSync(pgpass, `127.0.0.1:${sb.pg.port}:kadi:kadi:${sb.pg.password}\n`, { mode: 0o600 });
    fs.chownSync(pgpass, uid, gid);
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
    const ours = async (): Promise<void> => {
      const dd = await discover(host);
      const t = Date.now();
      const plan = await preflight(host, dd, set, { safetyBackup: false });
      const tPlan = (Date.now() - t) / 1000;
      const sink = new MemorySink();
      const out = await followJob(host, await startRestore(host, dd, plan), { sink });
      if (out.result !== 'succeeded') throw new Error(`kadi-ops restore failed: ${out.result}\n${sink.text()}`);
      const steps = [...sink.text('stdout').matchAll(/^timing=(\S+) (\S+)/gm)].map((m) => `${m[1]}=${m[2]}s`);
      process.stderr.write(`  preflight=${tPlan.toFixed(1)}s ${steps.join(' ')}\n`);
    };
    const emptyInstance = async (): Promise<void> => {
      await sb.psql(`DROP DATABASE kadi WITH (FORCE); CREATE DATABASE kadi OWNER kadi;`, 'postgres');
      for (const t of [sb.storagePath, sb.uploadsPath]) for (const e of fs.readdirSync(t)) fs.rmSync(path.join(t, e), { recursive: true, force: true });
    };
    const changeOnePercent = async (): Promise<void> => {
      writeTree(sb.storagePath, Math.max(1, Math.floor(files / 100)), gen, uid, gid, 3);
      await sb.psql('UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 100 = 0;');
    };

    const results: { name: string; hand: number; ours: number }[] = [];
    for (const [name, prepare] of [
      ['into an emptied instance', emptyInstance],
      ['onto an instance changed 1% since the set', changeOnePercent],
    ] as const) {
      const h: number[] = [];
      const o: number[] = [];
      for (let i = 0; i < runs; i++) {
        await prepare();
        h.push(await timed(byHand));
        await prepare();
        o.push(await timed(ours));
        process.stderr.write(`${name} run ${i + 1}: by hand ${h[i].toFixed(1)} s, kadi-ops ${o[i].toFixed(1)} s\n`);
      }
      results.push({ name, hand: median(h), ours: median(o) });
    }
    const dbBytes = Number((await sb.psql("select pg_database_size('kadi')")).trim());
    process.stdout.write(
      [
        `Data: database ${(dbBytes / 1048576).toFixed(0)} MiB (pgbench scale ${scale} + Kadi tables), storage ${files} files; ${runs} alternating runs per side, medians.`,
        `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}.`,
        '',
        '| scenario | by hand (guide) | kadi-ops restore | ratio |',
        '|---|---:|---:|---:|',
        ...results.map((r) => `| ${r.name} | ${r.hand.toFixed(1)} s | ${r.ours.toFixed(1)} s | ${(r.ours / r.hand).toFixed(2)}× |`),
      ].join('\n') + '\n',
    );
  } finally {
    pool.closeAll();
    await sb.stop();
  }
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack ?? e.message}\n`);
  process.exit(1);
});
