import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  appendKnownHost,
  checkHostKey,
  fingerprintSha256,
  formatKnownHostsLine,
  keyTypeFromBlob,
  parseKnownHosts,
} from '../../src/ssh/knownHosts';
import { envHostSuffix, TerminalHostKeys } from '../../src/cli/terminalPrompts';
import { preferredHostKeyAlgorithms } from '../../src/ssh/connection';

interface TestKey {
  type: string;
  blob: Buffer;
  pubFile: string;
  /** The base64 text as ssh-keygen wrote it. */
  text: string;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-knownhosts-'));
let n = 0;

/** A fresh real key pair from ssh-keygen. */
function genKey(args: string[]): TestKey {
  const file = path.join(tmp, `key${n++}`);
  execFileSync('ssh-keygen', ['-q', '-N', '', '-C', 'test', '-f', file, ...args]);
  const [type, text] = fs.readFileSync(`${file}.pub`, 'utf8').trim().split(/\s+/);
  return { type, blob: Buffer.from(text, 'base64'), pubFile: `${file}.pub`, text };
}

/** Runs `ssh-keygen -H` on plain known_hosts text and returns the hashed file. */
function hashWithSshKeygen(text: string): string {
  const file = path.join(tmp, `kh${n++}`);
  fs.writeFileSync(file, text);
  execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
  return fs.readFileSync(file, 'utf8');
}

const line = (hosts: string, k: TestKey, marker = ''): string => `${marker}${marker ? ' ' : ''}${hosts} ${k.type} ${k.text}`;

describe('known_hosts', () => {
  let ed: TestKey;
  let ed2: TestKey;
  let rsa: TestKey;
  let ecdsa: TestKey;

  before(() => {
    ed = genKey(['-t', 'ed25519']);
    ed2 = genKey(['-t', 'ed25519']);
    rsa = genKey(['-t', 'rsa', '-b', '2048']);
    ecdsa = genKey(['-t', 'ecdsa']);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  describe('fingerprints and key types', () => {
    it('prints the same SHA256 fingerprint as ssh-keygen -lf for ed25519, rsa and ecdsa keys', () => {
      for (const k of [ed, rsa, ecdsa]) {
        const out = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', k.pubFile], { encoding: 'utf8' });
        assert.equal(fingerprintSha256(k.blob), out.split(/\s+/)[1], k.type);
      }
    });

    it('reads the key type from the blob', () => {
      assert.deepEqual([ed, rsa, ecdsa].map((k) => keyTypeFromBlob(k.blob)), ['ssh-ed25519', 'ssh-rsa', 'ecdsa-sha2-nistp256']);
    });

    it('refuses a blob that does not start with an SSH string', () => {
      assert.throws(() => keyTypeFromBlob(Buffer.from([0, 0])), /too short/);
      assert.throws(() => keyTypeFromBlob(Buffer.from([0, 0, 0, 200, 65])), /does not start with a key type/);
    });
  });

  describe('plain entries', () => {
    it('knows a host listed with its key, among several names, case-insensitively', () => {
      const text = `# comment\n\n${line('other.example.org,kadi.example.org,192.0.2.10', ed)}\n`;
      assert.deepEqual(checkHostKey(text, 'KADI.example.org', 22, ed.type, ed.blob), { status: 'known' });
      assert.deepEqual(checkHostKey(text, '192.0.2.10', 22, ed.type, ed.blob), { status: 'known' });
    });

    it('treats a host that is not listed as unknown', () => {
      assert.deepEqual(checkHostKey(line('a.example.org', ed), 'b.example.org', 22, ed.type, ed.blob), { status: 'unknown' });
      assert.deepEqual(checkHostKey('', 'b.example.org', 22, ed.type, ed.blob), { status: 'unknown' });
    });

    it('looks up [host]:port for other ports, and only the bare name for port 22', () => {
      const text = `${line('[kadi.example.org]:2222', ed)}\n${line('plain.example.org', rsa)}\n`;
      assert.deepEqual(checkHostKey(text, 'kadi.example.org', 2222, ed.type, ed.blob), { status: 'known' });
      assert.deepEqual(checkHostKey(text, 'kadi.example.org', 22, ed.type, ed.blob), { status: 'unknown' });
      assert.deepEqual(checkHostKey(text, 'plain.example.org', 2222, rsa.type, rsa.blob), { status: 'unknown' });
    });

    it('reports a different key of the same type as changed, with the line numbers', () => {
      const text = `# header\n${line('kadi.example.org', ed)}\n${line('kadi.example.org', rsa)}\n`;
      assert.deepEqual(checkHostKey(text, 'kadi.example.org', 22, ed2.type, ed2.blob), {
        status: 'changed',
        expectedTypes: ['ssh-ed25519', 'ssh-rsa'],
        lines: [2],
      });
    });

    it('treats a key of a type not yet known for the host as unknown, naming the known types (as ssh does)', () => {
      const text = line('kadi.example.org', rsa);
      assert.deepEqual(checkHostKey(text, 'kadi.example.org', 22, ed.type, ed.blob), { status: 'unknown', otherKeyTypes: ['ssh-rsa'] });
    });

    it('accepts any of several keys listed for the host', () => {
      const text = `${line('kadi.example.org', ed)}\n${line('kadi.example.org', ed2)}\n`;
      assert.deepEqual(checkHostKey(text, 'kadi.example.org', 22, ed2.type, ed2.blob), { status: 'known' });
    });

    it('treats an RSA key offered as rsa-sha2-512 as an ssh-rsa key', () => {
      const text = line('kadi.example.org', rsa);
      const other = genKey(['-t', 'rsa', '-b', '2048']);
      assert.deepEqual(checkHostKey(text, 'kadi.example.org', 22, 'rsa-sha2-512', rsa.blob), { status: 'known' });
      assert.equal(checkHostKey(text, 'kadi.example.org', 22, 'rsa-sha2-512', other.blob).status, 'changed');
    });

    it('skips malformed lines and keeps counting lines for the ones after them', () => {
      const text = `garbage\nkadi.example.org ssh-ed25519\nkadi.example.org ssh-ed25519 !!!notbase64\n@weird ${line('kadi.example.org', ed2)}\n${line('kadi.example.org', ed)}`;
      const entries = parseKnownHosts(text);
      assert.deepEqual(entries.map((e) => e.line), [5]);
      assert.deepEqual(checkHostKey(text, 'kadi.example.org', 22, ed2.type, ed2.blob), { status: 'changed', expectedTypes: ['ssh-ed25519'], lines: [5] });
    });
  });

  describe('patterns', () => {
    it('matches * and ? wildcards against the whole name', () => {
      const text = `${line('*.example.org', ed)}\n${line('kadi?.lab', rsa)}\n`;
      assert.equal(checkHostKey(text, 'kadi.example.org', 22, ed.type, ed.blob).status, 'known');
      assert.equal(checkHostKey(text, 'example.org', 22, ed.type, ed.blob).status, 'unknown');
      assert.equal(checkHostKey(text, 'kadi1.lab', 22, rsa.type, rsa.blob).status, 'known');
      assert.equal(checkHostKey(text, 'kadi12.lab', 22, rsa.type, rsa.blob).status, 'unknown');
      assert.equal(checkHostKey(text, 'kadi.lab', 22, rsa.type, rsa.blob).status, 'unknown', '? is exactly one character');
    });

    it('needs a bracketed pattern for non-standard ports', () => {
      const text = `${line('*.example.org', ed)}\n${line('[*.lab]:2222', rsa)}\n`;
      assert.equal(checkHostKey(text, 'kadi.example.org', 2222, ed.type, ed.blob).status, 'unknown');
      assert.equal(checkHostKey(text, 'kadi.lab', 2222, rsa.type, rsa.blob).status, 'known');
    });

    it('lets a matching negated pattern exclude the host whatever else matches', () => {
      const text = line('!evil.example.org,*.example.org', ed);
      assert.equal(checkHostKey(text, 'kadi.example.org', 22, ed.type, ed.blob).status, 'known');
      assert.equal(checkHostKey(text, 'evil.example.org', 22, ed.type, ed.blob).status, 'unknown');
      assert.equal(checkHostKey(text, 'evil.example.org', 22, ed2.type, ed2.blob).status, 'unknown', 'not "changed" either');
    });
  });

  describe('markers', () => {
    it('refuses a @revoked key even when another line lists it as known', () => {
      const text = `${line('kadi.example.org', ed)}\n${line('*', ed, '@revoked')}\n`;
      assert.deepEqual(checkHostKey(text, 'kadi.example.org', 22, ed.type, ed.blob), { status: 'revoked', line: 2 });
    });

    it('does not let a @revoked line for another key affect this one', () => {
      const text = `${line('kadi.example.org', ed)}\n${line('*', ed2, '@revoked')}\n`;
      assert.deepEqual(checkHostKey(text, 'kadi.example.org', 22, ed.type, ed.blob), { status: 'known' });
    });

    it('ignores @cert-authority lines when checking a plain key', () => {
      const text = line('*.example.org', ed, '@cert-authority');
      assert.deepEqual(checkHostKey(text, 'kadi.example.org', 22, ed.type, ed.blob), { status: 'unknown' });
      assert.deepEqual(checkHostKey(text, 'kadi.example.org', 22, ed2.type, ed2.blob), { status: 'unknown' });
    });
  });

  describe('hashed entries', () => {
    it('finds hosts in a file hashed by ssh-keygen -H, with the port syntax too', () => {
      const hashed = hashWithSshKeygen(`${line('kadi.example.org', ed)}\n${line('[kadi.example.org]:2222', rsa)}\n${line('192.0.2.7', ecdsa)}\n`);
      assert.ok(hashed.split('\n').filter(Boolean).every((l) => l.startsWith('|1|')), hashed);
      assert.doesNotMatch(hashed, /kadi\.example\.org/);
      assert.deepEqual(checkHostKey(hashed, 'kadi.example.org', 22, ed.type, ed.blob), { status: 'known' });
      assert.deepEqual(checkHostKey(hashed, 'kadi.example.org', 2222, rsa.type, rsa.blob), { status: 'known' });
      assert.deepEqual(checkHostKey(hashed, '192.0.2.7', 22, ecdsa.type, ecdsa.blob), { status: 'known' });
      assert.deepEqual(checkHostKey(hashed, 'kadi.example.org', 2223, rsa.type, rsa.blob), { status: 'unknown' });
      assert.deepEqual(checkHostKey(hashed, 'kadi.example.org', 22, ed2.type, ed2.blob), { status: 'changed', expectedTypes: ['ssh-ed25519'], lines: [1] });
    });

    it('writes hashed lines that ssh-keygen -F finds', () => {
      const file = path.join(tmp, 'written_hashed');
      fs.writeFileSync(
        file,
        `${formatKnownHostsLine('Kadi.Example.org', 22, ed.type, ed.blob, { hashed: true })}\n` +
          `${formatKnownHostsLine('kadi.example.org', 2222, rsa.type, rsa.blob, { hashed: true })}\n`,
      );
      const find = (name: string): string => {
        try {
          return execFileSync('ssh-keygen', ['-F', name, '-f', file], { encoding: 'utf8' });
        } catch {
          return '';
        }
      };
      assert.match(find('kadi.example.org'), /ssh-ed25519/);
      assert.match(find('[kadi.example.org]:2222'), /ssh-rsa/);
      assert.equal(find('other.example.org'), '');
    });
  });

  describe('writing entries', () => {
    it('formats plain lines like ssh, with [host]:port for non-standard ports', () => {
      assert.equal(formatKnownHostsLine('Kadi.example.org', 22, ed.type, ed.blob), `kadi.example.org ssh-ed25519 ${ed.text}`);
      assert.equal(formatKnownHostsLine('::1', 2222, 'rsa-sha2-256', rsa.blob), `[::1]:2222 ssh-rsa ${rsa.text}`);
    });

    it('refuses host names that would change the meaning of the line', () => {
      for (const bad of ['a b', 'a,b', 'a\nb', '*.example.org', '!x', '']) {
        assert.throws(() => formatKnownHostsLine(bad, 22, ed.type, ed.blob), /Cannot write/, JSON.stringify(bad));
      }
    });

    it('creates ~/.ssh as 0700 and known_hosts as 0600, and the appended host is then known', () => {
      const file = path.join(tmp, 'home1', '.ssh', 'known_hosts');
      appendKnownHost(file, formatKnownHostsLine('kadi.example.org', 2222, ed.type, ed.blob));
      assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(checkHostKey(fs.readFileSync(file, 'utf8'), 'kadi.example.org', 2222, ed.type, ed.blob), { status: 'known' });
    });

    it('appends after existing content and supplies a missing final newline first', () => {
      const file = path.join(tmp, 'kh_no_newline');
      fs.writeFileSync(file, line('a.example.org', rsa), { mode: 0o644 });
      appendKnownHost(file, line('b.example.org', ed));
      assert.equal(fs.readFileSync(file, 'utf8'), `${line('a.example.org', rsa)}\n${line('b.example.org', ed)}\n`);
      assert.equal(fs.statSync(file).mode & 0o777, 0o644, "an existing file's mode is left alone");
    });

    it('refuses to append more than one line', () => {
      const file = path.join(tmp, 'kh_injection');
      assert.throws(() => appendKnownHost(file, `${line('a', ed)}\n* ${ed2.type} ${ed2.text}`), /single line/);
      assert.equal(fs.existsSync(file), false);
    });
  });
});

describe('host key types already known', () => {
  it('are offered first, so a server with several keys shows the one known', () => {
    const all = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
    assert.deepEqual(preferredHostKeyAlgorithms(['ecdsa-sha2-nistp256'], all), ['ecdsa-sha2-nistp256', 'ssh-ed25519', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
    assert.deepEqual(preferredHostKeyAlgorithms(['ssh-rsa'], all).slice(0, 3), ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
    assert.deepEqual(preferredHostKeyAlgorithms([], all), all);
  });

  it('a key of a new type for a host known with other types is refused without a person deciding, also with --accept-new-host-key', async () => {
    const writes: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    (process.stderr as { write: unknown }).write = (s: string) => (writes.push(String(s)), true);
    try {
      const info = { profile: 'prod', host: 'kadi.example.org', port: 22, keyType: 'ssh-ed25519', fingerprint: 'SHA256:x', otherKeyTypes: ['ecdsa-sha2-nistp256'] };
      assert.equal(await new TerminalHostKeys(true).onUnknownHostKey(info), 'reject');
      assert.equal(await new TerminalHostKeys(true).onUnknownHostKey({ ...info, otherKeyTypes: undefined }), 'trust');
    } finally {
      (process.stderr as { write: unknown }).write = write;
    }
    assert.match(writes.join(''), /WARNING: known_hosts has ecdsa-sha2-nistp256 key\(s\) for this host, not ssh-ed25519/);
  });

  it('secrets for unattended runs can be given per host', () => {
    assert.equal(envHostSuffix('kadi prod-2'), 'KADI_PROD_2');
  });
});
