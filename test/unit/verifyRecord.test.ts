import { strict as assert } from 'node:assert';
import { hostNow, latestSet, parseSetListing, type VerifyRecord } from '../../src/backup/manifest';
import { setState, stateDetail, stateLabel } from '../../src/backup/setState';

const base: VerifyRecord = { level: 'deep', ok: true, problems: [], problemCount: 0, files: 3, bytes: 10, at: '2026-11-26T07:00:00Z' };
const AT = '2026-11-26T07:00:00Z';

describe('the state of a set: unverified, verified, damaged, or a verification that could not run', () => {
  it('names the level, and where a deep verification restored the dump', () => {
    const deep = setState({ ...base, deep: { mode: 'throwaway-cluster', tablesCompared: 4 } });
    assert.deepEqual(deep, { kind: 'verified', level: 'deep', at: AT, mode: 'throwaway-cluster' });
    assert.equal(stateLabel(deep), 'verified (deep)');
    assert.deepEqual(stateDetail(deep), [`Verified (deep, throwaway cluster) ${AT}: no problems.`]);
    const damaged = setState({ ...base, ok: false, problems: ['db.dump: sha256 does not match the manifest', 'storage/a: missing'], problemCount: 2, deep: { mode: 'scratch-database' } });
    assert.equal(stateLabel(damaged), 'damaged: 2 problems');
    assert.deepEqual(stateDetail(damaged), [`Damaged: deep, scratch database verification ${AT} found 2 problems:`, '  db.dump: sha256 does not match the manifest', '  storage/a: missing']);
  });

  it('reads records without a mode (older agents), quick records, and no record', () => {
    assert.deepEqual(stateDetail(setState({ ...base, deep: { tablesCompared: 4 } })), [`Verified (deep) ${AT}: no problems.`]);
    assert.equal(stateLabel(setState({ ...base, level: 'quick' })), 'verified (quick)');
    assert.deepEqual(setState(null), { kind: 'unverified' });
    assert.equal(stateLabel(setState(null)), 'unverified');
  });

  it('shows the first problems of a damaged set and counts the rest', () => {
    const problems = Array.from({ length: 7 }, (_, i) => `storage/f${i}: missing`);
    const d = stateDetail(setState({ ...base, level: 'quick', ok: false, problems, problemCount: 1200 }));
    assert.equal(d.length, 7);
    assert.equal(d[6], '  … and 1195 more (the verify job\'s log names the first 200)');
  });

  it('a deep verification that could not run is its own state, with why and the fix, and the set is not damaged', () => {
    const why = 'no throwaway PostgreSQL cluster (no initdb in /x), and role kadi may not create a scratch database on the production server (CREATEDB)';
    const fix = 'install postgresql-15 on this host (the binaries only; its default cluster may stay stopped) so a throwaway cluster can run, or let the role create a scratch database: ALTER ROLE "kadi" CREATEDB';
    const rec: VerifyRecord = { ...base, level: 'quick', deep: { notRun: why, fix } };
    const s = setState(rec);
    assert.deepEqual(s, { kind: 'not-run', at: AT, why, fix });
    assert.equal(stateLabel(s), 'verified (quick); deep verification could not run');
    assert.deepEqual(stateDetail(s), [`Quick verification ${AT}: no problems. Deep verification could not run here: ${why}.`, `Fix: ${fix}.`]);
    const manifest = { formatVersion: 1, artifacts: ['db.dump', 'db.counts.json', 'storage.files.jsonl', 'uploads.files.jsonl'].map((name) => ({ name, size: 2, sha256: 'a'.repeat(64) })) };
    const listing = parseSetListing(JSON.stringify({ sets: [{ name: '2026-11-26T06-37-07Z', manifest, verify: rec, pinned: false, preRestore: false }], partials: [], invalid: [] }));
    assert.equal(listing.sets[0].status, 'verified', 'retention counts it as good: its quick part passed');
    const damagedToo = parseSetListing(JSON.stringify({ sets: [{ name: '2026-11-26T06-37-07Z', manifest, verify: { ...rec, ok: false, problemCount: 1, problems: ['x'] }, pinned: false, preRestore: false }], partials: [], invalid: [] }));
    assert.equal(damagedToo.sets[0].status, 'damaged');
    assert.equal(setState(damagedToo.sets[0].verify).kind, 'damaged', 'a quick problem wins over "could not run"');
  });

  it('a damaged manifest makes its set invalid with a reason; the listing of the others still reads', () => {
    const good = { formatVersion: 1, artifacts: ['db.dump', 'storage.files.jsonl', 'uploads.files.jsonl'].map((name) => ({ name, size: 2, sha256: 'a'.repeat(64) })) };
    const bad = [{ ...good, artifacts: [null] }, { ...good, artifacts: [1] }, { formatVersion: 1, artifacts: [{ name: 'db.dump', size: 2, sha256: 'a'.repeat(64) }, { size: 2, sha256: 'a'.repeat(64) }] }, null];
    const sets = [good, ...bad].map((manifest, i) => ({ name: `2026-11-2${i}T00-00-00Z`, manifest, verify: null, pinned: false, preRestore: false }));
    const listing = parseSetListing(JSON.stringify({ sets, partials: [], invalid: [] }));
    assert.deepEqual(listing.sets.map((s) => s.name), ['2026-11-20T00-00-00Z']);
    assert.deepEqual(listing.invalid.map((i) => i.reason), ['manifest lists no artifacts', 'manifest lists no artifacts', 'manifest has no storage copy', 'manifest is not an object']);
  });

  it("the host's clock: the listing's now against this machine's when it arrived, and now by it", () => {
    const manifest = { formatVersion: 1, artifacts: ['db.dump', 'storage.files.jsonl', 'uploads.files.jsonl'].map((name) => ({ name, size: 2, sha256: 'a'.repeat(64) })) };
    const sets = ['2026-11-26T12-10-00Z', '2026-11-26T10-00-00Z'].map((name) => ({ name, manifest, verify: null, pinned: false, preRestore: false }));
    const here = Date.parse('2026-11-26T11:00:00Z'); // this machine an hour behind the host
    const listing = parseSetListing(JSON.stringify({ sets, partials: [], invalid: [], now: Date.parse('2026-11-26T12:00:00.250Z') / 1000 }), here);
    assert.equal(listing.clockOffsetMs, 3_600_250);
    assert.equal(hostNow(listing, new Date(here + 1000)).toISOString(), '2026-11-26T12:00:01.250Z');
    // By the host's clock the 12:10 set is an ordinary one; by this machine's it would be dated ahead.
    assert.equal(latestSet(listing.sets, hostNow(listing, new Date(here)))?.name, '2026-11-26T12-10-00Z');
    assert.equal(latestSet(listing.sets, new Date(here))?.name, '2026-11-26T10-00-00Z');
    // An agent that does not say its time: this machine's clock, as before.
    for (const now of [undefined, null, 'x', Number.NaN]) {
      const old = parseSetListing(JSON.stringify({ sets, partials: [], invalid: [], ...(now === undefined ? {} : { now }) }), here);
      assert.equal(old.clockOffsetMs, undefined);
      assert.equal(hostNow(old, new Date(here)).getTime(), here);
    }
  });

  it('a set named with a day that does not exist is invalid, not a set of another day', () => {
    const manifest = { formatVersion: 1, artifacts: ['db.dump', 'storage.files.jsonl', 'uploads.files.jsonl'].map((name) => ({ name, size: 2, sha256: 'a'.repeat(64) })) };
    const names = ['2024-02-30T00-00-00Z', '2024-13-01T00-00-00Z', '2024-02-29T24-00-00Z', '2024-02-29T23-59-59Z'];
    const listing = parseSetListing(JSON.stringify({ sets: names.map((name) => ({ name, manifest, verify: null, pinned: false, preRestore: false })), partials: [], invalid: [] }));
    assert.deepEqual(listing.sets.map((s) => s.name), ['2024-02-29T23-59-59Z']);
    assert.deepEqual(listing.invalid.map((i) => [i.name, i.reason]), names.slice(0, 3).map((n) => [n, 'name is not a timestamp']));
  });
});
