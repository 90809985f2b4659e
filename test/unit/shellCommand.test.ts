import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { buildCommand, quoteArg, UnsafeArgumentError } from '../../src/core/shellCommand';

/** The argv a program receives when `script` runs in a real /bin/sh (printf '%s\0' echoes it). */
function argvSeenBySh(args: string[], cwd?: string): string[] {
  const script = buildCommand(['printf', '%s\\0', ...args]);
  return execFileSync('/bin/sh', ['-c', script], { encoding: 'utf8', cwd }).split('\0').slice(0, -1);
}

const hostile = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }).map((s) => s.replace(/\0/g, '')),
  fc.constantFrom("'", '"', '$(touch CANARY)', '`touch CANARY`', '; touch CANARY', '\ntouch CANARY\n', '--help', '-rf', '$HOME', '\\', "'\\''", '*', '~', '!', '&& touch CANARY', '| touch CANARY', '>CANARY', 'ü€😀', '${IFS}'),
);

describe('shell quoting', () => {
  it('passes every hostile argument through sh unchanged and never executes it', function () {
    this.timeout(120000);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quote-'));
    const canary = path.join(dir, 'CANARY');
    try {
      fc.assert(
        fc.property(fc.array(hostile, { minLength: 1, maxLength: 4 }), (args) => {
          assert.deepEqual(argvSeenBySh(args, dir), args);
          assert.equal(fs.existsSync(canary), false, 'canary file was created');
        }),
        { numRuns: 150 },
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses NUL bytes, which argv cannot carry', () => {
    assert.throws(() => quoteArg('a\0b'), UnsafeArgumentError);
  });

  it('quotes the empty string as an argument of its own', () => {
    assert.deepEqual(argvSeenBySh(['', 'x']), ['', 'x']);
  });

  it('leaves plain words readable', () => {
    assert.equal(buildCommand(['pg_dump', '-Fc', '-f', '/mnt/backups/kadi/db.dump']), 'pg_dump -Fc -f /mnt/backups/kadi/db.dump');
  });

  it('renders pipes, lists and redirections with quoted targets', () => {
    const s = buildCommand({ and: [{ argv: ['mkdir', '-p', 'a b'] }, { pipe: [['echo', 'x y'], { argv: ['cat'], stdoutTo: "it's" }] }] });
    assert.equal(s, "mkdir -p 'a b' && { echo 'x y' | cat > 'it'\\''s'; }");
  });

  it('refuses an empty command', () => {
    assert.throws(() => buildCommand([]), UnsafeArgumentError);
  });
});
