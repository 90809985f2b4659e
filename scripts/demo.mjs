#!/usr/bin/env node
// `npm run demo`: try Kadi Ops without a server. Starts the sandbox Kadi host (real sshd, PostgreSQL
// and Redis on loopback, a seeded Kadi-like database and file storage), makes two backup sets with
// the CLI, then starts code-server with the packaged extension installed and `kadiOps.hosts`
// preconfigured, and prints the URL. Ctrl-C stops everything it started.
//
//   npm run demo                     code-server on a random loopback port
//   npm run demo -- --port 8080      a fixed port (still 127.0.0.1 only)
//   npm run demo -- --desktop        desktop VS Code (`code` on PATH) with --extensionDevelopmentPath
//   npm run demo -- --dev            code-server with the extension from this folder instead of a .vsix
//
// Needs root (the sandbox creates accounts and runs daemons) and the Debian packages
// scripts/ensure-system-deps.sh installs; `npm run demo` builds first.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  ROOT, freePort, installCodeServer, installExtension, isolatedEnv, makeRunDirs, remoteUri, startCodeServer, startSandbox,
  workbenchUrl, writeUserSettings,
} from './vscode-lib.mjs';

const argv = process.argv.slice(2);
const desktop = argv.includes('--desktop');
const dev = argv.includes('--dev');
const fixedPort = argv.includes('--port') ? Number(argv[argv.indexOf('--port') + 1]) : undefined;
const say = (m) => process.stdout.write(`${m}\n`);

const cleanups = [];
let stopping;
function stopAll(code = 0) {
  stopping ??= (async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (e) {
        process.stderr.write(`stopping: ${e?.message ?? e}\n`);
      }
    }
  })().finally(() => process.exit(code));
  return stopping;
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    say(`\n${sig}: stopping the demo…`);
    void stopAll(0);
  });
}

function cli(args, configFile) {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), ...args, '--config', configFile], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`kadi-ops ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Packs the current build into a .vsix (vsce, no prepublish rebuild). */
function packageVsix(dir) {
  const out = path.join(dir, 'kadi-ops.vsix');
  const vsce = path.join(ROOT, 'node_modules/.bin/vsce');
  // Same flags as `npm run package`: no repository to resolve README links against.
  const r = spawnSync(vsce, ['package', '--no-dependencies', '--allow-missing-repository', '--no-rewrite-relative-links', '--out', out], { cwd: ROOT, encoding: 'utf8', timeout: 180_000, input: '' });
  if (r.status !== 0) throw new Error(`vsce package failed:\n${r.stdout}\n${r.stderr}`);
  return out;
}

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

async function main() {
  if (desktop && !onPath('code')) throw new Error('--desktop needs desktop VS Code: `code` is not on PATH. Run `npm run demo` for the browser version.');

  say('Starting the sandbox Kadi host (sshd, PostgreSQL, Redis on 127.0.0.1)…');
  const sb = await startSandbox();
  cleanups.push(() => sb.stop());
  const dirs = makeRunDirs('kadi-ops-demo-');
  cleanups.push(() => fs.rmSync(dirs.dir, { recursive: true, force: true }));
  const configFile = sb.writeConfigFile(path.join(dirs.dir, 'kadi-ops-hosts.json'));
  say(`Sandbox up after ${sb.startupMs} ms. Making two backup sets with the CLI…`);
  for (let i = 1; i <= 2; i++) {
    const out = cli(['backup', 'sandbox'], configFile);
    const set = /^set=(\S+)$/m.exec(out)?.[1] ?? /\b(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ)\b/.exec(out)?.[1] ?? '?';
    say(`  backup ${i}: ${set}`);
  }
  const hosts = [sb.hostsProfile('direct'), sb.hostsProfile('sudo')];
  writeUserSettings(dirs, { 'kadiOps.hosts': hosts });

  if (desktop) {
    const args = ['--new-window', '--user-data-dir', dirs.userData, '--extensions-dir', dirs.extensions, `--extensionDevelopmentPath=${ROOT}`, '--wait', dirs.workspace];
    say('Opening desktop VS Code with the extension from this folder; close the window or press Ctrl-C to stop.');
    const code = spawn('code', args, { stdio: 'inherit' });
    cleanups.push(() => {
      if (code.exitCode === null) code.kill('SIGTERM');
    });
    code.on('exit', () => void stopAll(0));
    return;
  }

  const cs = installCodeServer();
  const env = isolatedEnv(dirs, cs.node);
  let url;
  const port = fixedPort ?? (await freePort());
  if (!dev) {
    say('Packaging the extension (.vsix) and installing it into code-server…');
    installExtension(cs, dirs, env, packageVsix(dirs.dir));
  }
  const server = await startCodeServer({ cs, dirs, port, env, logFile: path.join(dirs.dir, 'code-server.log'), smokeTestDriver: false });
  cleanups.push(() => server.stop());
  url = dev
    ? workbenchUrl(server.url, { folder: dirs.workspace, payload: [['extensionDevelopmentPath', remoteUri(server.url, ROOT)], ['skipWelcome', 'true']] })
    : `${server.url}/?folder=${encodeURIComponent(dirs.workspace)}`;
  say('');
  say(`Kadi Ops demo is ready (code-server ${cs.version}): ${server.url}`);
  if (url !== server.url) say(`  (opens the demo folder: ${url})`);
  say('');
  say('In the browser: click the Kadi Ops icon in the activity bar, expand "sandbox", right-click a backup → Verify.');
  say(`CLI against the same host: node dist/cli.js list sandbox --config ${configFile}`);
  say('Press Ctrl-C to stop code-server and the sandbox host.');
  setInterval(() => undefined, 1 << 30);
}

main().catch((e) => {
  process.stderr.write(`demo: ${e?.message ?? e}\n`);
  void stopAll(1);
});
