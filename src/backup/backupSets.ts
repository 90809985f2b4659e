/**
 * Backup operations on a host: start a backup or verify job, list sets in one round trip, pin,
 * prune and clean partial sets. Jobs are streamed by remote/jobs.
 */
import { parseScheduleStatus, type ScheduleStatus } from './schedule';
import { dbJobSecrets, relativePathProblems, type Discovery } from '../kadi/discovery';
import { redisAuthJson } from '../kadi/outputParsers';
import { TOOL_VERSION } from '../core/version';
import { checkAgent } from '../remote/agent';
import { parseJobInfo, startJob, type JobInfo } from '../remote/jobs';
import type { RemoteHost } from '../remote/remoteHost';
import { parseSetListing, type SetListing } from './manifest';
import { planFromProfile } from './hostPlan';
import { planJobInput, type HostPlan } from '../core/plan';

export interface BackupOptions {
  filesMode?: 'tree' | 'archive';
  /** Include a Redis snapshot (defaults to the profile's redis.enabled). */
  redis?: boolean;
  breakStaleLock?: boolean;
  /** Stop the profile's services (those that exist) around the dump and copies, for a fully consistent set. */
  stopServices?: boolean;
}

export class BackupRefusedError extends Error {}

/**
 * The plan of a backup from this client: the profile's components and options and what discovery
 * found (core/plan.ts). The agent derives the backup verb's options from it, as it does for a plan
 * stored on the host, so a client's backup and a scheduled one run the same way.
 */
export function backupPlan(host: RemoteHost, d: Discovery, opts: BackupOptions): HostPlan {
  const p = host.profile;
  const f = d.facts;
  if (f.pg.error) throw new BackupRefusedError(`Cannot back up ${p.name}: ${f.pg.error}`);
  if (!f.pg.pgDump || !f.pg.pgRestore) {
    throw new BackupRefusedError(
      `Cannot back up ${p.name}: no pg_dump/pg_restore for PostgreSQL ${f.pg.serverMajor ?? '?'} on the host ` +
        `(found: ${f.pg.installedPgDumps.join(', ') || 'none'}). Install postgresql-client-${f.pg.serverMajor ?? ''}.`,
    );
  }
  if (!f.storagePath || !f.uploadsPath) throw new BackupRefusedError(`Cannot back up ${p.name}: STORAGE_PATH or MISC_UPLOADS_PATH unknown; set overrides in the host profile.`);
  const relative = relativePathProblems(f);
  if (relative.length) throw new BackupRefusedError(`Cannot back up ${p.name}: ${relative.join(' ')}`);
  return planFromProfile(p, {
    filesMode: opts.filesMode ?? 'tree',
    redis: opts.redis,
    stopServices: opts.stopServices ?? false,
    facts: {
      toolVersion: TOOL_VERSION,
      ...(f.kadiVersion !== undefined ? { kadiVersion: f.kadiVersion } : {}),
      ...(f.alembicRevision !== undefined ? { alembicRevision: f.alembicRevision } : {}),
      database: { host: f.database.host, port: f.database.port, name: f.database.name, user: f.database.user },
      storagePath: f.storagePath,
      uploadsPath: f.uploadsPath,
      oidcKeys: f.oidcSigningKeys,
      postgres: {
        psql: f.pg.psql ?? 'psql',
        pgDump: f.pg.pgDump,
        pgRestore: f.pg.pgRestore,
        ...(f.pg.serverVersionNum !== undefined ? { serverVersionNum: f.pg.serverVersionNum } : {}),
        ...(f.pg.serverMajor !== undefined ? { serverMajor: f.pg.serverMajor } : {}),
      },
    },
  });
}

export async function startBackup(host: RemoteHost, d: Discovery, opts: BackupOptions = {}): Promise<string> {
  const plan = backupPlan(host, d, opts);
  return startJob(host, { kind: 'backup', verb: 'backup', args: ['plan=yes'], secret: planJobInput(plan, dbJobSecrets(d), undefined, redisAuthJson(d.redisAuth)), breakStaleLock: opts.breakStaleLock });
}

export type VerifyLevel = 'quick' | 'deep';

export interface VerifyOptions {
  /**
   * Where the server binaries (initdb, pg_ctl, postgres) of the server's major are, for the
   * throwaway cluster of a deep verify (default /usr/lib/postgresql/<major>/bin). Where they are
   * missing, deep verify falls back to a scratch database on the server.
   */
  serverBinDir?: string;
  breakStaleLock?: boolean;
}

export async function startVerify(host: RemoteHost, d: Discovery, set: string, level: VerifyLevel = 'quick', opts: VerifyOptions = {}): Promise<string> {
  return startJob(host, {
    kind: 'verify',
    verb: 'verify',
    args: verifyJobArgs(host, d, set, level, opts.serverBinDir),
    secret: level === 'deep' ? JSON.stringify(dbJobSecrets(d)) : '',
    breakStaleLock: opts.breakStaleLock,
  });
}

/** A verify job's key=value options (also those of a set brought back from off-site, verified before it is put in place). */
export function verifyJobArgs(host: RemoteHost, d: Discovery, set: string, level: VerifyLevel, serverBinDir?: string): string[] {
  const f = d.facts;
  if (!f.pg.pgRestore) throw new BackupRefusedError(`No pg_restore for PostgreSQL ${f.pg.serverMajor ?? '?'} on ${host.profile.name}.`);
  const kv: Record<string, string> = {
    backup_dir: host.profile.backupDir,
    set,
    level,
    pg_restore: f.pg.pgRestore,
    psql: f.pg.psql ?? 'psql',
    pg_host: f.database.host,
    pg_port: String(f.database.port),
    pg_db: f.database.name,
    pg_user: f.database.user,
    pg_major: f.pg.serverMajor === undefined ? '' : String(f.pg.serverMajor),
    pg_bindir: serverBinDir ?? '',
  };
  return Object.entries(kv).map(([k, v]) => `${k}=${v}`);
}

export async function startPrune(host: RemoteHost, sets: string[], opts: { breakStaleLock?: boolean } = {}): Promise<string> {
  return startJob(host, { kind: 'prune', verb: 'prune', args: [host.profile.backupDir, ...sets], breakStaleLock: opts.breakStaleLock });
}

export async function listSets(host: RemoteHost): Promise<SetListing> {
  const r = await checkAgent(host, `Listing backup sets in ${host.profile.backupDir}`, 'list-sets', [host.profile.backupDir]);
  return parseSetListing(r.stdout);
}

export async function setPinned(host: RemoteHost, set: string, pinned: boolean): Promise<void> {
  await checkAgent(host, `${pinned ? 'Pinning' : 'Unpinning'} ${set}`, pinned ? 'pin' : 'unpin', [host.profile.backupDir, set]);
}

export async function cleanPartials(host: RemoteHost, names: string[]): Promise<void> {
  if (names.length === 0) return;
  await checkAgent(host, 'Removing partial sets', 'clean-partials', [host.profile.backupDir, ...names]);
}

export interface HostOverview extends SetListing {
  jobs: JobInfo[];
  /** The host's own schedule (absent from an agent that does not report it). */
  schedule?: ScheduleStatus;
}

/** Sets, partial sets and jobs of a host in one round trip (the tree's refresh). */
export async function hostOverview(host: RemoteHost): Promise<HostOverview> {
  const r = await checkAgent(host, `Reading ${host.profile.backupDir}`, 'overview', [host.profile.backupDir]);
  const sep = r.stdout.indexOf('\n--- jobs\n');
  if (sep < 0) throw new Error(`Unexpected overview output from ${host.profile.name}.`);
  const listing = parseSetListing(r.stdout.slice(0, sep));
  const rest = r.stdout.slice(sep + '\n--- jobs\n'.length);
  const sched = rest.search(/(^|\n)--- schedule\n/);
  const jobs = (sched < 0 ? rest : rest.slice(0, sched))
    .split('\n\n')
    .filter((b) => b.trim())
    .map(parseJobInfo);
  return { ...listing, jobs, ...(sched < 0 ? {} : { schedule: parseScheduleStatus(rest.slice(sched).replace(/^\n?--- schedule\n/, '')) }) };
}
