/** When the backup disk fills: growth per set, the least-squares rate, and the forecast's edge cases. */
import { strict as assert } from 'node:assert';
import { forecastFill, growthSeries, leastSquaresSlope, MIN_DAYS_FOR_FORECAST, MIN_SETS_FOR_FORECAST, setGrowthBytes } from '../../src/backup/diskForecast';
import type { BackupSet } from '../../src/backup/manifest';
import { forecastText } from '../../src/ui/dashboardModel';
import { backupSet, manifest } from './treeModelFixtures';

const GiB = 1024 ** 3;
const DAY = 86_400_000;

/** A set at `day` days after 2026-11-01 06:00 UTC that wrote `bytes` (one artifact, no tree). */
function setAt(day: number, bytes: number): BackupSet {
  const t = new Date(Date.UTC(2026, 10, 1, 6) + day * DAY);
  const name = t.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  const m = { ...manifest(), trees: {}, artifacts: [{ name: 'db.dump', size: bytes, sha256: 'a'.repeat(64) }] };
  return backupSet(name, { manifest: m });
}

describe('dashboard: backup disk forecast', () => {
  it('a set adds its trees\' new bytes and every artifact file it wrote (a file list by its own size, not the tree it describes)', () => {
    // Fixture: config 2048 + dump 5 MiB + storage.files.jsonl 300 (describes 4096 bytes) + uploads archive 999; storage tree 100 new bytes.
    assert.equal(setGrowthBytes(manifest()), 100 + 2048 + 5 * 1024 * 1024 + 300 + 999);
    // An archive-mode set has no trees: all of it is its artifacts.
    assert.equal(setGrowthBytes({ ...manifest(), trees: undefined }), 2048 + 5 * 1024 * 1024 + 300 + 999);
  });

  it("a set's trees' directories are made again in every set, a block each: counted from the list's entries that are not files", () => {
    const m = manifest();
    m.artifacts = m.artifacts.map((a) => (a.tree ? { ...a, entries: 12 + 30 } : a));
    assert.equal(setGrowthBytes(m), 100 + 2048 + 5 * 1024 * 1024 + 300 + 999 + 30 * 4096);
  });

  it('growth is summed oldest first, whatever order the sets come in', () => {
    const series = growthSeries([setAt(2, 30), setAt(0, 10), setAt(1, 20)]);
    assert.deepEqual(series.map((p) => p.cumulative), [10, 30, 60]);
    assert.ok(series[0].t < series[1].t && series[1].t < series[2].t);
  });

  it('least squares: an exact line gives its slope; scattered points their best fit; one x value gives none', () => {
    assert.equal(leastSquaresSlope([{ x: 0, y: 1 }, { x: 1, y: 3 }, { x: 2, y: 5 }]), 2);
    // By hand: x̄ = 4/3, ȳ = 3; Sxy = (-4/3)(-3) + (-1/3)(-1) + (5/3)(4) = 11; Sxx = 16/9 + 1/9 + 25/9 = 14/3 → 33/14.
    assert.ok(Math.abs((leastSquaresSlope([{ x: 0, y: 0 }, { x: 1, y: 2 }, { x: 3, y: 7 }]) ?? NaN) - 33 / 14) < 1e-12);
    assert.equal(leastSquaresSlope([{ x: 5, y: 1 }, { x: 5, y: 9 }]), undefined);
    assert.equal(leastSquaresSlope([{ x: 5, y: 1 }]), undefined);
    assert.equal(leastSquaresSlope([]), undefined);
  });

  it('1 GiB a day and 10 GiB free: full in 10 days from the measurement', () => {
    const measured = new Date(Date.UTC(2026, 10, 3, 12));
    const f = forecastFill([setAt(0, GiB), setAt(1, GiB), setAt(2, GiB)], 10 * GiB, measured);
    assert.equal(f.kind, 'fills');
    if (f.kind !== 'fills') return;
    assert.ok(Math.abs(f.bytesPerDay - GiB) < 1, `${f.bytesPerDay}`);
    assert.ok(Math.abs(f.days - 10) < 1e-9, `${f.days}`);
    assert.equal(f.at.toISOString(), '2026-11-13T12:00:00.000Z');
    assert.equal(f.sets, 3);
    assert.equal(forecastText(f), 'full in about 10 days (2026-11-13)');
  });

  it('the first set\'s full size is an offset, not growth: a 1 TiB first set then 1 GiB a day is still 1 GiB a day', () => {
    const f = forecastFill([setAt(0, 1024 * GiB), setAt(1, GiB), setAt(2, GiB), setAt(3, GiB)], 100 * GiB, new Date(Date.UTC(2026, 10, 4)));
    assert.equal(f.kind, 'fills');
    // Cumulative 1024, 1025, 1026, 1027 GiB over days 0..3: a line of slope 1 GiB/day.
    if (f.kind === 'fills') assert.ok(Math.abs(f.bytesPerDay - GiB) < 1, `${f.bytesPerDay / GiB} GiB/day`);
  });

  it('irregular intervals are weighted by time, not by set count', () => {
    // Sets on days 0, 1 and 3 adding 0, 2 and 5 GiB: cumulative 0, 2, 7 → 33/14 GiB/day (as by hand above),
    // where averaging per set would say 3.5 and first-to-last 7/3.
    const f = forecastFill([setAt(0, 0), setAt(1, 2 * GiB), setAt(3, 5 * GiB)], 33 * GiB, new Date(Date.UTC(2026, 10, 4, 6)));
    assert.equal(f.kind, 'fills');
    if (f.kind === 'fills') {
      assert.ok(Math.abs(f.bytesPerDay - (33 / 14) * GiB) < 1);
      assert.ok(Math.abs(f.days - 14) < 1e-9);
    }
  });

  it(`fewer than ${MIN_SETS_FOR_FORECAST} sets: not enough history`, () => {
    const now = new Date();
    for (const sets of [[], [setAt(0, GiB)], [setAt(0, GiB), setAt(1, GiB)]]) {
      const f = forecastFill(sets, 10 * GiB, now);
      assert.deepEqual(f, { kind: 'not-enough-history', sets: sets.length, needed: 3 });
    }
    assert.equal(forecastText({ kind: 'not-enough-history', sets: 2, needed: 3 }), 'not enough history (2 sets; 3 needed)');
    assert.equal(forecastText({ kind: 'not-enough-history', sets: 1, needed: 3 }), 'not enough history (1 set; 3 needed)');
  });

  it(`sets less than ${MIN_DAYS_FOR_FORECAST} day apart (oldest to newest): not enough history, however many`, () => {
    const sets = [0, 10, 20, 34].map((min) => setAt(min / 1440, GiB));
    const f = forecastFill(sets, 10 * GiB, new Date());
    assert.equal(f.kind, 'not-enough-history');
    assert.equal(forecastText(f), 'not enough history (sets span 34 min; 1 day needed)');
    assert.equal(forecastFill([...sets, setAt(1, GiB)], 10 * GiB, new Date()).kind, 'fills', 'one more set a day later');
  });

  it('sets that add nothing: not filling', () => {
    const f = forecastFill([setAt(0, 0), setAt(1, 0), setAt(2, 0)], 10 * GiB, new Date());
    assert.equal(f.kind, 'not-filling');
    assert.equal(forecastText(f), 'not filling');
  });

  it('free space unknown: no forecast, whatever the history', () => {
    assert.deepEqual(forecastFill([setAt(0, GiB), setAt(1, GiB), setAt(2, GiB)], undefined, new Date()), { kind: 'unknown' });
    assert.deepEqual(forecastFill([setAt(0, GiB), setAt(1, GiB), setAt(2, GiB)], NaN, new Date()), { kind: 'unknown' });
  });

  it('a full disk (0 free, or less) is full now', () => {
    const measured = new Date(Date.UTC(2026, 10, 3));
    for (const free of [0, -5]) {
      const f = forecastFill([setAt(0, GiB), setAt(1, GiB), setAt(2, GiB)], free, measured);
      assert.equal(f.kind, 'fills');
      if (f.kind === 'fills') {
        assert.equal(f.days, 0);
        assert.equal(f.at.getTime(), measured.getTime());
      }
      assert.equal(forecastText(f), 'full');
    }
  });

  it('very slow growth still gives a valid date, said as "not within 10 years"', () => {
    const f = forecastFill([setAt(0, 1), setAt(1, 1), setAt(2, 1)], 1e18, new Date());
    assert.equal(f.kind, 'fills');
    if (f.kind === 'fills') assert.ok(Number.isFinite(f.at.getTime()));
    assert.equal(forecastText(f), 'not within 10 years');
  });
});
