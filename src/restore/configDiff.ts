/**
 * The backed-up Kadi configuration against the live one: per file whether it differs and, for the
 * Python configuration, the NAMES of the keys that differ. No content ever leaves the host (the agent
 * compares the files there: components/config.py): the configuration holds SECRET_KEY, the database
 * password and private keys, and a multi-line value (AUTH_PROVIDERS) or a wrapped one cannot be
 * redacted reliably line by line.
 */
import { runAgent } from '../remote/agent';
import { RemoteCommandError, type RemoteHost } from '../remote/remoteHost';

export interface ConfigKeyChanges {
  /** False when one side is not Python that parses: which keys differ is unknown. */
  parsed: boolean;
  changed?: string[];
  added?: string[];
  removed?: string[];
  /** Only comments, imports or other statements differ. */
  otherLines?: boolean;
}

export interface ConfigFileDiff {
  path: string;
  state: 'same' | 'differs' | 'missing-live';
  /** Python configuration files that differ: which keys. */
  keys?: ConfigKeyChanges;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function names(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.filter((n): n is string => typeof n === 'string' && NAME.test(n)) : undefined;
}

export function parseConfigDiff(text: string): ConfigFileDiff[] {
  const files: ConfigFileDiff[] = [];
  for (const line of text.split('\n')) {
    const m = /^config_file=(.+) (same|differs|missing-live)$/.exec(line);
    if (m) {
      files.push({ path: m[1], state: m[2] as ConfigFileDiff['state'] });
      continue;
    }
    if (!line.startsWith('config_keys=')) continue;
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(line.slice('config_keys='.length)) as Record<string, unknown>;
    } catch {
      continue;
    }
    const entry = files.find((f) => f.path === raw.path);
    if (!entry) continue;
    entry.keys = { parsed: raw.parsed === true, changed: names(raw.changed), added: names(raw.added), removed: names(raw.removed), otherLines: raw.otherLines === true };
  }
  return files;
}

/** "keys changed: SECRET_KEY, AUTH_PROVIDERS; added: X" — names only. */
export function describeKeyChanges(k: ConfigKeyChanges): string {
  if (!k.parsed) return 'not Python that parses on one side: which keys differ is unknown';
  const parts = [
    k.changed?.length ? `keys changed: ${k.changed.join(', ')}` : '',
    k.added?.length ? `added live: ${k.added.join(', ')}` : '',
    k.removed?.length ? `only in the set: ${k.removed.join(', ')}` : '',
    k.otherLines ? 'only comments or other statements differ' : '',
  ].filter(Boolean);
  return parts.join('; ');
}

export async function configDiff(host: RemoteHost, set: string): Promise<ConfigFileDiff[]> {
  const r = await runAgent(host, 'config-diff', [host.profile.backupDir, set]);
  if (r.code !== 0) throw new RemoteCommandError(`Comparing the configuration of ${set} with the live one`, { ...r, stdout: '' });
  return parseConfigDiff(r.stdout);
}
