import { strict as assert } from 'node:assert';
import { JobProgress, parseProgressLine } from '../../src/core/jobProgress';

describe('job progress lines', () => {
  it('parses exact and estimated progress lines', () => {
    assert.deepEqual(parseProgressLine('[progress] storage 45% 900/2000 files'), {
      key: 'storage',
      percent: 45,
      done: 900,
      total: 2000,
      unit: 'files',
      estimated: false,
    });
    const est = parseProgressLine('[progress] database ~99% 310000000/~300000000 bytes');
    assert.equal(est?.estimated, true);
    assert.equal(est?.done, 310000000);
  });

  it('ignores lines that only look similar', () => {
    for (const line of [
      'progress storage 45% 900/2000 files',
      '[progress] storage 45% 900/2000',
      '[progress] storage 45% 900/0 files',
      '[progress]  45% 900/2000 files',
      'x [progress] storage 45% 900/2000 files',
      '[progress] storage 45% 900/2000 files trailing',
    ]) {
      assert.equal(parseProgressLine(line), undefined, line);
    }
  });

  it('shows the step, then its percentage and amounts', () => {
    const p = new JobProgress();
    assert.equal(p.feed('[step] database: pg_restore'), 'database: pg_restore');
    assert.equal(p.percent(), undefined);
    assert.equal(p.feed('pg_restore: creating TABLE "public.record"'), undefined);
    assert.equal(p.feed('[progress] database 12% 6/47 entries'), 'database: pg_restore — 12% (6 of 47 entries)');
    assert.equal(p.feed('[progress] database 100% 47/47 entries'), 'database: pg_restore — 100% (47 of 47 entries)');
  });

  it('resets at the next step', () => {
    const p = new JobProgress();
    p.feed('[step] files');
    p.feed('[progress] storage 50% 1/2 files');
    assert.equal(p.feed('[step] manifest'), 'manifest');
    assert.equal(p.percent(), undefined);
  });

  it('combines keys of one unit by their amounts (two trees copied side by side)', () => {
    const p = new JobProgress();
    p.feed('[step] files: copying');
    p.feed('[progress] storage 10% 100/1000 files');
    const msg = p.feed('[progress] uploads 100% 10/10 files');
    // (100 + 10) / (1000 + 10) = 10.8% — not the 55% an average of percentages would claim.
    assert.equal(p.percent(), 10);
    assert.equal(msg, 'files: copying — 10% (storage 10%, uploads 100%)');
  });

  it('never claims 100% on an estimate, and says "about"', () => {
    const p = new JobProgress();
    p.feed('[step] database: pg_dump');
    const msg = p.feed('[progress] database ~99% 2147483648/~1073741824 bytes');
    assert.equal(p.percent(), 99);
    assert.equal(msg, 'database: pg_dump — ~99% (2.0 GiB of ~1.0 GiB)');
  });

  it('averages percentages when units differ', () => {
    const p = new JobProgress();
    p.feed('[step] mixed');
    p.feed('[progress] a 20% 20/100 files');
    p.feed('[progress] b 60% 60/100 bytes');
    assert.equal(p.percent(), 40);
  });
});
