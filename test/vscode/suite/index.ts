/**
 * Entry of the extension-host suite (`extensionTestsPath`): runs every *.test.js next to this file
 * with mocha 11 (CommonJS) inside the real extension host. run() resolves when all tests pass and
 * rejects otherwise; the workbench turns that into the exit code (codeAutomationExit under
 * code-server, the process exit code under @vscode/test-electron).
 *
 * Environment:
 *   KADI_OPS_TEST_INFO     JSON with the sandbox host (see fixture.ts); absent: the suite starts one.
 *   KADI_OPS_TEST_RESULTS  file to write a JSON summary to (a second channel besides the exit code).
 *   KADI_OPS_TEST_GREP     only run tests whose full title matches this regular expression.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Mocha from 'mocha';

interface Summary {
  passes: number;
  failures: number;
  pending: number;
  durationMs: number;
  failed: { title: string; error: string }[];
  passed: string[];
}

export const SUITE_START = '--- kadi-ops extension-host suite: start ---';
export const SUITE_END = '--- kadi-ops extension-host suite: end ---';

export function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'bdd', color: false, timeout: 120000, reporter: 'spec' });
  if (process.env.KADI_OPS_TEST_GREP) mocha.grep(new RegExp(process.env.KADI_OPS_TEST_GREP));
  const files = fs
    .readdirSync(__dirname)
    .filter((f) => f.endsWith('.test.js'))
    .sort();
  for (const f of files) mocha.addFile(path.join(__dirname, f));
  const started = Date.now();
  const summary: Summary = { passes: 0, failures: 0, pending: 0, durationMs: 0, failed: [], passed: [] };
  // The code-server runner prints what the extension host logs between these markers.
  console.log(SUITE_START);
  return new Promise((resolve, reject) => {
    try {
      const runner = mocha.run((failures) => {
        console.log(SUITE_END);
        summary.failures = failures;
        summary.durationMs = Date.now() - started;
        const out = process.env.KADI_OPS_TEST_RESULTS;
        if (out) fs.writeFileSync(out, `${JSON.stringify(summary, null, 2)}\n`);
        if (failures > 0) reject(new Error(`${failures} extension-host test(s) failed`));
        else resolve();
      });
      runner.on('pass', (t) => {
        summary.passes++;
        summary.passed.push(t.fullTitle());
      });
      runner.on('pending', () => summary.pending++);
      runner.on('fail', (t, err: Error) => summary.failed.push({ title: t.fullTitle(), error: err?.stack ?? String(err) }));
    } catch (e) {
      reject(e instanceof Error ? e : new Error(String(e)));
    }
  });
}
