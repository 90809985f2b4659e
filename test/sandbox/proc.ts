/**
 * Process plumbing for the sandbox host: running commands (optionally as another Unix user),
 * starting long-lived daemons we can find and stop again by pid, free ports, and a last-resort
 * cleanup on process exit so a crashed test run leaves no sshd/postgres/redis behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to stdin (then closed); the place for secrets, which must never be in argv. */
  input?: string;
  uid?: number;
  gid?: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs a program to completion; never throws for a non-zero exit. */
export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      uid: opts.uid,
      gid: opts.gid,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 120_000,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
    child.stdin.on('error', () => undefined); // the program may exit without reading stdin
    child.stdin.end(opts.input ?? '');
  });
}

/** Like run() but throws on a non-zero exit; the message names the command, never the input. */
export async function runOk(file: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(file, args, opts);
  if (r.code !== 0) {
    const tail = (r.stderr || r.stdout).trim().split('\n').slice(-5).join('\n');
    throw new Error(`${file} ${args.join(' ')} exited with ${r.code}: ${tail}`);
  }
  return r.stdout;
}

/** Asks the kernel for a free TCP port on loopback (there is a small race until it is bound). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A long-lived server process we started; `exited` settles when it is gone. */
export class Daemon {
  readonly exited: Promise<void>;
  private gone = false;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    void this.exited.then(() => {
      this.gone = true;
      live.delete(this);
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return !this.gone;
  }

  /** The end of its log, for error messages (server logs here hold no secrets). */
  logTail(lines = 15): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8').trim().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

const live = new Set<Daemon>();
let exitHookInstalled = false;
const exitCallbacks = new Set<() => void>();

/** Registers a synchronous callback for process exit (used to remove sandbox roots). */
export function onProcessExit(cb: () => void): () => void {
  installExitHook();
  exitCallbacks.add(cb);
  return () => exitCallbacks.delete(cb);
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const d of live) killTreeSync(d.pid, 'SIGKILL');
    for (const cb of exitCallbacks) {
      try {
        cb();
      } catch {
        // best effort while exiting
      }
    }
  });
}

export interface DaemonOptions {
  uid?: number;
  gid?: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  logFile: string;
}

/**
 * Starts a server in the foreground (no daemonizing, so its pid is ours to stop) with output
 * appended to logFile. unref'd: a forgotten stop() must not keep Node (or mocha) alive.
 */
export function startDaemon(name: string, file: string, args: readonly string[], opts: DaemonOptions): Daemon {
  installExitHook();
  const fd = fs.openSync(opts.logFile, 'a', 0o644);
  try {
    const child = spawn(file, args, { cwd: opts.cwd, env: opts.env ?? process.env, uid: opts.uid, gid: opts.gid, stdio: ['ignore', fd, fd] });
    child.unref();
    child.on('error', () => undefined); // reported through `exited` and waitForPort
    const d = new Daemon(name, child, opts.logFile);
    if (child.pid !== undefined) live.add(d);
    return d;
  } finally {
    fs.closeSync(fd);
  }
}

/** Waits until 127.0.0.1:port accepts connections; fails early (with its log) if the daemon died. */
export async function waitForPort(d: Daemon, port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!d.running) throw new Error(`${d.name} exited during startup. Its log (${d.logFile}):\n${d.logTail()}`);
    if (await canConnect(port)) return;
    await sleep(50);
  }
  throw new Error(`${d.name} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms. Its log:\n${d.logTail()}`);
}

/** All descendants of pid, from /proc (children first found, deepest last). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of safeReaddir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // "pid (comm) state ppid ..." - comm may contain spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const result: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    for (const c of children.get(p) ?? []) {
      result.push(c);
      queue.push(c);
    }
  }
  return result;
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function killTreeSync(pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return;
  const kids = descendants(pid);
  killQuietly(pid, signal);
  for (const k of kids) killQuietly(k, signal);
}

/**
 * Stops a daemon: `signal` first (its clean shutdown), SIGKILL after timeoutMs, then SIGKILL for
 * any descendant still alive (e.g. sshd session processes whose master is gone).
 */
export async function stopDaemon(d: Daemon, signal: NodeJS.Signals, timeoutMs = 10_000): Promise<void> {
  if (d.pid <= 0) return;
  const kids = descendants(d.pid);
  if (d.running) {
    killQuietly(d.pid, signal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs)));
    const late = await Promise.race([d.exited.then(() => false), timedOut]);
    clearTimeout(timer);
    if (late) {
      killTreeSync(d.pid, 'SIGKILL');
      await d.exited;
    }
  }
  for (const k of kids) if (fs.existsSync(`/proc/${k}`)) killQuietly(k, 'SIGKILL');
}
