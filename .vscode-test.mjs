// @vscode/test-cli configuration (`npx vscode-test`, or `npm run test:vscode-electron`): the same
// extension-host suite as scripts/vscode-test-codeserver.mjs, run by @vscode/test-electron in a
// desktop VS Code it downloads (or the one named by KADI_OPS_VSCODE_EXECUTABLE). For machines that
// can download VS Code; here, where they cannot, npm test uses code-server instead.
//
// Without KADI_OPS_TEST_INFO the suite starts the sandbox Kadi host itself inside the extension
// host (real sshd/PostgreSQL/Redis; needs root and scripts/ensure-system-deps.sh) and writes
// `kadiOps.hosts` into this run's user settings (.vscode-test/user-data), stopping it afterwards.
// Build first: npm run build && npm run compile-tests.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from '@vscode/test-cli';

const root = path.dirname(fileURLToPath(import.meta.url));
const workspace = path.join(os.tmpdir(), 'kadi-ops-vscode-test-workspace');
fs.mkdirSync(workspace, { recursive: true });
const executable = process.env.KADI_OPS_VSCODE_EXECUTABLE;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export default defineConfig({
  label: 'extension-host',
  files: 'out/test/vscode/suite/*.test.js',
  extensionDevelopmentPath: root,
  workspaceFolder: workspace,
  // Latest stable unless a version is asked for (e.g. KADI_OPS_VSCODE_VERSION=1.90.0, engines.vscode's minimum).
  version: process.env.KADI_OPS_VSCODE_VERSION ?? 'stable',
  ...(executable ? { useInstallation: { fromPath: executable } } : {}),
  launchArgs: [
    '--disable-extensions', // only the extension under test
    '--disable-workspace-trust',
    '--skip-welcome',
    '--skip-release-notes',
    ...(isRoot ? ['--no-sandbox'] : []), // Electron refuses to run as root with its sandbox on
  ],
  mocha: {
    ui: 'bdd',
    timeout: 120000,
    color: true,
  },
});
