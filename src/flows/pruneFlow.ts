/**
 * The prune flow, written once for both front ends: the retention plan from the host's current
 * sets, the plan shown, "nothing to delete" said as such, a confirmation, the prune job.
 */
import { listSets, startPrune } from '../backup/backupSets';
import { hostNow } from '../backup/manifest';
import { applyRetention, type RetentionPlan, type RetentionPolicy } from '../backup/retention';
import type { HostProfile } from '../config/types';
import type { ConnectionPool } from '../remote/connectionPool';
import type { JobOutcome } from '../remote/jobs';
import { runJobBreakingStaleLock, type FrontEnd } from './frontEnd';

export interface PruneFrontEnd extends FrontEnd {
  /** The plan deletes something: what is kept (and why) and what is deleted. */
  showPrunePlan(plan: RetentionPlan, policy: RetentionPolicy): Promise<void>;
  /** The policy keeps every set: nothing is deleted. */
  nothingToPrune(plan: RetentionPlan, policy: RetentionPolicy): Promise<void>;
  /** Delete the plan's `remove` sets? (The CLI's --keep-* options are that decision.) */
  confirmPrune(plan: RetentionPlan): Promise<boolean>;
}

export interface PruneRequest {
  policy: RetentionPolicy;
  /** Show the plan only. */
  dryRun?: boolean;
  /** Break a stale lock without asking (the CLI's --break-stale-lock); otherwise asked. */
  breakStaleLock?: boolean;
  /**
   * The set a backup just made, never removed by the prune after it whatever the policy (with
   * keepLast 0, or a minKeep an older verified set already fills, it would be); 'newest': the
   * newest set, when the backup's own name was not seen.
   */
  keepSet?: string;
}

export type PruneFlowResult =
  | { state: 'nothing' | 'previewed' | 'declined' | 'not-started'; plan: RetentionPlan }
  | { state: 'ran'; plan: RetentionPlan; outcome: JobOutcome };

export async function pruneFlow(fe: PruneFrontEnd, pool: ConnectionPool, profile: HostProfile, req: PruneRequest): Promise<PruneFlowResult> {
  // Planned from the host's sets as they are now, not from a listing read earlier.
  const listing = await listSets(await pool.get(profile));
  // "Dated in the future" by the host's clock, which named the sets, as the host's own retention does.
  const planned = applyRetention(listing.sets.map((s) => ({ id: s.name, time: s.time, status: s.status, pinned: s.pinned, preRestore: s.preRestore })), req.policy, hostNow(listing));
  const own = req.keepSet === 'newest' ? listing.sets[0]?.name : req.keepSet;
  const plan = own ? keeping(planned, own, 'made by this backup') : planned;
  if (plan.remove.length === 0) {
    await fe.nothingToPrune(plan, req.policy);
    return { state: 'nothing', plan };
  }
  await fe.showPrunePlan(plan, req.policy);
  if (req.dryRun) return { state: 'previewed', plan };
  if (!(await fe.confirmPrune(plan))) return { state: 'declined', plan };
  const title = `Prune ${plan.remove.length} set(s)`;
  const ran = await runJobBreakingStaleLock(fe, title, (host, breakStaleLock) => startPrune(host, plan.remove.map((r) => r.id), { breakStaleLock }), req.breakStaleLock);
  if (!ran) return { state: 'not-started', plan };
  await fe.finished(title, ran.outcome);
  return { state: 'ran', plan, outcome: ran.outcome };
}

/** PLAN with set ID kept for REASON (its place among the kept ones by time, newest first, as the plan's order is). */
export function keeping(plan: RetentionPlan, id: string, reason: string): RetentionPlan {
  if (!plan.remove.some((r) => r.id === id)) return plan;
  const keep = [...plan.keep, { id, reasons: [reason] }].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  return { keep, remove: plan.remove.filter((r) => r.id !== id) };
}

/** The plan as lines: `keep    <set>  (<reasons>)`, then `delete  <set>`. */
export function formatPrunePlan(plan: RetentionPlan): string[] {
  return [...plan.keep.map((k) => `keep    ${k.id}  (${k.reasons.join(', ')})`), ...plan.remove.map((r) => `delete  ${r.id}`)];
}
