/**
 * The plan a host runs without a client (a scheduled backup): its TypeScript shape and its
 * validation against the one schema both sides use, agent/kadi_ops_agent/plan.schema.json (the agent
 * validates with agent/kadi_ops_agent/plan.py). test/unit/plan.test.ts runs both validators over the
 * same plans and requires the same verdicts and messages, so they cannot drift.
 *
 * A small validator for the schema's few keywords rather than a JSON Schema library: the agent must
 * implement the same subset with the Python standard library anyway, and the two are kept equal by
 * that test; a library here would accept keywords the agent ignores.
 */
import schemaJson from '../../agent/kadi_ops_agent/plan.schema.json';

export interface HostPlan {
  version: 1;
  host: { name: string; backupDir: string };
  kadi: { cli: string; configFile: string };
  components: {
    database: { dumpCompression: number };
    /** Overrides of STORAGE_PATH / MISC_UPLOADS_PATH; otherwise read from Kadi's configuration at run time. */
    storage: { path?: string };
    uploads: { path?: string };
    redis: { enabled: boolean; cli?: string; port?: number; dumpPath?: string };
    config: Record<string, never>;
  };
  backup: { filesMode: 'tree' | 'archive'; stopServices?: boolean; services?: string[] };
  retention?: { keepLast?: number; keepDaily?: number; keepWeekly?: number; keepMonthly?: number; minKeep?: number };
  /** When the host runs this plan on its own (agent schedule.py; see the schema's $comment). */
  schedule?: PlanSchedule;
  /** Where a scheduled run reports (agent monitoring.py). The URLs are secrets of their own: never logged. */
  monitoring?: PlanMonitoring;
  /** Off-site copies in a restic repository (agent offsite.py; see the schema's $comment). */
  offsite?: PlanOffsite;
  /**
   * What the client found on the host (connection, paths, client binaries, versions). A plan stored
   * on the host has none: run-plan finds them there when it runs (they would go stale).
   */
  facts?: PlanFacts;
}

export interface PlanSchedule {
  /** systemd OnCalendar syntax, e.g. "*-*-* 02:30:00" or "daily". */
  calendar: string;
  randomizedDelaySec?: number;
  verify?: 'none' | 'quick';
  deepCalendar?: string;
  whenBusy?: 'wait' | 'skip';
  unit?: 'system' | 'user';
}

export interface PlanMonitoring {
  start?: string;
  success?: string;
  failure?: string;
  webhook?: string;
  ntfy?: string;
}

export interface PlanRetentionRules {
  keepLast?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  minKeep?: number;
}

export interface PlanOffsite {
  /** restic's repository address: sftp:user@host:/path, sftp://user@host:port//path, s3:https://host/bucket/path, rest:…, a path. Never a password in it. */
  repository: string;
  /** A CA certificate file on the host, for an https backend with its own CA. */
  caCert?: string;
  /** What ssh uses for an sftp: repository (always BatchMode, host key checked). */
  sftp?: { identityFile?: string; knownHostsFile?: string };
  /** Off-site retention: local retention's rules, pins and floors. */
  keep?: PlanRetentionRules;
  /** A scheduled run copies its new set off-site (default true). */
  pushAfterBackup?: boolean;
  /** How long a push may make no progress while restic retries an unreachable repository before it is stopped (default 600 s). */
  stallSeconds?: number;
}

export interface PlanFacts {
  toolVersion?: string;
  kadiVersion?: string;
  alembicRevision?: string;
  database: { host: string; port: number; name: string; user: string };
  storagePath: string;
  uploadsPath: string;
  oidcKeys?: string[];
  postgres: { psql: string; pgDump: string; pgRestore: string; serverVersionNum?: number; serverMajor?: number };
}

/** What a job or verb is told about Kadi's Redis: its broker URL's host and port, and its credentials (password '' without). */
export interface RedisAuthJson {
  /** A Unix socket path (the broker URL names no host then). */
  socket?: string;
  host: string;
  port: number;
  user: string;
  password: string;
}

/**
 * What a job gets on stdin with a plan: one JSON document; the job keeps it in its 0600 secret file only.
 * redis: where Kadi's Redis is and its credentials (redisAuthJson), when its broker URL is a Redis one.
 */
export function planJobInput(plan: HostPlan, db: { password: string; pg_params?: Record<string, string> }, listing?: string, redis?: RedisAuthJson): string {
  return JSON.stringify({ ...db, plan: checkPlan(plan), ...(listing !== undefined ? { listing } : {}), ...(redis ? { redis } : {}) });
}

interface SchemaNode {
  type?: 'object' | 'array' | 'string' | 'boolean' | 'integer';
  const?: unknown;
  enum?: unknown[];
  required?: string[];
  properties?: Record<string, SchemaNode>;
  additionalProperties?: boolean;
  items?: SchemaNode;
  minimum?: number;
  maximum?: number;
  pattern?: string;
}

export const PLAN_SCHEMA = schemaJson as SchemaNode;

const isType: Record<NonNullable<SchemaNode['type']>, (v: unknown) => boolean> = {
  object: (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
  array: Array.isArray,
  string: (v) => typeof v === 'string',
  boolean: (v) => typeof v === 'boolean',
  integer: (v) => typeof v === 'number' && Number.isInteger(v),
};

/** JSON text as Python's json.dumps writes it (", " and ": " separators), for identical messages. */
function pyJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(pyJson).join(', ')}]`;
  if (typeof v === 'object' && v !== null) return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${pyJson(x)}`).join(', ')}}`;
  return JSON.stringify(v).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Plan paths whose values may hold a secret: named in an error, never shown. */
const SECRET_PATHS = ['plan.monitoring', 'plan.offsite'];

/** Every way DOC breaks the schema, as `PATH: WHY` (empty: valid); the same messages as plan.py. */
export function validatePlan(doc: unknown, node: SchemaNode = PLAN_SCHEMA, path = 'plan'): string[] {
  const errors: string[] = [];
  const t = node.type;
  if (t && !isType[t](doc)) return [`${path}: must be ${'aeiou'.includes(t[0]) ? 'an' : 'a'} ${t}`];
  if ('const' in node && doc !== node.const) errors.push(`${path}: must be ${pyJson(node.const)}`);
  if (node.enum && !node.enum.includes(doc)) errors.push(`${path}: must be one of ${node.enum.map(pyJson).join(', ')}`);
  if (t === 'object' && isType.object(doc)) {
    const obj = doc as Record<string, unknown>;
    for (const k of node.required ?? []) if (!(k in obj)) errors.push(`${path}: ${k} is missing`);
    for (const [k, v] of Object.entries(obj)) {
      const p = node.properties?.[k];
      if (p) errors.push(...validatePlan(v, p, `${path}.${k}`));
      else if (node.additionalProperties === false) errors.push(`${path}: unknown key ${k}`);
    }
  }
  if (Array.isArray(doc) && node.items) doc.forEach((v, i) => errors.push(...validatePlan(v, node.items, `${path}[${i}]`)));
  if (typeof doc === 'number') {
    if (node.minimum !== undefined && doc < node.minimum) errors.push(`${path}: must be at least ${node.minimum}`);
    if (node.maximum !== undefined && doc > node.maximum) errors.push(`${path}: must be at most ${node.maximum}`);
  }
  if (typeof doc === 'string' && node.pattern !== undefined && !new RegExp(node.pattern, 'u').test(doc)) {
    // Monitoring URLs, an off-site repository's address: secrets as good as a password, never echoed (as the agent's plan.validate).
    const shown = SECRET_PATHS.some((p) => path.startsWith(p)) ? '(value not shown: it may hold a secret)' : pyJson(doc);
    errors.push(`${path}: ${shown} does not match ${node.pattern}`);
  }
  return errors;
}

export class PlanError extends Error {
  constructor(readonly problems: string[]) {
    super(`The plan is not valid: ${problems.join('; ')}`);
  }
}

export function checkPlan(doc: unknown): HostPlan {
  const problems = validatePlan(doc);
  if (problems.length > 0) throw new PlanError(problems);
  return doc as HostPlan;
}
