/**
 * kadi-ops: the headless CLI over the same core as the extension, for scripts and scheduled runs.
 * Exit status: 0 success, 1 the operation failed, 2 usage or configuration error, 130 cancelled.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { formatConfigError, loadConfigFile, resolveProfiles } from '../config/hostProfiles';
import type { HostProfile } from '../config/types';
import { ConnectionPool } from '../remote/connectionPool';
import { CancelledError } from '../ssh/errors';
import { parseArgs, stringFlag, UsageError, type ParsedArgs } from './args';
import { TerminalHostKeys, TerminalSecrets } from './terminalPrompts';
import { commands } from './commands';
import type { CliContext } from './context';

const VALUE_OPTIONS = ['config', 'components', 'yes', 'keep-last', 'keep-daily', 'keep-weekly', 'keep-monthly', 'min-keep', 'jobs', 'listing', 'model', 'from', 'label', 'confirm-count'] as const;

const USAGE = `Usage: kadi-ops <command> [options]

Commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name} ${c.args}\n      ${c.summary}`)
  .join('\n')}

Options:
  --config <file>           host profiles (JSON: {"hosts": [...]}, same schema as the kadiOps.hosts setting);
                            default: $KADI_OPS_CONFIG or ~/.config/kadi-ops/hosts.json
  --json                    machine-readable output
  --accept-new-host-key     trust a host key seen for the first time (like StrictHostKeyChecking=accept-new)
Secrets for unattended runs: KADI_OPS_SSH_PASSPHRASE, KADI_OPS_SSH_PASSWORD, KADI_OPS_SUDO_PASSWORD.`;

export async function main(argv: string[]): Promise<number> {
  let args: ParsedArgs;
  try {
    args = parseArgs(argv, VALUE_OPTIONS);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const [name, ...rest] = args.positionals;
  if (!name || args.flags.has('help') || name === 'help') {
    process.stdout.write(USAGE + '\n');
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`Unknown command "${name}".\n${USAGE}\n`);
    return 2;
  }
  const abort = new AbortController();
  const onSigint = (): void => {
    if (abort.signal.aborted) process.exit(130);
    process.stderr.write('\nCancelling… (press Ctrl-C again to leave without waiting)\n');
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  const pool = new ConnectionPool({
    secrets: new TerminalSecrets(),
    hostKeys: new TerminalHostKeys(args.flags.has('accept-new-host-key')),
    log: args.flags.has('verbose') ? (m) => process.stderr.write(`${m}\n`) : undefined,
  });
  try {
    const profiles = loadProfiles(args);
    const ctx: CliContext = { args, positionals: rest, profiles, pool, signal: abort.signal, json: args.flags.has('json'), out: (s) => process.stdout.write(s + '\n'), err: (s) => process.stderr.write(s + '\n') };
    return await command.run(ctx);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${e.message}\n`);
      return 2;
    }
    if (e instanceof CancelledError) {
      process.stderr.write(`${e.message}\n`);
      return 130;
    }
    process.stderr.write(`kadi-ops: ${(e as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
    pool.closeAll();
  }
}

function loadProfiles(args: ParsedArgs): HostProfile[] {
  const file = stringFlag(args, 'config') ?? process.env.KADI_OPS_CONFIG ?? path.join(os.homedir(), '.config', 'kadi-ops', 'hosts.json');
  const raw = loadConfigFile(file);
  const { profiles, errors } = resolveProfiles(raw, {});
  if (errors.length > 0) throw new UsageError(`Invalid host configuration in ${file}:\n${errors.map((e) => '  ' + formatConfigError(e)).join('\n')}`);
  return profiles;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      process.stderr.write(`kadi-ops: ${e.message}\n`);
      process.exit(1);
    },
  );
}
