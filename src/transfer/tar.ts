/**
 * Just enough tar for moving backup sets: a writer of regular files (ustar, with a pax header when
 * a path or size does not fit) and a streaming reader that understands what GNU tar emits for
 * regular files (ustar prefix, GNU long names, pax path/size). Anything else is refused, so a
 * stream can never create a link or a device on this side.
 */
import { Writable } from 'node:stream';

const BLOCK = 512;
const ZERO_BLOCK = Buffer.alloc(BLOCK);

// ---------------------------------------------------------------------------------------------
// Writer

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name: string, size: number, type: '0' | 'x', mode: number, mtime: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(name, 0, 100, 'utf8');
  b.write(octal(mode, 8), 100, 'ascii');
  b.write(octal(0, 8), 108, 'ascii');
  b.write(octal(0, 8), 116, 'ascii');
  b.write(octal(size, 12), 124, 'ascii');
  b.write(octal(mtime, 12), 136, 'ascii');
  b.write('        ', 148, 'ascii');
  b.write(type, 156, 'ascii');
  b.write('ustar\0', 257, 'ascii');
  b.write('00', 263, 'ascii');
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(octal(sum, 7) + ' ', 148, 'ascii');
  return b;
}

/** One pax record: "<len> key=value\n", where len counts itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

/** Header block(s) for a regular file; a pax header carries a long path or a size >= 8 GiB. */
export function fileHeader(path: string, size: number, mtime = 0, mode = 0o600): Buffer {
  const longName = Buffer.byteLength(path) > 100;
  const bigSize = size > 0o77777777777;
  if (!longName && !bigSize) return header(path, size, '0', mode, mtime);
  let pax = '';
  if (longName) pax += paxRecord('path', path);
  if (bigSize) pax += paxRecord('size', String(size));
  const paxBody = Buffer.from(pax, 'utf8');
  const short = Buffer.from(path, 'utf8').subarray(0, 100).toString('utf8').replace(/\uFFFD+$/, '');
  return Buffer.concat([
    header('PaxHeader', paxBody.length, 'x', 0o600, mtime),
    paxBody,
    padding(paxBody.length),
    header(short, bigSize ? 0 : size, '0', mode, mtime),
  ]);
}

export function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - rest);
}

export const TAR_END = Buffer.alloc(2 * BLOCK);

// ---------------------------------------------------------------------------------------------
// Reader

export interface TarFileSink {
  write(chunk: Buffer): Promise<void> | void;
  end(): Promise<void> | void;
  /** The stream stopped inside this file (cancel, error): release it without finishing. */
  abort?(): Promise<void> | void;
}

/** Called for every regular file in the stream; returns where its bytes go. */
export type TarFileHandler = (path: string, size: number) => Promise<TarFileSink> | TarFileSink;

export class TarFormatError extends Error {}

function parseOctal(b: Buffer): number {
  if (b[0] & 0x80) {
    // base-256 (GNU, for sizes beyond the octal field)
    let n = 0;
    for (let i = 1; i < b.length; i++) n = n * 256 + b[i];
    return n;
  }
  const s = b.toString('ascii').replace(/\0.*$/s, '').trim();
  return s === '' ? 0 : parseInt(s, 8);
}

function cString(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('utf8');
}

function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
  return sum === parseOctal(h.subarray(148, 156));
}

function parsePax(body: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < body.length) {
    const space = body.indexOf(0x20, pos);
    if (space < 0) break;
    const len = Number(body.subarray(pos, space).toString('ascii'));
    if (!Number.isInteger(len) || len <= 0) throw new TarFormatError('bad pax record');
    const rec = body.subarray(space + 1, pos + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    pos += len;
  }
  return out;
}

type State =
  | { t: 'header' }
  | { t: 'meta'; kind: 'L' | 'x' | 'g'; remaining: number; parts: Buffer[]; pad: number }
  | { t: 'data'; sink: TarFileSink; remaining: number; pad: number }
  | { t: 'skip'; remaining: number }
  | { t: 'end' };

/** A Writable that unpacks a tar stream into `onFile` sinks, with backpressure through them. */
export class TarExtractor extends Writable {
  private buf: Buffer = Buffer.alloc(0);
  private state: State = { t: 'header' };
  private longName: string | undefined;
  private pax = new Map<string, string>();
  private zeroBlocks = 0;
  files = 0;

  /**
   * `highWaterMark` (default 1 MiB): how much a piped source may buffer here before it is paused.
   * With Node's default of 16 KiB an SSH channel (32 KiB packets) was paused after every packet.
   */
  constructor(private readonly onFile: TarFileHandler, opts: { highWaterMark?: number } = {}) {
    super({ highWaterMark: opts.highWaterMark ?? 1 << 20 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.consume(chunk).then(() => cb(), (e: Error) => cb(e));
  }

  /** Chunks that queued up while the previous ones were written out are parsed as one. */
  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.consume(chunks.length === 1 ? chunks[0].chunk : Buffer.concat(chunks.map((c) => c.chunk))).then(() => cb(), (e: Error) => cb(e));
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const s = this.state;
    this.state = { t: 'end' };
    if (s.t === 'data' && s.sink.abort) Promise.resolve(s.sink.abort()).then(() => cb(err), () => cb(err));
    else cb(err);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.state.t === 'end' || (this.state.t === 'header' && this.buf.length === 0 && this.zeroBlocks > 0)) cb();
    else cb(new TarFormatError('the tar stream ended early'));
  }

  private async consume(chunk: Buffer): Promise<void> {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      const s = this.state;
      if (s.t === 'end') {
        this.buf = Buffer.alloc(0);
        return;
      }
      if (s.t === 'data') {
        if (s.remaining > 0) {
          if (this.buf.length === 0) return;
          const n = Math.min(s.remaining, this.buf.length);
          const part = this.buf.subarray(0, n);
          this.buf = this.buf.subarray(n);
          s.remaining -= n;
          await s.sink.write(part);
          if (s.remaining > 0) return;
          await s.sink.end();
        }
        this.state = { t: 'skip', remaining: s.pad };
        continue;
      }
      if (s.t === 'skip') {
        const n = Math.min(s.remaining, this.buf.length);
        this.buf = this.buf.subarray(n);
        s.remaining -= n;
        if (s.remaining > 0) return;
        this.state = { t: 'header' };
        continue;
      }
      if (s.t === 'meta') {
        const n = Math.min(s.remaining, this.buf.length);
        s.parts.push(this.buf.subarray(0, n));
        this.buf = this.buf.subarray(n);
        s.remaining -= n;
        if (s.remaining > 0) return;
        const body = Buffer.concat(s.parts);
        if (s.kind === 'L') this.longName = cString(body);
        else if (s.kind === 'x') this.pax = parsePax(body);
        this.state = { t: 'skip', remaining: s.pad };
        continue;
      }
      // header
      if (this.buf.length < BLOCK) return;
      const h = this.buf.subarray(0, BLOCK);
      this.buf = this.buf.subarray(BLOCK);
      if (h.equals(ZERO_BLOCK)) {
        if (++this.zeroBlocks >= 2) this.state = { t: 'end' };
        continue;
      }
      this.zeroBlocks = 0;
      if (!checksumOk(h)) throw new TarFormatError('bad tar header checksum');
      const type = String.fromCharCode(h[156] || 0x30);
      let size = parseOctal(h.subarray(124, 136));
      const pad = padding(size).length;
      if (type === 'L' || type === 'x' || type === 'g') {
        this.state = { t: 'meta', kind: type, remaining: size, parts: [], pad };
        continue;
      }
      const prefix = h.subarray(257, 262).toString('ascii') === 'ustar' ? cString(h.subarray(345, 500)) : '';
      let name = this.longName ?? (prefix ? `${prefix}/${cString(h.subarray(0, 100))}` : cString(h.subarray(0, 100)));
      if (this.pax.has('path')) name = this.pax.get('path') ?? name;
      if (this.pax.has('size')) size = Number(this.pax.get('size'));
      this.longName = undefined;
      this.pax = new Map();
      if (type === '5') {
        this.state = { t: 'skip', remaining: size + padding(size).length };
        continue;
      }
      if (type !== '0' && type !== '7') throw new TarFormatError(`refusing tar entry "${name}" of type ${type}`);
      const sink = await this.onFile(name, size);
      this.files++;
      if (size === 0) await sink.end();
      this.state = { t: 'data', sink, remaining: size, pad: padding(size).length };
    }
  }
}
