/** The verify flow, written once for both front ends: a quick or deep verify job of one set and how it ended. */
import { startVerify, type VerifyLevel } from '../backup/backupSets';
import { discover } from '../kadi/discovery';
import type { JobOutcome } from '../remote/jobs';
import { runJobBreakingStaleLock, type FrontEnd } from './frontEnd';

export interface VerifyRequest {
  setName: string;
  level: VerifyLevel;
  /** Break a stale lock without asking (the CLI's --break-stale-lock); otherwise asked. */
  breakStaleLock?: boolean;
}

export type VerifyFlowResult = { state: 'not-started' } | { state: 'ran'; outcome: JobOutcome };

export async function verifyFlow(fe: FrontEnd, req: VerifyRequest): Promise<VerifyFlowResult> {
  const title = `${req.level === 'deep' ? 'Deep verify' : 'Verify'} ${req.setName}`;
  const ran = await runJobBreakingStaleLock(fe, title, async (host, breakStaleLock) => startVerify(host, await discover(host), req.setName, req.level, { breakStaleLock }), req.breakStaleLock);
  if (!ran) return { state: 'not-started' };
  await fe.finished(title, ran.outcome);
  return { state: 'ran', outcome: ran.outcome };
}
