/**
 * Detached jobs on the host. A job runs in its own process group under the instance lock, writes
 * its output to a log and its exit status to a file; the client streams the log from a byte
 * offset, so it can re-attach after a dropped connection or a restart and read the outcome of a
 * job that finished while nobody watched.
 */
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import type { OutputSink } from '../core/sink';
import { CancelledError, SshError } from '../ssh/errors';
import { checkAgent, parseKeyValues, runAgent } from './agent';
import { RemoteCommandError, type RemoteHost } from './remoteHost';

export type JobState = 'running' | 'finished' | 'died';

export interface JobInfo {
  id: string;
  kind: string;
  operator: string;
  client: string;
  started: string;
  command: string;
  state: JobState;
  /** Exit status as recorded by the job ("0", "1", "cancelled"), empty while running. */
  status: string;
  logBytes: number;
  /** Unix time the status was written. */
  finishedAt?: number;
  /** A died job's account of what it left (a restore killed outright: the instance may be half restored). */
  diedNote?: string;
}

/**
 * How a job ended. could-not-run: the job ran, but what it was asked to find out could not be
 * found out on this host (a deep verification without a throwaway cluster or CREATEDB): not a
 * finding, and not a success either.
 */
export type JobResult = 'succeeded' | 'failed' | 'cancelled' | 'died' | 'could-not-run';

export interface JobOutcome {
  id: string;
  result: JobResult;
  exitCode?: number;
  /** Bytes of the log read so far (to re-attach from). */
  offset: number;
  /** The job's `WARNING: ` lines seen while following (the first 50, without the prefix): a job can succeed and still have something the operator must know. */
  warnings?: string[];
  /** Warnings beyond those carried in `warnings`. */
  moreWarnings?: number;
  /** A verification's `PROBLEM: ` lines (the first 50, without the prefix): what it found wrong with the set. */
  problems?: string[];
  /** Problems beyond those carried in `problems`. */
  moreProblems?: number;
  /** Why it failed or could not run, for the notification: the job's last `ERROR: ` line (or the flow's finding). */
  reason?: string;
  /** What the operator can do about `reason`, when known. */
  fix?: string;
  /** The backup set the job made (its `set=` line), when it printed one while followed. */
  set?: string;
}

/** How long a reason may be in a notification (the log has the whole line). */
const MAX_REASON = 400;

/** The agent's exit status of a job that ran but could not find out what it was asked to (jobs.COULD_NOT_RUN). */
const COULD_NOT_RUN = 3;

/** How many of a job's warnings (and of a verification's problems) an outcome carries (the log has them all). */
const MAX_WARNINGS = 50;

export interface LockHolder {
  job?: string;
  kind?: string;
  operator?: string;
  client?: string;
  started?: string;
  pid?: string;
}

export class LockBusyError extends Error {
  constructor(readonly hostName: string, readonly holder: LockHolder, readonly stale: boolean) {
    super(
      stale
        ? `The Kadi Ops lock on ${hostName} is held by a job whose process is gone (${describeHolder(holder)}). ` +
            `Check the host, then break the lock explicitly (--break-stale-lock).`
        : `Another Kadi Ops job is running on ${hostName}: ${describeHolder(holder)}.`,
    );
    this.name = 'LockBusyError';
  }
}

export function describeHolder(h: LockHolder): string {
  return `${h.kind ?? 'job'} ${h.job ?? '?'} by ${h.operator ?? '?'}@${h.client ?? '?'} since ${h.started ?? '?'}`;
}

export interface StartJobOptions {
  kind: string;
  verb: string;
  args: string[];
  /** Stdin of the launch: the job reads it from a 0600 file (database password). */
  secret?: string;
  breakStaleLock?: boolean;
  operator?: string;
  client?: string;
}

export function newJobId(now = new Date()): string {
  const ts = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${ts}-${randomBytes(3).toString('hex')}`;
}

export async function startJob(host: RemoteHost, opts: StartJobOptions): Promise<string> {
  const id = newJobId();
  const operator = opts.operator ?? safeUser();
  const client = opts.client ?? os.hostname();
  const { keepLast, keepDays } = host.profile.jobHistory;
  const history = `history=${keepLast}:${keepDays}`;
  const r = await runAgent(host, 'job-start', [host.profile.backupDir, id, opts.kind, operator, client, opts.breakStaleLock ? 'yes' : 'no', history, opts.verb, ...opts.args], {
    stdin: opts.secret ?? '',
  });
  const kv = parseKeyValues(r.stdout);
  if (r.code === 75) {
    const holder: LockHolder = { job: kv.get('holder_job'), kind: kv.get('holder_kind'), operator: kv.get('holder_operator'), client: kv.get('holder_client'), started: kv.get('holder_started'), pid: kv.get('holder_pid') };
    throw new LockBusyError(host.profile.name, holder, kv.get('lock') === 'stale');
  }
  if (r.code !== 0 || kv.get('job') !== id) throw new RemoteCommandError(`Starting ${opts.kind} job on ${host.profile.name}`, r);
  return id;
}

function safeUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USER ?? 'unknown';
  }
}

export function parseJobInfo(text: string): JobInfo {
  const kv = parseKeyValues(text);
  const finished = kv.get('finished');
  return {
    id: kv.get('meta_id') ?? '',
    kind: kv.get('meta_kind') ?? '',
    operator: kv.get('meta_operator') ?? '',
    client: kv.get('meta_client') ?? '',
    started: kv.get('meta_started') ?? '',
    command: kv.get('meta_command') ?? '',
    state: (kv.get('state') as JobState) ?? 'died',
    status: kv.get('status') ?? '',
    logBytes: Number(kv.get('log_bytes') ?? 0),
    finishedAt: finished ? Number(finished) : undefined,
    ...(kv.get('died_note') ? { diedNote: kv.get('died_note') } : {}),
  };
}

export async function jobStatus(host: RemoteHost, id: string): Promise<JobInfo> {
  const r = await checkAgent(host, `Reading job ${id}`, 'job-status', [host.profile.backupDir, id]);
  return parseJobInfo(r.stdout);
}

export async function listJobs(host: RemoteHost): Promise<JobInfo[]> {
  const r = await checkAgent(host, 'Listing jobs', 'job-list', [host.profile.backupDir]);
  return r.stdout
    .split('\n\n')
    .filter((block) => block.trim())
    .map(parseJobInfo);
}

/** A job's log as it is now, without following it. */
export async function jobLog(host: RemoteHost, id: string): Promise<string> {
  return (await checkAgent(host, `Reading the log of job ${id}`, 'job-log', [host.profile.backupDir, id])).stdout;
}

export interface CancelOptions {
  /** Seconds the job's processes have after the TERM before what still runs of it is killed. */
  graceSeconds?: number;
  /** Seconds to wait for the job's cleanup before saying that it still runs. */
  cleanupWaitSeconds?: number;
  /** Stop the job's cleanup too (a cleanup that hangs): what it had not done yet stays undone. */
  force?: boolean;
}

export interface CancelResult {
  /** For a person: "cancelled", "had already ended (exit status 1)", … */
  text: string;
  /** The job stopped, and its cleanup still runs (it ends on its own; `force` stops it). */
  stillCleaning: boolean;
}

/**
 * Cancels job ID: TERM to its processes, KILL for what still runs after the grace; the job's own
 * cleanup (services started again, partial output removed, the end reported) is never cut short,
 * unless forced, and is waited for up to cleanupWaitSeconds.
 */
export async function cancelJob(host: RemoteHost, id: string, opts: CancelOptions = {}): Promise<CancelResult> {
  const args = [host.profile.backupDir, id, String(opts.graceSeconds ?? 10), String(opts.cleanupWaitSeconds ?? 60), ...(opts.force ? ['force'] : [])];
  const r = await checkAgent(host, `Cancelling job ${id}`, 'job-cancel', args);
  return cancelOutcome(parseKeyValues(r.stdout));
}

/** What a job's cleanup is, in the words every cancel message uses. */
const ITS_CLEANUP = 'its cleanup (services started again, partial output removed)';

/** job-cancel's answer (status=, already=, cleaning=, forced=, force_ignored=) for a person. */
export function cancelOutcome(kv: { get(key: string): string | undefined }): CancelResult {
  const ignored = kv.get('force_ignored') === 'yes' ? ' (force stops only a cleanup that was already running when it came: cancel with it again if this one hangs)' : '';
  const cleaning = kv.get('cleaning');
  if (cleaning !== undefined) {
    return { text: `stopped; ${ITS_CLEANUP} still runs after ${cleaning} s and ends on its own${ignored}`, stillCleaning: true };
  }
  const forced = kv.get('forced') === 'yes' ? "; its cleanup was stopped before its end: services it had not started again stay stopped and partial output may remain (the job's log says how far it got)" : '';
  return { text: `${statusText(kv.get('already'), kv.get('status'))}${forced}${ignored}`, stillCleaning: false };
}

function statusText(already: string | undefined, status: string | undefined): string {
  const s = already ?? status ?? '';
  if (s === 'cancelled') return already === undefined ? 'cancelled' : 'had already been cancelled';
  if (s === '0') return already === undefined ? 'finished (succeeded) before the cancel could stop it' : 'had already finished (succeeded)';
  if (/^[0-9]+$/.test(s)) return already === undefined ? `ended on its own (exit status ${s}) before the cancel could stop it` : `had already ended (exit status ${s})`;
  return s || 'no status reported';
}

/** How long a follower's cancel waits for the job's cleanup before it goes back to following its log. */
const FOLLOW_CLEANUP_WAIT = 5;

/**
 * "succeeded", "succeeded with 2 warnings", "failed (exit status 1): <why>", "could not run: <why>",
 * "cancelled": for a person.
 */
export function describeOutcome(o: JobOutcome): string {
  const w = (o.warnings?.length ?? 0) + (o.moreWarnings ?? 0);
  const warned = w ? ` with ${w} warning${w === 1 ? '' : 's'}` : '';
  const why = o.reason ? `: ${o.reason}` : '';
  switch (o.result) {
    case 'failed':
      return `failed${warned}${o.exitCode !== undefined ? ` (exit status ${o.exitCode})` : ''}${why}`;
    case 'could-not-run':
      return `could not run${why}${o.fix ? `. Fix: ${o.fix}` : ''}`;
    case 'died':
      return `died${why || ': its process ended without an exit status (killed, or the host restarted)'}`;
    default:
      return `${o.result}${warned}`;
  }
}

/** The outcome's warnings as indented lines for a terminal or an output channel. */
export function warningLines(o: JobOutcome): string[] {
  const lines = (o.warnings ?? []).map((w) => `  warning: ${w}`);
  if (o.moreWarnings) lines.push(`  … and ${o.moreWarnings} more warnings in the output above`);
  return lines;
}

function bounded(text: string): string {
  return text.length > MAX_REASON ? `${text.slice(0, MAX_REASON)}…` : text;
}

/**
 * Why a job failed, for the notification (its last ERROR line), and the agent's "could not run"
 * (exit status 3 with a could_not_run= line): neither a success nor a finding.
 */
export function withReason(o: JobOutcome, reason: string | undefined, couldNotRun: { why?: string; fix?: string }): JobOutcome {
  if (o.result !== 'failed') return o;
  if (o.exitCode === COULD_NOT_RUN && couldNotRun.why !== undefined) {
    return { ...o, result: 'could-not-run', reason: couldNotRun.why, ...(couldNotRun.fix ? { fix: couldNotRun.fix } : {}) };
  }
  // A died job's own account (outcomeOf) is kept over the last line its log happened to have.
  return reason === undefined || o.reason !== undefined ? o : { ...o, reason };
}

export function outcomeOf(info: JobInfo, offset: number): JobOutcome {
  if (info.state === 'died') return { id: info.id, result: 'died', offset, ...(info.diedNote ? { reason: info.diedNote } : {}) };
  if (info.status === 'cancelled') return { id: info.id, result: 'cancelled', offset };
  const code = Number(info.status);
  return { id: info.id, result: code === 0 ? 'succeeded' : 'failed', exitCode: code, offset };
}

export interface FollowOptions {
  sink: OutputSink;
  signal?: AbortSignal;
  /** Byte offset in the log to continue from (0 for the start). */
  offset?: number;
  /** Gets a live host after the connection dropped; without it a drop ends the follow with an error. */
  reconnect?: () => Promise<RemoteHost>;
  /** How long to keep trying to reconnect (ms). */
  reconnectForMs?: number;
  /** Called with lines of the log as they arrive (e.g. for progress parsing). */
  onLine?: (line: string) => void;
}

/**
 * Streams a job's log until it ends and returns its outcome. A dropped connection is retried
 * (the job keeps running on the host) and the stream continues at the byte it stopped at.
 * Aborting the signal cancels the job on the host and waits for it to finish its cleanup.
 */
const TAIL_STATE = 'kadi-ops-job-state ';

/** The tail's closing state line: job-status's lines as a JSON list of strings (undefined when it is not one). */
export function parseTailState(json: string): JobInfo | undefined {
  let lines: unknown;
  try {
    lines = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (!Array.isArray(lines) || !lines.every((l): l is string => typeof l === 'string' && !l.includes('\n'))) return undefined;
  // Without its state line it is not job-status's answer; a repeated key is not believed either
  // (parseKeyValues refuses it): the follower asks job-status then.
  if (!lines.some((l) => l.startsWith('state='))) return undefined;
  try {
    return parseJobInfo(lines.join('\n'));
  } catch {
    return undefined;
  }
}

export async function followJob(host: RemoteHost, id: string, opts: FollowOptions): Promise<JobOutcome> {
  let offset = opts.offset ?? 0;
  // none → requested (abort seen, tail stopped) → done (cancel sent; follow to the end unaborted)
  const state: { cancel: 'none' | 'requested' | 'done' } = { cancel: 'none' };
  const tailAbort = new AbortController();
  const onAbort = (): void => {
    if (state.cancel === 'none') state.cancel = 'requested';
    tailAbort.abort();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();
  const warnings: string[] = [];
  let moreWarnings = 0;
  const problems: string[] = [];
  let moreProblems = 0;
  let reason: string | undefined;
  let made: string | undefined;
  const couldNotRun: { why?: string; fix?: string } = {};
  // The job's state as the tail saw it at the end (its last stderr line), or undefined.
  let tailState: JobInfo | undefined;
  const countingSink: OutputSink = {
    lines(stream, lines) {
      if (stream === 'stderr') {
        const rest = lines.filter((l) => {
          if (!l.startsWith(TAIL_STATE)) return true;
          tailState = parseTailState(l.slice(TAIL_STATE.length));
          return false;
        });
        if (rest.length) opts.sink.lines(stream, rest);
        return;
      }
      if (stream === 'stdout') {
        for (const l of lines) {
          offset += Buffer.byteLength(l) + 1;
          if (l.startsWith('WARNING: ')) {
            if (warnings.length < MAX_WARNINGS) warnings.push(l.slice(9));
            else moreWarnings++;
          } else if (l.startsWith('PROBLEM: ')) {
            if (problems.length < MAX_WARNINGS) problems.push(l.slice(9));
            else moreProblems++;
          } else if (l.startsWith('ERROR: ')) {
            reason = bounded(l.slice(7));
          } else if (l.startsWith('could_not_run=')) {
            couldNotRun.why = bounded(l.slice(14));
          } else if (l.startsWith('could_not_run_fix=')) {
            couldNotRun.fix = bounded(l.slice(18));
          } else if (/^set=\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$/.test(l)) {
            made = l.slice(4);
          }
          opts.onLine?.(l);
        }
      }
      opts.sink.lines(stream, lines);
    },
  };
  let deadline = 0;
  try {
    for (;;) {
      try {
        if (state.cancel === 'requested') {
          opts.sink.lines('warn', [`Cancelling job ${id} on ${host.profile.name}…`]);
          // A long cleanup (a large partial set to remove) is then followed like the job's other lines.
          const r = await cancelJob(host, id, { cleanupWaitSeconds: FOLLOW_CLEANUP_WAIT });
          state.cancel = 'done';
          if (r.stillCleaning) opts.sink.lines('warn', [`Job ${id} stopped; ${ITS_CLEANUP} runs to its end…`]);
        }
        tailState = undefined;
        const tail = await runAgent(host, 'job-tail', [host.profile.backupDir, id, String(offset), 'state'], { sink: countingSink, signal: state.cancel === 'none' ? tailAbort.signal : undefined });
        if (tail.code !== 0) throw new RemoteCommandError(`Following job ${id}`, tail);
        const info = tailState ?? (await jobStatus(host, id));
        if (info.state === 'running') continue;
        if (info.logBytes > offset) continue; // the tail stopped at the leader's exit; read the rest
        const outcome: JobOutcome = {
          ...withReason(outcomeOf(info, offset), reason, couldNotRun),
          ...(made ? { set: made } : {}),
          ...(problems.length ? { problems } : {}),
          ...(moreProblems ? { moreProblems } : {}),
        };
        if (!warnings.length) return outcome;
        return moreWarnings ? { ...outcome, warnings, moreWarnings } : { ...outcome, warnings };
      } catch (e) {
        if (e instanceof CancelledError) continue; // the abort handler asked for a cancel; loop does it
        if (!(e instanceof SshError) || !opts.reconnect) throw e;
        if (deadline === 0) deadline = Date.now() + (opts.reconnectForMs ?? 120_000);
        if (Date.now() > deadline) throw e;
        opts.sink.lines('warn', [`Connection to ${host.profile.name} lost (${e.message}); the job keeps running there. Reconnecting…`]);
        await new Promise((r) => setTimeout(r, 1000));
        try {
          host = await opts.reconnect();
          opts.sink.lines('info', [`Reconnected; continuing job ${id} from byte ${offset}.`]);
          deadline = 0;
        } catch {
          /* try again until the deadline */
        }
      }
    }
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

/** A finished job's result in a few words; a verify's exit status 3 is the agent's "could not run" (jobs.COULD_NOT_RUN). */
export function jobResultLabel(j: Pick<JobInfo, 'state' | 'status' | 'kind'>): string {
  if (j.state === 'running') return 'running';
  if (j.state === 'died') return 'died';
  if (j.status === '0') return 'succeeded';
  if (j.status === 'cancelled') return 'cancelled';
  if (j.status === '3' && j.kind === 'verify') return 'could not run';
  return `failed (${j.status})`;
}
