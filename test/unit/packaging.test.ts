/** The .vsix holds every file the manifest points at, and nothing the extension does not need. */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');

/** Every string value in contributes that names a file of the package (./x or media/x...). */
function referencedFiles(node: unknown, out: Set<string>): Set<string> {
  if (typeof node === 'string') {
    const p = node.replace(/^\.\//, '');
    if (/^(media|syntaxes|dist)\//.test(p)) out.add(p);
  } else if (Array.isArray(node)) node.forEach((n) => referencedFiles(n, out));
  else if (node && typeof node === 'object') Object.values(node).forEach((n) => referencedFiles(n, out));
  return out;
}

describe('packaging', function () {
  this.timeout(60000);
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { main: string; icon: string; contributes: unknown };
  const listed = new Set(
    execFileSync(path.join(ROOT, 'node_modules', '.bin', 'vsce'), ['ls', '--no-dependencies'], { cwd: ROOT, encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((l) => l.trim()),
  );

  it('includes every file the manifest references', () => {
    const refs = referencedFiles(pkg.contributes, new Set([pkg.main.replace(/^\.\//, ''), pkg.icon, 'dist/cli.js', 'dist/kadi-ops-agent.pyz']));
    for (const walk of JSON.stringify(pkg.contributes).matchAll(/"markdown":"([^"]+)"/g)) refs.add(walk[1]);
    assert.ok(refs.size >= 6, [...refs].join(' '));
    for (const f of refs) {
      assert.ok(fs.existsSync(path.join(ROOT, f)), `${f} exists`);
      assert.ok(listed.has(f), `${f} is packaged`);
    }
  });

  it('leaves out sources, tests, screenshots and source maps', () => {
    for (const f of listed) assert.doesNotMatch(f, /^(src|test|out|bench|scripts|agent|node_modules|media\/screenshots)\/|\.map$|\.ts$/, f);
  });
});
