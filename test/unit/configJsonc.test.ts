import * as assert from 'node:assert/strict';
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
