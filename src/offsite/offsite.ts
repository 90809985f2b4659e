/**
 * Off-site copies of backup sets in a restic repository, driven by the agent (offsite.py) on the
 * host: the data goes from the host to the repository, never through this client. The repository
 * password and the backend's credentials reach the host once, on stdin, at `connectOffsite`, and stay
 * there as 0600 files of the Kadi user; the operator keeps the password apart from the host.
 */
import { randomBytes } from 'node:crypto';
import type { HostProfile } from '../config/types';
import type { PlanOffsite, PlanRetentionRules } from '../core/plan';
import type { Discovery } from '../kadi/discovery';
import { checkAgent, parseKeyValues } from '../remote/agent';
import { startJob } from '../remote/jobs';
import type { RemoteHost } from '../remote/remoteHost';
import { verifyJobArgs } from '../backup/backupSets';

export interface OffsiteSnapshot {
  id: string;
  short: string;
  /** restic's time (RFC 3339, nanoseconds). */
  time: string;
  hostname: string;
  /** The backup set it holds (its tag set:NAME). */
  set?: string;
  kadiVersion?: string;
  schemaRevision?: string;
  tags: string[];
  /** Made by the host it was listed from (undefined: not known). */
  mine?: boolean;
  /** Saved by restic without every file of its set, and not yet forgotten (the push that made it failed and recorded it): never the set's copy. */
  incomplete?: boolean;
}

/** Environment variables of the operator's that are restic backend credentials (sent at connect, never stored here). */
export const CREDENTIAL_VARIABLE =
  /^(AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|AWS_DEFAULT_REGION|B2_ACCOUNT_ID|B2_ACCOUNT_KEY|AZURE_ACCOUNT_NAME|AZURE_ACCOUNT_KEY|AZURE_ACCOUNT_SAS|GOOGLE_PROJECT_ID|OS_(USERNAME|PASSWORD|AUTH_URL|TENANT_NAME|TENANT_ID|REGION_NAME|PROJECT_NAME|USER_DOMAIN_NAME|PROJECT_DOMAIN_NAME|APPLICATION_CREDENTIAL_ID|APPLICATION_CREDENTIAL_SECRET|AUTH_TOKEN|STORAGE_URL))$/;

/** The operator's backend credentials (AWS_ACCESS_KEY_ID, …) in ENV: sent to the host at connect, never stored here. */
export function backendCredentials(env: NodeJS.ProcessEnv, repository: string): Record<string, string> {
  const prefix = credentialPrefix(repository);
  if (!prefix) return {};
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => CREDENTIAL_VARIABLE.test(e[0]) && prefix.test(e[0]) && typeof e[1] === 'string'));
}

/** Which credential variables the repository's backend reads (none for sftp:, rest: and a path): no other of the operator's keys goes to the host. */
function credentialPrefix(repository: string): RegExp | undefined {
  const backend = /^([a-z0-9]+):/.exec(repository)?.[1];
  return ({ s3: /^AWS_/, b2: /^B2_/, azure: /^AZURE_/, gs: /^GOOGLE_/, swift: /^(OS_|ST_)/ } as Record<string, RegExp>)[backend ?? ''];
}

/** The profile's off-site destination, or a clear error naming what to add. */
export function offsiteOf(profile: HostProfile): PlanOffsite {
  if (!profile.offsite) {
    throw new Error(`${profile.name} has no off-site repository: add "offsite": { "repository": "sftp:backup@offsite.example.org:/srv/restic/kadi" } to its profile.`);
  }
  return profile.offsite;
}

/** What the agent needs to reach the repository (retention and scheduling stay on this side). */
function configArg(o: PlanOffsite): string {
  return JSON.stringify({ repository: o.repository, ...(o.caCert ? { caCert: o.caCert } : {}), ...(o.sftp ? { sftp: o.sftp } : {}), ...(o.stallSeconds ? { stallSeconds: o.stallSeconds } : {}) });
}

/** A new repository password: 32 random bytes, base64url (256 bits). */
export function newRepositoryPassword(): string {
  return randomBytes(32).toString('base64url');
}

export interface ConnectRequest {
  password: string;
  /** Backend credentials (AWS_ACCESS_KEY_ID, …) for the host to keep. */
  credentials?: Record<string, string>;
  /** Create the repository when there is none (init); otherwise only join an existing one. */
  create: boolean;
}

export interface ConnectResult {
  created: boolean;
  repositoryId: string;
}

/** Opens (or creates) the repository from the host with this password; only then does the host keep the password. */
export async function connectOffsite(host: RemoteHost, o: PlanOffsite, req: ConnectRequest): Promise<ConnectResult> {
  const r = await checkAgent(host, `Connecting ${host.profile.name} to the off-site repository ${o.repository}`, 'offsite-connect', [host.profile.backupDir, configArg(o)], {
    stdin: JSON.stringify({ password: req.password, env: req.credentials ?? {}, create: req.create }),
  });
  const kv = parseKeyValues(r.stdout);
  return { created: kv.get('created') === 'yes', repositoryId: kv.get('repository_id') ?? '' };
}

/** The repository's Kadi Ops snapshots, oldest first. */
export async function listOffsite(host: RemoteHost, o: PlanOffsite): Promise<OffsiteSnapshot[]> {
  const r = await checkAgent(host, `Listing the off-site snapshots of ${host.profile.name}`, 'offsite-list', [host.profile.backupDir, configArg(o)]);
  const doc = JSON.parse(r.stdout) as { snapshots: OffsiteSnapshot[]; host?: string };
  // mine: made by this host (a repository may be shared; a set of the same name from another host is not this one's),
  // as the agent says it (its backup directory's kadi-host tag; by node name for older snapshots and agents).
  return doc.snapshots.map((s) => ({ ...s, mine: typeof s.mine === 'boolean' ? s.mine : doc.host === undefined ? undefined : s.hostname === doc.host })).sort((a, b) => Date.parse(a.time) - Date.parse(b.time) || a.time.localeCompare(b.time));
}

export function startOffsitePush(host: RemoteHost, o: PlanOffsite, set: string, opts: { breakStaleLock?: boolean } = {}): Promise<string> {
  return startJob(host, { kind: 'offsite-push', verb: 'offsite_push', args: [`backup_dir=${host.profile.backupDir}`, `offsite=${configArg(o)}`, `set=${set}`], breakStaleLock: opts.breakStaleLock });
}

/** SUBSET: restic's --read-data-subset (N% or n/t); none: the structure only. */
export function startOffsiteCheck(host: RemoteHost, o: PlanOffsite, subset?: string, opts: { breakStaleLock?: boolean } = {}): Promise<string> {
  if (subset !== undefined && !/^([0-9]{1,3}(\.[0-9]+)?%|[0-9]{1,6}\/[0-9]{1,6})$/.test(subset)) {
    throw new Error(`--read-data-subset must be a share such as 5% or n/t such as 1/10 (got ${JSON.stringify(subset)}).`);
  }
  return startJob(host, { kind: 'offsite-check', verb: 'offsite_check', args: [`backup_dir=${host.profile.backupDir}`, `offsite=${configArg(o)}`, ...(subset ? [`subset=${subset}`] : [])], breakStaleLock: opts.breakStaleLock });
}

/** ONLY: the snapshot ids a dry run named and the operator confirmed; the host forgets no other, and of them only those the rules still forget. */
export function startOffsiteForget(host: RemoteHost, o: PlanOffsite, policy: PlanRetentionRules, opts: { dryRun?: boolean; breakStaleLock?: boolean; only?: string[] } = {}): Promise<string> {
  if (opts.only && (opts.only.length === 0 || !opts.only.every((id) => /^[0-9a-f]{8,64}$/.test(id)))) throw new Error('Forget: only confirmed snapshot ids (8-64 hex digits) may be named.');
  const rules = ['keepLast', 'keepDaily', 'keepWeekly', 'keepMonthly'] as const;
  if (!rules.some((r) => policy[r] !== undefined)) {
    throw new Error(`No off-site retention for ${host.profile.name}: give --keep-* options or set "offsite": { "keep": { "keepDaily": 7, "keepMonthly": 12 } } in its profile.`);
  }
  return startJob(host, {
    kind: 'offsite-forget',
    verb: 'offsite_forget',
    args: [`backup_dir=${host.profile.backupDir}`, `offsite=${configArg(o)}`, `policy=${JSON.stringify(policy)}`, `dry_run=${opts.dryRun ? 'yes' : 'no'}`, ...(opts.only ? [`only=${opts.only.join(',')}`] : [])],
    breakStaleLock: opts.breakStaleLock,
  });
}

/**
 * Brings the set of SNAPSHOT back into HOST's backup directory (the same host after a disk loss, or
 * another): restored into a partial set, verified against its own manifest, then put in place. O is
 * the repository of the host the snapshot was made on; HOST must hold its password (connectOffsite).
 */
export function startOffsiteRestore(host: RemoteHost, d: Discovery, o: PlanOffsite, snapshot: string, opts: { breakStaleLock?: boolean } = {}): Promise<string> {
  if (!/^[0-9a-f]{8,64}$/.test(snapshot)) throw new Error(`Not a snapshot id: ${JSON.stringify(snapshot)} (see kadi-ops offsite list).`);
  return startJob(host, {
    kind: 'offsite-restore',
    verb: 'offsite_restore',
    args: [...verifyJobArgs(host, d, '', 'quick').filter((a) => !a.startsWith('set=') && !a.startsWith('level=')), `offsite=${configArg(o)}`, `snapshot=${snapshot}`],
    breakStaleLock: opts.breakStaleLock,
  });
}

/** The snapshots newest first (restic's times carry their own offsets, so they are compared as times). */
export function newestFirst(snaps: readonly OffsiteSnapshot[]): OffsiteSnapshot[] {
  const t = (s: OffsiteSnapshot): number => {
    const v = Date.parse(s.time);
    return Number.isFinite(v) ? v : 0;
  };
  return [...snaps].sort((a, b) => t(b) - t(a));
}

/** The agent's answer when HOST has no password for the repository (a new host, or one that lost its backup directory). */
export function lacksPassword(message: string): boolean {
  return /has no password for the off-site repository/.test(message);
}

/** The snapshot ids (8 hex digits) of a dry run's `forget …` lines: what the operator confirms. */
export function forgetIds(lines: readonly string[]): string[] {
  return lines.map((l) => /^forget ([0-9a-f]{8}) /.exec(l)?.[1]).filter((x): x is string => !!x);
}

/** What an off-site dry run of forget says it would do: its `keep …` and `forget …` lines. */
export function forgetPlanLines(log: string): { keep: string[]; forget: string[] } {
  const lines = log.split('\n').map((l) => l.trim());
  return { keep: lines.filter((l) => /^keep [0-9a-f]{8} /.test(l)), forget: lines.filter((l) => /^forget [0-9a-f]{8} /.test(l)) };
}

/** Whether a snapshot stands for its set as this host's off-site copy: made here (or not known otherwise) and complete. */
export function isSetCopy(s: OffsiteSnapshot): boolean {
  return !!s.set && s.mine !== false && !s.incomplete;
}

/** The set names that are off-site, for marking sets in the tree and the listing. */
export function offsiteSets(snaps: readonly OffsiteSnapshot[]): Set<string> {
  return new Set(snaps.filter(isSetCopy).map((s) => s.set as string));
}
