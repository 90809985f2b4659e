/**
 * The flows' terminal side (src/flows): jobs streamed to the console, the answers given up front
 * as options (--yes <host>, --break-stale-lock, --resolve --confirm-count N), and the summary on
 * stderr, or as JSON with --json.
 */
import { MemorySink, teeSink } from '../core/sink';
import type { BackupFrontEnd } from '../flows/backupFlow';
import { formatPrunePlan, type PruneFlowResult } from '../flows/pruneFlow';
import type { MaintenanceFrontEnd } from '../flows/maintenanceFlow';
import { describeOutcome, followJob, warningLines, type JobOutcome } from '../remote/jobs';
import type { RemoteHost } from '../remote/remoteHost';
import { formatReport, type JobReport } from '../restore/report';
import { consoleSink, type CliContext } from './context';

/** Streams a job to the console to its end; its stdout is kept for the summary. */
export async function followLogged(ctx: CliContext, host: RemoteHost, id: string, offset = 0): Promise<{ outcome: JobOutcome; log: string }> {
  const log = new MemorySink();
  const outcome = await followJob(host, id, { sink: teeSink(log, consoleSink(ctx)), signal: ctx.signal, offset, reconnect: () => ctx.pool.get(host.profile) });
  return { outcome, log: log.text('stdout') };
}

/** How a job without a report ended: its outcome as JSON with --json, else a line and its warnings on stderr. */
export function printOutcome(ctx: CliContext, outcome: JobOutcome): void {
  if (ctx.json) ctx.out(JSON.stringify(outcome));
  else {
    ctx.err(`Job ${outcome.id} ${describeOutcome(outcome)}.`);
    for (const l of warningLines(outcome)) ctx.err(l);
  }
}

/** A finished job's parsed summary: JSON with --json, else the report lines on stderr. */
export function printReport(ctx: CliContext, title: string, report: JobReport, outcome: JobOutcome): void {
  if (ctx.json) ctx.out(JSON.stringify({ outcome, report: { ...report, sections: undefined } }, null, 2));
  else for (const l of formatReport(title, report, outcome.result, outcome)) ctx.err(l);
}

/** Destructive verbs proceed only with --yes naming the host profile, like typing its name. */
export function confirmed(ctx: CliContext, host: RemoteHost): boolean {
  const yes = ctx.args.value('yes');
  if (yes === host.profile.name) return true;
  usageNote(ctx, yes === undefined ? `Nothing changed. To proceed, repeat with --yes ${host.profile.name}` : wrongYes(yes, host.profile.name));
  return false;
}

/** A refusal that ends the verb with exit status 2: as text, or with --json the error line every other usage error is (README). */
function usageNote(ctx: CliContext, message: string): void {
  ctx.err(ctx.json ? JSON.stringify({ error: { kind: 'usage', message, exitCode: 2, command: ctx.args.command } }) : message);
}

/** A --yes that names another host: said before anything connects or runs (a verify, a listing), not after. */
export function yesNamesAnother(ctx: CliContext, profileName: string): boolean {
  const yes = ctx.args.value('yes');
  if (yes === undefined || yes === profileName) return false;
  usageNote(ctx, wrongYes(yes, profileName));
  return true;
}

function wrongYes(yes: string, profileName: string): string {
  return `--yes "${yes}" does not name this host (${profileName}); nothing changed.`;
}

export type CliFrontEnd = BackupFrontEnd & MaintenanceFrontEnd & {
  /** With deferJson: what finished() would have printed with --json, for the command to print as one document. */
  readonly jsonDocs: Record<string, unknown>[];
};

/** A prune's result as JSON: what was kept (why), what was to go, and the job's outcome if it ran. */
export function pruneJson(r: PruneFlowResult): Record<string, unknown> {
  return { state: r.state, keep: r.plan.keep, remove: r.plan.remove.map((x) => x.id), ...(r.state === 'ran' ? { outcome: r.outcome } : {}) };
}

/**
 * The CLI's answers to a flow. deferJson: with --json, nothing of the flow's is printed (a backup's
 * report, a prune's plan and outcome): the command prints one JSON document from the flow's result
 * and jsonDocs, so stdout stays one document even when a backup prunes afterwards.
 */
export function cliFrontEnd(ctx: CliContext, host: RemoteHost, opts: { deferJson?: boolean } = {}): CliFrontEnd {
  const profile = host.profile;
  const jsonDocs: Record<string, unknown>[] = [];
  const defer = ctx.json && opts.deferJson === true;
  return {
    jsonDocs,
    async runJob(title, start) {
      // A job that cannot start (busy, refused) is an error of the verb: exit status 1 with its message.
      const live = await ctx.pool.get(profile, ctx.signal);
      const id = await start(live);
      ctx.err(`${title} job ${id} started on ${profile.name}; it keeps running if this connection drops (kadi-ops attach ${profile.name} ${id}).`);
      return followLogged(ctx, live, id);
    },
    // --break-stale-lock answers this up front, for every verb's job; a terminal job never asks.
    breakStaleLock: ctx.args.flag('break-stale-lock'),
    confirmBreakStaleLock: async () => false,
    async finished(title, outcome, report) {
      // The same document printReport or printOutcome would print.
      if (defer) jsonDocs.push(report ? { outcome, report: { ...report, sections: undefined } } : { ...outcome });
      else if (report) printReport(ctx, title, report, outcome);
      else printOutcome(ctx, outcome);
    },
    async showPrunePlan(plan) {
      if (!ctx.json) for (const l of formatPrunePlan(plan)) ctx.out(l);
    },
    async nothingToPrune(plan) {
      if (!ctx.json) for (const l of formatPrunePlan(plan)) ctx.out(l);
    },
    // The --keep-* options are the operator's decision (and --dry-run the preview).
    confirmPrune: async () => true,
    async notice(message) {
      ctx.err(message);
    },
    // Without names: every orphan of the listing.
    chooseOrphans: async (listing) => listing.orphaned.map((o) => o.name),
    async confirmRemoveOrphans(names) {
      for (const n of names) ctx.out(`remove ${n}`);
      return confirmed(ctx, host);
    },
    async offerResolve(count) {
      ctx.err(`To resolve them (Kadi permanently deletes the ${count} inconsistent database objects and their data): kadi-ops files-check ${profile.name} --resolve --confirm-count ${count}`);
      return false;
    },
    confirmResolveCount: async () => false,
  };
}
