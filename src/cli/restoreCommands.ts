/** CLI verbs for restore and the maintenance jobs: each runs its flow (src/flows) with the terminal front end. */
import * as fs from 'node:fs';
import { dbUpgradeFlow, filesCheckFlow, fixPermissionsFlow, redisSnapshotFlow, reindexFlow, removeOrphansFlow, type MaintenanceFlowResult } from '../flows/maintenanceFlow';
import { restoreFlow, type RestoreFrontEnd } from '../flows/restoreFlow';
import type { RemoteHost } from '../remote/remoteHost';
import { DEFAULT_COMPONENTS, parseComponents, RESTORE_COMPONENTS, RestoreUsageError } from '../components';
import { isKadiModel, KADI_MODELS, listIndices } from '../restore/maintenance';
import { formatPlan } from '../restore/preflight';
import { UsageError, type OptionSpec } from './args';
import { BREAK_STALE_LOCK, consoleSink, exitCodeOf, HOST_ARG, hostFor, intFlag, pickProfile, type CliCommand, type CliContext } from './context';
import { SET_ARG } from './jobCommands';
import { cliFrontEnd, confirmed, yesNamesAnother, type CliFrontEnd } from './frontEnd';

/** The restore flow's terminal side: the plan on stdout, --yes for the confirmations, the job streamed. */
function cliRestoreFrontEnd(ctx: CliContext, host: RemoteHost): RestoreFrontEnd {
  return {
    ...cliFrontEnd(ctx, host),
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
      if (plan.components.includes('config') && !ctx.args.flag('overwrite-config') && plan.config?.some((c) => c.state !== 'same')) {
        ctx.err('The configuration differs (the keys are named above); it will NOT be overwritten without --overwrite-config.');
      }
      return confirmed(ctx, host);
    },
    // --overwrite-config answers this up front; a terminal job never asks.
    confirmOverwriteConfig: async () => false,
  };
}

/** An edited listing for --listing: its text, or a usage error that names the file and why. */
function readListing(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'it is a directory' : err.code === 'EACCES' ? 'permission denied' : err.message;
    throw new UsageError(`--listing ${file}: cannot read it (${why}); nothing changed (it is an edited pg_restore -l listing of the set's db.dump).`);
  }
}

/** The exit status of a maintenance flow: 0 nothing to do, 1 refused or not started, 2 not confirmed, else the job's. */
function maintenanceExit(r: MaintenanceFlowResult): number {
  if (r.state === 'ran') return exitCodeOf(r.outcome);
  return r.state === 'nothing' ? 0 : r.state === 'declined' ? 2 : 1;
}

/** Destructive verbs proceed only with it (frontEnd.ts: confirmed). */
const YES: OptionSpec = { name: 'yes', type: 'string', value: 'HOST', description: "proceed: the host profile's name, as if typed to confirm; without it nothing is changed" };

/** A maintenance verb on `<host>`: its flow with the terminal front end; every one can break a stale lock. */
function maintenance(
  summary: string,
  flow: (fe: CliFrontEnd, ctx: CliContext, host: RemoteHost) => Promise<MaintenanceFlowResult>,
  spec: Pick<CliCommand, 'args' | 'options'> & { check?: (ctx: CliContext) => void } = { args: [HOST_ARG], options: [] },
): CliCommand {
  return {
    args: spec.args,
    options: [...spec.options, BREAK_STALE_LOCK],
    summary,
    async run(ctx) {
      // What the command line alone decides is checked before anything connects.
      spec.check?.(ctx);
      if (spec.options.includes(YES) && yesNamesAnother(ctx, pickProfile(ctx, ctx.positionals[0]).name)) return 2;
      const host = await hostFor(ctx);
      return maintenanceExit(await flow(cliFrontEnd(ctx, host), ctx, host));
    },
  };
}

export const restoreCommands: Record<string, CliCommand> = {
  restore: {
    args: [HOST_ARG, SET_ARG],
    options: [
      { name: 'components', type: 'string', value: 'LIST', description: `what to restore, comma-separated, of ${RESTORE_COMPONENTS.join(',')} (default: ${DEFAULT_COMPONENTS.join(',')})` },
      { name: 'no-safety-backup', type: 'boolean', description: 'do not back up the current state into a pre-restore set first' },
      { name: 'checksum', type: 'boolean', description: 'compare the files of the trees by content, not only by size and modification time (reads both trees whole; repairs files whose bytes changed unseen)' },
      { name: 'listing', type: 'string', value: 'FILE', description: 'an edited `pg_restore -l` listing: restore only the database entries it keeps' },
      { name: 'overwrite-config', type: 'boolean', description: 'replace the Kadi configuration when it differs from the set\'s (else it is kept and named)' },
      { name: 'verify-again', type: 'boolean', description: 'hash the whole set again even if it passed a verification in the last 24 h' },
      { name: 'jobs', type: 'string', value: 'N', description: 'not used: the database is restored in one transaction (the plan says so)' },
      BREAK_STALE_LOCK,
      YES,
    ],
    summary: 'verify a set (or rely on its passing verification of the last 24 h), show the plan, then restore it as a job (safety backup first, services stopped, reindex and checks after)',
    async run(ctx) {
      // Everything the command line decides is checked before anything connects or runs.
      const profile = pickProfile(ctx, ctx.positionals[0]);
      const setName = ctx.positionals[1];
      if (!setName) throw new UsageError(SET_ARG.missing ?? '');
      let components;
      try {
        components = parseComponents(ctx.args.value('components'));
      } catch (e) {
        if (e instanceof RestoreUsageError) throw new UsageError(e.message);
        throw e;
      }
      const listingFile = ctx.args.value('listing');
      const listing = listingFile === undefined ? undefined : readListing(listingFile);
      const jobs = intFlag(ctx, 'jobs', 1);
      if (yesNamesAnother(ctx, profile.name)) return 2;
      const host = await hostFor(ctx);
      const result = await restoreFlow(cliRestoreFrontEnd(ctx, host), ctx.pool, host.profile, {
        setName,
        components,
        safetyBackup: !ctx.args.flag('no-safety-backup'),
        compareContent: ctx.args.flag('checksum'),
        listing,
        jobs,
        // A passing verification of the last 24 h is relied on unless --verify-again.
        reuseVerificationHours: ctx.args.flag('verify-again') ? 0 : undefined,
        overwriteConfig: ctx.args.flag('overwrite-config'),
        breakStaleLock: ctx.args.flag('break-stale-lock'),
      });
      if (result.state === 'refused') return 1;
      if (result.state === 'declined') return 2;
      if (result.state === 'not-started') return 1;
      return exitCodeOf(result.outcome);
    },
  },
  'db-upgrade': maintenance('run `kadi db upgrade` as a job (success only with its success line)', (fe) => dbUpgradeFlow(fe)),
  reindex: maintenance('rebuild the search indices as a job; "Error indexing" lines are failures', (fe, ctx) => reindexFlow(fe, ctx.args.value('model')), {
    args: [HOST_ARG],
    options: [{ name: 'model', type: 'string', value: 'MODEL', description: `rebuild only this model's index (${KADI_MODELS.join(', ')}); default: all` }],
    check(ctx) {
      const model = ctx.args.value('model');
      if (model !== undefined && !isKadiModel(model)) throw new UsageError(`--model must be one of ${KADI_MODELS.join(', ')}, not "${model}".`);
    },
  }),
  indices: {
    args: [HOST_ARG],
    options: [],
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
  'remove-orphans': maintenance(
    'remove orphaned search indices (never one behind an alias); all orphans unless named',
    (fe, ctx, host) => removeOrphansFlow(fe, ctx.pool, host.profile, { names: ctx.positionals.length > 1 ? ctx.positionals.slice(1) : undefined }),
    { args: [HOST_ARG, { name: 'INDEX', required: false, variadic: true, description: 'an orphaned index to remove (default: every orphan)' }], options: [YES] },
  ),
  'files-check': maintenance(
    'run `kadi files check` (answering "n"); --resolve --confirm-count N deletes inconsistent objects only if exactly N are found',
    (fe, ctx) => {
      const resolve = ctx.args.flag('resolve');
      const confirmCount = intFlag(ctx, 'confirm-count');
      if (resolve && confirmCount === undefined) throw new UsageError('--resolve needs --confirm-count N, N being the number of inconsistencies a plain files-check reported.');
      return filesCheckFlow(fe, { resolveCount: resolve ? confirmCount : undefined });
    },
    {
      args: [HOST_ARG],
      options: [
        { name: 'resolve', type: 'boolean', description: 'let Kadi delete the inconsistent objects it finds (with --confirm-count)' },
        { name: 'confirm-count', type: 'string', value: 'N', description: 'the number of inconsistencies a plain files-check reported; --resolve proceeds only if exactly N are found' },
      ],
    },
  ),
  'redis-snapshot': maintenance('make Redis write its snapshot now (BGSAVE) and wait for it', (fe, _ctx, host) => redisSnapshotFlow(fe, host.profile)),
  'fix-permissions': maintenance('set STORAGE_PATH and MISC_UPLOADS_PATH to the live directory owner/group, dirs 750, files 640 (fast)', (fe) => fixPermissionsFlow(fe)),
};
