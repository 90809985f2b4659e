/**
 * What the client executes on the host, and what the agent trusts there: an agent file that is not
 * ours, a backup directory others may write, a job directory that is a symbolic link - each refused,
 * saying why, before anything runs.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { agentPath, runAgent, UntrustedAgentError } from '../../src/remote/agent';
import { jobStatus, listJobs } from '../../src/remote/jobs';
import type { SandboxHost } from '../sandbox/sandbox';
import { getSandbox, newPool, profileOf } from './fixture';

describe('what is trusted on the host', function () {
  this.timeout(120000);
  let sb: SandboxHost;

  before(async () => {
    sb = await getSandbox();
  });

  async function withFreshHost<T>(f: (host: Awaited<ReturnType<ReturnType<typeof newPool>['get']>>) => Promise<T>): Promise<T> {
    const pool = newPool();
    try {
      return await f(await pool.get(profileOf(sb, 'direct')));
    } finally {
      pool.closeAll();
    }
  }

  it('an installed agent that is not the one Kadi Ops ships is never run', async () => {
    await withFreshHost((h) => runAgent(h, 'lock-status', [sb.backupDir]));
    const file = agentPath(sb.backupDir);
    const genuine = fs.readFileSync(file);
    const canary = path.join(sb.root, 'foreign-agent-ran');
    // Same name, other content: e.g. planted by whoever could write there.
    fs.writeFileSync(file, `import os\nopen(${JSON.stringify(canary)}, "w").close()\n`);
    try {
      await withFreshHost(async (h) => {
        await assert.rejects(runAgent(h, 'lock-status', [sb.backupDir]), (e: unknown) => e instanceof UntrustedAgentError && /is not the one Kadi Ops ships \(sha256 [0-9a-f]{64}, expected [0-9a-f]{64}\); refusing to run it/.test(e.message));
      });
      assert.equal(fs.existsSync(canary), false, 'the foreign file never ran');
      // `status` says so as a security alert of its own, not as a host that is down.
      const cli = path.resolve(__dirname, '..', '..', '..', 'dist', 'cli.js');
      const config = sb.writeConfigFile(path.join(sb.root, 'trust-hosts.json'));
      const st = spawnSync(process.execPath, [cli, 'status', 'sandbox', '--config', config, '--json'], { encoding: 'utf8', timeout: 60000 });
      assert.equal(st.status, 1, st.stderr);
      const [row] = JSON.parse(st.stdout) as { verdict: string; why: string }[];
      assert.equal(row.verdict, 'untrusted', st.stdout);
      assert.match(row.why, /is not the one Kadi Ops ships/);
      assert.equal(fs.existsSync(canary), false);
    } finally {
      fs.writeFileSync(file, genuine);
    }
  });

  it('a backup directory its group may write is refused before the agent runs, naming the fix', async () => {
    const mode = fs.statSync(sb.backupDir).mode & 0o7777;
    fs.chmodSync(sb.backupDir, 0o770);
    try {
      await withFreshHost(async (h) => {
        await assert.rejects(runAgent(h, 'lock-status', [sb.backupDir]), (e: unknown) => e instanceof UntrustedAgentError && e.message.includes(`${sb.backupDir} is writable by its group (mode 770)`) && e.message.includes(`chmod go-w '${sb.backupDir}'`));
      });
    } finally {
      fs.chmodSync(sb.backupDir, mode);
    }
    await withFreshHost((h) => runAgent(h, 'lock-status', [sb.backupDir]));
  });

  it('a job directory that is a symbolic link is refused and never listed as a job', async () => {
    const fake = fs.mkdtempSync(path.join(sb.root, 'fake-job-'));
    fs.writeFileSync(path.join(fake, 'meta'), 'id=x\nkind=backup\noperator=mallory\nclient=x\nstarted=2026-11-30T00:00:00Z\ncommand=backup\n');
    fs.writeFileSync(path.join(fake, 'status'), '0\n');
    spawnSync('chown', ['-R', `${sb.kadiUser}:`, fake]);
    const id = '20261130T000000Z-link01';
    const link = path.join(sb.backupDir, '.kadi-ops', 'jobs', id);
    if (!fs.existsSync(path.dirname(link))) {
      fs.mkdirSync(path.dirname(link), { mode: 0o700 });
      spawnSync('chown', [`${sb.kadiUser}:`, path.dirname(link)]);
    }
    fs.symlinkSync(fake, link);
    try {
      await withFreshHost(async (h) => {
        await assert.rejects(jobStatus(h, id), /is a symbolic link; the agent keeps its state only in a real directory of its own/);
        assert.equal((await listJobs(h)).some((j) => j.id === id), false);
      });
    } finally {
      fs.rmSync(link);
      fs.rmSync(fake, { recursive: true, force: true });
    }
  });
});
