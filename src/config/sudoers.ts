/**
 * The exact, minimal sudoers rules a host profile needs: the commands the agent runs with more
 * privilege than the Kadi user's (agent/kadi_ops_agent/privileges.py builds the same argv), each
 * pinned with all its arguments. No wildcard: in sudoers a `*` also matches extra arguments.
 */
import { createHash } from 'node:crypto';
import type { HostProfile } from './types';

export const SYSTEMCTL = '/usr/bin/systemctl';
export const TEE = '/usr/bin/tee';
export const CHMOD = '/usr/bin/chmod';
export const CAT = '/usr/bin/cat';

/**
 * The units of a host's schedule: kadi-ops-<name>-<6 hex of the backup directory>-{backup,verify}.{service,timer},
 * as the agent names them (schedule.py base_name).
 */
export function scheduleUnitBase(p: HostProfile): string {
  const slug = p.name.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'host';
  return `kadi-ops-${slug}-${createHash('sha256').update(p.backupDir, 'utf8').digest('hex').slice(0, 6)}`;
}

export class SudoersError extends Error {}

/** An argument as sudoers reads it: `,` `:` `=` `\` escaped; whitespace cannot be matched, so refused. */
function arg(value: string, what: string): string {
  if (value === '' || /[\s\0]/.test(value)) throw new SudoersError(`${what} "${value}" cannot be pinned in a sudoers rule (empty, or with whitespace).`);
  return value.replace(/[\\,:=]/g, (c) => `\\${c}`);
}

export interface SudoRule {
  /** The user the command runs as. */
  runAs: string;
  argv: string[];
}

/**
 * Every privileged command of the profile's jobs: its services' stop and start, reading the Redis
 * dump for a backup, replacing it in a restore. (A schedule's system units are root's to install,
 * never through a rule: a unit file the Kadi user could write would run anything as root.)
 */
export function privilegedCommands(p: HostProfile): SudoRule[] {
  const services = [...p.services, ...(p.redis.enabled ? [p.redis.service] : [])];
  const rules: SudoRule[] = services.flatMap((s) => ['stop', 'start'].map((a) => ({ runAs: 'root', argv: [SYSTEMCTL, a, s] })));
  if (p.redis.enabled) rules.push({ runAs: 'redis', argv: [CAT, p.redis.dumpPath] }, { runAs: 'redis', argv: [TEE, p.redis.dumpPath] }, { runAs: 'redis', argv: [CHMOD, '660', p.redis.dumpPath] });
  return rules;
}

/** The snippet for /etc/sudoers.d/kadi-ops (check it with `visudo -cf FILE` before installing). */
export function sudoersSnippet(p: HostProfile): string {
  const user = arg(p.kadi.user, 'The Kadi user');
  const byRunAs = new Map<string, string[]>();
  for (const r of privilegedCommands(p)) byRunAs.set(r.runAs, [...(byRunAs.get(r.runAs) ?? []), r.argv.map((a, i) => arg(a, i === 0 ? 'The command' : 'The argument')).join(' ')]);
  const lines = [
    `# Kadi Ops on ${p.name}: what ${p.kadi.user} may run with more privilege, and nothing else.`,
    '# Install: visudo -f /etc/sudoers.d/kadi-ops   (or check a file with: visudo -cf FILE)',
  ];
  if (byRunAs.size === 0) lines.push(`# Nothing: ${p.name} lists no services and has Redis disabled.`);
  for (const [runAs, cmds] of byRunAs) lines.push(`${user} ALL=(${arg(runAs, 'The user')}) NOPASSWD: ${cmds.join(', ')}`);
  return `${lines.join('\n')}\n`;
}
