/**
 * `npm run sandbox`: starts the sandbox Kadi host for manual work with the extension or the CLI,
 * prints how to reach it, and keeps it up until Ctrl-C / SIGTERM, then stops everything.
 */
import * as fs from 'node:fs';
import { startSandbox } from './sandbox';
import { startSystemdHost } from './systemdHost';

/** `npm run sandbox -- --systemd`: the real-systemd flavour (systemd-nspawn), up until a signal. */
async function systemd(): Promise<void> {
  process.stdout.write('Starting the systemd Kadi host (systemd-nspawn: postgresql@15-main, redis-server, ssh, the Kadi units)...\n');
  const t0 = Date.now();
  const host = await startSystemdHost();
  const stop = (signal: string): void => {
    process.stdout.write(`\n${signal}: powering the container off...\n`);
    host.stop().then(() => process.exit(0), () => process.exit(1));
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(s, () => stop(s));
  const configFile = `${host.root.replace(/\/root$/, "")}/kadi-ops-hosts.json`;
  fs.writeFileSync(configFile, `${JSON.stringify({ hosts: [host.profile()] }, null, 2)}\n`);
  process.stdout.write(
    [
      `The systemd Kadi host is up after ${Date.now() - t0} ms at ${host.address} (its root as this machine sees it: ${host.root}).`,
      '',
      `Config file for the CLI: ${configFile}`,
      `  node dist/cli.js check systemd-host --config ${configFile}`,
      `  node dist/cli.js sudoers systemd-host --config ${configFile}     (what its /etc/sudoers.d/kadi-ops holds)`,
      '',
      'Log in:',
      `  ssh -i ${host.clientKeyFile} -o UserKnownHostsFile=${host.knownHostsFile} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes kadi@${host.address}`,
      '',
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
  setInterval(() => undefined, 1 << 30);
}

async function main(): Promise<void> {
  if (process.argv.includes('--systemd')) return systemd();
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
      'Try the CLI (the README\'s sequence):',
      ...['check sandbox', 'backup sandbox', 'list sandbox', 'verify sandbox latest --deep', 'restore sandbox latest --yes sandbox'].map((c) => `  node dist/cli.js ${c} --config ${configFile}`),
      '  node dist/cli.js --help',
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
