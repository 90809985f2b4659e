// Runs the unit and integration suites (compiled to out/ by pretest) in one mocha process so CI
// sees one summary line. Integration tests start real sshd/PostgreSQL/Redis and need root.
import { spawnSync } from 'node:child_process';

const suites = ['out/test/unit/**/*.test.js', 'out/test/integration/**/*.test.js'];
const r = spawnSync('npx', ['mocha', '--config', '.mocharc.json', ...suites, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? 1);
