/**
 * A host profile as the plan its host can run without a client (core/plan.ts): components and their
 * options, files mode, services, retention. Nothing secret and no connection detail goes in: the
 * agent reads those from Kadi's configuration when the plan runs.
 */
import { COMPONENTS } from '../components';
import type { HostProfile } from '../config/types';
import { checkPlan, type HostPlan, type PlanFacts, type PlanOffsite } from '../core/plan';
import type { RetentionPolicy } from './retention';

export interface PlanOptions {
  filesMode?: 'tree' | 'archive';
  stopServices?: boolean;
  /** Include a Redis snapshot (defaults to the profile's redis.enabled). */
  redis?: boolean;
  retention?: RetentionPolicy;
  /** What the client found on the host; left out of a plan stored there. */
  facts?: PlanFacts;
}

export function planFromProfile(p: HostProfile, opts: PlanOptions = {}): HostPlan {
  return checkPlan({
    version: 1,
    host: { name: p.name, backupDir: p.backupDir },
    kadi: { cli: p.kadi.cli, configFile: p.kadi.configFile },
    components: Object.fromEntries(COMPONENTS.map((c) => [c.planKey, c.planPart(p, opts)])) as HostPlan['components'],
    backup: { filesMode: opts.filesMode ?? 'tree', stopServices: opts.stopServices ?? false, services: p.services },
    ...(opts.retention ? { retention: { ...opts.retention } } : {}),
    ...(p.offsite ? { offsite: JSON.parse(JSON.stringify(p.offsite)) as PlanOffsite } : {}),
    ...(opts.facts ? { facts: opts.facts } : {}),
  });
}
