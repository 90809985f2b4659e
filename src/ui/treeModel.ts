/**
 * The Kadi Hosts tree as plain data: which nodes exist, their labels, descriptions, tooltips and
 * context tags. No `vscode` import, so it is unit-tested in Node; hostsTree.ts maps it to TreeItems.
 */
import { couldNotRunText, lastScheduledJobResult, lastScheduledRunCouldNotRun, lastScheduledRunFailed, staleHours, type ScheduleStatus } from '../backup/schedule';
import type { HostOverview } from '../backup/backupSets';
import { type ArtifactEntry, type BackupSet, clockNote, hostNow, newestGoodSet, partialOrigin } from '../backup/manifest';
import { setState, stateDetail, stateLabel } from '../backup/setState';
import type { HostProfile } from '../config/types';
import { formatAge, formatBytes } from '../core/format';
import { isSetCopy, lacksPassword, type OffsiteSnapshot } from '../offsite/offsite';
import { jobResultLabel, type JobInfo } from '../remote/jobs';

export { jobResultLabel };

export interface SearchIndexView {
  model: string;
  name: string;
  live: boolean;
}

/** The host's last listing of its off-site repository (restic snapshots), kept until the next one. */
export interface OffsiteListing {
  /** When it was listed. */
  at: Date;
  /** Newest first. */
  snapshots?: OffsiteSnapshot[];
  /** Why it could not be listed (the message, for one item in the group). */
  error?: string;
  /** The host was reloaded since: listed again when the Off-site group is next shown. */
  stale?: boolean;
}

export interface HostState {
  /** undefined: never loaded; otherwise the last overview. */
  overview?: HostOverview;
  /** `kadi search ls`, loaded only when the group is opened (the kadi CLI is slow to start). */
  indices?: SearchIndexView[];
  indicesError?: string;
  /** Listed only when the Off-site group is opened (or an off-site command ran): restic asks the repository. */
  offsite?: OffsiteListing;
  offsiteLoading?: boolean;
  error?: string;
  loading?: boolean;
  kadiVersion?: string;
}

export type ModelNode =
  | { kind: 'host'; profile: HostProfile; state: HostState }
  | { kind: 'group'; group: 'backups' | 'jobs' | 'partials' | 'offsite' | 'indices'; profile: HostProfile; state: HostState }
  | { kind: 'index'; profile: HostProfile; index: SearchIndexView }
  /** `offsite`: the snapshot of the host's last off-site listing that holds this set. */
  | { kind: 'set'; profile: HostProfile; set: BackupSet; offsite?: OffsiteSnapshot; /** The listing's (HostOverview.clockOffsetMs). */ clockOffsetMs?: number }
  | { kind: 'snapshot'; profile: HostProfile; snapshot: OffsiteSnapshot }
  | { kind: 'artifact'; profile: HostProfile; set: BackupSet; artifact: ArtifactEntry }
  | { kind: 'job'; profile: HostProfile; job: JobInfo }
  | { kind: 'partial'; profile: HostProfile; name: string; job: string }
  | { kind: 'message'; text: string; severity: 'info' | 'error'; profile?: HostProfile };

export interface NodeView {
  label: string;
  description?: string;
  tooltip?: string;
  icon: string;
  /** ThemeColor id for the icon, e.g. problemsWarningIcon.foreground. */
  color?: string;
  contextValue: string;
  collapsible: boolean;
  id?: string;
}


export { formatAge };

/**
 * Hours after which a host's newest good set is stale, for the tree, the dashboard and the status
 * bar alike: with an installed schedule its longest interval plus a margin (a weekly schedule does
 * not warn daily), else the profile's backupMaxAgeHours (default 26, a daily backup plus slack).
 */
export function staleAfterHours(p: HostProfile, o?: HostOverview): number {
  return staleHours(p, o?.schedule);
}

function scheduleLine(s: ScheduleStatus | undefined): string {
  if (s?.error) return `The stored plan cannot be used (${s.error}): a timer installed for it fails every run. Store it again (kadi-ops schedule <host>).`;
  if (!s || s.state === 'none') return 'No schedule: backups happen only when someone starts them (kadi-ops schedule <host>).';
  if (s.state === 'stored') return `Schedule ${s.calendar} stored but not installed (kadi-ops schedule <host>).`;
  return `Scheduled: ${s.calendar}${s.deepCalendar ? `; deep verification ${s.deepCalendar}` : ''} (${s.mode ?? 'system'} timer${s.timerState ? `, ${s.timerState}` : ''})`;
}

/**
 * Newest set that is not known to be bad. A set dated in the future (made while the host's clock
 * was ahead) is not it: it would make the host look freshly backed up for as long as its date is
 * ahead, whatever runs since (retention does not count it either). NOW: this machine's; sets are
 * judged by the host's clock (hostNow).
 */
export function lastGoodSet(o: HostOverview | undefined, now: Date = new Date()): BackupSet | undefined {
  return o ? newestGoodSet(o.sets, hostNow(o, now)) : undefined;
}

/** How old SET of overview O is at NOW (this machine's), by the host's clock that named it. */
export function setAgeMs(o: { clockOffsetMs?: number } | undefined, set: { time: Date }, now: Date = new Date()): number {
  return hostNow(o, now).getTime() - set.time.getTime();
}


export function runningJob(o: HostOverview | undefined): JobInfo | undefined {
  return o?.jobs.find((j) => j.state === 'running');
}

export function childrenOf(node: ModelNode): ModelNode[] {
  switch (node.kind) {
    case 'host': {
      const { state, profile } = node;
      if (state.error) return [{ kind: 'message', text: state.error, severity: 'error', profile }];
      if (!state.overview) return [];
      const groups: ModelNode[] = [
        { kind: 'group', group: 'backups', profile, state },
        { kind: 'group', group: 'jobs', profile, state },
      ];
      if (state.overview.partials.length > 0) groups.push({ kind: 'group', group: 'partials', profile, state });
      if (profile.offsite) groups.push({ kind: 'group', group: 'offsite', profile, state });
      groups.push({ kind: 'group', group: 'indices', profile, state });
      return groups;
    }
    case 'group': {
      const o = node.state.overview;
      if (!o) return [];
      if (node.group === 'backups') {
        if (o.sets.length === 0) return [{ kind: 'message', text: 'No backups yet', severity: 'info', profile: node.profile }];
        // Marked from the last listing only: showing the sets costs no round trip to the repository.
        const snaps = node.profile.offsite ? node.state.offsite?.snapshots : undefined;
        const clock = o.clockOffsetMs === undefined ? {} : { clockOffsetMs: o.clockOffsetMs };
        return o.sets.map((set) => {
          const snapshot = snaps?.find((s) => s.set === set.name && isSetCopy(s));
          return snapshot ? { kind: 'set', profile: node.profile, set, offsite: snapshot, ...clock } : { kind: 'set', profile: node.profile, set, ...clock };
        });
      }
      if (node.group === 'offsite') return offsiteChildren(node.profile, node.state.offsite);
      if (node.group === 'jobs') return o.jobs.slice(0, 20).map((job) => ({ kind: 'job', profile: node.profile, job }));
      if (node.group === 'indices') {
        if (node.state.indicesError) return [{ kind: 'message', text: node.state.indicesError, severity: 'error', profile: node.profile }];
        return (node.state.indices ?? []).map((index) => ({ kind: 'index', profile: node.profile, index }));
      }
      return o.partials.map((p) => ({ kind: 'partial', profile: node.profile, name: p.name, job: p.job }));
    }
    case 'set':
      return node.set.manifest.artifacts.map((artifact) => ({ kind: 'artifact', profile: node.profile, set: node.set, artifact }));
    default:
      return [];
  }
}

/** The Off-site group's items: the snapshots newest first, or one item saying why there are none. */
function offsiteChildren(profile: HostProfile, listing: OffsiteListing | undefined): ModelNode[] {
  if (!listing) return [];
  if (listing.error) return [{ kind: 'message', text: offsiteErrorText(profile, listing.error), severity: 'error', profile }];
  const snaps = listing.snapshots ?? [];
  if (snaps.length === 0) return [{ kind: 'message', text: 'No off-site snapshots yet (Copy Set Off-site on a backup set)', severity: 'info', profile }];
  return snaps.map((snapshot) => ({ kind: 'snapshot', profile, snapshot }));
}

/**
 * Why the repository could not be listed, in one line: the agent's reason (the last line of its
 * error), and for a host without the repository's password the command that connects it.
 */
export function offsiteErrorText(profile: HostProfile, message: string): string {
  if (lacksPassword(message)) return `${profile.name} has no password for the off-site repository: Set Up Off-site Repository… connects it`;
  const lines = message.split('\n').map((l) => l.trim()).filter(Boolean);
  const last = (lines.at(-1) ?? message).replace(/^ERROR: /, '');
  return `Off-site repository not listed: ${last}`;
}

/** "2026-11-26T06-37-07Z" as "2026-11-26 06:37:07 UTC". */
export function setLabel(name: string): string {
  return name.replace('T', ' ').replace(/-(\d\d)-(\d\d)Z$/, ':$1:$2 UTC');
}

export function viewOf(node: ModelNode, now: Date = new Date()): NodeView {
  switch (node.kind) {
    case 'host':
      return hostView(node.profile, node.state, now);
    case 'group': {
      const o = node.state.overview;
      if (node.group === 'offsite') return offsiteGroupView(node.profile, node.state);
      const label = { backups: 'Backups', jobs: 'Jobs', partials: 'Partial sets', indices: 'Search indices' }[node.group];
      const orphans = node.state.indices?.filter((i) => !i.live).length;
      const count = { backups: o?.sets.length, jobs: o?.jobs.length, partials: o?.partials.length, indices: node.state.indices?.length }[node.group];
      const description = node.group === 'indices' && orphans ? `${count} (${orphans} orphaned)` : count !== undefined ? String(count) : undefined;
      const icon = { backups: 'archive', jobs: 'server-process', partials: 'warning', indices: 'search' }[node.group];
      return { label, description, icon, contextValue: `group;${node.group};`, collapsible: true, id: `${node.profile.name}/${node.group}` };
    }
    case 'index': {
      const i = node.index;
      return {
        label: i.name,
        description: i.live ? `live (alias ${i.model})` : `orphaned ${i.model} index`,
        tooltip: i.live ? `The live ${i.model} index, behind the alias "${i.model}". Never removed.` : `Not behind an alias: left by an interrupted reindex. Safe to remove.`,
        icon: i.live ? 'pass' : 'warning',
        color: i.live ? undefined : 'problemsWarningIcon.foreground',
        contextValue: `index;${i.live ? 'live' : 'orphaned'};`,
        collapsible: false,
        id: `${node.profile.name}/index/${i.name}`,
      };
    }
    case 'set':
      return setView(node.profile, node.set, hostNow(node, now), node.offsite);
    case 'snapshot':
      return snapshotView(node.profile, node.snapshot, now);
    case 'artifact': {
      const a = node.artifact;
      const kind = a.name === 'db.dump' ? 'dbdump' : a.tree ? 'filelist' : a.archiveOf ? 'archive' : 'file';
      const vanished = a.vanished ? `, ${a.vanished} vanished during the backup` : '';
      const detail = a.tocEntries !== undefined ? `${a.tocEntries} TOC entries, ${a.rows ?? '?'} rows` : a.tree ? `${a.files} files, ${formatBytes(a.bytes ?? 0)}${vanished}` : '';
      return {
        label: a.name,
        description: `${formatBytes(a.size)}${detail ? ' · ' + detail : ''}`,
        tooltip: `${a.name}\nsize ${a.size} bytes\nsha256 ${a.sha256}${detail ? '\n' + detail : ''}`,
        icon: kind === 'dbdump' ? 'database' : kind === 'filelist' ? 'list-tree' : 'file-binary',
        contextValue: `artifact;${kind};`,
        collapsible: false,
        id: `${node.profile.name}/${node.set.name}/${a.name}`,
      };
    }
    case 'job': {
      const j = node.job;
      const result = jobResultLabel(j);
      return {
        label: `${j.kind} ${j.started.replace('T', ' ').replace('Z', ' UTC')}`,
        description: `${result} · ${j.operator}@${j.client}`,
        tooltip: `Job ${j.id}\n${j.command}\nby ${j.operator}@${j.client}\nstarted ${j.started}\n${result}`,
        icon: j.state === 'running' ? 'sync~spin' : result === 'succeeded' ? 'pass' : result === 'cancelled' ? 'circle-slash' : result === 'could not run' ? 'warning' : 'error',
        color: j.state === 'running' || result === 'succeeded' || result === 'cancelled' ? undefined : result === 'could not run' ? 'problemsWarningIcon.foreground' : 'problemsErrorIcon.foreground',
        contextValue: `job;${j.state};`,
        collapsible: false,
        id: `${node.profile.name}/job/${j.id}`,
      };
    }
    case 'partial':
      return { label: node.name, description: `left by ${partialOrigin(node)} — not a backup`, icon: 'warning', color: 'problemsWarningIcon.foreground', contextValue: 'partial;', collapsible: false, id: `${node.profile.name}/${node.name}` };
    case 'message':
      return { label: node.text, tooltip: node.text, icon: node.severity === 'error' ? 'error' : 'info', color: node.severity === 'error' ? 'problemsErrorIcon.foreground' : undefined, contextValue: 'message;', collapsible: false };
  }
}

function hostView(p: HostProfile, state: HostState, now: Date): NodeView {
  const o = state.overview;
  const good = lastGoodSet(o, now);
  const job = runningJob(o);
  const tags = ['host', o ? 'loaded' : state.error ? 'error' : 'unloaded', job ? 'busy' : 'idle', p.redis.enabled ? 'redis' : '', p.offsite ? 'offsiterepo' : ''];
  const parts: string[] = [];
  // The live version when this session has read it (kadiVersion), else the version the newest set recorded.
  const version = state.kadiVersion ?? o?.sets[0]?.manifest.kadiVersion;
  if (version) parts.push(`Kadi ${version}`);
  let stale = false;
  let tooOld = false;
  if (o) {
    if (good) {
      const age = setAgeMs(o, good, now);
      tooOld = age > staleAfterHours(p, o) * 3600_000;
      stale = tooOld;
      parts.push(`last backup ${formatAge(age)} ago`);
    } else {
      stale = true;
      parts.push('no backup');
    }
  }
  if (o?.schedule && o.schedule.state !== 'installed') {
    // Nothing makes backups when nobody is watching: said, and warned about.
    parts.push('no schedule');
    stale = true;
  }
  const runFailed = lastScheduledRunFailed(o?.schedule);
  if (runFailed) parts.push('last scheduled run failed');
  // Not a failure: a warning that names the fix (tooltip).
  const couldNotRun = lastScheduledRunCouldNotRun(o?.schedule);
  if (couldNotRun) parts.push('scheduled deep verification could not run');
  if (job) parts.push(`${job.kind} by ${job.operator} since ${job.started.slice(11, 16)}`);
  if (state.error) parts.push('unreachable');
  const tooltip = [`${p.name} — ${p.ssh.user}@${p.ssh.hostName}:${p.ssh.port}${p.runAs === 'sudo' ? ` (sudo -u ${p.kadi.user})` : ''}`, `Backups in ${p.backupDir}`];
  if (version) tooltip.push(state.kadiVersion ? `Kadi ${version}` : `Kadi ${version} at the newest backup (Check Host reads the running version)`);
  const sched = o?.schedule;
  if (tooOld) tooltip.push(`Newest good backup is older than ${Math.round(staleAfterHours(p, o))} h${sched?.state === 'installed' ? ' (the schedule\'s interval plus a margin)' : ''}.`);
  if (sched?.staleUnits?.length) tooltip.push(`Units left over from an earlier schedule still run: ${sched.staleUnits.join(', ')} (kadi-ops schedule <host>).`);
  if (sched) tooltip.push(scheduleLine(sched));
  if (p.offsite) tooltip.push(`Off-site copies in ${p.offsite.repository}`);
  if (sched?.state === 'installed' && sched.next) tooltip.push(`Next scheduled run ${sched.next}`);
  if (sched?.lastJob) tooltip.push(`Last scheduled run ${sched.lastJob.started}: ${lastScheduledJobResult(sched)}`);
  if (couldNotRun) tooltip.push(`${couldNotRunText(couldNotRun).replace(/^t/, 'T')}${sched?.verifyUnit?.exited ? ` (${sched.verifyUnit.exited})` : ''}.`);
  const clock = clockNote(o);
  if (clock) tooltip.push(`Note: ${clock}.`);
  if (state.error) tooltip.push(state.error);
  return {
    label: p.name,
    description: state.loading ? 'loading…' : parts.join(' · '),
    tooltip: tooltip.join('\n'),
    // A failed scheduled run is an error, as in the status bar and the dashboard.
    icon: job ? 'sync~spin' : state.error ? 'vm-outline' : runFailed ? 'error' : stale || couldNotRun ? 'warning' : 'vm-active',
    color: state.error || runFailed ? 'problemsErrorIcon.foreground' : stale || couldNotRun ? 'problemsWarningIcon.foreground' : undefined,
    contextValue: tags.filter(Boolean).join(';') + ';',
    collapsible: true,
    id: `host/${p.name}`,
  };
}

/** NOW: by the host's clock. */
function setView(p: HostProfile, s: BackupSet, now: Date, offsite?: OffsiteSnapshot): NodeView {
  const m = s.manifest;
  const state = setState(s.verify);
  // offsiterepo: the host has a repository to copy the set to (not that the set is there).
  const tags = ['backup', s.status, s.pinned ? 'pinned' : 'unpinned', s.preRestore ? 'prerestore' : '', p.offsite ? 'offsiterepo' : ''];
  const marks = [stateLabel(state), s.pinned ? 'pinned' : '', s.preRestore ? 'pre-restore' : '', offsite ? 'off-site' : ''].filter(Boolean).join(', ');
  const tooltip = [
    `Backup set ${s.name} of ${m.profile}${m.hostname ? ` (made on host ${m.hostname})` : ''}`,
    `Kadi ${m.kadiVersion ?? '?'}, schema ${m.alembicRevision ?? '?'}, PostgreSQL ${m.postgres.serverMajor ?? '?'}`,
    `Started ${m.startedAt ?? '?'}, ended ${m.endedAt ?? '?'}`,
    `Size ${formatBytes(s.size)}${m.trees?.storage ? `, storage ${m.trees.storage.files} files (${m.trees.storage.newFiles} new)` : ''}`,
    ...stateDetail(state),
    ...(offsite ? [`Off-site: snapshot ${offsite.short} of ${offsite.time.slice(0, 19).replace('T', ' ')} (as the repository was last listed)`] : []),
  ];
  return {
    label: setLabel(s.name),
    description: `${formatBytes(s.size)} · ${formatAge(now.getTime() - s.time.getTime())} ago · ${marks}`,
    tooltip: tooltip.join('\n'),
    icon: { verified: 'verified', damaged: 'error', 'not-run': 'warning', unverified: 'archive' }[state.kind],
    color: { verified: 'testing.iconPassed', damaged: 'problemsErrorIcon.foreground', 'not-run': 'problemsWarningIcon.foreground', unverified: undefined }[state.kind],
    contextValue: tags.filter(Boolean).join(';') + ';',
    collapsible: true,
    id: `${p.name}/${s.name}`,
  };
}

function offsiteGroupView(p: HostProfile, state: HostState): NodeView {
  const l = state.offsite;
  const description = state.offsiteLoading ? 'listing…' : l?.error ? 'not listed' : l?.snapshots ? String(l.snapshots.length) : undefined;
  return {
    label: 'Off-site',
    description,
    tooltip: `Snapshots in the restic repository ${p.offsite?.repository ?? '?'}${l ? `\nListed ${l.at.toISOString().replace(/\.\d+Z$/, 'Z')}` : ''}`,
    icon: 'cloud',
    color: l?.error ? 'problemsErrorIcon.foreground' : undefined,
    contextValue: 'group;offsite;',
    collapsible: true,
    id: `${p.name}/offsite`,
  };
}

function snapshotView(p: HostProfile, s: OffsiteSnapshot, now: Date): NodeView {
  const t = Date.parse(s.time);
  const age = Number.isFinite(t) ? `${formatAge(now.getTime() - t)} ago` : s.time;
  const tooltip = [
    `Off-site snapshot ${s.short} (${s.id})`,
    s.set ? `Backup set ${s.set}` : 'No set tag: not made by Kadi Ops, not restorable from here',
    ...(s.incomplete ? ['INCOMPLETE: restic saved it without every file of the set; not a copy of it, removed by the next push or forget'] : []),
    `Copied ${s.time} on host ${s.hostname}`,
    `Kadi ${s.kadiVersion ?? '?'}, schema ${s.schemaRevision ?? '?'}`,
    `Tags: ${s.tags.join(', ')}`,
  ];
  return {
    label: s.set ? setLabel(s.set) : `snapshot ${s.short}`,
    description: `${s.incomplete ? 'incomplete · ' : ''}${age} · Kadi ${s.kadiVersion ?? '?'} · from ${s.hostname}`,
    tooltip: tooltip.join('\n'),
    icon: s.incomplete ? 'warning' : 'cloud',
    contextValue: `snapshot;${s.set && !s.incomplete ? 'set' : 'noset'};`,
    collapsible: false,
    id: `${p.name}/offsite/${s.id}`,
  };
}
