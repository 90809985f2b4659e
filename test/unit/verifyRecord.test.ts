import { strict as assert } from 'node:assert';
import { parseSetListing, verificationSummary, type VerifyRecord } from '../../src/backup/manifest';

const base: VerifyRecord = { level: 'deep', ok: true, problems: [], problemCount: 0, files: 3, bytes: 10, at: '2026-11-26T07:00:00Z' };

describe('the summary of a set\'s last verification', () => {
  it('names where a deep verification restored the dump', () => {
    assert.equal(verificationSummary({ ...base, deep: { mode: 'throwaway-cluster', tablesCompared: 4 } }), 'Last deep verification (throwaway cluster) 2026-11-26T07:00:00Z: OK');
    assert.equal(verificationSummary({ ...base, ok: false, problemCount: 2, deep: { mode: 'scratch-database' } }), 'Last deep verification (scratch database) 2026-11-26T07:00:00Z: 2 problem(s)');
  });

  it('reads records without a mode (older agents) and quick records as before', () => {
    assert.equal(verificationSummary({ ...base, deep: { tablesCompared: 4 } }), 'Last deep verification 2026-11-26T07:00:00Z: OK');
    assert.equal(verificationSummary({ ...base, level: 'quick' }), 'Last quick verification 2026-11-26T07:00:00Z: OK');
    assert.equal(verificationSummary(null), 'Not verified yet');
  });

  it('says when deep verification could not run, and why, without calling the set damaged', () => {
    const rec: VerifyRecord = { ...base, level: 'quick', deep: { notRun: 'no throwaway PostgreSQL cluster (no initdb in /x), and role kadi may not create a scratch database on the production server (CREATEDB)' } };
    assert.equal(
      verificationSummary(rec),
      'Last quick verification 2026-11-26T07:00:00Z: OK; deep verification could not run: no throwaway PostgreSQL cluster (no initdb in /x), and role kadi may not create a scratch database on the production server (CREATEDB)',
    );
    const manifest = { formatVersion: 1, artifacts: ['db.dump', 'db.counts.json', 'storage.files.jsonl', 'uploads.files.jsonl'].map((name) => ({ name, size: 2, sha256: 'a'.repeat(64) })) };
    const listing = parseSetListing(JSON.stringify({ sets: [{ name: '2026-11-26T06-37-07Z', manifest, verify: rec, pinned: false, preRestore: false }], partials: [], invalid: [] }));
    assert.equal(listing.sets[0].status, 'verified');
  });
});
