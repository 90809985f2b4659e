/** "Download Set…" and "Upload Set…": transfers with cancellable progress and a result in the output. */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { setTime } from '../backup/manifest';
import { CancelledError } from '../ssh/errors';
import { downloadSet, uploadSet, type TransferProgress, type TransferResult } from '../transfer/transfer';
import { pickHost, pickSet, type CommandDeps } from './backupCommands';
import { nodeArg, uriArg } from './commandArgs';
import { formatBytes } from '../core/format';

const PHASE: Record<TransferProgress['phase'], string> = {
  listing: 'reading the manifest',
  checking: 'checking files already there',
  transferring: 'transferring',
  verifying: 'checking every file against the manifest',
  sealing: 'host checks every file and seals the set',
};

/** Runs a transfer under a cancellable notification whose increments follow the bytes moved. */
async function withTransferProgress(title: string, run: (onProgress: (p: TransferProgress) => void, signal: AbortSignal) => Promise<TransferResult>): Promise<TransferResult> {
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, token) => {
    const abort = new AbortController();
    token.onCancellationRequested(() => abort.abort());
    // Increments are cumulative in VS Code, so the bar follows the bytes of the transfer phases only.
    let shown = 0;
    let phaseBase = 0;
    let lastTotal = -1;
    return run((p) => {
      const detail = p.totalBytes > 0 ? ` ${formatBytes(p.bytes)} of ${formatBytes(p.totalBytes)} (${p.files}/${p.totalFiles} files)` : '';
      let increment: number | undefined;
      if (p.phase === 'transferring') {
        if (p.totalBytes !== lastTotal) {
          lastTotal = p.totalBytes;
          phaseBase = shown;
        }
        const pct = phaseBase + (p.totalBytes > 0 ? ((100 - phaseBase) * p.bytes) / p.totalBytes : 0);
        increment = Math.max(0, pct - shown);
        shown += increment;
      }
      progress.report({ message: `${PHASE[p.phase]}${detail}`, increment });
    }, abort.signal);
  });
}

function summary(r: TransferResult): string {
  const linked = r.linkedFiles ? `, ${r.linkedFiles} linked from other sets on the host` : '';
  return `${r.files} files, ${formatBytes(r.bytes)}; ${r.transferredFiles} transferred (${formatBytes(r.transferredBytes)}), ${r.skippedFiles} already complete${linked}`;
}

export function registerTransferCommands(deps: CommandDeps): vscode.Disposable[] {
  const download = async (arg?: unknown): Promise<void> => {
    const picked = await pickSet(deps, nodeArg(arg));
    if (!picked) return;
    const { profile, set } = picked;
    const target = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Download here', title: `Download ${set.name} of ${profile.name} into a folder (a subfolder ${set.name} is created)` });
    if (!target?.[0]) return;
    const withoutConfig = 'Without the configuration';
    const config = await vscode.window.showQuickPick(
      [
        { label: withoutConfig, description: 'recommended', detail: 'Everything but config.tar.gz, which holds SECRET_KEY, the database password and the OIDC private keys.' },
        { label: 'With the configuration', detail: 'config.tar.gz too: keep the copy where those secrets may be. Needed to upload the set to another host.' },
      ],
      { title: `Download ${set.name}: the Kadi configuration?`, ignoreFocusOut: true },
    );
    if (!config) return;
    const withConfig = config.label !== withoutConfig;
    const channel = deps.outputs.channel(profile.name);
    channel.info(`▶ Download of ${set.name} from ${profile.name} into ${target[0].fsPath}`);
    try {
      const host = await deps.pool.get(profile);
      const r = await withTransferProgress(`Downloading ${set.name} from ${profile.name}`, (onProgress, signal) => downloadSet(host, set.name, target[0].fsPath, { onProgress, signal, withConfig }));
      if (r.problems.length > 0) {
        for (const p of r.problems) channel.error(`${set.name}: ${p.detail}`);
        const c = await vscode.window.showErrorMessage(`Download of ${set.name}: ${r.problems.length} file(s) do not match the manifest. Download again to fetch them anew; if they still differ, the set on ${profile.name} is damaged.`, 'Show output', 'Retry');
        if (c === 'Show output') channel.show(true);
        if (c === 'Retry') void download(arg);
        return;
      }
      channel.info(`■ Downloaded ${set.name} to ${r.location}: ${summary(r)}; every file matches the manifest.${r.leftOut?.length ? ` Left out: ${r.leftOut.join(', ')} (holds secrets).` : ''}`);
      const c = await vscode.window.showInformationMessage(`Downloaded ${set.name} (${summary(r)}); every file matches the manifest.`, 'Reveal folder');
      if (c) void vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(r.location));
    } catch (e) {
      await failed(deps, profile.name, `Download of ${set.name}`, e, () => void download(arg));
    }
  };

  const upload = async (arg?: unknown): Promise<void> => {
    const profile = await pickHost(deps, nodeArg(arg));
    if (!profile) return;
    const uri = uriArg(arg);
    const dir = uri?.scheme === 'file' && uri.fsPath ? [vscode.Uri.file(uri.fsPath)] : await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Upload this set', title: `Upload a backup set folder (named like 2026-11-26T06-37-07Z) to ${profile.name}` });
    if (!dir?.[0]) return;
    const local = dir[0].fsPath;
    const name = path.basename(local);
    if (!setTime(name)) {
      void vscode.window.showErrorMessage(`${name} is not a backup set folder: its name must be the set's timestamp, e.g. 2026-11-26T06-37-07Z.`);
      return;
    }
    const ok = await vscode.window.showWarningMessage(`Upload backup set ${name} to ${profile.name}?`, { modal: true, detail: `Into ${profile.backupDir}/${name}. The host checks every file against the manifest before the set appears.` }, 'Upload');
    if (ok !== 'Upload') return;
    const channel = deps.outputs.channel(profile.name);
    channel.info(`▶ Upload of ${local} to ${profile.name}:${profile.backupDir}`);
    try {
      const host = await deps.pool.get(profile);
      const r = await withTransferProgress(`Uploading ${name} to ${profile.name}`, (onProgress, signal) => uploadSet(host, local, { onProgress, signal }));
      channel.info(`■ Uploaded ${name} to ${r.location}: ${summary(r)}; checked and sealed on the host.`);
      void vscode.window.showInformationMessage(`Uploaded ${name} to ${profile.name} (${summary(r)}). Verify it there before relying on it.`);
    } catch (e) {
      await failed(deps, profile.name, `Upload of ${name}`, e, () => void upload(arg));
    } finally {
      deps.tree.refresh(profile.name);
    }
  };

  return [vscode.commands.registerCommand('kadiOps.downloadSet', download), vscode.commands.registerCommand('kadiOps.uploadSet', upload)];
}

async function failed(deps: CommandDeps, host: string, what: string, e: unknown, retry: () => void): Promise<void> {
  const channel = deps.outputs.channel(host);
  if (e instanceof CancelledError) {
    channel.warn(`■ ${what} cancelled; run it again to resume.`);
    void vscode.window.showWarningMessage(`${what} cancelled. Running it again resumes where it stopped.`);
    return;
  }
  channel.error(`■ ${what} failed: ${(e as Error).message}`);
  const c = await vscode.window.showErrorMessage(`${what} failed: ${(e as Error).message}`, 'Show output', 'Retry');
  if (c === 'Show output') channel.show(true);
  if (c === 'Retry') retry();
}
