import { strict as assert } from 'node:assert';
import { LineSplitter, MAX_LINE } from '../../src/core/sink';

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
