/** Starting the restore job from a confirmed plan. */
import { backupPlan } from '../backup/backupSets';
import { planJobInput } from '../core/plan';
import { dbJobSecrets, type Discovery } from '../kadi/discovery';
import { redisAuthJson } from '../kadi/outputParsers';
import { startJob } from '../remote/jobs';
import type { RemoteHost } from '../remote/remoteHost';
import { RestoreRefusedError, type RestorePlan } from './preflight';

export interface StartRestoreOptions {
  /** The operator confirmed replacing the live configuration files (separately from the restore). */
  overwriteConfig?: boolean;
  breakStaleLock?: boolean;
}

/** The restore verb's key=value arguments; the backup's options (for the safety backup) come from the plan on stdin. */
export function restoreArgs(host: RemoteHost, plan: RestorePlan, opts: StartRestoreOptions = {}): string[] {
  const p = host.profile;
  const kv: Record<string, string> = {
    set: plan.set.name,
    components: plan.components.join(','),
    safety: plan.safetyBackup ? 'yes' : 'no',
    jobs: plan.jobs ? String(plan.jobs) : '',
    listing: dbListing(plan) !== undefined ? 'yes' : 'no',
    clean: plan.db?.clean ? 'yes' : 'no',
    no_owner: plan.db?.noOwner ? 'yes' : 'no',
    compare_content: plan.compareContent ? 'yes' : 'no',
    services: plan.servicesToStop.join(' '),
    overwrite_config: opts.overwriteConfig ? 'yes' : 'no',
    db_upgrade: plan.kadi.upgrade && plan.components.includes('db') ? 'yes' : 'no',
    kadi_cli: p.kadi.cli,
    redis_service: p.redis.service,
  };
  return ['plan=yes', ...Object.entries(kv).map(([k, v]) => `${k}=${v}`)];
}

/** What pg_restore -L gets: the plan's listing with kept objects commented out (or the operator's, as validated). */
function dbListing(plan: RestorePlan): string | undefined {
  if (!plan.components.includes('db')) return undefined;
  return plan.db?.listing ?? plan.listing;
}

export async function startRestore(host: RemoteHost, d: Discovery, plan: RestorePlan, opts: StartRestoreOptions = {}): Promise<string> {
  if (plan.blockers.length > 0) throw new RestoreRefusedError(`Restore of ${plan.set.name} refused:\n${plan.blockers.map((b) => `  - ${b}`).join('\n')}`);
  if (plan.host !== host.profile.name) throw new RestoreRefusedError(`The plan is for ${plan.host}, not ${host.profile.name}.`);
  // The password, the plan (the safety backup's and the connection's) and the listing on stdin.
  const secret = planJobInput(backupPlan(host, d, {}), dbJobSecrets(d), dbListing(plan) ?? '', redisAuthJson(d.redisAuth));
  return startJob(host, { kind: 'restore', verb: 'restore', args: restoreArgs(host, plan, opts), secret, breakStaleLock: opts.breakStaleLock });
}
