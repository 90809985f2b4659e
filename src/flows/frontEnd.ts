/**
 * What every flow needs of a front end, and nothing more: start and follow a job, ask whether to
 * break a stale lock, and show how a job ended. The CLI (cli/frontEnd.ts) and VS Code
 * (ui/frontEnd.ts) implement it; each flow's own interface adds its few questions. Nothing in
 * src/flows imports vscode.
 */
import { LockBusyError, type JobOutcome } from '../remote/jobs';
import type { RemoteHost } from '../remote/remoteHost';
import type { JobReport } from '../restore/report';

/** A job followed to its end: how it ended and its stdout (for the report). */
export interface JobRun {
  outcome: JobOutcome;
  log: string;
}

export interface FrontEnd {
  /**
   * Starts the job `title` with `start` and follows it to its end, streaming its lines; undefined
   * when it could not start (the front end has said why). A front end may also let the error through.
   */
  runJob(title: string, start: (host: RemoteHost) => Promise<string>): Promise<JobRun | undefined>;
  /** The lock is held by a job whose process is gone: break it? */
  confirmBreakStaleLock(err: LockBusyError): Promise<boolean>;
  /**
   * How the job `title` ended. With a report (restore and maintenance jobs: parsed from the log)
   * its summary; without one (backup, verify, prune) the outcome and its warnings.
   */
  finished(title: string, outcome: JobOutcome, report?: JobReport): Promise<void>;
  /** Break a stale lock without asking, for every job this front end starts (the CLI's --break-stale-lock). */
  readonly breakStaleLock?: boolean;
}

/**
 * Runs a job whose start can break a stale lock: when the lock turns out to be held by a dead job
 * (and breaking it was not asked for up front) the front end is asked, and on "yes" the job is
 * started again, breaking it. Undefined when the job did not start.
 */
export async function runJobBreakingStaleLock(
  fe: FrontEnd,
  title: string,
  start: (host: RemoteHost, breakStaleLock: boolean) => Promise<string>,
  breakStaleLock = fe.breakStaleLock ?? false,
): Promise<JobRun | undefined> {
  for (;;) {
    const seen: { staleLock?: LockBusyError } = {};
    const breaking = breakStaleLock;
    const ran = await fe.runJob(title, async (host) => {
      try {
        return await start(host, breaking);
      } catch (e) {
        if (e instanceof LockBusyError && e.stale && !breaking) seen.staleLock = e;
        throw e;
      }
    });
    if (ran) return ran;
    if (seen.staleLock && (await fe.confirmBreakStaleLock(seen.staleLock))) {
      breakStaleLock = true;
      continue;
    }
    return undefined;
  }
}
