/**
 * A host profile as the plan its host can run without a client (core/plan.ts): components and their
 * options, files mode, services, retention. Nothing secret and no connection detail goes in: the
 * agent reads those from Kadi's configuration when the plan runs.
 */
import type { HostProfile } from '../config/types';
import { checkPlan, type HostPlan, type PlanFacts } from '../core/plan';
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
  const storage = p.overrides.storagePath;
  const uploads = p.overrides.uploadsPath;
  return checkPlan({
    version: 1,
    host: { name: p.name, backupDir: p.backupDir },
    kadi: { cli: p.kadi.cli, configFile: p.kadi.configFile },
    components: {
      database: { dumpCompression: p.dumpCompression },
      storage: storage ? { path: storage } : {},
      uploads: uploads ? { path: uploads } : {},
      redis: { enabled: opts.redis ?? p.redis.enabled, cli: p.redis.cli, port: p.redis.port, dumpPath: p.redis.dumpPath },
      config: {},
    },
    backup: { filesMode: opts.filesMode ?? 'tree', stopServices: opts.stopServices ?? false, services: p.services },
    ...(opts.retention ? { retention: { ...opts.retention } } : {}),
    ...(opts.facts ? { facts: opts.facts } : {}),
  });
}
