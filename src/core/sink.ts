/** Where a running operation's lines go: an output channel in VS Code, stdout/stderr in the CLI. */
export type LineStream = 'stdout' | 'stderr' | 'info' | 'warn' | 'error';

export interface OutputSink {
  /** Lines arrive in batches (never containing '\n') so a fast stream costs one call per chunk. */
  lines(stream: LineStream, lines: string[]): void;
}

/** A sink that drops everything; for callers that only want the result. */
export const nullSink: OutputSink = { lines: () => undefined };

/** Collects lines in memory (tests, and commands whose output is parsed afterwards). */
export class MemorySink implements OutputSink {
  readonly entries: { stream: LineStream; line: string }[] = [];
  lines(stream: LineStream, lines: string[]): void {
    for (const line of lines) this.entries.push({ stream, line });
  }
  text(stream?: LineStream): string {
    return this.entries.filter((e) => !stream || e.stream === stream).map((e) => e.line).join('\n');
  }
}

/** The agent's prefix for tool chatter (pg_restore -v, skipped ANALYZE tables): in the job's log, shown live only on request. */
export const DETAIL_PREFIX = '[detail] ';

/** `sink` without the job's detail lines, unless `verbose`; everything else passes unchanged. */
export function quietSink(sink: OutputSink, verbose: boolean): OutputSink {
  if (verbose) return sink;
  return {
    lines(stream, lines) {
      const shown = stream === 'stdout' ? lines.filter((l) => !l.startsWith(DETAIL_PREFIX)) : lines;
      if (shown.length > 0) sink.lines(stream, shown);
    },
  };
}

/** Fans one stream of lines out to several sinks. */
export function teeSink(...sinks: OutputSink[]): OutputSink {
  return { lines: (stream, lines) => sinks.forEach((s) => s.lines(stream, lines)) };
}

/** The longest line kept whole; the rest of a longer one is counted, not kept. */
export const MAX_LINE = 1024 * 1024;

/**
 * Splits a byte stream into lines across chunk boundaries. Decodes UTF-8 incrementally so a
 * multi-byte character split between two chunks is not mangled. Only each new chunk is searched for
 * line ends (a long line costs linear time), and a line longer than `maxLine` characters keeps its
 * first `maxLine` and says how much was left out, so memory stays bounded.
 */
export class LineSplitter {
  private rest: string[] = [];
  private restLength = 0;
  private dropped = 0;
  private readonly decoder = new TextDecoder('utf-8');
  constructor(private readonly emit: (lines: string[]) => void, private readonly maxLine = MAX_LINE) {}

  push(chunk: Buffer | Uint8Array): void {
    const text = this.decoder.decode(chunk, { stream: true });
    const nl = text.indexOf('\n');
    if (nl < 0) {
      this.keep(text);
      return;
    }
    this.keep(text.slice(0, nl));
    const parts = text.slice(nl + 1).split('\n');
    const last = parts.pop() ?? '';
    const lines = [this.take(), ...parts.map((p) => this.bounded(p))];
    this.keep(last);
    this.emit(lines.map(stripCr));
  }

  end(): void {
    this.keep(this.decoder.decode());
    if (this.restLength > 0 || this.dropped > 0) this.emit([stripCr(this.take())]);
  }

  private keep(text: string): void {
    const room = this.maxLine - this.restLength;
    if (text.length <= room) {
      if (text.length > 0) this.rest.push(text);
      this.restLength += text.length;
    } else {
      if (room > 0) this.rest.push(text.slice(0, room));
      this.restLength += Math.max(0, room);
      this.dropped += text.length - Math.max(0, room);
    }
  }

  private take(): string {
    const line = this.rest.join('') + (this.dropped > 0 ? ` [kadi-ops: line cut, ${this.dropped} more characters not kept]` : '');
    this.rest = [];
    this.restLength = 0;
    this.dropped = 0;
    return line;
  }

  private bounded(line: string): string {
    return line.length <= this.maxLine ? line : `${line.slice(0, this.maxLine)} [kadi-ops: line cut, ${line.length - this.maxLine} more characters not kept]`;
  }
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
