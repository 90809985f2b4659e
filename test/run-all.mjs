// Runs the host agent's Python tests, then the unit and integration suites (compiled to out/ by pretest) in one mocha process so CI
// sees one summary line. Integration tests start real sshd/PostgreSQL/Redis and need root.
// Then the extension-host suite and the UI journeys in a real VS Code (code-server + chromium,
// scripts/vscode-test-codeserver.mjs). Any failure fails the run.
//   --no-vscode   skip the code-server part;  --no-ui   skip only the UI journeys
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const own = new Set(['--no-vscode', '--no-ui']);
const args = process.argv.slice(2);
const mochaArgs = args.filter((a) => !own.has(a));

const suites = ['out/test/unit/**/*.test.js', 'out/test/integration/**/*.test.js'];
const t0 = Date.now();
// The host agent's own Python tests (agent/tests, plain unittest on temporary folders).
const py = spawnSync('python3', ['-m', 'unittest', 'discover', '-s', 'agent/tests', '-p', 'test_*.py', '-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
process.stdout.write(py.stderr);
const pyRan = /^Ran (\d+) tests?/m.exec(py.stderr)?.[1] ?? '0';
let pyStatus = py.status ?? 1;
// Again with the oldest Python the agent supports (3.9) when this machine has one: python3.9 on the
// PATH or a pyenv build. Debian 11 and RHEL 9 hosts run it; a call newer than 3.9 fails here.
const home = process.env.HOME ?? '/root';
const pyenvRoot = process.env.PYENV_ROOT ?? path.join(home, '.pyenv');
const versions = fs.existsSync(path.join(pyenvRoot, 'versions')) ? fs.readdirSync(path.join(pyenvRoot, 'versions')).filter((v) => /^3\.9\.\d+$/.test(v)) : [];
// A candidate counts only if it runs and is 3.9 (a pyenv shim for a version not selected does not).
const is39 = (p) => Boolean(p) && fs.existsSync(p) && spawnSync(p, ['-c', 'import sys; print(sys.version_info[:2] == (3, 9))'], { encoding: 'utf8' }).stdout?.trim() === 'True';
const py39 = [...versions.map((v) => path.join(pyenvRoot, 'versions', v, 'bin', 'python3')), spawnSync('sh', ['-c', 'command -v python3.9'], { encoding: 'utf8' }).stdout.trim()].find(is39);
let py39Summary = 'not run (no Python 3.9 on this machine)';
if (py39) {
  const old = spawnSync(py39, ['-m', 'unittest', 'discover', '-s', 'agent/tests', '-p', 'test_*.py'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const ran = /^Ran (\d+) tests?/m.exec(old.stderr)?.[1] ?? '0';
  if (old.status !== 0) process.stdout.write(`\nThe agent's tests under ${py39}:\n${old.stderr}`);
  py39Summary = `${old.status === 0 ? 'passed' : 'FAILED'} (${ran} tests, ${py39})`;
  if (pyStatus === 0 && old.status !== 0) pyStatus = old.status ?? 1;
}
const r = spawnSync('npx', ['mocha', '--config', '.mocharc.json', ...suites, ...mochaArgs], { stdio: 'inherit' });
const mochaStatus = r.status ?? 1;
const tMocha = (Date.now() - t0) / 1000;

let vscodeStatus = 0;
if (!args.includes('--no-vscode')) {
  const v = spawnSync(process.execPath, ['scripts/vscode-test-codeserver.mjs', ...(args.includes('--no-ui') ? ['--no-ui'] : [])], { stdio: 'inherit' });
  vscodeStatus = v.status ?? 1;
}
const total = (Date.now() - t0) / 1000;
process.stdout.write(
  `\nnpm test: agent (Python) ${py.status === 0 ? 'passed' : 'FAILED'} (${pyRan} tests), agent under Python 3.9 ${py39Summary}, unit+integration ${mochaStatus === 0 ? 'passed' : 'FAILED'} (${tMocha.toFixed(0)} s)` +
    (args.includes('--no-vscode') ? '' : `, extension host + UI ${vscodeStatus === 0 ? 'passed' : 'FAILED'} (${(total - tMocha).toFixed(0)} s)`) +
    `, total ${total.toFixed(0)} s\n`,
);
process.exit(pyStatus !== 0 ? pyStatus : mochaStatus !== 0 ? mochaStatus : vscodeStatus);
