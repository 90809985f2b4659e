#!/usr/bin/env node
// Runs the extension-host suite (test/vscode/suite) and the UI journeys (test/ui) in a real VS Code:
// code-server from npm (pinned, cached per version) opened in Debian's chromium via playwright-core,
// against a sandbox Kadi host started here. Exits non-zero when any test fails; always stops
// chromium, code-server and the sandbox it started.
//
//   node scripts/vscode-test-codeserver.mjs [--no-ui] [--ui-only] [--keep] [--grep <re>] [--timeout <s>]
//
// Needs: npm run build && npm run compile-tests (npm test's pretest does both), root (sandbox),
// Debian's chromium. Results: stdout; logs and screenshots under test-results/.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { format } from 'node:util';
import {
  CHROMIUM, ROOT, findChromiumRoot, freePort, installCodeServer, isolatedEnv, launchChromium, makeRunDirs, remoteUri,
  startCodeServer, startMemorySampler, startSandbox, testInfoOf, workbenchUrl, writeUserSettings, require,
} from './vscode-lib.mjs';

const argv = process.argv.slice(2);
const flag = (f) => argv.includes(f);
const value = (f, d) => (argv.includes(f) ? argv[argv.indexOf(f) + 1] : d);
const runSuite = !flag('--ui-only');
const runUi = !flag('--no-ui') && !flag('--suite-starts-sandbox');
const keep = flag('--keep');
// --suite-starts-sandbox: let the suite start the sandbox itself, as it does under @vscode/test-electron
// (.vscode-test.mjs); checks that path of test/vscode/suite/fixture.ts here. Implies --no-ui.
const suiteStartsSandbox = flag('--suite-starts-sandbox');
const suiteTimeoutMs = Number(value('--timeout', '600')) * 1000;
const results = path.join(ROOT, 'test-results');
fs.mkdirSync(path.join(results, 'screenshots'), { recursive: true });

const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(1);
const say = (m) => process.stdout.write(`[vscode-test ${secs()}s] ${m}\n`);

for (const f of ['dist/extension.js', 'out/test/vscode/suite/index.js', ...(runUi ? ['out/test/ui/journeys.js'] : [])]) {
  if (!fs.existsSync(path.join(ROOT, f))) {
    console.error(`${f} is missing: run npm run build && npm run compile-tests first.`);
    process.exit(2);
  }
}

const cleanups = [];
let cleaning;
function cleanup() {
  cleaning ??= (async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (e) {
        console.error(`cleanup: ${e?.message ?? e}`);
      }
    }
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    say(`${sig}: stopping`);
    cleanup().finally(() => process.exit(130));
  });
}

async function main() {
  const cs = installCodeServer();
  const chromiumVersion = spawnSync(CHROMIUM, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).stdout?.trim() ?? '?';
  say(`code-server ${cs.version} on Node ${cs.nodeVersion}; ${chromiumVersion}; playwright-core ${require('playwright-core/package.json').version}`);

  const dirs = makeRunDirs('kadi-ops-vscode-');
  if (!keep) cleanups.push(() => fs.rmSync(dirs.dir, { recursive: true, force: true }));
  const resultsFile = path.join(dirs.dir, 'suite-results.json');
  const extraEnv = { KADI_OPS_TEST_RESULTS: resultsFile, ...(value('--grep') ? { KADI_OPS_TEST_GREP: value('--grep') } : {}) };
  let sb;
  if (suiteStartsSandbox) {
    writeUserSettings(dirs, {});
  } else {
    say('starting the sandbox Kadi host');
    sb = await startSandbox();
    cleanups.push(() => sb.stop());
    say(`sandbox up after ${sb.startupMs} ms (ssh port ${sb.sshPort})`);
    const hosts = [sb.hostsProfile('direct'), sb.hostsProfile('sudo')];
    writeUserSettings(dirs, { 'kadiOps.hosts': hosts });
    const infoFile = path.join(dirs.dir, 'test-info.json');
    fs.writeFileSync(infoFile, JSON.stringify(testInfoOf(sb, hosts)), { mode: 0o600 });
    extraEnv.KADI_OPS_TEST_INFO = infoFile;
  }
  const env = isolatedEnv(dirs, cs.node, extraEnv);

  const port = await freePort();
  const serverLog = path.join(results, 'code-server.log');
  fs.writeFileSync(serverLog, '');
  const server = await startCodeServer({ cs, dirs, port, env, logFile: serverLog });
  cleanups.push(() => server.stop());
  say(`code-server listening on ${server.url}`);

  const mem = startMemorySampler({ 'code-server': () => server.pid, chromium: (table) => findChromiumRoot(table) });
  cleanups.push(() => {
    const peaks = mem.stop();
    say(`peak memory (PSS): code-server ${peaks['code-server']} MiB, chromium ${peaks.chromium} MiB, together ${peaks.total} MiB`);
  });

  const context = await launchChromium(dirs.browser);
  cleanups.push(() => context.close().catch(() => undefined));
  let failed = 0;

  if (runSuite) failed += await runExtensionSuite(context, server, dirs, resultsFile);
  if (runUi) failed += await runJourneys(context, server, dirs, sb);
  return failed;
}

/** Opens the workbench with the test payload; resolves with the number of failures. */
async function runExtensionSuite(context, server, dirs, resultsFile) {
  const page = await context.newPage();
  const logFile = path.join(results, 'extension-host-suite.log');
  const log = fs.createWriteStream(logFile);
  let exitCode;
  const exited = new Promise((resolve) => {
    page.exposeFunction('codeAutomationExit', (code) => {
      exitCode = code;
      resolve(code);
    });
  });
  await page.exposeFunction('codeAutomationLog', (type, args) => {
    const text = format(...(Array.isArray(args) ? args : [args]));
    log.write(`[${secs()}s ${type}] ${text}\n`);
  });
  const payload = [
    ['extensionDevelopmentPath', remoteUri(server.url, ROOT)],
    ['extensionTestsPath', remoteUri(server.url, path.join(ROOT, 'out/test/vscode/suite/index.js'))],
    ['skipWelcome', 'true'],
  ];
  say('running the extension-host suite');
  await page.goto(workbenchUrl(server.url, { folder: dirs.workspace, payload }));
  const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), suiteTimeoutMs).unref())]);
  await page.screenshot({ path: path.join(results, 'screenshots', 'extension-host-suite.png') }).catch(() => undefined);
  await page.close().catch(() => undefined);
  log.end();

  // The extension host's console (mocha's spec reporter) arrives through codeAutomationLog.
  const text = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
  const start = text.indexOf('--- kadi-ops extension-host suite: start ---');
  const end = text.indexOf('--- kadi-ops extension-host suite: end ---');
  if (start >= 0) {
    const body = text.slice(text.indexOf('\n', start) + 1, end >= 0 ? text.lastIndexOf('\n', end) : undefined);
    process.stdout.write(body.split('\n').filter((l) => !/ENOTFOUND|open-vsx\.org|workbench\.js:/.test(l)).map((l) => l.replace(/^\[[^\]]+\] ?/, '')).join('\n') + '\n');
  }

  let summary;
  try {
    summary = JSON.parse(fs.readFileSync(resultsFile, 'utf8'));
  } catch {
    summary = undefined;
  }
  if (code === 'timeout') {
    say(`extension-host suite timed out after ${suiteTimeoutMs / 1000} s (log: ${path.relative(ROOT, logFile)})`);
    return 1;
  }
  if (!summary) {
    say(`extension-host suite exited with ${code} but wrote no results (did it load? log: ${path.relative(ROOT, logFile)})`);
    return 1;
  }
  say(`extension-host suite: ${summary.passes} passing, ${summary.failures} failing, ${summary.pending} pending in ${(summary.durationMs / 1000).toFixed(1)} s (exit ${exitCode})`);
  for (const f of summary.failed) process.stdout.write(`  FAILED ${f.title}\n${f.error.replace(/^/gm, '    ')}\n`);
  return code === 0 && summary.failures === 0 ? 0 : Math.max(1, summary.failures);
}

/** Playwright journeys on the workbench, the extension loaded as a development extension. */
async function runJourneys(context, server, dirs, sb) {
  const { journeys } = require(path.join(ROOT, 'out/test/ui/journeys.js'));
  const page = await context.newPage();
  const payload = [['extensionDevelopmentPath', remoteUri(server.url, ROOT)], ['skipWelcome', 'true']];
  say(`UI journeys: ${journeys.length}`);
  await page.goto(workbenchUrl(server.url, { folder: dirs.workspace, payload }));
  let failed = 0;
  for (const j of journeys) {
    const started = Date.now();
    const shot = path.join(results, 'screenshots', `${j.id}.png`);
    try {
      await j.run({ page, sandbox: { sshPort: sb.sshPort }, screenshot: (suffix) => page.screenshot({ path: shot.replace(/\.png$/, `-${suffix}.png`) }) });
      await page.screenshot({ path: shot });
      say(`  ✔ ${j.title} (${((Date.now() - started) / 1000).toFixed(1)} s) → ${path.relative(ROOT, shot)}`);
    } catch (e) {
      failed++;
      const failShot = shot.replace(/\.png$/, '.failed.png');
      await page.screenshot({ path: failShot }).catch(() => undefined);
      say(`  ✖ ${j.title}: ${e?.message ?? e}\n    screenshot: ${path.relative(ROOT, failShot)}`);
    }
  }
  await page.close().catch(() => undefined);
  return failed;
}

let status = 1;
try {
  const failed = await main();
  status = failed ? 1 : 0;
} catch (e) {
  console.error(`vscode-test: ${e?.stack ?? e}`);
  status = 1;
} finally {
  await cleanup();
  say(status === 0 ? 'all passed' : 'FAILED');
}
process.exit(status);
