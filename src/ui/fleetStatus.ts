/**
 * How the hosts are doing, each and all together: the status bar's worst state and the dashboard's
 * health column. Plain data from the tree's host states (treeModel.ts); no `vscode` import, so it is
 * unit-tested in Node. statusBar.ts shows it.
 *
 * A host is, worst first: damaged (its newest set failed verification) or failed (its last job, or
 * its last backup job, failed or died); unreachable (the last load failed); stale (no good set, or
 * the newest is older than staleAfterHours, which follows the schedule); the last scheduled run failed
 * (an error); the last scheduled deep verification could not run (a warning, with the fix); no
 * schedule at all (a warning); good; or not loaded yet. Running jobs are said besides.
 */
import { couldNotRunText, lastScheduledRunCouldNotRun, lastScheduledRunFailed } from '../backup/schedule';
import { setState, stateLabel } from '../backup/setState';
import type { HostProfile } from '../config/types';
import type { JobInfo } from '../remote/jobs';
import { formatAge, jobResultLabel, lastGoodSet, setAgeMs, staleAfterHours, type HostState } from './treeModel';

export type HostHealth =
  | { kind: 'not-loaded' }
  | { kind: 'unreachable'; error: string }
  | { kind: 'damaged'; set: string; problems: string }
  | { kind: 'failed'; job: JobInfo; result: string }
  | { kind: 'scheduled-run-failed'; when: string }
  | { kind: 'scheduled-run-could-not-run'; why: string; fix?: string }
  | { kind: 'stale'; set?: string; ageMs?: number; thresholdHours: number }
  | { kind: 'unscheduled'; set: string; ageMs: number }
  | { kind: 'good'; set: string; ageMs: number; verification: string };

export type Severity = 'error' | 'warning' | 'ok' | 'unknown';

export interface HostStatus {
  name: string;
  health: HostHealth;
  severity: Severity;
  running: JobInfo[];
  /** One line for a tooltip: "prod: newest good backup 3 h ago, verified (quick); backup running (alice since 06:37)". */
  line: string;
}

const SEVERITY: Record<HostHealth['kind'], Severity> = { damaged: 'error', failed: 'error', 'scheduled-run-failed': 'error', 'scheduled-run-could-not-run': 'warning', unreachable: 'warning', stale: 'warning', unscheduled: 'warning', good: 'ok', 'not-loaded': 'unknown' };
const RANK: Record<Severity, number> = { error: 3, warning: 2, ok: 1, unknown: 0 };

/** A job that ended badly: failed or died (cancelled and "could not run" are not failures). */
export function jobFailed(j: JobInfo): boolean {
  const r = jobResultLabel(j);
  return r === 'died' || r.startsWith('failed');
}

/** The newest finished job if it failed, else the newest finished backup job if that failed. */
export function failedLastJob(jobs: readonly JobInfo[]): JobInfo | undefined {
  const finished = jobs.filter((j) => j.state !== 'running');
  const last = finished[0];
  if (last && jobFailed(last)) return last;
  const lastBackup = finished.find((j) => j.kind === 'backup');
  return lastBackup && jobFailed(lastBackup) ? lastBackup : undefined;
}

export function hostHealth(profile: HostProfile, state: HostState, now: Date): HostHealth {
  const o = state.overview;
  if (!o) return state.error ? { kind: 'unreachable', error: state.error } : { kind: 'not-loaded' };
  const newest = o.sets[0];
  if (newest) {
    const s = setState(newest.verify);
    if (s.kind === 'damaged') return { kind: 'damaged', set: newest.name, problems: stateLabel(s) };
  }
  const failed = failedLastJob(o.jobs);
  if (failed) return { kind: 'failed', job: failed, result: jobResultLabel(failed) };
  if (lastScheduledRunFailed(o.schedule)) return { kind: 'scheduled-run-failed', when: o.schedule?.unit?.exited || o.schedule?.lastJob?.started || '?' };
  const thresholdHours = staleAfterHours(profile, o);
  const good = lastGoodSet(o, now);
  if (!good) return { kind: 'stale', thresholdHours };
  const ageMs = setAgeMs(o, good, now);
  if (ageMs > thresholdHours * 3600_000) return { kind: 'stale', set: good.name, ageMs, thresholdHours };
  const couldNotRun = lastScheduledRunCouldNotRun(o.schedule);
  if (couldNotRun) return { kind: 'scheduled-run-could-not-run', ...couldNotRun };
  // Nothing makes the next backup: said (an agent that does not report schedules says nothing).
  if (o.schedule && o.schedule.state !== 'installed') return { kind: 'unscheduled', set: good.name, ageMs };
  return { kind: 'good', set: good.name, ageMs, verification: stateLabel(setState(good.verify)) };
}

/** The health in a few words, without the host's name. */
export function healthText(h: HostHealth): string {
  switch (h.kind) {
    case 'not-loaded':
      return 'not loaded yet';
    case 'unreachable':
      return `unreachable: ${h.error.split('\n')[0]}`;
    case 'damaged':
      return `newest set ${h.set} is ${h.problems}`;
    case 'failed':
      return `last ${h.job.kind} job ${h.result} (started ${h.job.started})`;
    case 'stale':
      return h.set && h.ageMs !== undefined ? `newest good backup ${formatAge(h.ageMs)} old (more than ${Math.round(h.thresholdHours)} h)` : 'no good backup yet';
    case 'scheduled-run-failed':
      return `the last scheduled run failed (${h.when})`;
    case 'scheduled-run-could-not-run':
      return couldNotRunText(h);
    case 'unscheduled':
      return `newest good backup ${formatAge(h.ageMs)} ago; no schedule: backups happen only when someone starts them`;
    case 'good':
      return `newest good backup ${formatAge(h.ageMs)} ago, ${h.verification}`;
  }
}

/** What a running job is, for a line: "backup by alice since 06:37". */
export function runningText(j: JobInfo): string {
  return `${j.kind} by ${j.operator} since ${j.started.slice(11, 16)}`;
}

export function hostStatus(profile: HostProfile, state: HostState, now: Date): HostStatus {
  const health = hostHealth(profile, state, now);
  const running = state.overview?.jobs.filter((j) => j.state === 'running') ?? [];
  const jobs = running.length ? `; running: ${running.map(runningText).join(', ')}` : '';
  return { name: profile.name, health, severity: SEVERITY[health.kind], running, line: `${profile.name}: ${healthText(health)}${jobs}` };
}

export interface FleetStatus {
  /** The worst host's; 'none' when no host is configured (nothing to show). */
  severity: Severity | 'none';
  /** Status bar text with codicons: "$(error) prod: damaged set", "$(sync~spin) 1 running", "$(pass) Kadi Ops". */
  text: string;
  /** The same without codicons, for screen readers. */
  label: string;
  tooltip: string;
  running: number;
  hosts: HostStatus[];
}

/** Few words for the status bar about one host in this state. */
function shortText(h: HostHealth): string {
  switch (h.kind) {
    case 'damaged':
      return 'damaged set';
    case 'failed':
      return `${h.job.kind} ${h.result.startsWith('failed') ? 'failed' : h.result}`;
    case 'unreachable':
      return 'unreachable';
    case 'stale':
      return h.set ? `backup ${formatAge(h.ageMs ?? 0)} old` : 'no backup';
    case 'scheduled-run-failed':
      return 'scheduled run failed';
    case 'scheduled-run-could-not-run':
      return 'deep verification could not run';
    case 'unscheduled':
      return 'no schedule';
    default:
      return '';
  }
}

const ICON: Record<Severity, string> = { error: '$(error)', warning: '$(warning)', ok: '$(pass)', unknown: '$(circle-large-outline)' };

/** The worst state across the hosts, for the status bar. */
export function fleetStatus(hosts: readonly { profile: HostProfile; state: HostState }[], now: Date): FleetStatus {
  const statuses = hosts.map((h) => hostStatus(h.profile, h.state, now));
  if (statuses.length === 0) return { severity: 'none', text: '', label: '', tooltip: '', running: 0, hosts: [] };
  const severity = statuses.reduce<Severity>((w, s) => (RANK[s.severity] > RANK[w] ? s.severity : w), 'unknown');
  const running = statuses.reduce((n, s) => n + s.running.length, 0);
  // The worst state in words; good or not loaded: only the name, or nothing beside running jobs.
  let main = '';
  if (severity === 'error' || severity === 'warning') {
    const worst = statuses.filter((s) => s.severity === severity);
    main = worst.length === 1 ? `${worst[0].name}: ${shortText(worst[0].health)}` : `${worst.length} hosts need attention`;
  }
  const text = [main || !running ? `${ICON[severity]} ${main || 'Kadi Ops'}` : '', running ? `$(sync~spin) ${running} running` : ''].filter(Boolean).join('  ');
  const calm = severity === 'ok' ? 'all good' : 'not loaded yet';
  const label = `Kadi Ops: ${[main || (running ? '' : calm), running ? `${running} running` : ''].filter(Boolean).join(', ')}`;
  const tooltip = ['Kadi Ops', ...statuses.map((s) => s.line), '', 'Click to open the Kadi Ops dashboard.'].join('\n');
  return { severity, text, label, tooltip, running, hosts: statuses };
}
