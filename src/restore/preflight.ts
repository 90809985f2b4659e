/**
 * The restore preflight: everything that decides whether and how a set can be restored, checked
 * before anything is touched and returned as a plan the operator confirms. Blockers make
 * startRestore refuse; warnings are shown with the plan.
 */
import { backupPlan, BackupRefusedError, listSets, startVerify } from '../backup/backupSets';
import { hostNow, latestSet, type BackupSet, type VerifyRecord } from '../backup/manifest';
import { MemorySink, teeSink, type OutputSink } from '../core/sink';
import { relativePathProblems, type Discovery } from '../kadi/discovery';
import { followJob, listJobs, LockBusyError } from '../remote/jobs';
import type { RemoteHost } from '../remote/remoteHost';
import { componentsNamed, DEFAULT_COMPONENTS, type PreflightContext, type RestoreComponent } from '../components';
import type { ConfigFileDiff } from './configDiff';
import { safetyBackupBlocker, type DbRestorePlan } from './dbPlan';
import { probeLive, type LiveProbe } from './probe';
import { setTreeBytes } from '../components/trees';

export interface RestorePlan {
  host: string;
  set: BackupSet;
  components: RestoreComponent[];
  safetyBackup: boolean;
  /** Files of the trees whose size and time agree are also compared byte by byte (rsync --checksum). */
  compareContent: boolean;
  /** jobId: the verify job run now; reused: the earlier passing verification relied on instead. */
  verify: { ok: boolean; jobId?: string; problems: string[]; reused?: { level: 'quick' | 'deep'; at: string } };
  kadi: { setVersion?: string; hostVersion?: string; setRevision?: string; hostRevision?: string; upgrade: boolean };
  postgres: { dumpMajor?: number; serverMajor?: number; pgRestore?: string };
  database: { empty: boolean; relations?: number; mode: 'plain' | 'clean' };
  /** Per object of the dump: kept as it is, created, or refused; and the listing pg_restore -L gets. */
  db?: DbRestorePlan;
  /** Bytes needed and free where the restore writes. */
  disk: { where: string; needBytes: number; freeBytes?: number }[];
  servicesToStop: string[];
  servicesSkipped: string[];
  /** Selective restore: the validated `pg_restore -L` listing. */
  listing?: string;
  jobs?: number;
  config?: ConfigFileDiff[];
  probe: LiveProbe;
  blockers: string[];
  warnings: string[];
}

export interface PreflightOptions {
  components?: readonly RestoreComponent[];
  safetyBackup?: boolean;
  /** Compare the trees' files by content, not only by size and modification time. */
  compareContent?: boolean;
  jobs?: number;
  /** An edited `pg_restore -l` listing for a selective database restore. */
  listing?: string;
  /**
   * A passing verification of the set younger than this many hours is relied on instead of
   * re-hashing the whole set (default 24, a nightly backup-and-verify; 0 always verifies again).
   */
  reuseVerificationHours?: number;
  /** The time the age of a verification is measured against (tests). */
  now?: Date;
  /** Streams the verify job's output. */
  sink?: OutputSink;
  signal?: AbortSignal;
  reconnect?: () => Promise<RemoteHost>;
}

export class RestoreRefusedError extends Error {}

/** Finds a complete set by name, or the newest with "latest". */
export async function findSet(host: RemoteHost, name: string): Promise<BackupSet> {
  const listing = await listSets(host);
  const { sets } = listing;
  const set = name === 'latest' ? (latestSet(sets.filter((s) => !s.preRestore), hostNow(listing)) ?? sets[0]) : sets.find((s) => s.name === name);
  if (!set) throw new RestoreRefusedError(`No complete backup set "${name}" on ${host.profile.name}.`);
  return set;
}

export async function preflight(host: RemoteHost, d: Discovery, setName: string, opts: PreflightOptions = {}): Promise<RestorePlan> {
  const set = await findSet(host, setName);
  const components = [...(opts.components ?? DEFAULT_COMPONENTS)];
  const blockers: string[] = [];
  // The restore job is given the host's plan as a backup is (paths, tools): what a backup refuses
  // (a relative or unknown STORAGE_PATH, no pg_dump of the server's major) is refused here, not after
  // the confirmation. An unreachable database is said once, by the probe below.
  try {
    backupPlan(host, d, {});
  } catch (e) {
    if (!(e instanceof BackupRefusedError)) throw e;
    if (!d.facts.pg.error) blockers.push(e.message.replace(/^Cannot back up [^:]*: /, ''));
  }
  const relative = relativePathProblems(d.facts);
  const warnings: string[] = d.facts.problems.filter((p) => !relative.includes(p));
  const m = set.manifest;
  const f = d.facts;

  // 1. Quick verify: every artifact and file against the manifest. Any mismatch refuses. A recent
  // passing verification is relied on (re-hashing a large set costs minutes); the live probe
  // runs meanwhile, it only reads.
  const reused = recentVerification(set.verify, opts.reuseVerificationHours ?? DEFAULT_REUSE_VERIFICATION_HOURS, opts.now ?? new Date());
  if (reused) {
    // No verify job takes the instance lock now: say at once that another job holds it.
    const running = (await listJobs(host)).find((j) => j.state === 'running');
    if (running) throw new LockBusyError(host.profile.name, { job: running.id, kind: running.kind, operator: running.operator, client: running.client, started: running.started }, false);
  }
  const [verify, probe] = await Promise.all([reused ? { ok: true, problems: [], reused } : verifyNow(host, d, set.name, opts), probeLive(host, d, { storage: setTreeBytes(m, 'storage'), uploads: setTreeBytes(m, 'uploads') })]);
  const verifyOk = verify.ok;
  const problems = verify.problems;
  if (!verifyOk) blockers.push(`Set ${set.name} failed verification (${problems.length} problem(s)${problems.length ? `, e.g. ${problems.slice(0, 3).join('; ')}` : ''}); it will not be restored.`);

  // 2. Kadi version and schema revision (kadi db upgrade afterwards when they differ).
  const upgrade = m.kadiVersion !== f.kadiVersion || (f.alembicRevision !== undefined && m.alembicRevision !== undefined && f.alembicRevision !== m.alembicRevision);
  const chosen = componentsNamed(components);
  const empty = (probe.dbRelations ?? 0) === 0;
  const disk: RestorePlan['disk'] = [];
  const ctx: PreflightContext = { host, d, set, probe, opts, empty, blockers, warnings, disk, decided: {} };
  // 3. What the set and the host's tools allow, per component (versions, binaries).
  for (const c of chosen) c.checkSet?.(ctx);

  // 4. The live side: database, free space, trees, services.
  if (probe.dbError) blockers.push(`The database is not reachable: ${probe.dbError}`);
  // rsync --delete into a tree that holds the backup directory (or the other tree) would delete it.
  for (const c of probe.pathConflicts) blockers.push(`The paths overlap: ${c}; a restore would delete one with the other. Move one of them.`);
  const safetyBackup = opts.safetyBackup ?? true;
  // The safety backup is a backup of the profile: with its Redis on, a Redis of another host fails it after the services stopped.
  if (safetyBackup && host.profile.redis.enabled && probe.redisAway && !components.includes('redis')) {
    blockers.push(`The safety backup includes Redis (the profile's redis is on), which it cannot take: ${probe.redisAway}. Or restore with --no-safety-backup.`);
  }
  if (safetyBackup) disk.push({ where: `${host.profile.backupDir} (safety backup)`, needBytes: Math.ceil((probe.dbBytes ?? 0) / 4), freeBytes: probe.backupFreeBytes });
  const unreadable = safetyBackup ? safetyBackupBlocker(probe.db, d.facts.database.name) : undefined;
  if (unreadable) blockers.push(unreadable);
  for (const c of chosen) c.checkLive?.(ctx);
  for (const dk of disk) if (dk.freeBytes !== undefined && dk.needBytes > dk.freeBytes) blockers.push(`Not enough free space in ${dk.where}: about ${mib(dk.needBytes)} needed, ${mib(dk.freeBytes)} free.`);

  const services = host.profile.services;
  const servicesToStop: string[] = [];
  const servicesSkipped: string[] = [];
  for (const s of services) {
    const p = probe.services.find((x) => x.name === s);
    if (!probe.systemctl || !p || !p.exists) servicesSkipped.push(s);
    else {
      servicesToStop.push(s);
      if (!p.sudoAllowed) {
        const rules = probe.sudoMissing.filter((m) => m.endsWith(` ${s}`) && / (stop|start) /.test(m));
        blockers.push(`The Kadi user may not run ${rules.map((r) => `"sudo ${r}"`).join(' or ') || `"sudo systemctl stop/start ${s}"`}; add the rules \`kadi-ops sudoers ${host.profile.name}\` prints, or remove ${s} from the profile's services.`);
      }
    }
  }

  // 5. What exactly each component will do: the configuration's diff, the selective listing, the
  // database's per-object plan.
  if (opts.listing !== undefined && !components.includes('db')) blockers.push('A listing only applies to a database restore (component db).');
  for (const c of chosen) await c.decide?.(ctx);
  const { config, listing, db } = ctx.decided;
  if (!safetyBackup) warnings.push('No safety backup: the current state cannot be brought back by Kadi Ops after this restore.');

  return {
    host: host.profile.name,
    set,
    components,
    safetyBackup,
    compareContent: opts.compareContent ?? false,
    verify,
    kadi: { setVersion: m.kadiVersion, hostVersion: f.kadiVersion, setRevision: m.alembicRevision, hostRevision: f.alembicRevision, upgrade },
    postgres: { dumpMajor: m.postgres.serverMajor, serverMajor: f.pg.serverMajor, pgRestore: f.pg.pgRestore },
    database: { empty, relations: probe.dbRelations, mode: empty && !db?.clean ? 'plain' : 'clean' },
    db,
    disk,
    servicesToStop,
    servicesSkipped,
    listing,
    jobs: opts.jobs,
    config,
    probe,
    blockers,
    warnings,
  };
}

export const DEFAULT_REUSE_VERIFICATION_HOURS = 24;

/** A set's own passing verification, when it is younger than `hours`. */
export function recentVerification(v: VerifyRecord | null, hours: number, now: Date): { level: 'quick' | 'deep'; at: string } | undefined {
  if (!v?.ok || hours <= 0) return undefined;
  const age = now.getTime() - Date.parse(v.at);
  return age >= 0 && age < hours * 3600_000 ? { level: v.level, at: v.at } : undefined;
}

async function verifyNow(host: RemoteHost, d: Discovery, set: string, opts: PreflightOptions): Promise<RestorePlan['verify']> {
  const collected = new MemorySink();
  const jobId = await startVerify(host, d, set, 'quick');
  const outcome = await followJob(host, jobId, { sink: opts.sink ? teeSink(collected, opts.sink) : collected, signal: opts.signal, reconnect: opts.reconnect });
  const problems = collected.text('stdout').split('\n').flatMap((l) => (l.startsWith('PROBLEM: ') ? [l.slice(9)] : []));
  return { ok: outcome.result === 'succeeded', jobId, problems };
}

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** The plan as the operator reads it before confirming. */
export function formatPlan(p: RestorePlan): string[] {
  const out = [
    `Restore plan for ${p.host}`,
    `  set                ${p.set.name} (${p.set.manifest.kadiVersion ?? '?'}, made ${p.set.manifest.startedAt ?? '?'})`,
    `  verification       ${verificationLine(p.verify)}`,
    `  components         ${p.components.join(', ')}`,
    `  safety backup      ${p.safetyBackup ? 'yes, a pre-restore set first' : 'NO (opted out)'}`,
    `  Kadi               set ${p.kadi.setVersion ?? '?'} rev ${p.kadi.setRevision ?? '?'}; host ${p.kadi.hostVersion ?? '?'} rev ${p.kadi.hostRevision ?? '?'}${p.kadi.upgrade ? ' -> kadi db upgrade afterwards' : ''}`,
    `  PostgreSQL         dump from ${p.postgres.dumpMajor ?? '?'}, server ${p.postgres.serverMajor ?? '?'}`,
  ];
  for (const c of componentsNamed(p.components)) if (c.name !== 'config') out.push(...(c.planLines?.(p) ?? []));
  if (p.components.includes('storage') || p.components.includes('uploads')) {
    out.push(`  files              ${p.compareContent ? 'compared by content: every file of the set and of the live trees is read (as rsync --checksum)' : 'compared by size and modification time (as rsync -a)'}`);
  }
  for (const dk of p.disk) out.push(`  disk               ${dk.where}: ~${mib(dk.needBytes)} needed, ${dk.freeBytes === undefined ? '?' : mib(dk.freeBytes)} free`);
  out.push(`  services to stop   ${p.servicesToStop.join(', ') || 'none'}${p.servicesSkipped.length ? ` (not present: ${p.servicesSkipped.join(', ')})` : ''}`);
  for (const c of componentsNamed(p.components)) if (c.name === 'config') out.push(...(c.planLines?.(p) ?? []));
  for (const w of p.warnings) out.push(`  warning: ${w}`);
  for (const b of p.blockers) out.push(`  REFUSED: ${b}`);
  // One line each, whatever the names in them hold (a role or table name with a newline, a control
  // character, a line or paragraph separator): escaped as a string literal would be, the backslash too.
  return out.map((l) =>
    l.replace(/[\\\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]/g, (c) =>
      c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    ),
  );
}

function verificationLine(v: RestorePlan['verify']): string {
  if (!v.ok) return `FAILED (${v.problems.length} problem(s))`;
  if (v.reused) return `ok (${v.reused.level} verification of ${v.reused.at}, relied on; verify again to re-check every checksum)`;
  return 'ok (quick: every checksum matches)';
}
