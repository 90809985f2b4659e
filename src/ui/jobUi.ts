/**
 * Runs a host job with the VS Code furniture: a header, every remote line and a footer in the
 * host's output channel, a cancellable progress notification whose Cancel really stops the remote
 * job, a status bar item while anything runs, and an error notification with "Show output".
 */
import * as os from 'node:os';
import * as vscode from 'vscode';
import type { HostProfile } from '../config/types';
import { JobProgress } from '../core/jobProgress';
import type { ConnectionPool } from '../remote/connectionPool';
import { describeOutcome, followJob, warningLines, type JobOutcome } from '../remote/jobs';
import type { RemoteHost } from '../remote/remoteHost';
import type { HostOutputs } from './outputChannels';

export interface JobUiDeps {
  pool: ConnectionPool;
  outputs: HostOutputs;
  onFinished(profile: HostProfile): void;
}

export class JobStatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('kadiOps.jobs', vscode.StatusBarAlignment.Left, 10);
  private readonly running = new Map<string, string>();

  constructor() {
    this.item.name = 'Kadi Ops jobs';
    this.item.command = 'kadiOps.showOutput';
  }

  add(key: string, text: string): void {
    this.running.set(key, text);
    this.update();
  }

  remove(key: string): void {
    this.running.delete(key);
    this.update();
  }

  private update(): void {
    if (this.running.size === 0) return this.item.hide();
    const texts = [...this.running.values()];
    this.item.text = `$(sync~spin) Kadi Ops: ${texts.length === 1 ? texts[0] : `${texts.length} jobs`}`;
    this.item.tooltip = texts.join('\n') + '\nClick to show the output.';
    this.item.show();
  }

  dispose(): void {
    this.item.dispose();
  }
}

export interface RunJobRequest {
  profile: HostProfile;
  /** e.g. "Backup", "Verify 2026-11-26T06-37-07Z" */
  title: string;
  /** Starts the job and returns its id; or an existing id to attach to. */
  start: (host: RemoteHost) => Promise<string>;
  retry?: () => void;
  /** Every stdout line of the job (e.g. to parse a restore's report afterwards). */
  onLine?: (line: string) => void;
}

export async function runJobWithProgress(deps: JobUiDeps, bar: JobStatusBar, req: RunJobRequest): Promise<JobOutcome | undefined> {
  const { profile, title } = req;
  const channel = deps.outputs.channel(profile.name);
  const sink = deps.outputs.sink(profile.name);
  const started = Date.now();
  const key = `${profile.name}:${title}:${started}`;
  let user = 'unknown';
  try {
    user = os.userInfo().username;
  } catch {
    /* keep unknown */
  }
  channel.info(`▶ ${title} on ${profile.name} — by ${user}@${os.hostname()} at ${new Date().toISOString()}`);
  bar.add(key, `${title} on ${profile.name}`);
  try {
    const outcome = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `${title} on ${profile.name}`, cancellable: true },
      async (progress, token) => {
        const abort = new AbortController();
        // Step names and, where the job can tell, percentages (bytes, files, TOC entries).
        const steps = new JobProgress();
        token.onCancellationRequested(() => abort.abort());
        const host = await deps.pool.get(profile);
        const id = await req.start(host);
        channel.info(`Job ${id} on ${profile.name}`);
        progress.report({ message: 'started' });
        return followJob(host, id, {
          sink,
          signal: abort.signal,
          reconnect: () => deps.pool.get(profile),
          onLine: (line) => {
            req.onLine?.(line);
            const message = steps.feed(line);
            if (message === undefined) return;
            progress.report({ message });
            const pct = steps.percent();
            bar.add(key, `${title} on ${profile.name}${pct === undefined ? '' : ` ${pct}%`}`);
          },
        });
      },
    );
    sink.flush();
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    const text = `${title} on ${profile.name}: ${describeOutcome(outcome)} after ${secs} s`;
    if (outcome.result === 'succeeded' && outcome.warnings) {
      // Succeeded, but with something the operator must know: said where it cannot be missed.
      channel.warn(`■ ${text}`);
      for (const l of warningLines(outcome)) channel.warn(l);
      void showWarnings(text, outcome.warnings, outcome.moreWarnings ?? 0, channel);
    } else if (outcome.result === 'succeeded') {
      channel.info(`■ ${text}`);
      void vscode.window.showInformationMessage(text);
    } else if (outcome.result === 'cancelled') {
      channel.warn(`■ ${text}`);
      void vscode.window.showWarningMessage(text);
    } else if (outcome.result === 'could-not-run') {
      // Not a finding about anything, and not a success: a warning that says why and what to do.
      channel.warn(`■ ${text}`);
      void showWarnings(text, [], 0, channel);
    } else {
      channel.error(`■ ${text}`);
      void showFailure(text, channel, req.retry);
    }
    return outcome;
  } catch (e) {
    sink.flush();
    const text = `${title} on ${profile.name} failed: ${(e as Error).message}`;
    channel.error(text);
    void showFailure(text, channel, req.retry);
    return undefined;
  } finally {
    bar.remove(key);
    deps.onFinished(profile);
  }
}

async function showWarnings(text: string, warnings: string[], beyond: number, channel: vscode.LogOutputChannel): Promise<void> {
  const others = warnings.length - 1 + beyond;
  const more = others > 0 ? ` (and ${others} more in the output)` : '';
  const choice = await vscode.window.showWarningMessage(warnings.length ? `${text}: ${warnings[0]}${more}` : text, 'Show output');
  if (choice === 'Show output') channel.show(true);
}

async function showFailure(text: string, channel: vscode.LogOutputChannel, retry?: () => void): Promise<void> {
  const actions = retry ? ['Show output', 'Retry'] : ['Show output'];
  const choice = await vscode.window.showErrorMessage(text, ...actions);
  if (choice === 'Show output') channel.show(true);
  if (choice === 'Retry') retry?.();
}
