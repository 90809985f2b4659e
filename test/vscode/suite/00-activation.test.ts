/**
 * Runs first (files run in name order): activates the extension the way the first click on the
 * Kadi Ops view or one of its commands would, before any other test has touched it. When
 * KADI_OPS_ACTIVATION_FILE is set (`npm run bench:activation`), the wall time of
 * `extension.activate()` — loading dist/extension.js, calling activate() and awaiting it — goes to
 * that file as JSON. This is a measurement for BENCHMARKS.md, not a timed assertion: the test only
 * checks that activation succeeds and returns the API.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import type { KadiOpsApi } from '../../../src/ui/activate';
import { EXTENSION_ID, testInfo } from './fixture';

describe('activation', function () {
  this.timeout(60000);

  it('activates on demand and returns the API (time recorded when KADI_OPS_ACTIVATION_FILE is set)', async () => {
    await testInfo(); // hosts in the settings first, as for every other test (no activation)
    const ext = vscode.extensions.getExtension<KadiOpsApi>(EXTENSION_ID);
    assert.ok(ext, `extension ${EXTENSION_ID} is loaded`);
    // KADI_OPS_ACTIVATION_SETTLE_MS: let the freshly opened workbench settle first, as a user's
    // first click on the view comes after the window has loaded (the bench sets it; tests do not).
    const settle = Number(process.env.KADI_OPS_ACTIVATION_SETTLE_MS ?? 0);
    if (settle > 0) await new Promise((r) => setTimeout(r, settle));
    const wasActive = ext.isActive;
    const t0 = process.hrtime.bigint();
    const kadi = await ext.activate();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    assert.ok(kadi.tree && kadi.outputs && kadi.pool, 'activate() returns the API');
    const out = process.env.KADI_OPS_ACTIVATION_FILE;
    if (out) {
      // VS Code's own performance marks for this extension (will/didActivateExtension,
      // will/didLoadExtensionCode), relative to the start of the timed call, where the host has them.
      const perf = (globalThis as { MonacoPerformanceMarks?: { getMarks(): { name: string; startTime: number }[] } }).MonacoPerformanceMarks;
      const startEpochMs = Date.now() - ms;
      const marks = Object.fromEntries(
        (perf?.getMarks() ?? []).filter((m) => m.name.endsWith(`/${EXTENSION_ID}`)).map((m) => [m.name.replace(`/${EXTENSION_ID}`, ''), Math.round((m.startTime - startEpochMs) * 10) / 10]),
      );
      fs.writeFileSync(out, `${JSON.stringify({ activateMs: ms, wasActive, settleMs: settle, marks, vscode: vscode.version, node: process.version })}\n`);
    }
  });
});
