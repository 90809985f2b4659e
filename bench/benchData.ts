/** Sandbox set-up, data generation and timing shared by the benchmarks (reproducible from a seed). */
import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startBackup } from '../src/backup/backupSets';
import { resolveProfiles } from '../src/config/hostProfiles';
import type { HostProfile, RunAsMode } from '../src/config/types';
import { MemorySink } from '../src/core/sink';
import { discover, type Discovery } from '../src/kadi/discovery';
import { ConnectionPool } from '../src/remote/connectionPool';
import { followJob } from '../src/remote/jobs';
import type { RemoteHost } from '../src/remote/remoteHost';
import { startSandbox, type SandboxHost } from '../test/sandbox/sandbox';

/** Deterministic bytes: AES-256-CTR keystream of a key derived from the seed. */
export class SeededBytes {
  private readonly cipher;
  private state: number;
  constructor(seed: string) {
    const key = createHash('sha256').update(seed).digest();
    this.cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
    this.state = key.readUInt32LE(0) || 1;
  }
  bytes(n: number): Buffer {
    return this.cipher.update(Buffer.alloc(n));
  }
  /** xorshift32 in [0, 1) */
  random(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state / 0x100000000;
  }
}

/**
 * Size distributions of generated record files. `kadi` (the default) is the instance shape:
 * mostly small files, ~97 KiB on average (20,000 files ≈ 1.9 GiB) and uploads of files/20.
 * `large` is the distribution of the benches recorded before it (~375 KiB on average, uploads of
 * files/40), kept so those numbers can be reproduced.
 */
export type FileSizes = 'kadi' | 'large';

export function fileSize(r: SeededBytes, sizes: FileSizes): number {
  const p = r.random();
  if (sizes === 'large') {
    if (p < 0.6) return 1024 + Math.floor(r.random() * 20 * 1024); // many small files
    if (p < 0.95) return 64 * 1024 + Math.floor(r.random() * 512 * 1024);
    return 2 * 1024 * 1024 + Math.floor(r.random() * 8 * 1024 * 1024);
  }
  if (p < 0.7) return 1024 + Math.floor(r.random() * 19 * 1024); // notes, metadata exports, small CSVs
  if (p < 0.97) return 32 * 1024 + Math.floor(r.random() * 256 * 1024); // spectra, images
  return 512 * 1024 + Math.floor(r.random() * 2 * 1024 * 1024); // raw measurement files
}

/** Upload files generated beside `files` record files. */
export function uploadCount(files: number, sizes: FileSizes): number {
  return Math.max(10, Math.floor(files / (sizes === 'large' ? 40 : 20)));
}

export function uuidFrom(r: SeededBytes): string {
  const h = r.bytes(16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * Writes DATA as the file of uuid ID in Kadi's layout below ROOT (depth 3: STORAGE_PATH's
 * ab/cd/ef/rest, 2: MISC_UPLOADS_PATH's ab/cd/rest), making its directories (0750) as needed; file
 * (0640) and new directories owned by uid:gid.
 */
export function writeKadiFile(root: string, id: string, depth: 3 | 2, data: Buffer, uid: number, gid: number): void {
  const dirs = depth === 3 ? [id.slice(0, 2), id.slice(2, 4), id.slice(4, 6)] : [id.slice(0, 2), id.slice(2, 4)];
  let dir = root;
  for (const d of dirs) {
    dir = path.join(dir, d);
    try {
      fs.mkdirSync(dir, { mode: 0o750 });
      fs.chownSync(dir, uid, gid);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  const file = path.join(dir, id.slice(depth === 3 ? 6 : 4));
  fs.writeFileSync(file, data, { mode: 0o640 });
  fs.chownSync(file, uid, gid);
}

export function writeTree(root: string, count: number, r: SeededBytes, sizes: FileSizes, uid: number, gid: number, depth: 3 | 2): number {
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const id = uuidFrom(r);
    const size = fileSize(r, sizes);
    writeKadiFile(root, id, depth, r.bytes(size), uid, gid);
    bytes += size;
  }
  return bytes;
}

/** `--name value` from the command line, or `def`. */
export function flag(name: string, def: string): string {
  const argv = process.argv.slice(2);
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : def;
}

/** What every data-generating bench takes: --scale (pgbench), --files, --file-sizes, --runs, --seed. */
export interface BenchOptions {
  scale: number;
  files: number;
  sizes: FileSizes;
  runs: number;
  seed: string;
}

/**
 * The default instance: ~1 GB database (pgbench scale 65 ≈ 1 GB with its indexes, plus
 * the Kadi tables), ~2 GB storage in 20,000 files of mixed sizes, ~100 MB uploads.
 */
export const DEFAULT_SHAPE = { scale: 65, files: 20000, sizes: 'kadi' } as const;

export function benchOptions(def: { runs: number; seed: string }): BenchOptions {
  const sizes = flag('file-sizes', DEFAULT_SHAPE.sizes);
  if (sizes !== 'kadi' && sizes !== 'large') throw new Error(`--file-sizes must be kadi or large, got ${sizes}`);
  const num = (name: string, d: number): number => {
    const v = Number(flag(name, String(d)));
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`);
    return v;
  };
  return { scale: num('scale', DEFAULT_SHAPE.scale), files: num('files', DEFAULT_SHAPE.files), sizes, runs: num('runs', def.runs), seed: flag('seed', def.seed) };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Writes back what the previous run left dirty, untimed, so that no side pays for the other's
 * write-back: kadi-ops seals a set with syncfs, which flushes every dirty page of the filesystem,
 * including the by-hand side's archives written just before. (The sandbox host is this machine.)
 */
export function settle(): void {
  execFileSync('sync');
}

/** The steps a job's log timed (its `timing=NAME SECONDS` lines), in order. */
export function jobSteps(stdout: string): Array<[string, string]> {
  return [...stdout.matchAll(/^timing=(\S+) (\S+)/gm)].map((m) => [m[1], m[2]]);
}

export async function timed(fn: () => Promise<void>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}


/** A started sandbox host with one SSH connection to it, as every bench needs. */
export interface BenchHost {
  sb: SandboxHost;
  pool: ConnectionPool;
  profile: HostProfile;
  host: RemoteHost;
  /** uid/gid of the sandbox's Kadi user (generated files are owned by it). */
  uid: number;
  gid: number;
  /** Closes the connections and stops the sandbox's servers (idempotent). */
  stop(): Promise<void>;
}

/**
 * Starts the sandbox (no Redis unless asked), stops it again on Ctrl-C or a kill, and connects to
 * it with the given run-as mode (default direct). Call `stop()` in a `finally`.
 */
export async function benchHost(opts: { withRedis?: boolean; runAs?: RunAsMode; dbaObjects?: boolean } = {}): Promise<BenchHost> {
  const sb = await startSandbox({ withRedis: opts.withRedis ?? false, dbaObjects: opts.dbaObjects });
  const pool = new ConnectionPool({ secrets: { get: async () => undefined }, hostKeys: { onUnknownHostKey: async () => 'reject' } });
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      pool.closeAll();
      await sb.stop();
    })();
    return stopping;
  };
  // Ctrl-C or a kill still stops the sandbox's servers.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void stop().finally(() => process.exit(130)));
  try {
    const { profiles, errors } = resolveProfiles([sb.hostsProfile(opts.runAs ?? 'direct')], { sshConfigText: '' });
    if (errors.length) throw new Error(`sandbox profile invalid: ${JSON.stringify(errors)}`);
    const profile = profiles[0];
    const host = await pool.get(profile);
    const uid = Number(execFileSync('id', ['-u', sb.kadiUser]).toString());
    const gid = Number(execFileSync('id', ['-g', sb.kadiUser]).toString());
    return { sb, pool, profile, host, uid, gid, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** What `seedData` generated. */
export interface SeededData {
  dbBytes: number;
  storageBytes: number;
  uploadsBytes: number;
}

/**
 * Fills the sandbox with a Kadi-sized instance: pgbench tables of scale `scale` (1 ≈ 15 MB, owned
 * by the Kadi role), `files` record files in STORAGE_PATH and `uploadCount()` in MISC_UPLOADS_PATH,
 * all from `gen`.
 */
export async function seedData(b: BenchHost, o: { scale: number; files: number; sizes: FileSizes; gen: SeededBytes }): Promise<SeededData> {
  const { sb } = b;
  process.stderr.write(`Generating data: pgbench scale ${o.scale}, ${o.files} record files…\n`);
  execFileSync(path.join(sb.pg.binDir, 'pgbench'), ['-i', '-q', '-s', String(o.scale), '-h', sb.pg.socketDir, '-p', String(sb.pg.port), '-U', 'postgres', 'kadi'], { stdio: 'ignore' });
  await sb.psql("DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE tablename LIKE 'pgbench_%' LOOP EXECUTE format('ALTER TABLE %I OWNER TO kadi', t); END LOOP; END $$;");
  const storageBytes = writeTree(sb.storagePath, o.files, o.gen, o.sizes, b.uid, b.gid, 3);
  const uploadsBytes = writeTree(sb.uploadsPath, uploadCount(o.files, o.sizes), o.gen, o.sizes, b.uid, b.gid, 2);
  const dbBytes = Number((await sb.psql("select pg_database_size('kadi')")).trim());
  return { dbBytes, storageBytes, uploadsBytes };
}

/** A directory of the Kadi user for the by-hand side, with the guide's ~/.pgpass in it. */
export function byHandDir(b: BenchHost): { dir: string; pgpass: string } {
  const { sb } = b;
  const dir = path.join(sb.root, 'by-hand');
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.chownSync(dir, b.uid, b.gid);
  const pgpass = path.join(dir, '.pgpass');
  fs.writeFileSync(pgpass, `127.0.0.1:${sb.pg.port}:kadi:kadi:${sb.pg.password}\n`, { mode: 0o600 });
  fs.chownSync(pgpass, b.uid, b.gid);
  return { dir, pgpass };
}

/** One line naming the machine, for the tables in BENCHMARKS.md. */
export function machineLine(): string {
  return `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}.`;
}

export function mib(n: number): string {
  return (n / 1048576).toFixed(0);
}

/** Discovers the host and makes one backup set of what it holds: the discovery and the set's name. */
export async function backUpOnce(b: BenchHost): Promise<{ d: Discovery; set: string }> {
  const d = await discover(b.host);
  const sink = new MemorySink();
  const bk = await followJob(b.host, await startBackup(b.host, d), { sink });
  if (bk.result !== 'succeeded') throw new Error(`backup failed:\n${sink.text()}`);
  const set = /^set=(\S+)$/m.exec(sink.text('stdout'))?.[1];
  if (!set) throw new Error('the backup named no set');
  return { d, set };
}

/** Runs a bench's main(): a failure prints its stack and exits with status 1. */
export function runBench(main: () => Promise<void>): void {
  main().catch((e: Error) => {
    process.stderr.write(`${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
