/**
 * Which files make up a backup set and what each must hash to. The manifest is the root of trust:
 * it names every artifact with size and sha256; a tree's `<tree>.files.jsonl` (itself an artifact)
 * names every file under `<tree>/` with size and sha256.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { Manifest } from '../backup/manifest';

export interface ExpectedFile {
  /** Path inside the set, '/'-separated. */
  path: string;
  size: number;
  sha256: string;
}

export class UnsafePathError extends Error {}

/** Refuses paths that could leave the set directory (absolute, '..', empty components, NUL/newline). */
export function checkSetPath(p: string): string {
  const parts = p.split('/');
  if (p === '' || p.startsWith('/') || /[\0\n\r\\]/.test(p) || parts.some((x) => x === '' || x === '.' || x === '..')) {
    throw new UnsafePathError(`unsafe path in backup set: ${JSON.stringify(p)}`);
  }
  // A name that is not UTF-8 on the host reaches JSON as a lone surrogate escape; this side's file
  // system calls would write it as other bytes, so such a set stays on the host (it backs up,
  // verifies and restores there byte for byte).
  if (/[\uD800-\uDFFF]/u.test(p)) {
    throw new UnsafePathError(`the file name ${JSON.stringify(p)} in the backup set is not UTF-8 on the host; a set holding it cannot be copied to or from this machine (it is whole on the host: verify and restore it there)`);
  }
  return p;
}

/** The manifest's artifacts (manifest.json itself has no checksum: it is the reference). */
export function artifactFiles(m: Manifest): ExpectedFile[] {
  return m.artifacts.map((a) => ({ path: checkSetPath(a.name), size: a.size, sha256: a.sha256 }));
}

/** One line of `<tree>.files.jsonl` (`[relativePath, size, mtime, sha256]`); undefined for a blank one. */
export function treeFileLine(tree: string, line: string): ExpectedFile | undefined {
  if (line.trim() === '') return undefined;
  const row = JSON.parse(line) as unknown;
  if (!Array.isArray(row) || typeof row[0] !== 'string' || typeof row[1] !== 'number' || typeof row[3] !== 'string') {
    throw new Error(`${tree}.files.jsonl: malformed line ${JSON.stringify(line.slice(0, 200))}`);
  }
  return { path: checkSetPath(`${tree}/${row[0]}`), size: row[1], sha256: row[3] };
}

/** Parses `<tree>.files.jsonl`: one `[relativePath, size, mtime, sha256]` per line. */
export function treeFiles(tree: string, jsonl: string): ExpectedFile[] {
  return jsonl.split('\n').flatMap((line) => treeFileLine(tree, line) ?? []);
}

/**
 * Reads `<tree>.files.jsonl` at `file` as it goes, `batch` files at a time: a list of a million
 * files is never held whole (a transfer checks, moves and verifies one batch before the next).
 * With `sha256` (the manifest's), the bytes read are hashed and a list that changed since it was
 * checked fails before its last batch: a transfer that reads it again later never trusts other lines.
 */
export async function* treeFileBatches(tree: string, file: string, batch: number, sha256?: string): AsyncGenerator<ExpectedFile[]> {
  let files: ExpectedFile[] = [];
  const input = fs.createReadStream(file);
  const hash = createHash('sha256');
  input.on('data', (chunk) => hash.update(chunk as Buffer));
  const lines = readline.createInterface({ input, crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      const f = treeFileLine(tree, line);
      if (!f) continue;
      files.push(f);
      if (files.length >= batch) {
        yield files;
        files = [];
      }
    }
    if (sha256 !== undefined && hash.digest('hex') !== sha256) {
      throw new Error(`${tree}.files.jsonl changed while it was in use (its sha256 no longer matches the manifest)`);
    }
    if (files.length > 0) yield files;
  } finally {
    // Closing the reader does not close the file under it (a cancelled transfer must not keep it open).
    lines.close();
    input.destroy();
  }
}

/** How many files and bytes a tree's list names, every line checked (before anything is moved). */
export async function treeTotals(tree: string, file: string): Promise<{ files: number; bytes: number }> {
  const totals = { files: 0, bytes: 0 };
  for await (const batch of treeFileBatches(tree, file, 10_000)) {
    totals.files += batch.length;
    totals.bytes += batch.reduce((n, f) => n + f.size, 0);
  }
  return totals;
}

/** Trees a manifest copies file by file (`tree` artifacts). */
export function treeNames(m: Manifest): string[] {
  return m.artifacts.filter((a) => a.tree).map((a) => a.tree as string);
}

export async function sha256File(file: string, onBytes?: (n: number) => void): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) {
    h.update(chunk as Buffer);
    onBytes?.((chunk as Buffer).length);
  }
  return h.digest('hex');
}

export interface FileProblem {
  path: string;
  problem: 'missing' | 'size' | 'sha256';
  detail: string;
}

/** Checks one local file against its expectation; undefined when it matches. */
export async function checkLocalFile(root: string, f: ExpectedFile, onBytes?: (n: number) => void): Promise<FileProblem | undefined> {
  const file = path.join(root, ...f.path.split('/'));
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
  } catch {
    return { path: f.path, problem: 'missing', detail: `${f.path} is missing` };
  }
  if (!st.isFile()) return { path: f.path, problem: 'missing', detail: `${f.path} is not a file` };
  if (st.size !== f.size) return { path: f.path, problem: 'size', detail: `${f.path}: ${st.size} bytes, expected ${f.size}` };
  const digest = await sha256File(file, onBytes);
  if (digest !== f.sha256) return { path: f.path, problem: 'sha256', detail: `${f.path}: sha256 ${digest}, expected ${f.sha256}` };
  return undefined;
}

/** Runs `fn` over `items` with at most `limit` in flight (hashing many small files). */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
