/**
 * Runs commands on a host as the Kadi user: directly when the profile logs in as that user, or
 * through `sudo -u kadi` from an operator account. A sudo password, when one is needed, is fed on
 * stdin (`sudo -S -k`, so it is always consumed by sudo and never reaches the command).
 */
import type { HostProfile } from '../config/types';
import type { SecretProvider, SecretRequest } from '../core/secrets';
import type { OutputSink } from '../core/sink';
import type { ExecResult, SshConnection } from '../ssh/connection';
import { buildCommand, shellArgv, type ShellNode } from '../core/shellCommand';

export interface RunOptions {
  sink?: OutputSink;
  stdin?: string | Buffer;
  signal?: AbortSignal;
  collectLimit?: number;
}

export class RemoteCommandError extends Error {
  constructor(readonly what: string, readonly result: ExecResult) {
    const detail = (result.stderr || result.stdout).trim().split('\n').slice(-5).join('\n');
    super(`${what} failed with exit status ${result.code}${detail ? `:\n${detail}` : '.'}`);
    this.name = 'RemoteCommandError';
  }
}

export class RemoteHost {
  /** undefined until the first sudo run tells whether a password is needed. */
  private sudoNeedsPassword: boolean | undefined;

  constructor(
    private conn: SshConnection,
    private readonly secrets: SecretProvider,
    /** Opens a fresh connection after the old one dropped (the pool supplies it). */
    private readonly reconnect?: () => Promise<SshConnection>,
  ) {}

  get connection(): SshConnection {
    return this.conn;
  }

  get profile(): HostProfile {
    return this.conn.profile;
  }

  /** The live connection, reopened if it dropped; concurrent callers share one reconnect. */
  private reopening: Promise<SshConnection> | undefined;
  async live(): Promise<SshConnection> {
    if (this.conn.isOpen || !this.reconnect) return this.conn;
    this.reopening ??= this.reconnect().finally(() => (this.reopening = undefined));
    this.conn = await this.reopening;
    return this.conn;
  }

  /** The exact shell line sent for a command, for display ("the operator sees what runs"). */
  describe(node: ShellNode | string[]): string {
    return this.wrap(node, false);
  }

  async run(node: ShellNode | string[], opts: RunOptions = {}): Promise<ExecResult> {
    const killGroup = (pgid: number, sig: 'TERM' | 'KILL'): Promise<void> => this.killGroup(pgid, sig);
    const conn = await this.live();
    if (this.profile.runAs === 'direct') {
      return conn.exec(buildCommand(node), { ...opts, killGroup });
    }
    if (this.sudoNeedsPassword !== true) {
      const result = await conn.exec(this.wrap(node, false), { ...opts, killGroup });
      if (!(result.code === 1 && /a password is required/.test(result.stderr))) {
        this.sudoNeedsPassword = false;
        return result;
      }
      this.sudoNeedsPassword = true;
    }
    const { password } = await this.validatedSudoPassword(conn);
    const stdin = Buffer.concat([Buffer.from(password + '\n'), toBuffer(opts.stdin)]);
    return conn.exec(this.wrap(node, true), { ...opts, stdin, killGroup });
  }

  /**
   * The sudo password, checked once on its own (`sudo -S -k -v` with nothing but the password on
   * stdin) before it is ever put in front of a command's stdin: a wrong password must not make sudo
   * read the command's input (the database password, a listing) as its next attempts.
   */
  private validated: Promise<{ password: string }> | undefined;
  private validatedSudoPassword(conn: SshConnection): Promise<{ password: string }> {
    this.validated ??= (async () => {
      const { req, password } = await this.sudoPassword();
      const r = await conn.exec(buildCommand(['sudo', '-S', '-k', '-v', '-p', '']), { stdin: Buffer.from(password + '\n') });
      if (r.code !== 0) {
        await this.secrets.reject?.(req);
        throw new Error(`sudo on ${this.profile.name} rejected the password.`);
      }
      await this.secrets.confirm?.(req, password);
      return { password };
    })().catch((e: unknown) => {
      this.validated = undefined;
      throw e;
    });
    return this.validated;
  }

  /** Like run, but a non-zero exit status is an error naming what failed. */
  async check(what: string, node: ShellNode | string[], opts: RunOptions = {}): Promise<ExecResult> {
    const result = await this.run(node, opts);
    if (result.code !== 0) throw new RemoteCommandError(what, result);
    return result;
  }

  /**
   * The shell line and the stdin prefix (a sudo password, if one is needed) for a command whose
   * stdin and stdout are streamed (transfers): the password question is settled first with a
   * cheap `true`, because a streamed stdin cannot be replayed.
   */
  async streamingCommand(node: ShellNode | string[]): Promise<{ command: string; stdinPrefix: Buffer }> {
    if (this.profile.runAs === 'direct') return { command: buildCommand(node), stdinPrefix: Buffer.alloc(0) };
    if (this.sudoNeedsPassword === undefined) await this.check('sudo', ['true']);
    if (!this.sudoNeedsPassword) return { command: this.wrap(node, false), stdinPrefix: Buffer.alloc(0) };
    const { password } = await this.validatedSudoPassword(await this.live());
    return { command: this.wrap(node, true), stdinPrefix: Buffer.from(password + '\n') };
  }

  /** The login user's sudo password from the secret provider; none given is an error. */
  private async sudoPassword(): Promise<{ req: SecretRequest; password: string }> {
    const req: SecretRequest = {
      kind: 'sudo',
      host: this.profile.name,
      subject: `${this.profile.ssh.user}@${this.profile.ssh.hostName}`,
      prompt: `sudo password of ${this.profile.ssh.user} on ${this.profile.name}`,
    };
    const password = await this.secrets.get(req);
    if (password === undefined) throw new Error(`sudo on ${this.profile.name} needs a password and none was given.`);
    return { req, password };
  }

  private wrap(node: ShellNode | string[], withPassword: boolean): string {
    if (this.profile.runAs === 'direct') return buildCommand(node);
    const sudo = withPassword ? ['sudo', '-S', '-k', '-p', '', '-H', '-u', this.profile.kadi.user, '--'] : ['sudo', '-n', '-H', '-u', this.profile.kadi.user, '--'];
    return buildCommand([...sudo, ...shellArgv(node)]);
  }

  private async killGroup(pgid: number, sig: 'TERM' | 'KILL'): Promise<void> {
    // Signalled as the Kadi user: the group's commands run as that user, not as the login user.
    await this.run({ or: [{ argv: ['kill', '-s', sig, '--', `-${pgid}`], discardStderr: true }, ['true']] });
  }
}

function toBuffer(b: string | Buffer | undefined): Buffer {
  if (b === undefined) return Buffer.alloc(0);
  return typeof b === 'string' ? Buffer.from(b) : b;
}
