import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { agentInstallCommand, agentLinkPath, agentPath, agentPyz, checkInstalledAgent, UntrustedAgentError } from '../../src/remote/agent';
import { buildCommand } from '../../src/core/shellCommand';

/** ensureAgent's command, run by a real /bin/sh as the host runs it, the agent on stdin (a file: a command that finds it installed reads none). */
function install(backupDir: string): string {
  const pyz = path.join(backupDir, '..', `${path.basename(backupDir)}.pyz`);
  fs.writeFileSync(pyz, agentPyz());
  const fd = fs.openSync(pyz, 'r');
  try {
    return execFileSync('/bin/sh', ['-c', buildCommand(agentInstallCommand(backupDir, 'abc123'))], { stdio: [fd, 'pipe', 'pipe'], encoding: 'utf8' });
  } finally {
    fs.closeSync(fd);
    fs.rmSync(pyz);
  }
}

describe('the agent on the host and its stable name', function () {
  this.timeout(60000);
  const me = os.userInfo().username;
  let bd: string;

  beforeEach(() => {
    bd = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-install-'));
  });
  afterEach(() => {
    fs.rmSync(bd, { recursive: true, force: true });
  });

  it('installs the content-hash file and points kadi-ops-agent.pyz at it, switching a link an older build left, with quoted argv only', () => {
    const link = agentLinkPath(bd);
    assert.equal(link, path.posix.join(bd, '.kadi-ops', 'agent', 'kadi-ops-agent.pyz'));
    const script = buildCommand(agentInstallCommand(bd, 'abc123'));
    assert.match(script, / && ln -s kadi-ops-agent-[0-9a-f]{16}\.pyz \S+\/kadi-ops-agent\.pyz\.tmp-abc123 && mv -T \S+\/kadi-ops-agent\.pyz\.tmp-abc123 \S+\/kadi-ops-agent\.pyz && /);
    const first = install(bd);
    checkInstalledAgent(first, agentPath(bd), me);
    assert.equal(fs.readlinkSync(link), path.basename(agentPath(bd)), 'relative, in the same directory');
    // An older Kadi Ops left its own build and pointed the link there: the next connection switches it.
    const older = path.join(path.dirname(link), 'kadi-ops-agent-0000000000000000.pyz');
    fs.writeFileSync(older, 'older build', { mode: 0o644 });
    fs.rmSync(link);
    fs.symlinkSync(path.basename(older), link);
    checkInstalledAgent(install(bd), agentPath(bd), me);
    assert.equal(fs.readlinkSync(link), path.basename(agentPath(bd)));
    assert.deepEqual(fs.readdirSync(path.dirname(link)).filter((n) => n.includes('.tmp-')), [], 'no temporary link left');
    assert.equal(fs.readFileSync(link).equals(agentPyz()), true);
  });

  it('refuses a link that points elsewhere, is no link, or belongs to someone else', () => {
    const good = install(bd);
    const lines = good.split('\n');
    const edit = (i: number, line: string): string => lines.map((l, j) => (j === i ? line : l)).join('\n');
    const linkLine = lines.findIndex((l) => l.endsWith('|symbolic link|' + agentLinkPath(bd)));
    assert.ok(linkLine > 0, good);
    assert.throws(() => checkInstalledAgent(edit(1, '/tmp/evil.pyz'), agentPath(bd), me), (e: unknown) => e instanceof UntrustedAgentError && /kadi-ops-agent\.pyz points to \/tmp\/evil\.pyz, not to kadi-ops-agent-[0-9a-f]{16}\.pyz; refusing/.test(e.message));
    assert.throws(() => checkInstalledAgent(edit(linkLine, `${me}|644|regular file|${agentLinkPath(bd)}`), agentPath(bd), me), /is a regular file, not a symbolic link/);
    assert.throws(() => checkInstalledAgent(edit(linkLine, `mallory|777|symbolic link|${agentLinkPath(bd)}`), agentPath(bd), me), /belongs to mallory, not to/);
    // A link's own mode (always 777) is not a writable file: its directory is what is checked.
    checkInstalledAgent(edit(linkLine, `root|777|symbolic link|${agentLinkPath(bd)}`), agentPath(bd), me);
    assert.throws(() => checkInstalledAgent(lines.filter((_, j) => j !== linkLine).join('\n'), agentPath(bd), me), /Could not check the owners and modes/);
  });
});
