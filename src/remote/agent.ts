/**
 * The host agent: a static bash script (kadi-ops-agent.sh) installed once per content hash under
 * <backupDir>/.kadi-ops/agent/ and invoked with quoted arguments. Long, careful shell lives in
 * one reviewed file instead of being assembled from strings in TypeScript.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExecResult } from '../ssh/connection';
import type { RemoteHost, RunOptions } from './remoteHost';
import { RemoteCommandError } from './remoteHost';

const AGENT_FILE = 'kadi-ops-agent.sh';
const AGENT_PYZ = 'kadi-ops-agent.pyz';
let cachedScript: string | undefined;
let cachedPyz: Buffer | undefined;

/**
 * The agent's text: dist/kadi-ops-agent.sh next to the bundle, or assembled from the parts in
 * src/remote/agent/ (tests run from out/).
 */
export function agentScript(): string {
  if (cachedScript !== undefined) return cachedScript;
  const bundled = path.join(__dirname, AGENT_FILE);
  if (fs.existsSync(bundled)) return (cachedScript = fs.readFileSync(bundled, 'utf8'));
  return (cachedScript = assembleAgent(inRepository(path.join('src', 'remote', 'agent'), AGENT_FILE)));
}

/** A path of the repository, from a compiled module (out/src/remote) or a bundle (dist). */
function inRepository(rel: string, what: string): string {
  for (const root of [path.join(__dirname, '..', '..', '..'), path.join(__dirname, '..')]) {
    const p = path.join(root, rel);
    if (fs.existsSync(p)) return p;
  }
  throw new Error(`${what} not found next to ${__dirname}`);
}

export function assembleAgent(dir: string): string {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.sh'))
    .sort()
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))
    .join('\n');
}

/**
 * The agent's Python package as a zipapp: dist/kadi-ops-agent.pyz next to the bundle, or built from
 * agent/ with agent/build.py (reproducible bytes) when running from the repository (tests).
 */
export function agentPyz(): Buffer {
  if (cachedPyz !== undefined) return cachedPyz;
  const bundled = path.join(__dirname, AGENT_PYZ);
  if (fs.existsSync(bundled)) return (cachedPyz = fs.readFileSync(bundled));
  return (cachedPyz = execFileSync('python3', [inRepository(path.join('agent', 'build.py'), AGENT_PYZ), '-'], { maxBuffer: 64 * 1024 * 1024 }));
}

/** One hash over both parts: the bash agent finds its Python package by its own name. */
export function agentHash(): string {
  return createHash('sha256').update(agentScript()).update('\0').update(agentPyz()).digest('hex').slice(0, 16);
}

export function stateDir(backupDir: string): string {
  return path.posix.join(backupDir, '.kadi-ops');
}

export function agentPath(backupDir: string): string {
  return path.posix.join(stateDir(backupDir), 'agent', `kadi-ops-agent-${agentHash()}.sh`);
}

const installed = new WeakSet<RemoteHost>();

/**
 * Installs the agent if this content hash is not on the host yet: one round trip when it is there;
 * otherwise the Python package first, then the script, whose presence means both are complete.
 */
export async function ensureAgent(host: RemoteHost): Promise<string> {
  const target = agentPath(host.profile.backupDir);
  if (installed.has(host)) return target;
  const dir = path.posix.dirname(target);
  const state = stateDir(host.profile.backupDir);
  const pyz = target.replace(/\.sh$/, '.pyz');
  const install = (file: string, content: string | Buffer): Promise<unknown> =>
    host.check(`Installing the Kadi Ops agent in ${dir}`, {
      or: [
        { argv: ['test', '-f', target] },
        {
          and: [
            { argv: ['mkdir', '-p', dir] },
            { argv: ['chmod', '700', state, dir] },
            { argv: ['cat'], stdoutTo: `${file}.tmp` },
            { argv: ['mv', `${file}.tmp`, file] },
          ],
        },
      ],
    }, { stdin: content });
  await install(pyz, agentPyz());
  await install(target, agentScript());
  installed.add(host);
  return target;
}

/** Runs one agent verb. */
export async function runAgent(host: RemoteHost, verb: string, args: string[], opts: RunOptions = {}): Promise<ExecResult> {
  const script = await ensureAgent(host);
  return host.run(['bash', script, verb, ...args], opts);
}

export async function checkAgent(host: RemoteHost, what: string, verb: string, args: string[], opts: RunOptions = {}): Promise<ExecResult> {
  const result = await runAgent(host, verb, args, opts);
  if (result.code !== 0) throw new RemoteCommandError(what, result);
  return result;
}

/** Parses `key=value` lines; repeated keys collect into arrays via `all`. */
export function parseKeyValues(text: string): { get(key: string): string | undefined; all(key: string): string[] } {
  const map = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i <= 0 || !/^[a-z_][a-z0-9_]*$/.test(line.slice(0, i))) continue;
    const k = line.slice(0, i);
    map.set(k, [...(map.get(k) ?? []), line.slice(i + 1)]);
  }
  return { get: (k) => map.get(k)?.at(-1), all: (k) => map.get(k) ?? [] };
}
