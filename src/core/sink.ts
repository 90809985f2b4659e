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

/** Fans one stream of lines out to several sinks. */
export function teeSink(...sinks: OutputSink[]): OutputSink {
  return { lines: (stream, lines) => sinks.forEach((s) => s.lines(stream, lines)) };
}

/**
 * Splits a byte stream into lines across chunk boundaries. Decodes UTF-8 incrementally so a
 * multi-byte character split between two chunks is not mangled.
 */
export class LineSplitter {
  private rest = '';
  private readonly decoder = new TextDecoder('utf-8');
  constructor(private readonly emit: (lines: string[]) => void) {}

  push(chunk: Buffer | Uint8Array): void {
    const text = this.rest + this.decoder.decode(chunk, { stream: true });
    const parts = text.split('\n');
    this.rest = parts.pop() ?? '';
    if (parts.length > 0) this.emit(parts.map(stripCr));
  }

  end(): void {
    const text = this.rest + this.decoder.decode();
    this.rest = '';
    if (text.length > 0) this.emit([stripCr(text)]);
  }
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
