/**
 * Backups the host runs on its own: the profile's schedule stored as the host's plan and installed
 * as systemd units by the agent (schedule.py), and what the client shows about it — the schedule's
 * state, its next and last run, the last scheduled job's result, and when the newest good set is
 * stale given the schedule (its longest interval plus a margin) rather than a fixed 26 hours.
 */
import { agentLinkPath, checkAgent, ensureAgent, parseKeyValues, runAgent } from '../remote/agent';
import { jobResultLabel } from '../remote/jobs';
import { RemoteCommandError, type RemoteHost } from '../remote/remoteHost';
import type { HostProfile } from '../config/types';
import { planFromProfile } from './hostPlan';
import type { HostPlan } from '../core/plan';

export interface ScheduleStatus {
  /** none: no plan or no schedule in it; stored: the plan has one but no timer is installed. */
  state: 'none' | 'stored' | 'installed';
  /** With state none: why the stored plan cannot be used (a timer installed for it fails every run). */
  error?: string;
  mode?: 'system' | 'user';
  calendar?: string;
  deepCalendar?: string;
  /** The longest gap between two runs, in seconds (0: unknown). */
  intervalSeconds?: number;
  delaySeconds?: number;
  timerState?: string;
  next?: string;
  lastTrigger?: string;
  lastJob?: { id: string; kind: string; started: string; status: string };
  /** systemd's record of the service's last run (also one that failed before its job started). */
  unit?: { result: string; exited: string; state: string };
  /** The same for the deep-verification service; status: its exit status (3: the deep part could not run). */
  verifyUnit?: { result: string; exited: string; state: string; status?: string };
  /** Why the newest scheduled deep verification could not run (its job's could_not_run= line), and the fix. */
  verifyCouldNotRun?: { job: string; why?: string; fix?: string };
  /** Units of this backup directory under another profile name: they still run. */
  staleUnits?: string[];
}

export function parseScheduleStatus(text: string): ScheduleStatus {
  const kv = parseKeyValues(text);
  const state = kv.get('schedule');
  if (state !== 'installed' && state !== 'stored') {
    // A stored plan the host cannot use (edited by hand, damaged): every run of an installed timer fails.
    const error = kv.get('schedule_error');
    return error ? { state: 'none', error } : { state: 'none' };
  }
  const num = (k: string): number | undefined => (kv.get(k) !== undefined && /^\d+$/.test(kv.get(k) ?? '') ? Number(kv.get(k)) : undefined);
  const s: ScheduleStatus = { state, mode: kv.get('mode') === 'user' ? 'user' : 'system', calendar: kv.get('calendar') };
  const opt: [keyof ScheduleStatus, string | number | undefined][] = [
    ['deepCalendar', kv.get('deep_calendar')],
    ['intervalSeconds', num('interval')],
    ['delaySeconds', num('delay')],
    ['timerState', kv.get('timer_state')],
    ['next', kv.get('next') || undefined],
    ['lastTrigger', kv.get('last_trigger') || undefined],
  ];
  for (const [k, v] of opt) if (v !== undefined) (s as unknown as Record<string, unknown>)[k] = v;
  if (kv.get('unit_result') !== undefined) s.unit = { result: kv.get('unit_result') ?? '', exited: kv.get('unit_exited') ?? '', state: kv.get('unit_state') ?? '' };
  if (kv.get('verify_unit_result') !== undefined) {
    s.verifyUnit = { result: kv.get('verify_unit_result') ?? '', exited: kv.get('verify_unit_exited') ?? '', state: kv.get('verify_unit_state') ?? '' };
    if (kv.get('verify_unit_status')) s.verifyUnit.status = kv.get('verify_unit_status');
  }
  const verifyJob = kv.get('verify_job');
  if (verifyJob) {
    s.verifyCouldNotRun = { job: verifyJob };
    if (kv.get('verify_could_not_run')) s.verifyCouldNotRun.why = kv.get('verify_could_not_run');
    if (kv.get('verify_could_not_run_fix')) s.verifyCouldNotRun.fix = kv.get('verify_could_not_run_fix');
  }
  if (kv.all('stale_unit').length > 0) s.staleUnits = kv.all('stale_unit');
  const lastJob = kv.get('last_job');
  if (lastJob) s.lastJob = { id: lastJob, kind: kv.get('last_kind') ?? '', started: kv.get('last_started') ?? '', status: kv.get('last_status') ?? '' };
  return s;
}

/**
 * Hours after which the newest good set is stale: with an installed schedule whose interval the
 * host could tell, that interval plus its random delay plus a margin (a quarter of the interval,
 * at least an hour: a backup takes time); otherwise the profile's backupMaxAgeHours.
 */
export function staleHours(p: HostProfile, s: ScheduleStatus | undefined): number {
  if (s?.state === 'installed' && s.intervalSeconds) {
    const margin = Math.max(3600, s.intervalSeconds / 4);
    return (s.intervalSeconds + (s.delaySeconds ?? 0) + margin) / 3600;
  }
  return p.backupMaxAgeHours;
}

/**
 * The last scheduled run failed: systemd says the backup (or the deep-verification) service's last
 * run did not succeed (this also covers a run that failed before its job started), or else the
 * last scheduled job's exit status is neither 0 nor running. A deep verification whose deep part
 * could not run (lastScheduledRunCouldNotRun) is not a failure.
 */
export function lastScheduledRunFailed(s: ScheduleStatus | undefined): boolean {
  if (s?.verifyUnit && s.verifyUnit.state !== 'activating' && s.verifyUnit.result !== 'success' && !verifyCouldNotRun(s)) return true;
  if (s?.unit && s.unit.state !== 'activating') return s.unit.result !== 'success';
  const st = s?.lastJob?.status;
  return st !== undefined && st !== '' && st !== '0' && st !== 'running' && !(st === COULD_NOT_RUN_STATUS && s?.lastJob?.kind === 'verify');
}

const COULD_NOT_RUN_STATUS = '3';

/** systemd's record of the deep-verification service: its last run ended with the agent's "could not run" (exit status 3). */
function verifyCouldNotRun(s: ScheduleStatus): boolean {
  const v = s.verifyUnit;
  return v !== undefined && v.state !== 'activating' && v.result === 'exit-code' && v.status === COULD_NOT_RUN_STATUS;
}

/**
 * The last scheduled deep verification could not run its deep part (no throwaway cluster and no
 * CREATEDB): neither a success nor a failure, a warning with why and the fix (from its job's log).
 */
export function lastScheduledRunCouldNotRun(s: ScheduleStatus | undefined): { why: string; fix?: string } | undefined {
  if (!s || !verifyCouldNotRun(s)) return undefined;
  const c = s.verifyCouldNotRun;
  return { why: c?.why ?? 'the deep verification could not run', ...(c?.fix ? { fix: c.fix } : {}) };
}

/** "the scheduled deep verification could not run: WHY. Fix: FIX", for a tooltip, a cell or a status line. */
export function couldNotRunText(c: { why: string; fix?: string }): string {
  return `the scheduled deep verification could not run: ${c.why.replace(/^deep verification: /, '')}${c.fix ? `. Fix: ${c.fix}` : ''}`;
}

/** How the last scheduled job ended, as the Jobs list says it ("succeeded", "failed (1)", "cancelled", "running"). */
export function lastScheduledJobResult(s: ScheduleStatus): string | undefined {
  const j = s.lastJob;
  return j && jobResultLabel({ state: j.status === 'running' ? 'running' : 'finished', status: j.status, kind: j.kind });
}

/** The plan a schedule runs: the profile with its schedule, retention and monitoring; no facts (found at run time). */
export function scheduledPlan(p: HostProfile): HostPlan {
  if (!p.schedule) throw new Error(`${p.name} has no schedule: add "schedule": { "calendar": "*-*-* 02:30:00" } to its profile.`);
  const { retention, ...schedule } = p.schedule;
  return {
    ...planFromProfile(p, retention ? { retention } : {}),
    schedule,
    ...(p.monitoring && Object.keys(p.monitoring).length > 0 ? { monitoring: { ...p.monitoring } } : {}),
  };
}

/**
 * The agent the units run: its stable link (installed and checked by ensureAgent), never a content-hash
 * file, so that the units root installed stay current when Kadi Ops (and with it the agent) is upgraded.
 */
async function unitAgent(host: RemoteHost): Promise<string> {
  await ensureAgent(host);
  return agentLinkPath(host.profile.backupDir);
}

export async function scheduleStatus(host: RemoteHost): Promise<ScheduleStatus> {
  return parseScheduleStatus((await checkAgent(host, `Reading the schedule of ${host.profile.name}`, 'schedule-status', [host.profile.backupDir])).stdout);
}

async function storePlan(host: RemoteHost, profile: HostProfile): Promise<void> {
  await checkAgent(host, `Storing the plan on ${profile.name}`, 'plan-store', [profile.backupDir], { stdin: JSON.stringify(scheduledPlan(profile)) });
}

export interface InstallResult {
  /** System units differ from the plan's, are missing or stale: root must run the script (rootScript). */
  needsRoot: boolean;
  units: string[];
  differs: string[];
  stale: string[];
  nextBackup?: string;
  nextVerify?: string;
}

/**
 * Stores the plan (what the timer runs) and installs the units: user units directly; system units
 * are root's (a unit file the Kadi user could write would run anything as root), so this only
 * checks that root installed exactly the plan's ones. PROFILE: the profile as it is now (a pooled
 * connection may carry the one it was opened with).
 */
export async function installSchedule(host: RemoteHost, profile: HostProfile = host.profile): Promise<InstallResult> {
  const agentPath = await unitAgent(host);
  await storePlan(host, profile);
  const r = await runAgent(host, 'schedule-install', [profile.backupDir, agentPath]);
  if (r.code !== 0) throw new RemoteCommandError(`Installing the schedule on ${profile.name}`, r);
  const kv = parseKeyValues(r.stdout);
  return {
    needsRoot: kv.get('needs_root') === 'yes',
    units: kv.all('unit'),
    differs: kv.all('differs'),
    stale: kv.all('stale'),
    ...(kv.get('next_backup') ? { nextBackup: kv.get('next_backup') } : {}),
    ...(kv.get('next_verify') ? { nextVerify: kv.get('next_verify') } : {}),
  };
}

/** The script root runs on the host (sh) to install or update the system units, or to remove them; every unit's text is in it. */
export async function rootScript(host: RemoteHost, profile: HostProfile = host.profile, remove = false): Promise<string> {
  const agentPath = await unitAgent(host);
  if (!remove) await storePlan(host, profile);
  return (await checkAgent(host, `Writing the root script for ${profile.name}`, 'schedule-root-script', [profile.backupDir, agentPath, ...(remove ? ['remove'] : [])])).stdout;
}

/** Removes user units; for system units says that root must (needsRoot). */
export async function removeSchedule(host: RemoteHost): Promise<{ needsRoot: boolean }> {
  const r = await checkAgent(host, `Removing the schedule of ${host.profile.name}`, 'schedule-remove', [host.profile.backupDir]);
  return { needsRoot: parseKeyValues(r.stdout).get('needs_root') === 'yes' };
}

/** The unit files the profile's schedule makes, without storing or changing anything: { name: text }. */
export async function scheduleUnits(host: RemoteHost, profile: HostProfile = host.profile): Promise<Record<string, string>> {
  const agentPath = await unitAgent(host);
  const r = await checkAgent(host, `Reading the units of ${profile.name}`, 'schedule-units', [profile.backupDir, agentPath], { stdin: JSON.stringify(scheduledPlan(profile)) });
  return JSON.parse(r.stdout) as Record<string, string>;
}
