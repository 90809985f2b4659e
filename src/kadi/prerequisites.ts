/**
 * What each feature (backup, quick and deep verify, restore, services, Redis, schedules) needs on a
 * host, as the agent checks it there (`prerequisites`), with the exact fix for what is missing; for
 * `kadi-ops check` and *Check Host*.
 */
import { runAgent } from '../remote/agent';
import { RemoteCommandError, type RemoteHost } from '../remote/remoteHost';
import { liveProbeOptions } from '../restore/probe';
import { verbSecrets, type Discovery } from './discovery';

export interface PrerequisiteCheck {
  name: string;
  ok: boolean;
  detail?: string;
  fix?: string;
}

export interface FeaturePrerequisites {
  feature: string;
  /** Deep verification and schedules: a host can do without them. */
  optional: boolean;
  /** Usable when any check passes (deep verification: a throwaway cluster, or CREATEDB). */
  anyOf?: boolean;
  checks: PrerequisiteCheck[];
}

export interface Prerequisites {
  /** The user the agent ran as (the Kadi user). */
  user: string;
  features: FeaturePrerequisites[];
}

export async function checkPrerequisites(host: RemoteHost, d: Discovery): Promise<Prerequisites> {
  const p = host.profile;
  const f = d.facts;
  const kv: Record<string, string> = {
    ...liveProbeOptions(p, f),
    profile: p.name,
    kadi_cli: p.kadi.cli,
    kadi_config: p.kadi.configFile,
    redis_cli: p.redis.enabled ? p.redis.cli : '',
    redis_port: String(p.redis.port),
    schedule: p.schedule ? (p.schedule.unit ?? 'system') : '',
  };

  const r = await runAgent(host, 'prerequisites', Object.entries(kv).map(([k, v]) => `${k}=${v}`), { stdin: verbSecrets(d) });
  if (r.code !== 0) throw new RemoteCommandError(`Checking the prerequisites on ${p.name}`, r);
  return parsePrerequisites(r.stdout);
}

export function parsePrerequisites(text: string): Prerequisites {
  const doc = JSON.parse(text) as Prerequisites;
  if (!doc || !Array.isArray(doc.features) || !doc.features.every((f) => typeof f.feature === 'string' && Array.isArray(f.checks))) {
    throw new Error('the agent answered the prerequisites check with something else than its JSON document');
  }
  return doc;
}

export function featureUsable(f: FeaturePrerequisites): boolean {
  return f.anyOf ? f.checks.some((c) => c.ok) : f.checks.every((c) => c.ok);
}

/** Features the host needs and cannot do: what makes `check` fail. */
export function missingFeatures(p: Prerequisites): FeaturePrerequisites[] {
  return p.features.filter((f) => !f.optional && !featureUsable(f));
}

/** ✓/✗ per feature and per check, each missing one with its fix. */
export function formatPrerequisites(p: Prerequisites): string[] {
  const lines: string[] = [`Prerequisites (checked on the host as ${p.user}):`];
  for (const f of p.features) {
    const usable = featureUsable(f);
    lines.push(`${usable ? '✓' : '✗'} ${f.feature}${f.optional ? ' (optional)' : ''}${f.anyOf ? ': one of' : ''}`);
    for (const c of f.checks) {
      lines.push(`    ${c.ok ? '✓' : '✗'} ${c.name}${c.detail ? ` — ${c.detail}` : ''}`);
      if (!c.ok && c.fix) lines.push(`        fix: ${c.fix}`);
    }
  }
  return lines;
}
