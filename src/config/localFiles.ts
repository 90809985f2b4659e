/**
 * The few local file-system reads config resolution needs, injectable so tests can run against a
 * fake home directory and so resolution never throws on a missing or unreadable file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface LocalFiles {
  /** File contents, or undefined when it does not exist or cannot be read. */
  readFile: (p: string) => string | undefined;
  /** Entry names of a directory, or undefined when it cannot be listed. */
  readDir: (p: string) => string[] | undefined;
}

export const realFiles: LocalFiles = {
  readFile: (p) => {
    try {
      return fs.readFileSync(p, 'utf8');
    } catch {
      return undefined;
    }
  },
  readDir: (p) => {
    try {
      return fs.readdirSync(p);
    } catch {
      return undefined;
    }
  },
};

/** `~` and `~/x` relative to `homeDir`; other paths unchanged (`~user` is not supported, as in most tools). */
export function expandTilde(p: string, homeDir: string): string {
  if (p === '~') return homeDir;
  if (p.startsWith('~/')) return path.join(homeDir, p.slice(2));
  return p;
}

/** A path shown to the user: the home directory written as `~`. */
export function displayPath(p: string, homeDir: string): string {
  const home = homeDir.endsWith(path.sep) ? homeDir : homeDir + path.sep;
  return p.startsWith(home) ? `~/${p.slice(home.length)}` : p;
}

function segmentRegExp(segment: string): RegExp {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const ch = segment[i];
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const close = segment.indexOf(']', i + 2);
      if (close < 0) re += '\\[';
      else {
        let body = segment.slice(i + 1, close);
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        re += `[${body.replace(/\\/g, '\\\\')}]`;
        i = close;
      }
    } else re += ch.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const hasMagic = (s: string): boolean => /[*?[]/.test(s);

/**
 * Expands an absolute glob(7) pattern like glob(3) does for ssh's Include: sorted matches, `*` does not
 * match a leading dot, and a pattern without wildcards is returned as-is (the caller finds out
 * whether it exists when reading it).
 */
export function expandGlob(pattern: string, files: LocalFiles): string[] {
  if (!hasMagic(pattern)) return [pattern];
  const parts = pattern.split('/');
  let bases = [parts[0] === '' ? '/' : parts[0]];
  for (const part of parts.slice(1)) {
    if (part === '') continue;
    const next: string[] = [];
    for (const base of bases) {
      if (!hasMagic(part)) {
        next.push(path.join(base, part));
        continue;
      }
      const re = segmentRegExp(part);
      const names = (files.readDir(base) ?? []).filter((n) => re.test(n) && (!n.startsWith('.') || part.startsWith('.')));
      next.push(...names.sort().map((n) => path.join(base, n)));
    }
    bases = next;
  }
  return bases;
}
