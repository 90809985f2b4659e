/**
 * What belongs to one component of a Kadi instance on the client (the agent's counterpart is
 * agent/kadi_ops_agent/components/): its part of the plan a host runs, its restore preflight checks,
 * and its lines in the restore plan. The preflight, the plan builder, the CLI and VS Code ask the
 * components (components/index.ts) instead of spelling each one out.
 */
import type { BackupSet } from '../backup/manifest';
import type { HostProfile } from '../config/types';
import type { HostPlan } from '../core/plan';
import type { Discovery } from '../kadi/discovery';
import type { RemoteHost } from '../remote/remoteHost';
import type { ConfigFileDiff } from '../restore/configDiff';
import type { DbRestorePlan } from '../restore/dbPlan';
import type { PreflightOptions, RestorePlan } from '../restore/preflight';
import type { LiveProbe } from '../restore/probe';

/** The names the CLI and VS Code use (`--components db,storage`). */
export type ComponentName = 'db' | 'storage' | 'uploads' | 'redis' | 'config';

/** Everything a component's preflight reads and adds to. */
export interface PreflightContext {
  host: RemoteHost;
  d: Discovery;
  set: BackupSet;
  probe: LiveProbe;
  opts: PreflightOptions;
  /** The live database has no relations. */
  empty: boolean;
  blockers: string[];
  warnings: string[];
  disk: RestorePlan['disk'];
  /** What components decide for the plan. */
  decided: { config?: ConfigFileDiff[]; listing?: string; db?: DbRestorePlan };
}

export interface PlanPartOptions {
  redis?: boolean;
}

export interface ClientComponent {
  name: ComponentName;
  /** Its key in the host plan's components (core/plan.ts). */
  planKey: keyof HostPlan['components'];
  /** Replaced by a restore unless the operator names components (Redis and config are opt-in). */
  restoredByDefault: boolean;
  /** Its part of the plan a host runs. */
  planPart(p: HostProfile, opts: PlanPartOptions): HostPlan['components'][keyof HostPlan['components']];
  /** Restore preflight, first: what the set and the host's tools allow (no live state yet). */
  checkSet?(ctx: PreflightContext): void;
  /** Restore preflight: the live side (trees, free space, services). */
  checkLive?(ctx: PreflightContext): void;
  /** Restore preflight, last: what exactly it will do (listing, per-object plan, config diff). */
  decide?(ctx: PreflightContext): Promise<void>;
  /** Its lines in the restore plan the operator confirms. */
  planLines?(p: RestorePlan): string[];
}
