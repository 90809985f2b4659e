/**
 * When does the backup disk fill? From the sets' own growth: what each set added to the disk (its
 * new tree files and every artifact file it wrote), summed over time and fitted with a straight line
 * by least squares; the free bytes measured on the host divided by that slope. Pure, for the
 * dashboard (and any other front end).
 *
 * The forecast assumes nothing is pruned: retention frees space, so where it runs the disk fills
 * later than said, or never. Other users of the disk are not seen.
 */
import type { BackupSet, Manifest } from './manifest';

/** Fewer sets than this give no forecast: two points always fit a line exactly. */
export const MIN_SETS_FOR_FORECAST = 3;
/** Nor do sets closer together than this: a few minutes' growth says nothing about a month. */
export const MIN_DAYS_FOR_FORECAST = 1;

const DAY_MS = 86_400_000;
const MAX_DATE_MS = 8.64e15;

/** What a directory takes at least: one block of the usual 4 KiB (ext4's and XFS's default). */
export const DIRECTORY_BYTES = 4096;

/**
 * Bytes a set added to the backup disk: its trees' new files (unchanged ones are hard links to the
 * previous set) plus every artifact file it wrote: the dump, its listing and row counts, the
 * configuration archive, file lists and archives, the Redis snapshot. A file list's `bytes` is the
 * tree it describes (counted through `trees.*.newBytes`), not the list; only its own size counts.
 * An archive (files mode `archive`) is written whole every time: its size is all new. Every set
 * makes its trees' directories again, a block each at least (DIRECTORY_BYTES; ~1.9 per file in
 * Kadi's uuid layout, about 7 GiB a set at a million files): counted from the list's entries that
 * are not files.
 */
export function setGrowthBytes(m: Manifest): number {
  const trees = Object.values(m.trees ?? {}).reduce((n, t) => n + (Number.isFinite(t.newBytes) ? t.newBytes : 0), 0);
  const files = m.artifacts.reduce((n, a) => n + (Number.isFinite(a.size) ? a.size : 0), 0);
  const dirs = m.artifacts.reduce((n, a) => n + (a.tree && Number.isFinite(a.entries) && Number.isFinite(a.files) ? Math.max(0, (a.entries as number) - (a.files as number)) : 0), 0);
  return trees + files + dirs * DIRECTORY_BYTES;
}

export interface GrowthPoint {
  /** The set's time (ms since the epoch). */
  t: number;
  /** Bytes added by all sets up to and including this one. */
  cumulative: number;
}

/** The sets' cumulative growth, oldest first. */
export function growthSeries(sets: readonly BackupSet[]): GrowthPoint[] {
  let total = 0;
  return [...sets]
    .sort((a, b) => a.time.getTime() - b.time.getTime())
    .map((s) => {
      total += setGrowthBytes(s.manifest);
      return { t: s.time.getTime(), cumulative: total };
    });
}

/** Least-squares slope of y over x, or undefined when the x values do not spread (fewer than two distinct). */
export function leastSquaresSlope(points: readonly { x: number; y: number }[]): number | undefined {
  const n = points.length;
  if (n < 2) return undefined;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (const p of points) {
    sxx += (p.x - mx) ** 2;
    sxy += (p.x - mx) * (p.y - my);
  }
  return sxx > 0 ? sxy / sxx : undefined;
}

export type FillForecast =
  /** The free space is not known (not measured yet, or the host did not say). */
  | { kind: 'unknown' }
  /** Too few sets, or (spanDays) too short a time between the oldest and the newest. */
  | { kind: 'not-enough-history'; sets: number; needed: number; spanDays?: number; neededDays?: number }
  | { kind: 'not-filling'; sets: number; bytesPerDay: number }
  /** `at`: when the free bytes run out at the fitted rate; `days` from the measurement (0: full already). */
  | { kind: 'fills'; sets: number; bytesPerDay: number; at: Date; days: number };

/**
 * The forecast from the sets (any order) and the free bytes measured at `measuredAt`. Growth is
 * fitted in bytes per day over the sets' times, once there are MIN_SETS_FOR_FORECAST sets at least
 * MIN_DAYS_FOR_FORECAST apart (oldest to newest); a rate of zero or less (sets that add nothing) does
 * not fill the disk.
 */
export function forecastFill(sets: readonly BackupSet[], freeBytes: number | undefined, measuredAt: Date): FillForecast {
  if (freeBytes === undefined || !Number.isFinite(freeBytes)) return { kind: 'unknown' };
  if (sets.length < MIN_SETS_FOR_FORECAST) return { kind: 'not-enough-history', sets: sets.length, needed: MIN_SETS_FOR_FORECAST };
  const series = growthSeries(sets);
  const t0 = series[0].t;
  const spanDays = (series[series.length - 1].t - t0) / DAY_MS;
  if (spanDays < MIN_DAYS_FOR_FORECAST) return { kind: 'not-enough-history', sets: sets.length, needed: MIN_SETS_FOR_FORECAST, spanDays, neededDays: MIN_DAYS_FOR_FORECAST };
  const slope = leastSquaresSlope(series.map((p) => ({ x: (p.t - t0) / DAY_MS, y: p.cumulative })));
  if (slope === undefined) return { kind: 'not-enough-history', sets: sets.length, needed: MIN_SETS_FOR_FORECAST, spanDays, neededDays: MIN_DAYS_FOR_FORECAST };
  if (slope <= 0) return { kind: 'not-filling', sets: sets.length, bytesPerDay: slope };
  const days = Math.max(0, freeBytes) / slope;
  // A date stays a date (JavaScript's last one is in the year 275760) however slow the growth.
  return { kind: 'fills', sets: sets.length, bytesPerDay: slope, at: new Date(Math.min(measuredAt.getTime() + days * DAY_MS, MAX_DATE_MS)), days };
}
