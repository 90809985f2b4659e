/**
 * `npm run sandbox`: starts the sandbox Kadi host for manual work with the extension or the CLI,
 * prints how to reach it, and keeps it up until Ctrl-C / SIGTERM, then stops everything.
 */
import { startSandbox } from './sandbox';

async function main(): Promise<void> {
  const withRedis = !process.argv.includes('--no-redis');
  process.stdout.write('Starting the sandbox Kadi host (sshd, PostgreSQL' + (withRedis ? ', Redis' : '') + ')...\n');
  const host = await startSandbox({ withRedis });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`\n${signal}: stopping the sandbox...\n`);
    host.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        process.stderr.write(`Stopping failed: ${String(e)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGHUP', () => stop('SIGHUP'));

  const configFile = host.writeConfigFile();
  const entry = `"kadiOps.hosts": ${JSON.stringify([host.hostsProfile('direct'), host.hostsProfile('sudo')], null, 2)}`;
  process.stdout.write(
    [
      `Sandbox Kadi host is up after ${host.startupMs} ms (root ${host.root}).`,
      '',
      'settings.json entry (kadiOps.hosts):',
      entry,
      '',
      `Config file for the CLI: ${configFile}`,
      '',
      'Log in:',
      `  ssh -i ${host.clientKeyFile} -p ${host.sshPort} -o UserKnownHostsFile=${host.knownHostsFile} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes ${host.kadiUser}@127.0.0.1`,
      `  (operator: ${host.operatorUser}@127.0.0.1, then sudo -u ${host.kadiUser} ...)`,
      '',
      'Check it with the CLI:',
      `  node dist/cli.js check sandbox --config ${configFile}`,
      '',
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
  setInterval(() => undefined, 1 << 30); // stay up until a signal arrives
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
