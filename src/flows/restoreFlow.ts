/**
 * The restore flow, written once for both front ends: preflight (verify and plan), show the plan,
 * refuse on blockers, confirm by naming the host, the configuration's separate confirmation, the
 * job (with the stale-lock question), and the summary. The CLI (cli/restoreCommands.ts) and VS Code
 * (ui/restoreCommands.ts) only implement RestoreFrontEnd: the shared FrontEnd (frontEnd.ts: run a
 * job, the stale-lock question, the summary) and how to ask and show the restore's own questions.
 * Nothing here imports vscode.
 */
import type { HostProfile } from '../config/types';
import type { OutputSink } from '../core/sink';
import { discover } from '../kadi/discovery';
import type { ConnectionPool } from '../remote/connectionPool';
import type { JobOutcome } from '../remote/jobs';
import type { RestoreComponent } from '../components';
import { preflight, type RestorePlan } from '../restore/preflight';
import { parseJobReport, type JobReport } from '../restore/report';
import { startRestore } from '../restore/restoreJob';
import { runJobBreakingStaleLock, type FrontEnd } from './frontEnd';

export interface RestoreRequest {
  setName: string;
  components: RestoreComponent[];
  safetyBackup: boolean;
  /** Compare the trees' files by content too (a restore that also repairs files whose bytes changed under the same size and time). */
  compareContent?: boolean;
  /** An edited `pg_restore -l` listing: a selective database restore. */
  listing?: string;
  jobs?: number;
  /** Rely on a passing verification younger than this (hours); 0 verifies again. */
  reuseVerificationHours?: number;
  /** Overwrite the live configuration without asking (the CLI's --overwrite-config); otherwise asked. */
  overwriteConfig?: boolean;
  /** Break a stale lock without asking (the CLI's --break-stale-lock); otherwise asked. */
  breakStaleLock?: boolean;
}

export interface RestoreFrontEnd extends FrontEnd {
  /** Runs the preflight with a sink for the verify job's lines and a way to cancel it. */
  preflight(title: string, work: (sink: OutputSink, signal?: AbortSignal) => Promise<RestorePlan>): Promise<RestorePlan>;
  showPlan(plan: RestorePlan): Promise<void>;
  /** The plan has blockers: say so; nothing is started. */
  refused(plan: RestorePlan): Promise<void>;
  /** The operator names the host to confirm (typed, or --yes <host>). */
  confirm(plan: RestorePlan, summary: string): Promise<boolean>;
  /** The configuration differs and overwriting it was not asked for up front. */
  confirmOverwriteConfig(plan: RestorePlan): Promise<boolean>;
}

export type RestoreFlowResult =
  | { state: 'refused'; plan: RestorePlan }
  | { state: 'declined'; plan: RestorePlan }
  | { state: 'not-started'; plan: RestorePlan }
  | { state: 'ran'; plan: RestorePlan; outcome: JobOutcome; report: JobReport };

export async function restoreFlow(fe: RestoreFrontEnd, pool: ConnectionPool, profile: HostProfile, req: RestoreRequest): Promise<RestoreFlowResult> {
  const plan = await fe.preflight(`Checking ${req.setName} and ${profile.name} before anything is changed`, async (sink, signal) => {
    const host = await pool.get(profile);
    return preflight(host, await discover(host), req.setName, {
      components: req.components,
      safetyBackup: req.safetyBackup,
      compareContent: req.compareContent,
      listing: req.listing,
      jobs: req.jobs,
      reuseVerificationHours: req.reuseVerificationHours,
      sink,
      signal,
      reconnect: () => pool.get(profile),
    });
  });
  await fe.showPlan(plan);
  if (plan.blockers.length > 0) {
    await fe.refused(plan);
    return { state: 'refused', plan };
  }
  const summary = `Replace ${plan.components.join(', ')} of ${profile.name} with backup ${plan.set.name}${plan.safetyBackup ? ' (a safety backup is made first)' : ' WITHOUT a safety backup'}; services stopped: ${plan.servicesToStop.join(', ') || 'none'}.`;
  if (!(await fe.confirm(plan, summary))) return { state: 'declined', plan };
  const configDiffers = plan.components.includes('config') && (plan.config ?? []).some((c) => c.state !== 'same');
  const overwriteConfig = req.overwriteConfig ?? (configDiffers ? await fe.confirmOverwriteConfig(plan) : false);

  // The job's title ("… on <host>" is added by the front ends that show it) and the summary's.
  const jobTitle = `Restore ${plan.set.name}`;
  const title = `Restore of ${plan.set.name} onto ${profile.name}`;
  const ran = await runJobBreakingStaleLock(
    fe,
    jobTitle,
    async (host, breakStaleLock) => startRestore(host, await discover(host), plan, { overwriteConfig, breakStaleLock }),
    req.breakStaleLock,
  );
  if (!ran) return { state: 'not-started', plan };
  const report = parseJobReport(ran.log);
  await fe.finished(title, ran.outcome, report);
  return { state: 'ran', plan, outcome: ran.outcome, report };
}
