/**
 * The backup flow, written once for both front ends: the backup job (with the stale-lock
 * question), how it ended, and, only after a backup that succeeded, pruning by a retention policy.
 */
import { startBackup, type BackupOptions } from '../backup/backupSets';
import type { RetentionPolicy } from '../backup/retention';
import type { HostProfile } from '../config/types';
import { discover } from '../kadi/discovery';
import type { ConnectionPool } from '../remote/connectionPool';
import type { JobOutcome } from '../remote/jobs';
import { runJobBreakingStaleLock } from './frontEnd';
import { pruneFlow, type PruneFlowResult, type PruneFrontEnd } from './pruneFlow';

/** A backup can prune afterwards, so its front end answers the prune flow's questions too. */
export type BackupFrontEnd = PruneFrontEnd;

export interface BackupRequest {
  /** Archive mode, Redis, stopping services; `breakStaleLock` breaks a stale lock without asking. */
  options?: BackupOptions;
  /** Prune by this policy after the backup succeeded (never after one that did not). */
  pruneAfter?: RetentionPolicy;
}

export type BackupFlowResult = { state: 'not-started' } | { state: 'ran'; outcome: JobOutcome; prune?: PruneFlowResult };

export async function backupFlow(fe: BackupFrontEnd, pool: ConnectionPool, profile: HostProfile, req: BackupRequest = {}): Promise<BackupFlowResult> {
  const title = 'Backup';
  const opts = req.options ?? {};
  const ran = await runJobBreakingStaleLock(fe, title, async (host, breakStaleLock) => startBackup(host, await discover(host), { ...opts, breakStaleLock }), opts.breakStaleLock);
  if (!ran) return { state: 'not-started' };
  await fe.finished(title, ran.outcome);
  // Retention runs only after a good new set exists, never after a failed backup.
  if (ran.outcome.result !== 'succeeded' || !req.pruneAfter) return { state: 'ran', outcome: ran.outcome };
  // The set this backup made is never pruned by it (as a scheduled run's retention).
  return { state: 'ran', outcome: ran.outcome, prune: await pruneFlow(fe, pool, profile, { policy: req.pruneAfter, keepSet: ran.outcome.set ?? 'newest' }) };
}
