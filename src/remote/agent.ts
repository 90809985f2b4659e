/**
 * The host agent: a Python package (agent/, standard library only) built into one zipapp,
 * kadi-ops-agent.pyz, installed once per content hash under <backupDir>/.kadi-ops/agent/ and run as
 * the Kadi user with quoted arguments: `python3 -I -S -u <agent> VERB ARGS...` (isolated from the
 * caller's PYTHON* variables and user site-packages; unbuffered, so its lines reach the log in order).
 * Beside the hash files, kadi-ops-agent.pyz is a symbolic link to the current one: what the schedule's
 * units run, so that they stay the same across Kadi Ops upgrades (the agent started through the link
 * re-executes itself on the file it points to, agent/build.py, so a run never reads a zip switched under it).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExecResult } from '../ssh/connection';
import type { RemoteHost, RunOptions } from './remoteHost';
import { RemoteCommandError } from './remoteHost';
import { quoteArg, type ShellNode } from '../core/shellCommand';

const AGENT_PYZ = 'kadi-ops-agent.pyz';
let cachedPyz: Buffer | undefined;

/** A path of the repository, from a compiled module (out/src/remote) or a bundle (dist). */
function inRepository(rel: string, what: string): string {
  for (const root of [path.join(__dirname, '..', '..', '..'), path.join(__dirname, '..')]) {
    const p = path.join(root, rel);
    if (fs.existsSync(p)) return p;
  }
  throw new Error(`${what} not found next to ${__dirname}`);
}

/**
 * The agent as a zipapp: dist/kadi-ops-agent.pyz next to the bundle, or built from agent/ with
 * agent/build.py (reproducible bytes) when running from the repository (tests).
 */
export function agentPyz(): Buffer {
  if (cachedPyz !== undefined) return cachedPyz;
  const bundled = path.join(__dirname, AGENT_PYZ);
  if (fs.existsSync(bundled)) return (cachedPyz = fs.readFileSync(bundled));
  return (cachedPyz = execFileSync('python3', [inRepository(path.join('agent', 'build.py'), AGENT_PYZ), '-'], { maxBuffer: 64 * 1024 * 1024 }));
}

/** The agent's content hash: its name on the host. */
export function agentHash(): string {
  return createHash('sha256').update(agentPyz()).digest('hex').slice(0, 16);
}

export function stateDir(backupDir: string): string {
  return path.posix.join(backupDir, '.kadi-ops');
}

export function agentPath(backupDir: string): string {
  return path.posix.join(stateDir(backupDir), 'agent', `kadi-ops-agent-${agentHash()}.pyz`);
}

/**
 * The agent's stable name: a symbolic link in the same directory to the current content-hash file,
 * switched by ensureAgent. Units name this path, so they do not change when Kadi Ops does.
 */
export function agentLinkPath(backupDir: string): string {
  return path.posix.join(stateDir(backupDir), 'agent', AGENT_PYZ);
}

/**
 * The one command that installs the agent (unless this content hash is there), points the stable link
 * at it (a new link renamed over the old one: `mv -T` is one rename(2), so the link is never missing
 * or half-written), and prints what checkInstalledAgent checks: the agent's sha256, where the link
 * points, and the owners, modes and types of the agent, its directories, the link and the backup directory.
 */
export function agentInstallCommand(backupDir: string, nonce: string): ShellNode {
  const target = agentPath(backupDir);
  const link = agentLinkPath(backupDir);
  const dir = path.posix.dirname(target);
  const state = stateDir(backupDir);
  const tmp = `${target}.tmp-${nonce}`;
  const linkTmp = `${link}.tmp-${nonce}`;
  return {
    and: [
      // The backup directory is the operator's to make: one that is missing (a backup disk not
      // mounted, a typo) is not created under it, where backups would fill another disk.
      { or: [['test', '-d', backupDir], { group: { and: [['echo', NO_BACKUP_DIR], ['false']] } }] },
      {
        or: [
          { argv: ['test', '-f', target] },
          {
            and: [
              { argv: ['mkdir', '-p', dir] },
              { argv: ['chmod', '700', state, dir] },
              { argv: ['cat'], stdoutTo: tmp },
              { argv: ['mv', tmp, target] },
            ],
          },
        ],
      },
      // Relative, so it stays right when the backup directory is reached through another path.
      { argv: ['ln', '-s', path.posix.basename(target), linkTmp] },
      { argv: ['mv', '-T', linkTmp, link] },
      { argv: ['sha256sum', '--', target] },
      { argv: ['readlink', '--', link] },
      { argv: ['stat', '-c', '%U|%a|%F|%n', '--', target, dir, state, link] },
      { argv: ['stat', '-L', '-c', '%U|%a|%F|%n', '--', backupDir] },
    ],
  };
}

const NO_BACKUP_DIR = 'kadi-ops: no backup directory';

const installed = new WeakSet<RemoteHost>();

export class UntrustedAgentError extends Error {}

/**
 * Installs the agent if this content hash is not on the host yet (through a temporary file of its own,
 * renamed into place) and points the stable link (agentLinkPath) at it, then, in the same round trip,
 * checks what will be executed before it ever is: its full sha256, that the link points at it, and
 * that it, the link and every directory up to the backup directory belong to the Kadi user (or root)
 * and are writable by nobody else, as OpenSSH's StrictModes checks a key file. The backup directory
 * may be a symbolic link (its target is checked); the agent's own directories may not.
 */
export async function ensureAgent(host: RemoteHost): Promise<string> {
  const target = agentPath(host.profile.backupDir);
  if (installed.has(host)) return target;
  const dir = path.posix.dirname(target);
  const r = await installing(host, () => host.check(`Installing the Kadi Ops agent in ${dir}`, agentInstallCommand(host.profile.backupDir, randomBytes(6).toString('hex')), { stdin: agentPyz() }));
  checkInstalledAgent(r.stdout, target, host.profile.kadi.user);
  installed.add(host);
  return target;
}

/** A backup directory the Kadi user cannot create is the operator's to make: said so, with the commands. */
export class BackupDirMissingError extends Error {}

async function installing<T>(host: RemoteHost, install: () => Promise<T>): Promise<T> {
  try {
    return await install();
  } catch (e) {
    const bd = host.profile.backupDir;
    if (e instanceof RemoteCommandError && e.result.stdout.includes(NO_BACKUP_DIR)) {
      const user = host.profile.kadi.user;
      throw new BackupDirMissingError(
        `The backup directory ${bd} does not exist. Kadi Ops does not create it: a backup disk that is not mounted would leave backups on the disk beneath. Create it, as root if need be: mkdir -p ${quoteArg(bd)} && chown ${user} ${quoteArg(bd)} && chmod 700 ${quoteArg(bd)} (or set the profile's backupDir to a directory that exists).`,
      );
    }
    throw e;
  }
}

/**
 * Refuses an installed agent that is not ours or that someone else could have changed, and a stable
 * link (what the schedule's units run) that points anywhere but at it. STDOUT: agentInstallCommand's.
 */
export function checkInstalledAgent(stdout: string, target: string, kadiUser: string): void {
  const lines = stdout.split('\n').filter(Boolean);
  const want = createHash('sha256').update(agentPyz()).digest('hex');
  const got = /^([0-9a-f]{64}) /.exec(lines[0] ?? '')?.[1];
  if (got !== want) throw new UntrustedAgentError(`The installed agent ${target} is not the one Kadi Ops ships (sha256 ${got ?? '?'}, expected ${want}); refusing to run it. Remove it, and find out who wrote it.`);
  const pointsTo = lines[1] ?? '';
  const entries = lines.slice(2).map((l) => {
    const [owner, mode, type, ...name] = l.split('|');
    return { owner, mode: parseInt(mode, 8), type, name: name.join('|') };
  });
  if (entries.length !== 5) throw new UntrustedAgentError(`Could not check the owners and modes of ${target}, its link and its directories.`);
  // The agent, its two directories, the stable link, the backup directory.
  const kinds = ['regular file', 'directory', 'directory', 'symbolic link', 'directory'];
  entries.forEach((e, i) => {
    const want = kinds[i];
    if (e.type !== want) throw new UntrustedAgentError(`${e.name} is a ${e.type}, not a ${want}; refusing to run the agent from it.`);
    if (e.owner !== kadiUser && e.owner !== 'root') throw new UntrustedAgentError(`${e.name} belongs to ${e.owner}, not to ${kadiUser} or root; refusing to run the agent from it.`);
    // A symbolic link's own mode means nothing (always 777): its directory and owner are what count.
    if (want !== 'symbolic link' && e.mode & 0o022) throw new UntrustedAgentError(`${e.name} is writable by ${e.mode & 0o002 ? 'others' : 'its group'} (mode ${e.mode.toString(8)}); refusing to run the agent from it. Fix with: chmod go-w '${e.name}'`);
  });
  if (pointsTo !== path.posix.basename(target)) throw new UntrustedAgentError(`${entries[3].name} points to ${pointsTo || 'nothing'}, not to ${path.posix.basename(target)}; refusing to run the agent from it.`);
}

/** The argv that runs one verb of the installed agent AGENT. */
export function agentArgv(agent: string, verb: string, args: readonly string[]): string[] {
  return ['python3', '-I', '-S', '-u', agent, verb, ...args];
}

/** Runs one agent verb. */
export async function runAgent(host: RemoteHost, verb: string, args: string[], opts: RunOptions = {}): Promise<ExecResult> {
  return host.run(agentArgv(await ensureAgent(host), verb, args), opts);
}

export async function checkAgent(host: RemoteHost, what: string, verb: string, args: string[], opts: RunOptions = {}): Promise<ExecResult> {
  const result = await runAgent(host, verb, args, opts);
  if (result.code !== 0) throw new RemoteCommandError(what, result);
  return result;
}

export class AgentProtocolError extends Error {}

/**
 * Parses `key=value` lines; repeated keys collect into arrays via `all`. A key read with `get` must
 * appear once: a value that smuggled in a line of its own (the agent never lets one) would repeat a
 * key, and is refused rather than believed.
 */
export function parseKeyValues(text: string): { get(key: string): string | undefined; all(key: string): string[] } {
  const map = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i <= 0 || !/^[a-z_][a-z0-9_]*$/.test(line.slice(0, i))) continue;
    const k = line.slice(0, i);
    map.set(k, [...(map.get(k) ?? []), line.slice(i + 1)]);
  }
  return {
    get: (k) => {
      const v = map.get(k);
      if (v && v.length > 1) throw new AgentProtocolError(`The host agent's answer repeats "${k}" (${v.length} times); it is not trusted.`);
      return v?.[0];
    },
    all: (k) => map.get(k) ?? [],
  };
}
