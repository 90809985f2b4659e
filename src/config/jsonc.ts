/**
 * A small JSON-with-comments parser (the dialect of VS Code's settings.json, so an entry copied from
 * there works in a --config file). Written by hand because JSON.parse in Node 20 often reports no
 * position at all, and a config error without a line and column is a guessing game.
 *
 * Kept rather than Microsoft's jsonc-parser (what VS Code uses; compared on this file's tests in
 * issue 16): that one reports a byte order mark as an invalid symbol (VS Code strips it first), lets
 * a "__proto__" key replace the result's prototype, and gives error codes and offsets to be worded
 * here anyway. It is stricter in one way, adopted here: only JSON's four whitespace characters
 * separate tokens, so a non-breaking space pasted from a web page is an error, not invisible.
 */

export class JsoncSyntaxError extends Error {
  constructor(message: string, readonly line: number, readonly column: number) {
    super(`${message} at line ${line}, column ${column}`);
    this.name = 'JsoncSyntaxError';
  }
}

/** JSON's whitespace: space, tab, line feed, carriage return (not U+00A0, U+2028, \v, \f…). */
const WHITESPACE = /^[ \t\n\r]$/;

export function parseJsonc(text: string): unknown {
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // a BOM is not an error

  const fail = (message: string, at = i): never => {
    const before = text.slice(0, at).split('\n');
    throw new JsoncSyntaxError(message, before.length, before[before.length - 1].length + 1);
  };
  const describe = (): string => {
    if (i >= text.length) return 'end of file';
    const ch = text[i];
    if (/\s/.test(ch) && !WHITESPACE.test(ch)) return `U+${ch.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')} (a space JSON does not allow)`;
    return JSON.stringify(ch);
  };

  const skip = (): void => {
    for (;;) {
      while (i < text.length && WHITESPACE.test(text[i])) i++;
      if (text.startsWith('//', i)) {
        const nl = text.indexOf('\n', i);
        i = nl < 0 ? text.length : nl;
      } else if (text.startsWith('/*', i)) {
        const end = text.indexOf('*/', i + 2);
        if (end < 0) fail('Unterminated /* comment');
        i = end + 2;
      } else return;
    }
  };

  const string = (): string => {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') i++;
      else if (text.charCodeAt(i) < 0x20) fail('Control character or line break inside a string (close the string with ")', i);
      i++;
    }
    if (i >= text.length) fail('Unterminated string', start);
    i++;
    try {
      return JSON.parse(text.slice(start, i)) as string;
    } catch {
      return fail('Invalid escape sequence in string', start);
    }
  };

  const value = (): unknown => {
    skip();
    const ch = text[i];
    if (ch === '{') return object();
    if (ch === '[') return array();
    if (ch === '"') return string();
    const lit = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(i, i + 400));
    if (lit && !/[\w.]/.test(text[i + lit[0].length] ?? '')) {
      i += lit[0].length;
      return JSON.parse(lit[0]) as unknown;
    }
    if (ch === "'") return fail('Strings must use double quotes');
    return fail(`Expected a value but found ${describe()}`);
  };

  const object = (): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    i++;
    for (;;) {
      skip();
      if (text[i] === '}') {
        i++;
        return out;
      }
      if (text[i] !== '"') fail(`Expected a property name in double quotes or "}" but found ${describe()}`);
      const key = string();
      skip();
      if (text[i] !== ':') fail(`Expected ":" after property name ${JSON.stringify(key)} but found ${describe()}`);
      i++;
      // defineProperty: a "__proto__" key must become data, not the object's prototype.
      Object.defineProperty(out, key, { value: value(), enumerable: true, writable: true, configurable: true });
      skip();
      if (text[i] === ',') i++;
      else if (text[i] !== '}') fail(`Expected "," or "}" after a property value but found ${describe()}`);
    }
  };

  const array = (): unknown[] => {
    const out: unknown[] = [];
    i++;
    for (;;) {
      skip();
      if (text[i] === ']') {
        i++;
        return out;
      }
      out.push(value());
      skip();
      if (text[i] === ',') i++;
      else if (text[i] !== ']') fail(`Expected "," or "]" after a list item but found ${describe()}`);
    }
  };

  const result = value();
  skip();
  if (i < text.length) fail(`Unexpected ${describe()} after the end of the JSON value`);
  return result;
}
