import { strict as assert } from 'node:assert';
import { LineSplitter, MAX_LINE, MemorySink, quietSink } from '../../src/core/sink';

function split(chunks: (string | Buffer)[], maxLine?: number): string[] {
  const out: string[] = [];
  const s = new LineSplitter((lines) => out.push(...lines), maxLine);
  for (const c of chunks) s.push(typeof c === 'string' ? Buffer.from(c) : c);
  s.end();
  return out;
}

describe('splitting a byte stream into lines', () => {
  it('joins lines across chunks, keeps a multi-byte character split between two, drops CR of CRLF', () => {
    const u = Buffer.from('größe ü\n');
    assert.deepEqual(split(['a', 'b\nc', 'd\r\n\n', u.subarray(0, 3), u.subarray(3), 'tail']), ['ab', 'cd', '', 'größe ü', 'tail']);
  });

  it('keeps a huge line bounded, saying exactly how much was left out, and goes on with the next lines', () => {
    const chunk = 'x'.repeat(64 * 1024);
    const chunks = [...Array.from({ length: 80 }, () => chunk), 'y\nnext\n'];
    const lines = split(chunks);
    assert.equal(lines.length, 2);
    const total = 80 * chunk.length + 1;
    assert.equal(lines[0].slice(0, MAX_LINE), 'x'.repeat(MAX_LINE));
    assert.equal(lines[0].slice(MAX_LINE), ` [kadi-ops: line cut, ${total - MAX_LINE} more characters not kept]`);
    assert.equal(lines[1], 'next');
  });

  it('bounds a long line inside one chunk too', () => {
    assert.deepEqual(split(['ab\n0123456789\ncd'], 4), ['ab', '0123 [kadi-ops: line cut, 6 more characters not kept]', 'cd']);
  });
});

describe('quiet output: the job\'s [detail] lines only on request', () => {
  it('drops detail lines from stdout unless verbose; other streams and lines pass unchanged', () => {
    const seen = new MemorySink();
    const quiet = quietSink(seen, false);
    quiet.lines('stdout', ['[step] database: restoring', '[detail] pg_restore: creating TABLE "public.record"', '[progress] database 50% 1/2 entries']);
    quiet.lines('stdout', ['[detail] only chatter']);
    quiet.lines('warn', ['[detail] a warning line is never hidden']);
    assert.deepEqual(seen.entries, [
      { stream: 'stdout', line: '[step] database: restoring' },
      { stream: 'stdout', line: '[progress] database 50% 1/2 entries' },
      { stream: 'warn', line: '[detail] a warning line is never hidden' },
    ]);
    const all = new MemorySink();
    quietSink(all, true).lines('stdout', ['[detail] x']);
    assert.deepEqual(all.entries, [{ stream: 'stdout', line: '[detail] x' }]);
  });
});
