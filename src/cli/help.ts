/** Usage lines and help, made from the verbs' declarations (args.ts) so they say what the parser accepts. */
import { GLOBAL_OPTIONS, optionLabel, type CommandSpec, type OptionSpec } from './args';

export const EXIT_STATUS_LINE = 'Exit status: 0 success, 1 the operation failed, 2 usage or configuration error, 130 cancelled.';
export const SHORT_USAGE = 'Usage: kadi-ops <command> [arguments] [options]';
export const HELP_HINT = 'Run `kadi-ops --help` for the list of commands.';

/** The hint under a verb's usage error. */
export function commandHint(name: string): string {
  return `Run \`kadi-ops help ${name}\` for its arguments and options.`;
}

/** `kadi-ops verify <host> <set|latest> [--deep] [--break-stale-lock]` */
export function usageLine(name: string, spec: CommandSpec): string {
  const args = spec.args.map((a) => (a.required ? a.name : `[${a.name}${a.variadic ? '...' : ''}]`));
  const options = spec.options.map((o) => `[--${o.name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}]`);
  return ['kadi-ops', name, ...args, ...options].join(' ');
}

function table(rows: readonly (readonly [string, string])[]): string[] {
  const width = Math.min(28, Math.max(...rows.map(([l]) => l.length)) + 2);
  return rows.map(([l, r]) => (l.length + 2 > width ? `  ${l}\n  ${' '.repeat(width)}${r}` : `  ${l.padEnd(width)}${r}`));
}

function optionRows(options: readonly OptionSpec[]): string[] {
  return table(options.map((o) => [optionLabel(o), o.description]));
}

const SECRETS = 'Secrets for unattended runs: KADI_OPS_SSH_PASSPHRASE, KADI_OPS_SSH_PASSWORD, KADI_OPS_SUDO_PASSWORD (per host with its name as a suffix: KADI_OPS_SUDO_PASSWORD_PROD).';
const JSON_ERRORS = 'With --json, an error is one line on stderr: {"error": {"kind": "usage"|"config"|"failed"|"cancelled", "message": "…", "exitCode": N}}.';

/** `kadi-ops --help`: every command with its usage line and summary, the global options, exit statuses. */
export function fullHelp(version: string, commands: Readonly<Record<string, CommandSpec>>): string {
  return [
    `kadi-ops ${version}: back up, verify, restore and maintain Kadi4Mat hosts over SSH.`,
    '',
    SHORT_USAGE,
    '',
    'Commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${usageLine(name, c).slice('kadi-ops '.length)}\n      ${c.summary}`),
    '',
    'Options for every command:',
    ...optionRows(GLOBAL_OPTIONS),
    '',
    EXIT_STATUS_LINE,
    JSON_ERRORS,
    SECRETS,
    'Run `kadi-ops help <command>` for a command\'s arguments and options.',
  ].join('\n');
}

/** `kadi-ops help verify`, `kadi-ops verify --help`: its usage line, arguments and options. */
export function commandHelp(name: string, spec: CommandSpec): string {
  const lines = [`Usage: ${usageLine(name, spec)}`, '', spec.summary.charAt(0).toUpperCase() + spec.summary.slice(1) + '.'];
  if (spec.args.length > 0) lines.push('', 'Arguments:', ...table(spec.args.map((a) => [a.variadic ? `${a.name}...` : a.name, a.description])));
  if (spec.options.length > 0) lines.push('', 'Options:', ...optionRows(spec.options));
  lines.push('', 'Options for every command:', ...optionRows(GLOBAL_OPTIONS), '', EXIT_STATUS_LINE);
  return lines.join('\n');
}
