/**
 * What a database restore will do with each object, decided before anything is touched.
 *
 * The restore runs `pg_restore --single-transaction` (atomic: a failure changes nothing), as the Kadi
 * role, which on a real server does not own everything in its database: DBAs add extensions as the
 * superuser (pgcrypto, pg_trgm, pg_stat_statements) and sometimes functions or types as another
 * role. `--clean` would try to DROP those and fail, so this module compares the dump's table of
 * contents (`pg_restore -l -v`, with dependencies) with the live database (restore-probe's
 * `db_objects`) and decides per entry:
 *  - keep: the object exists and is not the Kadi role's to replace (an extension that is already
 *    installed, anything owned by a role whose privileges the Kadi role lacks): its entry and the
 *    comments and grants on it are commented out of the listing, so it is neither dropped nor
 *    re-created;
 *  - create: it is missing and will be created (a trusted extension; an object that another role
 *    owned in the set is created owned by the Kadi role, `--no-owner`);
 *  - refuse: it cannot be restored by this role (an untrusted extension that is missing: the exact
 *    statement a superuser must run is named; a table of another role whose data the set holds), or
 *    an edited listing cannot be applied (it keeps a schema but leaves out objects still in it, or an
 *    entry depends on one that is left out and missing). Refusals are plan blockers.
 * The result is the listing the job hands to `pg_restore -L`.
 */
import { dependsOn, entriesById, isDependsLine, parseListing, serializeListing, setEnabled, tocEntries, type TocEntry, type TocListing } from '../pgtoc/listing';

/** One live object, keyed as pg_dump names it in a TOC (newlines in names become spaces there). */
export interface LiveDbObject {
  kind: string;
  schema: string;
  tag: string;
  owner: string;
  /** The Kadi role has the privileges of the owner (it may drop and re-create the object). */
  mine: boolean;
  /** A member of an extension (never dumped on its own). */
  ext: boolean;
  /** Stands on its own in a schema (not an index, constraint or trigger). */
  top: boolean;
}

export interface LiveDb {
  user: string;
  superuser: boolean;
  roles: string[];
  myRoles: string[];
  objects: LiveDbObject[];
  /** The server's shared lock table: max_locks_per_transaction × (max_connections + max_prepared_transactions). */
  lockSlots?: number;
  /** Whether the role may create schemas in the database (CREATE on it); undefined from an older agent. */
  createSchemas?: boolean;
  /** Extensions the server can install: name, trusted (a database owner may create it), superuser-only. */
  available: { name: string; trusted: boolean; superuser: boolean }[];
  /** The role's default privileges for new tables ('r') and sequences ('S'), per schema ('' for all), and whom they grant to. */
  defaultAcls: { schema: string; objtype: string; grantees: string[] }[];
  /** Objects that depend on a table, view, type or sequence (a view by its rules, a foreign key by the table it references, a column or function by its type, a column default by its sequence). */
  dependents: { kind: string; schema: string; tag: string; on: { kind: string; schema: string; tag: string }; via?: 'partition' | 'inherits' }[];
  /** What a pg_dump of the whole database as this role cannot read (kind: SCHEMA, TABLE, SEQUENCE, ROW SECURITY, LARGE OBJECT); absent from an older agent. */
  unreadable?: { kind: string; schema: string; tag: string; /** ROW SECURITY: 'forced' on the role's own table, 'other' on another role's. */ how?: string }[];
  /** Relations in a tablespace of their own, and whether the restoring role may create there; absent from an older agent. */
  tablespaces?: { kind: string; schema: string; tag: string; tablespace: string; canCreate: boolean }[];
  /** The tables each publication lists by name (dropping a table takes it out of them); absent from an older agent. */
  publicationTables?: { publication: string; owner: string; schema: string; table: string }[];
  /** Indexes and extended statistics on tables, with their definitions (dropping a table takes them along); absent from an older agent. */
  attached?: { kind: string; schema: string; tag: string; table: { schema: string; tag: string }; definition: string }[];
}

export interface DbDecision {
  dumpId: number;
  /** e.g. `EXTENSION pgcrypto`, `FUNCTION public.dba_helper(integer)` */
  object: string;
  action: 'keep' | 'create' | 'refuse';
  why: string;
}

export interface DbRestorePlan {
  /** The listing for `pg_restore -L`: every entry of the set (or of the operator's listing), kept ones commented out. */
  listing: string;
  /** pg_restore --clean --if-exists: the database has tables, or objects of the listing exist already. */
  clean: boolean;
  /** Objects whose owner in the set is another role are created owned by the restoring role. */
  noOwner: boolean;
  decisions: DbDecision[];
  blockers: string[];
  warnings: string[];
}

/** Parses restore-probe's `db_objects` JSON line. Throws with a clear message on anything else. */
export function parseLiveDb(json: string): LiveDb {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw new Error('the database probe returned no valid JSON');
  }
  const o = v as Record<string, unknown>;
  if (typeof o?.user !== 'string' || !Array.isArray(o.objects)) throw new Error('the database probe returned an unexpected document');
  const strings = (x: unknown): string[] => (Array.isArray(x) ? x.filter((s): s is string => typeof s === 'string') : []);
  return {
    user: o.user,
    superuser: o.superuser === true,
    lockSlots: typeof o.lockSlots === 'number' ? o.lockSlots : undefined,
    createSchemas: typeof o.createSchemas === 'boolean' ? o.createSchemas : undefined,
    roles: strings(o.roles),
    myRoles: strings(o.myRoles),
    objects: (o.objects as unknown[][]).map((a) => ({
      kind: String(a[0]),
      schema: String(a[1]),
      tag: String(a[2]),
      owner: String(a[3] ?? ''),
      mine: a[4] === true,
      ext: a[5] === true,
      top: a[6] === true,
    })),
    available: (Array.isArray(o.available) ? (o.available as unknown[][]) : []).map((a) => ({ name: String(a[0]), trusted: a[1] === true, superuser: a[2] === true })),
    defaultAcls: (Array.isArray(o.defaultAcls) ? (o.defaultAcls as unknown[][]) : []).map((a) => ({ schema: String(a[0]), objtype: String(a[1]), grantees: strings(a[2]) })),
    dependents: (Array.isArray(o.dependents) ? (o.dependents as unknown[][]) : []).map((a) => ({
      kind: String(a[0]),
      schema: String(a[1]),
      tag: String(a[2]),
      on: { kind: String(a[3]), schema: String(a[4]), tag: String(a[5]) },
      ...(a[6] === 'partition' || a[6] === 'inherits' ? { via: a[6] } : {}),
    })),
    ...(Array.isArray(o.unreadable) ? { unreadable: (o.unreadable as unknown[][]).map((a) => ({ kind: String(a[0]), schema: String(a[1]), tag: String(a[2]), ...(a[3] ? { how: String(a[3]) } : {}) })) } : {}),
    ...(Array.isArray(o.tablespaces)
      ? { tablespaces: (o.tablespaces as unknown[][]).map((a) => ({ kind: String(a[0]), schema: String(a[1]), tag: String(a[2]), tablespace: String(a[3]), canCreate: a[4] === true })) }
      : {}),
    ...(Array.isArray(o.publicationTables)
      ? { publicationTables: (o.publicationTables as unknown[][]).map((a) => ({ publication: String(a[0]), owner: String(a[1]), schema: String(a[2]), table: String(a[3]) })) }
      : {}),
    ...(Array.isArray(o.attached)
      ? { attached: (o.attached as unknown[][]).map((a) => ({ kind: String(a[0]), schema: String(a[1]), tag: String(a[2]), table: { schema: String(a[3]), tag: String(a[4]) }, definition: String(a[5]) })) }
      : {}),
  };
}

/**
 * Why a pg_dump of the whole database as the restoring role would fail (the restore's safety
 * backup, after the services stopped), with what to run; undefined when nothing stands in its way
 * or the agent did not say.
 */
export function safetyBackupBlocker(live: LiveDb | undefined, database?: string): string | undefined {
  const u = live?.unreadable ?? [];
  if (u.length === 0 || !live) return undefined;
  const role = quoteIdent(live.user);
  const rel = (x: { schema: string; tag: string }): string => `${quoteIdent(x.schema)}.${quoteIdent(x.tag)}`;
  const fixes = u.slice(0, 5).map((x) =>
    x.kind === 'SCHEMA'
      ? `GRANT USAGE ON SCHEMA ${quoteIdent(x.tag)} TO ${role};`
      : x.kind === 'ROW SECURITY'
        ? x.how === 'forced'
          ? `ALTER TABLE ${rel(x)} NO FORCE ROW LEVEL SECURITY;`
          : `ALTER TABLE ${rel(x)} DISABLE ROW LEVEL SECURITY; (its owner; or a superuser: ALTER ROLE ${role} BYPASSRLS;)`
        : x.kind === 'LARGE OBJECT'
          ? `GRANT SELECT ON LARGE OBJECT ${x.tag} TO ${role};`
          : `GRANT SELECT ON ${x.kind === 'SEQUENCE' ? 'SEQUENCE' : 'TABLE'} ${rel(x)} TO ${role};`,
  );
  const named = u.map((x) => (x.kind === 'ROW SECURITY' ? `row security of ${x.schema}.${tocText(x.tag)}` : x.schema === '-' ? `${x.kind} ${x.tag}` : `${x.kind} ${x.schema}.${tocText(x.tag)}`));
  return `The safety backup (a pg_dump of all of database ${database ?? 'kadi'} as ${live.user}) cannot read ${u.length} object(s) (${firstOf(named, 5)}): it would fail after the services were stopped. Nothing was changed. Give ${live.user} read access (as their owner or a superuser: ${fixes.join(' ')}${u.length > 5 ? ' …' : ''}), or restore without a safety backup (--no-safety-backup; then nothing brings the present state back).`;
}

/** Entries only `pg_restore -l -v` prints (pg_restore handles them itself; they restore nothing on their own). */
const VERBOSE_ONLY = new Set(['ENCODING', 'STDSTRINGS', 'SEARCHPATH', 'DATABASE', 'DATABASE PROPERTIES']);
function withoutVerboseOnly(listing: TocListing): TocListing {
  return { ...listing, lines: listing.lines.filter((l) => l.kind !== 'entry' || !VERBOSE_ONLY.has(l.desc)) };
}

/** pg_dump's TOC prints names with newlines (and carriage returns) turned into spaces. */
const tocText = (s: string): string => s.replace(/[\r\n]/g, ' ');
const key = (kind: string, schema: string, tag: string): string => `${kind}\u0000${tocText(schema)}\u0000${tocText(tag)}`;

/** TOC descs that name an object the probe can find, and the probe kind they are found under. */
const LOOKUP_KIND: Record<string, string> = {
  SCHEMA: 'SCHEMA',
  EXTENSION: 'EXTENSION',
  TABLE: 'TABLE',
  VIEW: 'VIEW',
  'MATERIALIZED VIEW': 'MATERIALIZED VIEW',
  SEQUENCE: 'SEQUENCE',
  'FOREIGN TABLE': 'FOREIGN TABLE',
  FUNCTION: 'FUNCTION',
  PROCEDURE: 'PROCEDURE',
  AGGREGATE: 'AGGREGATE',
  TYPE: 'TYPE',
  DOMAIN: 'DOMAIN',
  INDEX: 'INDEX',
  CONSTRAINT: 'CONSTRAINT',
  'FK CONSTRAINT': 'FK CONSTRAINT',
  'CHECK CONSTRAINT': 'CHECK CONSTRAINT',
  TRIGGER: 'TRIGGER',
  'EVENT TRIGGER': 'EVENT TRIGGER',
  COLLATION: 'COLLATION',
  CONVERSION: 'CONVERSION',
  'TEXT SEARCH CONFIGURATION': 'TEXT SEARCH CONFIGURATION',
  'TEXT SEARCH DICTIONARY': 'TEXT SEARCH DICTIONARY',
  STATISTICS: 'STATISTICS',
  PUBLICATION: 'PUBLICATION',
  /** Only large objects of other roles are probed (a database may hold millions of its own). */
  BLOB: 'BLOB',
};
const LOOKUP_KINDS_LONGEST_FIRST = Object.keys(LOOKUP_KIND).sort((a, b) => b.length - a.length);
/** Entries whose object a transaction locks until it ends (relations, sequences, large objects). */
const LOCKING = new Set(['TABLE', 'VIEW', 'MATERIALIZED VIEW', 'SEQUENCE', 'FOREIGN TABLE', 'INDEX', 'BLOB', 'CONSTRAINT', 'FK CONSTRAINT', 'TYPE', 'DOMAIN']);
/** Objects that have an owner of their own (constraints, indexes and triggers are their table's). */
const OWNED_KINDS = new Set(['SCHEMA', 'TABLE', 'VIEW', 'MATERIALIZED VIEW', 'SEQUENCE', 'FOREIGN TABLE', 'FUNCTION', 'PROCEDURE', 'AGGREGATE', 'TYPE', 'DOMAIN',
  'COLLATION', 'CONVERSION', 'TEXT SEARCH CONFIGURATION', 'TEXT SEARCH DICTIONARY', 'STATISTICS']);
/** Entries that only annotate another object: they need its ownership and go where it goes. */
const ANNOTATIONS = new Set(['COMMENT', 'ACL', 'SECURITY LABEL']);
/** Objects that carry rows: another role's copy cannot be replaced without losing the set's data. */
const DATA_OF = new Map([['TABLE DATA', 'TABLE'], ['MATERIALIZED VIEW DATA', 'MATERIALIZED VIEW'], ['SEQUENCE SET', 'SEQUENCE']]);

/** The first n of a list for a message, '…' when there are more. */
function firstOf(items: readonly string[], n: number): string {
  return items.slice(0, n).join(', ') + (items.length > n ? ', …' : '');
}

export function describe(e: TocEntry): string {
  if (e.schema === '-') return `${e.desc} ${e.name}`;
  return `${e.desc} ${e.schema}.${e.name}`;
}

export function quoteIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

/**
 * @param tocVerbose the set's `pg_restore -l -v` output
 * @param live the probe of the target database
 * @param opts.listing the operator's edited listing (a selective restore); absent: everything
 * @param opts.clean the database is not empty, so pg_restore runs with --clean (drops first); it
 *   does also when an object of the listing already exists (the plan's `clean`)
 * @param opts.database the database's name, for the statements a superuser is asked to run
 */
export function planDbRestore(
  tocVerbose: string,
  live: LiveDb,
  opts: { listing?: string; clean: boolean; database?: string; grantees?: ReadonlyMap<number, readonly string[]> },
): DbRestorePlan {
  const knownOwners = [...new Set([...live.roles.map(tocText)])];
  const knownSchemas = live.objects.filter((o) => o.kind === 'SCHEMA').map((o) => tocText(o.tag));
  const full = parseListing(tocVerbose, { knownOwners, knownSchemas });
  const deps = dependsOn(full);
  const toc = withoutVerboseOnly(full);
  const base: TocListing = opts.listing !== undefined ? parseListing(opts.listing, { knownOwners, knownSchemas }) : toc;
  const byId = entriesById(toc);
  const enabled = new Set(tocEntries(base).filter((e) => e.enabled).map((e) => e.dumpId));
  const selective = opts.listing !== undefined;

  const liveByKey = new Map<string, LiveDbObject>();
  for (const o of live.objects) if (!liveByKey.has(key(o.kind, o.schema, o.tag))) liveByKey.set(key(o.kind, o.schema, o.tag), o);
  const lookup = (e: TocEntry): LiveDbObject | undefined => {
    const kind = LOOKUP_KIND[e.desc];
    return kind ? liveByKey.get(key(kind, e.schema, e.name)) : undefined;
  };
  /** The live object a COMMENT/ACL/SECURITY LABEL entry is on (`<KIND> <tag>` in its name), when the probe has it. */
  const annotated = (e: TocEntry): LiveDbObject | undefined => {
    for (const kind of LOOKUP_KINDS_LONGEST_FIRST) {
      if (!e.name.startsWith(kind + ' ')) continue;
      const o = liveByKey.get(key(LOOKUP_KIND[kind], ['SCHEMA', 'EXTENSION', 'EVENT TRIGGER', 'PUBLICATION'].includes(kind) ? '-' : e.schema, e.name.slice(kind.length + 1)));
      if (o) return o;
    }
    return undefined;
  };
  const dumpByKey = new Map<string, TocEntry>();
  for (const e of tocEntries(toc)) {
    const kind = LOOKUP_KIND[e.desc];
    if (kind) dumpByKey.set(key(kind, e.schema, e.name), e);
  }
  const myRoles = new Set([live.user, ...live.myRoles].map(tocText));
  const available = new Map(live.available.map((a) => [a.name, a]));

  const decisions: DbDecision[] = [];
  const blockers: string[] = [];
  const warnings: string[] = [];
  const keep = new Set<number>();
  /** Entries of another role's objects that the restore drops and makes again as its own (their comments go with them). */
  const remadeOfOthers = new Set<number>();
  const decide = (e: TocEntry, action: DbDecision['action'], why: string): void => {
    decisions.push({ dumpId: e.dumpId, object: describe(e), action, why });
  };

  const enabledEntries = tocEntries(base).filter((e) => e.enabled).map((e) => byId.get(e.dumpId) ?? e);
  /** The enabled TABLE entry a STATISTICS entry is on (its dependency), when the restore re-creates it. */
  const droppedTable = (e: TocEntry): TocEntry | undefined => {
    const t = (deps.get(e.dumpId) ?? []).map((d) => byId.get(d)).find((d) => d?.desc === 'TABLE');
    const mineToDrop = t && enabledEntries.some((x) => x.dumpId === t.dumpId) && (live.superuser || lookup(t)?.mine !== false);
    return mineToDrop ? t : undefined;
  };
  for (const e of enabledEntries) {
    if (e.desc === 'EXTENSION') {
      const have = lookup(e);
      if (have) {
        keep.add(e.dumpId);
        decide(e, 'keep', `installed (owner ${have.owner}); kept as it is, neither dropped nor re-created`);
        continue;
      }
      const a = available.get(e.name);
      const schemaEntry = (deps.get(e.dumpId) ?? []).map((d) => byId.get(d)).find((d) => d?.desc === 'SCHEMA');
      const statement = `CREATE EXTENSION IF NOT EXISTS ${quoteIdent(e.name)} WITH SCHEMA ${quoteIdent(schemaEntry?.name ?? 'public')};`;
      if (!a) {
        decide(e, 'refuse', 'not available on this server');
        blockers.push(`Extension ${e.name} is not available on the database server: install the package that provides it (for PostgreSQL's contrib modules, postgresql-contrib), then as a superuser run: ${statement}`);
      } else if (a.trusted || live.superuser) {
        decide(e, 'create', `missing; created by ${live.user}${a.trusted && !live.superuser ? ' (a trusted extension)' : ''}`);
      } else {
        decide(e, 'refuse', 'missing, and only a superuser may create it');
        blockers.push(`Extension ${e.name} is missing and only a superuser may create it. Nothing was changed. As a superuser, in database ${opts.database ?? 'of the host'}, run: ${statement} Then restore again.`);
      }
      continue;
    }
    if (e.desc === 'DEFAULT ACL' && !live.superuser && e.owner !== '' && !myRoles.has(e.owner)) {
      keep.add(e.dumpId);
      decide(e, 'keep', `default privileges of role ${e.owner}, which only ${e.owner} or a superuser may change; left as they are`);
      continue;
    }
    const have = lookup(e);
    if (!live.superuser && have && !have.mine && !ANNOTATIONS.has(e.desc)) {
      const dataKind = e.desc;
      const data =
        e.desc === 'BLOB'
          ? enabledEntries.find((d) => d.desc === 'BLOBS')
          : enabledEntries.find((d) => DATA_OF.get(d.desc) === dataKind && d.schema === e.schema && d.name === e.name);
      if (data) {
        decide(e, 'refuse', `owned by ${have.owner}; its rows cannot be replaced by ${live.user}`);
        blockers.push(
          `${describe(e)} is owned by ${have.owner}, not by ${live.user}: its data cannot be replaced without dropping it. Nothing was changed. Either have a superuser run ${alterOwner(e.desc, e.schema, have.tag, live.user)}; or restore with a listing that leaves out ${e.desc === 'BLOB' ? 'the large objects: every BLOB entry and BLOBS (they then stay as they are live)' : 'its data'}.`,
        );
      } else if (e.desc === 'STATISTICS' && droppedTable(e) && liveByKey.get(key('SCHEMA', '-', e.schema))?.mine) {
        // DROP TABLE takes a statistics object on it along, whoever owns it: it cannot be kept. The
        // owner of its schema may drop it first, and it comes back as the restoring role's (said below).
        decide(e, 'create', `owned by ${have.owner}; ${live.user} owns schema ${e.schema}, so it is dropped with ${describe(droppedTable(e) as TocEntry)} and created again owned by ${live.user}`);
        remadeOfOthers.add(e.dumpId);
      } else if (e.desc === 'STATISTICS' && droppedTable(e)) {
        const table = droppedTable(e) as TocEntry;
        decide(e, 'refuse', `owned by ${have.owner}; dropped with ${describe(table)}, and ${live.user} may not create it again as ${have.owner}'s`);
        blockers.push(
          `${describe(e)} is owned by ${have.owner}, not by ${live.user}: the restore drops and creates again ${describe(table)}, which takes the statistics object with it, and ${live.user} cannot drop it first or keep it. Nothing was changed. Either have a superuser run ${alterOwner(e.desc, e.schema, have.tag, live.user)}; GRANT USAGE, CREATE ON SCHEMA ${quoteIdent(e.schema)} TO ${quoteIdent(live.user)}; (dropping it and making it again needs both); or restore with a listing that leaves out ${describe(table)} and its data.`,
        );
      } else {
        keep.add(e.dumpId);
        decide(e, 'keep', `owned by ${have.owner}; kept as it is, neither dropped nor re-created`);
      }
      continue;
    }
    if (!have && !live.superuser && e.desc === 'EVENT TRIGGER') {
      decide(e, 'refuse', 'missing, and only a superuser may create an event trigger');
      blockers.push(`${describe(e)} is missing and only a superuser may create an event trigger. Nothing was changed. Restore with a listing that leaves it out (and create it as a superuser), or restore as a superuser.`);
      continue;
    }
    if (!have && !live.superuser && LOOKUP_KIND[e.desc] && e.owner !== '' && !myRoles.has(e.owner)) {
      decide(e, 'create', `owned by ${e.owner} in the set; missing, so created owned by ${live.user}`);
    }
  }
  /** Names of the publications kept as they are (another role's): decided above; the loop below keeps no PUBLICATION entry itself. */
  const keptPublications = enabledEntries.filter((x) => x.desc === 'PUBLICATION' && keep.has(x.dumpId)).map((x) => x.name);
  // Comments, grants and labels on a kept object need its owner: they stay as they are with it. So
  // do those on an object the dump does not create but names (`COMMENT - SCHEMA public postgres`
  // of a public schema that pg_upgrade left to the superuser).
  for (const e of enabledEntries) {
    if (keep.has(e.dumpId)) continue;
    if ((ANNOTATIONS.has(e.desc) || e.desc === 'SEQUENCE OWNED BY') && (deps.get(e.dumpId) ?? []).some((d) => keep.has(d))) keep.add(e.dumpId);
    else if (e.desc.startsWith('PUBLICATION ') && ((deps.get(e.dumpId) ?? []).some((d) => keep.has(d)) || keptPublications.some((p) => e.name.startsWith(`${p} `)))) {
      // Adding a table to a publication needs its owner: with the publication kept, this is left to it (said below).
      keep.add(e.dumpId);
      decide(e, 'keep', `of a publication ${live.user} may not change; left to its owner`);
    }
    else if (ANNOTATIONS.has(e.desc) && !live.superuser && !(deps.get(e.dumpId) ?? []).some((d) => remadeOfOthers.has(d))) {
      // (Not one on an object made again as the restoring role's: dropped with it, it is the set's to make again.)
      const target = annotated(e);
      if (target && !target.mine) {
        keep.add(e.dumpId);
        decide(e, 'keep', `on an object owned by ${target.owner}, which ${live.user} may not change; left as it is`);
      }
    }
  }
  for (const e of enabledEntries) {
    // `COMMENT - EXTENSION x` does not always list the extension as a dependency.
    if (!keep.has(e.dumpId) && ANNOTATIONS.has(e.desc) && e.name.startsWith('EXTENSION ')) {
      const ext = enabledEntries.find((x) => x.desc === 'EXTENSION' && `EXTENSION ${x.name}` === e.name);
      if (ext && keep.has(ext.dumpId)) keep.add(e.dumpId);
    }
  }

  // Anything of the listing that exists already must be dropped first, also in a database without
  // tables (a plain pg_restore would fail on CREATE of what is there).
  const clean = opts.clean || enabledEntries.some((e) => !keep.has(e.dumpId) && lookup(e) !== undefined);
  // A schema that --clean drops must be empty by then: whatever it holds that the listing does not
  // drop makes DROP SCHEMA fail.
  if (clean) {
    for (const e of enabledEntries) {
      if (e.desc !== 'SCHEMA' || keep.has(e.dumpId)) continue;
      const have = lookup(e);
      if (!have) continue;
      const inside = live.objects.filter((o) => o.top && o.kind !== 'SCHEMA' && o.kind !== 'EXTENSION' && tocText(o.schema) === e.name);
      const leftOut: string[] = [];
      const newer: string[] = [];
      let held = false;
      for (const o of inside) {
        const d = dumpByKey.get(key(o.kind, o.schema, o.tag));
        if (o.ext) held = true;
        else if (!d) newer.push(`${o.kind} ${o.tag}`);
        else if (keep.has(d.dumpId)) held = true;
        else if (!enabled.has(d.dumpId)) leftOut.push(describe(d));
      }
      if (leftOut.length > 0) {
        decide(e, 'refuse', `still holds objects the listing leaves out`);
        blockers.push(
          `The listing restores ${describe(e)} but leaves out ${leftOut.length} object(s) that are still in it (${firstOf(leftOut, 5)}): pg_restore --clean would fail to drop the schema. Enable them too, or leave the schema's own entry out. Nothing was changed.`,
        );
      } else if (newer.length > 0 || held) {
        keep.add(e.dumpId);
        decide(e, 'keep', newer.length > 0 ? `also holds ${newer.length} object(s) that are not in the set (${firstOf(newer, 3)}); the schema is kept and they are left as they are` : 'holds objects of an extension or of another role; the schema is kept, its objects from the set are replaced');
        if (newer.length > 0) warnings.push(`Schema ${e.name} holds ${newer.length} object(s) that are not in the set (${firstOf(newer, 3)}); they are left as they are.`);
      }
    }
  }

  // A full restore replaces what the set holds; what was made after it is not the set's to drop.
  if (!selective) {
    const newer = live.objects.filter((o) => o.top && o.mine && !o.ext && o.kind !== 'SCHEMA' && o.kind !== 'EXTENSION' && !dumpByKey.has(key(o.kind, o.schema, o.tag)));
    if (newer.length > 0) {
      const names = newer.map((o) => `${o.kind} ${o.schema}.${tocText(o.tag)}`);
      warnings.push(`${newer.length} object(s) in the database are not in the set and are left as they are (${firstOf(names, 5)}); drop them by hand if they should go.`);
    }
  }

  // --clean drops every relation it restores, in the dump's order: a view, a foreign key, a column
  // or a function that depends on one (or on a type or sequence it drops) and that this restore does not drop first (not in the set, left out by the
  // listing, or kept as another role's) makes PostgreSQL refuse the drop, and the restore fails.
  if (clean) {
    const dropped = (kind: string, schema: string, tag: string): boolean => {
      const d = dumpByKey.get(key(kind, schema, tag));
      return d !== undefined && enabled.has(d.dumpId) && !keep.has(d.dumpId);
    };
    const stays: string[] = [];
    const partitions: typeof live.dependents = [];
    for (const x of live.dependents) {
      if (!dropped(x.on.kind, x.on.schema, x.on.tag) || dropped(x.kind, x.schema, x.tag)) continue;
      if (x.via === 'partition') {
        partitions.push(x);
        continue;
      }
      const inSet = dumpByKey.has(key(x.kind, x.schema, x.tag));
      const how = x.via === 'inherits' ? 'inherits from' : 'depends on';
      stays.push(`${x.kind} ${x.schema}.${tocText(x.tag)} ${how} ${x.on.kind} ${x.on.schema}.${tocText(x.on.tag)}${inSet ? ' and is not restored with it' : ', and is not in the set'}`);
    }
    // What goes with a table the restore drops and is not made again with it: an index or extended
    // statistics a DBA added since the set (or that a listing leaves out), and the table's place in a
    // publication the restore does not make again. Nothing is refused; said, with what to run after.
    const gone = (live.attached ?? []).filter((a) => dropped('TABLE', a.table.schema, a.table.tag) && !dropped(a.kind, a.schema, a.tag));
    if (gone.length > 0) {
      warnings.push(
        `${gone.length} index(es) or statistics object(s) on tables this restore makes again are not in the set (or the listing leaves them out) and go with their tables (${firstOf(gone.map((a) => `${a.kind} ${a.schema}.${tocText(a.tag)}`), 5)}). To have them back, run after the restore: ${firstOf(gone.map((a) => `${a.definition};`), 5)}`,
      );
    }
    // A relation made again goes back into its tablespace (the set's default_tablespace for it),
    // which needs CREATE there: without it pg_restore fails part way. Refused before anything runs.
    const noCreate = new Map<string, string[]>();
    for (const t of live.tablespaces ?? []) {
      if (t.canCreate || !dropped(t.kind, t.schema, t.tag)) continue;
      noCreate.set(t.tablespace, [...(noCreate.get(t.tablespace) ?? []), `${t.kind} ${t.schema}.${tocText(t.tag)}`]);
    }
    for (const [spc, objects] of noCreate) {
      blockers.push(
        `${objects.length} object(s) the restore drops and makes again live in tablespace ${spc}, where role ${live.user} may not create (${firstOf(objects, 5)}): pg_restore would fail there. Nothing was changed. As a superuser or the tablespace's owner run: GRANT CREATE ON TABLESPACE ${quoteIdent(spc)} TO ${quoteIdent(live.user)};`,
      );
    }
    const published = new Map<string, string[]>();
    for (const r of live.publicationTables ?? []) {
      const pub = enabledEntries.find((x) => x.desc === 'PUBLICATION' && x.name === tocText(r.publication));
      const pubRemade = pub !== undefined && !keep.has(pub.dumpId);
      if (!dropped('TABLE', r.schema, r.table) || pubRemade) continue;
      published.set(r.publication, [...(published.get(r.publication) ?? []), `${quoteIdent(r.schema)}.${quoteIdent(r.table)}`]);
    }
    for (const [pub, tables] of published) {
      const owner = live.publicationTables?.find((r) => r.publication === pub)?.owner ?? '?';
      warnings.push(
        `Publication ${pub} (owned by ${owner}) publishes ${tables.length} table(s) this restore drops and makes again, which takes them out of it: logical replication of them stops. After the restore, as ${owner} or a superuser, run: ALTER PUBLICATION ${quoteIdent(pub)} ADD TABLE ${tables.join(', ')};`,
      );
    }
    // A partition the restore does not make again: PostgreSQL does not refuse the partitioned
    // table's drop, it drops the partition along with it, rows and all. Refused, with how to keep it.
    if (partitions.length > 0) {
      const q = (schema: string, tag: string): string => `${quoteIdent(schema)}.${quoteIdent(tag)}`;
      const named = partitions.map((x) => `${x.kind} ${x.schema}.${tocText(x.tag)} (a partition of ${x.on.schema}.${tocText(x.on.tag)}${dumpByKey.has(key(x.kind, x.schema, x.tag)) ? ', not restored with it' : ', not in the set'})`);
      const detach = partitions.map((x) => `ALTER TABLE ${q(x.on.schema, x.on.tag)} DETACH PARTITION ${q(x.schema, x.tag)};`);
      blockers.push(
        `${partitions.length} partition(s) would be dropped with their rows: the restore drops and creates again the partitioned table they belong to, and PostgreSQL drops its partitions with it (${firstOf(named, 5)}). Nothing was changed. To keep one as a table of its own, detach it first (${firstOf(detach, 5)}) and attach it again after the restore if it fits; drop it first if it should go; or restore with a listing that leaves out the partitioned table.`,
      );
    }
    if (stays.length > 0) {
      blockers.push(
        `${stays.length} object(s) of the database depend on what this restore drops and creates again, and would stay: PostgreSQL refuses to drop a table, view, type or sequence while they exist (${firstOf(stays, 5)}). Nothing was changed. Drop them first if they should go (a newer Kadi's tables or views: restore onto the Kadi version of the set), or restore with a listing that leaves out what they depend on.`,
      );
    }
  }

  // Default privileges of the restoring role (ALTER DEFAULT PRIVILEGES … GRANT … ON TABLES): a table
  // or sequence the restore makes again gets them when it is created, and the set's privilege
  // statements (relative to the built-in defaults) do not take them away: roles the set's own
  // privileges for it do not name may then read or change it. Said, with whom and which objects.
  const granting = live.defaultAcls.filter((a) => a.grantees.length > 0);
  // Default privileges IN SCHEMA s go with s when the restore drops it and makes it again (its
  // objects are then made before the set's own DEFAULT ACL entries run): only those of schemas kept.
  const schemaRemade = (schema: string): boolean => enabledEntries.some((x) => x.desc === 'SCHEMA' && x.name === schema && !keep.has(x.dumpId) && clean && lookup(x) !== undefined);
  if (granting.length > 0) {
    const widened = new Map<string, string[]>();
    for (const e of enabledEntries) {
      const objtype = e.desc === 'SEQUENCE' ? 'S' : ['TABLE', 'VIEW', 'MATERIALIZED VIEW', 'FOREIGN TABLE'].includes(e.desc) ? 'r' : '';
      if (!objtype || keep.has(e.dumpId)) continue;
      // Roles the set grants to itself on this object (its ACL entry): the default gives them nothing new.
      const acl = enabledEntries.find((a) => a.desc === 'ACL' && a.schema === e.schema && a.name === `${objtype === 'S' ? 'SEQUENCE' : 'TABLE'} ${e.name}`);
      const own = new Set(acl ? (opts.grantees?.get(acl.dumpId) ?? []) : []);
      const to = [...new Set(granting.filter((a) => a.objtype === objtype && (a.schema === '' || (tocText(a.schema) === e.schema && !schemaRemade(e.schema)))).flatMap((a) => a.grantees))].filter((r) => !own.has(r)).sort();
      if (to.length === 0) continue;
      const k = to.join(', ');
      widened.set(k, [...(widened.get(k) ?? []), describe(e)]);
    }
    for (const [to, objects] of widened) {
      warnings.push(
        `Role ${live.user} has default privileges (ALTER DEFAULT PRIVILEGES) that grant to ${to}, which the set's own privileges do not name: the ${objects.length} object(s) this restore makes again get them (${firstOf(objects, 5)}). Revoke them afterwards where they should not have them.`,
      );
    }
  }

  // A selective restore: an entry that depends on one the listing leaves out needs that object to exist already.
  if (selective) {
    for (const e of enabledEntries) {
      if (keep.has(e.dumpId)) continue;
      for (const d of deps.get(e.dumpId) ?? []) {
        if (enabled.has(d)) continue;
        const dep = byId.get(d);
        if (!dep || !LOOKUP_KIND[dep.desc]) continue;
        if (!lookup(dep)) {
          blockers.push(`Listing entry ${e.dumpId} (${describe(e)}) depends on ${describe(dep)}, which the listing leaves out and which does not exist in the database. Enable entry ${dep.dumpId} too, or leave out entry ${e.dumpId}. Nothing was changed.`);
          break;
        }
      }
    }
  }

  // --clean drops a schema and CREATE SCHEMA makes it again: that needs CREATE on the database,
  // which its owner has and a DBA may not have granted (the database the superuser's, the schema
  // made for the Kadi role with CREATE SCHEMA ... AUTHORIZATION).
  const remade = enabledEntries.filter((e) => e.desc === 'SCHEMA' && !keep.has(e.dumpId) && e.name !== 'public');
  if (!live.superuser && live.createSchemas === false && remade.length > 0) {
    for (const e of remade) decide(e, 'refuse', `${live.user} may not create schemas in this database`);
    blockers.push(
      `The restore drops and creates again ${firstOf(remade.map(describe), 3)}, but role ${live.user} may not create schemas in database ${opts.database ?? 'of the host'} (it does not own it and has no CREATE on it). Nothing was changed. As the database's owner or a superuser run: GRANT CREATE ON DATABASE ${quoteIdent(opts.database ?? 'kadi')} TO ${quoteIdent(live.user)}; or restore with a listing that leaves out the schema's own entry (${firstOf(remade.map((e) => String(e.dumpId)), 3)}).`,
    );
  }

  // A selective restore takes a table and its rows together. --clean drops and creates again the
  // table an enabled TABLE entry names: without its rows it comes back empty (refused). Rows without
  // their table go into the live table, beside its own: said (the table may have been emptied).
  // Large objects likewise: BLOB entries without BLOBS (their contents) come back empty.
  if (selective) {
    const all = tocEntries(toc);
    const on = (e: TocEntry | undefined): boolean => e !== undefined && enabled.has(e.dumpId);
    for (const e of enabledEntries) {
      if (keep.has(e.dumpId)) continue;
      if (e.desc === 'TABLE') {
        const rows = all.find((d) => d.desc === 'TABLE DATA' && d.schema === e.schema && d.name === e.name);
        if (rows && !on(rows)) {
          decide(e, 'refuse', 'its rows are left out: it would come back empty');
          blockers.push(`The listing restores ${describe(e)} (entry ${e.dumpId}) but leaves out its rows (entry ${rows.dumpId}): pg_restore --clean would drop the table and make it again empty. Enable entry ${rows.dumpId} too, or leave out entry ${e.dumpId} as well (the table then stays as it is). Nothing was changed.`);
        }
      } else if (e.desc === 'TABLE DATA') {
        const table = all.find((d) => d.desc === 'TABLE' && d.schema === e.schema && d.name === e.name);
        if (table && !on(table) && lookup(table)) {
          // Right after emptying the table (TRUNCATE), which the plan cannot see: said, not refused.
          warnings.push(`The listing restores the rows of ${describe(table)} (entry ${e.dumpId}) but leaves out the table itself (entry ${table.dumpId}): they are added to the rows the live table holds (doubled, or refused by its keys, which rolls the restore back). Empty the table first if it should hold only the set's rows, or enable entry ${table.dumpId} too (the table is made again with the set's rows).`);
        }
      }
    }
    const contents = all.find((d) => d.desc === 'BLOBS');
    const emptied = enabledEntries.filter((e) => e.desc === 'BLOB' && !keep.has(e.dumpId));
    if (contents && !on(contents) && emptied.length > 0) {
      blockers.push(
        `The listing restores ${emptied.length} large object(s) (${firstOf(emptied.map((e) => `BLOB ${e.name}, entry ${e.dumpId}`), 3)}) but leaves out their contents (BLOBS, entry ${contents.dumpId}): pg_restore --clean would make them again empty. Enable entry ${contents.dumpId} too, or leave out every BLOB entry as well (the large objects then stay as they are). Nothing was changed.`,
      );
    }
  }

  // Not a superuser, the Kadi role restores with --no-owner: what it drops and creates again comes
  // back owned by it, also what another role it is a member of owned. Said, with who owned what.
  if (!live.superuser) {
    const user = tocText(live.user);
    const changed = enabledEntries.filter((e) => !keep.has(e.dumpId) && OWNED_KINDS.has(e.desc) && e.owner !== '' && tocText(e.owner) !== user);
    if (changed.length > 0) {
      const owners = [...new Set(changed.map((e) => e.owner))];
      warnings.push(
        `${changed.length} object(s) of the set owned by ${owners.length === 1 ? `role ${owners[0]}` : `roles ${firstOf(owners, 3)}`} will be owned by ${live.user} after the restore (${firstOf(changed.map(describe), 3)}): ${live.user} is not a superuser, so pg_restore runs with --no-owner. A superuser can give them back (ALTER … OWNER TO …).`,
      );
    }
  }

  // Settings of the database itself (ALTER DATABASE … SET …) come with --create only, which a
  // restore into the existing database does not use: said, not silently dropped on a new host.
  const props = tocEntries(full).find((e) => e.desc === 'DATABASE PROPERTIES');
  if (props) {
    warnings.push(
      `The set holds settings of database ${props.name} (ALTER DATABASE … SET …) that a restore into an existing database does not apply; compare them with the server's and set them by hand if they are missing (pg_restore --create --schema-only -f - db.dump | grep '^ALTER DATABASE' shows them).`,
    );
  }

  // A grant (or default privileges) naming a role the server lacks fails at the end of the one
  // transaction: a restore onto another host, where a reporting role was never made.
  if (opts.grantees) {
    const roles = new Set(live.roles);
    const missing = new Map<string, number[]>();
    for (const e of enabledEntries) {
      if (keep.has(e.dumpId)) continue;
      for (const r of opts.grantees.get(e.dumpId) ?? []) if (!roles.has(r)) missing.set(r, [...(missing.get(r) ?? []), e.dumpId]);
    }
    if (missing.size > 0) {
      const names = [...missing.keys()].map(quoteIdent);
      const ids = [...new Set([...missing.values()].flat())].sort((a, b) => a - b);
      // Row security policies name roles too (CREATE POLICY … TO role).
      const policies = ids.some((id) => byId.get(id)?.desc === 'POLICY');
      const grants = ids.some((id) => byId.get(id)?.desc !== 'POLICY');
      const what = policies && grants ? ['privileges and row security policies', 'grants and policies', 'privilege and policy entries'] : policies ? ['row security policies', 'policies', 'policy entries'] : ['privileges', 'grants', 'privilege entries'];
      blockers.push(
        `The set's ${what[0]} name ${missing.size} role(s) this server does not have (${firstOf(names, 5)}): PostgreSQL would refuse those ${what[1]} and the restore with them. Nothing was changed. Create the roles first (as a superuser or a role with CREATEROLE: ${names.slice(0, 3).map((n) => `CREATE ROLE ${n} NOLOGIN;`).join(' ')}${names.length > 3 ? ' …' : ''}), or restore with a listing that leaves out the ${what[2]} ${firstOf(ids.map(String), 10)}.`,
      );
    }
  }

  // One transaction holds a lock on every relation, sequence and large object it drops or makes
  // until COMMIT; beyond the server's shared lock table it fails ("out of shared memory") and
  // changes nothing. Said before, with the setting to raise.
  const lockable = enabledEntries.filter((e) => !keep.has(e.dumpId) && LOCKING.has(e.desc)).length * (clean ? 2 : 1);
  if (live.lockSlots !== undefined && lockable > live.lockSlots / 2) {
    warnings.push(
      `This restore takes about ${lockable} locks in one transaction; the server's lock table holds ${live.lockSlots} (max_locks_per_transaction × (max_connections + max_prepared_transactions)). If it fails with "out of shared memory", nothing is changed: raise max_locks_per_transaction (a restart) and restore again.`,
    );
  }

  const kept = keep.size > 0 ? setEnabled(base, keep, false) : base;
  const listing = serializeListing(clean ? partitionConstraintsFirst(kept, deps) : kept);
  return { listing, clean, noOwner: !live.superuser, decisions, blockers, warnings };
}

/** The plan's lines about database objects, for formatPlan. */
export function formatDbDecisions(decisions: readonly DbDecision[]): string[] {
  return decisions.map((d) => `  ${d.action === 'keep' ? 'keep  ' : d.action === 'create' ? 'create' : 'REFUSE'}             ${d.object}: ${d.why}`);
}

/** The statement that gives an object to ROLE: a large object by its OID (it has no schema or name), anything else by its qualified name. */
export function alterOwner(desc: string, schema: string, tag: string, role: string): string {
  if (desc === 'BLOB') return `ALTER LARGE OBJECT ${/^\d+$/.test(tag) ? tag : quoteIdent(tag)} OWNER TO ${quoteIdent(role)}`;
  return `ALTER ${desc} ${quoteIdent(schema)}.${quoteIdent(tag)} OWNER TO ${quoteIdent(role)}`;
}

/** set-grantees' `grantees=` value: the roles each privilege entry of the dump names, by dump id. */
export function parseGrantees(json: string | undefined): Map<number, string[]> {
  if (json === undefined) throw new Error('the set\'s privileges could not be read (no answer)');
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw new Error('the set\'s privileges could not be read (no valid JSON)');
  }
  const out = new Map<number, string[]>();
  for (const [id, roles] of Object.entries(v as Record<string, unknown>)) {
    if (/^\d+$/.test(id) && Array.isArray(roles)) out.set(Number(id), roles.filter((r): r is string => typeof r === 'string'));
  }
  return out;
}

/**
 * A partition's primary key or unique constraint (one that depends on its partitioned table's
 * constraint) moved to just before that constraint in the listing, with its comment lines.
 * pg_restore -L drops in the reverse of the listing's order and creates in its order: dropping
 * the partition's inherited constraint first fails ("cannot drop inherited constraint"), which made
 * every restore of a partitioned table with a key onto a live database fail; dropped after the
 * parent's it is gone already (IF EXISTS), and created before it, the parent's constraint and the
 * INDEX ATTACH entry join the two as pg_dump meant.
 */
export function partitionConstraintsFirst(listing: TocListing, deps: ReadonlyMap<number, readonly number[]>): TocListing {
  const lines = [...listing.lines];
  const desc = new Map(tocEntries(listing).map((e) => [e.dumpId, e.desc]));
  const indexOf = (id: number): number => lines.findIndex((l) => l.kind === 'entry' && l.dumpId === id);
  for (const e of tocEntries(listing)) {
    if (e.desc !== 'CONSTRAINT') continue;
    const parent = (deps.get(e.dumpId) ?? []).find((d) => d !== e.dumpId && desc.get(d) === 'CONSTRAINT');
    if (parent === undefined) continue;
    const at = indexOf(e.dumpId);
    const before = indexOf(parent);
    if (at < 0 || before < 0 || at < before) continue;
    let end = at + 1;
    while (end < lines.length && isDependsLine(lines[end])) end++;
    const moved = lines.splice(at, end - at);
    lines.splice(before, 0, ...moved);
  }
  return { ...listing, lines };
}
