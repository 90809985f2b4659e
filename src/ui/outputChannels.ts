/**
 * One LogOutputChannel per host. Lines are buffered and appended in bounded batches on a short
 * timer (LineBatcher) so a fast remote stream costs a handful of appends per second, not one per line.
 */
import * as vscode from 'vscode';
import { quietSink, type LineStream, type OutputSink } from '../core/sink';
import { LineBatcher } from './lineBatcher';

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

  /** The host's channel as a sink; a job's [detail] lines only with the kadiOps.output.verbose setting. */
  sink(host: string): OutputSink & { flush(): void } {
    const channel = this.channel(host);
    const batch = new LineBatcher((text) => channel.append(text), { intervalMs: FLUSH_MS, maxChunk: 1 << 20 });
    const verbose = vscode.workspace.getConfiguration('kadiOps').get<boolean>('output.verbose', false);
    const quiet = quietSink(
      {
        lines(stream: LineStream, lines: string[]): void {
          if (stream === 'error' || stream === 'warn' || stream === 'info') {
            batch.flush();
            for (const l of lines) channel[stream](l);
            return;
          }
          batch.push(lines);
        },
      },
      verbose,
    );
    return { lines: (stream, lines) => quiet.lines(stream, lines), flush: () => batch.flush() };
  }

  dispose(): void {
    for (const c of this.channels.values()) c.dispose();
    this.channels.clear();
  }
}
