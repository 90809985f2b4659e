import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { applyRetention, dayKey, isoWeekKey, monthKey, type RetentionPlan, type RetentionPolicy, type RetentionSet, type SetStatus } from '../../src/backup/retention';

function set(id: string, iso: string, status: SetStatus = 'verified', extra: Partial<RetentionSet> = {}): RetentionSet {
  return { id, time: new Date(iso), status, pinned: false, ...extra };
}

const kept = (plan: RetentionPlan): Record<string, string[]> => Object.fromEntries(plan.keep.map((k) => [k.id, k.reasons]));
const removed = (plan: RetentionPlan): string[] => plan.remove.map((r) => r.id);

describe('backup retention', () => {
  describe('keep rules', () => {
    it('keeps the N newest sets for keepLast and removes the rest, newest first', () => {
      const sets = ['01', '02', '03', '04', '05'].map((d) => set(`s${d}`, `2025-03-${d}T02:00:00Z`));
      const plan = applyRetention(sets, { keepLast: 3 });
      assert.deepEqual(kept(plan), { s05: ['newest verified', 'last'], s04: ['last'], s03: ['last'] });
      assert.deepEqual(removed(plan), ['s02', 's01']);
    });

    it('keeps the newest set of each of the last N days that have sets, skipping empty days', () => {
      const sets = [
        set('d1-early', '2025-03-01T01:00:00Z'),
        set('d1-late', '2025-03-01T23:59:59Z'),
        set('d3', '2025-03-03T12:00:00Z'),
        set('d4-early', '2025-03-04T00:00:00Z'),
        set('d4-late', '2025-03-04T18:00:00Z'),
      ];
      const plan = applyRetention(sets, { keepDaily: 3 });
      assert.deepEqual(kept(plan), {
        'd4-late': ['newest verified', 'daily 2025-03-04'],
        d3: ['daily 2025-03-03'],
        'd1-late': ['daily 2025-03-01'],
      });
      assert.deepEqual(removed(plan), ['d4-early', 'd1-early']);
    });

    it('buckets days, ISO weeks and months in UTC whatever offset the time was written with', () => {
      // 00:30 on April 1st in UTC+2 is still March 31st in UTC.
      const sets = [set('a', '2025-04-01T00:30:00+02:00'), set('b', '2025-03-31T12:00:00Z'), set('c', '2025-04-01T00:30:00Z')];
      const plan = applyRetention(sets, { keepMonthly: 5, keepDaily: 5 });
      assert.deepEqual(kept(plan), {
        c: ['newest verified', 'daily 2025-04-01', 'monthly 2025-04'],
        a: ['daily 2025-03-31', 'monthly 2025-03'],
      });
      assert.deepEqual(removed(plan), ['b']);
    });

    it('treats the days around New Year as ISO weeks do', () => {
      const sets = [
        set('mon-2021-w01', '2021-01-04T09:00:00Z'),
        set('sun-2020-w53', '2021-01-03T09:00:00Z'),
        set('mon-2020-w53', '2020-12-28T09:00:00Z'),
        set('sun-2020-w52', '2020-12-27T09:00:00Z'),
      ];
      const plan = applyRetention(sets, { keepWeekly: 3 });
      assert.deepEqual(kept(plan), {
        'mon-2021-w01': ['newest verified', 'weekly 2021-W01'],
        'sun-2020-w53': ['weekly 2020-W53'],
        'sun-2020-w52': ['weekly 2020-W52'],
      });
      assert.deepEqual(removed(plan), ['mon-2020-w53']);
    });

    it('computes ISO week keys across year boundaries', () => {
      const cases: [string, string][] = [
        ['2020-12-31T23:59:59Z', '2020-W53'],
        ['2021-01-03T00:00:00Z', '2020-W53'],
        ['2021-01-04T00:00:00Z', '2021-W01'],
        ['2024-12-30T00:00:00Z', '2025-W01'],
        ['2026-01-01T00:00:00Z', '2026-W01'],
        ['2027-01-01T00:00:00Z', '2026-W53'],
        ['2025-03-01T00:00:00Z', '2025-W09'],
        ['2025-12-28T00:00:00Z', '2025-W52'],
      ];
      for (const [iso, week] of cases) assert.equal(isoWeekKey(new Date(iso)), week, iso);
      assert.equal(dayKey(new Date('2025-04-01T00:30:00+02:00')), '2025-03-31');
      assert.equal(monthKey(new Date('2025-04-01T00:30:00+02:00')), '2025-03');
    });

    it('keeps every set when the policy has no keep rule, as restic refuses to forget without one', () => {
      const sets = [set('a', '2025-03-02T00:00:00Z', 'damaged'), set('b', '2025-03-01T00:00:00Z', 'unverified')];
      const plan = applyRetention(sets, { minKeep: 1 });
      assert.deepEqual(kept(plan), { a: ['no policy'], b: ['no policy'] });
      assert.deepEqual(removed(plan), []);
    });

    it('returns an empty plan for no sets', () => {
      assert.deepEqual(applyRetention([], { keepLast: 3 }), { keep: [], remove: [] });
    });
  });

  describe('guarantees', () => {
    it('does not let damaged sets fill a bucket: the day goes to its newest good set', () => {
      const sets = [set('bad', '2025-03-04T20:00:00Z', 'damaged'), set('good', '2025-03-04T02:00:00Z'), set('older', '2025-03-03T02:00:00Z')];
      const plan = applyRetention(sets, { keepDaily: 1, keepLast: 1 });
      assert.deepEqual(kept(plan), { good: ['newest verified', 'last', 'daily 2025-03-04'] });
      assert.deepEqual(removed(plan), ['bad', 'older']);
    });

    it('keeps pinned sets, even damaged ones', () => {
      const sets = [set('new', '2025-03-05T00:00:00Z'), set('pin', '2025-01-01T00:00:00Z', 'damaged', { pinned: true }), set('old', '2024-12-01T00:00:00Z')];
      const plan = applyRetention(sets, { keepLast: 1 });
      assert.deepEqual(kept(plan), { new: ['newest verified', 'last'], pin: ['pinned'] });
      assert.deepEqual(removed(plan), ['old']);
    });

    it('keeps the newest verified set even when newer unverified sets fill every bucket', () => {
      const sets = [set('u2', '2025-03-05T00:00:00Z', 'unverified'), set('u1', '2025-03-04T00:00:00Z', 'unverified'), set('v', '2025-03-01T00:00:00Z'), set('v-old', '2025-02-01T00:00:00Z')];
      const plan = applyRetention(sets, { keepLast: 2 });
      assert.deepEqual(kept(plan), { u2: ['last'], u1: ['last'], v: ['newest verified'] });
      assert.deepEqual(removed(plan), ['v-old']);
    });

    it('keeps a set dated in the future (a clock that was ahead) without letting it count: the sets made after it are kept as if it were not there', () => {
      const now = new Date('2025-03-05T02:00:30Z');
      const sets = [set('ahead', '2027-06-01T00:00:00Z'), set('s05', '2025-03-05T02:00:00Z', 'unverified'), set('s04', '2025-03-04T02:00:00Z'), set('s03', '2025-03-03T02:00:00Z')];
      const plan = applyRetention(sets, { keepLast: 1 }, now);
      assert.deepEqual(kept(plan), { ahead: ['dated in the future'], s05: ['last'], s04: ['newest verified'] });
      assert.deepEqual(removed(plan), ['s03']);
      // Within the slack (a clock a few minutes off) a set is an ordinary set.
      assert.deepEqual(kept(applyRetention([set('soon', '2025-03-05T02:10:00Z'), sets[1]], { keepLast: 1 }, now)), { soon: ['newest verified', 'last'] });
    });

    it('keeps the newest pre-restore set as the way back from the last restore', () => {
      const sets = [set('n', '2025-03-05T00:00:00Z'), set('pre2', '2025-03-04T00:00:00Z', 'unverified', { preRestore: true }), set('pre1', '2025-03-03T00:00:00Z', 'verified', { preRestore: true })];
      const plan = applyRetention(sets, { keepLast: 1 });
      assert.deepEqual(kept(plan), { n: ['newest verified', 'last'], pre2: ['newest pre-restore'] });
      assert.deepEqual(removed(plan), ['pre1']);
    });

    it('never goes below minKeep good sets, and keeps one by default', () => {
      const sets = [set('f', '2025-03-06T00:00:00Z', 'damaged'), set('u3', '2025-03-05T00:00:00Z', 'unverified'), set('u2', '2025-03-04T00:00:00Z', 'unverified'), set('u1', '2025-03-03T00:00:00Z', 'unverified')];
      assert.deepEqual(kept(applyRetention(sets, { keepLast: 0 })), { u3: ['min keep'] });
      assert.deepEqual(kept(applyRetention(sets, { keepLast: 0, minKeep: 2 })), { u3: ['min keep'], u2: ['min keep'] });
      assert.deepEqual(kept(applyRetention(sets, { keepLast: 0, minKeep: 0 })), {});
      assert.deepEqual(removed(applyRetention(sets, { keepLast: 0, minKeep: 9 })), ['f']);
    });

    it('rejects negative or fractional counts, repeated ids and invalid times', () => {
      assert.throws(() => applyRetention([], { keepLast: -1 }), /keepLast/);
      assert.throws(() => applyRetention([], { keepDaily: 1.5 }), /keepDaily/);
      assert.throws(() => applyRetention([set('a', '2025-01-01T00:00:00Z'), set('a', '2025-01-02T00:00:00Z')], { keepLast: 1 }), /listed twice/);
      assert.throws(() => applyRetention([set('a', 'not a date')], { keepLast: 1 }), /invalid time/);
    });
  });

  describe('properties', () => {
    const FROM = Date.UTC(2024, 11, 1);
    const TO = Date.UTC(2025, 2, 1);
    const setsArb = fc.uniqueArray(
      fc.record({
        id: fc.stringMatching(/^[a-z0-9]{1,6}$/),
        // Coarse times so that several sets share a day, week or month.
        time: fc.integer({ min: 0, max: (TO - FROM) / 3_600_000 }).map((h) => new Date(FROM + h * 3_600_000)),
        status: fc.constantFrom<SetStatus>('verified', 'unverified', 'damaged'),
        pinned: fc.oneof({ arbitrary: fc.constant(false), weight: 5 }, { arbitrary: fc.constant(true), weight: 1 }),
        preRestore: fc.option(fc.boolean(), { nil: undefined }),
      }),
      { selector: (s) => s.id, maxLength: 40 },
    );
    const count = fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined });
    const policyArb = fc.record({ keepLast: count, keepDaily: count, keepWeekly: count, keepMonthly: count, minKeep: count });
    const clean = (p: RetentionPolicy): RetentionPolicy => Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined));
    const newestFirst = (a: RetentionSet, b: RetentionSet) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? -1 : 1);

    it('puts every set in exactly one of keep or remove', () => {
      fc.assert(
        fc.property(setsArb, policyArb, (sets, policy) => {
          const plan = applyRetention(sets, clean(policy));
          const ids = [...plan.keep.map((k) => k.id), ...removed(plan)].sort();
          assert.deepEqual(ids, sets.map((s) => s.id).sort());
          assert.ok(plan.keep.every((k) => k.reasons.length > 0));
        }),
        { numRuns: 400 },
      );
    });

    it('never removes a pinned set or the newest verified set, and never drops below minKeep', () => {
      fc.assert(
        fc.property(setsArb, policyArb, (sets, policy) => {
          const plan = applyRetention(sets, clean(policy));
          const gone = new Set(removed(plan));
          for (const s of sets) if (s.pinned) assert.ok(!gone.has(s.id), `pinned ${s.id} removed`);
          const newestVerified = [...sets].sort(newestFirst).find((s) => s.status === 'verified');
          if (newestVerified) assert.ok(!gone.has(newestVerified.id), 'newest verified removed');
          const good = sets.filter((s) => s.status !== 'damaged');
          const keptGood = good.filter((s) => !gone.has(s.id)).length;
          assert.ok(keptGood >= Math.min(policy.minKeep ?? 1, good.length), `${keptGood} good sets kept`);
        }),
        { numRuns: 400 },
      );
    });

    it('gives the same plan for the sets in any order', () => {
      fc.assert(
        fc.property(
          setsArb.chain((sets) => fc.tuple(fc.constant(sets), fc.shuffledSubarray(sets, { minLength: sets.length, maxLength: sets.length }))),
          policyArb,
          ([sets, shuffled], policy) => {
            assert.deepEqual(applyRetention(shuffled, clean(policy)), applyRetention(sets, clean(policy)));
          },
        ),
        { numRuns: 300 },
      );
    });

    it('decides about good sets as if the damaged sets were not there, and removes unpinned damaged sets', () => {
      fc.assert(
        fc.property(setsArb, policyArb, (sets, policy) => {
          const p = clean(policy);
          const good = sets.filter((s) => s.status !== 'damaged');
          const withFailed = kept(applyRetention(sets, p));
          const withoutFailed = kept(applyRetention(good, p));
          for (const s of good) assert.deepEqual(withFailed[s.id], withoutFailed[s.id], s.id);
          const hasRule = p.keepLast !== undefined || p.keepDaily !== undefined || p.keepWeekly !== undefined || p.keepMonthly !== undefined;
          if (hasRule) for (const s of sets) if (s.status === 'damaged' && !s.pinned) assert.equal(withFailed[s.id], undefined, s.id);
        }),
        { numRuns: 400 },
      );
    });

    it('keeps for keepDaily exactly the newest good set of each of the N newest days with good sets', () => {
      fc.assert(
        fc.property(setsArb, fc.integer({ min: 0, max: 8 }), (sets, n) => {
          const plan = applyRetention(sets, { keepDaily: n });
          const dailyKept = plan.keep.filter((k) => k.reasons.some((r) => r.startsWith('daily '))).map((k) => k.id).sort();
          // Reference model: group by UTC day, take the N newest days, the newest set of each.
          const byDay = new Map<string, RetentionSet>();
          for (const s of [...sets].sort(newestFirst)) if (s.status !== 'damaged' && !byDay.has(dayKey(s.time))) byDay.set(dayKey(s.time), s);
          const expected = [...byDay.entries()].sort(([a], [b]) => (a < b ? 1 : -1)).slice(0, n).map(([, s]) => s.id).sort();
          assert.deepEqual(dailyKept, expected);
        }),
        { numRuns: 400 },
      );
    });
  });
});
