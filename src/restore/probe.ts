/** The live side of a restore target, read by the agent's restore-probe verb in one round trip. */
import type { HostProfile } from '../config/types';
import { verbSecrets, type Discovery, type HostFacts } from '../kadi/discovery';
import { parseKeyValues, runAgent } from '../remote/agent';
import { RemoteCommandError, type RemoteHost } from '../remote/remoteHost';
import { parseLiveDb, type LiveDb } from './dbPlan';

export interface TreeProbe {
  missing: boolean;
  owner?: string;
  group?: string;
  /** The root's permission bits, octal (e.g. '755'). */
  mode?: string;
  /** The restoring user may write and enter the root; undefined: not known (an older agent). */
  writable?: boolean;
  freeBytes?: number;
  bytes?: number;
}

export interface ServiceProbe {
  name: string;
  exists: boolean;
  active?: boolean;
  /** `sudo -n -l` says the Kadi user may run both `systemctl stop <name>` and `systemctl start <name>`. */
  sudoAllowed?: boolean;
}

export interface LiveProbe {
  remoteUser: string;
  storage: TreeProbe;
  uploads: TreeProbe;
  backupFreeBytes?: number;
  /** Relations outside the system schemas; 0 means an empty database. */
  dbRelations?: number;
  dbBytes?: number;
  dbError?: string;
  /** The database's objects, owners and installable extensions (restore/dbPlan.ts). */
  db?: LiveDb;
  dbObjectsError?: string;
  systemctl: boolean;
  services: ServiceProbe[];
  /** Privileged commands a restore may run that sudoers does not allow, as the agent names them (agent privileges.py). */
  sudoMissing: string[];
  /** STORAGE_PATH, MISC_UPLOADS_PATH and the backup directory containing one another (links resolved). */
  pathConflicts: string[];
  /** Why Redis would not load a snapshot restored to the profile's dumpPath (appendonly yes, another dir or dbfilename). */
  redisRefused?: string;
  /** What of that could not be checked (Redis down, INFO or CONFIG refused, a path inside a container). */
  redisUnchecked?: string;
  /** Why Kadi's Redis is not on this host (its broker URL names another): no snapshot of it can be taken here. */
  redisAway?: string;
}

const kb = (v: string | undefined): number | undefined => (v === undefined || v === '' ? undefined : Number(v) * 1024);

export function parseProbe(text: string): LiveProbe {
  const kv = parseKeyValues(text);
  const tree = (n: string): TreeProbe => ({
    missing: kv.get(`${n}_missing`) === 'yes',
    owner: kv.get(`${n}_owner`),
    group: kv.get(`${n}_group`),
    mode: kv.get(`${n}_mode`),
    // undefined from an older agent: not known, not refused
    writable: kv.get(`${n}_writable`) === undefined ? undefined : kv.get(`${n}_writable`) === 'yes',
    freeBytes: kb(kv.get(`${n}_free_kb`)),
    bytes: kb(kv.get(`${n}_kb`)),
  });
  const services = kv.all('service').map((line): ServiceProbe => {
    const [name, state, active, sudo] = line.split(' ');
    return state === 'exists' ? { name, exists: true, active: active === 'active', sudoAllowed: sudo === 'sudo-ok' } : { name, exists: false };
  });
  const rel = kv.get('db_relations');
  const bytes = kv.get('db_bytes');
  let db: LiveDb | undefined;
  let dbObjectsError = kv.get('db_objects_error');
  const objects = kv.get('db_objects');
  if (objects !== undefined) {
    try {
      db = parseLiveDb(objects);
    } catch (e) {
      dbObjectsError = (e as Error).message;
    }
  }
  return {
    remoteUser: kv.get('me') ?? '',
    storage: tree('storage'),
    uploads: tree('uploads'),
    backupFreeBytes: kb(kv.get('backup_free_kb')),
    dbRelations: rel ? Number(rel) : undefined,
    dbBytes: bytes ? Number(bytes) : undefined,
    dbError: kv.get('db_error'),
    db,
    dbObjectsError,
    systemctl: kv.get('systemctl') === 'yes',
    services,
    sudoMissing: kv.all('sudo_missing'),
    pathConflicts: kv.all('path_conflict'),
    ...(kv.get('redis_refused') ? { redisRefused: kv.get('redis_refused') } : {}),
    ...(kv.get('redis_unchecked') ? { redisUnchecked: kv.get('redis_unchecked') } : {}),
    ...(kv.get('redis_away') ? { redisAway: kv.get('redis_away') } : {}),
  };
}

/** The options every probe of the live host takes: paths, the database, services and Redis. */
export function liveProbeOptions(p: HostProfile, f: HostFacts): Record<string, string> {
  return {
    backup_dir: p.backupDir,
    storage_path: f.storagePath,
    uploads_path: f.uploadsPath,
    pg_host: f.database.host,
    pg_port: String(f.database.port),
    pg_db: f.database.name,
    pg_user: f.database.user,
    psql: f.pg.psql ?? 'psql',
    services: p.services.join(' '),
    redis_service: p.redis.enabled ? p.redis.service : '',
    redis_dump: p.redis.enabled ? p.redis.dumpPath : '',
    redis_cli: p.redis.enabled ? p.redis.cli : '',
    redis_port: p.redis.enabled ? String(p.redis.port) : '',
  };
}

/**
 * NEED: the bytes each tree of the set holds. A live tree whose filesystem has room for all of it is
 * not measured (its du walks the whole tree); its size is then unknown and the plan counts the set's
 * whole tree as needed.
 */
export async function probeLive(host: RemoteHost, d: Discovery, need: Partial<Record<'storage' | 'uploads', number>> = {}): Promise<LiveProbe> {
  const p = host.profile;
  const kv = liveProbeOptions(p, d.facts);
  for (const [tree, bytes] of Object.entries(need)) if (bytes !== undefined) kv[`${tree}_need_kb`] = String(Math.ceil(bytes / 1024));
  const r = await runAgent(host, 'restore-probe', Object.entries(kv).map(([k, v]) => `${k}=${v}`), { stdin: verbSecrets(d) });
  if (r.code !== 0) throw new RemoteCommandError(`Probing ${p.name} for a restore`, r);
  return parseProbe(r.stdout);
}
