/**
 * What an operator is told about a backup set's verification, in one place for the tree, the CLI,
 * the dashboard and the status bar. A set is in exactly one of four states:
 *
 * - unverified: never verified;
 * - verified: its last verification (quick or deep, when) found nothing wrong;
 * - damaged: its last verification found problems (what);
 * - not-run: a deep verification was asked for but could not run on the host (why, and the fix).
 *   That is not a finding about the set: its quick part still ran, and if that found a problem the
 *   set is damaged instead.
 *
 * Retention knows only good and damaged (`SetStatus`); `not-run` counts as verified there, at the
 * quick level, because its quick part passed.
 */
import type { DeepVerifyMode, VerifyRecord } from './manifest';

export type SetState =
  | { kind: 'unverified' }
  | { kind: 'verified'; level: 'quick' | 'deep'; at: string; mode?: DeepVerifyMode }
  | { kind: 'damaged'; level: 'quick' | 'deep'; at: string; mode?: DeepVerifyMode; problems: string[]; problemCount: number }
  | { kind: 'not-run'; at: string; why: string; fix?: string };

export function setState(v: VerifyRecord | null): SetState {
  if (!v) return { kind: 'unverified' };
  const mode = v.level === 'deep' && v.deep?.mode ? { mode: v.deep.mode } : {};
  if (!v.ok) return { kind: 'damaged', level: v.level, at: v.at, ...mode, problems: v.problems, problemCount: v.problemCount };
  if (v.deep?.notRun) return { kind: 'not-run', at: v.at, why: v.deep.notRun, ...(v.deep.fix ? { fix: v.deep.fix } : {}) };
  return { kind: 'verified', level: v.level, at: v.at, ...mode };
}

/** A few words for a list or a tree row: "verified (deep)", "damaged: 2 problems", … */
export function stateLabel(s: SetState): string {
  switch (s.kind) {
    case 'unverified':
      return 'unverified';
    case 'verified':
      return `verified (${s.level})`;
    case 'damaged':
      return `damaged: ${s.problemCount} problem${s.problemCount === 1 ? '' : 's'}`;
    case 'not-run':
      return 'verified (quick); deep verification could not run';
  }
}

/** The full account, one line each: when, what was found, why a deep verification could not run and how to fix that. */
export function stateDetail(s: SetState): string[] {
  switch (s.kind) {
    case 'unverified':
      return ['Not verified yet: run Verify Backup (quick: every checksum; deep: the dump restored and compared).'];
    case 'verified':
      return [`Verified (${how(s)}) ${s.at}: no problems.`];
    case 'damaged': {
      const shown = s.problems.slice(0, 5);
      const more = s.problemCount - shown.length;
      return [`Damaged: ${how(s)} verification ${s.at} found ${s.problemCount} problem${s.problemCount === 1 ? '' : 's'}:`, ...shown.map((p) => `  ${p}`), ...(more > 0 ? [`  … and ${more} more (the verify job's log names the first 200)`] : [])];
    }
    case 'not-run':
      return [`Quick verification ${s.at}: no problems. Deep verification could not run here: ${s.why}.`, ...(s.fix ? [`Fix: ${s.fix}.`] : [])];
  }
}

/** "deep, throwaway cluster": the level, and for a deep verification where the dump was restored. */
function how(s: { level: 'quick' | 'deep'; mode?: DeepVerifyMode }): string {
  return s.mode ? `${s.level}, ${s.mode.replace('-', ' ')}` : s.level;
}
