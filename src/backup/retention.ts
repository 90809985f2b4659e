/**
 * Which backup sets a prune keeps: restic/borg `--keep-*` semantics, in UTC, plus guarantees a
 * prune must never break. Pure and order-independent: the same sets in any order give the same plan.
 *
 * - keepLast N: the N newest sets.
 * - keepDaily/Weekly/Monthly N: the newest set of each of the N newest days / ISO weeks / months
 *   that have a set (gaps do not use up the count).
 * - Failed sets fill no bucket and count toward nothing; they are removed unless pinned.
 * - Always kept: pinned sets, the newest verified set, the newest pre-restore set (the way back from
 *   the last restore), and the newest non-damaged sets up to minKeep (default 1).
 * - A policy with no keep rule at all keeps everything, as restic refuses to forget without one.
 * - A set dated more than FUTURE_SLACK_MS after now (made while the clock was ahead, or the clock is
 *   behind now) is kept and counts toward nothing: as the newest set it would otherwise take the
 *   place of every set made after it, which keepLast would then remove.
 */

/** How far ahead of now a set's time may be before it is taken as dated in the future. */
export const FUTURE_SLACK_MS = 15 * 60_000;

/** A set's time beyond FUTURE_SLACK_MS after NOW: made while the clock was ahead (never "latest" or the newest good set). */
export function datedAhead(time: Date, now: Date = new Date()): boolean {
  return time.getTime() > now.getTime() + FUTURE_SLACK_MS;
}

export type SetStatus = 'verified' | 'unverified' | 'damaged';

export interface RetentionSet {
  id: string;
  /** When the set was taken (UTC). */
  time: Date;
  status: SetStatus;
  pinned: boolean;
  /** Taken automatically before a restore. */
  preRestore?: boolean;
}

export interface RetentionPolicy {
  keepLast?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  /** Never fewer non-damaged sets than this (default 1). */
  minKeep?: number;
}

export interface RetentionPlan {
  /** Newest first; reasons in a fixed order, e.g. ['pinned', 'last', 'daily 2025-03-01']. */
  keep: { id: string; reasons: string[] }[];
  /** Newest first. */
  remove: { id: string }[];
}

export function applyRetention(sets: readonly RetentionSet[], policy: RetentionPolicy, now: Date = new Date()): RetentionPlan {
  checkInput(sets, policy);
  const ordered = [...sets].sort(newestFirst);
  const reasons = new Map<string, string[]>(ordered.map((s) => [s.id, []]));
  const keep = (s: RetentionSet, reason: string): void => {
    reasons.get(s.id)?.push(reason);
  };
  const future = new Set(ordered.filter((s) => datedAhead(s.time, now)).map((s) => s.id));
  for (const s of ordered) if (future.has(s.id)) keep(s, 'dated in the future');
  const good = ordered.filter((s) => s.status !== 'damaged' && !future.has(s.id));

  for (const s of ordered) if (s.pinned) keep(s, 'pinned');
  const newestVerified = good.find((s) => s.status === 'verified');
  if (newestVerified) keep(newestVerified, 'newest verified');
  const newestPreRestore = good.find((s) => s.preRestore === true);
  if (newestPreRestore) keep(newestPreRestore, 'newest pre-restore');

  const hasRule = [policy.keepLast, policy.keepDaily, policy.keepWeekly, policy.keepMonthly].some((n) => n !== undefined);
  if (!hasRule) {
    for (const s of ordered) if (reasons.get(s.id)?.length === 0) keep(s, 'no policy');
  }
  good.slice(0, policy.keepLast ?? 0).forEach((s) => keep(s, 'last'));
  keepBuckets(good, policy.keepDaily ?? 0, (d) => `daily ${dayKey(d)}`, keep);
  keepBuckets(good, policy.keepWeekly ?? 0, (d) => `weekly ${isoWeekKey(d)}`, keep);
  keepBuckets(good, policy.keepMonthly ?? 0, (d) => `monthly ${monthKey(d)}`, keep);

  const minKeep = policy.minKeep ?? 1;
  let kept = good.filter((s) => (reasons.get(s.id)?.length ?? 0) > 0).length;
  for (const s of good) {
    if (kept >= minKeep) break;
    if (reasons.get(s.id)?.length === 0) {
      keep(s, 'min keep');
      kept++;
    }
  }

  const plan: RetentionPlan = { keep: [], remove: [] };
  for (const s of ordered) {
    const r = reasons.get(s.id) ?? [];
    if (r.length > 0) plan.keep.push({ id: s.id, reasons: r });
    else plan.remove.push({ id: s.id });
  }
  return plan;
}

/** Keeps the newest set of each of the `count` newest buckets that have a set. */
function keepBuckets(newestFirstSets: readonly RetentionSet[], count: number, bucket: (d: Date) => string, keep: (s: RetentionSet, reason: string) => void): void {
  let last: string | undefined;
  let used = 0;
  for (const s of newestFirstSets) {
    if (used >= count) return;
    const b = bucket(s.time);
    if (b === last) continue;
    last = b;
    used++;
    keep(s, b);
  }
}

function newestFirst(a: RetentionSet, b: RetentionSet): number {
  // Ties broken by id so the plan does not depend on input order.
  return b.time.getTime() - a.time.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function checkInput(sets: readonly RetentionSet[], policy: RetentionPolicy): void {
  for (const [name, n] of Object.entries(policy)) {
    if (n !== undefined && (typeof n !== 'number' || !Number.isInteger(n) || n < 0)) {
      throw new RangeError(`Retention ${name} must be a whole number >= 0, got ${String(n)}`);
    }
  }
  const ids = new Set<string>();
  for (const s of sets) {
    if (ids.has(s.id)) throw new RangeError(`Backup set ${s.id} is listed twice`);
    ids.add(s.id);
    if (Number.isNaN(s.time.getTime())) throw new RangeError(`Backup set ${s.id} has an invalid time`);
  }
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** `2025-03-01` (UTC). */
export function dayKey(d: Date): string {
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

/** `2025-03` (UTC). */
export function monthKey(d: Date): string {
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}`;
}

/** ISO 8601 week in UTC, e.g. `2020-W53` for 2021-01-03: the week belongs to the year of its Thursday. */
export function isoWeekKey(d: Date): string {
  const day = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  const mondayBased = (d.getUTCDay() + 6) % 7;
  const thursday = new Date(day + (3 - mondayBased) * 86_400_000);
  const year = thursday.getUTCFullYear();
  const ordinal = Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / 86_400_000);
  return `${pad(year, 4)}-W${pad(Math.floor(ordinal / 7) + 1)}`;
}
