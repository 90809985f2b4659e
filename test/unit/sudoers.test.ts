import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { resolveProfiles } from '../../src/config/hostProfiles';
import { createHash } from 'node:crypto';
import { scheduleUnitBase, SudoersError, sudoersSnippet } from '../../src/config/sudoers';

const profileOf = (input: Record<string, unknown>) => {
  const r = resolveProfiles([{ name: 'prod', ssh: { host: 'kadi.example.org' }, ...input }], { sshConfigText: '' });
  if (r.errors.length) throw new Error(JSON.stringify(r.errors));
  return r.profiles[0];
};

describe('the sudoers snippet of a host profile', () => {
  it('pins every privileged command with all its arguments, and nothing else', () => {
    const s = sudoersSnippet(profileOf({ services: ['kadi-uwsgi', 'apache2'], redis: { enabled: true, dumpPath: '/var/lib/redis/dump.rdb', service: 'redis-server' } }));
    const rules = s.split('\n').filter((l) => l && !l.startsWith('#'));
    assert.deepEqual(rules, [
      'kadi ALL=(root) NOPASSWD: /usr/bin/systemctl stop kadi-uwsgi, /usr/bin/systemctl start kadi-uwsgi, /usr/bin/systemctl stop apache2, /usr/bin/systemctl start apache2, /usr/bin/systemctl stop redis-server, /usr/bin/systemctl start redis-server',
      'kadi ALL=(redis) NOPASSWD: /usr/bin/cat /var/lib/redis/dump.rdb, /usr/bin/tee /var/lib/redis/dump.rdb, /usr/bin/chmod 660 /var/lib/redis/dump.rdb',
    ]);
    assert.doesNotMatch(s, /\*|ALL\s*$|install|cp /m);
  });

  it('escapes what sudoers treats specially and refuses what it cannot pin', () => {
    const s = sudoersSnippet(profileOf({ services: ['kadi@a:b'], redis: { enabled: false } }));
    assert.match(s, /\/usr\/bin\/systemctl stop kadi@a\\:b, /);
    assert.throws(() => sudoersSnippet(profileOf({ services: [], redis: { enabled: true, dumpPath: '/var/lib/my redis/dump.rdb' } })), SudoersError);
    assert.match(sudoersSnippet(profileOf({ services: [], redis: { enabled: false } })), /# Nothing: prod lists no services/);
  });

  it("a schedule adds no rule: its system units are root's to install (a unit file the Kadi user could write would run anything as root)", () => {
    const plain = sudoersSnippet(profileOf({ services: ['kadi-uwsgi'], redis: { enabled: false } }));
    for (const unit of ['system', 'user']) {
      assert.equal(sudoersSnippet(profileOf({ services: ['kadi-uwsgi'], redis: { enabled: false }, schedule: { calendar: 'daily', unit } })), plain);
    }
    assert.doesNotMatch(plain, /systemd\/system|daemon-reload|enable|tee \/etc/);
  });

  it("the agent names a schedule's units as the client does, whatever the profile's name", () => {
    const agentBase = (name: string, dir: string): string =>
      spawnSync('python3', ['-c', 'import sys; sys.path.insert(0, sys.argv[1]); from kadi_ops_agent import schedule; print(schedule.base_name({"host": {"name": sys.argv[2], "backupDir": sys.argv[3]}}))', path.resolve(__dirname, '../../../agent'), name, dir], { encoding: 'utf8' }).stdout.trim();
    const cases: [string, string][] = [['prod', '/mnt/backups/kadi'], ['Kadi Ünï prod/2', '/srv/b'], ['--edge--', '/b c'], ['x'.repeat(64), '/srv/long'], ['a.b_c-d', '/srv/ü'], ['日本', '/srv/x']];
    for (const [name, dir] of cases) {
      const p = profileOf({ name, services: [], redis: { enabled: false }, backupDir: dir });
      assert.equal(agentBase(name, dir), scheduleUnitBase(p), `${name} ${dir}`);
    }
    assert.equal(scheduleUnitBase(profileOf({ services: [], redis: { enabled: false }, backupDir: '/mnt/backups/kadi' })), `kadi-ops-prod-${createHash('sha256').update('/mnt/backups/kadi').digest('hex').slice(0, 6)}`);
  });

  it('is valid sudoers syntax (visudo -c)', function () {
    if (!fs.existsSync('/usr/sbin/visudo')) this.skip();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-sudoers-'));
    try {
      const file = path.join(dir, 'kadi-ops');
      fs.writeFileSync(file, sudoersSnippet(profileOf({ services: ['kadi-uwsgi', 'kadi@a:b'], redis: { enabled: true } })), { mode: 0o440 });
      const r = spawnSync('/usr/sbin/visudo', ['-cf', file], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stdout + r.stderr);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
