/**
 * A small JSON-with-comments parser (the dialect of VS Code's settings.json, so an entry copied from
 * there works in a --config file). Written by hand because JSON.parse in Node 20 often reports no
 * position at all, and a config error without a line and column is a guessing game.
 */

export class JsoncSyntaxError extends Error {
  constructor(message: string, readonly line: number, readonly column: number) {
    super(`${message} at line ${line}, column ${column}`);
    this.name = 'JsoncSyntaxError';
  }
}

export function parseJsonc(text: string): unknown {
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // a BOM is not an error

  const fail = (message: string, at = i): never => {
    const before = text.slice(0, at).split('\n');
    throw new JsoncSyntaxError(message, before.length, before[before.length - 1].length + 1);
  };
  const describe = (): string => (i >= text.length ? 'end of file' : JSON.stringify(text[i]));

  const skip = (): void => {
    for (;;) {
      while (i < text.length && /\s/.test(text[i])) i++;
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
