/**
 * The sandbox Kadi host: real sshd, PostgreSQL and (optionally) Redis on loopback, the Unix
 * accounts kadi and kadiop, a Kadi-like database with matching file storage, and a test double
 * of the `kadi` CLI - everything under one temp directory, started and stopped by the tests.
 * Needs root (see test/sandbox/system.ts for the packages).
 */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { HostProfileInput, RunAsMode } from '../../src/config/types';
import { startPostgres, scramVerifier, superPsql, sqlLiteral as q, type PgServer } from './postgres';
import { type Daemon, onProcessExit, runOk, stopDaemon } from './proc';
import { startRedis, type RedisServer } from './redis';
import { buildSeed, DBA_SQL, fixTree, md5, miscUploadPath, ODD_SQL, SCHEMA_SQL, type SeedSummary, storageFilePath, writeOwned } from './seed';
import { makeKeys, startSshd, type SshServer } from './sshd';
import { type Account, BIN, checkPrerequisites, ensureAccounts } from './system';

export { CHUNK_SIZE, chunkedChecksum, KADI_HEAD_REVISION, storageFilePath } from './seed';

export interface SandboxOptions {
  /** Start Redis as well (default true). */
  withRedis?: boolean;
  /**
   * The database as a DBA leaves it (default true): superuser extensions, another role's function,
   * odd identifiers, large objects (DBA_SQL, ODD_SQL). The restore bench turns it off: the guide's
   * by-hand `pg_restore --clean` as the Kadi role cannot drop a superuser's extension.
   */
  dbaObjects?: boolean;
}

/** Behaviour switches of the kadi CLI test double (written to kadi-double.json next to kadi.py). */
export interface KadiDoubleSettings {
  /** What `kadi --version` prints; versions above 1.13.0 get a new head revision. */
  version?: string;
  /** Head revision `kadi db upgrade` migrates to (appended to the known chain). */
  headRevision?: string;
  /** Sleep per indexed object in `kadi search reindex`, to interrupt it mid-way. */
  reindexDelaySeconds?: number;
  /** Make search commands fail as if Elasticsearch were down. */
  searchUnavailable?: boolean;
}

export interface SandboxHost {
  root: string;
  sshPort: number;
  hostKeyLine: string;
  knownHostsFile: string;
  clientKeyFile: string;
  encryptedClientKeyFile: string;
  clientKeyPassphrase: string;
  kadiUser: string;
  operatorUser: string;
  /** Logs in with a password only and needs it for `sudo -u kadi` as well. */
  passwordOperator: { user: string; password: string };
  kadiCli: string;
  kadiConfig: string;
  storagePath: string;
  uploadsPath: string;
  backupDir: string;
  pg: { port: number; host: '127.0.0.1'; socketDir: string; binDir: string; database: 'kadi'; user: 'kadi'; password: string };
  redis?: { port: number; dumpPath: string; dataDir: string };
  /** The fake Elasticsearch of the double (JSON: index name -> alias, docs). */
  searchIndexFile: string;
  /** What was seeded: ids of records, files (active, deleted, chunked, empty) and uploads. */
  seed: SeedSummary;
  /** Milliseconds startSandbox took. */
  startupMs: number;
  hostsProfile(runAs: RunAsMode): HostProfileInput;
  writeConfigFile(file?: string): string;
  psql(sql: string, db?: string): Promise<string>;
  addStorageFile(opts?: { size?: number }): Promise<{ id: string; path: string }>;
  /** Removes a file added by addStorageFile: its data if still there, and its row. */
  forgetStorageFile(f: { id: string; path: string }): Promise<void>;
  configureDouble(settings: KadiDoubleSettings): void;
  stop(): Promise<void>;
}

const KADI_USER = 'kadi';
const OPERATOR_USER = 'kadiop';
const PASSWORD_OPERATOR_USER = 'kadipw';

/** The double's source: next to this file in test/sandbox, or there relative to out/test/sandbox. */
function doubleSource(): string {
  const candidates = [path.join(__dirname, 'kadi-double.py'), path.resolve(__dirname, '../../../test/sandbox/kadi-double.py')];
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`kadi-double.py not found (looked at ${candidates.join(', ')}).`);
  return found;
}

function mkdirOwned(dir: string, owner: Account | undefined, mode: number): void {
  fs.mkdirSync(dir, { recursive: true });
  if (owner) fs.chownSync(dir, owner.uid, owner.gid);
  fs.chmodSync(dir, mode);
}

interface Layout {
  optKadi: string;
  kadiCli: string;
  configDir: string;
  kadiConfig: string;
  storagePath: string;
  uploadsPath: string;
  backupDir: string;
}

/** /opt/kadi-like tree: venv/bin/kadi (the double), config (750), storage, uploads, backups (700). */
function makeLayout(root: string, kadi: Account): Layout {
  const optKadi = path.join(root, 'opt', 'kadi');
  const l: Layout = {
    optKadi,
    kadiCli: path.join(optKadi, 'venv', 'bin', 'kadi'),
    configDir: path.join(optKadi, 'config'),
    kadiConfig: path.join(optKadi, 'config', 'kadi.py'),
    storagePath: path.join(optKadi, 'storage'),
    uploadsPath: path.join(optKadi, 'uploads'),
    backupDir: path.join(root, 'backups'),
  };
  mkdirOwned(path.join(root, 'opt'), undefined, 0o755);
  mkdirOwned(optKadi, kadi, 0o755);
  mkdirOwned(path.join(optKadi, 'venv'), kadi, 0o755);
  mkdirOwned(path.dirname(l.kadiCli), kadi, 0o755);
  mkdirOwned(l.configDir, kadi, 0o750);
  mkdirOwned(l.storagePath, kadi, 0o750);
  mkdirOwned(l.uploadsPath, kadi, 0o750);
  mkdirOwned(l.backupDir, kadi, 0o700);
  // A copy, not a link: the kadi account need not be able to read the repository.
  fs.copyFileSync(doubleSource(), l.kadiCli);
  fs.chownSync(l.kadiCli, kadi.uid, kadi.gid);
  fs.chmodSync(l.kadiCli, 0o755);
  installKadiMetadata(l, kadi, DOUBLE_DEFAULT_VERSION);
  return l;
}

/** What kadi-double.py's `kadi --version` prints unless told otherwise. */
const DOUBLE_DEFAULT_VERSION = '1.13.0';

/**
 * The Kadi package's installed metadata in the virtualenv, as pip leaves it
 * (lib/python3.11/site-packages/kadi-VERSION.dist-info), replacing any other version's.
 */
function installKadiMetadata(l: Layout, kadi: Account, version: string): void {
  const site = path.join(l.optKadi, 'venv', 'lib', 'python3.11', 'site-packages');
  for (const dir of [path.dirname(path.dirname(site)), path.dirname(site), site]) mkdirOwned(dir, kadi, 0o755);
  for (const old of fs.readdirSync(site).filter((n) => /^kadi-.*\.dist-info$/.test(n))) fs.rmSync(path.join(site, old), { recursive: true });
  const info = path.join(site, `kadi-${version}.dist-info`);
  mkdirOwned(info, kadi, 0o755);
  fs.writeFileSync(path.join(info, 'METADATA'), `Metadata-Version: 2.1\nName: kadi\nVersion: ${version}\n`);
  fs.chownSync(path.join(info, 'METADATA'), kadi.uid, kadi.gid);
}

function writeKadiConfig(l: Layout, kadi: Account, pg: PgServer, password: string, redisPort: number | undefined): void {
  const py = (v: string): string => JSON.stringify(v); // a JSON string is a valid Python literal
  const broker = `redis://127.0.0.1:${redisPort ?? 6379}/0`;
  const text = [
    '# Kadi4Mat configuration of the Kadi Ops sandbox host (generated by the test harness).',
    `SQLALCHEMY_DATABASE_URI = ${py(`postgresql://kadi:${password}@127.0.0.1:${pg.port}/kadi`)}`,
    `STORAGE_PATH = ${py(l.storagePath)}`,
    `MISC_UPLOADS_PATH = ${py(l.uploadsPath)}`,
    `SECRET_KEY = ${py(crypto.randomBytes(24).toString('hex'))}`,
    'SERVER_NAME = "kadi.sandbox.test"',
    'ELASTICSEARCH_HOSTS = "http://127.0.0.1:9200"',
    `CELERY_BROKER_URL = ${py(broker)}`,
    `RATELIMIT_STORAGE_URI = ${py(broker)}`,
    'SMTP_HOST = "localhost"',
    '',
  ].join('\n');
  fs.writeFileSync(l.kadiConfig, text, { mode: 0o640 });
  fs.chownSync(l.kadiConfig, kadi.uid, kadi.gid);
}

/** Role kadi (password set as a SCRAM verifier), database kadi, the DBA's additions, schema and seed owned by kadi. */
async function setUpDatabase(pg: PgServer, password: string, sql: string, dbaObjects: boolean): Promise<void> {
  await superPsql(pg, `CREATE ROLE kadi LOGIN PASSWORD ${q(scramVerifier(password))};\nCREATE DATABASE kadi OWNER kadi;`);
  if (dbaObjects) await superPsql(pg, DBA_SQL, 'kadi');
  await superPsql(pg, `SET ROLE kadi;\nBEGIN;\n${SCHEMA_SQL}\n${dbaObjects ? ODD_SQL : ''}\n${sql}\nCOMMIT;\nRESET ROLE;\nANALYZE;`, 'kadi');
}

function writeSeedFiles(l: Layout, kadi: Account, seed: ReturnType<typeof buildSeed>): void {
  for (const f of [...seed.files, ...seed.chunks]) writeOwned(l.storagePath, storageFilePath(l.storagePath, f.id), f.data, kadi);
  for (const img of seed.images) writeOwned(l.uploadsPath, miscUploadPath(l.uploadsPath, img.id), img.data, kadi);
  fixTree(l.storagePath, kadi);
  fixTree(l.uploadsPath, kadi);
}

/** Runs the double as kadi, as an operator would (`sudo -u kadi`), with KADI_CONFIG_FILE set. */
async function runDouble(l: Layout, kadi: Account, args: string[]): Promise<string> {
  const env = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: kadi.home, LANG: 'C.UTF-8', KADI_CONFIG_FILE: l.kadiConfig };
  return runOk(l.kadiCli, args, { uid: kadi.uid, gid: kadi.gid, env, cwd: l.optKadi });
}

/** Unmounts anything a test mounted inside root (e.g. a tiny tmpfs for disk-full tests). */
function unmountUnder(root: string): void {
  let mounts: string[] = [];
  try {
    mounts = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '');
  } catch {
    return;
  }
  const inside = mounts.map((m) => m.replace(/\\040/g, ' ')).filter((m) => m.startsWith(`${root}/`));
  for (const m of inside.sort((a, b) => b.length - a.length)) {
    try {
      execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    } catch {
      // not ours to fail on; rm will report nothing either
    }
  }
}

function removeRoot(root: string): void {
  if (process.env.KADI_SANDBOX_KEEP) return;
  try {
    fs.rmSync(root, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    // best effort; a leftover temp dir is harmless
  }
}

/** Stops daemons (each with its clean-shutdown signal) and removes the root. */
async function teardown(daemons: Daemon[], root: string): Promise<void> {
  const signalFor = (d: Daemon): NodeJS.Signals => (d.name === 'postgres' ? 'SIGINT' : 'SIGTERM'); // SIGINT: fast shutdown, drops sessions
  await Promise.all(daemons.map((d) => stopDaemon(d, signalFor(d))));
  unmountUnder(root);
  removeRoot(root);
}

interface Services {
  ssh: SshServer;
  keys: Awaited<ReturnType<typeof makeKeys>>;
  pg: PgServer;
  redis?: RedisServer;
}

/** Starts sshd, PostgreSQL and Redis concurrently; every daemon that started lands in `started`. */
async function startServices(root: string, pgBin: string, accts: { kadi: Account; postgres: Account }, withRedis: boolean, started: Daemon[]): Promise<Services> {
  const users = [KADI_USER, OPERATOR_USER];
  const track = <T extends { daemon: Daemon }>(s: T): T => {
    started.push(s.daemon);
    return s;
  };
  const sshP = (async () => {
    const keys = await makeKeys(root, users, crypto.randomBytes(12).toString('hex'));
    return { keys, ssh: track(await startSshd(root, keys, users, [PASSWORD_OPERATOR_USER])) };
  })();
  const pgP = startPostgres(root, pgBin, accts.postgres).then(track);
  const redisP = withRedis ? startRedis(root, accts.kadi).then(track) : Promise.resolve(undefined);
  const [a, b, c] = await Promise.allSettled([sshP, pgP, redisP]);
  for (const r of [a, b, c]) if (r.status === 'rejected') throw r.reason;
  if (a.status !== 'fulfilled' || b.status !== 'fulfilled' || c.status !== 'fulfilled') throw new Error('unreachable');
  return { ...a.value, pg: b.value, redis: c.value };
}

export async function startSandbox(opts: SandboxOptions = {}): Promise<SandboxHost> {
  const t0 = Date.now();
  const withRedis = opts.withRedis ?? true;
  const pgBin = checkPrerequisites(withRedis);
  const accts = await ensureAccounts(KADI_USER, OPERATOR_USER, PASSWORD_OPERATOR_USER);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-sandbox-'));
  fs.chmodSync(root, 0o755); // kadi, kadiop and postgres must traverse it
  const unregister = onProcessExit(() => removeRoot(root));
  const started: Daemon[] = [];
  try {
    const layout = makeLayout(root, accts.kadi);
    const services = await startServices(root, pgBin, accts, withRedis, started);
    const password = crypto.randomBytes(16).toString('hex');
    const seed = buildSeed();
    await setUpDatabase(services.pg, password, seed.sql, opts.dbaObjects ?? true);
    writeSeedFiles(layout, accts.kadi, seed);
    writeKadiConfig(layout, accts.kadi, services.pg, password, services.redis?.port);
    await runDouble(layout, accts.kadi, ['search', 'init']);
    return makeHost({ root, layout, services, password, seed: seed.summary, kadi: accts.kadi, operatorPassword: accts.password, started, unregister, startupMs: Date.now() - t0 });
  } catch (e) {
    await teardown(started, root);
    unregister();
    throw e;
  }
}

interface HostParts {
  root: string;
  layout: Layout;
  services: Services;
  password: string;
  seed: SeedSummary;
  kadi: Account;
  operatorPassword: string;
  started: Daemon[];
  unregister: () => void;
  startupMs: number;
}

function makeHost(p: HostParts): SandboxHost {
  const { root, layout: l, services: s, kadi } = p;
  let stopping: Promise<void> | undefined;
  const host: SandboxHost = {
    root,
    sshPort: s.ssh.port,
    hostKeyLine: s.keys.hostKeyLine,
    knownHostsFile: s.ssh.knownHostsFile,
    clientKeyFile: s.keys.clientKeyFile,
    encryptedClientKeyFile: s.keys.encryptedClientKeyFile,
    clientKeyPassphrase: s.keys.clientKeyPassphrase,
    kadiUser: KADI_USER,
    operatorUser: OPERATOR_USER,
    passwordOperator: { user: PASSWORD_OPERATOR_USER, password: p.operatorPassword },
    kadiCli: l.kadiCli,
    kadiConfig: l.kadiConfig,
    storagePath: l.storagePath,
    uploadsPath: l.uploadsPath,
    backupDir: l.backupDir,
    pg: { port: s.pg.port, host: '127.0.0.1', socketDir: s.pg.socketDir, binDir: s.pg.binDir, database: 'kadi', user: 'kadi', password: p.password },
    redis: s.redis ? { port: s.redis.port, dumpPath: s.redis.dumpPath, dataDir: s.redis.dataDir } : undefined,
    searchIndexFile: path.join(l.configDir, 'search-indices.json'),
    seed: p.seed,
    startupMs: p.startupMs,
    hostsProfile: (runAs) => profile(host, runAs),
    writeConfigFile(file = path.join(root, 'kadi-ops-hosts.json')) {
      fs.writeFileSync(file, `${JSON.stringify({ hosts: [profile(host, 'direct'), profile(host, 'sudo')] }, null, 2)}\n`);
      return file;
    },
    psql: (sql, db = 'kadi') => superPsql(s.pg, sql, db),
    addStorageFile: (o = {}) => addStorageFile(host, kadi, o.size ?? 1024),
    forgetStorageFile: async (f) => {
      fs.rmSync(f.path, { force: true });
      await host.psql(`DELETE FROM file WHERE id = ${q(f.id)};`);
    },
    configureDouble: (settings) => configureDouble(l, kadi, settings),
    stop() {
      stopping ??= teardown(p.started, root).finally(p.unregister);
      return stopping;
    },
  };
  return host;
}

function profile(h: SandboxHost, runAs: RunAsMode): HostProfileInput {
  const p: HostProfileInput = {
    name: runAs === 'sudo' ? 'sandbox-sudo' : 'sandbox',
    ssh: { host: '127.0.0.1', port: h.sshPort, user: runAs === 'sudo' ? h.operatorUser : h.kadiUser, identityFile: h.clientKeyFile, agent: false, knownHostsFile: h.knownHostsFile },
    runAs,
    kadi: { user: h.kadiUser, cli: h.kadiCli, configFile: h.kadiConfig },
    backupDir: h.backupDir,
    services: [],
  };
  if (h.redis) p.redis = { enabled: true, dumpPath: h.redis.dumpPath, port: h.redis.port, cli: BIN.redisCli };
  return p;
}

async function addStorageFile(h: SandboxHost, kadi: Account, size: number): Promise<{ id: string; path: string }> {
  const id = crypto.randomUUID();
  const data = crypto.randomBytes(size);
  const recordId = h.seed.recordIds[0];
  await h.psql(
    `INSERT INTO file (id, record_id, creator_id, name, size, checksum, storage_type, state) VALUES (${q(id)}, ${recordId}, 1, ${q(`added_${id.slice(0, 8)}.bin`)}, ${size}, ${q(md5(data))}, 'local', 'active');`,
  );
  const file = storageFilePath(h.storagePath, id);
  writeOwned(h.storagePath, file, data, kadi);
  return { id, path: file };
}

function configureDouble(l: Layout, kadi: Account, settings: KadiDoubleSettings): void {
  const file = path.join(l.configDir, 'kadi-double.json');
  let current: KadiDoubleSettings = {};
  try {
    current = JSON.parse(fs.readFileSync(file, 'utf8')) as KadiDoubleSettings;
  } catch {
    // first settings
  }
  fs.writeFileSync(file, `${JSON.stringify({ ...current, ...settings }, null, 2)}\n`, { mode: 0o640 });
  fs.chownSync(file, kadi.uid, kadi.gid);
  if (settings.version !== undefined && settings.version !== (current.version ?? DOUBLE_DEFAULT_VERSION)) {
    // Another version is another installation, as `pip install kadi==VERSION` makes it: the
    // package's metadata under its new version and the kadi CLI written anew (a new file).
    installKadiMetadata(l, kadi, settings.version);
    const fresh = `${l.kadiCli}.new`;
    fs.copyFileSync(l.kadiCli, fresh);
    fs.chownSync(fresh, kadi.uid, kadi.gid);
    fs.chmodSync(fresh, 0o755);
    fs.renameSync(fresh, l.kadiCli);
  }
}
