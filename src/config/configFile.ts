/**
 * The CLI's `--config <file>`: the same host entries as the `kadiOps.hosts` setting, as JSON (comments
 * and trailing commas allowed, as in settings.json). Accepted shapes: `{ "hosts": [...] }`,
 * `{ "kadiOps.hosts": [...] }` (pasted from settings.json) or a bare `[...]`.
 */
import * as fs from 'node:fs';
import { isPlainObject } from './checks';
import { JsoncSyntaxError, parseJsonc } from './jsonc';
import { closestKey } from './suggest';

/** missing: the file does not exist; unreadable: any other read error; syntax: not JSON; content: not a hosts list. */
export type ConfigFileProblem = 'missing' | 'unreadable' | 'syntax' | 'content';

export class ConfigFileError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly reason: ConfigFileProblem = 'content',
  ) {
    super(message);
    this.name = 'ConfigFileError';
  }
}

const HOSTS_KEYS = ['hosts', 'kadiOps.hosts'] as const;

/**
 * Reads `file` and returns its host entries, unvalidated (pass them to resolveProfiles). Throws
 * ConfigFileError, whose message names the file and, for syntax errors, the line and column.
 */
export function loadConfigFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'it does not exist'
      : code === 'EACCES' ? 'permission denied'
      : code === 'EISDIR' ? 'it is a directory'
      : (e as Error).message;
    throw new ConfigFileError(`Cannot read config file ${file}: ${why}.`, file, code === 'ENOENT' ? 'missing' : 'unreadable');
  }
  let data: unknown;
  try {
    data = parseJsonc(text);
  } catch (e) {
    if (e instanceof JsoncSyntaxError) throw new ConfigFileError(`Config file ${file} is not valid JSON: ${e.message}.`, file, 'syntax');
    throw e;
  }
  return hostsOf(data, file);
}

function hostsOf(data: unknown, file: string): unknown {
  if (Array.isArray(data)) return data;
  if (!isPlainObject(data)) {
    throw new ConfigFileError(`Config file ${file} must contain { "hosts": [ ... ] } or a list of hosts.`, file);
  }
  const keys = Object.keys(data);
  const unknown = keys.filter((k) => !(HOSTS_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    const guess = closestKey(unknown[0], HOSTS_KEYS);
    const hint = guess ? `; did you mean "${guess}"?` : '; the only top-level key is "hosts".';
    throw new ConfigFileError(`Config file ${file}: "${unknown[0]}" is not a known top-level key${hint}`, file);
  }
  const present = HOSTS_KEYS.filter((k) => k in data);
  if (present.length === 0) throw new ConfigFileError(`Config file ${file} has no "hosts" list.`, file);
  if (present.length > 1) throw new ConfigFileError(`Config file ${file} has both "hosts" and "kadiOps.hosts"; keep one.`, file);
  return data[present[0]];
}
