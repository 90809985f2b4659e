/**
 * One authenticated ssh2 connection to a host: host key verified against known_hosts (fails
 * closed), auth by agent, keys (+ passphrase), keyboard-interactive and password, keepalive,
 * and exec with streamed lines, exit status and cancellation.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AuthenticationType, Client, ClientChannel, ConnectConfig, NextAuthHandler, ParsedKey } from 'ssh2';
import type { Readable } from 'node:stream';
import type { HostProfile } from '../config/types';
import type { SecretProvider, SecretRequest } from '../core/secrets';
import { LineSplitter, nullSink, type OutputSink } from '../core/sink';
import { buildCommand, PGID_MARKER, withPgidReport } from '../core/shellCommand';
import { appendKnownHost, checkHostKey, fingerprintSha256, formatKnownHostsLine, keyTypeFromBlob, knownKeyTypes } from './knownHosts';
import { CancelledError, ChannelClosedError, HostKeyChangedError, HostKeyRejectedError, SshError } from './errors';

/**
 * ssh2 and its crypto are loaded on the first connection, not when the extension activates:
 * loading them was most of the activation time (BENCHMARKS.md, activation).
 */
function ssh2(): typeof import('ssh2') {
  return require('ssh2') as typeof import('ssh2');
}

export interface UnknownHostKey {
  profile: string;
  host: string;
  port: number;
  keyType: string;
  fingerprint: string;
  /** Keys of these other types are already known for the host: a new type is suspicious. */
  otherKeyTypes?: string[];
}

/** The only question the SSH layer asks a human: trust a host key seen for the first time? */
export interface HostKeyPrompt {
  onUnknownHostKey(info: UnknownHostKey): Promise<'accept-once' | 'trust' | 'reject'>;
}

export interface ConnectDeps {
  secrets: SecretProvider;
  hostKeys: HostKeyPrompt;
  /** Diagnostics for the output channel; never receives secrets. */
  log?: (message: string) => void;
}

export interface ExecOptions {
  sink?: OutputSink;
  /** Bytes written to the command's stdin, then EOF. Without it the command sees EOF at once. */
  stdin?: string | Buffer;
  /** Keep stdout (and stderr) in the result, up to this many bytes each (default 16 MiB). */
  collectLimit?: number;
  signal?: AbortSignal;
  /** How to stop the remote process group on cancel; defaults to kill as the login user. */
  killGroup?: (pgid: number, signal: 'TERM' | 'KILL') => Promise<void>;
  /** Grace period between TERM and KILL on cancel (ms). */
  killGraceMs?: number;
}

export interface ExecResult {
  code: number;
  signal?: string;
  stdout: string;
  stderr: string;
}

const DEFAULT_KEYS = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

export class SshConnection {
  private closed = false;
  private readonly closeListeners: ((err?: Error) => void)[] = [];

  private constructor(
    readonly profile: HostProfile,
    private readonly client: Client,
    readonly jump?: SshConnection,
  ) {
    client.on('close', () => {
      this.closed = true;
      for (const l of this.closeListeners.splice(0)) l();
      jump?.close();
    });
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  onClose(listener: () => void): void {
    if (this.closed) listener();
    else this.closeListeners.push(listener);
  }

  static async connect(profile: HostProfile, deps: ConnectDeps): Promise<SshConnection> {
    let jump: SshConnection | undefined;
    let sock: Readable | undefined;
    if (profile.ssh.proxyJump) {
      jump = await SshConnection.connect(jumpProfile(profile), deps);
      sock = await jump.forward(profile.ssh.hostName, profile.ssh.port);
    }
    const client = new (ssh2().Client)();
    let hostKeyError: Error | undefined;
    /** Why a configured identity file could not be offered: said with a failed authentication. */
    const authNotes: string[] = [];
    const config: ConnectConfig = {
      host: profile.ssh.hostName,
      port: profile.ssh.port,
      username: profile.ssh.user,
      sock,
      readyTimeout: profile.ssh.connectTimeoutSeconds * 1000,
      keepaliveInterval: profile.ssh.keepaliveIntervalSeconds * 1000,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
        verifyHostKey(profile, key, deps).then(
          () => verify(true),
          (err: Error) => {
            hostKeyError = err;
            verify(false);
          },
        );
      },
      authHandler: makeAuthHandler(profile, deps, authNotes),
    };
    const known = knownKeyTypes(knownHostsText(profile), profile.ssh.hostName, profile.ssh.port);
    if (known.length > 0) config.algorithms = { serverHostKey: preferredHostKeyAlgorithms(known, SERVER_HOST_KEY_ALGORITHMS) as NonNullable<ConnectConfig['algorithms']>['serverHostKey'] };
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('ready', () => resolve());
        client.once('error', (err: Error & { level?: string }) => reject(hostKeyError ?? describeConnectError(profile, err, authNotes)));
        client.connect(config);
      });
    } catch (err) {
      client.end();
      jump?.close();
      throw err;
    }
    // Every command is a few small packets each way: without TCP_NODELAY, Nagle's algorithm waits
    // for the peer's delayed ACK (~40 ms on Linux) before sending the next one, on every round trip.
    client.setNoDelay(true);
    deps.log?.(`Connected to ${profile.ssh.user}@${profile.ssh.hostName}:${profile.ssh.port}`);
    return new SshConnection(profile, client, jump);
  }

  private forward(host: string, port: number): Promise<Readable> {
    return new Promise((resolve, reject) =>
      this.client.forwardOut('127.0.0.1', 0, host, port, (err, stream) => (err ? reject(new SshError(`ProxyJump could not reach ${host}:${port}: ${err.message}`, 'PROXY_FAILED')) : resolve(stream))),
    );
  }

  /**
   * Runs one command. Resolves with its exit status; rejects when the channel closes without one
   * (the outcome is unknown, which must never be read as success) or when cancelled.
   */
  exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    if (this.closed) return Promise.reject(new SshError(`Not connected to ${this.profile.name}.`, 'NOT_CONNECTED'));
    if (opts.signal?.aborted) return Promise.reject(new CancelledError());
    const sink = opts.sink ?? nullSink;
    const limit = opts.collectLimit ?? 16 * 1024 * 1024;
    return new Promise<ExecResult>((resolve, reject) => {
      this.client.exec(withPgidReport(command), (err, stream) => {
        if (err) return reject(new SshError(`Could not start a command on ${this.profile.name}: ${err.message}`, 'EXEC_FAILED'));
        const out = new Collector(limit);
        const errs = new Collector(limit);
        let pgid: number | undefined;
        let exit: { code: number | null; signal?: string } | undefined;
        let cancelled = false;
        const stdoutLines = new LineSplitter((lines) => sink.lines('stdout', lines));
        const stderrLines = new LineSplitter((lines) => {
          if (pgid === undefined && lines.length > 0 && lines[0].startsWith(PGID_MARKER)) {
            pgid = Number(lines[0].slice(PGID_MARKER.length));
            lines = lines.slice(1);
          }
          if (lines.length > 0) {
            errs.add(lines.join('\n') + '\n');
            sink.lines('stderr', lines);
          }
        });
        stream.on('data', (d: Buffer) => {
          out.add(d);
          stdoutLines.push(d);
        });
        stream.stderr.on('data', (d: Buffer) => stderrLines.push(d));
        stream.on('exit', (code: number | null, signal?: string) => {
          exit = { code, signal };
        });
        const onAbort = (): void => {
          cancelled = true;
          void this.cancelGroup(stream, pgid, opts);
        };
        opts.signal?.addEventListener('abort', onAbort, { once: true });
        stream.on('close', () => {
          opts.signal?.removeEventListener('abort', onAbort);
          stdoutLines.end();
          stderrLines.end();
          if (cancelled) return reject(new CancelledError(`"${command}"`));
          if (!exit) return reject(new ChannelClosedError(command));
          if (exit.code === null || exit.code === undefined) {
            return resolve({ code: 128 + 15, signal: exit.signal ?? 'unknown', stdout: out.text(), stderr: errs.text() });
          }
          resolve({ code: exit.code, signal: exit.signal, stdout: out.text(), stderr: errs.text() });
        });
        if (opts.stdin !== undefined) stream.end(opts.stdin);
        else stream.end();
      });
    });
  }

  /**
   * Starts a command for a bulk transfer and hands over its channel: stdin, stdout and stderr
   * are streams the caller drives (exec() collects output in memory, which a set of GiB cannot).
   */
  openExec(command: string): Promise<ClientChannel> {
    if (this.closed) return Promise.reject(new SshError(`Not connected to ${this.profile.name}.`, 'NOT_CONNECTED'));
    return new Promise((resolve, reject) =>
      this.client.exec(command, (err, stream) => (err ? reject(new SshError(`Could not start a command on ${this.profile.name}: ${err.message}`, 'EXEC_FAILED')) : resolve(stream))),
    );
  }

  private async cancelGroup(stream: ClientChannel, pgid: number | undefined, opts: ExecOptions): Promise<void> {
    const kill =
      opts.killGroup ??
      (async (id: number, sig: 'TERM' | 'KILL') => {
        await this.exec(buildCommand({ or: [{ argv: ['kill', '-s', sig, '--', `-${id}`], discardStderr: true }, ['true']] }));
      });
    try {
      if (pgid === undefined) {
        stream.signal('TERM');
      } else {
        await kill(pgid, 'TERM');
        await delay(opts.killGraceMs ?? 3000);
        if (!stream.destroyed) await kill(pgid, 'KILL');
      }
    } catch {
      /* the connection may be gone; closing the channel below is the last resort */
    }
    stream.close();
  }

  close(): void {
    if (!this.closed) this.client.end();
  }
}

/** Keeps a command's output up to `limit` bytes; what is left out is counted, and the text says so. */
class Collector {
  private chunks: Buffer[] = [];
  private size = 0;
  private dropped = 0;
  constructor(private readonly limit: number) {}
  add(d: Buffer | string): void {
    const b = typeof d === 'string' ? Buffer.from(d) : d;
    if (this.size >= this.limit) {
      this.dropped += b.length;
      return;
    }
    this.chunks.push(b);
    this.size += b.length;
  }
  text(): string {
    const text = Buffer.concat(this.chunks).toString('utf8');
    return this.dropped > 0 ? `${text}\n[kadi-ops: output cut after ${this.size} bytes, ${this.dropped} more not kept]\n` : text;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function readKnownHosts(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** The system-wide known_hosts, read after the user's (as ssh(1) reads GlobalKnownHostsFile). */
export const GLOBAL_KNOWN_HOSTS = '/etc/ssh/ssh_known_hosts';

/** The user's known_hosts and the system-wide one: entries and @revoked lines of both count. */
function knownHostsText(profile: HostProfile): string {
  return `${readKnownHosts(profile.ssh.knownHostsFile)}\n${readKnownHosts(GLOBAL_KNOWN_HOSTS)}`;
}

/**
 * The host key algorithms to offer, those of the keys already known for this host first: a server
 * with several keys then shows the one we know, instead of a new type that would have to be asked
 * about (as ssh(1) orders HostKeyAlgorithms by known_hosts).
 */
export function preferredHostKeyAlgorithms(known: readonly string[], all: readonly string[]): string[] {
  const first = all.filter((a) => known.some((k) => a === k || (k === 'ssh-rsa' && /^rsa-sha2-/.test(a))));
  return [...first, ...all.filter((a) => !first.includes(a))];
}

/** The host key algorithms ssh2 offers by default (its protocol/constants DEFAULT_SERVER_HOST_KEY). */
const SERVER_HOST_KEY_ALGORITHMS = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];

async function verifyHostKey(profile: HostProfile, key: Buffer, deps: ConnectDeps): Promise<void> {
  const { hostName, port, knownHostsFile } = profile.ssh;
  const keyType = keyTypeFromBlob(key);
  const fingerprint = fingerprintSha256(key);
  const result = checkHostKey(knownHostsText(profile), hostName, port, keyType, key);
  const label = port === 22 ? hostName : `[${hostName}]:${port}`;
  switch (result.status) {
    case 'known':
      return;
    case 'changed':
      throw new HostKeyChangedError(label, fingerprint, knownHostsFile, result.lines);
    case 'revoked':
      throw new HostKeyRejectedError(label, fingerprint, `it is marked @revoked in ${knownHostsFile} line ${result.line}`);
    case 'unknown': {
      const answer = await deps.hostKeys.onUnknownHostKey({ profile: profile.name, host: label, port, keyType, fingerprint, otherKeyTypes: result.otherKeyTypes });
      if (answer === 'reject') throw new HostKeyRejectedError(label, fingerprint, 'the key is not in known_hosts and was not accepted');
      if (answer === 'trust') {
        appendKnownHost(knownHostsFile, formatKnownHostsLine(hostName, port, keyType, key, { hashed: false }));
        deps.log?.(`Added ${label} (${fingerprint}) to ${knownHostsFile}`);
      }
      return;
    }
  }
}

type PendingAuth = () => Promise<Parameters<NextAuthHandler>[0] | undefined>;

/** Tries agent, then each key file, then keyboard-interactive and password, as the server allows. */
function makeAuthHandler(profile: HostProfile, deps: ConnectDeps, notes: string[] = []) {
  const username = profile.ssh.user;
  const attempts: { type: AuthenticationType; make: PendingAuth }[] = [];
  const agentSock = process.env.SSH_AUTH_SOCK;
  if (profile.ssh.agent && agentSock) {
    attempts.push({ type: 'publickey', make: async () => ({ type: 'agent', username, agent: agentSock }) });
  }
  const explicit = profile.ssh.identityFiles.length > 0;
  const keyFiles = explicit ? profile.ssh.identityFiles : DEFAULT_KEYS.map((k) => path.join(os.homedir(), '.ssh', k));
  for (const file of keyFiles) {
    attempts.push({ type: 'publickey', make: () => loadKey(profile, file, explicit, deps, notes) });
  }
  const passwordReq: SecretRequest = { kind: 'password', host: profile.name, subject: `${username}@${profile.ssh.hostName}`, prompt: `Password for ${username}@${profile.ssh.hostName}` };
  attempts.push({
    type: 'keyboard-interactive',
    make: async () => ({
      type: 'keyboard-interactive',
      username,
      prompt: (_name, _instr, _lang, prompts, finish) => {
        if (prompts.length === 0) return finish([]);
        void deps.secrets.get(passwordReq).then((pw) => finish(prompts.map(() => pw ?? '')));
      },
    }),
  });
  attempts.push({
    type: 'password',
    make: async () => {
      const password = await deps.secrets.get(passwordReq);
      return password === undefined ? undefined : { type: 'password', username, password };
    },
  });
  let index = 0;
  return (authsLeft: AuthenticationType[] | null, _partial: boolean | null, next: NextAuthHandler): void => {
    const allowed = (t: AuthenticationType): boolean => !authsLeft || authsLeft.includes(t);
    const tryNext = async (): Promise<void> => {
      while (index < attempts.length) {
        const a = attempts[index++];
        if (!allowed(a.type)) continue;
        const method = await a.make();
        if (method) return next(method);
      }
      next(false as unknown as AuthenticationType);
    };
    if (authsLeft === null) return next({ type: 'none', username });
    tryNext().catch(() => next(false as unknown as AuthenticationType));
  };
}

async function loadKey(profile: HostProfile, file: string, explicit: boolean, deps: ConnectDeps, notes: string[] = []): Promise<Parameters<NextAuthHandler>[0] | undefined> {
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch (err) {
    if (explicit) {
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'ENOENT' ? 'does not exist' : e.code === 'EACCES' ? 'cannot be read (permission denied)' : `cannot be read (${e.message})`;
      notes.push(`identity file ${file} ${why}`);
      deps.log?.(`Identity file ${file} cannot be read: ${e.message}`);
    }
    return undefined;
  }
  const { utils } = ssh2();
  let parsed = utils.parseKey(data);
  if (parsed instanceof Error && /encrypted|passphrase/i.test(parsed.message)) {
    const req: SecretRequest = { kind: 'passphrase', host: profile.name, subject: file, prompt: `Passphrase for ${file}` };
    const passphrase = await deps.secrets.get(req);
    if (passphrase === undefined) return undefined;
    parsed = utils.parseKey(data, passphrase);
    if (parsed instanceof Error) {
      await deps.secrets.reject?.(req);
      notes.push(`wrong passphrase for identity file ${file}`);
      deps.log?.(`Wrong passphrase for ${file}.`);
      return undefined;
    }
    await deps.secrets.confirm?.(req, passphrase);
  }
  if (parsed instanceof Error) {
    if (explicit) notes.push(`identity file ${file} is not a usable private key (${parsed.message})`);
    deps.log?.(`Identity file ${file} is not a usable private key: ${parsed.message}`);
    return undefined;
  }
  const key: ParsedKey = Array.isArray(parsed) ? (parsed[0] as ParsedKey) : parsed;
  return { type: 'publickey', username: profile.ssh.user, key };
}

function describeConnectError(profile: HostProfile, err: Error & { level?: string; code?: string }, authNotes: readonly string[] = []): SshError {
  const target = `${profile.ssh.user}@${profile.ssh.hostName}:${profile.ssh.port}`;
  if (err.level === 'client-authentication') {
    const notes = authNotes.length > 0 ? ` Note: ${[...new Set(authNotes)].join('; ')}.` : '';
    return new SshError(`Authentication as ${target} failed: no key, agent identity or password was accepted.${notes}`, 'AUTH_FAILED');
  }
  if (err.level === 'client-timeout') return new SshError(`Timed out connecting to ${target}.`, 'TIMEOUT');
  if (err.code === 'ECONNREFUSED') return new SshError(`Connection to ${target} refused (is sshd running on that port?).`, 'REFUSED');
  if (err.code === 'ENOTFOUND') return new SshError(`Host name ${profile.ssh.hostName} cannot be resolved.`, 'NOT_FOUND');
  return new SshError(`Could not connect to ${target}: ${err.message}`, 'CONNECT_FAILED');
}

/**
 * A profile for the ProxyJump host next to the target ("[user@]host[:port]"), sharing keys and
 * known_hosts. With a chain `a,b` (as ssh(1): a, then b, then the target) the next-to-last hop is
 * reached through the ones before it, so every hop's host key is verified in turn.
 */
export function jumpProfile(profile: HostProfile): HostProfile {
  const hops = (profile.ssh.proxyJump ?? '').split(',').map((h) => h.trim()).filter(Boolean);
  const spec = hops[hops.length - 1] ?? '';
  const m = /^(?:([^@]+)@)?(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(spec);
  if (!m) throw new SshError(`Host "${profile.name}": ssh.proxyJump "${spec}" is not [user@]host[:port].`, 'BAD_PROXYJUMP');
  const host = m[2].replace(/^\[|\]$/g, '');
  const before = hops.slice(0, -1).join(',');
  return {
    ...profile,
    name: `${profile.name} (jump ${host})`,
    ssh: { ...profile.ssh, hostName: host, alias: host, port: m[3] ? Number(m[3]) : 22, user: m[1] ?? profile.ssh.user, proxyJump: before || undefined },
  };
}
