/**
 * Backup benchmark: the guide's by-hand sequence (pg_dump -Fc, then tar czf of storage and
 * uploads, one after the other, over SSH) against `kadi-ops backup` (checksums and manifest
 * included), on the same generated data in the same process, alternating sides, several runs.
 *
 *   npm run bench -- [--scale S] [--files N] [--runs R]
 *
 * S: pgbench scale for the database (1 ≈ 15 MB); N: record files in STORAGE_PATH (mixed sizes,
 * reproducible from --seed). Prints a Markdown table for BENCHMARKS.md.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { startBackup } from '../src/backup/backupSets';
import { resolveProfiles } from '../src/config/hostProfiles';
import { MemorySink } from '../src/core/sink';
import { discover } from '../src/kadi/discovery';
import { ConnectionPool } from '../src/remote/connectionPool';
import { followJob } from '../src/remote/jobs';
import type { RemoteHost } from '../src/remote/remoteHost';
import { buildCommand } from '../src/remote/shellCommand';
import { startSandbox, type SandboxHost } from '../test/sandbox/sandbox';
import { median, SeededBytes, timed, writeTree } from './benchData';

interface Options {
  scale: number;
  files: number;
  runs: number;
  seed: string;
}

function options(argv: string[]): Options {
  const get = (name: string, def: string): string => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 && argv[i + 1] ? argv[i + 1] : def;
  };
  return { scale: Number(get('scale', '20')), files: Number(get('files', '4000')), runs: Number(get('runs', '3')), seed: get('seed', 'kadi-ops-bench') };
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  const sb: SandboxHost = await startSandbox({ withRedis: false });
  // Ctrl-C or a kill still stops the sandbox's servers.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void sb.stop().finally(() => process.exit(130)));
  const pool = new ConnectionPool({ secrets: { get: async () => undefined }, hostKeys: { onUnknownHostKey: async () => 'reject' } });
  try {
    const uid = Number(execFileSync('id', ['-u', sb.kadiUser]).toString());
    const gid = Number(execFileSync('id', ['-g', sb.kadiUser]).toString());
    const gen = new SeededBytes(o.seed);
    process.stderr.write(`Generating data: pgbench scale ${o.scale}, ${o.files} record files…\n`);
    execFileSync(path.join(sb.pg.binDir, 'pgbench'), ['-i', '-q', '-s', String(o.scale), '-h', sb.pg.socketDir, '-p', String(sb.pg.port), '-U', 'postgres', 'kadi'], { stdio: 'ignore' });
    await sb.psql("DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE tablename LIKE 'pgbench_%' LOOP EXECUTE format('ALTER TABLE %I OWNER TO kadi', t); END LOOP; END $$;");
    const storageBytes = writeTree(sb.storagePath, o.files, gen, uid, gid, 3);
    const uploadsBytes = writeTree(sb.uploadsPath, Math.max(10, Math.floor(o.files / 40)), gen, uid, gid, 2);
    const dbBytes = Number((await sb.psql("select pg_database_size('kadi')")).trim());
    const [profileInput] = [sb.hostsProfile('direct')];
    const { profiles } = resolveProfiles([profileInput], { sshConfigText: '' });
    const profile = profiles[0];
    const host: RemoteHost = await pool.get(profile);
    const handDir = path.join(sb.root, 'by-hand');
    fs.mkdirSync(handDir, { mode: 0o700 });
    fs.chownSync(handDir, uid, gid);
    // The guide's ~/.pgpass, as the operator would have it (the by-hand side reads it).
    const pgpass = path.join(handDir, '.pgpass');
    fs.writeFileSync(pgpass, `127.0.0.1:${sb.pg.port}:kadi:kadi:${sb.pg.password}\n`, { mode: 0o600 });
    fs.chownSync(pgpass, uid, gid);
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
      const d = await discover(host);
      const id = await startBackup(host, d);
      const sink = new MemorySink();
      const out = await followJob(host, id, { sink });
      if (out.result !== 'succeeded') throw new Error(`kadi-ops backup failed:\n${sink.text()}`);
      process.stderr.write(`  ${/^timing: .*$/m.exec(sink.text('stdout'))?.[0] ?? ''}\n`);
    };
    const clearSets = (): void => {
      for (const n of fs.readdirSync(sb.backupDir)) if (/^\d{4}-/.test(n)) fs.rmSync(path.join(sb.backupDir, n), { recursive: true, force: true });
    };

    const results: { name: string; hand: number; ours: number }[] = [];
    // First (full) set: no previous set for kadi-ops on each run.
    const handFull: number[] = [];
    const oursFull: number[] = [];
    for (let i = 0; i < o.runs; i++) {
      handFull.push(await timed(byHand));
      clearSets();
      oursFull.push(await timed(ours));
      process.stderr.write(`full run ${i + 1}: by hand ${handFull[i].toFixed(1)} s, kadi-ops ${oursFull[i].toFixed(1)} s\n`);
    }
    results.push({ name: 'first (full) set', hand: median(handFull), ours: median(oursFull) });
    // Repeat set after 1% new files (each run adds its own 1%).
    const handRep: number[] = [];
    const oursRep: number[] = [];
    for (let i = 0; i < o.runs; i++) {
      writeTree(sb.storagePath, Math.max(1, Math.floor(o.files / 100)), gen, uid, gid, 3);
      handRep.push(await timed(byHand));
      oursRep.push(await timed(ours));
      process.stderr.write(`repeat run ${i + 1}: by hand ${handRep[i].toFixed(1)} s, kadi-ops ${oursRep[i].toFixed(1)} s\n`);
    }
    results.push({ name: 'repeat set after 1% new files', hand: median(handRep), ours: median(oursRep) });

    const mib = (n: number): string => (n / 1048576).toFixed(0);
    const lines = [
      `Data: database ${mib(dbBytes)} MiB (pgbench scale ${o.scale} + Kadi tables), storage ${o.files} files / ${mib(storageBytes)} MiB, uploads ${mib(uploadsBytes)} MiB; seed "${o.seed}"; ${o.runs} alternating runs per side, medians.`,
      `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}.`,
      '',
      '| scenario | by hand (guide) | kadi-ops backup | ratio |',
      '|---|---:|---:|---:|',
      ...results.map((r) => `| ${r.name} | ${r.hand.toFixed(1)} s | ${r.ours.toFixed(1)} s | ${(r.ours / r.hand).toFixed(2)}× |`),
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    pool.closeAll();
    await sb.stop();
  }
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack ?? e.message}\n`);
  process.exit(1);
});
