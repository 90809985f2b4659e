import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  ConfigFileError,
  formatConfigError,
  listSshConfigHosts,
  loadConfigFile,
  profileFromSshHost,
  resolveProfiles,
  type ConfigError,
  type ResolveOptions,
} from '../../src/config/hostProfiles';
import type { HostProfile } from '../../src/config/types';

/** test/fixtures/config, found from the source tree whether the test runs from out/ or not. */
function fixturesDir(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'test', 'fixtures', 'config', 'home'))) {
    if (path.dirname(dir) === dir) throw new Error('test/fixtures/config not found');
    dir = path.dirname(dir);
  }
  return path.join(dir, 'test', 'fixtures', 'config');
}
const FIX = fixturesDir();
const HOME = path.join(FIX, 'home');
const withSshConfig: ResolveOptions = { homeDir: HOME, localUser: 'alice' };
const tempDirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-cfg-'));
  tempDirs.push(dir);
  return dir;
}
after(() => tempDirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** A fake home without ~/.ssh/config, so only the profile and the defaults count. */
const noSshConfig: ResolveOptions = { homeDir: path.join(FIX, 'no-such-home'), localUser: 'alice' };

function one(input: unknown, opts: ResolveOptions = noSshConfig): HostProfile {
  const { profiles, errors } = resolveProfiles([input], opts);
  assert.deepEqual(errors.map(formatConfigError), []);
  assert.equal(profiles.length, 1);
  return profiles[0];
}

function errorsFor(input: unknown, opts: ResolveOptions = noSshConfig): ConfigError[] {
  const { profiles, errors } = resolveProfiles([input], opts);
  assert.equal(profiles.length, 0, 'a host with errors must not be loaded');
  return errors;
}

describe('host profiles: defaults for a standard Kadi install', () => {
  it('a profile with only name and ssh.host gets every standard-install default', () => {
    const p = one({ name: 'prod', ssh: { host: 'kadi.example.org' } });
    const home = path.join(FIX, 'no-such-home');
    assert.deepEqual(p, {
      name: 'prod',
      ssh: {
        hostName: 'kadi.example.org',
        alias: 'kadi.example.org',
        port: 22,
        user: 'kadi',
        identityFiles: [],
        agent: true,
        knownHostsFile: path.join(home, '.ssh', 'known_hosts'),
        keepaliveIntervalSeconds: 15,
        connectTimeoutSeconds: 20,
      },
      runAs: 'direct',
      kadi: { user: 'kadi', cli: '/opt/kadi/venv/bin/kadi', configFile: '/opt/kadi/config/kadi.py' },
      backupDir: '/mnt/backups/kadi',
      services: ['apache2', 'kadi-uwsgi', 'kadi-celery', 'kadi-celerybeat'],
      redis: { enabled: false, dumpPath: '/var/lib/redis/dump.rdb', service: 'redis-server', cli: 'redis-cli', port: 6379 },
      overrides: { database: {} },
      backupMaxAgeHours: 26,
      dumpCompression: 3,
      jobHistory: { keepLast: 100, keepDays: 30 },
    });
  });

  it('an off-site repository that is a relative path is refused; absolute paths and backends are taken', () => {
    for (const repository of ['relrepo', 'backups/restic', 'local:relrepo']) {
      const e = errorsFor({ name: 'a', ssh: { host: 'h' }, offsite: { repository } });
      assert.ok(e.some((x) => x.field === 'offsite.repository' && x.message.includes('must be an absolute path when it is a path')), JSON.stringify(e));
    }
    for (const repository of ['/mnt/offsite/kadi', 'local:/mnt/offsite/kadi', 'sftp:backup@offsite.example.org:/srv/restic/kadi', 's3:https://s3.example.org/b/kadi', 'rest:https://r.example.org/kadi']) {
      assert.equal(one({ name: 'a', ssh: { host: 'h' }, offsite: { repository } }).offsite?.repository, repository);
    }
  });

  it('logging in directly uses the Kadi user as the login name, also a custom one', () => {
    assert.equal(one({ name: 'a', ssh: { host: 'h' }, kadi: { user: 'kadi4mat' } }).ssh.user, 'kadi4mat');
  });

  it('switching users with sudo logs in as the local user when nothing else names one', () => {
    const p = one({ name: 'a', ssh: { host: 'h' }, runAs: 'sudo' });
    assert.equal(p.ssh.user, 'alice');
    assert.equal(p.kadi.user, 'kadi');
  });

  it('the global backupMaxAgeHours applies to hosts without their own, and a host value wins', () => {
    const { profiles } = resolveProfiles(
      [
        { name: 'a', ssh: { host: 'h' } },
        { name: 'b', ssh: { host: 'h' }, backupMaxAgeHours: 2.5 },
      ],
      { ...noSshConfig, backupMaxAgeHours: 50 },
    );
    assert.deepEqual(profiles.map((p) => p.backupMaxAgeHours), [50, 2.5]);
  });

  it('a bad global backupMaxAgeHours is reported and the default used', () => {
    const { profiles, errors } = resolveProfiles([{ name: 'a', ssh: { host: 'h' } }], { ...noSshConfig, backupMaxAgeHours: -1 });
    assert.equal(profiles[0].backupMaxAgeHours, 26);
    assert.deepEqual(errors.map((e) => e.field), ['kadiOps.backupMaxAgeHours']);
  });

  it('paths are normalised: trailing slashes dropped, ~ in local paths expanded', () => {
    const p = one({
      name: 'a',
      ssh: { host: 'h', identityFile: '~/.ssh/id_kadi', knownHostsFile: '~/kh' },
      backupDir: '/srv/backups/',
      overrides: { storagePath: '/srv/storage/', database: { name: 'kadi', port: 5433 } },
    });
    const home = path.join(FIX, 'no-such-home');
    assert.deepEqual(p.ssh.identityFiles, [path.join(home, '.ssh', 'id_kadi')]);
    assert.equal(p.ssh.knownHostsFile, path.join(home, 'kh'));
    assert.equal(p.backupDir, '/srv/backups');
    assert.deepEqual(p.overrides, { database: { name: 'kadi', port: 5433 }, storagePath: '/srv/storage' });
  });

  it('an empty services list means "stop nothing" rather than the defaults', () => {
    assert.deepEqual(one({ name: 'a', ssh: { host: 'h' }, services: [] }).services, []);
  });

  it('no host list at all is simply no hosts', () => {
    assert.deepEqual(resolveProfiles(undefined, noSshConfig), { profiles: [], errors: [], warnings: [] });
  });
});

describe('host profiles: validation messages', () => {
  it('formats an error with the host name, the field and the value', () => {
    const [e] = errorsFor({ name: 'prod', ssh: { host: 'h', port: 'abc' } });
    assert.deepEqual({ host: e.host, field: e.field }, { host: 'prod', field: 'ssh.port' });
    assert.equal(formatConfigError(e), 'Host "prod": ssh.port must be an integer between 1 and 65535 (got "abc").');
  });

  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['name', { name: '' }, /^name must be a non-empty label/],
    ['ssh.host', { ssh: { host: 'admin@kadi.example.org' } }, /put the login name in ssh\.user/],
    ['ssh.host', { ssh: { host: 'kadi.example.org:2222' } }, /put it in ssh\.port/],
    ['ssh.host', { ssh: { host: 'kadi example' } }, /without spaces/],
    ['ssh.host', { ssh: { host: '-oProxyCommand=x' } }, /must not start with "-"/],
    ['ssh.port', { ssh: { host: 'h', port: 0 } }, /between 1 and 65535 \(got 0\)/],
    ['ssh.port', { ssh: { host: 'h', port: 22.5 } }, /integer/],
    ['ssh.user', { ssh: { host: 'h', user: 'kadi; rm -rf /' } }, /Unix user name/],
    ['ssh.identityFile', { ssh: { host: 'h', identityFile: 'id_rsa' } }, /absolute path on this machine or start with "~\/"/],
    ['ssh.agent', { ssh: { host: 'h', agent: 'yes' } }, /must be true or false \(got "yes"\)/],
    ['ssh.proxyJump', { ssh: { host: 'h', proxyJump: 'bastion host' } }, /\[user@\]host\[:port\]/],
    ['ssh.keepaliveIntervalSeconds', { ssh: { host: 'h', keepaliveIntervalSeconds: -1 } }, /between 0 and 3600/],
    ['ssh.connectTimeoutSeconds', { ssh: { host: 'h', connectTimeoutSeconds: 0 } }, /between 1 and 600/],
    ['runAs', { runAs: 'root' }, /must be one of "direct", "sudo" \(got "root"\)/],
    ['kadi.user', { kadi: { user: '0kadi' } }, /Unix user name/],
    ['kadi.cli', { kadi: { cli: 'kadi' } }, /absolute path on the host/],
    ['kadi.configFile', { kadi: { configFile: '/opt/kadi/../etc/passwd' } }, /\.\."/],
    ['backupDir', { backupDir: '/' }, /must not be the root directory/],
    ['backupDir', { backupDir: 'backups' }, /absolute path on the host/],
    ['backupDir', { backupDir: '/mnt/back\nups' }, /control characters/],
    ['services', { services: 'apache2' }, /list of systemd service names/],
    ['services', { services: ['apache2', 'kadi uwsgi'] }, /item 2 must be a systemd service name.*"kadi uwsgi"/],
    ['services', { services: ['apache2', 'apache2'] }, /lists "apache2" more than once/],
    ['redis', { redis: true }, /redis must be an object such as \{ "enabled": true \} \(got true\)/],
    ['redis.enabled', { redis: { enabled: 1 } }, /true or false/],
    ['redis.dumpPath', { redis: { dumpPath: 'dump.rdb' } }, /absolute path/],
    ['redis.service', { redis: { service: '-redis' } }, /systemd service name/],
    ['redis.cli', { redis: { cli: 'redis cli' } }, /absolute path or a command name/],
    ['redis.port', { redis: { port: 70000 } }, /between 1 and 65535/],
    ['overrides.database.host', { overrides: { database: { host: 'db host' } } }, /socket directory/],
    ['overrides.database.port', { overrides: { database: { port: '5432' } } }, /integer/],
    ['overrides.database.name', { overrides: { database: { name: 'x'.repeat(64) } } }, /63 bytes/],
    ['overrides.database.user', { overrides: { database: { user: '' } } }, /non-empty PostgreSQL name/],
    ['overrides.storagePath', { overrides: { storagePath: 'storage' } }, /absolute path/],
    ['overrides.uploadsPath', { overrides: { uploadsPath: '/a/../b' } }, /\.\."/],
    ['backupMaxAgeHours', { backupMaxAgeHours: 0 }, /greater than 0/],
    ['dumpCompression', { dumpCompression: 10 }, /integer between 0 and 9 \(got 10\)/],
    ['dumpCompression', { dumpCompression: 'fast' }, /integer between 0 and 9/],
  ];
  for (const [field, patch, message] of cases) {
    it(`reports exactly one error for ${JSON.stringify(patch).slice(0, 70)}, naming host and field ${field}`, () => {
      const input = { name: 'prod', ssh: { host: 'kadi.example.org' }, ...patch };
      const errors = errorsFor(input);
      assert.equal(errors.length, 1, JSON.stringify(errors));
      const host = typeof input.name === 'string' && input.name !== '' ? input.name : '#1';
      assert.equal(errors[0].host, host);
      assert.equal(errors[0].field, field);
      assert.ok(errors[0].message.startsWith(`${field} `), errors[0].message);
      assert.match(errors[0].message, message);
    });
  }

  it('reports every bad field of one host, each once', () => {
    const errors = errorsFor({ name: 'prod', ssh: { host: 'h', port: 'x', agent: 'x' }, runAs: 'x', backupDir: 'x' });
    assert.deepEqual(errors.map((e) => e.field).sort(), ['backupDir', 'runAs', 'ssh.agent', 'ssh.port']);
  });

  it('names a host without a usable name by its 1-based position', () => {
    const { errors } = resolveProfiles([{ name: 'ok', ssh: { host: 'h' } }, { ssh: { host: 'h' } }, 'prod'], noSshConfig);
    assert.deepEqual(
      errors.map(formatConfigError),
      [
        'Host #2: name is required.',
        'Host #3: Each host must be an object such as { "name": "prod", "ssh": { "host": "kadi.example.org" } } (got "prod").',
      ],
    );
  });

  it('asks for ssh with an example when it is missing or not an object', () => {
    assert.match(errorsFor({ name: 'a' })[0].message, /^ssh is required, e\.g\. \{ "host": "kadi\.example\.org" \}/);
    assert.match(errorsFor({ name: 'a', ssh: 'kadi.example.org' })[0].message, /^ssh must be an object .*\(got "kadi\.example\.org"\)/);
    assert.equal(errorsFor({ name: 'a', ssh: {} })[0].field, 'ssh.host');
  });

  it('reports unknown keys with the closest known one', () => {
    const errors = errorsFor({ name: 'a', ssh: { hostname: 'h' }, backupDirectory: '/b', sevices: [] });
    const messages = errors.map((e) => e.message);
    assert.ok(messages.includes('ssh.hostname is not a known setting; did you mean "ssh.host"?'), messages.join('\n'));
    assert.ok(messages.includes('backupDirectory is not a known setting; did you mean "backupDir"?'));
    assert.ok(messages.includes('sevices is not a known setting; did you mean "services"?'));
    assert.ok(messages.includes('ssh.host is required'));
    assert.equal(formatConfigError(errors[0]).endsWith('?'), true, 'no period after a question');
  });

  it('lists the known keys when an unknown key is not close to any', () => {
    const [e] = errorsFor({ name: 'a', ssh: { host: 'h' }, redis: { zzzzzzzz: 1 } });
    assert.equal(e.message, 'redis.zzzzzzzz is not a known setting; known settings here: enabled, dumpPath, service, cli, port');
  });

  it('one bad host does not hide the good ones around it', () => {
    const { profiles, errors } = resolveProfiles(
      [
        { name: 'one', ssh: { host: 'h1' } },
        { name: 'bad', ssh: { host: 'h2', port: -5 } },
        { name: 'three', ssh: { host: 'h3' } },
      ],
      noSshConfig,
    );
    assert.deepEqual(profiles.map((p) => p.name), ['one', 'three']);
    assert.deepEqual(errors.map((e) => [e.host, e.field]), [['bad', 'ssh.port']]);
  });

  it('drops every host of a duplicated name (case-insensitively) with one message naming their positions', () => {
    const { profiles, errors } = resolveProfiles(
      [
        { name: 'prod', ssh: { host: 'a' } },
        { name: 'test', ssh: { host: 'b' } },
        { name: 'Prod', ssh: { host: 'c' } },
      ],
      noSshConfig,
    );
    assert.deepEqual(profiles.map((p) => p.name), ['test']);
    assert.equal(errors.length, 1);
    assert.equal(errors[0].field, 'name');
    assert.match(formatConfigError(errors[0]), /^Host "prod": name "prod" is used by hosts #1, #3 \(names that differ only in case or in characters other than letters and digits count as one: they share the environment variables of their secrets, …_PROD\); names must be unique/);
    // prod-a, prod_a and Prod.A would read one KADI_OPS_SSH_PASSWORD_PROD_A: none is loaded.
    const shared = resolveProfiles(
      [
        { name: 'prod-a', ssh: { host: 'a' } },
        { name: 'prod_a', ssh: { host: 'b' } },
        { name: 'Prod.A', ssh: { host: 'c' } },
        { name: 'prod-b', ssh: { host: 'd' } },
      ],
      noSshConfig,
    );
    assert.deepEqual(shared.profiles.map((p) => p.name), ['prod-b']);
    assert.match(formatConfigError(shared.errors[0]), /^Host "prod-a": name "prod-a" is used by hosts #1, #2, #3 .*…_PROD_A\)/);
  });

  it('rejects a host list that is not a list', () => {
    const { profiles, errors } = resolveProfiles({ name: 'prod' }, noSshConfig);
    assert.equal(profiles.length, 0);
    assert.deepEqual(errors.map(formatConfigError), ['The host list must be a list of host objects (got an object).']);
  });

  it('refuses "direct" when the login user is not the Kadi user', () => {
    const [e] = errorsFor({ name: 'a', ssh: { host: 'h', user: 'admin' } });
    assert.equal(e.field, 'runAs');
    assert.match(e.message, /login user is "admin" \(from ssh\.user\); set runAs to "sudo"/);
  });
});

describe('host profiles: merging ~/.ssh/config', () => {
  it('takes HostName, Port and IdentityFile from a file reached through a globbed Include', () => {
    const p = one({ name: 'prod', ssh: { host: 'prod' }, runAs: 'sudo' }, withSshConfig);
    assert.equal(p.ssh.alias, 'prod');
    assert.equal(p.ssh.hostName, 'kadi.example.org');
    assert.equal(p.ssh.port, 2222, 'the first Port seen wins, as in ssh');
    assert.equal(p.ssh.user, 'ops', 'User from the second included file');
    assert.deepEqual(p.ssh.identityFiles, [path.join(HOME, '.ssh', 'id_prod')]);
  });

  it('applies Host * settings: ServerAliveInterval and UserKnownHostsFile', () => {
    const p = one({ name: 'prod', ssh: { host: 'prod' }, runAs: 'sudo' }, withSshConfig);
    assert.equal(p.ssh.keepaliveIntervalSeconds, 30);
    assert.equal(p.ssh.knownHostsFile, path.join(HOME, '.ssh', 'known_hosts_fixture'));
  });

  it('expands ~ and %d, %r, %h in IdentityFile and takes User, Port and ProxyJump', () => {
    const p = one({ name: 'staging', ssh: { host: 'staging' }, runAs: 'sudo' }, withSshConfig);
    assert.equal(p.ssh.hostName, 'staging.internal.example.org');
    assert.equal(p.ssh.user, 'admin');
    assert.equal(p.ssh.port, 2200);
    assert.equal(p.ssh.proxyJump, 'jump@bastion.example.org:2222');
    assert.deepEqual(p.ssh.identityFiles, [
      path.join(HOME, '.ssh', 'id_staging'),
      path.join(HOME, '.ssh', 'id_admin@staging.internal.example.org'),
    ]);
  });

  it('lets every value set in the profile win over ~/.ssh/config', () => {
    const p = one(
      {
        name: 'staging',
        ssh: { host: 'staging', port: 22, user: 'ops', identityFile: '/keys/k', proxyJump: 'none', knownHostsFile: '/kh', keepaliveIntervalSeconds: 5 },
        runAs: 'sudo',
      },
      withSshConfig,
    );
    assert.equal(p.ssh.hostName, 'staging.internal.example.org', 'HostName is still the alias target');
    assert.deepEqual(
      [p.ssh.port, p.ssh.user, p.ssh.identityFiles, p.ssh.proxyJump, p.ssh.knownHostsFile, p.ssh.keepaliveIntervalSeconds],
      [22, 'ops', ['/keys/k'], undefined, '/kh', 5],
    );
  });

  it('expands %h in HostName and accepts a User that is the Kadi user for direct login', () => {
    const p = one({ name: 'k', ssh: { host: 'direct-kadi' } }, withSshConfig);
    assert.equal(p.ssh.hostName, 'direct-kadi.example.net');
    assert.equal(p.ssh.user, 'kadi');
    assert.equal(p.runAs, 'direct');
  });

  it('says where a conflicting login user came from when it is ~/.ssh/config', () => {
    const [e] = errorsFor({ name: 'prod', ssh: { host: 'prod' } }, withSshConfig);
    assert.equal(e.field, 'runAs');
    assert.match(e.message, /login user is "ops" \(from User in ~\/\.ssh\/config\)/);
  });

  it('reads an Include inside a Host block only for that host, and continues the block after it', () => {
    const inner = one({ name: 'i', ssh: { host: 'inner' }, runAs: 'sudo' }, withSshConfig);
    assert.equal(inner.ssh.hostName, 'inner.example.org');
    assert.equal(inner.ssh.user, 'innerfirst');
    assert.equal(inner.ssh.port, 2022, 'Port after the Include still belongs to Host inner');
    const sub = one({ name: 's', ssh: { host: 'inner-sub' }, runAs: 'sudo' }, withSshConfig);
    assert.equal(sub.ssh.hostName, 'inner-sub', 'the included Host inner-sub is invisible to other hosts');
  });

  it('does not include dot-files or names the Include pattern does not match', () => {
    assert.equal(one({ name: 'h', ssh: { host: 'hidden-host' }, runAs: 'sudo' }, withSshConfig).ssh.hostName, 'hidden-host');
    assert.equal(one({ name: 'r', ssh: { host: 'readme-host' }, runAs: 'sudo' }, withSshConfig).ssh.hostName, 'readme-host');
  });

  it('matches the alias case-insensitively, as ssh lowercases the destination', () => {
    assert.equal(one({ name: 'k', ssh: { host: 'Direct-Kadi' } }, withSshConfig).ssh.user, 'kadi');
  });

  it('honours wildcard and negated Host patterns', () => {
    assert.equal(one({ name: 'a', ssh: { host: 'a.lab' }, runAs: 'sudo' }, withSshConfig).ssh.user, 'labuser');
    assert.equal(one({ name: 'n', ssh: { host: 'nope.lab' }, runAs: 'sudo' }, withSshConfig).ssh.user, 'alice');
  });

  it('reports an unusable ssh_config value against the ssh_config directive, unless the profile overrides it', () => {
    const [e] = errorsFor({ name: 'b', ssh: { host: 'badport' } }, withSshConfig);
    assert.equal(e.field, 'ssh.port');
    assert.equal(formatConfigError(e), 'Host "b": Port "notaport" in ~/.ssh/config is not usable for ssh.port; fix it there or set ssh.port in the profile.');
    assert.equal(one({ name: 'b', ssh: { host: 'badport', port: 22 } }, withSshConfig).ssh.port, 22);
  });

  it('uses sshConfigText instead of the file when given, with IdentityAgent none turning the agent off', () => {
    const p = one(
      { name: 'x', ssh: { host: 'x' } },
      { ...withSshConfig, sshConfigText: 'Host x\n  HostName x.example.org\n  IdentityAgent none\n' },
    );
    assert.equal(p.ssh.hostName, 'x.example.org');
    assert.equal(p.ssh.agent, false);
    assert.equal(p.ssh.keepaliveIntervalSeconds, 15, 'the real file was not read');
  });

  it('never runs Match exec commands while resolving', () => {
    const canary = path.join(tempDir(), 'canary');
    const text = `Match exec "touch ${canary}"\n  User pwned\n`;
    const p = one({ name: 'x', ssh: { host: 'x' }, runAs: 'sudo' }, { ...noSshConfig, sshConfigText: text });
    assert.equal(fs.existsSync(canary), false);
    assert.equal(p.ssh.user, 'alice');
  });

  it('keeps directives included from a Match block conditional and leaves out Host sections from such files', () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, '.ssh'));
    fs.writeFileSync(path.join(dir, '.ssh', 'm.conf'), 'User matchuser\nHost other\n  User wrong\n');
    const opts = { homeDir: dir, localUser: 'alice', sshConfigText: 'Match originalhost m\n  Include m.conf\n' };
    const { profiles, warnings } = resolveProfiles(
      [
        { name: 'm', ssh: { host: 'm' }, runAs: 'sudo' },
        { name: 'o', ssh: { host: 'other' }, runAs: 'sudo' },
      ],
      opts,
    );
    assert.deepEqual(profiles.map((p) => p.ssh.user), ['matchuser', 'alice']);
    assert.match(warnings.join('\n'), /included from a Match block are ignored/);
  });

  it('stops following an Include that includes itself', () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, '.ssh'));
    fs.writeFileSync(path.join(dir, '.ssh', 'loop'), 'Include loop\nPort 2201\n');
    const { profiles, warnings } = resolveProfiles([{ name: 'x', ssh: { host: 'x' }, runAs: 'sudo' }], { homeDir: dir, sshConfigText: 'Include loop\n' });
    assert.equal(profiles[0].ssh.port, 2201);
    assert.match(warnings.join('\n'), /nested more than 16 levels/);
  });
});

describe('ssh_config hosts as candidate profiles', () => {
  const text = fs.readFileSync(path.join(HOME, '.ssh', 'config'), 'utf8');

  it('lists concrete Host aliases in file order, Includes followed, patterns left out', () => {
    assert.deepEqual(listSshConfigHosts(text, { homeDir: HOME }), ['prod', 'fromglob', 'staging', 'direct-kadi', 'inner', 'inner-sub', 'badport']);
  });

  it('makes a minimal profile that keeps ~/.ssh/config the source of truth', () => {
    assert.deepEqual(profileFromSshHost('direct-kadi', text, { homeDir: HOME }), { name: 'direct-kadi', ssh: { host: 'direct-kadi' } });
  });

  it('suggests sudo when ~/.ssh/config logs in as someone other than kadi, and the result resolves cleanly', () => {
    const input = profileFromSshHost('staging', text, { homeDir: HOME });
    assert.deepEqual(input, { name: 'staging', ssh: { host: 'staging' }, runAs: 'sudo' });
    assert.equal(one(input, withSshConfig).ssh.user, 'admin');
  });
});

describe('--config files', () => {
  const file = (name: string): string => path.join(FIX, name);
  const failure = (f: string): string => {
    try {
      loadConfigFile(f);
    } catch (e) {
      assert.ok(e instanceof ConfigFileError);
      return e.message;
    }
    return assert.fail('expected a ConfigFileError');
  };

  it('reads settings.json-style JSON with comments and trailing commas', () => {
    const { profiles, errors } = resolveProfiles(loadConfigFile(file('hosts.jsonc')), noSshConfig);
    assert.deepEqual(errors, []);
    assert.deepEqual(profiles.map((p) => [p.name, p.ssh.user, p.runAs]), [['prod', 'kadi', 'direct'], ['staging', 'admin', 'sudo']]);
  });

  it('accepts a bare list and an object pasted from settings.json', () => {
    assert.equal((loadConfigFile(file('bare-array.json')) as unknown[]).length, 1);
    assert.deepEqual(resolveProfiles(loadConfigFile(file('settings-paste.json')), noSshConfig).profiles[0].ssh.port, 2222);
  });

  it('reports the line and column of a JSON syntax error', () => {
    assert.equal(
      failure(file('missing-comma.json')),
      `Config file ${file('missing-comma.json')} is not valid JSON: Expected "," or "]" after a list item but found "{" at line 4, column 5.`,
    );
  });

  it('says when the file does not exist or is a directory', () => {
    assert.equal(failure(file('nope.json')), `Cannot read config file ${file('nope.json')}: it does not exist.`);
    assert.match(failure(FIX), /it is a directory\.$/);
  });

  it('rejects an unknown top-level key with a suggestion', () => {
    assert.match(failure(file('typo-top-level.json')), /"host" is not a known top-level key; did you mean "hosts"\?$/);
  });
});
