// Bundles the extension and the headless CLI. `vscode` is provided by the host; ssh2's optional
// native parts (cpu-features, sshcrypto.node) are left out so the pure-JS path is always used.
import * as esbuild from 'esbuild';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');

const common = {
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'cjs',
  sourcemap: !production,
  minify: production,
  legalComments: 'none',
  logLevel: 'info',
  external: ['vscode', 'cpu-features', '*.node'],
};

const builds = [
  { ...common, entryPoints: ['src/extension.ts'], outfile: 'dist/extension.js' },
  { ...common, entryPoints: ['src/cli/main.ts'], outfile: 'dist/cli.js', banner: { js: '#!/usr/bin/env node' } },
];

// The host agent, a Python package (agent/), ships beside the bundles as one reproducible zipapp.
fs.mkdirSync('dist', { recursive: true });
fs.rmSync('dist/kadi-ops-agent.sh', { force: true });
execFileSync('python3', ['agent/build.py', 'dist/kadi-ops-agent.pyz'], { stdio: 'inherit' });

if (watch) {
  for (const b of builds) (await esbuild.context(b)).watch();
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
