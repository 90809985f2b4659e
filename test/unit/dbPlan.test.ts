import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseListing, serializeListing, setEnabled, tocEntries } from '../../src/pgtoc/listing';
import { parseGrantees, parseLiveDb, planDbRestore, type LiveDb, type LiveDbObject } from '../../src/restore/dbPlan';

// A real `pg_restore -l -v` of a database as a DBA leaves it, and the real restore-probe document of
// that database read as the Kadi role (test/fixtures/pgtoc/README.md).
const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/pgtoc');
const TOC = fs.readFileSync(path.join(FIXTURES, 'pg15-dba-verbose.txt'), 'utf8');
const LIVE_JSON = fs.readFileSync(path.join(FIXTURES, 'pg15-dba-live.json'), 'utf8');

const live = (): LiveDb => parseLiveDb(LIVE_JSON);
const without = (db: LiveDb, drop: (o: LiveDbObject) => boolean): LiveDb => ({ ...db, objects: db.objects.filter((o) => !drop(o)) });
const action = (p: ReturnType<typeof planDbRestore>, object: string): string | undefined => p.decisions.find((d) => d.object === object)?.action;
const disabledIds = (listing: string): number[] => tocEntries(parseListing(listing)).filter((e) => !e.enabled).map((e) => e.dumpId);

/** The fixture's DBA table with data is refused unless left out; most tests leave its data out. */
function withoutDbaTableData(): string {
  const l = parseListing(TOC);
  return serializeListing(setEnabled(l, [3521], false));
}

describe('database restore plan (dbPlan)', () => {
  it('parses the probe document, with newlines in names kept', () => {
    const db = live();
    assert.equal(db.user, 'kadi');
    assert.equal(db.superuser, false);
    assert.ok(db.objects.some((o) => o.kind === 'TABLE' && o.tag === 'line\nbreak' && o.mine));
    assert.ok(db.available.some((a) => a.name === 'pg_stat_statements' && !a.trusted));
    assert.throws(() => parseLiveDb('not json'), /no valid JSON/);
    assert.throws(() => parseLiveDb('{"objects": 1}'), /unexpected document/);
  });

  it('keeps installed extensions and objects of other roles, with their comments and grants; refuses another role\'s table with data', () => {
    const p = planDbRestore(TOC, live(), { clean: true, database: 'kadi' });
    for (const ext of ['pgcrypto', 'pg_stat_statements', 'hstore']) assert.equal(action(p, `EXTENSION ${ext}`), 'keep');
    assert.equal(action(p, 'FUNCTION public.dba_helper(integer)'), 'keep');
    assert.equal(action(p, 'SCHEMA ext'), 'keep', 'owned by postgres');
    assert.equal(action(p, 'TABLE public.dba_table'), 'refuse');
    assert.ok(p.blockers.some((b) => /TABLE public\.dba_table is owned by dba.*ALTER TABLE "public"\."dba_table" OWNER TO "kadi"/.test(b)), p.blockers.join('\n'));
    // Only what is not the Kadi role's is commented out: extensions and their comments, the
    // function with its comment and grant, the ext schema.
    assert.deepEqual(disabledIds(p.listing).sort((a, b) => a - b), [2, 3, 4, 10, 337, 3530, 3531, 3532, 3533, 3534].sort((a, b) => a - b));
    // The Kadi role's own objects, also the odd names, are dropped and re-created as usual.
    for (const o of ['SCHEMA odd "schema"; ü', 'TABLE odd "schema"; ü.line break', 'TABLE public.TABLE DATA public x']) assert.equal(action(p, o), undefined, o);
    assert.equal(p.noOwner, true);
    assert.equal(p.clean, true);
  });

  it("names the restoring role's default privileges that re-created tables and sequences get, per schema and kind, less the roles the set grants to itself", () => {
    const db: LiveDb = { ...live(), defaultAcls: [{ schema: 'public', objtype: 'r', grantees: ['PUBLIC', 'audit'] }, { schema: '', objtype: 'S', grantees: ['seq reader'] }, { schema: 'public', objtype: 'r', grantees: [] }] };
    const p = planDbRestore(TOC, db, { clean: true, listing: withoutDbaTableData() });
    const said = p.warnings.filter((w) => w.includes('default privileges'));
    assert.deepEqual(said, [
      "Role kadi has default privileges (ALTER DEFAULT PRIVILEGES) that grant to PUBLIC, audit, which the set's own privileges do not name: the 3 object(s) this restore makes again get them (TABLE public.TABLE DATA public x, TABLE public.t, VIEW public.v). Revoke them afterwards where they should not have them.",
      "Role kadi has default privileges (ALTER DEFAULT PRIVILEGES) that grant to seq reader, which the set's own privileges do not name: the 1 object(s) this restore makes again get them (SEQUENCE public.t_id_seq). Revoke them afterwards where they should not have them.",
    ], 'the odd schema\'s table is in another schema; the DBA\'s table is kept, never made again');
    // The set's own privileges on t name audit: only PUBLIC is new.
    const withAcl = `${TOC.trimEnd()}\n3600; 0 0 ACL public TABLE t kadi\n`;
    const q = planDbRestore(withAcl, db, { clean: true, listing: serializeListing(setEnabled(parseListing(withAcl), [3521], false)), grantees: new Map([[3600, ['audit']]]) });
    assert.ok(q.warnings.some((w) => w.startsWith('Role kadi has default privileges (ALTER DEFAULT PRIVILEGES) that grant to PUBLIC, which') && w.includes('(TABLE public.t)')), q.warnings.join('\n'));
    assert.deepEqual(planDbRestore(TOC, live(), { clean: true, listing: withoutDbaTableData() }).warnings.filter((w) => w.includes('default privileges')), [], 'none without default privileges');
    // Those IN SCHEMA of a schema the restore drops and makes again go with it: its tables do not get them.
    const inOdd: LiveDb = { ...live(), defaultAcls: [{ schema: 'odd "schema"; ü', objtype: 'r', grantees: ['odd reader'] }] };
    assert.deepEqual(planDbRestore(TOC, inOdd, { clean: true, listing: withoutDbaTableData() }).warnings.filter((w) => w.includes('odd reader')), []);
    // With the schema's own entry (9) left out, the schema stays, and so do they: its tables made again get them.
    const schemaKept = planDbRestore(TOC, inOdd, { clean: true, listing: serializeListing(setEnabled(parseListing(withoutDbaTableData()), [9], false)) });
    assert.ok(schemaKept.warnings.some((w) => w.includes('grant to odd reader') && w.includes('odd "schema"; ü.')), schemaKept.warnings.join('\n'));
  });

  it("keeps another role's collation and text search configuration (with their comments); its statistics object on a table the restore re-creates is created again where the Kadi role owns the schema, refused where it does not", () => {
    const toc = `${TOC.trimEnd()}
3601; 3456 16601 COLLATION public dba_c dba
3602; 0 0 COMMENT public COLLATION dba_c dba
;	depends on: 3601
3603; 3602 16602 TEXT SEARCH CONFIGURATION public dba_english dba
3604; 3381 16603 STATISTICS public dba_stats dba
;	depends on: 223
3606; 0 0 COMMENT public STATISTICS dba_stats dba
;	depends on: 3604
3605; 3381 16604 STATISTICS ext ext_stats dba
;	depends on: 223
`;
    const db = live();
    db.objects.push(
      { kind: 'COLLATION', schema: 'public', tag: 'dba_c', owner: 'dba', mine: false, ext: false, top: true },
      { kind: 'TEXT SEARCH CONFIGURATION', schema: 'public', tag: 'dba_english', owner: 'dba', mine: false, ext: false, top: true },
      { kind: 'STATISTICS', schema: 'public', tag: 'dba_stats', owner: 'dba', mine: false, ext: false, top: false },
      { kind: 'STATISTICS', schema: 'ext', tag: 'ext_stats', owner: 'dba', mine: false, ext: false, top: false },
    );
    const p = planDbRestore(toc, db, { clean: true, listing: serializeListing(setEnabled(parseListing(toc), [3521], false)) });
    assert.equal(action(p, 'COLLATION public.dba_c'), 'keep');
    assert.equal(action(p, 'TEXT SEARCH CONFIGURATION public.dba_english'), 'keep');
    for (const id of [3601, 3602, 3603]) assert.ok(disabledIds(p.listing).includes(id), `entry ${id} is left as it is`);
    // public is pg_database_owner's, which the Kadi role is: it may drop the statistics object, which comes back as kadi's (said).
    assert.equal(action(p, 'STATISTICS public.dba_stats'), 'create');
    assert.equal(disabledIds(p.listing).includes(3604), false);
    // Its comment goes and comes back with it (it is the set's comment on an object the restore makes again).
    assert.equal(disabledIds(p.listing).includes(3606), false, 'the comment on the statistics object made again is restored');
    assert.ok(p.warnings.some((w) => /owned by role dba will be owned by kadi after the restore \(.*STATISTICS public\.dba_stats/.test(w)), p.warnings.join('\n'));
    // ext is postgres's: neither dropped first nor kept (DROP TABLE would take it along).
    assert.equal(action(p, 'STATISTICS ext.ext_stats'), 'refuse');
    assert.ok(p.blockers.some((b) => b.startsWith('STATISTICS ext.ext_stats is owned by dba, not by kadi: the restore drops and creates again TABLE public.t') && b.includes('ALTER STATISTICS "ext"."ext_stats" OWNER TO "kadi"; GRANT USAGE, CREATE ON SCHEMA "ext" TO "kadi";')), p.blockers.join('\n'));
    // Without the table in the listing the statistics object is not touched: kept.
    const q = planDbRestore(toc, db, { clean: true, listing: serializeListing(setEnabled(parseListing(toc), [3521, 223, 3519, 3371], false)) });
    assert.equal(action(q, 'STATISTICS ext.ext_stats'), 'keep');
  });

  it('leaving out the other role\'s table data lifts the refusal; pg_restore -l -v\'s own entries never reach the listing', () => {
    const p = planDbRestore(TOC, live(), { clean: true, listing: withoutDbaTableData() });
    assert.deepEqual(p.blockers, []);
    assert.equal(action(p, 'TABLE public.dba_table'), 'keep');
    const descs = tocEntries(parseListing(planDbRestore(TOC, live(), { clean: true }).listing)).map((e) => e.desc);
    for (const d of ['ENCODING', 'STDSTRINGS', 'SEARCHPATH', 'DATABASE']) assert.ok(!descs.includes(d), d);
  });

  it('creates a missing trusted extension; refuses a missing untrusted one with the statement a superuser must run, in the schema it lived in', () => {
    const db = without(live(), (o) => o.kind === 'EXTENSION' && ['pgcrypto', 'pg_stat_statements', 'hstore'].includes(o.tag));
    const p = planDbRestore(TOC, db, { clean: true, listing: withoutDbaTableData(), database: 'kadi' });
    assert.equal(action(p, 'EXTENSION pgcrypto'), 'create');
    assert.equal(action(p, 'EXTENSION hstore'), 'create');
    assert.equal(action(p, 'EXTENSION pg_stat_statements'), 'refuse');
    assert.ok(p.blockers.some((b) => b.includes('in database kadi, run: CREATE EXTENSION IF NOT EXISTS "pg_stat_statements" WITH SCHEMA "public";')), p.blockers.join('\n'));
    // hstore's schema comes from its dependency on the ext schema entry.
    const hstoreGone = without(db, () => false);
    hstoreGone.available = hstoreGone.available.map((a) => (a.name === 'hstore' ? { ...a, trusted: false } : a));
    const p2 = planDbRestore(TOC, hstoreGone, { clean: true, listing: withoutDbaTableData() });
    assert.ok(p2.blockers.some((b) => b.includes('CREATE EXTENSION IF NOT EXISTS "hstore" WITH SCHEMA "ext";')), p2.blockers.join('\n'));
    // An extension the server does not have at all names the package.
    const none = { ...db, available: db.available.filter((a) => a.name !== 'pgcrypto') };
    assert.ok(planDbRestore(TOC, none, { clean: true }).blockers.some((b) => /pgcrypto is not available .*postgresql-contrib/.test(b)));
  });

  it('a missing object of another role is created, owned by the Kadi role; as a superuser nothing but extensions is kept', () => {
    const db = without(live(), (o) => o.kind === 'FUNCTION' && o.tag === 'dba_helper(integer)');
    const p = planDbRestore(TOC, db, { clean: true, listing: withoutDbaTableData() });
    assert.equal(action(p, 'FUNCTION public.dba_helper(integer)'), 'create');
    assert.ok(!disabledIds(p.listing).includes(337) && !disabledIds(p.listing).includes(3534), 'the function and its grant are restored');
    const su = planDbRestore(TOC, { ...live(), superuser: true }, { clean: true });
    assert.deepEqual(su.blockers, []);
    assert.equal(su.noOwner, false);
    // The ext schema holds the (kept) hstore's objects, so it cannot be dropped: kept too.
    assert.deepEqual(disabledIds(su.listing).sort((a, b) => a - b), [2, 3, 4, 10, 3530, 3531, 3532]);
  });

  it('a selective listing that keeps a schema but leaves out objects in it is refused; one whose entry depends on a left-out missing object too', () => {
    const l = parseListing(TOC);
    const onlySchema = serializeListing(setEnabled(l, tocEntries(l).filter((e) => e.dumpId !== 9).map((e) => e.dumpId), false));
    const p = planDbRestore(TOC, live(), { clean: true, listing: onlySchema });
    assert.ok(p.blockers.some((b) => b.includes('restores SCHEMA odd "schema"; ü but leaves out 1 object(s)') && b.includes('TABLE odd "schema"; ü.line break')), p.blockers.join('\n'));
    // Data of a table that the listing leaves out and that does not exist: refused; existing: fine,
    // with the warning that its rows are added to the live ones (the test below).
    const onlyData = serializeListing(setEnabled(l, tocEntries(l).filter((e) => e.dumpId !== 3517).map((e) => e.dumpId), false));
    const missing = without(live(), (o) => o.kind === 'TABLE' && o.tag === 'line\nbreak');
    assert.ok(planDbRestore(TOC, missing, { clean: true, listing: onlyData }).blockers.some((b) => /entry 3517 .*depends on TABLE odd "schema"; ü\.line break, which the listing leaves out and which does not exist/.test(b)));
    assert.deepEqual(planDbRestore(TOC, live(), { clean: true, listing: onlyData }).blockers, []);
  });

  it('a schema that also holds objects not in the set is kept, with a warning; objects newer than the set are named', () => {
    const db = live();
    db.objects.push({ kind: 'TABLE', schema: 'odd "schema"; ü', tag: 'made later', owner: 'kadi', mine: true, ext: false, top: true });
    const p = planDbRestore(TOC, db, { clean: true, listing: withoutDbaTableData() });
    assert.equal(action(p, 'SCHEMA odd "schema"; ü'), 'keep');
    assert.ok(disabledIds(p.listing).includes(9));
    assert.ok(p.warnings.some((w) => w.startsWith('Schema odd "schema"; ü holds 1 object(s) that are not in the set (TABLE made later)')), p.warnings.join('\n'));
    // A full restore names everything of the Kadi role's that the set does not have.
    const full = planDbRestore(TOC, db, { clean: true });
    assert.ok(full.warnings.some((w) => w.startsWith('1 object(s) in the database are not in the set') && w.includes('TABLE odd "schema"; ü.made later')), full.warnings.join('\n'));
  });

  it('a comment or grant on an object the dump does not create but another role owns (public after pg_upgrade) is kept', () => {
    const toc = TOC.replace(/^(3523; 0 0 BLOBS - BLOBS .*)$/m, '$1\n3600; 0 0 COMMENT - SCHEMA public postgres\n3601; 0 0 ACL - SCHEMA public postgres');
    const db = live();
    db.objects = db.objects.map((o) => (o.kind === 'SCHEMA' && o.tag === 'public' ? { ...o, owner: 'postgres', mine: false } : o));
    const p = planDbRestore(toc, db, { clean: true, listing: undefined });
    assert.equal(action(p, 'COMMENT SCHEMA public'), 'keep');
    assert.ok(disabledIds(p.listing).includes(3600) && disabledIds(p.listing).includes(3601));
    // Owned by the database owner's role (PostgreSQL 15's default): the Kadi role may comment it.
    const p15 = planDbRestore(toc, live(), { clean: true });
    assert.ok(!disabledIds(p15.listing).includes(3600));
  });

  it('a large object of another role is refused while the set\'s large-object data is restored, kept otherwise', () => {
    const db = live();
    db.objects.push({ kind: 'BLOB', schema: '-', tag: '16489', owner: 'dba', mine: false, ext: false, top: false });
    const p = planDbRestore(TOC, db, { clean: true, listing: withoutDbaTableData() });
    assert.equal(action(p, 'BLOB 16489'), 'refuse');
    assert.ok(p.blockers.some((b) => /BLOB 16489 is owned by dba/.test(b)), p.blockers.join('\n'));
    // The statement a superuser can run as it is (ALTER BLOB "-"."16489" is no statement).
    assert.ok(p.blockers.some((b) => b.includes('have a superuser run ALTER LARGE OBJECT 16489 OWNER TO "kadi";')), p.blockers.join('\n'));
    const l = parseListing(withoutDbaTableData());
    const noLoData = serializeListing(setEnabled(l, [3523], false));
    assert.equal(action(planDbRestore(TOC, db, { clean: true, listing: noLoData }), 'BLOB 16489'), 'keep');
  });

  it('a selective listing restores a table with its rows and large objects with their contents, or neither: never empties or doubles them', () => {
    const base = parseListing(withoutDbaTableData());
    const plan = (ids: number[]): ReturnType<typeof planDbRestore> => planDbRestore(TOC, live(), { clean: true, listing: serializeListing(setEnabled(base, ids, false)) });
    // public.t (223) and its rows (3519).
    const noRows = plan([3519]);
    assert.ok(noRows.blockers.some((b) => b.startsWith('The listing restores TABLE public.t (entry 223) but leaves out its rows (entry 3519): pg_restore --clean would drop the table and make it again empty.')), noRows.blockers.join('\n'));
    // Rows without their table are added to the live table's (right after a TRUNCATE, what one wants): said, not refused.
    const noTable = plan([223]);
    assert.deepEqual(noTable.blockers, []);
    assert.ok(noTable.warnings.some((w) => w.startsWith('The listing restores the rows of TABLE public.t (entry 3519) but leaves out the table itself (entry 223): they are added to the rows the live table holds')), noTable.warnings.join('\n'));
    assert.deepEqual(plan([223, 3519]).blockers, [], 'both left out: the table stays as it is');
    // Rows of a table that does not exist any more are restored into the table the listing makes; without it the dependency rule speaks.
    assert.ok(!planDbRestore(TOC, without(live(), (o) => o.kind === 'TABLE' && o.tag === 't'), { clean: true, listing: serializeListing(setEnabled(base, [223], false)) }).warnings.some((b) => b.includes('added to the rows')));
    // Large objects: BLOB 16489 (3522) without BLOBS (3523) would be made again empty.
    const noContents = plan([3523]);
    assert.ok(noContents.blockers.some((b) => b.startsWith('The listing restores 1 large object(s) (BLOB 16489, entry 3522) but leaves out their contents (BLOBS, entry 3523)')), noContents.blockers.join('\n'));
    assert.deepEqual(plan([3522, 3523]).blockers, []);
  });

  it('a schema the restore drops and creates again needs CREATE on the database: refused at preflight without it, with the grant to run', () => {
    const db = { ...live(), createSchemas: false };
    const p = planDbRestore(TOC, db, { clean: true, database: 'kadi', listing: withoutDbaTableData() });
    assert.ok(p.blockers.some((b) => b.startsWith('The restore drops and creates again SCHEMA odd "schema"; ü, but role kadi may not create schemas in database kadi') && b.includes('GRANT CREATE ON DATABASE "kadi" TO "kadi";')), p.blockers.join('\n'));
    assert.deepEqual(planDbRestore(TOC, { ...db, createSchemas: true }, { clean: true, database: 'kadi', listing: withoutDbaTableData() }).blockers, []);
    assert.deepEqual(planDbRestore(TOC, { ...db, superuser: true }, { clean: true, database: 'kadi' }).blockers, [], 'a superuser may');
  });

  it('a view or a foreign key that depends on a table the restore drops is refused unless the restore drops it first', () => {
    const on = { kind: 'TABLE', schema: 'public', tag: 't' };
    const db: LiveDb = {
      ...live(),
      dependents: [
        { kind: 'VIEW', schema: 'public', tag: 'v', on }, // in the set: dropped before t, made again after it
        { kind: 'VIEW', schema: 'public', tag: 'newer view', on },
        { kind: 'FK CONSTRAINT', schema: 'odd "schema"; ü', tag: 'line\nbreak fk_t', on },
        { kind: 'VIEW', schema: 'public', tag: 'on_the_dba_table', on: { kind: 'TABLE', schema: 'public', tag: 'dba_table' } }, // kept: not dropped
      ],
    };
    const p = planDbRestore(TOC, db, { clean: true, listing: withoutDbaTableData() });
    const blocker = p.blockers.find((b) => b.includes('depend on what this restore drops')) ?? p.blockers.join('\n');
    assert.match(blocker, /^2 object\(s\) of the database depend on what this restore drops and creates again.*\(VIEW public\.newer view depends on TABLE public\.t, and is not in the set, FK CONSTRAINT odd "schema"; ü\.line break fk_t depends on TABLE public\.t, and is not in the set\)\. Nothing was changed\./);
    // A listing that leaves out t's own entries (it stays as it is) drops nothing the others need;
    // one that restores t but leaves out the set's view v names v as not restored with it.
    const keepT = planDbRestore(TOC, db, { clean: true, listing: serializeListing(setEnabled(parseListing(withoutDbaTableData()), [223, 3519], false)) });
    assert.equal(keepT.blockers.find((b) => b.includes('depend on what')), undefined, keepT.blockers.join('\n'));
    const noView = planDbRestore(TOC, { ...db, dependents: [db.dependents[0]] }, { clean: true, listing: serializeListing(setEnabled(parseListing(withoutDbaTableData()), [225], false)) });
    assert.ok(noView.blockers.some((b) => b.includes('VIEW public.v depends on TABLE public.t and is not restored with it')), noView.blockers.join('\n'));
  });

  it('a partition of a table the restore drops, which the restore does not make again, is refused (PostgreSQL would drop it with its rows), with the DETACH to run; an inheriting table is named as what stays', () => {
    const on = { kind: 'TABLE', schema: 'public', tag: 't' };
    const db: LiveDb = {
      ...live(),
      dependents: [
        { kind: 'TABLE', schema: 'odd "schema"; ü', tag: 't 2030', on, via: 'partition' },
        { kind: 'TABLE', schema: 'public', tag: 't_child', on, via: 'inherits' },
        { kind: 'TABLE', schema: 'public', tag: 'dba_part', on: { kind: 'TABLE', schema: 'public', tag: 'dba_table' }, via: 'partition' }, // kept: not dropped
      ],
    };
    const p = planDbRestore(TOC, db, { clean: true, listing: withoutDbaTableData() });
    assert.ok(
      p.blockers.includes(
        '1 partition(s) would be dropped with their rows: the restore drops and creates again the partitioned table they belong to, and PostgreSQL drops its partitions with it (TABLE odd "schema"; ü.t 2030 (a partition of public.t, not in the set)). Nothing was changed. To keep one as a table of its own, detach it first (ALTER TABLE "public"."t" DETACH PARTITION "odd ""schema""; ü"."t 2030";) and attach it again after the restore if it fits; drop it first if it should go; or restore with a listing that leaves out the partitioned table.',
      ),
      p.blockers.join('\n'),
    );
    assert.ok(p.blockers.some((b) => b.startsWith('1 object(s) of the database depend on what this restore drops') && b.includes('TABLE public.t_child inherits from TABLE public.t, and is not in the set')), p.blockers.join('\n'));
    // With t left out of the listing, nothing of it is dropped: nothing named.
    const keepT = planDbRestore(TOC, db, { clean: true, listing: serializeListing(setEnabled(parseListing(withoutDbaTableData()), [223, 3519], false)) });
    assert.ok(!keepT.blockers.some((b) => b.includes('partition') || b.includes('inherits')), keepT.blockers.join('\n'));
    // The probe's row: the seventh field says how it hangs on its parent.
    const parsed = parseLiveDb(JSON.stringify({ user: 'kadi', objects: [], dependents: [['TABLE', 'public', 'p1', 'TABLE', 'public', 't', 'partition'], ['VIEW', 'public', 'v', 'TABLE', 'public', 't', '']] }));
    assert.deepEqual(parsed.dependents.map((x) => x.via), ['partition', undefined]);
  });

  it('a grant to a role the server does not have is refused with the statement to make it, unless its entry is left out or kept', () => {
    const db = live();
    assert.ok(!db.roles.includes('kadi_reader') && db.roles.includes('kadi'));
    const grantees = parseGrantees('{"3535":["kadi","kadi_reader"],"3534":["gone role"]}');
    const p = planDbRestore(TOC, db, { clean: true, listing: withoutDbaTableData(), grantees });
    // 3534 is the DBA function's grant: kept with the function, never run. 3535 runs (any entry the answer names).
    const blocker = p.blockers.find((b) => b.includes('role(s) this server does not have')) ?? p.blockers.join('\n');
    assert.equal(
      blocker,
      'The set\'s privileges name 1 role(s) this server does not have ("kadi_reader"): PostgreSQL would refuse those grants and the restore with them. Nothing was changed. Create the roles first (as a superuser or a role with CREATEROLE: CREATE ROLE "kadi_reader" NOLOGIN;), or restore with a listing that leaves out the privilege entries 3535.',
    );
    const left = planDbRestore(TOC, db, { clean: true, listing: serializeListing(setEnabled(parseListing(withoutDbaTableData()), [3535], false)), grantees });
    assert.equal(left.blockers.find((b) => b.includes('does not have')), undefined);
    assert.throws(() => parseGrantees(undefined), /could not be read \(no answer\)/);
    assert.throws(() => parseGrantees('{not json'), /could not be read \(no valid JSON\)/);
  });

  it('says which objects of other roles the restore gives the Kadi role (--no-owner), and not as a superuser', () => {
    // The Kadi role is a member of dba here: dba's table is dropped and created again, owned by kadi.
    const db: LiveDb = { ...live(), myRoles: [...live().myRoles, 'dba'], objects: live().objects.map((o) => (o.owner === 'dba' ? { ...o, mine: true } : o)) };
    const p = planDbRestore(TOC, db, { clean: true, listing: withoutDbaTableData() });
    const w = p.warnings.find((x) => x.includes('--no-owner')) ?? p.warnings.join('\n');
    assert.match(w, /^\d+ object\(s\) of the set owned by role dba will be owned by kadi after the restore \(.*TABLE public\.dba_table.*\): kadi is not a superuser, so pg_restore runs with --no-owner\./);
    const su = planDbRestore(TOC, { ...db, superuser: true }, { clean: true, listing: withoutDbaTableData() });
    assert.equal(su.warnings.find((x) => x.includes('--no-owner')), undefined);
  });

  it('says that the database\'s own settings in the set are not applied to the existing database', () => {
    assert.equal(planDbRestore(TOC, live(), { clean: true, listing: withoutDbaTableData() }).warnings.find((w) => w.includes('ALTER DATABASE')), undefined);
    const withProps = TOC.replace(/^(\d+; \d+ \d+ DATABASE - (\S+) .*)$/m, '$1\n9999; 0 0 DATABASE PROPERTIES - $2 kadi');
    assert.notEqual(withProps, TOC);
    const w = planDbRestore(withProps, live(), { clean: true, listing: withoutDbaTableData() }).warnings.find((x) => x.includes('ALTER DATABASE')) ?? '';
    assert.match(w, /^The set holds settings of database \S+ \(ALTER DATABASE … SET …\) that a restore into an existing database does not apply/);
  });

  it('warns before a restore whose one transaction needs more locks than the server\'s lock table comfortably holds', () => {
    const small = { ...live(), lockSlots: 20 };
    const p = planDbRestore(TOC, small, { clean: true, listing: withoutDbaTableData() });
    assert.ok(p.warnings.some((w) => /takes about \d+ locks in one transaction; the server's lock table holds 20 .*max_locks_per_transaction/.test(w)), p.warnings.join('\n'));
    assert.ok(!planDbRestore(TOC, { ...live(), lockSlots: 6400 }, { clean: true, listing: withoutDbaTableData() }).warnings.some((w) => /locks in one transaction/.test(w)));
  });

  it('an empty database where objects of the set still exist is cleaned first', () => {
    assert.equal(planDbRestore(TOC, live(), { clean: false, listing: withoutDbaTableData() }).clean, true);
    const empty = without(live(), (o) => o.mine);
    assert.equal(planDbRestore(TOC, empty, { clean: false, listing: withoutDbaTableData() }).clean, false);
  });
});
