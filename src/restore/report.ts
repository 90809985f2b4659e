/**
 * Reads a restore or maintenance job's log into a structured report: step durations, the kadi
 * commands' parsed results (the agent brackets each one with begin/end markers), failing TOC
 * entries and what needs the operator's attention. Works on a log read after a re-attach too.
 */
import {
  fatalReason,
  orphanedIndices,
  parseDbUpgradeOutput,
  parseFilesCheck,
  parseReindexOutput,
  parseSearchLsOutput,
  type DbUpgradeResult,
  type FilesCheckResult,
  type OrphanedIndex,
  type ReindexResult,
} from '../kadi/outputParsers';

export interface StepTiming {
  name: string;
  seconds: number;
  /** 'failed': the step ran to its end but its kadi command failed (the job fails after its other checks). */
  result: 'ok' | 'skipped' | 'failed';
  note?: string;
}

export interface Section {
  text: string;
  exitCode?: number;
}

export interface JobReport {
  steps: StepTiming[];
  sections: Map<string, Section>;
  dbUpgrade?: DbUpgradeResult;
  reindex?: ReindexResult;
  /** From the `kadi search ls` run after the reindex; absent when that listing failed. */
  orphans?: OrphanedIndex[];
  /** Why the `kadi search ls` listing cannot be trusted (then orphans are unknown, not none). */
  searchLsFailure?: string;
  filesCheck?: FilesCheckResult;
  failedTocEntries: string[];
  attention: string[];
  safetySet?: string;
  failedStep?: string;
  /** The agent's verdict line (restore only). */
  result?: 'ok' | 'attention' | 'failed';
}

export function parseJobReport(log: string): JobReport {
  const report: JobReport = { steps: [], sections: new Map(), failedTocEntries: [], attention: [] };
  const failedSteps = new Set<string>();
  let open: { name: string; lines: string[] } | undefined;
  for (const line of log.split('\n')) {
    const end = /^\[kadi-ops\] end (\S+) rc=(\d+)$/.exec(line);
    if (open && end && end[1] === open.name) {
      report.sections.set(open.name, { text: open.lines.join('\n'), exitCode: Number(end[2]) });
      open = undefined;
      continue;
    }
    if (open) {
      open.lines.push(line);
      continue;
    }
    let m: RegExpExecArray | null;
    if ((m = /^\[kadi-ops\] begin (\S+)$/.exec(line))) open = { name: m[1], lines: [] };
    else if ((m = /^timing=(\S+) (\d+)$/.exec(line))) report.steps.push({ name: m[1], seconds: Number(m[2]), result: 'ok' });
    else if ((m = /^skipped=(\S+)(?: \((.*)\))?$/.exec(line))) report.steps.push(m[2] ? { name: m[1], seconds: 0, result: 'skipped', note: m[2] } : { name: m[1], seconds: 0, result: 'skipped' });
    else if ((m = /^step_failed=(\S+)$/.exec(line))) failedSteps.add(m[1]);
    else if ((m = /^ATTENTION: (.*)$/.exec(line))) report.attention.push(m[1]);
    else if ((m = /^FAILED TOC ENTRY: (.*)$/.exec(line))) report.failedTocEntries.push(m[1]);
    else if ((m = /^safety_set=(\S+)$/.exec(line))) report.safetySet = m[1];
    else if ((m = /^ {2}FAILED in step: (\S+)$/.exec(line))) report.failedStep = m[1];
    else if ((m = /^restore_result=(ok|attention|failed)$/.exec(line))) report.result = m[1] as JobReport['result'];
  }
  // An unterminated section (job cut off or cancelled) still holds what it printed.
  if (open) report.sections.set(open.name, { text: open.lines.join('\n') });
  for (const st of report.steps) if (st.result === 'ok' && failedSteps.has(st.name)) st.result = 'failed';
  // A kadi command's verdict needs its text AND its exit status: a non-zero status is a failure
  // whatever it printed before it failed.
  const s = (n: string): string | undefined => report.sections.get(n)?.text;
  const failedExit = (n: string): boolean => {
    const code = report.sections.get(n)?.exitCode;
    return code !== undefined && code !== 0;
  };
  const up = s('db-upgrade');
  if (up !== undefined) {
    report.dbUpgrade = parseDbUpgradeOutput(up);
    if (failedExit('db-upgrade')) report.dbUpgrade.success = false;
  }
  const re = s('reindex');
  if (re !== undefined) {
    report.reindex = parseReindexOutput(re);
    if (failedExit('reindex')) report.reindex.success = false;
  }
  const ls = s('search-ls');
  if (ls !== undefined) {
    const listing = parseSearchLsOutput(ls);
    if (listing.success && !failedExit('search-ls')) report.orphans = orphanedIndices(listing.models);
    else report.searchLsFailure = fatalReason(listing.fatal) ?? (failedExit('search-ls') ? `exit status ${report.sections.get('search-ls')?.exitCode}` : 'it listed no indices');
  }
  const fc = s('files-check');
  if (fc !== undefined) {
    report.filesCheck = parseFilesCheck(fc);
    if (failedExit('files-check')) {
      // A count that was printed was measured (e.g. --resolve answered "n" to a different count).
      report.filesCheck.clean = false;
      if (report.filesCheck.reportedCount === undefined) report.filesCheck.completed = false;
    }
  }
  return report;
}

/** "clean", "N inconsistenc(ies)", or FAILED with the reason: never a count the check did not measure. */
export function filesCheckSummary(f: FilesCheckResult): string {
  if (f.clean) return 'clean';
  if (f.completed) return `${f.reportedCount ?? f.findings.length} inconsistenc(ies)`;
  const why = fatalReason(f.fatal);
  return `FAILED: it did not run to its end${why ? ` (${why})` : ''}`;
}

/**
 * The one summary the CLI prints at the end (the UI shows the same facts). WARNINGS: the job's
 * `WARNING:` lines as following it counted them (JobOutcome.warnings, moreWarnings), said too: a
 * restore that left out a special file of the set did not simply succeed.
 */
export function formatReport(title: string, r: JobReport, outcome: string, warned: { warnings?: readonly string[]; moreWarnings?: number } = {}): string[] {
  // A job that ended 0 with items for the operator did not simply succeed: the headline says so (as "succeeded with N warnings").
  const open = r.attention.length || (r.result === 'attention' ? 1 : 0);
  const w = (warned.warnings?.length ?? 0) + (warned.moreWarnings ?? 0);
  const headline = outcome === 'succeeded' && open ? `succeeded, ${open} item(s) need attention` : outcome === 'succeeded' && w ? `succeeded with ${w} warning${w === 1 ? '' : 's'}` : outcome;
  const out = [`${title}: ${headline}`];
  for (const st of r.steps) out.push(`  ${st.name.padEnd(18)} ${st.result === 'skipped' ? `skipped${st.note ? ` (${st.note})` : ''}` : `${st.seconds}s${st.result === 'failed' ? '  FAILED' : ''}`}`);
  if (r.failedStep) out.push(`  failed in step: ${r.failedStep}`);
  if (r.safetySet) out.push(`  pre-restore safety set: ${r.safetySet}`);
  if (r.dbUpgrade) out.push(`  kadi db upgrade: ${r.dbUpgrade.success ? `ok (${r.dbUpgrade.migrations.length} migration(s))` : `FAILED${withReason(r.dbUpgrade.fatal)}`}`);
  if (r.reindex) out.push(`  search reindex: ${r.reindex.success ? `ok (${r.reindex.rebuilt.length} index(es))` : `FAILED${r.reindex.errors.length ? `: ${r.reindex.errors.length} object(s) not indexed (${r.reindex.errors.slice(0, 10).map((e) => `${e.model} ${e.id}`).join(', ')})` : withReason(r.reindex.fatal)}`}`);
  if (r.orphans) out.push(`  orphaned indices: ${r.orphans.length ? r.orphans.map((o) => o.name).join(', ') : 'none'}`);
  else if (r.searchLsFailure) out.push(`  orphaned indices: unknown (kadi search ls failed: ${r.searchLsFailure})`);
  if (r.filesCheck) out.push(`  files check: ${filesCheckSummary(r.filesCheck)}`);
  for (const f of r.filesCheck?.findings.slice(0, 20) ?? []) out.push(`    [${f.n}] ${f.text}`);
  for (const t of r.failedTocEntries) out.push(`  failed TOC entry: ${t}`);
  if (r.attention.length) {
    out.push('  needs attention:');
    for (const a of r.attention) out.push(`    - ${a}`);
  }
  for (const x of warned.warnings ?? []) out.push(`  warning: ${x}`);
  if (warned.moreWarnings) out.push(`  … and ${warned.moreWarnings} more warnings in the output above`);
  return out;
}

function withReason(fatal: readonly string[]): string {
  const why = fatalReason(fatal);
  return why ? `: ${why}` : '';
}
