/** What every CLI verb gets, and how it names a host. */
import type { HostProfile } from '../config/types';
import type { ConnectionPool } from '../remote/connectionPool';
import { UsageError, type ParsedArgs } from './args';

export interface CliContext {
  args: ParsedArgs;
  positionals: string[];
  profiles: HostProfile[];
  pool: ConnectionPool;
  signal: AbortSignal;
  json: boolean;
  out(line: string): void;
  err(line: string): void;
}

export interface CliCommand {
  args: string;
  summary: string;
  run(ctx: CliContext): Promise<number>;
}

export function pickProfile(ctx: CliContext, name: string | undefined): HostProfile {
  if (!name) throw new UsageError(`Name a host: one of ${ctx.profiles.map((p) => p.name).join(', ') || '(none configured)'}.`);
  const p = ctx.profiles.find((x) => x.name === name);
  if (!p) throw new UsageError(`No host named "${name}" in the configuration (known: ${ctx.profiles.map((x) => x.name).join(', ') || 'none'}).`);
  return p;
}

