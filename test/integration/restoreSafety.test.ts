/**
 * A database restore never leaves the instance worse than before, on a database as DBAs leave it:
 * extensions owned by the superuser, a function of another role, identifiers with newlines, quotes,
 * semicolons and unicode, large objects, views and comments (the sandbox seed has all of them).
 * Failures are caused for real inside PostgreSQL with event triggers that a superuser installs for
 * the test, and a database connection is cut with pg_terminate_backend.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startBackup } from '../../src/backup/backupSets';
import type { HostProfile } from '../../src/config/types';
import { discover, type Discovery } from '../../src/kadi/discovery';
import { checkPrerequisites } from '../../src/kadi/prerequisites';
import { parseListing, serializeListing, setEnabled, tocEntries } from '../../src/pgtoc/listing';
import type { ConnectionPool } from '../../src/remote/connectionPool';
import { listJobs } from '../../src/remote/jobs';
import type { RemoteHost } from '../../src/remote/remoteHost';
import { preflight, RestoreRefusedError, type PreflightOptions, type RestorePlan } from '../../src/restore/preflight';
import { startRestore } from '../../src/restore/restoreJob';
import type { SandboxHost } from '../sandbox/sandbox';
import { ODD_SCHEMA } from '../sandbox/seed';
import { getSandbox, newPool, profileOf } from './fixture';
import { runJob, setNameFrom, sleep, tableDigests, type Ran } from './restoreHelpers';

/**
 * Event triggers that make the restore's own DDL fail where the test says (kadi_test.fault, a
 * database setting that new sessions, like pg_restore's, pick up): 'first drop' fails the first DROP
 * of the clean phase; '<command tag> <object identity>' fails that command; 'CONSTRAINT <name> ON
 * <table>' fails adding that constraint; 'sleep <tag> <identity>' holds the restore there for 60 s.
 */
const FAULT_SQL = `
CREATE FUNCTION public.kadi_test_fault() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE spec text := current_setting('kadi_test.fault', true); r record;
BEGIN
  IF spec IS NULL OR spec = '' THEN RETURN; END IF;
  IF TG_EVENT = 'sql_drop' THEN
    IF spec = 'first drop' THEN RAISE EXCEPTION 'kadi-ops test fault: the first DROP'; END IF;
    RETURN;
  END IF;
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    IF spec = 'sleep ' || r.command_tag || ' ' || r.object_identity THEN PERFORM pg_sleep(60); END IF;
    IF spec = r.command_tag || ' ' || r.object_identity THEN RAISE EXCEPTION 'kadi-ops test fault: %', spec; END IF;
    IF r.command_tag = 'ALTER TABLE' AND EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = r.objid AND spec = 'CONSTRAINT ' || c.conname || ' ON ' || r.object_identity) THEN
      RAISE EXCEPTION 'kadi-ops test fault: %', spec;
    END IF;
  END LOOP;
END $$;
CREATE EVENT TRIGGER kadi_test_fault_ddl ON ddl_command_end EXECUTE FUNCTION public.kadi_test_fault();
CREATE EVENT TRIGGER kadi_test_fault_drop ON sql_drop EXECUTE FUNCTION public.kadi_test_fault();
`;

describe('a database restore never leaves the instance worse than before', function () {
  this.timeout(600000);
  let sb: SandboxHost;
  let pool: ConnectionPool;
  let profile: HostProfile;
  let host: RemoteHost;
  let set: string;

  const d = (): Promise<Discovery> => discover(host);

  async function backup(): Promise<string> {
    await sleep(1100); // set names have one-second resolution
    const r = await runJob(host, pool, async () => startBackup(host, await d()));
    assert.equal(r.outcome.result, 'succeeded', r.log);
    return setNameFrom(r.log);
  }

  async function plan(name: string, opts: PreflightOptions = {}): Promise<{ disc: Discovery; plan: RestorePlan }> {
    const disc = await d();
    return { disc, plan: await preflight(host, disc, name, { components: ['db'], safetyBackup: false, ...opts }) };
  }

  async function restore(name: string, opts: PreflightOptions = {}): Promise<Ran & { plan: RestorePlan }> {
    const p = await plan(name, opts);
    assert.deepEqual(p.plan.blockers, [], 'preflight found no blockers');
    const r = await runJob(host, pool, () => startRestore(host, p.disc, p.plan));
    return { ...r, plan: p.plan };
  }

  /** Changes made after the set: the "before" of every failing restore differs from the set. */
  async function changeSinceSet(tag: string): Promise<void> {
    await sb.psql(`SET ROLE kadi;
      UPDATE record SET title = title || ' (${tag})' WHERE id = 1;
      INSERT INTO "odd ""schema""; ü"."line
break; ""t"" ü" (id, note) VALUES ((SELECT max(id) + 1 FROM "odd ""schema""; ü"."line
break; ""t"" ü"), 'added after the set');
      INSERT INTO public."TABLE DATA public x kadi" DEFAULT VALUES;
      INSERT INTO attachment_blob VALUES ((SELECT max(id) + 1 FROM attachment_blob), lo_from_bytea(0, convert_to('${tag}', 'UTF8')));
      RESET ROLE;`);
  }

  async function setFault(spec: string): Promise<void> {
    await sb.psql(`ALTER DATABASE kadi SET kadi_test.fault = '${spec.replace(/'/g, "''")}'`);
  }

  before(async () => {
    sb = await getSandbox();
    pool = newPool();
    profile = profileOf(sb, 'sudo');
    host = await pool.get(profile);
    // The DBA's objects as the seed makes them (an earlier test may have restored them as the Kadi role).
    await sb.psql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN CREATE EXTENSION pg_trgm; END IF; END $$; ALTER FUNCTION dba_normalize(text) OWNER TO kadi_dba; ALTER COLLATION dba_c OWNER TO kadi_dba; ALTER TEXT SEARCH CONFIGURATION dba_english OWNER TO kadi_dba;");
    set = await backup();
    await sb.psql(FAULT_SQL);
  });
  after(async () => {
    await sb.psql('ALTER DATABASE kadi RESET kadi_test.fault; DROP EVENT TRIGGER IF EXISTS kadi_test_fault_ddl; DROP EVENT TRIGGER IF EXISTS kadi_test_fault_drop; DROP FUNCTION IF EXISTS public.kadi_test_fault();');
    pool.closeAll();
  });
  afterEach(() => setFault(''));

  it('restore onto the live database keeps the superuser\'s extension and the other role\'s function, and equals the set', async () => {
    await setFault('');
    const expected = await tableDigests(sb); // the set was taken from this state
    await changeSinceSet('live restore');
    assert.notEqual(await tableDigests(sb), expected);
    // Made after the set, which knows nothing of them: a table and a large object are left alone,
    // and the plan says so for the table.
    await sb.psql('SET ROLE kadi; CREATE TABLE added_after_set (id integer); RESET ROLE;');
    const newerLo = (await sb.psql('SELECT max(blob) FROM attachment_blob')).trim();
    let r: Ran & { plan: RestorePlan };
    try {
      r = await restore(set);
      assert.equal(r.outcome.result, 'succeeded', r.log);
      assert.ok(r.plan.warnings.some((w) => /1 object\(s\) in the database are not in the set .*TABLE public\.added_after_set/.test(w)), r.plan.warnings.join('\n'));
      assert.equal((await sb.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'added_after_set'")).trim(), '1');
    } finally {
      await sb.psql(`DROP TABLE IF EXISTS added_after_set; SELECT lo_unlink(${newerLo});`);
    }
    const decided = (o: string): string | undefined => r.plan.db?.decisions.find((x) => x.object === o)?.action;
    assert.equal(decided('EXTENSION pg_trgm'), 'keep', JSON.stringify(r.plan.db?.decisions));
    assert.ok((r.plan.probe.db?.lockSlots ?? 0) >= 64 * 10, 'the probe read the server\'s lock table size');
    assert.equal(decided('FUNCTION public.dba_normalize(text)'), 'keep', JSON.stringify(r.plan.db?.decisions));
    assert.equal(await tableDigests(sb), expected);
    // Still the DBA's, never dropped: same owners, and the objects that use them are back.
    assert.equal((await sb.psql("SELECT pg_get_userbyid(extowner) FROM pg_extension WHERE extname = 'pg_trgm'")).trim(), 'postgres');
    assert.equal((await sb.psql("SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'dba_normalize'")).trim(), 'kadi_dba');
    // The DBA's collation and text search configuration too (before: dropped and made again as the
    // Kadi role's, which owns schema public, silently).
    for (const o of ['COLLATION public.dba_c', 'TEXT SEARCH CONFIGURATION public.dba_english']) assert.equal(decided(o), 'keep', o);
    assert.equal((await sb.psql("SELECT pg_get_userbyid(collowner) || ' ' || obj_description(oid, 'pg_collation') FROM pg_collation WHERE collname = 'dba_c'")).trim(), 'kadi_dba a collation the DBA added');
    assert.equal((await sb.psql("SELECT pg_get_userbyid(cfgowner) FROM pg_ts_config WHERE cfgname = 'dba_english'")).trim(), 'kadi_dba');
    assert.equal((await sb.psql("SELECT count(*) FROM pg_indexes WHERE indexname = 'record_title_fts'")).trim(), '1');
    assert.equal((await sb.psql("SELECT count(*) FROM pg_indexes WHERE indexname = 'record_title_trgm'")).trim(), '1');
    assert.equal((await sb.psql(`SELECT obj_description('"odd ""schema""; ü"."view; of it"'::regclass, 'pg_class')`)).trim(), 'a view over the table with the newline');
  });

  for (const where of ['first drop', 'first create', 'middle', 'last'] as const) {
    it(`a restore that fails at the ${where} TOC entry leaves the database exactly as it was${where === 'first drop' ? '; its safety set restores' : ''}`, async () => {
      const setTocLast = await lastEnabledConstraint();
      const spec = {
        'first drop': 'first drop',
        'first create': `CREATE SCHEMA "${ODD_SCHEMA.replace(/"/g, '""')}"`,
        middle: 'CREATE TABLE public.record',
        last: setTocLast,
      }[where];
      await changeSinceSet(where);
      const before = await tableDigests(sb);
      await setFault(spec);
      const safety = where === 'first drop';
      const r = await restore(set, { safetyBackup: safety });
      await setFault('');
      assert.equal(r.outcome.result, 'failed', r.log);
      assert.match(r.log, /kadi-ops test fault/);
      assert.match(r.log, /the database is unchanged: the restore ran in one transaction/);
      assert.equal(r.report.failedStep, 'database', r.log);
      assert.equal(await tableDigests(sb), before, 'the database is exactly as before the restore');
      if (safety) {
        assert.ok(r.report.safetySet, r.log);
        // Restore the set for real, then the safety set: the state before the failed restore is back.
        const ok = await restore(set);
        assert.equal(ok.outcome.result, 'succeeded', ok.log);
        assert.notEqual(await tableDigests(sb), before);
        const back = await restore(r.report.safetySet!);
        assert.equal(back.outcome.result, 'succeeded', back.log);
        // The safety set holds the test's event triggers, which only a superuser can make: kept.
        assert.equal(back.plan.db?.decisions.find((x) => x.object === 'EVENT TRIGGER kadi_test_fault_ddl')?.action, 'keep');
        assert.equal(await tableDigests(sb), before);
      }
    });
  }

  it('a restore whose database connection is cut mid-way leaves the database exactly as it was', async () => {
    await changeSinceSet('cut');
    const before = await tableDigests(sb);
    await setFault('sleep CREATE TABLE public.record');
    const p = await plan(set);
    assert.deepEqual(p.plan.blockers, []);
    let killed = 0;
    const r = await runJob(host, pool, async () => {
      const id = await startRestore(host, p.disc, p.plan);
      void (async () => {
        for (let i = 0; i < 200 && killed === 0; i++) {
          await sleep(100);
          killed = Number((await sb.psql(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'kadi-ops-${id}' AND wait_event = 'PgSleep'`)).trim());
        }
      })();
      return id;
    });
    await setFault('');
    assert.equal(killed, 1, 'the restore session was terminated while it was inside the restore');
    assert.equal(r.outcome.result, 'failed', r.log);
    assert.match(r.log, /the database is unchanged/);
    assert.equal(await tableDigests(sb), before);
  });

  it('a statement_timeout the Kadi role has (for the web application) ends none of the backup\'s or restore\'s own sessions: the backup and the database step succeed, ANALYZE included', async () => {
    await sb.psql("ALTER ROLE kadi SET statement_timeout = '1ms'; ALTER ROLE kadi SET idle_in_transaction_session_timeout = '1ms'");
    try {
      const name = await backup();
      const r = await restore(name);
      assert.match(r.log, /^ {2}database +\d+s +ok$/m, r.log);
      assert.match(r.log, /^\[step\] database: ANALYZE$/m);
      assert.doesNotMatch(r.log, /ANALYZE afterwards failed/);
      // Kadi's own commands run with the role's setting, as Kadi does: a 1 ms timeout fails those of
      // their statements that take longer (which ones depends on the machine's speed). Only their
      // steps may fail, each said as Kadi's.
      const failed = [...r.log.matchAll(/^ {2}(\S+) +\d+s +FAILED$/gm)].map((m) => m[1]);
      assert.deepEqual(failed.filter((s) => !['reindex', 'files-check'].includes(s)), [], r.log);
      if (failed.includes('files-check')) assert.match(r.log, /^ATTENTION: kadi files check failed \(exit status 1: .*statement timeout\)$/m, r.log);
      if (failed.includes('reindex')) assert.match(r.log, /^ATTENTION: .*(reindex|indexed)/m, r.log);
    } finally {
      await sb.psql('ALTER ROLE kadi RESET statement_timeout; ALTER ROLE kadi RESET idle_in_transaction_session_timeout');
    }
  });

  it("the Kadi role's default privileges (ALTER DEFAULT PRIVILEGES) that tables made again would get are named in the plan, with whom they grant to", async () => {
    // file has privileges of its own in the set (a grant to another role); the others have none.
    await sb.psql(`CREATE ROLE "kadi files reader" NOLOGIN; GRANT SELECT ON public.file TO "kadi files reader";`);
    let name: string;
    try {
      name = await backup();
    } finally {
      await sb.psql(`REVOKE SELECT ON public.file FROM "kadi files reader";`);
    }
    await sb.psql(`CREATE ROLE "kadi audit; ü" NOLOGIN; ALTER DEFAULT PRIVILEGES FOR ROLE kadi IN SCHEMA public GRANT SELECT ON TABLES TO "kadi audit; ü";`);
    try {
      const p = await plan(name);
      const said = p.plan.warnings.find((w) => w.includes('default privileges')) ?? p.plan.warnings.join('\n');
      assert.match(said, /^Role kadi has default privileges \(ALTER DEFAULT PRIVILEGES\) that grant to kadi audit; ü, which the set's own privileges do not name: the \d+ object\(s\) this restore makes again get them \(.*TABLE public\.file/);
      assert.doesNotMatch(said, /SEQUENCE/, 'the default privileges are for tables only');
      // What the warning says happens: the restored table can be read by the role it did not grant to.
      assert.equal((await sb.psql(`SELECT has_table_privilege('kadi audit; ü', 'public.record', 'SELECT')`)).trim(), 'f');
      const r = await restore(name);
      assert.equal(r.outcome.result, 'succeeded', r.log);
      assert.equal((await sb.psql(`SELECT has_table_privilege('kadi audit; ü', 'public.record', 'SELECT')`)).trim(), 't');
      // Also where the set holds privileges of its own for the table: they are granted on top.
      assert.equal((await sb.psql(`SELECT has_table_privilege('kadi audit; ü', 'public.file', 'SELECT') AND has_table_privilege('kadi files reader', 'public.file', 'SELECT')`)).trim(), 't');
    } finally {
      await sb.psql(`ALTER DEFAULT PRIVILEGES FOR ROLE kadi IN SCHEMA public REVOKE SELECT ON TABLES FROM "kadi audit; ü"; DROP OWNED BY "kadi audit; ü"; DROP ROLE "kadi audit; ü"; DROP OWNED BY "kadi files reader"; DROP ROLE "kadi files reader";`);
    }
    const p = await plan(name);
    assert.equal(p.plan.warnings.some((w) => w.includes('default privileges')), false, p.plan.warnings.join('\n'));
  });

  it("another role's statistics object on a table the restore makes again: refused where the Kadi role may not drop it (DROP TABLE would take it along), made again as the Kadi role's (said) where it owns the schema", async () => {
    const table = 'public."TABLE DATA public x kadi"';
    await sb.psql(`CREATE SCHEMA "dba stats" AUTHORIZATION kadi_dba;
      CREATE STATISTICS public.dba_stats (dependencies) ON id, sort_key FROM ${table}; ALTER STATISTICS public.dba_stats OWNER TO kadi_dba; COMMENT ON STATISTICS public.dba_stats IS 'DBA tuning; ü';
      CREATE STATISTICS "dba stats"."on x; ü" (ndistinct) ON id, digest FROM ${table}; ALTER STATISTICS "dba stats"."on x; ü" OWNER TO kadi_dba;`);
    const owner = async (): Promise<string> => (await sb.psql("SELECT string_agg(stxname || '=' || pg_get_userbyid(stxowner), ',' ORDER BY stxname) FROM pg_statistic_ext")).trim();
    try {
      const name = await backup();
      const p = await plan(name);
      const decided = (o: string): string | undefined => p.plan.db?.decisions.find((x) => x.object === o)?.action;
      assert.equal(decided('STATISTICS dba stats.on x; ü'), 'refuse', JSON.stringify(p.plan.db?.decisions));
      const said = p.plan.blockers.find((b) => b.startsWith('STATISTICS dba stats.on x; ü is owned by kadi_dba, not by kadi: the restore drops and creates again TABLE public.TABLE DATA public x kadi'));
      assert.ok(said?.includes('ALTER STATISTICS "dba stats"."on x; ü" OWNER TO "kadi"; GRANT USAGE, CREATE ON SCHEMA "dba stats" TO "kadi";'), p.plan.blockers.join('\n'));
      assert.equal(decided('STATISTICS public.dba_stats'), 'create');
      assert.ok(p.plan.warnings.some((w) => /owned by role kadi_dba will be owned by kadi after the restore \(.*STATISTICS public\.dba_stats/.test(w)), p.plan.warnings.join('\n'));
      // What the refusal says to run is enough: then the restore runs, and both come back as kadi's.
      await sb.psql('ALTER STATISTICS "dba stats"."on x; ü" OWNER TO "kadi"; GRANT USAGE, CREATE ON SCHEMA "dba stats" TO "kadi";');
      const r = await restore(name);
      assert.equal(r.outcome.result, 'succeeded', r.log);
      assert.equal(await owner(), 'dba_stats=kadi,on x; ü=kadi');
      // The comment on the one made again comes back with it (it was kept out before, and lost).
      const comment = await sb.psql("SELECT d.description FROM pg_description d JOIN pg_statistic_ext s ON d.classoid = 'pg_statistic_ext'::regclass AND d.objoid = s.oid WHERE s.stxname = 'dba_stats'");
      assert.equal(comment.trim(), 'DBA tuning; ü');
    } finally {
      await sb.psql(`DROP STATISTICS IF EXISTS public.dba_stats; DROP SCHEMA IF EXISTS "dba stats" CASCADE;`);
    }
  });

  it("another role's publication of Kadi's tables is kept (the restore failed on it before); its tables' places in it, and a DBA's index and statistics made after the set, are said with what to run to have them back", async () => {
    const pub = 'rep pub; ü';
    await sb.psql(`GRANT CREATE ON DATABASE kadi TO kadi_dba; CREATE PUBLICATION "${pub}" FOR TABLE public.record, public.file; ALTER PUBLICATION "${pub}" OWNER TO kadi_dba;`);
    const tables = async (): Promise<string> => (await sb.psql(`SELECT coalesce(string_agg(tablename, ',' ORDER BY tablename), '') FROM pg_publication_tables WHERE pubname = '${pub}'`)).trim();
    try {
      const name = await backup();
      await sb.psql(`CREATE INDEX "dba idx; ü" ON public.record (title); CREATE STATISTICS public.dba_later ON id, title FROM public.record; ALTER STATISTICS public.dba_later OWNER TO kadi_dba;`);
      const p = await plan(name);
      assert.deepEqual(p.plan.blockers, []);
      const decided = (o: string): string | undefined => p.plan.db?.decisions.find((x) => x.object === o)?.action;
      assert.equal(decided(`PUBLICATION ${pub}`), 'keep', JSON.stringify(p.plan.db?.decisions));
      const said = p.plan.warnings.find((w) => w.startsWith(`Publication ${pub} (owned by kadi_dba) publishes 2 table(s) this restore drops and makes again`));
      assert.ok(said?.endsWith(`run: ALTER PUBLICATION "${pub}" ADD TABLE "public"."file", "public"."record";`) || said?.endsWith(`run: ALTER PUBLICATION "${pub}" ADD TABLE "public"."record", "public"."file";`), p.plan.warnings.join('\n'));
      const attached = p.plan.warnings.find((w) => w.startsWith('2 index(es) or statistics object(s) on tables this restore makes again are not in the set')) ?? p.plan.warnings.join('\n');
      assert.ok(attached.includes('CREATE INDEX "dba idx; ü" ON public.record USING btree (title);') && attached.includes('CREATE STATISTICS public.dba_later ON id, title FROM public.record;'), attached);
      const r = await restore(name);
      assert.equal(r.outcome.result, 'succeeded', r.log);
      assert.equal((await sb.psql(`SELECT pg_get_userbyid(pubowner) FROM pg_publication WHERE pubname = '${pub}'`)).trim(), 'kadi_dba', 'kept as it was');
      assert.equal(await tables(), '', 'out of it, as said');
      // What the plan said to run brings them back.
      await sb.psql((said as string).slice((said as string).indexOf('ALTER PUBLICATION')));
      assert.equal(await tables(), 'file,record');
    } finally {
      await sb.psql(`DROP PUBLICATION IF EXISTS "${pub}"; REVOKE CREATE ON DATABASE kadi FROM kadi_dba; DROP INDEX IF EXISTS "dba idx; ü"; DROP STATISTICS IF EXISTS public.dba_later;`);
    }
  });

  it("a table of Kadi's in a DBA's tablespace where the Kadi role may no longer create is refused at preflight with the GRANT to run (pg_restore failed there part way); with it the restore puts the table back in that tablespace", async () => {
    const dataDir = (await sb.psql('SHOW data_directory')).trim();
    const owner = fs.statSync(dataDir);
    const spc = path.join(path.dirname(sb.backupDir), 'tablespace fast ü');
    fs.mkdirSync(spc);
    fs.chownSync(spc, owner.uid, owner.gid);
    await sb.psql(`CREATE TABLESPACE "fast disk; ü" LOCATION '${spc}'; GRANT CREATE ON TABLESPACE "fast disk; ü" TO kadi; SET ROLE kadi; CREATE TABLE on_fast (v integer) TABLESPACE "fast disk; ü"; INSERT INTO on_fast VALUES (7); RESET ROLE;`);
    try {
      const name = await backup();
      await sb.psql('REVOKE CREATE ON TABLESPACE "fast disk; ü" FROM kadi;');
      const p = await plan(name);
      const said = p.plan.blockers.find((b) => b.includes('tablespace fast disk; ü')) ?? p.plan.blockers.join('\n');
      assert.match(said, /^1 object\(s\) the restore drops and makes again live in tablespace fast disk; ü, where role kadi may not create \(TABLE public\.on_fast\).*GRANT CREATE ON TABLESPACE "fast disk; ü" TO "kadi";$/);
      await sb.psql('GRANT CREATE ON TABLESPACE "fast disk; ü" TO kadi;');
      const r = await restore(name);
      assert.equal(r.outcome.result, 'succeeded', r.log);
      assert.equal((await sb.psql(`SELECT v || ' ' || coalesce((SELECT spcname FROM pg_tablespace t JOIN pg_class c ON c.reltablespace = t.oid WHERE c.relname = 'on_fast'), '-') FROM on_fast`)).trim(), '7 fast disk; ü');
    } finally {
      await sb.psql('DROP TABLE IF EXISTS on_fast; DROP TABLESPACE IF EXISTS "fast disk; ü";');
      fs.rmSync(spc, { recursive: true, force: true });
    }
  });

  it('what a pg_dump as the Kadi role cannot read (another role\'s table without a grant, a table whose row security is forced) is refused at preflight when a safety backup would dump it, with the grants to run; not without one', async () => {
    // On the sandbox as it is (the DBA's own objects, each readable by kadi), `check` finds nothing.
    const first = (await checkPrerequisites(host, await d())).features.find((f) => f.feature === 'backup')?.checks.find((c) => c.name === 'pg_dump as kadi can read the whole database');
    assert.equal(first?.ok, true, JSON.stringify(first));
    // A materialized view of the DBA's without a grant is no obstacle: pg_dump dumps its definition, not its rows.
    await sb.psql(`CREATE TABLE "dba secret; ü" (v integer); ALTER TABLE "dba secret; ü" OWNER TO kadi_dba; CREATE TABLE dba_rls (v integer); ALTER TABLE dba_rls OWNER TO kadi_dba; GRANT SELECT ON dba_rls TO kadi; ALTER TABLE dba_rls ENABLE ROW LEVEL SECURITY; CREATE MATERIALIZED VIEW dba_mv AS SELECT 1 AS one; ALTER MATERIALIZED VIEW dba_mv OWNER TO kadi_dba; ALTER TABLE record ENABLE ROW LEVEL SECURITY; ALTER TABLE record FORCE ROW LEVEL SECURITY; CREATE POLICY all_rows ON record USING (true);`);
    try {
      const p = await plan(set, { safetyBackup: true });
      const said = p.plan.blockers.find((b) => b.startsWith('The safety backup (a pg_dump of all of database kadi as kadi) cannot read 3 object(s)')) ?? p.plan.blockers.join('\n');
      // Row security on Kadi's own table (forced) is lifted by NO FORCE; on another role's table
      // (enabled, even unforced) only by its owner disabling it, or a superuser's BYPASSRLS.
      for (const part of ['TABLE public.dba secret; ü', 'row security of public.record', 'row security of public.dba_rls', 'GRANT SELECT ON TABLE "public"."dba secret; ü" TO "kadi";', 'ALTER TABLE "public"."record" NO FORCE ROW LEVEL SECURITY;', 'ALTER TABLE "public"."dba_rls" DISABLE ROW LEVEL SECURITY; (its owner; or a superuser: ALTER ROLE "kadi" BYPASSRLS;)', '--no-safety-backup']) {
        assert.ok(said.includes(part), `${part}\n${said}`);
      }
      // `check` says it before any backup: the backup feature's check names them, with the statements.
      const prereq = await checkPrerequisites(host, await d());
      const readable = prereq.features.find((f) => f.feature === 'backup')?.checks.find((c) => c.name === 'pg_dump as kadi can read the whole database');
      assert.equal(readable?.ok, false, JSON.stringify(prereq.features));
      assert.deepEqual(readable?.detail?.split('; row security ').sort(), ['public.dba_rls', 'public.record', 'table public.dba secret; ü']);
      for (const part of ['GRANT SELECT ON TABLE "public"."dba secret; ü" TO "kadi";', 'ALTER TABLE "public"."record" NO FORCE ROW LEVEL SECURITY;', 'ALTER TABLE "public"."dba_rls" DISABLE ROW LEVEL SECURITY; (its owner; or a superuser: ALTER ROLE "kadi" BYPASSRLS;)']) {
        assert.ok(readable?.fix?.includes(part), `${part}\n${readable?.fix}`);
      }
      // What it names is what the backup meets: a backup of the instance fails on it.
      const b = await runJob(host, pool, async () => startBackup(host, await d()));
      assert.equal(b.outcome.result, 'failed', b.log);
      assert.deepEqual((await plan(set, { safetyBackup: false })).plan.blockers.filter((x) => x.startsWith('The safety backup')), []);
    } finally {
      await sb.psql('DROP TABLE IF EXISTS "dba secret; ü"; DROP TABLE IF EXISTS dba_rls; DROP MATERIALIZED VIEW IF EXISTS dba_mv; DROP POLICY IF EXISTS all_rows ON record; ALTER TABLE record NO FORCE ROW LEVEL SECURITY; ALTER TABLE record DISABLE ROW LEVEL SECURITY;');
    }
  });

  it('a database the Kadi role does not own (no CREATE on it) is named at preflight for the schemas a restore makes again; nothing runs', async () => {
    await sb.psql('ALTER DATABASE kadi OWNER TO postgres; GRANT CREATE ON SCHEMA public TO kadi;');
    try {
      const p = await plan(set);
      const jobsBefore = (await listJobs(host)).length;
      assert.ok(p.plan.blockers.some((b) => b.includes(`but role kadi may not create schemas in database kadi`) && b.includes('GRANT CREATE ON DATABASE "kadi" TO "kadi";')), p.plan.blockers.join('\n'));
      await assert.rejects(startRestore(host, p.disc, p.plan), RestoreRefusedError);
      assert.equal((await listJobs(host)).length, jobsBefore, 'no job was started');
      await sb.psql('GRANT CREATE ON DATABASE kadi TO kadi;');
      assert.deepEqual((await plan(set)).plan.blockers, [], 'with the grant the restore may run');
    } finally {
      await sb.psql('REVOKE CREATE ON DATABASE kadi FROM kadi; ALTER DATABASE kadi OWNER TO kadi; REVOKE CREATE ON SCHEMA public FROM kadi;');
    }
  });

  it('a selective listing that keeps a schema but leaves out objects still in it is refused at preflight; nothing runs', async () => {
    const toc = fs.readFileSync(path.join(sb.backupDir, set, 'db.toc'), 'utf8');
    const listing = parseListing(toc);
    // Everything off but the odd schema's own entry: its table is left out, yet still in the schema.
    const others = tocEntries(listing).filter((e) => !(e.desc === 'SCHEMA' && e.name === ODD_SCHEMA)).map((e) => e.dumpId);
    assert.ok(tocEntries(listing).some((e) => e.desc === 'SCHEMA' && e.name === ODD_SCHEMA), toc);
    const edited = serializeListing(setEnabled(listing, others, false));
    const jobsBefore = (await listJobs(host)).length;
    const p = await plan(set, { listing: edited });
    assert.ok(p.plan.blockers.some((b) => /leaves out 2 object\(s\) that are still in it/.test(b) && b.includes(ODD_SCHEMA)), p.plan.blockers.join('\n'));
    await assert.rejects(startRestore(host, p.disc, p.plan), RestoreRefusedError);
    assert.equal((await listJobs(host)).length, jobsBefore, 'no job was started');
  });

  it('a missing untrusted extension is refused at preflight with the exact statement a superuser must run', async () => {
    await sb.psql('CREATE EXTENSION pg_stat_statements');
    let withExt: string;
    try {
      withExt = await backup();
    } finally {
      await sb.psql('DROP EXTENSION pg_stat_statements');
    }
    const before = await tableDigests(sb);
    const p = await plan(withExt);
    assert.ok(p.plan.blockers.some((b) => b.includes('CREATE EXTENSION IF NOT EXISTS "pg_stat_statements" WITH SCHEMA "public";') && /only a superuser/.test(b)), p.plan.blockers.join('\n'));
    assert.equal(p.plan.db?.decisions.find((x) => x.object === 'EXTENSION pg_stat_statements')?.action, 'refuse');
    await assert.rejects(startRestore(host, p.disc, p.plan), RestoreRefusedError);
    // Once the superuser has run it, the same set restores and keeps the extension.
    await sb.psql('CREATE EXTENSION IF NOT EXISTS "pg_stat_statements" WITH SCHEMA "public"');
    try {
      const r = await restore(withExt);
      assert.equal(r.outcome.result, 'succeeded', r.log);
      assert.equal(r.plan.db?.decisions.find((x) => x.object === 'EXTENSION pg_stat_statements')?.action, 'keep');
      assert.equal(await tableDigests(sb), before);
    } finally {
      await sb.psql('DROP EXTENSION IF EXISTS pg_stat_statements');
    }
  });

  /** The fault spec for the set's last TOC entry: an FK constraint, added last. */
  async function lastEnabledConstraint(): Promise<string> {
    const p = await plan(set);
    const last = tocEntries(parseListing(p.plan.db!.listing)).filter((e) => e.enabled).at(-1)!;
    assert.equal(last.desc, 'FK CONSTRAINT', `the last entry is ${last.raw}`);
    const [table, con] = last.name.split(' ');
    return `CONSTRAINT ${con} ON ${last.schema}.${table}`;
  }
});
