/** The backup set's manifest (written last on the host; a set without one is not a backup). */
import { formatAge } from '../core/format';
import { datedAhead, type SetStatus } from './retention';
export const MANIFEST_FORMAT = 1;

export interface ArtifactEntry {
  name: string;
  size: number;
  sha256: string;
  /** db.dump */
  tocEntries?: number;
  tables?: number;
  rows?: number;
  /** <tree>.files.jsonl: the per-file list of a copied tree */
  tree?: string;
  files?: number;
  bytes?: number;
  newFiles?: number;
  newBytes?: number;
  /** Entries walked (files, directories, links, skipped special files) and the tree itself: the next set's progress total. */
  entries?: number;
  /** Files, links and directories deleted on the live instance between being listed and read: not in the set. */
  vanished?: number;
  /** storage.tar.zst etc. */
  archiveOf?: string;
}

export interface Manifest {
  formatVersion: number;
  toolVersion: string;
  profile: string;
  hostname?: string;
  kadiVersion?: string;
  alembicRevision?: string;
  postgres: { serverVersionNum?: number; serverMajor?: number; pgDump?: string };
  database: { host: string; port: number; name: string; user: string };
  /** resolved: trees whose configured path is a symbolic link, and the directory read instead. */
  paths: { storage: string; uploads: string; kadiConfig: string; resolved?: Record<string, string> };
  options: { filesMode: 'tree' | 'archive'; redis: boolean; dumpCompression?: number };
  startedAt?: string;
  endedAt?: string;
  previousSet?: string | null;
  artifacts: ArtifactEntry[];
  trees?: Record<string, { files: number; bytes: number; newFiles: number; newBytes: number; vanished?: number }>;
}

/** Where a deep verification restored the dump: a cluster the job started itself, or (without the server binaries) a database on the production server. */
export type DeepVerifyMode = 'throwaway-cluster' | 'scratch-database';

export interface VerifyRecord {
  level: 'quick' | 'deep';
  ok: boolean;
  problems: string[];
  problemCount: number;
  files: number;
  bytes: number;
  at: string;
  /**
   * A deep verification's summary (older records have no mode). notRun: deep verification was
   * asked for but could not run, and why (fix: what would let it run); the record is then the
   * quick verification's.
   */
  deep?: { mode?: DeepVerifyMode; tablesCompared?: number; fileRows?: number; extraFiles?: number; notRun?: string; fix?: string };
}

export type { SetStatus };

export interface BackupSet {
  /** Directory name: the UTC timestamp, e.g. 2026-11-26T06-37-07Z. */
  name: string;
  time: Date;
  manifest: Manifest;
  verify: VerifyRecord | null;
  pinned: boolean;
  preRestore: boolean;
  status: SetStatus;
  /** Logical size: artifacts plus the trees' bytes. */
  size: number;
}

export interface SetListing {
  sets: BackupSet[];
  /** job: the job that was writing it; '' for what an interrupted prune left of a set (.deleting-SET). */
  partials: { name: string; job: string; mtime: number }[];
  invalid: { name: string; reason: string }[];
  /**
   * The host's clock minus this machine's when the listing arrived (ms); undefined from an agent
   * that does not say its time. Sets are named by the host's clock, so their age and whether one
   * is dated in the future are judged by it (hostNow), not by this machine's.
   */
  clockOffsetMs?: number;
}

/** How far the host's clock may be from this machine's before it is said (network time keeps both within seconds). */
export const CLOCK_NOTE_MS = 5 * 60_000;

/** "the host's clock is 2 h ahead of this machine's", when it is CLOCK_NOTE_MS or more off; undefined otherwise. */
export function clockNote(listing: { clockOffsetMs?: number } | undefined): string | undefined {
  const off = listing?.clockOffsetMs;
  if (off === undefined || Math.abs(off) < CLOCK_NOTE_MS) return undefined;
  return `the host's clock is ${formatAge(Math.abs(off))} ${off > 0 ? 'ahead of' : 'behind'} this machine's (ages here go by the host's clock, which names the sets)`;
}

/** Now by the host's clock, as LISTING measured it (this machine's when it did not). */
export function hostNow(listing: { clockOffsetMs?: number } | undefined, at: Date = new Date()): Date {
  return new Date(at.getTime() + (listing?.clockOffsetMs ?? 0));
}

/** Who left a partial set, for a person: "job 20261202T…" or "an interrupted prune". */
export function partialOrigin(p: { job: string }): string {
  return p.job ? `job ${p.job}` : 'an interrupted prune';
}

/** "2026-11-26T06-37-07Z" → Date; undefined if the name is not a set timestamp. */
export function setTime(name: string): Date | undefined {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})Z$/.exec(name);
  if (!m) return undefined;
  const iso = `${m[1]}T${m[2]}:${m[3]}:${m[4]}`;
  const t = new Date(`${iso}Z`);
  // 2024-13-01 is no date and 2024-02-30 would be taken as 2024-03-01: neither is a time (as the agent's listing).
  return !Number.isNaN(t.getTime()) && t.toISOString().slice(0, 19) === iso ? t : undefined;
}

/**
 * The set "latest" names: the newest not dated in the future (made while the host's clock was
 * ahead, which retention does not count either); the newest of all when every one is.
 */
export function latestSet<T extends { time: Date }>(sets: readonly T[], now: Date = new Date()): T | undefined {
  return sets.find((s) => !datedAhead(s.time, now)) ?? sets[0];
}

/** The newest set not known to be bad and not dated in the future: the one whose age says whether a host is backed up. */
export function newestGoodSet<T extends { time: Date; status: SetStatus }>(sets: readonly T[], now: Date = new Date()): T | undefined {
  return sets.find((s) => s.status !== 'damaged' && !datedAhead(s.time, now));
}

interface RawListing {
  sets: { name: string; manifest: Manifest; verify: VerifyRecord | null; pinned: boolean; preRestore: boolean }[];
  partials: SetListing['partials'];
  invalid: SetListing['invalid'];
  now?: unknown;
}

/** The agent's listing; RECEIVED_AT: when it arrived (the host's clock is measured against it). */
export function parseSetListing(json: string, receivedAt: number = Date.now()): SetListing {
  const raw = JSON.parse(json) as RawListing;
  const sets: BackupSet[] = [];
  const invalid = [...raw.invalid];
  for (const s of raw.sets) {
    const time = setTime(s.name);
    const problem = manifestProblem(s.manifest);
    if (!time || problem) {
      invalid.push({ name: s.name, reason: problem ?? 'name is not a timestamp' });
      continue;
    }
    const size = s.manifest.artifacts.reduce((n, a) => n + a.size + (a.tree ? a.bytes ?? 0 : 0), 0);
    const status: SetStatus = s.verify === null ? 'unverified' : s.verify.ok ? 'verified' : 'damaged';
    sets.push({ ...s, time, size, status });
  }
  sets.sort((a, b) => b.time.getTime() - a.time.getTime());
  const listing: SetListing = { sets, partials: raw.partials, invalid };
  if (typeof raw.now === 'number' && Number.isFinite(raw.now)) listing.clockOffsetMs = Math.round(raw.now * 1000) - receivedAt;
  return listing;
}

/** Why a manifest cannot describe a good set, or undefined when it can. */
export function manifestProblem(m: unknown): string | undefined {
  if (typeof m !== 'object' || m === null) return 'manifest is not an object';
  const x = m as Partial<Manifest>;
  if (x.formatVersion !== MANIFEST_FORMAT) return `unsupported manifest format ${String(x.formatVersion)}`;
  // Every artifact an object (as the agent's sets.manifest_problem): a damaged manifest is a reason, never a throw.
  if (!Array.isArray(x.artifacts) || !x.artifacts.every((a: unknown) => typeof a === 'object' && a !== null && !Array.isArray(a))) return 'manifest lists no artifacts';
  const names = new Set(x.artifacts.map((a) => a.name));
  if (!names.has('db.dump')) return 'manifest has no db.dump';
  for (const a of x.artifacts) {
    if (typeof a.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(a.sha256)) return `artifact ${a.name} has no valid sha256`;
    if (typeof a.size !== 'number') return `artifact ${a.name} has no size`;
    // A tree's file list may be empty (an instance without uploads); the dump and archives may not.
    if (a.size <= 0 && !a.tree && a.name !== 'db.counts.tsv') return `artifact ${a.name} is empty`;
  }
  const hasTree = (t: string): boolean => names.has(`${t}.files.jsonl`) || [...names].some((n) => typeof n === 'string' && n.startsWith(`${t}.tar.`));
  if (!hasTree('storage')) return 'manifest has no storage copy';
  if (!hasTree('uploads')) return 'manifest has no uploads copy';
  return undefined;
}
