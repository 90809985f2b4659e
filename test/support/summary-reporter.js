// Mocha's spec reporter, then a short list of the failures and one closing line in the plain
// "N passed, N failed" form that CI reads. CI keeps only the end of a run's output, and a failed
// job test carries the job's whole log in its message: the list at the very end names every
// failure, and messages are cut to their head and tail (the full text goes to a file).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { inspect } = require('node:util');
const Mocha = require('mocha');
const { Spec } = Mocha.reporters;
const { EVENT_RUN_END, EVENT_TEST_FAIL } = Mocha.Runner.constants;

const KEEP_HEAD = 15;
const KEEP_TAIL = 40;
const FULL_LOG = path.resolve('test-results', 'mocha-failures.log');

/** One line: what differed (for assertions carrying a log as their message) and where. */
function gist(err) {
  if (!err) return 'no error object';
  const where = (String(err.stack || '').match(/\((\S*test\/\S+:\d+:\d+)\)/) || [])[1];
  const short = (v) => inspect(v, { breakLength: Infinity, depth: 2 }).slice(0, 120);
  const what = 'actual' in err && 'expected' in err && err.generatedMessage === false
    ? `${err.name}: ${short(err.actual)} ${err.operator || 'vs'} ${short(err.expected)}`
    : `${err.name || 'Error'}: ${String(err.message).split('\n').find((l) => l.trim()) || ''}`;
  return `${what.slice(0, 300)}${where ? ` (${where})` : ''}`;
}

function cut(text) {
  const lines = String(text).split('\n');
  if (lines.length <= KEEP_HEAD + KEEP_TAIL + 5) return text;
  return [...lines.slice(0, KEEP_HEAD), `[… ${lines.length - KEEP_HEAD - KEEP_TAIL} lines cut; whole message in ${FULL_LOG} …]`, ...lines.slice(-KEEP_TAIL)].join('\n');
}

class SummaryReporter extends Spec {
  constructor(runner, options) {
    const failed = [];
    fs.rmSync(FULL_LOG, { force: true });
    // Registered before Spec's own listeners so the epilogue prints the cut message.
    runner.on(EVENT_TEST_FAIL, (test, err) => {
      const title = test.fullTitle();
      const message = err && err.message !== undefined ? String(err.message) : String(err);
      failed.push({ title, first: gist(err) });
      try {
        fs.mkdirSync(path.dirname(FULL_LOG), { recursive: true });
        fs.appendFileSync(FULL_LOG, `=== ${title}\n${message}\n${(err && err.stack) || ''}\n\n`);
      } catch {
        // the full log is a convenience; the console keeps the cut message
      }
      if (err && typeof err.message === 'string' && cut(err.message) !== err.message) {
        // Mocha prints the stack, which repeats the message: cut both.
        const frames = String(err.stack || '').split('\n').filter((l) => /^\s+at /.test(l));
        err.message = cut(err.message);
        err.stack = [`${err.name || 'Error'}: ${err.message}`, ...frames].join('\n');
      }
    });
    super(runner, options);
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats || { passes: 0, failures: 0, pending: 0 };
      if (failed.length) {
        process.stdout.write(`\nfailed (${failed.length}):\n`);
        for (const f of failed) process.stdout.write(`  ✗ ${f.title}\n      ${f.first}\n`);
      }
      process.stdout.write(`mocha: ${s.passes} passed, ${s.failures} failed, ${s.pending} skipped\n`);
    });
  }
}
module.exports = SummaryReporter;
