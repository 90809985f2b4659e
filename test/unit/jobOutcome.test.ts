import { strict as assert } from 'node:assert';
import { describeOutcome, warningLines } from '../../src/remote/jobs';

describe('job outcomes for a person', () => {
  it('says how a job ended, its exit status only when it failed', () => {
    assert.equal(describeOutcome({ id: 'j', result: 'succeeded', exitCode: 0, offset: 0 }), 'succeeded');
    assert.equal(describeOutcome({ id: 'j', result: 'failed', exitCode: 3, offset: 0 }), 'failed (exit status 3)');
    assert.equal(describeOutcome({ id: 'j', result: 'cancelled', offset: 0 }), 'cancelled');
    assert.equal(describeOutcome({ id: 'j', result: 'died', offset: 0 }), 'died');
  });

  it('counts warnings, also those beyond the ones it carries', () => {
    assert.equal(describeOutcome({ id: 'j', result: 'succeeded', exitCode: 0, offset: 0, warnings: ['a'] }), 'succeeded with 1 warning');
    assert.equal(describeOutcome({ id: 'j', result: 'succeeded', exitCode: 0, offset: 0, warnings: ['a', 'b'] }), 'succeeded with 2 warnings');
    const many = Array.from({ length: 50 }, (_, i) => `w${i}`);
    assert.equal(describeOutcome({ id: 'j', result: 'succeeded', exitCode: 0, offset: 0, warnings: many }), 'succeeded with 50 warnings');
    assert.equal(describeOutcome({ id: 'j', result: 'failed', exitCode: 1, offset: 0, warnings: many, moreWarnings: 3 }), 'failed with 53 warnings (exit status 1)');
  });

  it('lists the warnings it carries, one indented line each, and says how many more the output has', () => {
    assert.deepEqual(warningLines({ id: 'j', result: 'succeeded', offset: 0 }), []);
    assert.deepEqual(warningLines({ id: 'j', result: 'succeeded', offset: 0, warnings: ['a', 'b'], moreWarnings: 4 }), ['  warning: a', '  warning: b', '  … and 4 more warnings in the output above']);
  });
});
