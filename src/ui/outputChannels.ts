/**
 * One LogOutputChannel per host. Lines are buffered and appended in batches on a short timer so
 * a fast remote stream costs a handful of appends per second instead of one per line.
 */
import * as vscode from 'vscode';
import type { LineStream, OutputSink } from '../core/sink';

const FLUSH_MS = 100;

export class HostOutputs implements vscode.Disposable {
  private readonly channels = new Map<string, vscode.LogOutputChannel>();

  channel(host: string): vscode.LogOutputChannel {
    let c = this.channels.get(host);
    if (!c) {
      c = vscode.window.createOutputChannel(`Kadi Ops: ${host}`, { log: true });
      this.channels.set(host, c);
    }
    return c;
  }

  sink(host: string): OutputSink & { flush(): void } {
    const channel = this.channel(host);
    let pending: string[] = [];
    let timer: NodeJS.Timeout | undefined;
    const flush = (): void => {
      timer = undefined;
      if (pending.length === 0) return;
      const text = pending.join('\n');
      pending = [];
      channel.append(text + '\n');
    };
    return {
      lines(stream: LineStream, lines: string[]): void {
        if (stream === 'error' || stream === 'warn' || stream === 'info') {
          flush();
          for (const l of lines) channel[stream](l);
          return;
        }
        pending.push(...lines);
        if (!timer) timer = setTimeout(flush, FLUSH_MS);
      },
      flush,
    };
  }

  dispose(): void {
    for (const c of this.channels.values()) c.dispose();
    this.channels.clear();
  }
}
