import { strict as assert } from 'node:assert';
import { LineBatcher, type BatcherTimer } from '../../src/ui/lineBatcher';

class FakeTimer implements BatcherTimer {
  fns = new Map<number, () => void>();
  next = 1;
  set(fn: () => void): unknown {
    const id = this.next++;
    this.fns.set(id, fn);
    return id;
  }
  clear(h: unknown): void {
    this.fns.delete(h as number);
  }
  fire(): void {
    const fns = [...this.fns.values()];
    this.fns.clear();
    fns.forEach((f) => f());
  }
}

describe('LineBatcher (output batching)', () => {
  it('joins lines into one append per interval', () => {
    const out: string[] = [];
    const t = new FakeTimer();
    const b = new LineBatcher((s) => out.push(s), { timer: t });
    b.push(['a', 'b']);
    b.push(['c']);
    assert.deepEqual(out, []);
    assert.equal(t.fns.size, 1, 'one timer for the whole batch');
    t.fire();
    assert.deepEqual(out, ['a\nb\nc\n']);
    t.fire();
    assert.equal(out.length, 1);
  });

  it('flushes at once when a chunk is full and never emits more than maxChunk characters', () => {
    const out: string[] = [];
    const t = new FakeTimer();
    const b = new LineBatcher((s) => out.push(s), { timer: t, maxChunk: 100 });
    for (let i = 0; i < 50; i++) b.push([`line ${String(i).padStart(3, '0')}`]);
    b.flush();
    assert.ok(out.every((c) => c.length <= 100), 'bounded chunks');
    assert.equal(out.join(''), Array.from({ length: 50 }, (_, i) => `line ${String(i).padStart(3, '0')}\n`).join(''));
    assert.ok(out.length >= 4);
  });

  it('splits a single huge line', () => {
    const out: string[] = [];
    const b = new LineBatcher((s) => out.push(s), { timer: new FakeTimer(), maxChunk: 10 });
    b.push(['x'.repeat(25), 'y']);
    b.flush();
    assert.ok(out.every((c) => c.length <= 10));
    assert.equal(out.join(''), 'x'.repeat(25) + '\ny\n');
  });

  it('stays cheap for a 10 MB/s stream: 10 MB of lines in few appends and well under a second', () => {
    let appends = 0;
    let chars = 0;
    const t = new FakeTimer();
    const b = new LineBatcher((s) => {
      appends++;
      chars += s.length;
    }, { timer: t });
    const line = 'x'.repeat(99);
    const batch = Array.from({ length: 1000 }, () => line);
    const start = process.hrtime.bigint();
    for (let i = 0; i < 100; i++) {
      b.push(batch); // 100 000 lines of 100 bytes = 10 MB
      if (i % 10 === 9) t.fire(); // ten timer ticks
    }
    b.flush();
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    assert.equal(chars, 100 * 1000 * 100);
    assert.ok(appends <= 20, `${appends} appends`);
    assert.ok(ms < 1000, `${ms} ms`);
  });
});
