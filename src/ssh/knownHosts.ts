/**
 * OpenSSH known_hosts, read and written the way ssh(1) does (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"),
 * so a key trusted with `ssh` is trusted here and the other way round.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface KnownHostEntry {
  /** 1-based line number in the file. */
  line: number;
  marker?: 'revoked' | 'cert-authority';
  /** The host field as written: `a,b,[c]:2222`, patterns, or a hashed `|1|salt|hmac`. */
  hosts: string;
  keyType: string;
  key: Buffer;
}

export type HostKeyStatus =
  | { status: 'known' }
  /** `otherKeyTypes` (only present when non-empty) lists key types already known for this host. */
  | { status: 'unknown'; otherKeyTypes?: string[] }
  /** `expectedTypes`: every key type known for the host; `lines`: the entries of the offered type that differ. */
  | { status: 'changed'; expectedTypes: string[]; lines: number[] }
  | { status: 'revoked'; line: number };

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Parses known_hosts text; malformed lines are skipped, as ssh(1) does. */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, index) => {
    const fields = raw.trim().split(/[ \t]+/);
    if (fields[0] === '' || fields[0].startsWith('#')) return;
    let marker: KnownHostEntry['marker'];
    if (fields[0].startsWith('@')) {
      if (fields[0] === '@revoked') marker = 'revoked';
      else if (fields[0] === '@cert-authority') marker = 'cert-authority';
      else return;
      fields.shift();
    }
    const [hosts, keyType, keyText] = fields;
    if (!hosts || !keyType || !keyText || !BASE64.test(keyText)) return;
    out.push({ line: index + 1, ...(marker ? { marker } : {}), hosts, keyType, key: Buffer.from(keyText, 'base64') });
  });
  return out;
}

/** The name ssh(1) looks up: the bare host on port 22, `[host]:port` otherwise; host names are case-insensitive. */
export function knownHostsName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

function hashedMatches(field: string, name: string): boolean {
  const [, magic, salt, hash] = field.split('|');
  if (magic !== '1' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

function wildcardMatches(pattern: string, name: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 'i').test(name);
}

/**
 * Does the host field match? Hashed fields hold exactly one name. Pattern lists follow ssh's
 * match_hostname(): a matching negated pattern (`!pat`) excludes the host even if another pattern
 * matches. Patterns are matched against the whole lookup name, so `*.example.org` does not cover
 * `[a.example.org]:2222` (write `[*.example.org]:2222`), exactly as in OpenSSH.
 */
export function hostFieldMatches(field: string, host: string, port: number): boolean {
  const name = knownHostsName(host, port);
  if (field.startsWith('|')) return hashedMatches(field, name);
  let positive = false;
  for (const pattern of field.split(',')) {
    if (pattern.startsWith('!')) {
      if (wildcardMatches(pattern.slice(1), name)) return false;
    } else if (wildcardMatches(pattern, name)) positive = true;
  }
  return positive;
}

/** The algorithm name inside a public key blob (its first SSH string), e.g. "ssh-ed25519". */
export function keyTypeFromBlob(blob: Buffer): string {
  if (blob.length < 4) throw new Error('Public key blob is too short');
  const len = blob.readUInt32BE(0);
  if (len === 0 || len > 64 || 4 + len > blob.length) throw new Error('Public key blob does not start with a key type');
  return blob.subarray(4, 4 + len).toString('latin1');
}

/** Signature algorithms name the key type they sign with (RFC 8332): rsa-sha2-* keys are ssh-rsa keys. */
function normalizeKeyType(t: string): string {
  return t === 'rsa-sha2-256' || t === 'rsa-sha2-512' ? 'ssh-rsa' : t;
}

function entryType(e: KnownHostEntry): string {
  try {
    return keyTypeFromBlob(e.key);
  } catch {
    return normalizeKeyType(e.keyType);
  }
}

/**
 * Checks the key a server offered. Order as in ssh(1): a matching @revoked entry wins over
 * everything; then any entry with this exact key makes it known. A different key of the SAME type
 * is "changed". If the host only has keys of OTHER types the result is "unknown" (with
 * `otherKeyTypes`), because ssh(1) does the same: it asks, warning that keys of another type are
 * already known, rather than refusing. @cert-authority entries vouch for certificates, not plain
 * keys, and are ignored. Only `host` is checked; to mimic CheckHostIP call again with the address.
 */
export function checkHostKey(knownHostsText: string, host: string, port: number, keyType: string, keyBlob: Buffer): HostKeyStatus {
  const entries = parseKnownHosts(knownHostsText).filter((e) => e.marker !== 'cert-authority' && hostFieldMatches(e.hosts, host, port));
  const revoked = entries.find((e) => e.marker === 'revoked' && e.key.equals(keyBlob));
  if (revoked) return { status: 'revoked', line: revoked.line };
  const plain = entries.filter((e) => e.marker === undefined);
  if (plain.some((e) => e.key.equals(keyBlob))) return { status: 'known' };
  const type = normalizeKeyType(keyType);
  const knownTypes = [...new Set(plain.map(entryType))].sort();
  const sameType = plain.filter((e) => entryType(e) === type);
  if (sameType.length > 0) return { status: 'changed', expectedTypes: knownTypes, lines: sameType.map((e) => e.line) };
  return knownTypes.length > 0 ? { status: 'unknown', otherKeyTypes: knownTypes } : { status: 'unknown' };
}

/** The key types known (not revoked) for this host, e.g. ['ssh-ed25519']. */
export function knownKeyTypes(knownHostsText: string, host: string, port: number): string[] {
  const entries = parseKnownHosts(knownHostsText).filter((e) => e.marker === undefined && hostFieldMatches(e.hosts, host, port));
  return [...new Set(entries.map(entryType))].sort();
}

/** `SHA256:<base64 without padding>`, byte for byte what `ssh-keygen -lf` prints. */
export function fingerprintSha256(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * One known_hosts line for this host and key. `hashed` writes `|1|salt|HMAC-SHA1(salt, name)` like
 * `ssh-keygen -H` / HashKnownHosts, so the file does not reveal which hosts the user connects to.
 */
export function formatKnownHostsLine(host: string, port: number, keyType: string, keyBlob: Buffer, opts: { hashed?: boolean } = {}): string {
  if (!/^[^\s,#@|!*?]+$/.test(host)) throw new Error(`Cannot write a known_hosts entry for host ${JSON.stringify(host)}`);
  const name = knownHostsName(host, port);
  let field = name;
  if (opts.hashed) {
    const salt = randomBytes(20);
    field = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
  }
  let type = normalizeKeyType(keyType);
  try {
    type = keyTypeFromBlob(keyBlob); // the blob is authoritative if the caller passed a signature algorithm
  } catch {
    /* keep the given type */
  }
  return `${field} ${type} ${keyBlob.toString('base64')}`;
}

/**
 * Appends one line, creating the directory (0700) and file (0600) if needed. A single write in append
 * mode keeps concurrent writers from interleaving within the line; a missing final newline in the
 * existing file is supplied first so the new entry does not merge into the last one.
 */
export function appendKnownHost(file: string, line: string): void {
  if (/[\r\n\0]/.test(line)) throw new Error('A known_hosts entry must be a single line');
  const dir = path.dirname(file);
  if (!fs.existsSync(dir)) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const fd = fs.openSync(file, 'a+', 0o600);
  try {
    const size = fs.fstatSync(fd).size;
    let prefix = '';
    if (size > 0) {
      const last = Buffer.alloc(1);
      fs.readSync(fd, last, 0, 1, size - 1);
      if (last[0] !== 0x0a) prefix = '\n';
    }
    fs.writeSync(fd, `${prefix}${line}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
