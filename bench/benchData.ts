/** Data generation and timing shared by the benchmarks (reproducible from a seed). */
import { createCipheriv, createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Deterministic bytes: AES-256-CTR keystream of a key derived from the seed. */
export class SeededBytes {
  private readonly cipher;
  private state: number;
  constructor(seed: string) {
    const key = createHash('sha256').update(seed).digest();
    this.cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
    this.state = key.readUInt32LE(0) || 1;
  }
  bytes(n: number): Buffer {
    return this.cipher.update(Buffer.alloc(n));
  }
  /** xorshift32 in [0, 1) */
  random(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state / 0x100000000;
  }
}

export function fileSize(r: SeededBytes): number {
  const p = r.random();
  if (p < 0.6) return 1024 + Math.floor(r.random() * 20 * 1024); // many small files
  if (p < 0.95) return 64 * 1024 + Math.floor(r.random() * 512 * 1024);
  return 2 * 1024 * 1024 + Math.floor(r.random() * 8 * 1024 * 1024);
}

export function uuidFrom(r: SeededBytes): string {
  const h = r.bytes(16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function writeTree(root: string, count: number, r: SeededBytes, uid: number, gid: number, depth: 3 | 2): number {
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const id = uuidFrom(r);
    const dirs = depth === 3 ? [id.slice(0, 2), id.slice(2, 4), id.slice(4, 6)] : [id.slice(0, 2), id.slice(2, 4)];
    let dir = root;
    for (const d of dirs) {
      dir = path.join(dir, d);
      if (!fs.existsSync(dir)) {
        fs.mkdirSync(dir, { mode: 0o750 });
        fs.chownSync(dir, uid, gid);
      }
    }
    const size = fileSize(r);
    const file = path.join(dir, id.slice(depth === 3 ? 6 : 4));
    fs.writeFileSync(file, r.bytes(size), { mode: 0o640 });
    fs.chownSync(file, uid, gid);
    bytes += size;
  }
  return bytes;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export async function timed(fn: () => Promise<void>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

