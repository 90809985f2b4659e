/**
 * The guide's maintenance steps as host jobs (db upgrade, reindex, orphan removal, files check,
 * Redis snapshot, permissions) and the one plain command, the parsed index listing.
 */
import type { HostProfile } from '../config/types';
import type { Discovery } from '../kadi/discovery';
import { kadiArgv } from '../kadi/discovery';
import { fatalReason, orphanedIndices, parseSearchLsOutput, redisAuthJson, type ModelIndices, type OrphanedIndex } from '../kadi/outputParsers';
import { startJob } from '../remote/jobs';
import { RemoteCommandError, type RemoteHost } from '../remote/remoteHost';

export const KADI_MODELS = ['record', 'collection', 'template', 'group'] as const;

export class MaintenanceRefusedError extends Error {}

function kadiOpts(p: HostProfile, extra: Record<string, string> = {}): string[] {
  return Object.entries({ kadi_cli: p.kadi.cli, kadi_config: p.kadi.configFile, ...extra }).map(([k, v]) => `${k}=${v}`);
}

/** How a maintenance job starts: breakStaleLock breaks a lock held by a job whose process is gone. */
export interface JobStartOptions {
  breakStaleLock?: boolean;
}

export function startDbUpgrade(host: RemoteHost, o: JobStartOptions = {}): Promise<string> {
  return startJob(host, { kind: 'db-upgrade', verb: 'db_upgrade', args: kadiOpts(host.profile), ...o });
}

/** Whether Kadi has a search index for MODEL (`kadi search reindex -m` takes it). */
export function isKadiModel(model: string): boolean {
  return (KADI_MODELS as readonly string[]).includes(model);
}

export function startReindex(host: RemoteHost, model?: string, o: JobStartOptions = {}): Promise<string> {
  if (model !== undefined && !isKadiModel(model)) throw new MaintenanceRefusedError(`Unknown model "${model}" (one of ${KADI_MODELS.join(', ')}).`);
  return startJob(host, { kind: 'reindex', verb: 'reindex', args: kadiOpts(host.profile, { model: model ?? '' }), ...o });
}

export interface IndexListing {
  models: ModelIndices[];
  live: { model: string; name: string }[];
  orphaned: OrphanedIndex[];
}

export class KadiOutputError extends Error {}

/**
 * `kadi search ls`, parsed: the index behind each alias and the orphans. A plain command. A
 * traceback or a listing without any model is an error, never "no orphans".
 */
export async function listIndices(host: RemoteHost): Promise<IndexListing> {
  const r = await host.run(kadiArgv(host.profile, 'search', 'ls'));
  if (r.code !== 0) throw new RemoteCommandError('kadi search ls', r);
  const parsed = parseSearchLsOutput(`${r.stdout}\n${r.stderr}`);
  if (!parsed.success) throw new KadiOutputError(`kadi search ls failed: ${fatalReason(parsed.fatal) ?? 'it listed no indices'}`);
  const models = parsed.models;
  return {
    models,
    live: models.flatMap((m) => m.indices.filter((i) => i.alias !== undefined).map((i) => ({ model: m.model, name: i.name }))),
    orphaned: orphanedIndices(models),
  };
}

/**
 * Removes orphaned indices. Only names the given listing shows as orphans are accepted (never a
 * model/alias name or a pattern); the job checks each again right before removing it.
 */
/** Why the index NAME must not be removed as an orphan of LISTING, or undefined when it may. */
export function orphanRefusal(listing: IndexListing, name: string): string | undefined {
  const protectedNames = new Set<string>([...KADI_MODELS, ...listing.live.map((l) => l.name), ...listing.models.map((m) => m.model)]);
  if (protectedNames.has(name)) return `Refusing to remove "${name}": it is a live index or an alias.`;
  if (!listing.orphaned.some((o) => o.name === name)) return `Refusing to remove "${name}": it is not an orphaned index (\`indices\` lists them).`;
  if (!/^[a-z]+_\d{20}$/.test(name)) return `Refusing to remove "${name}": not a plain index name.`;
  return undefined;
}

export function startRemoveOrphans(host: RemoteHost, listing: IndexListing, names: readonly string[], o: JobStartOptions = {}): Promise<string> {
  for (const n of names) {
    const refused = orphanRefusal(listing, n);
    if (refused) throw new MaintenanceRefusedError(refused);
  }
  if (names.length === 0) throw new MaintenanceRefusedError('No orphaned indices to remove.');
  return startJob(host, { kind: 'remove-orphans', verb: 'remove_orphans', args: kadiOpts(host.profile, { names: names.join(' ') }), ...o });
}

export interface FilesCheckOptions {
  /** Resolve automatically (Kadi hard-deletes the inconsistent rows and data)... */
  resolve?: boolean;
  /** ...only if the check finds exactly this many inconsistencies: the count the operator confirmed. */
  confirmCount?: number;
}

export function startFilesCheck(host: RemoteHost, opts: FilesCheckOptions = {}, o: JobStartOptions = {}): Promise<string> {
  if (opts.resolve && (opts.confirmCount === undefined || !Number.isInteger(opts.confirmCount) || opts.confirmCount < 1)) {
    throw new MaintenanceRefusedError('Automatic resolution needs the confirmed number of inconsistencies (--confirm-count N).');
  }
  const extra: Record<string, string> = opts.resolve ? { resolve: 'yes', expected: String(opts.confirmCount) } : {};
  return startJob(host, { kind: 'files-check', verb: 'files_check', args: kadiOpts(host.profile, extra), ...o });
}

/** D: the discovery whose Redis credentials (a Redis that asks for a password) the job gets on its stdin. */
export function startRedisSnapshot(host: RemoteHost, o: JobStartOptions = {}, d?: Discovery): Promise<string> {
  const p = host.profile;
  const redis = redisAuthJson(d?.redisAuth);
  return startJob(host, { kind: 'redis-snapshot', verb: 'redis_snapshot', args: kadiOpts(p, { redis_cli: p.redis.cli, redis_port: String(p.redis.port) }), ...(redis ? { secret: JSON.stringify({ redis }) } : {}), ...o });
}

export function startFixPermissions(host: RemoteHost, d: Discovery, o: JobStartOptions = {}): Promise<string> {
  const f = d.facts;
  if (!f.storagePath || !f.uploadsPath) throw new MaintenanceRefusedError('STORAGE_PATH or MISC_UPLOADS_PATH is unknown.');
  return startJob(host, { kind: 'fix-permissions', verb: 'fix_permissions', args: kadiOpts(host.profile, { storage_path: f.storagePath, uploads_path: f.uploadsPath }), ...o });
}
