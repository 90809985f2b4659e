// Runs the host agent's Python tests, then the unit and integration suites (compiled to out/ by pretest) in one mocha process so CI
// sees one summary line. Integration tests start real sshd/PostgreSQL/Redis and need root.
// Then the extension-host suite and the UI journeys in a real VS Code (code-server + chromium,
// scripts/vscode-test-codeserver.mjs). Any failure fails the run.
//   --no-vscode   skip the code-server part;  --no-ui   skip only the UI journeys
import { spawnSync } from 'node:child_process';

const own = new Set(['--no-vscode', '--no-ui']);
const args = process.argv.slice(2);
const mochaArgs = args.filter((a) => !own.has(a));

const suites = ['out/test/unit/**/*.test.js', 'out/test/integration/**/*.test.js'];
const t0 = Date.now();
// The host agent's own Python tests (agent/tests, plain unittest on temporary folders).
const py = spawnSync('python3', ['-m', 'unittest', 'discover', '-s', 'agent/tests', '-p', 'test_*.py', '-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
process.stdout.write(py.stderr);
const pyRan = /^Ran (\d+) tests?/m.exec(py.stderr)?.[1] ?? '0';
const pyStatus = py.status ?? 1;
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
  `\nnpm test: agent (Python) ${pyStatus === 0 ? 'passed' : 'FAILED'} (${pyRan} tests), unit+integration ${mochaStatus === 0 ? 'passed' : 'FAILED'} (${tMocha.toFixed(0)} s)` +
    (args.includes('--no-vscode') ? '' : `, extension host + UI ${vscodeStatus === 0 ? 'passed' : 'FAILED'} (${(total - tMocha).toFixed(0)} s)`) +
    `, total ${total.toFixed(0)} s\n`,
);
process.exit(pyStatus !== 0 ? pyStatus : mochaStatus !== 0 ? mochaStatus : vscodeStatus);
