/**
 * What a Kadi host is: version, schema revision, database coordinates, storage paths, the
 * PostgreSQL server and the matching client tools, backup disk space. `kadi utils config` output
 * contains secrets; it is collected in memory only and parsed into a config whose password is a
 * Secret, never sent to a sink.
 */
import type { HostProfile } from '../config/types';
import { Secret } from '../core/secret';
import { parseKadiConfig, redactConfigText, redisAuthJson, type RedisAuth } from './outputParsers';
import { parseKeyValues, runAgent } from '../remote/agent';
import { RemoteCommandError, type RemoteHost } from '../remote/remoteHost';

export interface DatabaseTarget {
  host: string;
  port: number;
  name: string;
  user: string;
}

export interface HostFacts {
  profile: string;
  hostname?: string;
  remoteUser?: string;
  kadiVersion?: string;
  /** Why the kadi CLI's version could not be used (it failed, or printed no version). */
  kadiVersionError?: string;
  alembicRevision?: string;
  /** Why alembic_version's content is not a revision id (several rows, control characters, …). */
  alembicRevisionError?: string;
  database: DatabaseTarget;
  storagePath: string;
  uploadsPath: string;
  oidcSigningKeys: string[];
  pg: {
    serverVersionNum?: number;
    serverMajor?: number;
    psql?: string;
    pgDump?: string;
    pgRestore?: string;
    installedPgDumps: string[];
    error?: string;
  };
  backupDir: { path: string; exists: boolean; freeBytes?: number; sizeBytes?: number };
  tools: Record<string, boolean>;
  /** Things that stop backups or restores from working, each a full sentence. */
  problems: string[];
}

export interface Discovery {
  facts: HostFacts;
  /** The database password; only ever written to a remote passfile through stdin. */
  dbPassword: Secret;
  /** The URI's libpq parameters (DatabaseConfig.params: JSON text or ''); sent only through stdin. */
  dbParams?: Secret;
  /** Where Kadi's Redis is and its credentials (from CELERY_BROKER_URL); sent only through stdin. */
  redisAuth?: RedisAuth;
}

/** What a verb that may talk to Redis and PostgreSQL reads on stdin: the password's line, the Redis credentials' (JSON, or empty), the URI's libpq parameters' (JSON, or empty). */
export function verbSecrets(d: Discovery): string {
  const redis = redisAuthJson(d.redisAuth);
  return `${d.dbPassword.reveal()}\n${redis ? JSON.stringify(redis) : ''}\n${d.dbParams?.reveal() ?? ''}\n`;
}

/** The database's password and the URI's libpq parameters, as a job's JSON input carries them (plan.job_input). */
export function dbJobSecrets(d: Discovery): { password: string; pg_params?: Record<string, string> } {
  const params = d.dbParams?.reveal() ?? '';
  return { password: d.dbPassword.reveal(), ...(params ? { pg_params: JSON.parse(params) as Record<string, string> } : {}) };
}

/** Environment-prefixed kadi CLI argv (KADI_CONFIG_FILE as an env assignment via `env`). */
export function kadiArgv(profile: HostProfile, ...args: string[]): string[] {
  return ['env', `KADI_CONFIG_FILE=${profile.kadi.configFile}`, profile.kadi.cli, ...args];
}

type KadiConfig = ReturnType<typeof parseKadiConfig>;

/**
 * `kadi utils config` and `kadi --version` each start Kadi (seconds on a real host), paid before
 * every job. Per connection, their answers are reused while the config file, the kadi CLI and the
 * Kadi package's installed metadata are unchanged (path, mtime, size, inode of each, as the facts
 * report them: the agent compares the stamp itself before it skips `kadi --version`). A new
 * connection asks again.
 */
const configCache = new WeakMap<RemoteHost, { stamp: string; config: KadiConfig; kadiVersion?: string }>();

export async function discover(host: RemoteHost): Promise<Discovery> {
  const cached = configCache.get(host);
  if (cached) {
    const again = await collectFacts(host, cached.config, cached);
    if (again.stamp === cached.stamp) return again.discovery;
    configCache.delete(host);
  }
  const config = await readKadiConfig(host);
  const { discovery, stamp, stampAgeSeconds } = await collectFacts(host, config);
  // A file changed within the last seconds may have changed after it was read: not cached.
  if (stamp && stampAgeSeconds !== undefined && stampAgeSeconds > 2) configCache.set(host, { stamp, config, kadiVersion: discovery.facts.kadiVersion });
  return discovery;
}

/** `NAME = 'value'` or `NAME: value` of a key naming a secret, in free text, with the value masked. */
export function redactSecretAssignments(text: string): string {
  return text.replace(/\b([A-Z0-9_]*(?:SECRET|PASSWORD|PASSWD|KEY|TOKEN)[A-Z0-9_]*)(\s*[=:]\s*)("[^"]*"|'[^']*'|\S+)/gi, '$1$2<redacted>');
}

async function readKadiConfig(host: RemoteHost): Promise<KadiConfig> {
  const profile = host.profile;
  const cfgResult = await host.run(kadiArgv(profile, 'utils', 'config'));
  if (cfgResult.code !== 0) {
    // Only the last line (a traceback's tail names the problem), and redacted: an exception can quote
    // a value of the configuration (a URI with its password, a SECRET_KEY = '...').
    const last = redactConfigText(redactSecretAssignments((cfgResult.stderr || cfgResult.stdout).trim().split('\n').at(-1) ?? ''));
    throw new RemoteCommandError(`Reading the Kadi configuration with "${profile.kadi.cli} utils config" (KADI_CONFIG_FILE=${profile.kadi.configFile})`, {
      ...cfgResult,
      stdout: '',
      stderr: last,
    });
  }
  return parseKadiConfig(cfgResult.stdout);
}

/** Kadi's configuration says nothing Kadi Ops can use about its database (and the profile does not either). */
export class KadiConfigError extends Error {}

/**
 * The database Kadi uses: its configuration's SQLALCHEMY_DATABASE_URI, each part overridden by the
 * profile's overrides.database. A URI that is missing or cannot be read is an error unless the
 * profile names host, name and user itself: made-up defaults (localhost:5432/kadi) could reach
 * another server's database and back that up instead.
 */
export function databaseTarget(config: KadiConfig, o: { host?: string; port?: number; name?: string; user?: string }): DatabaseTarget {
  const c = config.database;
  if (!c && !(o.host && o.name && o.user)) {
    const why = config.problems.find((p) => p.startsWith('SQLALCHEMY_DATABASE_URI')) ?? 'SQLALCHEMY_DATABASE_URI could not be read.';
    throw new KadiConfigError(`${why} Fix it in Kadi's configuration, or name the database in the profile's overrides.database (host, port, name, user).`);
  }
  return {
    host: o.host ?? c?.host ?? 'localhost',
    port: o.port ?? c?.port ?? 5432,
    name: o.name ?? c?.name ?? 'kadi',
    user: o.user ?? c?.user ?? 'kadi',
  };
}

/** KNOWN: the stamp and the version `kadi --version` gave with it, on this connection before. */
async function collectFacts(host: RemoteHost, config: KadiConfig, known?: { stamp: string; kadiVersion?: string }): Promise<{ discovery: Discovery; stamp?: string; stampAgeSeconds?: number }> {
  const profile = host.profile;
  const o = profile.overrides;
  const database = databaseTarget(config, o.database);
  const dbPassword = config.database?.password ?? new Secret('');
  const dbParams = config.database?.params ?? new Secret('');
  const storagePath = o.storagePath ?? config.storagePath ?? '';
  const uploadsPath = o.uploadsPath ?? config.uploadsPath ?? '';

  // Only a version that was read is offered for reuse: a failed `kadi --version` is asked again.
  const knownStamp = known?.kadiVersion ? [known.stamp] : [];
  const r = await runAgent(host, 'facts', [profile.kadi.cli, profile.kadi.configFile, profile.backupDir, database.host, String(database.port), database.name, database.user, ...knownStamp], {
    stdin: `${dbPassword.reveal()}\n${dbParams.reveal()}\n`,
  });
  if (r.code !== 0) throw new RemoteCommandError('Collecting host facts', r);
  const kv = parseKeyValues(r.stdout);
  const num = kv.get('pg_server_version_num');
  const facts: HostFacts = {
    profile: profile.name,
    hostname: kv.get('hostname'),
    remoteUser: kv.get('remote_user'),
    kadiVersion: kv.get('kadi_version_reused') === 'yes' && knownStamp.length ? known?.kadiVersion : kv.get('kadi_version'),
    alembicRevision: kv.get('alembic_revision'),
    alembicRevisionError: kv.get('alembic_revision_error'),
    kadiVersionError: kv.get('kadi_version_error'),
    // Where libpq connected when the URI names no host (its default socket directory).
    database: { ...database, host: connectedHost(kv.get('pg_host')) ?? database.host },
    storagePath,
    uploadsPath,
    oidcSigningKeys: config.oidcSigningKeys ?? [],
    pg: {
      serverVersionNum: num ? Number(num) : undefined,
      serverMajor: kv.get('pg_server_major') ? Number(kv.get('pg_server_major')) : undefined,
      psql: toolPath(kv.get('psql')),
      pgDump: toolPath(kv.get('pg_dump')),
      pgRestore: toolPath(kv.get('pg_restore')),
      installedPgDumps: kv.all('pg_dump_available'),
      error: kv.get('pg_error'),
    },
    backupDir: {
      path: profile.backupDir,
      exists: kv.get('backup_dir_exists') === 'yes',
      freeBytes: kbToBytes(kv.get('backup_free_kb')),
      sizeBytes: kbToBytes(kv.get('backup_fs_size_kb')),
    },
    tools: Object.fromEntries(['rsync', 'zstd', 'pigz', 'gzip', 'tar', 'sha256sum', 'flock', 'setsid'].map((t) => [t, kv.get(`tool_${t}`) === 'yes'])),
    problems: [],
  };
  facts.problems = findProblems(facts);
  const stamp = kv.get('kadi_config_stamp') || undefined;
  const age = Number(kv.get('now_epoch')) - Number(kv.get('kadi_config_newest_mtime'));
  return { discovery: { facts, dbPassword, dbParams, ...(config.redisAuth ? { redisAuth: config.redisAuth } : {}) }, stamp, stampAgeSeconds: Number.isFinite(age) ? age : undefined };
}

/** The agent's pg_host: where psql connected, as libpq names it (a socket directory or a host name). */
function connectedHost(v: string | undefined): string | undefined {
  return v && v.length <= 1024 && !/[\x00-\x1f\x7f]/.test(v) ? v : undefined;
}

/** user@host:port/name, with "libpq's default socket" for a host the URI did not name. */
export function databaseLabel(d: DatabaseTarget): string {
  return `${d.user}@${d.host === '' ? "(libpq's default socket)" : d.host}:${d.port}/${d.name}`;
}

/** A client binary the host reported: used only when it is a plain absolute path (it will be run). */
function toolPath(v: string | undefined): string | undefined {
  return v && /^\/[A-Za-z0-9/._+-]+$/.test(v) ? v : undefined;
}

function kbToBytes(v: string | undefined): number | undefined {
  return v === undefined || v === '' ? undefined : Number(v) * 1024;
}

/** A relative STORAGE_PATH or MISC_UPLOADS_PATH: Kadi resolves it against the directory it was started in, which Kadi Ops cannot know. */
export function relativePathProblems(f: Pick<HostFacts, 'storagePath' | 'uploadsPath'>): string[] {
  const out: string[] = [];
  for (const [key, v, o] of [['STORAGE_PATH', f.storagePath, 'storagePath'], ['MISC_UPLOADS_PATH', f.uploadsPath, 'uploadsPath']] as const) {
    if (v && !v.startsWith('/')) {
      out.push(`${key} is the relative path "${v}": Kadi resolves it against the directory it runs in, which Kadi Ops cannot know. Set an absolute path in Kadi's configuration, or the profile's overrides.${o}.`);
    }
  }
  return out;
}

function findProblems(f: HostFacts): string[] {
  const p: string[] = [];
  if (!f.kadiVersion) p.push(f.kadiVersionError ? `The kadi CLI did not report its version: ${f.kadiVersionError.replace(/^kadi --version /, '')}.` : 'The kadi CLI did not report its version.');
  if (f.alembicRevisionError) p.push(`The database's schema revision is not usable: ${f.alembicRevisionError}.`);
  if (f.pg.error) p.push(`PostgreSQL is not reachable as ${databaseLabel(f.database)}: ${f.pg.error}`);
  else if (f.pg.serverMajor !== undefined && !f.pg.pgDump) {
    p.push(`No pg_dump for PostgreSQL ${f.pg.serverMajor} on the host (looked in /usr/lib/postgresql/${f.pg.serverMajor}/bin and PATH); install postgresql-client-${f.pg.serverMajor}.`);
  }
  if (!f.storagePath) p.push('STORAGE_PATH is not set in the Kadi configuration and not overridden.');
  if (!f.uploadsPath) p.push('MISC_UPLOADS_PATH is not set in the Kadi configuration and not overridden.');
  p.push(...relativePathProblems(f));
  if (!f.backupDir.exists) p.push(`Backup directory ${f.backupDir.path} does not exist.`);
  for (const t of ['tar', 'sha256sum', 'flock', 'setsid']) if (!f.tools[t]) p.push(`Required tool "${t}" is missing on the host.`);
  return p;
}
