/**
 * The guide's maintenance steps, each written once for both front ends: db upgrade, reindex,
 * removing orphaned search indices, files check (and resolving what it found), Redis snapshot and
 * fixing permissions. What is refused, what is asked, which job starts, and the summary parsed
 * from the job's log (the same report a restore ends with).
 */
import type { HostProfile } from '../config/types';
import { discover } from '../kadi/discovery';
import type { FilesCheckResult } from '../kadi/outputParsers';
import type { ConnectionPool } from '../remote/connectionPool';
import type { JobOutcome } from '../remote/jobs';
import type { RemoteHost } from '../remote/remoteHost';
import { listIndices, orphanRefusal, startDbUpgrade, startFilesCheck, startFixPermissions, startRedisSnapshot, startReindex, startRemoveOrphans, type IndexListing, type JobStartOptions } from '../restore/maintenance';
import { parseJobReport, type JobReport } from '../restore/report';
import { runJobBreakingStaleLock, type FrontEnd } from './frontEnd';

// The jobs' titles: a kadi command's own name where there is one (the CLI's summaries have always
// used them), else a plain description.

export interface MaintenanceFrontEnd extends FrontEnd {
  /** Nothing to do, or (refused) a reason not to start: said; nothing is started. */
  notice(message: string, refused: boolean): Promise<void>;
  /** Which of the listing's orphaned indices to remove; undefined or none: nothing is removed. */
  chooseOrphans(listing: IndexListing): Promise<string[] | undefined>;
  /** Remove these indices? (typed host name, or --yes <host>) */
  confirmRemoveOrphans(names: readonly string[]): Promise<boolean>;
  /** The check found `count` inconsistencies: resolve them automatically? */
  offerResolve(count: number, found: FilesCheckResult): Promise<boolean>;
  /** Kadi resolves by hard-deleting rows and their data: the operator confirms the count itself. */
  confirmResolveCount(count: number): Promise<boolean>;
}

export type MaintenanceFlowResult =
  | { state: 'refused' | 'nothing' | 'declined' | 'not-started' }
  | { state: 'ran'; outcome: JobOutcome; report: JobReport };

/** Runs one maintenance job and reports the summary parsed from its log. */
async function maintenanceJob(fe: MaintenanceFrontEnd, title: string, start: (host: RemoteHost, o: JobStartOptions) => Promise<string>): Promise<MaintenanceFlowResult> {
  const ran = await runJobBreakingStaleLock(fe, title, (host, breakStaleLock) => start(host, { breakStaleLock }));
  if (!ran) return { state: 'not-started' };
  const report = parseJobReport(ran.log);
  await fe.finished(title, ran.outcome, report);
  return { state: 'ran', outcome: ran.outcome, report };
}

export function dbUpgradeFlow(fe: MaintenanceFrontEnd): Promise<MaintenanceFlowResult> {
  return maintenanceJob(fe, 'kadi db upgrade', (h, o) => startDbUpgrade(h, o));
}

/** Rebuilds one model's search index, or all (`model` undefined). */
export function reindexFlow(fe: MaintenanceFrontEnd, model?: string): Promise<MaintenanceFlowResult> {
  return maintenanceJob(fe, `kadi search reindex${model ? ` (${model})` : ''}`, (h, o) => startReindex(h, model, o));
}

export function fixPermissionsFlow(fe: MaintenanceFrontEnd): Promise<MaintenanceFlowResult> {
  return maintenanceJob(fe, 'Fix permissions', async (h, o) => startFixPermissions(h, await discover(h), o));
}

export async function redisSnapshotFlow(fe: MaintenanceFrontEnd, profile: HostProfile): Promise<MaintenanceFlowResult> {
  if (!profile.redis.enabled) {
    await fe.notice(`Redis is not enabled for ${profile.name} (set redis.enabled in its host profile).`, true);
    return { state: 'refused' };
  }
  // The discovery gives the credentials of a Redis that asks for a password; a snapshot needs nothing
  // else of it, and starts without them should the discovery fail (Redis then says NOAUTH, if it asks).
  return maintenanceJob(fe, 'Redis snapshot', async (h, o) => startRedisSnapshot(h, o, await discover(h).catch(() => undefined)));
}

/**
 * Removes orphaned search indices: those named (checked against the listing by
 * startRemoveOrphans), or those the front end chooses from the listing's orphans.
 */
export async function removeOrphansFlow(fe: MaintenanceFrontEnd, pool: ConnectionPool, profile: HostProfile, req: { names?: string[] } = {}): Promise<MaintenanceFlowResult> {
  const listing = await listIndices(await pool.get(profile));
  if (req.names === undefined && listing.orphaned.length === 0) {
    await fe.notice(`${profile.name} has no orphaned search indices.`, false);
    return { state: 'nothing' };
  }
  // Named ones are checked before the plan is shown or anything is asked.
  const refused = (req.names ?? []).map((n) => orphanRefusal(listing, n)).filter((r): r is string => r !== undefined);
  if (refused.length) {
    await fe.notice(refused.join('\n'), true);
    return { state: 'refused' };
  }
  const names = req.names ?? (await fe.chooseOrphans(listing));
  if (!names || names.length === 0) return { state: 'declined' };
  if (!(await fe.confirmRemoveOrphans(names))) return { state: 'declined' };
  return maintenanceJob(fe, `Remove ${names.length} orphaned index(es)`, (h, o) => startRemoveOrphans(h, listing, names, o));
}

/**
 * `kadi files check`. With `resolveCount` (the CLI's --resolve --confirm-count N) it resolves at
 * once, only if exactly that many are found. Otherwise it checks; only a check that ran to its end
 * and found inconsistencies offers to resolve them, after the operator confirms their number.
 */
export async function filesCheckFlow(fe: MaintenanceFrontEnd, req: { resolveCount?: number } = {}): Promise<MaintenanceFlowResult> {
  const resolve = (n: number): Promise<MaintenanceFlowResult> => maintenanceJob(fe, `kadi files check --resolve (${n})`, (h, o) => startFilesCheck(h, { resolve: true, confirmCount: n }, o));
  if (req.resolveCount !== undefined) return resolve(req.resolveCount);
  const checked = await maintenanceJob(fe, 'kadi files check', (h, o) => startFilesCheck(h, {}, o));
  // A failed job was reported as failed; only a check that ran to its end offers resolution.
  if (checked.state !== 'ran' || checked.outcome.result !== 'succeeded') return checked;
  const found = checked.report.filesCheck;
  if (!found || found.clean || !found.completed) return checked;
  const n = found.reportedCount ?? found.findings.length;
  if (n === 0) return checked;
  if (!(await fe.offerResolve(n, found))) return checked;
  // Kadi resolves by HARD-DELETING the rows and their data: a second, explicit confirmation.
  if (!(await fe.confirmResolveCount(n))) return checked;
  return resolve(n);
}
