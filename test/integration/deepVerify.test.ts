/**
 * Deep verification against the sandbox host: row counts that survive any legal identifier, a
 * throwaway PostgreSQL cluster that needs no privilege on the production server (and is gone
 * after a cancel), and the scratch-database fallback for hosts without the server binaries.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listSets, startBackup, startVerify } from '../../src/backup/backupSets';
import type { VerifyRecord } from '../../src/backup/manifest';
import { setState } from '../../src/backup/setState';
import { discover, type Discovery } from '../../src/kadi/discovery';
import type { ConnectionPool } from '../../src/remote/connectionPool';
import { cancelJob, type CancelResult, describeOutcome } from '../../src/remote/jobs';
import type { RemoteHost } from '../../src/remote/remoteHost';
import type { SandboxHost } from '../sandbox/sandbox';
import { KADI_HEAD_REVISION, SCHEMA_SQL } from '../sandbox/seed';
import { preflight } from '../../src/restore/preflight';
import { startRestore } from '../../src/restore/restoreJob';
import { getSandbox, newPool, profileOf } from './fixture';
import { jobDir, runJob, setNameFrom, sleep, type Ran } from './restoreHelpers';

/** Names with a newline, a tab, quotes, a semicolon, a backslash, unicode and spaces; one forges the old protocol's end marker. */
const ODD_SCHEMA = 'odd "schema";\n\twith \'quotes\' ü ☃';
const ODD_TABLE = 'line\nbreak\t"tab" \'q\'; DROP TABLE x; \\ ünï ☃';
const FORGED_TABLE = 'e\n__kadi_ops_counts_done__\nf\t7';

/** A SQL string literal (E'' form) for any text. */
const lit = (s: string): string => `E'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n').replace(/\t/g, '\\t')}'`;

/** Processes whose working directory lies inside `dir` (PostgreSQL works in its data directory), also after it was deleted. */
function processesIn(dir: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cwd: string;
    try {
      cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      continue;
    }
    if (cwd === dir || cwd.startsWith(dir + '/')) found.push(`${pid} (${cwd})`);
  }
  return found;
}

function tmpVerifyDirs(): string[] {
  return fs.readdirSync('/tmp').filter((n) => n.startsWith('kadi-ops-verify.'));
}

describe('deep verification against the sandbox host', function () {
  this.timeout(600000);
  let sb: SandboxHost;
  let pool: ConnectionPool;
  let host: RemoteHost;
  let d: Discovery;

  const run = (start: () => Promise<string>, onLine?: (l: string) => void): Promise<Ran> => runJob(host, pool, start, onLine);
  const verifyRecord = (set: string): VerifyRecord => JSON.parse(fs.readFileSync(path.join(sb.backupDir, set, '.verify.json'), 'utf8')) as VerifyRecord;
  const databases = async (): Promise<string> => (await sb.psql('select string_agg(datname, \',\' order by datname) from pg_database')).trim();
  const backup = async (): Promise<string> => {
    await sleep(1100); // set names have one-second resolution
    const b = await run(() => startBackup(host, d));
    assert.equal(b.outcome.result, 'succeeded', b.log);
    return setNameFrom(b.log);
  };

  before(async () => {
    sb = await getSandbox();
    pool = newPool();
    host = await pool.get(profileOf(sb, 'direct'));
    d = await discover(host);
  });
  after(async () => {
    await sb.psql('ALTER ROLE kadi NOCREATEDB;');
    pool.closeAll();
  });

  it('counts rows of tables and schemas whose names hold newlines, tabs, quotes, semicolons and unicode; deep verify compares them', async () => {
    await sb.psql(`SET ROLE kadi;
      DO $$ BEGIN
        EXECUTE format('CREATE SCHEMA %I', ${lit(ODD_SCHEMA)});
        EXECUTE format('CREATE TABLE %I.%I (v text)', ${lit(ODD_SCHEMA)}, ${lit(ODD_TABLE)});
        EXECUTE format('INSERT INTO %I.%I SELECT g::text FROM generate_series(1, 3) g', ${lit(ODD_SCHEMA)}, ${lit(ODD_TABLE)});
        EXECUTE format('CREATE TABLE public.%I (v int)', ${lit(ODD_TABLE)});
        EXECUTE format('INSERT INTO public.%I SELECT generate_series(1, 5)', ${lit(ODD_TABLE)});
        EXECUTE format('CREATE TABLE public.%I (v int)', ${lit(FORGED_TABLE)});
        EXECUTE format('INSERT INTO public.%I VALUES (1), (2)', ${lit(FORGED_TABLE)});
      END $$;
      RESET ROLE;`);
    try {
      const set = await backup();
      const manifest = JSON.parse(fs.readFileSync(path.join(sb.backupDir, set, 'manifest.json'), 'utf8')) as { rowCounts: Record<string, number> };
      assert.equal(manifest.rowCounts[`${ODD_SCHEMA}.${ODD_TABLE}`], 3);
      assert.equal(manifest.rowCounts[`public.${ODD_TABLE}`], 5);
      assert.equal(manifest.rowCounts[`public.${FORGED_TABLE}`], 2);
      assert.equal(manifest.rowCounts['public.file'], Number((await sb.psql('select count(*) from file')).trim()));

      const v = await run(() => startVerify(host, d, set, 'deep'));
      assert.equal(v.outcome.result, 'succeeded', v.log);
      assert.match(v.log, /^deep: (\d+) tables compared/m);
      const rec = verifyRecord(set);
      assert.equal(rec.level, 'deep');
      assert.equal(rec.ok, true);
      assert.equal(rec.deep?.tablesCompared, Object.keys(manifest.rowCounts).length);

      // The odd tables are really compared: a recorded count that differs is named, on one line.
      const counts = path.join(sb.backupDir, set, 'db.counts.json');
      const keep = fs.readFileSync(counts);
      try {
        const c = JSON.parse(keep.toString('utf8')) as { tables: [string, string, number][] };
        for (const t of c.tables) if (t[1] === ODD_TABLE) t[2] += 1;
        fs.writeFileSync(counts, JSON.stringify(c));
        const bad = await run(() => startVerify(host, d, set, 'deep'));
        assert.equal(bad.outcome.result, 'failed', bad.log);
        assert.match(bad.log, /^PROBLEM: table "odd ""schema"";\\x0a\\x09with 'quotes' ü ☃"\."line\\x0abreak\\x09""tab"" 'q'; DROP TABLE x; \\ ünï ☃": 3 rows restored, 4 at backup time$/m);
        assert.match(bad.log, /^PROBLEM: table public\."line\\x0abreak.*: 5 rows restored, 6 at backup time$/m);
      } finally {
        fs.writeFileSync(counts, keep);
      }
    } finally {
      await sb.psql(`DO $$ BEGIN
        EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', ${lit(ODD_SCHEMA)});
        EXECUTE format('DROP TABLE IF EXISTS public.%I, public.%I', ${lit(ODD_TABLE)}, ${lit(FORGED_TABLE)});
      END $$;`);
    }
  });

  it('a LATIN1 database with names in é and ü backs up, deep-verifies with every table compared, and restores', async () => {
    // psql speaks the database's encoding unless told otherwise: before, the restore probe failed
    // with a UnicodeDecodeError and the backup's counts held U+FFFD, so deep verify called good
    // sets damaged.
    const latin1 = 'kadi_latin1';
    await sb.psql(`CREATE DATABASE ${latin1} OWNER kadi ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`, 'postgres');
    const original = fs.readFileSync(sb.kadiConfig, 'utf8');
    let other: ConnectionPool | undefined;
    try {
      await sb.psql(
        `SET client_encoding = 'UTF8';\nSET ROLE kadi;\n${SCHEMA_SQL}\nINSERT INTO alembic_version VALUES ('${KADI_HEAD_REVISION}');\n` +
          `CREATE SCHEMA "schéma ü";\nCREATE TABLE "schéma ü"."café" (id integer PRIMARY KEY, note text);\n` +
          // A foreign key and a view on it: the preflight matches them with the set's names (read
          // in the dump's encoding), or it would take them for objects the set lacks.
          `CREATE TABLE "schéma ü"."bücher" (id integer REFERENCES "schéma ü"."café" (id));\n` +
          `CREATE VIEW "schéma ü"."über" AS SELECT id FROM "schéma ü"."café";\n` +
          `INSERT INTO "schéma ü"."café" SELECT i, 'crème brûlée ' || i FROM generate_series(1, 7) i;\nRESET ROLE;`,
        latin1,
      );
      fs.writeFileSync(sb.kadiConfig, original.replace(/(SQLALCHEMY_DATABASE_URI = "postgresql:\/\/[^"]*\/)kadi"/, `$1${latin1}"`));
      assert.notEqual(fs.readFileSync(sb.kadiConfig, 'utf8'), original, 'the configuration names the LATIN1 database');
      other = newPool();
      const h2 = await other.get(profileOf(sb, 'direct'));
      const d2 = await discover(h2);
      const b = await runJob(h2, other, () => startBackup(h2, d2));
      assert.equal(b.outcome.result, 'succeeded', b.log);
      const set = setNameFrom(b.log);
      const counts = JSON.parse(fs.readFileSync(path.join(sb.backupDir, set, 'db.counts.json'), 'utf8')) as { tables: [string, string, number][] };
      assert.deepEqual(counts.tables.find(([, t]) => t === 'café'), ['schéma ü', 'café', 7], JSON.stringify(counts));
      const v = await runJob(h2, other, () => startVerify(h2, d2, set, 'deep'));
      assert.equal(v.outcome.result, 'succeeded', v.log);
      assert.equal(verifyRecord(set).ok, true, v.log);
      assert.deepEqual(verifyRecord(set).problems, []);
      await sb.psql(`SET client_encoding = 'UTF8'; DELETE FROM "schéma ü"."café" WHERE id > 3`, latin1);
      const plan = await preflight(h2, d2, set, { components: ['db'], safetyBackup: false });
      assert.deepEqual(plan.blockers, []);
      assert.deepEqual(plan.warnings.filter((w) => /not in the set/.test(w)), []);
      const r = await runJob(h2, other, () => startRestore(h2, d2, plan));
      assert.equal(r.outcome.result, 'succeeded', r.log);
      assert.equal((await sb.psql(`SET client_encoding = 'UTF8'; SELECT count(*) || ' ' || max(note) FROM "schéma ü"."café"`, latin1)).trim(), '7 crème brûlée 7');
    } finally {
      other?.closeAll();
      fs.writeFileSync(sb.kadiConfig, original);
      await sb.psql(`DROP DATABASE IF EXISTS ${latin1} WITH (FORCE)`, 'postgres');
    }
  });

  it('deep verify of a set from before db.counts.json compares the old db.counts.tsv', async () => {
    const set = await backup();
    const dir = path.join(sb.backupDir, set);
    const c = JSON.parse(fs.readFileSync(path.join(dir, 'db.counts.json'), 'utf8')) as { tables: [string, string, number][] };
    // The set as the old agent wrote it: db.counts.tsv, listed in the manifest, and no db.counts.json.
    // (Old sets cannot hold names with a newline or tab: the old backup failed on them.)
    const isFile = (s: string, t: string): boolean => s === 'public' && t === 'file';
    const tsv = c.tables
      .filter(([s, t]) => !/[\n\t]/.test(s + t))
      .map(([s, t, n]) => `${s}.${t}\t${isFile(s, t) ? n + 1 : n}\n`)
      .join('');
    fs.writeFileSync(path.join(dir, 'db.counts.tsv'), tsv);
    const manifestFile = path.join(dir, 'manifest.json');
    const m = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as { artifacts: { name: string; size: number; sha256: string }[] };
    m.artifacts = m.artifacts.filter((a) => a.name !== 'db.counts.json');
    m.artifacts.push({ name: 'db.counts.tsv', size: Buffer.byteLength(tsv), sha256: createHash('sha256').update(tsv).digest('hex') });
    fs.writeFileSync(manifestFile, JSON.stringify(m));
    fs.rmSync(path.join(dir, 'db.counts.json'));
    const v = await run(() => startVerify(host, d, set, 'deep'));
    assert.equal(v.outcome.result, 'failed', v.log);
    // The one count made wrong on purpose is found, every other table matches.
    const problems = v.log.split('\n').filter((l) => l.startsWith('PROBLEM: '));
    const files = c.tables.find(([s, t]) => isFile(s, t))![2];
    assert.deepEqual([...new Set(problems)], [`PROBLEM: table public.file: ${files} rows restored, ${files + 1} at backup time`], v.log);
  });

  it('deep verify needs no CREATEDB: it restores into a throwaway cluster and no database appears on the production server', async () => {
    await sb.psql('ALTER ROLE kadi NOCREATEDB;');
    const set = await backup();
    const before = await databases();
    const seen = new Set<string>();
    let watching = true;
    const watch = (async () => {
      while (watching) {
        seen.add(await databases());
        await sleep(50);
      }
    })();
    let v: Ran;
    try {
      v = await run(() => startVerify(host, d, set, 'deep'));
    } finally {
      watching = false;
      await watch;
    }
    assert.equal(v.outcome.result, 'succeeded', v.log);
    assert.match(v.log, /^deep: mode=throwaway-cluster$/m);
    assert.doesNotMatch(v.log, /scratch database/);
    const rec = verifyRecord(set);
    assert.equal(rec.ok, true);
    assert.equal(rec.deep?.mode, 'throwaway-cluster');
    assert.deepEqual([...seen], [before], 'the databases on the production server changed during the deep verify');
    assert.equal(await databases(), before);
    // The cluster is gone with the job.
    const dir = jobDir(sb, v.id);
    assert.equal(fs.existsSync(path.join(dir, 'cluster')), false);
    assert.deepEqual(processesIn(dir), []);
  });

  it("a set whose row security policy applies to a role, and with a table in a tablespace of the DBA's, deep-verifies in the throwaway cluster (which has neither): not called damaged", async () => {
    const dataDir = (await sb.psql('SHOW data_directory')).trim();
    const owner = fs.statSync(dataDir);
    const spc = path.join(sb.root, 'tablespace ü');
    fs.mkdirSync(spc);
    fs.chownSync(spc, owner.uid, owner.gid);
    await sb.psql(
      `CREATE ROLE "auditor; ü" NOLOGIN; CREATE TABLESPACE "fast disk" LOCATION '${spc}'; GRANT CREATE ON TABLESPACE "fast disk" TO kadi;` +
        ` SET ROLE kadi; CREATE TABLE audited (v integer) TABLESPACE "fast disk"; INSERT INTO audited VALUES (1); ALTER TABLE audited ENABLE ROW LEVEL SECURITY;` +
        ` CREATE POLICY "audit; TO x" ON audited FOR SELECT TO "auditor; ü" USING (v > 0); RESET ROLE;`,
    );
    try {
      const set = await backup();
      const v = await run(() => startVerify(host, d, set, 'deep'));
      assert.equal(v.outcome.result, 'succeeded', v.log);
      assert.match(v.log, /^deep: mode=throwaway-cluster$/m);
      const rec = verifyRecord(set);
      assert.equal(rec.ok, true, JSON.stringify(rec));
      assert.equal(rec.deep?.notRun, undefined, JSON.stringify(rec));
    } finally {
      await sb.psql('DROP TABLE IF EXISTS audited; DROP TABLESPACE IF EXISTS "fast disk"; DROP ROLE IF EXISTS "auditor; ü";');
      fs.rmSync(spc, { recursive: true, force: true });
    }
  });

  it('a deep verify cancelled while it restores into the throwaway cluster leaves no postgres process and no cluster behind', async () => {
    await sb.psql("CREATE TABLE deep_bulk AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS payload FROM generate_series(1, 1500000) g; ALTER TABLE deep_bulk OWNER TO kadi;");
    let set: string;
    try {
      set = await backup();
    } finally {
      await sb.psql('DROP TABLE IF EXISTS deep_bulk;');
    }
    const tmpBefore = tmpVerifyDirs();
    const id = await startVerify(host, d, set, 'deep');
    const dir = jobDir(sb, id);
    let cancelled: Promise<CancelResult> | undefined;
    let during: string[] = [];
    const r = await runJob(host, pool, async () => id, (l) => {
      if (!cancelled && l.startsWith('[step] deep: restoring the dump into the throwaway cluster')) {
        cancelled = (async () => {
          // Once pg_restore is loading the table into the cluster.
          const until = Date.now() + 30_000;
          for (;;) {
            during = processesIn(dir);
            if (during.length >= 2 || Date.now() > until) break;
            await sleep(20);
          }
          await sleep(500);
          return cancelJob(host, id);
        })();
      }
    });
    assert.ok(cancelled, `the restore into the throwaway cluster was reached:\n${r.log}`);
    assert.equal((await cancelled)?.text, 'cancelled', 'the cancel waited for the cleanup');
    assert.equal(r.outcome.result, 'cancelled', r.log);
    assert.ok(during.length >= 2, `the cluster's postmaster and a backend ran: ${during.join(', ')}`);
    assert.deepEqual(processesIn(dir), [], 'a postgres process of the throwaway cluster is left');
    assert.equal(fs.existsSync(path.join(dir, 'cluster')), false, 'the cluster directory is left');
    assert.deepEqual(tmpVerifyDirs(), tmpBefore, 'a socket directory is left in /tmp');
    assert.doesNotMatch(r.log, /no password supplied/);
    // The set itself is untouched and not called damaged.
    assert.notEqual((await listSets(host)).sets.find((s) => s.name === set)?.status, 'damaged');
  });

  it('server binaries without an extension the dump needs: deep verification could not run, and says why; the set is not called damaged', async () => {
    const had = (await sb.psql("select count(*) from pg_extension where extname = 'pg_trgm'")).trim() === '1';
    if (!had) await sb.psql('CREATE EXTENSION pg_trgm;');
    // A relocated copy of the server (PostgreSQL finds its share directory relative to its
    // binaries) whose share directory lacks pg_trgm.
    const inst = fs.mkdtempSync('/tmp/kadi-pg-no-trgm-');
    try {
      fs.chmodSync(inst, 0o755);
      const bin = path.join(inst, 'lib', 'postgresql', String(d.facts.pg.serverMajor), 'bin');
      fs.mkdirSync(path.dirname(bin), { recursive: true });
      fs.cpSync(`/usr/lib/postgresql/${d.facts.pg.serverMajor}/bin`, bin, { recursive: true });
      fs.symlinkSync(`/usr/lib/postgresql/${d.facts.pg.serverMajor}/lib`, path.join(path.dirname(bin), 'lib'));
      const share = path.join(inst, 'share', 'postgresql', String(d.facts.pg.serverMajor));
      fs.cpSync(`/usr/share/postgresql/${d.facts.pg.serverMajor}`, share, { recursive: true });
      for (const f of fs.readdirSync(path.join(share, 'extension'))) if (f.startsWith('pg_trgm')) fs.rmSync(path.join(share, 'extension', f));
      execFileSync('chmod', ['-R', 'a+rX', inst]);
      const set = await backup();
      const v = await run(() => startVerify(host, d, set, 'deep', { serverBinDir: bin }));
      assert.equal(v.outcome.result, 'could-not-run', v.log);
      assert.equal(v.outcome.exitCode, 3, v.log);
      assert.match(v.outcome.reason ?? '', /^deep verification: the dump needs something this host's PostgreSQL \d+ server binaries lack: .*pg_trgm/);
      assert.match(v.outcome.fix ?? '', /^install the package that provides it for PostgreSQL \d+ on this host/);
      assert.match(v.log, /^deep verification could not run: the dump needs something this host's PostgreSQL \d+ server binaries lack: .*pg_trgm/m);
      assert.doesNotMatch(v.log, /^PROBLEM:/m);
      const rec = verifyRecord(set);
      assert.equal(rec.level, 'quick');
      assert.equal(rec.ok, true);
      assert.equal((await listSets(host)).sets.find((s) => s.name === set)?.status, 'verified');
      assert.deepEqual(processesIn(jobDir(sb, v.id)), []);
      assert.equal(fs.existsSync(path.join(jobDir(sb, v.id), 'cluster')), false);
    } finally {
      fs.rmSync(inst, { recursive: true, force: true });
      if (!had) await sb.psql('DROP EXTENSION IF EXISTS pg_trgm;');
    }
  });

  it('in a scratch database, what only a superuser may create (a DBA\'s event trigger) makes deep verification not run, saying why: the set is not called damaged', async () => {
    await sb.psql("CREATE FUNCTION public.kadi_test_ddl_log() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN NULL; END $$; CREATE EVENT TRIGGER kadi_test_ddl_log ON ddl_command_end EXECUTE FUNCTION public.kadi_test_ddl_log();", 'kadi');
    await sb.psql('ALTER ROLE kadi CREATEDB;');
    try {
      const set = await backup();
      const v = await run(() => startVerify(host, d, set, 'deep', { serverBinDir: path.join(sb.root, 'no-such-bin') }));
      assert.equal(v.outcome.result, 'could-not-run', v.log);
      assert.match(v.log, /^deep verification could not run: role kadi may not create everything the dump holds in a scratch database: .*permission denied to create event trigger/m);
      assert.match(v.outcome.fix ?? '', /install the PostgreSQL server binaries on this host/);
      assert.doesNotMatch(v.log, /^PROBLEM:/m);
      const rec = verifyRecord(set);
      assert.deepEqual([rec.level, rec.ok], ['quick', true]);
      assert.equal((await sb.psql("select count(*) from pg_database where datname like 'kadi_ops_verify_%'")).trim(), '0', 'the scratch database was dropped');
    } finally {
      await sb.psql('ALTER ROLE kadi NOCREATEDB;');
      await sb.psql('DROP EVENT TRIGGER kadi_test_ddl_log; DROP FUNCTION public.kadi_test_ddl_log();', 'kadi');
    }
  });

  it('Kadi\'s tables in a schema of their own (found through the role\'s search_path, which no dump holds): deep verification reads the file table there', async () => {
    await sb.psql('CREATE SCHEMA app AUTHORIZATION kadi; ALTER TABLE public.file SET SCHEMA app; ALTER ROLE kadi SET search_path = app, public;', 'kadi');
    try {
      const set = await backup();
      const v = await run(() => startVerify(host, d, set, 'deep'));
      assert.equal(v.outcome.result, 'succeeded', v.log);
      const rec = verifyRecord(set);
      assert.deepEqual([rec.level, rec.ok], ['deep', true], v.log);
      assert.doesNotMatch(v.log, /relation "file" does not exist/);
    } finally {
      await sb.psql('ALTER TABLE app.file SET SCHEMA public; DROP SCHEMA app; ALTER ROLE kadi RESET search_path;', 'kadi');
    }
  });

  it('without the server binaries it falls back to a scratch database (CREATEDB) and says so; without either it says deep verification could not run', async () => {
    const set = await backup();
    const noBinaries = { serverBinDir: path.join(sb.root, 'no-such-bin') };
    await sb.psql('ALTER ROLE kadi CREATEDB;');
    try {
      const v = await run(() => startVerify(host, d, set, 'deep', noBinaries));
      assert.equal(v.outcome.result, 'succeeded', v.log);
      assert.match(v.log, /^deep: no throwaway cluster \(no initdb in .*no-such-bin.*\); falling back to a scratch database on the production server$/m);
      assert.match(v.log, /^deep: mode=scratch-database$/m);
      assert.match(v.log, /^\[step\] deep: restoring the dump into scratch database kadi_ops_verify_/m);
      const rec = verifyRecord(set);
      assert.equal(rec.ok, true);
      assert.equal(rec.level, 'deep');
      assert.equal(rec.deep?.mode, 'scratch-database');
      assert.equal((await sb.psql("select count(*) from pg_database where datname like 'kadi_ops_verify_%'")).trim(), '0', 'the scratch database was dropped');
    } finally {
      await sb.psql('ALTER ROLE kadi NOCREATEDB;');
    }
    // Neither: the result says why, and the set is not called damaged.
    const v = await run(() => startVerify(host, d, set, 'deep', noBinaries));
    assert.equal(v.outcome.result, 'could-not-run', v.log);
    assert.equal(v.outcome.exitCode, 3, v.log);
    assert.match(describeOutcome(v.outcome), /^could not run: deep verification: no throwaway PostgreSQL cluster .*\(CREATEDB\)\. Fix: install postgresql-\d+ on this host .*ALTER ROLE "kadi" CREATEDB$/);
    assert.match(v.log, /^deep verification could not run: no throwaway PostgreSQL cluster \(no initdb in .*\), and role kadi may not create a scratch database on the production server \(CREATEDB\)$/m);
    assert.doesNotMatch(v.log, /^PROBLEM:/m);
    const rec = verifyRecord(set);
    assert.equal(rec.level, 'quick');
    assert.equal(rec.ok, true);
    assert.match(rec.deep?.notRun ?? '', /CREATEDB/);
    const listed = (await listSets(host)).sets.find((s) => s.name === set);
    assert.equal(listed?.status, 'verified', 'retention counts it as good');
    assert.equal(setState(listed?.verify ?? null).kind, 'not-run', 'shown as a deep verification that could not run, not as damaged');
  });
});
