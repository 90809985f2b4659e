/** CLI verbs that run or manage jobs and backup sets; backup, verify and prune run their flows (src/flows). */
import { listSets, setPinned, cleanPartials } from '../backup/backupSets';
import { clockNote, hostNow, latestSet, partialOrigin, type BackupSet, type SetListing } from '../backup/manifest';
import { setState, stateLabel } from '../backup/setState';
import type { RetentionPolicy } from '../backup/retention';
import { backupFlow } from '../flows/backupFlow';
import { pruneFlow, type PruneFlowResult } from '../flows/pruneFlow';
import { verifyFlow } from '../flows/verifyFlow';
import { cancelJob, followJob, jobStatus, listJobs, type JobInfo } from '../remote/jobs';
import { RemoteCommandError, type RemoteHost } from '../remote/remoteHost';
import { formatBytes } from '../core/format';
import { UsageError } from './args';
import type { ArgSpec, OptionSpec } from './args';
import { BREAK_STALE_LOCK, consoleSink, exitCodeOf, HOST_ARG, hostFor, intFlag, type CliCommand, type CliContext } from './context';
import { cliFrontEnd, printOutcome, pruneJson } from './frontEnd';

/** Streams a job (from the start of its log) and prints how it ended; the exit status follows the job's. */
export async function attach(ctx: CliContext, host: RemoteHost, id: string): Promise<number> {
  const outcome = await followJob(host, id, { sink: consoleSink(ctx), signal: ctx.signal, reconnect: () => ctx.pool.get(host.profile) });
  printOutcome(ctx, outcome);
  return exitCodeOf(outcome);
}

/** The job ID on HOST, or a usage error naming where to look (not the agent's exit status). */
async function knownJob(host: RemoteHost, id: string): Promise<void> {
  try {
    await jobStatus(host, id);
  } catch (e) {
    if (e instanceof RemoteCommandError && e.result.code === 2 && /no job /.test(e.result.stderr + e.result.stdout)) {
      throw new UsageError(`No job "${id}" on ${host.profile.name}: \`kadi-ops jobs ${host.profile.name}\` lists them.`);
    }
    throw e;
  }
}

const NO_SET = 'Name a backup set (see `kadi-ops list <host>`), or "latest".';
const NO_JOB = 'Name a job (see `kadi-ops jobs <host>`).';

/** `<set|latest>`: checked before the configuration is read, as are the other arguments with a `missing` message. */
export const SET_ARG: ArgSpec = { name: '<set|latest>', required: true, description: 'a backup set (`kadi-ops list <host>` lists them), or latest: the newest complete one', missing: NO_SET };
const JOB_ARG: ArgSpec = { name: '<job>', required: true, description: 'a job id (`kadi-ops jobs <host>` lists them)', missing: NO_JOB };

const n = (name: string, description: string): OptionSpec => ({ name, type: 'string', value: 'N', description });
/** The retention rules of prune, and of backup's prune after success. */
const RETENTION_OPTIONS: readonly OptionSpec[] = [
  n('keep-last', 'keep this many newest sets regardless of age'),
  n('keep-daily', 'keep the newest set of each of this many most recent days that have one'),
  n('keep-weekly', 'keep the newest set of each of this many most recent ISO weeks that have one'),
  n('keep-monthly', 'keep the newest set of each of this many most recent months that have one'),
  n('min-keep', 'never keep fewer good sets than this, whatever their age'),
];

function setArg(ctx: CliContext, listing: SetListing): BackupSet {
  const name = ctx.positionals[1];
  if (!name) throw new UsageError(NO_SET);
  const { sets } = listing;
  const found = name === 'latest' ? latestSet(sets, hostNow(listing)) : sets.find((s) => s.name === name);
  if (!found) throw new UsageError(`No complete backup set "${name}" on ${ctx.positionals[0]}.`);
  return found;
}

function retentionPolicy(ctx: CliContext): RetentionPolicy | undefined {
  const policy: RetentionPolicy = { keepLast: intFlag(ctx, 'keep-last'), keepDaily: intFlag(ctx, 'keep-daily'), keepWeekly: intFlag(ctx, 'keep-weekly'), keepMonthly: intFlag(ctx, 'keep-monthly'), minKeep: intFlag(ctx, 'min-keep') };
  const rules = [policy.keepLast, policy.keepDaily, policy.keepWeekly, policy.keepMonthly];
  return rules.every((v) => v === undefined) ? undefined : policy;
}

/** The exit status of a prune: 0 when nothing was to be deleted or it was only previewed, else the job's. */
function pruneExit(r: PruneFlowResult): number {
  if (r.state === 'ran') return exitCodeOf(r.outcome);
  return r.state === 'not-started' ? 1 : r.state === 'declined' ? 2 : 0;
}

/** `pin` and `unpin`: the same command but for the flag it sets. */
function pinCommand(pinned: boolean, summary: string): CliCommand {
  return {
    args: [HOST_ARG, SET_ARG],
    options: [],
    summary,
    async run(ctx) {
      const host = await hostFor(ctx);
      const name = setArg(ctx, await listSets(host)).name;
      await setPinned(host, name, pinned);
      if (ctx.json) ctx.out(JSON.stringify({ set: name, pinned }));
      else ctx.err(`${name} ${pinned ? 'pinned: no prune deletes it' : 'unpinned: retention may delete it'}.`);
      return 0;
    },
  };
}

export const jobCommands: Record<string, CliCommand> = {
  backup: {
    args: [HOST_ARG],
    options: [
      { name: 'archive', type: 'boolean', description: 'copy STORAGE_PATH and MISC_UPLOADS_PATH as one tar archive each instead of plain trees' },
      { name: 'redis', type: 'boolean', description: "include a Redis snapshot even if the profile's redis.enabled is off" },
      { name: 'stop-services', type: 'boolean', description: "stop the profile's services around the dump and copies, for a fully consistent set" },
      BREAK_STALE_LOCK,
      ...RETENTION_OPTIONS,
    ],
    summary: 'make a complete, checksummed backup set (a job on the host); with --keep-* options, prune after it, only if it succeeded',
    async run(ctx) {
      const host = await hostFor(ctx);
      const pruneAfter = retentionPolicy(ctx);
      const fe = cliFrontEnd(ctx, host, { deferJson: true });
      const r = await backupFlow(fe, ctx.pool, host.profile, {
        options: { filesMode: ctx.args.flag('archive') ? 'archive' : 'tree', redis: ctx.args.flag('redis') ? true : undefined, breakStaleLock: ctx.args.flag('break-stale-lock'), stopServices: ctx.args.flag('stop-services') },
        pruneAfter,
      });
      if (r.state === 'not-started') return 1;
      // One document: the backup's outcome and report, and what its prune did.
      if (ctx.json) ctx.out(JSON.stringify({ ...fe.jsonDocs[0], ...(r.prune ? { prune: pruneJson(r.prune) } : {}) }, null, 2));
      const code = exitCodeOf(r.outcome);
      return code !== 0 || !r.prune ? code : pruneExit(r.prune);
    },
  },
  list: {
    args: [HOST_ARG],
    options: [],
    summary: 'list backup sets (newest first) with size, status and Kadi version',
    async run(ctx) {
      const host = await hostFor(ctx);
      // The clock's offset is a measurement of this call (it differs by milliseconds between two): said as a note when it matters, not listed.
      const { clockOffsetMs: _offset, ...listing } = await listSets(host);
      const clock = clockNote({ clockOffsetMs: _offset });
      if (clock) ctx.err(`Note: ${clock}.`);
      if (ctx.json) {
        ctx.out(JSON.stringify({ ...listing, sets: listing.sets.map((s) => ({ ...s, state: setState(s.verify) })) }, null, 2));
        return 0;
      }
      for (const s of listing.sets) {
        const tags = [stateLabel(setState(s.verify)), s.pinned ? 'pinned' : '', s.preRestore ? 'pre-restore' : ''].filter(Boolean).join(', ');
        ctx.out(`${s.name}  ${formatBytes(s.size).padStart(10)}  Kadi ${s.manifest.kadiVersion ?? '?'}  ${tags}`);
      }
      for (const p of listing.partials) ctx.out(`${p.name}  partial (${partialOrigin(p)}) — not a backup`);
      for (const i of listing.invalid) ctx.out(`${i.name}  INVALID: ${i.reason}`);
      if (listing.sets.length === 0) ctx.err(`No complete backup sets on ${host.profile.name}.`);
      return 0;
    },
  },
  verify: {
    args: [HOST_ARG, SET_ARG],
    options: [
      { name: 'deep', type: 'boolean', description: 'also restore the dump into a throwaway PostgreSQL cluster (or a scratch database) and cross-check it with the files' },
      BREAK_STALE_LOCK,
    ],
    summary: 'check every artifact and file against the manifest; --deep also restores the dump into a throwaway PostgreSQL cluster (or a scratch DB) and checks it',
    async run(ctx) {
      const host = await hostFor(ctx);
      const set = setArg(ctx, await listSets(host));
      const r = await verifyFlow(cliFrontEnd(ctx, host), { setName: set.name, level: ctx.args.flag('deep') ? 'deep' : 'quick' });
      return r.state === 'ran' ? exitCodeOf(r.outcome) : 1;
    },
  },
  prune: {
    args: [HOST_ARG],
    options: [...RETENTION_OPTIONS, { name: 'dry-run', type: 'boolean', description: 'show what would be deleted and delete nothing' }, BREAK_STALE_LOCK],
    summary: 'delete old sets by retention policy (never pinned or the newest verified set)',
    async run(ctx) {
      const host = await hostFor(ctx);
      const policy = retentionPolicy(ctx);
      if (!policy) throw new UsageError('Give at least one --keep-* option.');
      const r = await pruneFlow(cliFrontEnd(ctx, host, { deferJson: true }), ctx.pool, host.profile, { policy, dryRun: ctx.args.flag('dry-run') });
      if (ctx.json) ctx.out(JSON.stringify(pruneJson(r), null, 2));
      return pruneExit(r);
    },
  },
  pin: pinCommand(true, 'protect a set from pruning'),
  unpin: pinCommand(false, 'let a set be pruned again'),
  'clean-partials': {
    args: [HOST_ARG],
    options: [],
    summary: 'remove partial sets left by jobs that died and what interrupted prunes left of sets',
    async run(ctx) {
      const host = await hostFor(ctx);
      const { partials } = await listSets(host);
      await cleanPartials(host, partials.map((p) => p.name));
      if (ctx.json) ctx.out(JSON.stringify({ removed: partials.map((p) => p.name) }));
      else ctx.err(`Removed ${partials.length} partial set(s).`);
      return 0;
    },
  },
  jobs: {
    args: [HOST_ARG],
    options: [],
    summary: 'list running and recent jobs',
    async run(ctx) {
      const host = await hostFor(ctx);
      const jobs = await listJobs(host);
      if (ctx.json) ctx.out(JSON.stringify(jobs.map(jobJson), null, 2));
      else for (const j of jobs) ctx.out(`${j.id}  ${j.kind.padEnd(8)} ${j.state === 'finished' ? `exit ${j.status}` : j.state}  by ${j.operator}@${j.client} since ${j.started}`);
      return 0;
    },
  },
  attach: {
    args: [HOST_ARG, JOB_ARG],
    options: [],
    summary: 'stream a job from the start of its log and report how it ended; Ctrl-C stops watching and leaves the job running (`kadi-ops cancel` stops it)',
    interrupt: 'detach',
    async run(ctx) {
      const host = await hostFor(ctx);
      const id = ctx.positionals[1];
      if (!id) throw new UsageError(NO_JOB);
      await knownJob(host, id);
      // Watching a job (a scheduled one, a colleague's) never cancels it: Ctrl-C only stops following.
      const stopped = new Promise<'stopped'>((resolve) => {
        if (ctx.signal.aborted) resolve('stopped');
        ctx.signal.addEventListener('abort', () => resolve('stopped'), { once: true });
      });
      const followed = followJob(host, id, { sink: consoleSink(ctx), reconnect: () => ctx.pool.get(host.profile) });
      const first = await Promise.race([followed, stopped]);
      if (first === 'stopped') {
        followed.catch(() => undefined); // its channel closes with the connection
        ctx.err(`Stopped following job ${id}; it keeps running on ${host.profile.name}. Follow it again with \`kadi-ops attach ${host.profile.name} ${id}\`, stop it with \`kadi-ops cancel ${host.profile.name} ${id}\`.`);
        return 130;
      }
      printOutcome(ctx, first);
      return exitCodeOf(first);
    },
  },
  cancel: {
    args: [HOST_ARG, JOB_ARG],
    options: [
      {
        name: 'force',
        type: 'boolean',
        description: "also stop the job's cleanup, when it was already running (one that hangs): services it has not started again stay stopped, partial output may remain",
      },
    ],
    summary: 'stop a job: TERM, then KILL after a grace period; its cleanup (services started again, partial output removed) runs to its end',
    async run(ctx) {
      const host = await hostFor(ctx);
      const id = ctx.positionals[1];
      if (!id) throw new UsageError(NO_JOB);
      const force = ctx.args.flag('force');
      await knownJob(host, id);
      const r = await cancelJob(host, id, { force });
      const next = r.stillCleaning ? ` Follow it with \`kadi-ops attach ${host.profile.name} ${id}\`; if it hangs, \`kadi-ops cancel ${host.profile.name} ${id} --force\` stops it.` : '';
      ctx.err(`Job ${id}: ${r.text}.${next}`);
      return 0;
    },
  },
};

/**
 * A job as `jobs --json` gives it: typed, one time format (ISO 8601, UTC). exitStatus is the
 * number a finished job recorded (null while it runs, when it died, or when it was cancelled).
 */
export function jobJson(j: JobInfo): Record<string, unknown> {
  const code = /^\d+$/.test(j.status) ? Number(j.status) : null;
  return {
    id: j.id,
    kind: j.kind,
    state: j.state,
    exitStatus: j.state === 'finished' ? code : null,
    cancelled: j.status === 'cancelled',
    operator: j.operator,
    client: j.client,
    command: j.command,
    started: j.started,
    finished: j.finishedAt === undefined ? null : new Date(j.finishedAt * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    logBytes: j.logBytes,
    ...(j.diedNote ? { diedNote: j.diedNote } : {}),
  };
}
