/**
 * Collects output lines and hands them over as few, bounded text chunks: a remote stream of
 * 10 MB/s then costs about ten appends a second of at most `maxChunk` characters each, instead of
 * one append per line (which freezes the window). Pure: the timer is injected, no `vscode`.
 */
export interface BatcherTimer {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const nodeTimer: BatcherTimer = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface LineBatcherOptions {
  /** Delay before a partial batch is flushed. */
  intervalMs?: number;
  /** Largest chunk handed to `emit` (characters); bigger backlogs go out in several chunks. */
  maxChunk?: number;
  timer?: BatcherTimer;
}

export class LineBatcher {
  private pending: string[] = [];
  private pendingChars = 0;
  private handle: unknown;
  private readonly interval: number;
  private readonly maxChunk: number;
  private readonly timer: BatcherTimer;

  constructor(private readonly emit: (text: string) => void, opts: LineBatcherOptions = {}) {
    this.interval = opts.intervalMs ?? 100;
    this.maxChunk = opts.maxChunk ?? 1 << 20;
    this.timer = opts.timer ?? nodeTimer;
  }

  push(lines: readonly string[]): void {
    for (const l of lines) {
      this.pending.push(l);
      this.pendingChars += l.length + 1;
    }
    // A full chunk goes out at once, so the backlog never exceeds about one chunk.
    if (this.pendingChars >= this.maxChunk) this.flush();
    else if (this.handle === undefined && this.pending.length > 0) this.handle = this.timer.set(() => this.flush(), this.interval);
  }

  /** Emits everything pending now, in chunks of at most maxChunk characters (a longer single line is split). */
  flush(): void {
    if (this.handle !== undefined) {
      this.timer.clear(this.handle);
      this.handle = undefined;
    }
    let chunk: string[] = [];
    let size = 0;
    const out = (): void => {
      if (chunk.length) this.emit(chunk.join('\n') + '\n');
      chunk = [];
      size = 0;
    };
    for (const line of this.pending) {
      if (line.length + 1 > this.maxChunk) {
        out();
        for (let i = 0; i < line.length; i += this.maxChunk - 1) this.emit(line.slice(i, i + this.maxChunk - 1) + (i + this.maxChunk - 1 >= line.length ? '\n' : ''));
        continue;
      }
      if (size + line.length + 1 > this.maxChunk) out();
      chunk.push(line);
      size += line.length + 1;
    }
    out();
    this.pending = [];
    this.pendingChars = 0;
  }

  dispose(): void {
    this.flush();
  }
}
