/** Runs one agent verb with streamed stdin/stdout over the host's SSH connection (bulk data). */
import type { Readable, Writable } from 'node:stream';
import { agentArgv, ensureAgent } from '../remote/agent';
import type { RemoteHost } from '../remote/remoteHost';
import { CancelledError } from '../ssh/errors';

export interface StreamOptions {
  /** Sent after any sudo password; the remote stdin is closed when it ends (or at once without it). */
  stdin?: Readable;
  /** Receives stdout with backpressure; its errors (e.g. a checksum mismatch) abort the command. */
  stdout?: Writable;
  signal?: AbortSignal;
}

export class StreamCommandError extends Error {}

export async function streamAgent(host: RemoteHost, verb: string, args: string[], opts: StreamOptions = {}): Promise<void> {
  if (opts.signal?.aborted) throw new CancelledError();
  const { command, stdinPrefix } = await host.streamingCommand(agentArgv(await ensureAgent(host), verb, args));
  const channel = await (await host.live()).openExec(command);
  await new Promise<void>((resolve, reject) => {
    let stderr = '';
    let exitCode: number | null | undefined;
    let failure: Error | undefined;
    let stdoutDone = !opts.stdout;
    let closed = false;
    let outEnded = false;
    const endOut = (): void => {
      if (outEnded || !opts.stdout) return;
      outEnded = true;
      opts.stdout.end();
    };
    const fail = (e: Error): void => {
      failure ??= e;
      channel.close();
    };
    const settle = (): void => {
      if (!closed || !stdoutDone) return;
      opts.signal?.removeEventListener('abort', onAbort);
      if (failure) return reject(failure);
      if (exitCode === 0) return resolve();
      const detail = stderr.trim().split('\n').slice(-5).join('\n');
      reject(new StreamCommandError(`${verb} on ${host.profile.name} failed${exitCode === undefined || exitCode === null ? ' (connection closed)' : ` with exit status ${exitCode}`}${detail ? `:\n${detail}` : ''}`));
    };
    const onAbort = (): void => fail(new CancelledError());
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    channel.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 65536) stderr += d.toString('utf8');
    });
    channel.on('exit', (code: number | null) => {
      exitCode = code;
    });
    channel.on('close', () => {
      closed = true;
      // The remote side is gone: a writer still waiting for more data never gets it.
      if (opts.stdout && !stdoutDone) {
        if (exitCode === 0 && !failure) endOut();
        else {
          stdoutDone = true;
          opts.stdout.destroy();
        }
      }
      settle();
    });
    if (opts.stdout) {
      const out = opts.stdout;
      channel.pipe(out, { end: false });
      channel.on('end', endOut);
      out.on('finish', () => {
        stdoutDone = true;
        settle();
      });
      out.on('error', (e: Error) => {
        stdoutDone = true;
        fail(e);
        settle();
      });
    } else channel.resume();
    if (stdinPrefix.length) channel.write(stdinPrefix);
    if (opts.stdin) {
      opts.stdin.on('error', (e: Error) => fail(e));
      opts.stdin.pipe(channel);
    } else channel.end();
  });
}
