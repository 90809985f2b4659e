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

  it('a system schedule adds exactly its units\' writes and removals, the reload and its timers, named as the agent names them', () => {
    const p = profileOf({ services: [], redis: { enabled: false }, backupDir: '/mnt/backups/kadi', schedule: { calendar: 'daily' } });
    const base = scheduleUnitBase(p);
    assert.equal(base, `kadi-ops-prod-${createHash('sha256').update('/mnt/backups/kadi').digest('hex').slice(0, 6)}`);
    const rules = sudoersSnippet(p).split('\n').filter((l) => l && !l.startsWith('#'));
    assert.equal(rules.length, 1);
    const cmds = rules[0].replace('kadi ALL=(root) NOPASSWD: ', '').split(', ');
    assert.equal(cmds.length, 8 + 1 + 4);
    assert.ok(cmds.includes(`/usr/bin/tee /etc/systemd/system/${base}-backup.timer`));
    assert.ok(cmds.includes(`/usr/bin/rm -f /etc/systemd/system/${base}-verify.service`));
    assert.ok(cmds.includes('/usr/bin/systemctl daemon-reload'));
    assert.ok(cmds.includes(`/usr/bin/systemctl enable --now ${base}-backup.timer`));
    assert.ok(cmds.includes(`/usr/bin/systemctl disable --now ${base}-verify.timer`));
    assert.doesNotMatch(sudoersSnippet(profileOf({ services: [], redis: { enabled: false }, schedule: { calendar: 'daily', unit: 'user' } })), /systemd/, 'a user unit needs no rule');
    // The agent names the units the same way.
    const r = spawnSync('python3', ['-c', 'import sys; sys.path.insert(0, sys.argv[1]); from kadi_ops_agent import schedule; print(schedule.base_name({"host": {"name": sys.argv[2], "backupDir": sys.argv[3]}}))', path.resolve(__dirname, '../../../agent'), 'prod', '/mnt/backups/kadi'], { encoding: 'utf8' });
    assert.equal(r.stdout.trim(), base, r.stderr);
    const odd = profileOf({ name: 'Kadi Ünï prod/2', services: [], redis: { enabled: false }, backupDir: '/srv/b', schedule: { calendar: 'daily' } });
    const r2 = spawnSync('python3', ['-c', 'import sys; sys.path.insert(0, sys.argv[1]); from kadi_ops_agent import schedule; print(schedule.base_name({"host": {"name": sys.argv[2], "backupDir": sys.argv[3]}}))', path.resolve(__dirname, '../../../agent'), 'Kadi Ünï prod/2', '/srv/b'], { encoding: 'utf8' });
    assert.equal(r2.stdout.trim(), scheduleUnitBase(odd), r2.stderr);
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
