/**
 * Field checks. Each returns undefined when the value is fine, or the rest of a sentence that starts
 * with the field's name ("must be ..."), so every message reads the same way.
 */
import { describeValue } from './errors';

export type Check = (value: unknown) => string | undefined;

const CONTROL = /[\u0000-\u001f\u007f]/;
const got = (v: unknown): string => ` (got ${describeValue(v)})`;

export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export function integer(min: number, max: number): Check {
  return (v) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
      ? undefined
      : `must be an integer between ${min} and ${max}${got(v)}`;
}

export const boolean: Check = (v) => (typeof v === 'boolean' ? undefined : `must be true or false${got(v)}`);

export function oneOf(values: readonly string[]): Check {
  return (v) =>
    typeof v === 'string' && values.includes(v)
      ? undefined
      : `must be one of ${values.map((x) => JSON.stringify(x)).join(', ')}${got(v)}`;
}

export const profileName: Check = (v) => {
  if (typeof v !== 'string' || v.trim() === '') return `must be a non-empty label${got(v)}`;
  if (v !== v.trim()) return `must not start or end with spaces${got(v)}`;
  if (CONTROL.test(v)) return `must not contain control characters${got(v)}`;
  if (v.length > 64) return `must be at most 64 characters long${got(v)}`;
  return undefined;
};

/**
 * A path on the Kadi host. Absolute because commands run from an unknown working directory; no
 * ".." and not "/" because backup and restore steps create and delete below these paths.
 */
export const remotePath: Check = (v) => {
  if (typeof v !== 'string' || !v.startsWith('/')) return `must be an absolute path on the host, starting with "/"${got(v)}`;
  if (CONTROL.test(v)) return `must not contain control characters such as newlines${got(v)}`;
  if (v.split('/').includes('..')) return `must not contain ".." segments${got(v)}`;
  if (/^\/+$/.test(v)) return `must not be the root directory "/"`;
  return undefined;
};

/** A file on this machine; "~" and OpenSSH %-tokens are expanded when the profile is resolved. */
export const localPath: Check = (v) => {
  if (typeof v !== 'string' || !(v.startsWith('/') || v.startsWith('~/') || v.startsWith('%d/') || /^[A-Za-z]:[\\/]/.test(v))) {
    return `must be an absolute path on this machine or start with "~/"${got(v)}`;
  }
  return CONTROL.test(v) ? `must not contain control characters${got(v)}` : undefined;
};

/** POSIX-portable user names (what useradd accepts by default); they end up in `sudo -u`. */
export const unixUser: Check = (v) =>
  typeof v === 'string' && /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/.test(v)
    ? undefined
    : `must be a Unix user name: letters, digits, "_", "." or "-", starting with a letter or "_", at most 32 characters${got(v)}`;

/** systemd unit names (plus templates like getty@tty1); never starting with "-" so they are not options. */
export const serviceName: Check = (v) =>
  typeof v === 'string' && /^[A-Za-z0-9_:.\\@][A-Za-z0-9_:.\\@-]{0,255}$/.test(v)
    ? undefined
    : `must be a systemd service name such as "apache2" or "kadi-celery"${got(v)}`;

export const serviceList: Check = (v) => {
  if (!Array.isArray(v)) return `must be a list of systemd service names, e.g. ["apache2", "kadi-uwsgi"]${got(v)}`;
  const seen = new Set<string>();
  for (let i = 0; i < v.length; i++) {
    const item: unknown = v[i];
    if (serviceName(item) !== undefined) {
      return `item ${i + 1} must be a systemd service name such as "apache2" or "kadi-celery"${got(item)}`;
    }
    const name = String(item);
    if (seen.has(name)) return `lists ${JSON.stringify(name)} more than once`;
    seen.add(name);
  }
  return undefined;
};

/** An absolute path or a bare command found on the host's PATH. */
export const commandPath: Check = (v) => {
  if (typeof v === 'string' && v.startsWith('/')) return remotePath(v);
  return typeof v === 'string' && /^[A-Za-z0-9_.+][A-Za-z0-9_.+-]*$/.test(v)
    ? undefined
    : `must be an absolute path or a command name such as "redis-cli"${got(v)}`;
};

const HOST_CHARS = /^[A-Za-z0-9_.%:-]+$/;

/** What ssh is pointed at: a DNS name, an IPv4/IPv6 address or a ~/.ssh/config alias. */
export const sshHost: Check = (v) => {
  if (typeof v !== 'string' || v === '') return `must be a host name, address or ~/.ssh/config alias${got(v)}`;
  if (v.includes('@')) return `must not contain "@"; put the login name in ssh.user instead${got(v)}`;
  if (/^[^:]+:\d+$/.test(v)) return `must not contain a port; put it in ssh.port instead${got(v)}`;
  if (/^\[.*\]$/.test(v)) return `must be written without brackets; put a port in ssh.port${got(v)}`;
  if (v.startsWith('-')) return `must not start with "-"${got(v)}`;
  if (!HOST_CHARS.test(v)) {
    return `must be a host name, address or ~/.ssh/config alias without spaces or special characters${got(v)}`;
  }
  return undefined;
};

const HOP = /^(?:ssh:\/\/)?(?:[A-Za-z0-9_.-]+@)?(?:[A-Za-z0-9_.%-]+|\[[0-9A-Fa-f:.%]+\])(?::\d{1,5})?$/;

/** ProxyJump as ssh(1) -J takes it: "none", or comma-separated [user@]host[:port] hops. */
export const proxyJump: Check = (v) => {
  if (v === 'none') return undefined;
  if (typeof v === 'string' && v !== '' && v.split(',').every((hop) => HOP.test(hop) && !hop.startsWith('-'))) return undefined;
  return `must be "none" or a comma-separated list of [user@]host[:port], e.g. "admin@bastion.example.org:2222"${got(v)}`;
};

/** Database host: a name/address, or the directory of PostgreSQL's Unix socket. */
export const databaseHost: Check = (v) => {
  if (typeof v === 'string' && v.startsWith('/')) return remotePath(v);
  return typeof v === 'string' && HOST_CHARS.test(v) && !v.startsWith('-')
    ? undefined
    : `must be a host name, an address, or the absolute path of the PostgreSQL socket directory${got(v)}`;
};

/** PostgreSQL identifiers are at most 63 bytes (NAMEDATALEN - 1). */
export const postgresName: Check = (v) => {
  if (typeof v !== 'string' || v === '') return `must be a non-empty PostgreSQL name${got(v)}`;
  if (CONTROL.test(v)) return `must not contain control characters${got(v)}`;
  if (Buffer.byteLength(v, 'utf8') > 63) return `must be at most 63 bytes long (PostgreSQL's limit)${got(v)}`;
  if (v.startsWith('-')) return `must not start with "-"${got(v)}`;
  return undefined;
};

export const maxAgeHours: Check = (v) =>
  typeof v === 'number' && Number.isFinite(v) && v > 0 && v <= 8760
    ? undefined
    : `must be a number of hours greater than 0 and at most 8760 (one year)${got(v)}`;

/** A systemd calendar expression (OnCalendar=): one line; systemd-analyze checks the rest on the host. */
export const calendar: Check = (v) => {
  if (typeof v !== 'string' || v.trim() === '') return `must be a systemd calendar expression such as "daily" or "*-*-* 02:30:00"${got(v)}`;
  if (CONTROL.test(v)) return `must not contain control characters such as newlines${got(v)}`;
  if (v.length > 200) return `must be at most 200 characters long${got(v)}`;
  return undefined;
};

/** restic's repository address: no spaces, and never a password in it (it would be stored and shown in the process list). */
export const resticRepository: Check = (v) => {
  if (typeof v !== 'string' || !/^[^\s]{1,2000}$/.test(v)) return `must be a restic repository address such as "sftp:backup@offsite.example.org:/srv/restic/kadi" or "s3:https://s3.example.org/bucket/kadi"${got(v)}`;
  if ((!/^[a-z0-9]+:/.test(v) && !v.startsWith('/')) || /^local:(?!\/)/.test(v)) {
    return `must be an absolute path when it is a path (restic would take a relative one from the directory it runs in)${got(v)}`;
  }
  if (/^[a-z0-9]+:(\/\/)?[^/@]*:[^/@]*@/.test(v) || /^(rest|s3|swift|b2|azure|gs):[a-z]+:\/\/[^/@]*:[^/@]*@/.test(v)) {
    return 'must not hold a password (it would be stored in the plan and shown in the process list): give credentials to `kadi-ops offsite init` in the environment';
  }
  return undefined;
};

/** An http(s) URL (a monitoring endpoint). Shown nowhere: such URLs are secrets of their own. */
export const httpUrl: Check = (v) => {
  if (typeof v !== 'string' || !/^https?:\/\/[^\s]{1,2000}$/.test(v)) return `must be an http:// or https:// URL without spaces (got ${typeof v === 'string' ? 'another value' : describeValue(v)})`;
  return undefined;
};
