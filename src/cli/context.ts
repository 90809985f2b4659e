/** What every CLI verb gets, and how it names a host. */
import type { HostProfile } from '../config/types';
import { quietSink, type OutputSink } from '../core/sink';
import type { JobOutcome } from '../remote/jobs';
import type { RemoteHost } from '../remote/remoteHost';
import type { ConnectionPool } from '../remote/connectionPool';
import { UsageError, type ArgSpec, type CommandSpec, type OptionSpec, type ParsedArgs } from './args';

export interface CliContext {
  args: ParsedArgs;
  positionals: readonly string[];
  profiles: HostProfile[];
  pool: ConnectionPool;
  signal: AbortSignal;
  json: boolean;
  out(line: string): void;
  err(line: string): void;
}

/** A verb: its declared arguments and options (args.ts) and what it does. */
/** A problem with the host configuration (missing, unreadable, invalid, none configured): exit status 2. */
export class CliConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliConfigError';
  }
}

export interface CliCommand extends CommandSpec {
  run(ctx: CliContext): Promise<number>;
  /** What Ctrl-C does: cancel what the verb runs (the default), or only stop watching (attach: the job is not this command's). */
  interrupt?: 'cancel' | 'detach';
}

/** The first argument of most verbs. A missing one is reported by pickProfile, with the configured names. */
export const HOST_ARG: ArgSpec = { name: '<host>', required: true, description: "a host profile's name (`kadi-ops hosts` lists them)" };

/** Every job verb takes it: its front end answers the stale-lock question up front (frontEnd.ts). */
export const BREAK_STALE_LOCK: OptionSpec = {
  name: 'break-stale-lock',
  type: 'boolean',
  description: 'break the lock a dead job left behind (it is named); without it such a lock is refused',
};

export function pickProfile(ctx: CliContext, name: string | undefined): HostProfile {
  if (!name) throw new UsageError(`Name a host: one of ${ctx.profiles.map((p) => p.name).join(', ') || '(none configured)'}.`);
  const p = ctx.profiles.find((x) => x.name === name);
  if (!p) throw new UsageError(`No host named "${name}" in the configuration (known: ${ctx.profiles.map((x) => x.name).join(', ') || 'none'}).`);
  return p;
}


/** The host named by the first positional argument, connected (Ctrl-C while connecting: CancelledError, exit status 130). */
export function hostFor(ctx: CliContext): Promise<RemoteHost> {
  return ctx.pool.get(pickProfile(ctx, ctx.positionals[0]), ctx.signal);
}

/** Job output to the terminal as it arrives; with --json only warnings and errors (on stderr). */
export function consoleSink(ctx: CliContext): OutputSink {
  // Tool chatter (the job's [detail] lines) only with --verbose; the job's log keeps it all.
  return quietSink(
    {
      lines(stream, lines) {
        const text = lines.join('\n') + '\n';
        if (stream === 'stdout' || stream === 'info') {
          if (!ctx.json) process.stdout.write(text);
        } else process.stderr.write(text);
      },
    },
    ctx.args.flag('verbose'),
  );
}

/** The process exit status of a job's outcome (0, 1, or 130 when cancelled). */
export function exitCodeOf(o: JobOutcome): number {
  return o.result === 'succeeded' ? 0 : o.result === 'cancelled' ? 130 : 1;
}

/** A whole-number option, at least `min`. */
export function intFlag(ctx: CliContext, name: string, min = 0): number | undefined {
  const v = ctx.args.value(name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min) throw new UsageError(`--${name} must be a whole number${min > 0 ? ` of at least ${min}` : ''} (got "${v}").`);
  return Number(v);
}
