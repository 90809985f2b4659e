/**
 * One sandbox Kadi host for the whole integration run (starting real sshd, PostgreSQL and Redis
 * costs seconds), stopped by a root-level after hook even when tests fail.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveProfiles } from '../../src/config/hostProfiles';
import type { HostProfile } from '../../src/config/types';
import type { HostKeyPrompt, UnknownHostKey } from '../../src/ssh/connection';
import type { SecretProvider, SecretRequest } from '../../src/core/secrets';
import { ConnectionPool } from '../../src/remote/connectionPool';
import { startSandbox, storageFilePath, type SandboxHost } from '../sandbox/sandbox';
import { md5 } from '../sandbox/seed';

let sandbox: Promise<SandboxHost> | undefined;

export function getSandbox(): Promise<SandboxHost> {
  sandbox ??= startSandbox({ withRedis: true });
  return sandbox;
}

/**
 * The test files share one sandbox, so a test that leaves a file row without its data (or the data
 * changed) fails every later test that backs up, restores or checks files, far from the cause.
 * After each test the shared sandbox's file rows are checked against the storage tree, and the
 * first test that broke them is named when the run ends.
 */
const brokenBy: string[] = [];
let wasConsistent = true;

async function sandboxInconsistencies(sb: SandboxHost): Promise<string[]> {
  let rows: string;
  try {
    rows = await sb.psql("SELECT id, size, coalesce(checksum, ''), state FROM file WHERE storage_type = 'local' ORDER BY id");
  } catch (e) {
    return [`the file rows cannot be read: ${(e as Error).message.split('\n')[0]}`];
  }
  const problems: string[] = [];
  for (const line of rows.trim().split('\n').filter(Boolean)) {
    const [id, size, checksum, state] = line.split('|');
    const file = storageFilePath(sb.storagePath, id);
    const onDisk = fs.statSync(file, { throwIfNoEntry: false });
    if (state === 'active' && !onDisk) problems.push(`file ${id}: active row, no data`);
    else if (state === 'active' && onDisk?.size !== Number(size)) problems.push(`file ${id}: size ${onDisk?.size}, row says ${size}`);
    else if (state === 'active' && checksum && !checksum.includes('-') && md5(fs.readFileSync(file)) !== checksum) problems.push(`file ${id}: MD5 differs from its row`);
    else if (state === 'deleted' && onDisk) problems.push(`file ${id}: deleted row, data still there`);
  }
  return problems;
}

afterEach(async function () {
  if (!sandbox || !wasConsistent) return;
  this.timeout(60000);
  const problems = await sandboxInconsistencies(await sandbox);
  if (problems.length === 0) return;
  wasConsistent = false;
  const msg = `"${this.currentTest?.fullTitle() ?? '?'}" (${this.currentTest?.state ?? 'unknown'}) left the shared sandbox inconsistent: ${problems.join('; ')}`;
  brokenBy.push(msg);
  process.stderr.write(`\nSANDBOX: ${msg}\n`);
});

after(async function () {
  this.timeout(60000);
  if (sandbox) await (await sandbox).stop();
  // Reported as a failure of its own: a passing test that leaves debris is still a broken test.
  if (brokenBy.length) throw new Error(brokenBy.join('\n'));
});

export function profileOf(sb: SandboxHost, runAs: 'direct' | 'sudo', patch: (p: ReturnType<SandboxHost['hostsProfile']>) => void = () => undefined): HostProfile {
  const input = sb.hostsProfile(runAs);
  patch(input);
  const { profiles, errors } = resolveProfiles([input], { sshConfigText: '' });
  if (errors.length) throw new Error(`sandbox profile invalid: ${JSON.stringify(errors)}`);
  return profiles[0];
}

/** Records every question asked, answers from a script. */
export class ScriptedHostKeys implements HostKeyPrompt {
  readonly asked: UnknownHostKey[] = [];
  constructor(private readonly answer: 'accept-once' | 'trust' | 'reject' = 'reject') {}
  async onUnknownHostKey(info: UnknownHostKey): Promise<'accept-once' | 'trust' | 'reject'> {
    this.asked.push(info);
    return this.answer;
  }
}

export class ScriptedSecrets implements SecretProvider {
  readonly asked: SecretRequest[] = [];
  constructor(private readonly values: Partial<Record<SecretRequest['kind'], string>> = {}) {}
  async get(req: SecretRequest): Promise<string | undefined> {
    this.asked.push(req);
    return this.values[req.kind];
  }
}

export function newPool(secrets: SecretProvider = new ScriptedSecrets(), hostKeys: HostKeyPrompt = new ScriptedHostKeys()): ConnectionPool {
  return new ConnectionPool({ secrets, hostKeys });
}

/**
 * Cuts every SSH connection to this sandbox for real: kills the per-connection sshd processes
 * (children of this sandbox's sshd only, so parallel sandboxes are untouched).
 */
export function cutConnections(sb: SandboxHost): number {
  const master = Number(fs.readFileSync(path.join(sb.root, 'sshd.pid'), 'utf8').trim());
  const table = spawnSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' })
    .stdout.trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number));
  const victims: number[] = [];
  const collect = (parent: number): void => {
    for (const [pid, ppid] of table) {
      if (ppid === parent) {
        victims.push(pid);
        collect(pid);
      }
    }
  };
  collect(master);
  for (const pid of victims) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  return victims.length;
}

/**
 * A stale lock, as a job whose leader died leaves it: a leftover process still holds the lock file,
 * and lock.holder names a pid that is gone. `sleepSeconds` tells the leftover apart for cleanup.
 */
export async function holdStaleLock(sb: SandboxHost, job: string, sleepSeconds: number): Promise<{ release(): void }> {
  const state = path.join(sb.backupDir, '.kadi-ops');
  const lock = path.join(state, 'lock');
  spawn('sudo', ['-u', sb.kadiUser, 'flock', '-w', '10', lock, 'sleep', String(sleepSeconds)], { stdio: 'ignore', detached: true }).unref();
  const gone = spawnSync('true').pid as number;
  const free = (): boolean => spawnSync('sudo', ['-u', sb.kadiUser, 'flock', '-n', lock, 'true']).status === 0;
  for (let i = 0; i < 100 && free(); i++) await new Promise((r) => setTimeout(r, 50));
  if (free()) throw new Error('the leftover did not take the lock');
  fs.writeFileSync(path.join(state, 'lock.holder'), `job=${job}\nkind=backup\noperator=someone\nclient=laptop\nstarted=2026-11-26T00:00:00Z\npid=${gone}\n`);
  return { release: () => void spawnSync('pkill', ['-KILL', '-u', sb.kadiUser, '-xf', `sleep ${sleepSeconds}`]) };
}
