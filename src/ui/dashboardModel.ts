/**
 * The Kadi Ops dashboard as plain data: one row per configured host (newest good set, its
 * verification, backup disk and when it fills, jobs, and the features later issues add), each
 * host's charts from the manifests of its sets, and the messages the webview may send. No `vscode`
 * import, so it is unit-tested in Node; dashboardHtml.ts renders it, dashboard.ts shows it.
 */
import { couldNotRunText, lastScheduledJobResult, lastScheduledRunCouldNotRun, lastScheduledRunFailed, type ScheduleStatus } from '../backup/schedule';
import { forecastFill, setGrowthBytes, type FillForecast } from '../backup/diskForecast';
import { hostNow, type BackupSet } from '../backup/manifest';
import { setState, stateDetail, stateLabel, type SetState } from '../backup/setState';
import type { HostProfile } from '../config/types';
import { formatBytes } from '../core/format';
import { isSetCopy } from '../offsite/offsite';
import { healthText, hostStatus, runningText, type HostHealth, type Severity } from './fleetStatus';
import { formatAge, jobResultLabel, lastGoodSet, offsiteErrorText, setAgeMs, setLabel, staleAfterHours, type HostState } from './treeModel';

export { setLabel };

/** The backup disk's free space as the host last reported it (discovery's facts). */
export interface DiskReading {
  /** When it was measured (or attempted). */
  at: Date;
  freeBytes?: number;
  sizeBytes?: number;
  /** Why it could not be read. */
  error?: string;
  /** The newest set when it was measured: a newer set means the reading is out of date. */
  newestSet?: string;
}

export interface HostInput {
  profile: HostProfile;
  state: HostState;
  disk?: DiskReading;
  /** The disk reading is being taken. */
  diskLoading?: boolean;
}

export interface NewestSetCell {
  name: string;
  /** "2026-11-26 06:37:07 UTC" */
  when: string;
  age: string;
  size: string;
  stale: boolean;
  state: SetState;
  stateLabel: string;
  stateDetail: string[];
}

export interface DiskCell {
  /** "12.0 GiB free of 100.0 GiB", "not measured yet", "could not be read". */
  text: string;
  /** The forecast in words: "full in about 12 days (2026-12-12)", "not enough history (2 sets; 3 needed)". */
  forecastText: string;
  /** Longer account for a tooltip: how the forecast was made and what it assumes. */
  detail: string;
  forecast: FillForecast;
  /** The disk fills within FILL_WARNING_DAYS at the current rate. */
  warning: boolean;
}

/**
 * A feature of a host that comes with a later issue (schedules, off-site copies) or is there: the
 * row keeps a cell for each, so adding one is a new entry here, not a new row shape.
 */
export interface FeatureCell {
  id: 'schedule' | 'offsite';
  title: string;
  /** 'absent': not set up (or not built yet); the rest for when it is. */
  state: 'absent' | 'ok' | 'warning' | 'error';
  text: string;
  /** More for a tooltip (a listing's time, an error's whole message). */
  detail?: string;
}

export interface ChartPoint {
  /** The set's time, ms since the epoch. */
  t: number;
  v: number;
  /** The set's name, for the point's tooltip. */
  set: string;
}

export type ChartColor = 'blue' | 'orange' | 'green' | 'purple' | 'red' | 'yellow';

export interface ChartSeries {
  name: string;
  color: ChartColor;
  points: ChartPoint[];
}

export interface Chart {
  id: 'size' | 'new' | 'dump' | 'duration' | 'files';
  title: string;
  unit: 'bytes' | 'seconds' | 'count';
  /** Lines for a quantity that persists (sizes, counts), bars for one per set (new bytes). */
  kind: 'line' | 'bar';
  series: ChartSeries[];
}

export interface HostRow {
  name: string;
  /** "alice@kadi.example.org:22 (sudo -u kadi)" */
  target: string;
  severity: Severity;
  health: HostHealth;
  healthText: string;
  loading: boolean;
  error?: string;
  setCount: number;
  newestGood?: NewestSetCell;
  /** The newest set when it is not the newest good one (it failed verification). */
  newestDamaged?: { name: string; label: string };
  disk: DiskCell;
  running: string[];
  lastJob?: { text: string; failed: boolean };
  features: FeatureCell[];
  charts: Chart[];
  /** What the row's buttons act on; undefined: the button is disabled. */
  actions: { backupNow: boolean; verifySet?: string; refresh: boolean; showOutput: boolean };
}

export interface DashboardModel {
  generatedAt: Date;
  rows: HostRow[];
  /** Configuration problems (invalid host profiles), shown above the rows. */
  errors: string[];
}

/** A forecast nearer than this many days is shown as a warning. */
export const FILL_WARNING_DAYS = 14;

function day(d: Date): string {
  return d.toISOString().slice(0, 10);
}

export function forecastText(f: FillForecast): string {
  switch (f.kind) {
    case 'unknown':
      return 'no forecast (free space not known)';
    case 'not-enough-history':
      if (f.sets >= f.needed && f.spanDays !== undefined) return `not enough history (sets span ${formatAge(f.spanDays * 86_400_000)}; ${f.neededDays ?? 1} day needed)`;
      return `not enough history (${f.sets} set${f.sets === 1 ? '' : 's'}; ${f.needed} needed)`;
    case 'not-filling':
      return 'not filling';
    case 'fills':
      if (f.days < 1) return f.days === 0 ? 'full' : 'full within a day';
      if (f.days > 3650) return 'not within 10 years';
      return `full in about ${Math.round(f.days)} day${Math.round(f.days) === 1 ? '' : 's'} (${day(f.at)})`;
  }
}

export function diskCell(sets: readonly BackupSet[], disk: DiskReading | undefined, loading: boolean): DiskCell {
  if (!disk || disk.error || disk.freeBytes === undefined) {
    const text = loading ? 'measuring…' : disk?.error ? 'could not be read' : disk ? 'not reported by the host' : 'not measured yet';
    const forecast: FillForecast = { kind: 'unknown' };
    return { text, forecastText: forecastText(forecast), detail: disk?.error ?? 'The free space comes from the host (Refresh reads it).', forecast, warning: false };
  }
  const forecast = forecastFill(sets, disk.freeBytes, disk.at);
  const of = disk.sizeBytes ? ` of ${formatBytes(disk.sizeBytes)}` : '';
  const measured = `Measured ${disk.at.toISOString().replace(/\.\d+Z$/, 'Z')}${disk.newestSet ? `, after set ${disk.newestSet}` : ''}.`;
  const how =
    forecast.kind === 'fills' || forecast.kind === 'not-filling'
      ? `The ${forecast.sets} sets added ${formatBytes(Math.max(0, forecast.bytesPerDay))} a day (least-squares fit of what each set wrote: new files and artifacts). Assumes nothing is pruned: retention frees space.`
      : forecast.kind === 'not-enough-history'
        ? `A forecast needs at least ${forecast.needed} sets, at least ${forecast.neededDays ?? 1} day from the oldest to the newest.`
        : '';
  return {
    text: `${formatBytes(disk.freeBytes)} free${of}`,
    forecastText: forecastText(forecast),
    detail: [measured, how].filter(Boolean).join(' '),
    forecast,
    warning: forecast.kind === 'fills' && forecast.days < FILL_WARNING_DAYS,
  };
}

/** The set's backup duration in seconds (manifest endedAt - startedAt), or undefined when unknown. */
export function durationSeconds(s: BackupSet): number | undefined {
  const a = Date.parse(s.manifest.startedAt ?? '');
  const b = Date.parse(s.manifest.endedAt ?? '');
  return Number.isFinite(a) && Number.isFinite(b) && b >= a ? (b - a) / 1000 : undefined;
}

/** Files in the storage tree the set holds: the copied tree's count, or the archive's. */
export function storageFiles(s: BackupSet): number | undefined {
  const m = s.manifest;
  if (m.trees?.storage && Number.isFinite(m.trees.storage.files)) return m.trees.storage.files;
  const archive = m.artifacts.find((a) => a.archiveOf === 'storage');
  return archive?.files;
}

/** The charts of a host from its sets' manifests (any order in; oldest first in the series). */
export function chartsFor(sets: readonly BackupSet[]): Chart[] {
  const sorted = [...sets].sort((a, b) => a.time.getTime() - b.time.getTime());
  const series = (name: string, color: ChartColor, value: (s: BackupSet) => number | undefined): ChartSeries => ({
    name,
    color,
    points: sorted.flatMap((s) => {
      const v = value(s);
      return v === undefined || !Number.isFinite(v) ? [] : [{ t: s.time.getTime(), v, set: s.name }];
    }),
  });
  // Set size and new bytes differ by orders of magnitude (a repeat set adds little): two charts, not one.
  return [
    { id: 'size', title: 'Set size', unit: 'bytes', kind: 'line', series: [series('set size', 'blue', (s) => s.size)] },
    { id: 'new', title: 'New bytes per set', unit: 'bytes', kind: 'bar', series: [series('new bytes', 'orange', (s) => setGrowthBytes(s.manifest))] },
    { id: 'dump', title: 'Database dump size', unit: 'bytes', kind: 'line', series: [series('db.dump', 'green', (s) => s.manifest.artifacts.find((a) => a.name === 'db.dump')?.size)] },
    { id: 'duration', title: 'Backup duration', unit: 'seconds', kind: 'line', series: [series('duration', 'purple', durationSeconds)] },
    { id: 'files', title: 'Storage files', unit: 'count', kind: 'line', series: [series('files', 'yellow', storageFiles)] },
  ];
}

/** "3 h ago" from a job's start time (ISO), or the time itself when it cannot be read. */
function jobAge(started: string, now: Date): string {
  const t = Date.parse(started);
  return Number.isFinite(t) ? `${formatAge(now.getTime() - t)} ago` : started;
}

function target(p: HostProfile): string {
  return `${p.ssh.user}@${p.ssh.hostName}:${p.ssh.port}${p.runAs === 'sudo' ? ` (sudo -u ${p.kadi.user})` : ''}`;
}

/** The host's schedule (its calendar, next run and the last run's result) and its off-site copy. */
function features(profile: HostProfile, state: HostState, now: Date): FeatureCell[] {
  return [scheduleCell(state.overview?.schedule), offsiteCell(profile, state, now)];
}

/**
 * The newest off-site snapshot (its set and how long ago it was copied) from the host's last
 * listing, the one the tree made: the dashboard asks the repository no more often than that.
 */
export function offsiteCell(profile: HostProfile, state: HostState, now: Date): FeatureCell {
  const cell = { id: 'offsite' as const, title: 'Off-site copy' };
  if (!profile.offsite) return { ...cell, state: 'absent', text: 'not configured' };
  const l = state.offsite;
  if (!l) return { ...cell, state: 'absent', text: state.offsiteLoading ? 'listing…' : 'not listed yet', detail: `Repository ${profile.offsite.repository}` };
  const listed = `Repository ${profile.offsite.repository}, listed ${l.at.toISOString().replace(/\.\d+Z$/, 'Z')}.`;
  if (l.error) return { ...cell, state: 'error', text: 'could not be listed', detail: `${listed} ${offsiteErrorText(profile, l.error)}` };
  // This host's newest: another host sharing the repository must not make this one look fresh.
  const newest = l.snapshots?.find(isSetCopy);
  if (!newest) return { ...cell, state: 'warning', text: 'no snapshot yet', detail: listed };
  const t = Date.parse(newest.time);
  const age = Number.isFinite(t) ? `, ${formatAge(now.getTime() - t)} ago` : '';
  const what = newest.set ? setLabel(newest.set) : `snapshot ${newest.short}`;
  return { ...cell, state: 'ok', text: `${what}${age}`, detail: `${listed} ${l.snapshots?.length} snapshot(s); the newest, ${newest.short}, copied ${newest.time} from ${newest.hostname}.` };
}

function scheduleCell(s: ScheduleStatus | undefined): FeatureCell {
  const cell = { id: 'schedule' as const, title: 'Schedule' };
  if (s?.error) return { ...cell, state: 'error', text: 'stored plan unusable', detail: `${s.error}. A timer installed for it fails every run: store it again (kadi-ops schedule <host>).` };
  if (!s || s.state === 'none') return { ...cell, state: s ? 'warning' : 'absent', text: 'no schedule' };
  if (s.state === 'stored') return { ...cell, state: 'warning', text: `${s.calendar} (not installed)` };
  const next = s.next ? `; next ${s.next}` : '';
  if (lastScheduledRunFailed(s)) return { ...cell, state: 'error', text: `${s.calendar}; last run failed${s.unit?.exited ? ` (${s.unit.exited})` : ''}${next}` };
  const couldNotRun = lastScheduledRunCouldNotRun(s);
  if (couldNotRun) return { ...cell, state: 'warning', text: `${s.calendar}; ${couldNotRunText(couldNotRun)}${next}` };
  const last = s.lastJob?.status === '0' ? `; last run ${s.lastJob.started} ${lastScheduledJobResult(s)}` : '';
  return { ...cell, state: 'ok', text: `${s.calendar}${last}${next}` };
}

export function hostRow(input: HostInput, now: Date): HostRow {
  const { profile, state } = input;
  const o = state.overview;
  const sets = o?.sets ?? [];
  const status = hostStatus(profile, state, now);
  const good = lastGoodSet(o, now);
  let newestGood: NewestSetCell | undefined;
  if (good) {
    const st = setState(good.verify);
    const ageMs = setAgeMs(o, good, now);
    newestGood = {
      name: good.name,
      when: setLabel(good.name),
      age: `${formatAge(ageMs)} ago`,
      size: formatBytes(good.size),
      stale: ageMs > staleAfterHours(profile, o) * 3600_000,
      state: st,
      stateLabel: stateLabel(st),
      stateDetail: stateDetail(st),
    };
  }
  const newest = sets[0];
  const newestDamaged = newest && newest !== good ? { name: newest.name, label: stateLabel(setState(newest.verify)) } : undefined;
  const last = o?.jobs.find((j) => j.state !== 'running');
  const lastResult = last ? jobResultLabel(last) : undefined;
  return {
    name: profile.name,
    target: target(profile),
    severity: status.severity,
    health: status.health,
    healthText: healthText(status.health),
    loading: state.loading === true,
    ...(state.error ? { error: state.error } : {}),
    setCount: sets.length,
    ...(newestGood ? { newestGood } : {}),
    ...(newestDamaged ? { newestDamaged } : {}),
    disk: diskCell(sets, input.disk, input.diskLoading === true),
    running: status.running.map(runningText),
    ...(last && lastResult ? { lastJob: { text: `${last.kind} ${lastResult}, ${jobAge(last.started, hostNow(o, now))}`, failed: lastResult === 'died' || lastResult.startsWith('failed') } } : {}),
    features: features(profile, state, now),
    charts: chartsFor(sets),
    actions: { backupNow: true, ...(newest ? { verifySet: newest.name } : {}), refresh: true, showOutput: true },
  };
}

export function dashboardModel(hosts: readonly HostInput[], errors: readonly string[], now: Date): DashboardModel {
  return { generatedAt: now, rows: hosts.map((h) => hostRow(h, now)), errors: [...errors] };
}

/** What the webview may ask for: the tree's commands on a host, or a refresh (of one host or all). */
export type DashboardAction =
  | { type: 'backupNow'; host: string }
  | { type: 'verify'; host: string }
  | { type: 'showOutput'; host: string }
  | { type: 'refresh'; host?: string };

const HOST_ACTIONS = new Set(['backupNow', 'verify', 'showOutput']);

/**
 * A message from the webview, checked before anything acts on it: an object with a known `type`
 * and, where one is needed, the name of a configured host. Anything else is undefined. The webview
 * shows only our own HTML, but a message is still input: it names what to run and where.
 */
export function parseDashboardMessage(msg: unknown, knownHosts: readonly string[]): DashboardAction | undefined {
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return undefined;
  const { type, host } = msg as Record<string, unknown>;
  if (typeof type !== 'string') return undefined;
  const known = typeof host === 'string' && knownHosts.includes(host) ? host : undefined;
  if (HOST_ACTIONS.has(type)) return known ? { type: type as 'backupNow' | 'verify' | 'showOutput', host: known } : undefined;
  if (type === 'refresh') {
    if (host === undefined) return { type };
    return known ? { type, host: known } : undefined;
  }
  return undefined;
}
