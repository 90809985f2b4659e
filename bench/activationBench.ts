/**
 * Extension activation time in a real VS Code: runs the code-server harness
 * (scripts/vscode-test-codeserver.mjs --no-ui) with only the extension-host suite's first test,
 * which times `extension.activate()` while the extension is not yet active and writes it to the file
 * named by KADI_OPS_ACTIVATION_FILE. Each run is a fresh code-server, user-data dir and extension
 * host, so every activation is a first one (module load included). Prints the runs and their median.
 *
 *   npm run bench:activation -- [--runs R] [--settle MS]
 *
 * `npm run bench:activation` measures the production bundle (what the .vsix ships).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { flag, machineLine, median, runBench } from './benchData';

interface Activation {
  activateMs: number;
  wasActive: boolean;
  /** VS Code's marks for this extension, ms after the timed call started (code/extHost/…). */
  marks: Record<string, number>;
  vscode: string;
  node: string;
}

const ROOT = path.resolve(__dirname, '..', '..');

function runHarness(file: string, settleMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [path.join(ROOT, 'scripts', 'vscode-test-codeserver.mjs'), '--no-ui', '--grep', '^activation ', '--timeout', '180'], {
      cwd: ROOT,
      env: { ...process.env, KADI_OPS_ACTIVATION_FILE: file, KADI_OPS_ACTIVATION_SETTLE_MS: String(settleMs) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    p.stdout.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr.on('data', (d: Buffer) => (output += d.toString()));
    // Ctrl-C reaches the harness too (same process group); it stops what it started.
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, output }));
  });
}

async function main(): Promise<void> {
  const runs = Number(flag('runs', '5'));
  // --settle MS: wait this long after the extension host is up before activating (default 5000;
  // 0 activates at once, while the workbench is still starting).
  const settleMs = Number(flag('settle', '5000'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-activation-bench-'));
  const results: Activation[] = [];
  try {
    for (let r = 0; r < runs; r++) {
      const file = path.join(dir, `activation-${r}.json`);
      const { code, output } = await runHarness(file, settleMs);
      if (code !== 0 || !fs.existsSync(file)) throw new Error(`harness run ${r + 1} failed (exit ${code}):\n${output.slice(-3000)}`);
      const a = JSON.parse(fs.readFileSync(file, 'utf8')) as Activation;
      if (a.wasActive) throw new Error('the extension was already active before the test could time it');
      results.push(a);
      process.stderr.write(`run ${r + 1}: activate() ${a.activateMs.toFixed(1)} ms; marks ${JSON.stringify(a.marks)}\n`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const bundle = fs.statSync(path.join(ROOT, 'dist', 'extension.js')).size;
  const ms = results.map((a) => a.activateMs);
  // Split by VS Code's own marks: before the module load, loading dist/extension.js (in parallel
  // VS Code builds the ExtensionContext), waiting for that context, and activate() itself.
  const span = (a: Activation, from: string | undefined, to: string): number => (a.marks[`code/extHost/${to}`] ?? NaN) - (from ? (a.marks[`code/extHost/${from}`] ?? NaN) : 0);
  const parts: [string, (a: Activation) => number][] = [
    ['call → willLoadExtensionCode', (a) => span(a, undefined, 'willLoadExtensionCode')],
    ['willLoad → didLoadExtensionCode (require of dist/extension.js)', (a) => span(a, 'willLoadExtensionCode', 'didLoadExtensionCode')],
    ['didLoad → willActivateExtension (VS Code builds the ExtensionContext: storage, secrets)', (a) => span(a, 'didLoadExtensionCode', 'willActivateExtension')],
    ['willActivate → didActivateExtension (kadi-ops activate() and its result)', (a) => span(a, 'willActivateExtension', 'didActivateExtension')],
  ];
  process.stdout.write(
    [
      `VS Code ${results[0].vscode} (code-server), extension host on Node ${results[0].node}; dist/extension.js ${(bundle / 1024).toFixed(0)} KiB; ${runs} fresh code-server runs; activated ${settleMs} ms after the extension host was up.`,
      machineLine(),
      '',
      '| measure | runs (ms) | median | goal |',
      '|---|---|---:|---:|',
      `| first \`activate()\` of kadi-ops (module load + activate + await) | ${ms.map((x) => x.toFixed(0)).join(', ')} | ${median(ms).toFixed(0)} ms | < 100 ms |`,
      ...parts.map(([name, f]) => `| of which ${name} | ${results.map((a) => f(a).toFixed(0)).join(', ')} | ${median(results.map(f)).toFixed(0)} ms | |`),
    ].join('\n') + '\n',
  );
}

runBench(main);
