/**
 * kadi-ops: the headless CLI over the same core as the extension, for scripts and scheduled runs.
 * Exit status: 0 success, 1 the operation failed, 2 usage or configuration error, 130 cancelled.
 * With --json, an error that ends the command is one line of JSON on stderr:
 * {"error": {"kind": "usage"|"config"|"failed"|"cancelled", "message": "…", "exitCode": 2, "command": "verify"}}
 * ("command" only once the verb is known). The command line is checked before the configuration is
 * read, and the configuration before anything connects.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigFileError, formatConfigError, loadConfigFile, resolveProfiles } from '../config/hostProfiles';
import { closestKey } from '../config/suggest';
import type { HostProfile } from '../config/types';
import { TOOL_VERSION } from '../core/version';
import { ConnectionPool } from '../remote/connectionPool';
import { CancelledError } from '../ssh/errors';
import { checkPositionals, GLOBAL_OPTIONS, ParsedArgs, parseCommandLine, scanCommandLine, UsageError, type CommandSpec, type OptionSpec } from './args';
import { commands } from './commands';
import type { CliContext } from './context';
import { commandHelp, commandHint, fullHelp, HELP_HINT, SHORT_USAGE } from './help';
import { TerminalHostKeys, TerminalSecrets } from './terminalPrompts';
import { CliConfigError } from './context';

export { CliConfigError };

export type CliErrorKind = 'usage' | 'config' | 'failed' | 'cancelled';
const EXIT_STATUS: Readonly<Record<CliErrorKind, number>> = { usage: 2, config: 2, failed: 1, cancelled: 130 };

/** The verbs that need no configuration; main runs them itself. */
const BUILTINS: Readonly<Record<string, CommandSpec>> = {
  help: {
    args: [{ name: 'COMMAND', required: false, description: 'the command to describe (default: all of them)' }],
    options: [],
    summary: "show this help, or one command's arguments and options",
  },
  version: { args: [], options: [], summary: 'print "kadi-ops <version>"' },
};

const ALL: Readonly<Record<string, CommandSpec>> = { ...commands, ...BUILTINS };

function isCommand(name: string): boolean {
  return Object.hasOwn(ALL, name);
}

/** Every option any verb declares, once, with the global ones: to find the verb before knowing it. */
function allOptions(): OptionSpec[] {
  const byName = new Map<string, OptionSpec>(GLOBAL_OPTIONS.map((o) => [o.name, o]));
  for (const spec of Object.values(ALL)) {
    for (const o of spec.options) {
      const seen = byName.get(o.name);
      if (seen && seen.type !== o.type) throw new Error(`Internal error: --${o.name} is declared both as a ${seen.type} and a ${o.type} option.`);
      byName.set(o.name, o);
    }
  }
  return [...byName.values()];
}

function ownersOf(name: string): string[] {
  return Object.entries(ALL)
    .filter(([, spec]) => spec.options.some((o) => o.name === name))
    .map(([verb]) => verb);
}

function unknownCommand(name: string): UsageError {
  const guess = closestKey(name, Object.keys(ALL), 1);
  return new UsageError(`Unknown command "${name}".${guess ? ` Did you mean "${guess}"?` : ''}`, HELP_HINT);
}

function versionText(json: boolean): string {
  return json ? JSON.stringify({ name: 'kadi-ops', version: TOOL_VERSION }) : `kadi-ops ${TOOL_VERSION}`;
}

const stdout = (s: string): void => void process.stdout.write(s + '\n');
const stderr = (s: string): void => void process.stderr.write(s + '\n');

/** Runs the CLI on `argv` (without node and the script) and returns the exit status; never throws. */
export async function main(argv: readonly string[]): Promise<number> {
  const { commandIndex, given } = scanCommandLine(argv, allOptions());
  const json = given.has('json');
  const name = commandIndex >= 0 ? argv[commandIndex] : undefined;
  try {
    if (name !== undefined && !isCommand(name)) throw unknownCommand(name);
    if (given.has('help')) {
      stdout(name === undefined || name === 'help' ? fullHelp(TOOL_VERSION, ALL) : commandHelp(name, ALL[name]));
      return 0;
    }
    if (given.has('version')) {
      stdout(versionText(json));
      return 0;
    }
    if (name === undefined) {
      parseCommandLine(argv, GLOBAL_OPTIONS, { ownersOf, hint: HELP_HINT });
      throw new UsageError(SHORT_USAGE, HELP_HINT);
    }
    const spec = ALL[name];
    const options = [...spec.options, ...GLOBAL_OPTIONS];
    const rest = argv.filter((_, i) => i !== commandIndex);
    const { positionals, values } = parseCommandLine(rest, options, { command: name, ownersOf, hint: commandHint(name) });
    checkPositionals(name, spec, positionals, commandHint(name));
    const args = new ParsedArgs(name, positionals, values, options);
    if (name === 'help') {
      const target = positionals[0];
      if (target !== undefined && !isCommand(target)) throw unknownCommand(target);
      stdout(target === undefined ? fullHelp(TOOL_VERSION, ALL) : commandHelp(target, ALL[target]));
      return 0;
    }
    if (name === 'version') {
      stdout(versionText(json));
      return 0;
    }
    return await run(name, args, loadProfiles(args));
  } catch (e) {
    return reportError(e, json, name !== undefined && isCommand(name) ? name : undefined);
  }
}

/** A verb with its configuration loaded: connections, Ctrl-C, and the pool closed at the end. */
async function run(name: string, args: ParsedArgs, profiles: HostProfile[]): Promise<number> {
  const abort = new AbortController();
  const detach = commands[name].interrupt === 'detach';
  const onSigint = (): void => {
    if (abort.signal.aborted) {
      // Leaving without waiting: what was asked of the host may still be under way there.
      process.stderr.write(detach ? '' : 'Left without waiting: the cancel may still be under way on the host (kadi-ops jobs <host> shows it).\n');
      process.exit(130);
    }
    process.stderr.write(detach ? '\n' : '\nCancelling… (press Ctrl-C again to leave without waiting)\n');
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  const pool = new ConnectionPool({
    secrets: new TerminalSecrets(),
    hostKeys: new TerminalHostKeys(args.flag('accept-new-host-key')),
    log: args.flag('verbose') ? (m) => process.stderr.write(`${m}\n`) : undefined,
  });
  try {
    const ctx: CliContext = { args, positionals: args.positionals, profiles, pool, signal: abort.signal, json: args.flag('json'), out: stdout, err: stderr };
    return await commands[name].run(ctx);
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
    pool.closeAll();
  }
}

/** What an error that ended the command prints on stderr (text, or one JSON line with --json), and the exit status. */
export function errorOutput(e: unknown, json: boolean, command?: string): { text: string; exitCode: number } {
  const kind: CliErrorKind = e instanceof UsageError ? 'usage' : e instanceof CliConfigError ? 'config' : e instanceof CancelledError ? 'cancelled' : 'failed';
  const message = e instanceof Error ? e.message : String(e);
  const exitCode = EXIT_STATUS[kind];
  if (json) return { text: JSON.stringify({ error: { kind, message, exitCode, ...(command === undefined ? {} : { command }) } }), exitCode };
  if (kind === 'failed') return { text: `kadi-ops: ${message}`, exitCode };
  return { text: e instanceof UsageError && e.hint ? `${message}\n${e.hint}` : message, exitCode };
}

function reportError(e: unknown, json: boolean, command: string | undefined): number {
  const { text, exitCode } = errorOutput(e, json, command);
  stderr(text);
  return exitCode;
}

const DEFAULT_CONFIG = '~/.config/kadi-ops/hosts.json';

/** Where the host profiles come from: --config, else $KADI_OPS_CONFIG, else the default file. */
function configSource(args: ParsedArgs): { file: string; from: 'option' | 'environment' | 'default' } {
  const option = args.value('config');
  if (option !== undefined) return { file: option, from: 'option' };
  const env = process.env.KADI_OPS_CONFIG;
  if (env) return { file: env, from: 'environment' };
  return { file: path.join(os.homedir(), '.config', 'kadi-ops', 'hosts.json'), from: 'default' };
}

function loadProfiles(args: ParsedArgs): HostProfile[] {
  const { file, from } = configSource(args);
  let raw: unknown;
  try {
    raw = loadConfigFile(file);
  } catch (e) {
    if (!(e instanceof ConfigFileError)) throw e;
    if (e.reason !== 'missing') throw new CliConfigError(e.message);
    if (from === 'default') {
      throw new CliConfigError(
        `No host configuration: looked for ${file} (the default, ${DEFAULT_CONFIG}), which does not exist.\n` +
          `Point to one with --config <file> or $KADI_OPS_CONFIG, or create it: {"hosts": [{"name": "prod", "ssh": {"host": "kadi.example.org"}}]}.`,
      );
    }
    throw new CliConfigError(
      `Cannot read config file ${file} (given by ${from === 'option' ? '--config' : '$KADI_OPS_CONFIG'}): it does not exist.\n` +
        `Point to another with --config <file> or $KADI_OPS_CONFIG (without either: ${DEFAULT_CONFIG}).`,
    );
  }
  const { profiles, errors } = resolveProfiles(raw, {});
  if (errors.length > 0) throw new CliConfigError(`Invalid host configuration in ${file}:\n${errors.map((e) => '  ' + formatConfigError(e)).join('\n')}`);
  return profiles;
}

if (require.main === module) {
  // Output into a pipe closed early (kadi-ops attach prod ID | head) ends the CLI as it ends cat:
  // quietly, exit status 141 (SIGPIPE), no stack trace. A job on the host keeps running, as after a
  // dropped connection.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.stderr.write('kadi-ops: the output was closed; stopped (a job on the host keeps running: kadi-ops jobs <host>).\n');
    process.exit(141);
  });
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      process.stderr.write(`kadi-ops: ${e.message}\n`);
      process.exit(1);
    },
  );
}
