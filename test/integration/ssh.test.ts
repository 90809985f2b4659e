import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { MemorySink } from '../../src/core/sink';
import { ConnectionPool } from '../../src/remote/connectionPool';
import { buildCommand } from '../../src/core/shellCommand';
import { SshConnection } from '../../src/ssh/connection';
import { stopDaemon } from '../sandbox/proc';
import { startKbdInteractiveSshd } from '../sandbox/sshd';
import { CancelledError, ChannelClosedError, HostKeyChangedError, HostKeyRejectedError, SshError } from '../../src/ssh/errors';
import type { SandboxHost } from '../sandbox/sandbox';
import { cutConnections, getSandbox, newPool, profileOf, ScriptedHostKeys, ScriptedSecrets } from './fixture';

describe('SSH core against the sandbox sshd', function () {
  this.timeout(120000);
  let sb: SandboxHost;
  let pool: ConnectionPool;

  before(async () => {
    sb = await getSandbox();
    pool = newPool();
  });
  after(() => pool.closeAll());

  it('logs in as the kadi user and reads exit codes', async () => {
    const host = await pool.get(profileOf(sb, 'direct'));
    const ok = await host.run(['id', '-un']);
    assert.equal(ok.code, 0);
    assert.equal(ok.stdout.trim(), sb.kadiUser);
    const bad = await host.run(['sh', '-c', 'exit 7']);
    assert.equal(bad.code, 7);
  });

  it('runs commands as kadi through sudo from the operator account', async () => {
    const host = await pool.get(profileOf(sb, 'sudo'));
    const r = await host.run({ pipe: [['id', '-un'], ['tr', 'a-z', 'A-Z']] });
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), sb.kadiUser.toUpperCase());
    assert.equal(host.connection.profile.ssh.user, sb.operatorUser);
  });

  it('streams stdout and stderr line by line as they arrive', async () => {
    const host = await pool.get(profileOf(sb, 'direct'));
    const sink = new MemorySink();
    const seenAt: number[] = [];
    const timed = { lines: (s: 'stdout' | 'stderr' | 'info' | 'warn' | 'error', l: string[]) => { sink.lines(s, l); if (s === 'stdout') l.forEach(() => seenAt.push(Date.now())); } };
    const r = await host.connection.exec(buildCommand({ seq: [['echo', 'one'], ['sleep', '1'], { argv: ['echo', 'two'] }, { argv: ['sh', '-c', 'echo err >&2'] }] }), { sink: timed });
    assert.equal(r.code, 0);
    assert.deepEqual(sink.entries.filter((e) => e.stream === 'stdout').map((e) => e.line), ['one', 'two']);
    assert.deepEqual(sink.entries.filter((e) => e.stream === 'stderr').map((e) => e.line), ['err']);
    // "one" arrived about a second before "two": streamed, not collected at the end.
    assert.ok(seenAt[1] - seenAt[0] >= 700, `lines arrived ${seenAt[1] - seenAt[0]} ms apart`);
  });

  it('refuses a changed host key with a message that says so, and never asks', async () => {
    const known = path.join(sb.root, 'known_hosts_changed');
    const other = path.join(sb.root, 'otherkey');
    if (!fs.existsSync(other)) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const otherPub = fs.readFileSync(other + '.pub', 'utf8').split(' ').slice(0, 2).join(' ');
    fs.writeFileSync(known, `[127.0.0.1]:${sb.sshPort} ${otherPub}\n`);
    const prompts = new ScriptedHostKeys('trust');
    const profile = profileOf(sb, 'direct', (p) => (p.ssh.knownHostsFile = known));
    await assert.rejects(SshConnection.connect(profile, { secrets: new ScriptedSecrets(), hostKeys: prompts }), (e: unknown) => {
      assert.ok(e instanceof HostKeyChangedError);
      assert.match((e as Error).message, /REMOTE HOST KEY CHANGED/);
      assert.match((e as Error).message, /SHA256:/);
      return true;
    });
    assert.equal(prompts.asked.length, 0);
    assert.equal(fs.readFileSync(known, 'utf8').split('\n').filter(Boolean).length, 1, 'known_hosts untouched');
  });

  it('asks about an unknown host key with its SHA256 fingerprint, and refuses when declined', async () => {
    const known = path.join(sb.root, 'known_hosts_empty');
    fs.writeFileSync(known, '');
    const prompts = new ScriptedHostKeys('reject');
    const profile = profileOf(sb, 'direct', (p) => (p.ssh.knownHostsFile = known));
    await assert.rejects(SshConnection.connect(profile, { secrets: new ScriptedSecrets(), hostKeys: prompts }), HostKeyRejectedError);
    assert.equal(prompts.asked.length, 1);
    const fp = execFileSync('ssh-keygen', ['-lf', '-'], { input: sb.hostKeyLine }).toString().split(' ')[1];
    assert.equal(prompts.asked[0].fingerprint, fp);
  });

  it('trusting an unknown host key saves it, and the next connection asks nothing', async () => {
    const known = path.join(sb.root, 'known_hosts_tofu');
    fs.rmSync(known, { force: true });
    const profile = profileOf(sb, 'direct', (p) => (p.ssh.knownHostsFile = known));
    const first = await SshConnection.connect(profile, { secrets: new ScriptedSecrets(), hostKeys: new ScriptedHostKeys('trust') });
    first.close();
    const again = new ScriptedHostKeys('reject');
    const second = await SshConnection.connect(profile, { secrets: new ScriptedSecrets(), hostKeys: again });
    second.close();
    assert.equal(again.asked.length, 0);
    // And OpenSSH itself accepts the line we wrote.
    const out = execFileSync('ssh', ['-i', sb.clientKeyFile, '-p', String(sb.sshPort), '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${known}`, '-o', 'StrictHostKeyChecking=yes', `${sb.kadiUser}@127.0.0.1`, 'echo ok']).toString();
    assert.equal(out.trim(), 'ok');
  });

  it('unlocks an encrypted key with the passphrase from the secret provider', async () => {
    const secrets = new ScriptedSecrets({ passphrase: sb.clientKeyPassphrase });
    const profile = profileOf(sb, 'direct', (p) => (p.ssh.identityFile = sb.encryptedClientKeyFile));
    const conn = await SshConnection.connect(profile, { secrets, hostKeys: new ScriptedHostKeys() });
    const r = await conn.exec('id -un');
    conn.close();
    assert.equal(r.stdout.trim(), sb.kadiUser);
    assert.equal(secrets.asked.filter((a) => a.kind === 'passphrase').length, 1);
  });

  it('fails authentication clearly when the passphrase is wrong', async () => {
    const profile = profileOf(sb, 'direct', (p) => {
      p.ssh.identityFile = sb.encryptedClientKeyFile;
      p.ssh.agent = false;
    });
    await assert.rejects(SshConnection.connect(profile, { secrets: new ScriptedSecrets({ passphrase: 'wrong' }), hostKeys: new ScriptedHostKeys() }), (e: unknown) => e instanceof SshError && /Authentication as .* failed: .*Note: wrong passphrase for identity file /.test((e as Error).message));
  });

  it('a configured identity file that does not exist is named when authentication fails (not only with --verbose)', async () => {
    const missing = `${sb.root}/no such key`;
    const profile = profileOf(sb, 'direct', (p) => {
      p.ssh.identityFile = missing;
      p.ssh.agent = false;
    });
    await assert.rejects(SshConnection.connect(profile, { secrets: new ScriptedSecrets({}), hostKeys: new ScriptedHostKeys() }), (e: unknown) => {
      assert.ok(e instanceof SshError, String(e));
      assert.match((e as Error).message, new RegExp(`^Authentication as .* failed: no key, agent identity or password was accepted\\. Note: identity file ${missing} does not exist\\.$`));
      return true;
    });
  });

  it('logs in with keyboard-interactive (PAM asks "Password: "), asking the secret provider once; a wrong answer fails clearly', async () => {
    const pw = sb.passwordOperator;
    const keys = { hostKeyLine: sb.hostKeyLine, clientKeyFile: sb.clientKeyFile, encryptedClientKeyFile: sb.encryptedClientKeyFile, clientKeyPassphrase: sb.clientKeyPassphrase };
    const kbd = await startKbdInteractiveSshd(sb.root, keys, [pw.user]);
    try {
      const profile = profileOf(sb, 'sudo', (p) => {
        p.name = 'sandbox-kbdint';
        p.ssh.port = kbd.port;
        p.ssh.user = pw.user;
        p.ssh.identityFile = path.join(sb.root, 'no-such-key');
        p.ssh.knownHostsFile = kbd.knownHostsFile;
      });
      const secrets = new ScriptedSecrets({ password: pw.password });
      const conn = await SshConnection.connect(profile, { secrets, hostKeys: new ScriptedHostKeys() });
      const r = await conn.exec('id -un');
      conn.close();
      assert.equal(r.stdout.trim(), pw.user);
      assert.equal(secrets.asked.filter((a) => a.kind === 'password').length, 1);
      assert.match(fs.readFileSync(path.join(sb.root, 'sshd-kbdint.log'), 'utf8'), new RegExp(`Accepted keyboard-interactive/pam for ${pw.user}`));
      await assert.rejects(SshConnection.connect(profile, { secrets: new ScriptedSecrets({ password: 'wrong' }), hostKeys: new ScriptedHostKeys() }), (e: unknown) => e instanceof SshError && /Authentication as .* failed/.test((e as Error).message));
    } finally {
      await stopDaemon(kbd.daemon, 'SIGTERM');
    }
  });

  it('logs in with a password and feeds the sudo password on stdin, asking for each once', async () => {
    const pw = sb.passwordOperator;
    const secrets = new ScriptedSecrets({ password: pw.password, sudo: pw.password });
    const profile = profileOf(sb, 'sudo', (p) => {
      p.name = 'sandbox-password';
      p.ssh.user = pw.user;
      p.ssh.identityFile = path.join(sb.root, 'no-such-key');
    });
    const pool2 = new ConnectionPool({ secrets, hostKeys: new ScriptedHostKeys() });
    try {
      const host = await pool2.get(profile);
      const who = await host.run(['id', '-un']);
      assert.equal(who.code, 0, who.stderr);
      assert.equal(who.stdout.trim(), sb.kadiUser);
      // The command's own stdin is intact: the password went to sudo, not to the command.
      const echo = await host.run(['cat'], { stdin: 'payload' });
      assert.equal(echo.stdout, 'payload');
      assert.equal(secrets.asked.filter((a) => a.kind === 'password').length, 1);
      assert.ok(secrets.asked.filter((a) => a.kind === 'sudo').length >= 1);
      // A wrong sudo password is an error that says so, not a hang.
      const wrong = new ConnectionPool({ secrets: new ScriptedSecrets({ password: pw.password, sudo: 'wrong' }), hostKeys: new ScriptedHostKeys() });
      try {
        await assert.rejects((await wrong.get(profile)).run(['true']), /sudo on sandbox-password rejected the password/);
        // The command's stdin is never read by sudo as a further attempt: here it begins with the
        // right password, which sudo would otherwise accept as its second try and run the command.
        const canary = path.join(sb.backupDir, 'sudo-stdin-canary');
        await assert.rejects((await wrong.get(profile)).run(['tee', canary], { stdin: `${pw.password}\nsecret input\n` }), /rejected the password/);
        assert.equal(fs.existsSync(canary), false, 'the command never ran');
      } finally {
        wrong.closeAll();
      }
    } finally {
      pool2.closeAll();
    }
  });

  it('verifies every ProxyJump hop of a chain, not only the first', async () => {
    // The second hop's name (localhost) is not in known_hosts: it must be asked about, and refused.
    const profile = profileOf(sb, 'direct', (p) => (p.ssh.proxyJump = `${sb.kadiUser}@127.0.0.1:${sb.sshPort},${sb.kadiUser}@localhost:${sb.sshPort}`));
    const hostKeys = new ScriptedHostKeys('reject');
    await assert.rejects(SshConnection.connect(profile, { secrets: new ScriptedSecrets(), hostKeys }), /localhost/);
    assert.deepEqual(hostKeys.asked.map((a) => a.host), [`[localhost]:${sb.sshPort}`]);
    // Accepted once, the chain of two hops reaches the host.
    const conn = await SshConnection.connect(profile, { secrets: new ScriptedSecrets(), hostKeys: new ScriptedHostKeys('accept-once') });
    try {
      assert.equal((await conn.exec('true')).code, 0);
      assert.ok(conn.jump?.jump?.isOpen, 'two hops are in use');
    } finally {
      conn.close();
    }
  });

  it('reaches the host through a ProxyJump hop', async () => {
    const profile = profileOf(sb, 'direct', (p) => (p.ssh.proxyJump = `${sb.kadiUser}@127.0.0.1:${sb.sshPort}`));
    const conn = await SshConnection.connect(profile, { secrets: new ScriptedSecrets(), hostKeys: new ScriptedHostKeys() });
    try {
      const r = await conn.exec('echo $SSH_CONNECTION');
      // The target sees the connection coming from the jump host's forwarding, not directly.
      assert.equal(r.code, 0);
      assert.match(r.stdout, /^127\.0\.0\.1 \d+ 127\.0\.0\.1 \d+/);
      assert.ok(conn.jump?.isOpen, 'the hop connection is in use');
    } finally {
      conn.close();
    }
  });

  it('a connection cut while a command runs is an error, never a success', async () => {
    const conn = await SshConnection.connect(profileOf(sb, 'direct'), { secrets: new ScriptedSecrets(), hostKeys: new ScriptedHostKeys() });
    const running = conn.exec('echo started; sleep 30; echo never');
    await new Promise((r) => setTimeout(r, 700));
    // Kill the per-connection sshd processes: a real cut, as a network drop would do.
    assert.ok(cutConnections(sb) > 0);
    await assert.rejects(running, (e: unknown) => e instanceof ChannelClosedError || (e instanceof SshError));
  });

  it('cancellation stops the remote process group', async () => {
    const host = await pool.get(profileOf(sb, 'sudo'));
    const marker = `kadi-ops-cancel-${process.pid}-${Date.now()}`;
    const ac = new AbortController();
    const running = host.run(['sh', '-c', `sleep 300 & sleep 301; echo ${marker}`], { signal: ac.signal });
    const ps = (): string[][] => execFileSync('ps', ['-e', '-o', 'pgid=,stat=,args=']).toString().split('\n').map((l) => l.trim().split(/\s+/));
    const until = async (ok: () => boolean, what: string): Promise<void> => {
      // A loaded machine starts ssh + sudo slowly: wait for the state, up to 15 s, instead of guessing.
      for (let i = 0; i < 150 && !ok(); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(ok(), what);
    };
    let group: string | undefined;
    const mine = (): string[] => ps().filter((f) => f[0] === group && !f[1].startsWith('Z')).map((f) => f.join(' '));
    await until(() => (group = ps().find((f) => f.join(' ').includes(marker))?.[0]) !== undefined && mine().some((l) => l.includes('sleep 301')), 'the command is running');
    ac.abort();
    await assert.rejects(running, CancelledError);
    await until(() => mine().length === 0, `nothing of the cancelled command is left: ${mine().join('; ')}`);
  });

  it('quoting survives hostile arguments over real SSH and sudo; the canary is never created', async function () {
    const host = await pool.get(profileOf(sb, 'sudo'));
    const canaryDir = fs.mkdtempSync(path.join(sb.root, 'canary-'));
    fs.chmodSync(canaryDir, 0o777);
    const canary = path.join(canaryDir, 'CANARY');
    const hostile = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 30 }).map((s) => s.replace(/\0/g, '')),
      fc.constantFrom(`$(touch ${canary})`, `\`touch ${canary}\``, `; touch ${canary}`, `\ntouch ${canary}\n`, `' ; touch ${canary}; '`, `" ; touch ${canary}; "`, '-rf', '--', '$HOME', '*', 'ü€😀', `| touch ${canary}`, `&& touch ${canary}`),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(hostile, { minLength: 1, maxLength: 3 }), async (args) => {
        const r = await host.run(['printf', '%s\\0', ...args]);
        assert.equal(r.code, 0);
        assert.deepEqual(r.stdout.split('\0').slice(0, -1), args);
        assert.equal(fs.existsSync(canary), false);
      }),
      { numRuns: 40 },
    );
  });
});

