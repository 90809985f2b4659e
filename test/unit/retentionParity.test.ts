import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { applyRetention, type RetentionPolicy, type RetentionSet } from '../../src/backup/retention';
import { agentPyz } from '../../src/remote/agent';

/** The agent's retention (agent/kadi_ops_agent/retention.py) over many cases in one run of the zipapp. */
function agentPlans(cases: { sets: RetentionSet[]; policy: RetentionPolicy; now: Date }[]): unknown[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-retention-'));
  try {
    const pyz = path.join(dir, 'agent.pyz');
    fs.writeFileSync(pyz, agentPyz());
    const input = JSON.stringify(cases.map((c) => ({ sets: c.sets.map((s) => ({ ...s, time: s.time.toISOString() })), policy: c.policy, now: c.now.toISOString() })));
    const r = spawnSync('python3', ['-I', '-S', pyz, 'retention-plan'], { input, encoding: 'utf8', maxBuffer: 64 << 20 });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as unknown[];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const setArb = fc.record({
  // Hours over ~3 years, so days, ISO weeks across year ends and months all repeat and gap.
  hour: fc.integer({ min: 0, max: 3 * 366 * 24 }),
  minute: fc.integer({ min: 0, max: 59 }),
  status: fc.constantFrom('verified' as const, 'unverified' as const, 'damaged' as const),
  pinned: fc.boolean(),
  preRestore: fc.boolean(),
});
const policyArb = fc.record(
  { keepLast: fc.integer({ min: 0, max: 5 }), keepDaily: fc.integer({ min: 0, max: 7 }), keepWeekly: fc.integer({ min: 0, max: 5 }), keepMonthly: fc.integer({ min: 0, max: 4 }), minKeep: fc.integer({ min: 0, max: 4 }) },
  { requiredKeys: [] },
);

describe('retention on the host decides as the client does', () => {
  it('the agent and the client keep and remove the same sets, for the same reasons, over generated cases', () => {
    const cases = fc.sample(
      fc.record({ sets: fc.array(setArb, { maxLength: 40 }), policy: policyArb, nowHour: fc.integer({ min: 2 * 366 * 24, max: 4 * 366 * 24 }) }).map(({ sets, policy, nowHour }) => ({
        policy,
        // Mostly after every set; in a third of the cases some sets are dated after now (a clock that was ahead).
        now: new Date(Date.UTC(2024, 11, 28) + nowHour * 3_600_000),
        // Unique ids; equal times happen (same minute) and must be broken by id on both sides.
        sets: sets.map((s, i): RetentionSet => ({
          id: `s${String(i).padStart(2, '0')}`,
          time: new Date(Date.UTC(2024, 11, 28) + s.hour * 3_600_000 + s.minute * 60_000),
          status: s.status,
          pinned: s.pinned,
          preRestore: s.preRestore,
        })),
      })),
      { numRuns: 400, seed: 20261130 },
    );
    const fromAgent = agentPlans(cases);
    cases.forEach((c, i) => assert.deepEqual(fromAgent[i], applyRetention(c.sets, c.policy, c.now), JSON.stringify(c)));
    // The cases exercise the rules: most plans remove something and keep for several reasons.
    const reasons = new Set(cases.flatMap((c) => applyRetention(c.sets, c.policy, c.now).keep.flatMap((k) => k.reasons.map((r) => r.split(' ')[0]))));
    for (const r of ['pinned', 'newest', 'last', 'daily', 'weekly', 'monthly', 'min', 'no', 'dated']) assert.ok(reasons.has(r), r);
  });

  it('the agent refuses a policy that is not whole numbers, as the client does', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-retention-'));
    try {
      const pyz = path.join(dir, 'agent.pyz');
      fs.writeFileSync(pyz, agentPyz());
      const r = spawnSync('python3', ['-I', '-S', pyz, 'retention-plan'], { input: JSON.stringify({ sets: [], policy: { keepLast: -1 } }), encoding: 'utf8' });
      assert.equal(r.status, 2);
      assert.match(r.stderr, /Retention keepLast must be a whole number >= 0, got -1/);
      assert.throws(() => applyRetention([], { keepLast: -1 }), /Retention keepLast must be a whole number >= 0, got -1/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
