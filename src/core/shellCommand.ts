/**
 * The one place where remote shell text is made. Every command sent to a host is described as
 * data (argument vectors, pipes, redirections) and rendered here with every word quoted, so no
 * caller ever interpolates a string into shell.
 */

/** A simple command: argv words, optional redirections. */
export interface SimpleCommand {
  argv: string[];
  /** Redirect stdout to a file (truncate), append, or stdin from a file. */
  stdoutTo?: string;
  stdoutAppend?: string;
  stdinFrom?: string;
  /** 2>&1 */
  stderrToStdout?: boolean;
  /** 2>/dev/null */
  discardStderr?: boolean;
}

export type ShellNode =
  | string[]
  | SimpleCommand
  | { pipe: ShellNode[] }
  | { and: ShellNode[] }
  | { or: ShellNode[] }
  | { seq: ShellNode[] }
  | { not: ShellNode }
  | { group: ShellNode };

export class UnsafeArgumentError extends Error {}

const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Quotes one argument for POSIX sh. NUL cannot be passed through argv at all, so it is refused. */
export function quoteArg(arg: string): string {
  if (typeof arg !== 'string') throw new UnsafeArgumentError(`argument is not a string: ${String(arg)}`);
  if (arg.includes('\0')) throw new UnsafeArgumentError('argument contains a NUL byte');
  if (arg.length > 0 && SAFE_WORD.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

function renderSimple(c: SimpleCommand): string {
  if (c.argv.length === 0) throw new UnsafeArgumentError('empty command');
  let s = c.argv.map(quoteArg).join(' ');
  if (c.stdinFrom !== undefined) s += ` < ${quoteArg(c.stdinFrom)}`;
  if (c.stdoutTo !== undefined) s += ` > ${quoteArg(c.stdoutTo)}`;
  if (c.stdoutAppend !== undefined) s += ` >> ${quoteArg(c.stdoutAppend)}`;
  if (c.stderrToStdout) s += ' 2>&1';
  if (c.discardStderr) s += ' 2>/dev/null';
  return s;
}

/** Renders a command tree to one line of POSIX shell. */
export function buildCommand(node: ShellNode): string {
  if (Array.isArray(node)) return renderSimple({ argv: node });
  if ('argv' in node) return renderSimple(node);
  if ('pipe' in node) return join(node.pipe, ' | ');
  if ('and' in node) return join(node.and, ' && ');
  if ('or' in node) return join(node.or, ' || ');
  if ('seq' in node) return join(node.seq, '; ');
  if ('not' in node) return `! ${buildCommand(node.not)}`;
  return `{ ${buildCommand(node.group)}; }`;
}

function join(parts: ShellNode[], op: string): string {
  if (parts.length === 0) throw new UnsafeArgumentError('empty command list');
  return parts.map((p) => (isCompound(p) ? `{ ${buildCommand(p)}; }` : buildCommand(p))).join(op);
}

function isCompound(n: ShellNode): boolean {
  return !Array.isArray(n) && !('argv' in n) && !('group' in n);
}

/** `sh -c <script>` where the script itself was built by buildCommand: for running under sudo. */
export function shellArgv(node: ShellNode): string[] {
  return ['sh', '-c', buildCommand(node)];
}

/**
 * Prefix that makes the remote login shell report its process-group id on stderr before running
 * the command, so cancellation can signal the whole group (sshd makes the command a session
 * leader, so $$ is the group id). The prefix is constant text; the command was built above.
 */
export const PGID_MARKER = 'kadi-ops-pgid:';
export function withPgidReport(command: string): string {
  return `echo ${PGID_MARKER}$$ >&2; ${command}`;
}
