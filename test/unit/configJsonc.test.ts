import * as assert from 'node:assert/strict';
import fc from 'fast-check';
import { JsoncSyntaxError, parseJsonc } from '../../src/config/jsonc';

function errorAt(text: string): string {
  try {
    parseJsonc(text);
  } catch (e) {
    assert.ok(e instanceof JsoncSyntaxError);
    return e.message;
  }
  return assert.fail('expected a syntax error');
}

describe('JSON with comments for --config files', () => {
  it('parses what JSON.parse parses, to the same value', () => {
    const text = '{"a":[1,-2.5e3,true,false,null,"x\\n\\u00e9\\""],"b":{"c":{}},"d":[]}';
    assert.deepEqual(parseJsonc(text), JSON.parse(text));
  });

  it('allows comments, trailing commas and a byte order mark, like settings.json', () => {
    assert.deepEqual(parseJsonc('\ufeff// top\n{ /* a */ "a": [1, 2,], // b\n "b": 3, }'), { a: [1, 2], b: 3 });
  });

  it('keeps a "__proto__" key as data instead of changing the prototype', () => {
    const v = parseJsonc('{"__proto__": {"polluted": true}}') as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(v), Object.prototype);
    assert.deepEqual(Object.keys(v), ['__proto__']);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  it('reports line and column of the first problem', () => {
    assert.equal(errorAt('{\n  "a": 1,\n  "b" 2\n}'), 'Expected ":" after property name "b" but found "2" at line 3, column 7');
    assert.equal(errorAt('{\n  "a": "unterminated\n}'), 'Control character or line break inside a string (close the string with ") at line 2, column 21');
    assert.equal(errorAt("{ 'a': 1 }"), 'Expected a property name in double quotes or "}" but found "\'" at line 1, column 3');
    assert.equal(errorAt('[1, 2'), 'Expected "," or "]" after a list item but found end of file at line 1, column 6');
    assert.equal(errorAt('{} {}'), 'Unexpected "{" after the end of the JSON value at line 1, column 4');
    assert.equal(errorAt('[tru]'), 'Expected a value but found "t" at line 1, column 2');
    assert.equal(errorAt('/* open'), 'Unterminated /* comment at line 1, column 1');
    assert.equal(errorAt(''), 'Expected a value but found end of file at line 1, column 1');
  });
});

describe('JSON with comments: generated documents', () => {
  /** JSON text of `v` with comments and whitespace between tokens and a trailing comma after some lists, as settings.json allows. */
  function decorated(v: unknown, pick: (n: number) => number): string {
    const gap = (): string => ['', ' ', '\n  ', '\t', ' // note\n', '/* c */', '\r\n'][pick(7)];
    const write = (x: unknown): string => {
      if (Array.isArray(x)) return `[${x.map((e) => gap() + write(e) + gap()).join(',')}${x.length > 0 && pick(2) === 1 ? ',' + gap() : ''}]`;
      if (x !== null && typeof x === 'object') {
        const entries = Object.entries(x).map(([k, e]) => `${gap()}${JSON.stringify(k)}${gap()}:${gap()}${write(e)}${gap()}`);
        return `{${entries.join(',')}${entries.length > 0 && pick(2) === 1 ? ',' + gap() : ''}}`;
      }
      return JSON.stringify(x);
    };
    return gap() + write(v) + gap();
  }

  it('reads any JSON document as JSON.parse does, also with comments, odd spacing and trailing commas', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.gen(), (v, g) => {
        const text = JSON.stringify(v);
        assert.deepEqual(parseJsonc(text), JSON.parse(text));
        assert.deepEqual(parseJsonc(decorated(v, (n) => g(fc.nat, { max: n - 1 }))), JSON.parse(text));
      }),
      { numRuns: 300 },
    );
  });

  it('accepts a damaged document exactly when JSON.parse does (but for trailing commas), else names a line and column inside it', () => {
    const damaged = fc
      .tuple(fc.jsonValue({ maxDepth: 3 }), fc.nat(), fc.constantFrom('delete', 'insert', 'replace'), fc.constantFrom(...'{}[]:,"\\0123456789-+.eEtrufalsn \t\n\u00a0'))
      .filter(([v]) => !/,[ \t\n\r]*[\]}]/.test(JSON.stringify(v)))
      .map(([v, at, how, ch]) => {
        const t = JSON.stringify(v);
        const k = at % (t.length + 1);
        return how === 'delete' ? t.slice(0, k) + t.slice(k + 1) : how === 'insert' ? t.slice(0, k) + ch + t.slice(k) : t.slice(0, k) + ch + t.slice(k + 1);
      });
    fc.assert(
      fc.property(damaged, (text) => {
        let expected: { value: unknown } | undefined;
        try {
          expected = { value: JSON.parse(text) };
        } catch {
          // A trailing comma (after a value) is the dialect's one addition to JSON.
          try {
            expected = { value: JSON.parse(text.replace(/([\]}"0-9el][ \t\n\r]*),(?=[ \t\n\r]*[\]}])/g, '$1')) };
          } catch {
            expected = undefined;
          }
        }
        let actual: { value: unknown } | undefined;
        try {
          actual = { value: parseJsonc(text) };
        } catch (e) {
          assert.ok(e instanceof JsoncSyntaxError, String(e));
          const lines = text.split('\n');
          assert.ok(e.line >= 1 && e.line <= lines.length, `${e.message} in ${JSON.stringify(text)}`);
          assert.ok(e.column >= 1 && e.column <= lines[e.line - 1].length + 1, `${e.message} in ${JSON.stringify(text)}`);
        }
        assert.deepEqual(actual, expected, JSON.stringify(text));
      }),
      { numRuns: 3000 },
    );
  });

  it('takes only JSON\'s whitespace between tokens, naming an invisible one', () => {
    assert.equal(errorAt('{\u00a0"a": 1}'), 'Expected a property name in double quotes or "}" but found U+00A0 (a space JSON does not allow) at line 1, column 2');
    assert.equal(errorAt('[1,\u2028 2]'), 'Expected a value but found U+2028 (a space JSON does not allow) at line 1, column 4');
    assert.equal(errorAt('\u000b[]'), 'Expected a value but found U+000B (a space JSON does not allow) at line 1, column 1');
    assert.deepEqual(parseJsonc(' \t\r\n[ 1 ]\r\n'), [1]);
  });
});
