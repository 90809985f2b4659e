/** CLI verbs for restore and the maintenance jobs. */
import * as fs from 'node:fs';
import { MemorySink, teeSink } from '../core/sink';
import { discover } from '../kadi/discovery';
import { followJob, type JobOutcome } from '../remote/jobs';
import type { RemoteHost } from '../remote/remoteHost';
import { parseComponents, RestoreUsageError } from '../restore/components';
import { listIndices, startDbUpgrade, startFilesCheck, startFixPermissions, startRedisSnapshot, startReindex, startRemoveOrphans } from '../restore/maintenance';
import { restoreFlow, type RestoreFrontEnd } from '../flows/restoreFlow';
import { formatPlan } from '../restore/preflight';
import { formatReport, parseJobReport, type JobReport } from '../restore/report';
import { stringFlag, UsageError } from './args';
import { consoleSink, exitCodeOf, hostFor, intFlag, type CliCommand, type CliContext } from './context';

/** Streams a job to the console to its end; its stdout is kept for the summary. */
async function followLogged(ctx: CliContext, host: RemoteHost, id: string): Promise<{ outcome: JobOutcome; log: string }> {
  const log = new MemorySink();
  const outcome = await followJob(host, id, { sink: teeSink(log, consoleSink(ctx)), signal: ctx.signal, reconnect: () => ctx.pool.get(host.profile) });
  return { outcome, log: log.text('stdout') };
}

/** A finished job's parsed summary: JSON with --json, else the report lines on stderr. */
function printReport(ctx: CliContext, title: string, report: JobReport, outcome: JobOutcome): void {
  if (ctx.json) ctx.out(JSON.stringify({ outcome, report: { ...report, sections: undefined } }, null, 2));
  else for (const l of formatReport(title, report, outcome.result)) ctx.err(l);
}

/** Streams a job, then prints the parsed summary; the exit status follows the job's. */
async function followAndReport(ctx: CliContext, host: RemoteHost, id: string, title: string): Promise<number> {
  const { outcome, log } = await followLogged(ctx, host, id);
  printReport(ctx, title, parseJobReport(log), outcome);
  return exitCodeOf(outcome);
}


/** The restore flow's terminal side: the plan on stdout, --yes for the confirmations, the job streamed. */
function cliRestoreFrontEnd(ctx: CliContext, host: RemoteHost): RestoreFrontEnd {
  const profile = host.profile;
  return {
    async preflight(title, work) {
      ctx.err(`${title}…`);
      return work(consoleSink(ctx), ctx.signal);
    },
    async showPlan(plan) {
      if (ctx.json) ctx.out(JSON.stringify({ ...plan, set: plan.set.name }, null, 2));
      else for (const l of formatPlan(plan)) ctx.out(l);
    },
    async refused() {
      ctx.err('Refused: nothing was changed (see REFUSED above).');
    },
    async confirm(plan) {
      if (plan.components.includes('config') && !ctx.args.flags.has('overwrite-config') && plan.config?.some((c) => c.state !== 'same')) {
        ctx.err('The configuration differs; it is shown above and will NOT be overwritten without --overwrite-config.');
      }
      return confirmed(ctx, host);
    },
    // --overwrite-config and --break-stale-lock answer these up front; a terminal job never asks.
    confirmOverwriteConfig: async () => false,
    confirmBreakStaleLock: async () => false,
    async runJob(_title, start) {
      const id = await start(await ctx.pool.get(profile));
      ctx.err(`Restore job ${id} started on ${profile.name}; it keeps running if this connection drops (kadi-ops attach ${profile.name} ${id}).`);
      return followLogged(ctx, host, id);
    },
    async finished(title, report, outcome) {
      printReport(ctx, title, report, outcome);
    },
  };
}

/** Destructive verbs proceed only with --yes naming the host profile, like typing its name. */
function confirmed(ctx: CliContext, host: RemoteHost): boolean {
  const yes = ctx.args.flags.get('yes');
  if (yes === host.profile.name) return true;
  ctx.err(yes === undefined ? `Nothing changed. To proceed, repeat with --yes ${host.profile.name}` : `--yes "${String(yes)}" does not name this host (${host.profile.name}); nothing changed.`);
  return false;
}

function simpleJob(summary: string, start: (ctx: CliContext, host: RemoteHost) => Promise<string>, title: string, args = '<host>'): CliCommand {
  return {
    args,
    summary,
    async run(ctx) {
      const host = await hostFor(ctx);
      const id = await start(ctx, host);
      ctx.err(`${title} job ${id} started on ${host.profile.name}.`);
      return followAndReport(ctx, host, id, title);
    },
  };
}

export const restoreCommands: Record<string, CliCommand> = {
  restore: {
    args: '<host> <set|latest> [--components db,storage,uploads,redis,config] [--no-safety-backup] [--listing FILE] [--overwrite-config] [--verify-again] [--break-stale-lock] --yes <host name>',
    summary: 'verify a set (or rely on its passing verification of the last 24 h), show the plan, then restore it as a job (safety backup first, services stopped, reindex and checks after)',
    async run(ctx) {
      const host = await hostFor(ctx);
      const setName = ctx.positionals[1];
      if (!setName) throw new UsageError('Name a backup set (see `kadi-ops list <host>`), or "latest".');
      let components;
      try {
        components = parseComponents(stringFlag(ctx.args, 'components'));
      } catch (e) {
        if (e instanceof RestoreUsageError) throw new UsageError(e.message);
        throw e;
      }
      const listingFile = stringFlag(ctx.args, 'listing');
      const listing = listingFile === undefined ? undefined : fs.readFileSync(listingFile, 'utf8');
      const result = await restoreFlow(cliRestoreFrontEnd(ctx, host), ctx.pool, host.profile, {
        setName,
        components,
        safetyBackup: !ctx.args.flags.has('no-safety-backup'),
        listing,
        jobs: intFlag(ctx, 'jobs', 1),
        // A passing verification of the last 24 h is relied on unless --verify-again.
        reuseVerificationHours: ctx.args.flags.has('verify-again') ? 0 : undefined,
        overwriteConfig: ctx.args.flags.has('overwrite-config'),
        breakStaleLock: ctx.args.flags.has('break-stale-lock'),
      });
      if (result.state === 'refused') return 1;
      if (result.state === 'declined') return 2;
      if (result.state === 'not-started') return 1;
      return exitCodeOf(result.outcome);
    },
  },
  'db-upgrade': simpleJob('run `kadi db upgrade` as a job (success only with its success line)', (_c, h) => startDbUpgrade(h), 'kadi db upgrade'),
  reindex: simpleJob('rebuild the search indices as a job; "Error indexing" lines are failures', (c, h) => startReindex(h, stringFlag(c.args, 'model')), 'kadi search reindex', '<host> [--model M]'),
  indices: {
    args: '<host>',
    summary: 'list search indices: the live one behind each alias and the orphans',
    async run(ctx) {
      const host = await hostFor(ctx);
      const l = await listIndices(host);
      if (ctx.json) ctx.out(JSON.stringify(l, null, 2));
      else {
        for (const x of l.live) ctx.out(`live     ${x.model.padEnd(11)} ${x.name}`);
        for (const x of l.orphaned) ctx.out(`orphaned ${x.model.padEnd(11)} ${x.name}`);
      }
      return 0;
    },
  },
  'remove-orphans': {
    args: '<host> [INDEX...] --yes <host name>',
    summary: 'remove orphaned search indices (never one behind an alias); all orphans unless named',
    async run(ctx) {
      const host = await hostFor(ctx);
      const listing = await listIndices(host);
      const names = ctx.positionals.length > 1 ? ctx.positionals.slice(1) : listing.orphaned.map((o) => o.name);
      if (names.length === 0) {
        ctx.err('No orphaned indices.');
        return 0;
      }
      for (const n of names) ctx.out(`remove ${n}`);
      if (!confirmed(ctx, host)) return 2;
      const id = await startRemoveOrphans(host, listing, names);
      return followAndReport(ctx, host, id, 'remove-orphans');
    },
  },
  'files-check': simpleJob(
    'run `kadi files check` (answering "n"); --resolve --confirm-count N deletes inconsistent objects only if exactly N are found',
    (c, h) => {
      const resolve = c.args.flags.has('resolve');
      const confirmCount = intFlag(c, 'confirm-count');
      if (resolve && confirmCount === undefined) throw new UsageError('--resolve needs --confirm-count N, N being the number of inconsistencies a plain files-check reported.');
      return startFilesCheck(h, { resolve, confirmCount });
    },
    'kadi files check',
    '<host> [--resolve --confirm-count N]',
  ),
  'redis-snapshot': simpleJob('make Redis write its snapshot now (BGSAVE) and wait for it', (_c, h) => startRedisSnapshot(h), 'redis snapshot'),
  'fix-permissions': simpleJob(
    'set STORAGE_PATH and MISC_UPLOADS_PATH to the live directory owner/group, dirs 750, files 640 (fast)',
    async (_c, h) => startFixPermissions(h, await discover(h)),
    'fix-permissions',
  ),
};
