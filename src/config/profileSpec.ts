/**
 * The shape of a host profile as data: which keys exist, which are required, and how each value is
 * checked. The validator walks it, and a unit test compares it with the settings schema in
 * package.json, so the two cannot drift apart.
 */
import * as c from './checks';
import { describeValue } from './errors';
import { closestKey } from './suggest';

export interface LeafSpec {
  kind: 'leaf';
  check: c.Check;
}
export interface ObjectSpec {
  kind: 'object';
  fields: Readonly<Record<string, FieldSpec>>;
  required?: readonly string[];
  /** Example shown when the value is not an object at all. */
  example?: string;
}
export type FieldSpec = LeafSpec | ObjectSpec;

const leaf = (check: c.Check): LeafSpec => ({ kind: 'leaf', check });

/** Retention's rules, for the schedule's retention and the off-site keep alike. */
const RETENTION_RULES: ObjectSpec['fields'] = {
  keepLast: leaf(c.integer(0, 100000)),
  keepDaily: leaf(c.integer(0, 100000)),
  keepWeekly: leaf(c.integer(0, 100000)),
  keepMonthly: leaf(c.integer(0, 100000)),
  minKeep: leaf(c.integer(1, 100000)),
};

export const PROFILE_SPEC: ObjectSpec = {
  kind: 'object',
  required: ['name', 'ssh'],
  example: '{ "name": "prod", "ssh": { "host": "kadi.example.org" } }',
  fields: {
    name: leaf(c.profileName),
    ssh: {
      kind: 'object',
      required: ['host'],
      example: '{ "host": "kadi.example.org" }',
      fields: {
        host: leaf(c.sshHost),
        port: leaf(c.integer(1, 65535)),
        user: leaf(c.unixUser),
        identityFile: leaf(c.localPath),
        agent: leaf(c.boolean),
        proxyJump: leaf(c.proxyJump),
        knownHostsFile: leaf(c.localPath),
        keepaliveIntervalSeconds: leaf(c.integer(0, 3600)),
        connectTimeoutSeconds: leaf(c.integer(1, 600)),
      },
    },
    runAs: leaf(c.oneOf(['direct', 'sudo'])),
    kadi: {
      kind: 'object',
      example: '{ "user": "kadi" }',
      fields: {
        user: leaf(c.unixUser),
        cli: leaf(c.remotePath),
        configFile: leaf(c.remotePath),
      },
    },
    backupDir: leaf(c.remotePath),
    services: leaf(c.serviceList),
    redis: {
      kind: 'object',
      example: '{ "enabled": true }',
      fields: {
        enabled: leaf(c.boolean),
        dumpPath: leaf(c.remotePath),
        service: leaf(c.serviceName),
        cli: leaf(c.commandPath),
        port: leaf(c.integer(1, 65535)),
      },
    },
    overrides: {
      kind: 'object',
      example: '{ "storagePath": "/srv/kadi/storage" }',
      fields: {
        database: {
          kind: 'object',
          example: '{ "name": "kadi" }',
          fields: {
            host: leaf(c.databaseHost),
            port: leaf(c.integer(1, 65535)),
            name: leaf(c.postgresName),
            user: leaf(c.postgresName),
          },
        },
        storagePath: leaf(c.remotePath),
        uploadsPath: leaf(c.remotePath),
      },
    },
    backupMaxAgeHours: leaf(c.maxAgeHours),
    dumpCompression: leaf(c.integer(0, 9)),
    jobHistory: {
      kind: 'object',
      example: '{ "keepLast": 100, "keepDays": 30 }',
      fields: { keepLast: leaf(c.integer(1, 100000)), keepDays: leaf(c.integer(1, 3650)) },
    },
    schedule: {
      kind: 'object',
      required: ['calendar'],
      example: '{ "calendar": "*-*-* 02:30:00", "verify": "quick", "retention": { "keepDaily": 7 } }',
      fields: {
        calendar: leaf(c.calendar),
        randomizedDelaySec: leaf(c.integer(0, 86400)),
        verify: leaf(c.oneOf(['none', 'quick'])),
        deepCalendar: leaf(c.calendar),
        whenBusy: leaf(c.oneOf(['wait', 'skip'])),
        unit: leaf(c.oneOf(['system', 'user'])),
        retention: { kind: 'object', example: '{ "keepDaily": 7, "keepWeekly": 4 }', fields: RETENTION_RULES },
      },
    },
    offsite: {
      kind: 'object',
      required: ['repository'],
      example: '{ "repository": "sftp:backup@offsite.example.org:/srv/restic/kadi", "keep": { "keepDaily": 7, "keepMonthly": 12 } }',
      fields: {
        repository: leaf(c.resticRepository),
        caCert: leaf(c.remotePath),
        sftp: { kind: 'object', example: '{ "identityFile": "/home/kadi/.ssh/offsite" }', fields: { identityFile: leaf(c.remotePath), knownHostsFile: leaf(c.remotePath) } },
        keep: { kind: 'object', example: '{ "keepDaily": 7, "keepMonthly": 12 }', fields: RETENTION_RULES },
        pushAfterBackup: leaf(c.boolean),
        stallSeconds: leaf(c.integer(5, 86400)),
      },
    },
    monitoring: {
      kind: 'object',
      example: '{ "failure": "https://hc-ping.com/<uuid>/fail" }',
      fields: { start: leaf(c.httpUrl), success: leaf(c.httpUrl), failure: leaf(c.httpUrl), webhook: leaf(c.httpUrl), ntfy: leaf(c.httpUrl) },
    },
  },
};

/** Reports one problem: the dotted field path and a message that starts with that path. */
export type Report = (field: string, message: string) => void;

/**
 * Checks `value` against `spec`, reporting every bad field once. Returns true when nothing was
 * reported, i.e. the value has exactly the shape the spec describes.
 */
export function validateAgainst(value: unknown, spec: FieldSpec, path: string, report: Report): boolean {
  if (spec.kind === 'leaf') {
    const problem = spec.check(value);
    if (problem !== undefined) report(path, `${path} ${problem}`);
    return problem === undefined;
  }
  if (!c.isPlainObject(value)) {
    const what = path === '' ? 'Each host' : path;
    const example = spec.example ? ` such as ${spec.example}` : '';
    report(path, `${what} must be an object${example} (got ${describeValue(value)})`);
    return false;
  }
  let ok = true;
  const known = Object.keys(spec.fields);
  const prefix = path === '' ? '' : `${path}.`;
  for (const key of Object.keys(value)) {
    const field = `${prefix}${key}`;
    const fieldSpec = Object.prototype.hasOwnProperty.call(spec.fields, key) ? spec.fields[key] : undefined;
    if (fieldSpec === undefined) {
      const guess = closestKey(key, known);
      const hint = guess ? `; did you mean "${prefix}${guess}"?` : `; known settings here: ${known.join(', ')}`;
      report(field, `${field} is not a known setting${hint}`);
      ok = false;
    } else if (value[key] !== undefined && !validateAgainst(value[key], fieldSpec, field, report)) {
      ok = false;
    }
  }
  for (const key of spec.required ?? []) {
    if (value[key] === undefined) {
      const child = spec.fields[key];
      const example = child.kind === 'object' && child.example ? `, e.g. ${child.example}` : '';
      report(`${prefix}${key}`, `${prefix}${key} is required${example}`);
      ok = false;
    }
  }
  return ok;
}

/** Every dotted key path the spec knows (objects and leaves), for the schema consistency test. */
export function specPaths(spec: ObjectSpec, prefix = ''): string[] {
  const out: string[] = [];
  for (const [key, child] of Object.entries(spec.fields)) {
    const p = `${prefix}${key}`;
    out.push(p);
    if (child.kind === 'object') out.push(...specPaths(child, `${p}.`));
  }
  return out;
}
