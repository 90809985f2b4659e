/**
 * The backed-up Kadi configuration against the live one. The diff passes through memory only and
 * is redacted before anyone sees it: the config holds SECRET_KEY and the database password, key
 * files (OIDC signing keys) are reported as differing without content.
 */
import { redactUriPasswords } from '../kadi/outputParsers';
import { runAgent } from '../remote/agent';
import { RemoteCommandError, type RemoteHost } from '../remote/remoteHost';

export interface ConfigFileDiff {
  path: string;
  state: 'same' | 'differs' | 'missing-live';
  /** Redacted unified diff (Python config files only). */
  diff?: string;
}

const SENSITIVE = /SECRET|PASSWORD|PASSWD|KEY|TOKEN|CREDENTIAL/;
const ASSIGN = /^([-+ ]?\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)(.*)$/;

/** Masks values of sensitive assignments and passwords inside URIs, line by line. */
export function redactConfigDiff(text: string): string {
  return text
    .split('\n')
    .map((line) => {
      if (/^(---|\+\+\+|@@)/.test(line)) return line;
      const m = ASSIGN.exec(line);
      if (m && SENSITIVE.test(m[2].toUpperCase())) return `${m[1]}${m[2]}${m[3]}<redacted>`;
      return redactUriPasswords(line);
    })
    .join('\n');
}

export function parseConfigDiff(text: string): ConfigFileDiff[] {
  const files: ConfigFileDiff[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^config_file=(.+) (same|differs|missing-live)$/.exec(lines[i]);
    if (!m) continue;
    const entry: ConfigFileDiff = { path: m[1], state: m[2] as ConfigFileDiff['state'] };
    if (lines[i + 1] === `--- begin diff ${m[1]}`) {
      const body: string[] = [];
      for (i += 2; i < lines.length && lines[i] !== `--- end diff ${m[1]}`; i++) body.push(lines[i]);
      if (m[1].endsWith('.py')) entry.diff = redactConfigDiff(body.join('\n'));
    }
    files.push(entry);
  }
  return files;
}

export async function configDiff(host: RemoteHost, set: string): Promise<ConfigFileDiff[]> {
  const r = await runAgent(host, 'config-diff', [host.profile.backupDir, set]);
  if (r.code !== 0) throw new RemoteCommandError(`Comparing the configuration of ${set} with the live one`, { ...r, stdout: '' });
  return parseConfigDiff(r.stdout);
}
