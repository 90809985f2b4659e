// Shared by the code-server test runner and `npm run demo`: installing code-server (cached per
// version), isolated directories, starting/stopping code-server on a random loopback port, Debian's
// chromium through playwright-core, and a memory sampler. Only processes started here are stopped.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const require = createRequire(import.meta.url);
export const CHROMIUM = process.env.KADI_OPS_CHROMIUM ?? '/usr/bin/chromium';

/** Installs (once) Node 24 and code-server into the per-user cache; returns their paths. */
export function installCodeServer() {
  const r = spawnSync('bash', [path.join(ROOT, 'scripts/vscode-install.sh')], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', timeout: 900_000 });
  if (r.status !== 0) throw new Error(`installing code-server failed (exit ${r.status ?? r.signal})`);
  const [node, entry] = r.stdout.trim().split('\n');
  const version = JSON.parse(fs.readFileSync(path.join(path.dirname(entry), '../../package.json'), 'utf8')).version;
  const nodeVersion = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
  return { node, entry, version, nodeVersion };
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A fresh directory tree for one code-server: HOME, XDG dirs, TMPDIR, user data, extensions, workspace. */
export function makeRunDirs(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const d = {
    dir,
    home: path.join(dir, 'home'),
    config: path.join(dir, 'xdg-config'),
    data: path.join(dir, 'xdg-data'),
    cache: path.join(dir, 'xdg-cache'),
    tmp: path.join(dir, 'tmp'),
    userData: path.join(dir, 'user-data'),
    extensions: path.join(dir, 'extensions'),
    workspace: path.join(dir, 'workspace'),
    browser: path.join(dir, 'chromium-profile'),
  };
  for (const p of Object.values(d)) fs.mkdirSync(p, { recursive: true, mode: 0o700 });
  // TMPDIR works like /tmp: the sandbox host (started from the extension host with
  // --suite-starts-sandbox) puts directories there that the postgres and kadi accounts must reach.
  fs.chmodSync(dir, 0o755);
  fs.chmodSync(d.tmp, 0o1777);
  fs.mkdirSync(path.join(d.userData, 'User'), { recursive: true });
  return d;
}

/** Quiet, deterministic user settings plus whatever the caller adds (e.g. kadiOps.hosts). */
export function writeUserSettings(dirs, extra) {
  const settings = {
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'workbench.enableExperiments': false,
    'workbench.welcomePage.walkthroughs.openOnInstall': false,
    'security.workspace.trust.enabled': false,
    'telemetry.telemetryLevel': 'off',
    'update.mode': 'none',
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
    'extensions.ignoreRecommendations': true,
    'window.restoreWindows': 'none',
    'chat.disableAIFeatures': true,
    'workbench.colorTheme': 'Default Dark Modern',
    'workbench.secondarySideBar.defaultVisibility': 'hidden',
    'workbench.editor.empty.hint': 'hidden',
    ...extra,
  };
  fs.writeFileSync(path.join(dirs.userData, 'User', 'settings.json'), `${JSON.stringify(settings, null, 2)}\n`);
}

/** Environment for code-server (and so the extension host): isolated HOME/XDG/TMPDIR, Node 24 first in PATH. */
export function isolatedEnv(dirs, node, extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_|^INIT_CWD$|^VSCODE_|^ELECTRON_/.test(k)) env[k] = v;
  return {
    ...env,
    PATH: `${path.dirname(node)}:${env.PATH ?? '/usr/bin:/bin'}`,
    HOME: dirs.home,
    XDG_CONFIG_HOME: dirs.config,
    XDG_DATA_HOME: dirs.data,
    XDG_CACHE_HOME: dirs.cache,
    TMPDIR: dirs.tmp,
    ...extra,
  };
}

function httpStatus(url) {
  return new Promise((resolve) => {
    const req = http.get(url, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.setTimeout(2000, () => {
      req.destroy();
      resolve(0);
    });
  });
}

/**
 * Starts code-server detached (own process group) on 127.0.0.1:port; resolves when it answers.
 * Its output goes to `logFile`. stop() ends the whole process group (only it).
 */
export async function startCodeServer({ cs, dirs, port, env, logFile, smokeTestDriver = true, extraArgs = [] }) {
  fs.writeFileSync(path.join(dirs.dir, 'config.yaml'), `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
  const args = [
    cs.entry,
    '--auth', 'none',
    '--bind-addr', `127.0.0.1:${port}`,
    '--config', path.join(dirs.dir, 'config.yaml'),
    '--user-data-dir', dirs.userData,
    '--extensions-dir', dirs.extensions,
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
    '--ignore-last-opened',
    ...(smokeTestDriver ? ['--vscode-option', 'enable-smoke-test-driver'] : []),
    ...extraArgs,
  ];
  const log = fs.openSync(logFile, 'a');
  const child = spawn(cs.node, args, { detached: true, env, stdio: ['ignore', log, log], cwd: dirs.workspace });
  fs.closeSync(log);
  let exited = false;
  child.on('exit', () => (exited = true));
  const url = `http://127.0.0.1:${port}`;
  const until = Date.now() + 60_000;
  while ((await httpStatus(`${url}/healthz`)) !== 200) {
    if (exited) throw new Error(`code-server exited during start-up; see ${logFile}`);
    if (Date.now() > until) {
      killGroup(child.pid, 'SIGKILL');
      throw new Error(`code-server did not answer on ${url} within 60 s; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url,
    pid: child.pid,
    async stop() {
      if (exited) return;
      killGroup(child.pid, 'SIGTERM');
      const t = Date.now();
      while (!exited && Date.now() - t < 5000) await new Promise((r) => setTimeout(r, 100));
      if (!exited) killGroup(child.pid, 'SIGKILL');
    },
  };
}

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

/** Runs `code-server --install-extension <vsix>` into the run's extensions dir. */
export function installExtension(cs, dirs, env, vsix) {
  const r = spawnSync(cs.node, [cs.entry, '--user-data-dir', dirs.userData, '--extensions-dir', dirs.extensions, '--install-extension', vsix], { env, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`installing ${vsix} failed: ${r.stderr || r.stdout}`);
}

/** The workbench URL; `payload` entries as the smoke-test driver expects ([key, value] pairs). */
export function workbenchUrl(url, { folder, payload }) {
  const q = new URLSearchParams();
  if (folder) q.set('folder', folder);
  if (payload) q.set('payload', JSON.stringify(payload));
  return `${url}/?${q.toString()}`;
}

export function remoteUri(url, absPath) {
  return `vscode-remote://${new URL(url).host}${absPath}`;
}

/** Debian's chromium through playwright-core, headless, with a fresh profile. */
export async function launchChromium(profileDir, { viewport = { width: 1280, height: 760 } } = {}) {
  const { chromium } = require('playwright-core');
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found; install Debian's chromium (scripts/ensure-system-deps.sh does).`);
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    deviceScaleFactor: 1,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

/**
 * Samples the proportional memory (PSS, falls back to RSS) of process trees once a second.
 * groups: { name: () => rootPid | undefined | predicate }. Returns stop() -> peaks in MiB.
 */
export function startMemorySampler(groups) {
  const peaks = { total: 0 };
  for (const g of Object.keys(groups)) peaks[g] = 0;
  const sample = () => {
    const table = new Map();
    for (const e of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
        const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        table.set(Number(e), { ppid: Number(rest[1]), comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) });
      } catch {
        /* gone */
      }
    }
    const children = new Map();
    for (const [pid, p] of table) {
      if (!children.has(p.ppid)) children.set(p.ppid, []);
      children.get(p.ppid).push(pid);
    }
    const tree = (root) => {
      const out = [];
      const walk = (pid) => {
        out.push(pid);
        for (const c of children.get(pid) ?? []) walk(c);
      };
      if (root && table.has(root)) walk(root);
      return out;
    };
    let total = 0;
    for (const [name, rootOf] of Object.entries(groups)) {
      const root = rootOf(table);
      let kb = 0;
      for (const pid of tree(root)) kb += memKb(pid);
      const mb = kb / 1024;
      peaks[name] = Math.max(peaks[name], mb);
      total += mb;
    }
    peaks.total = Math.max(peaks.total, total);
  };
  const timer = setInterval(sample, 1000);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      sample();
      return Object.fromEntries(Object.entries(peaks).map(([k, v]) => [k, Math.round(v)]));
    },
  };
}

function memKb(pid) {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    if (m) return Number(m[1]);
  } catch {
    /* fall through */
  }
  try {
    return Number(fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4;
  } catch {
    return 0;
  }
}

/** Chromium's browser process among our descendants (the playwright-launched one). */
export function findChromiumRoot(table, ancestor = process.pid) {
  for (const [pid, p] of table) {
    if (!/chrom/i.test(p.comm)) continue;
    let q = p.ppid;
    while (q && q !== 1 && table.has(q) && /chrom/i.test(table.get(q).comm)) q = table.get(q).ppid;
    // q is the first non-chromium ancestor; is it (a descendant of) us?
    let a = q;
    while (a && a !== 1) {
      if (a === ancestor) return pidOfTop(table, pid);
      a = table.get(a)?.ppid;
    }
  }
  return undefined;
}

function pidOfTop(table, pid) {
  let top = pid;
  while (table.has(table.get(top).ppid) && /chrom/i.test(table.get(table.get(top).ppid).comm)) top = table.get(top).ppid;
  return top;
}

/** Starts the sandbox Kadi host (compiled test harness in out/test/sandbox; needs root). */
export async function startSandbox() {
  const mod = path.join(ROOT, 'out/test/sandbox/sandbox.js');
  if (!fs.existsSync(mod)) throw new Error(`${mod} is missing; run npm run compile-tests first.`);
  return require(mod).startSandbox({ withRedis: true });
}

/** What the extension-host suite reads from KADI_OPS_TEST_INFO (see test/vscode/suite/fixture.ts). */
export function testInfoOf(sb, hosts) {
  return {
    sshPort: sb.sshPort,
    knownHostsFile: sb.knownHostsFile,
    backupDir: sb.backupDir,
    root: sb.root,
    storagePath: sb.storagePath,
    encryptedClientKeyFile: sb.encryptedClientKeyFile,
    clientKeyPassphrase: sb.clientKeyPassphrase,
    pg: { port: sb.pg.port, binDir: sb.pg.binDir, database: sb.pg.database, user: sb.pg.user, password: sb.pg.password },
    hosts,
  };
}
