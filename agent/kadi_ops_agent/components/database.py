"""The PostgreSQL database: pg_dump -Fc in a snapshot shared with the row counts; its table of
contents; quick and deep verification; a restore in one transaction; the preflight's probe."""
import json
import os
import re
import secrets
import select
import subprocess
import threading
import time

from .. import pg
from ..common import detail, ended, fail, full_disk, one_line, out, relay, step, warn
from ..progress import ReadWatcher, pg_restore_progress

NAME = 'database'
restore_step = 'database'

USER_TABLES_SQL = """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r','p','v','m','S') AND n.nspname NOT IN ('pg_catalog','information_schema')
   AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'"""

# The tables' own size (heap and TOAST, no indexes) is about what pg_dump reads: the estimate for its
# progress. From pg_class statistics, because pg_table_size() would wait behind any lock on a table
# before the dump even starts.
SIZES_SQL = """select pg_database_size(current_database()),
    (select coalesce(sum(c.relpages + coalesce(t.relpages, 0)), 0) * current_setting('block_size')::bigint
       from pg_class c join pg_namespace n on n.oid = c.relnamespace left join pg_class t on t.oid = c.reltoastrelid
      where c.relkind in ('r', 'm') and n.nspname not in ('pg_catalog', 'information_schema'))"""

# One statement per table, each printing one JSON array [schema, table, rows]: JSON escapes newlines,
# tabs and quotes, so no identifier can split or forge a line. In the backup's snapshot session each
# line is prefixed with a tag (psql variable cnt_tag) that no error message begins with.
_COUNT_FROM = """  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
 ORDER BY n.nspname, c.relname \\gexec
"""
COUNT_TAGGED_SQL = ("SELECT format('SELECT %L || json_build_array(%L::text, %L::text, count(*))::text FROM %I.%I;', "
                    ":'cnt_tag' || ' ', n.nspname, c.relname, n.nspname, c.relname)\n" + _COUNT_FROM)
COUNT_SQL = ("SELECT format('SELECT json_build_array(%L::text, %L::text, count(*))::text FROM %I.%I;', "
             "n.nspname, c.relname, n.nspname, c.relname)\n" + _COUNT_FROM)

# The live database's objects as one line of JSON (JSON escapes newlines and quotes in names, so no
# identifier is ever split across lines): who we are, which roles' objects we may drop, and every
# object a TOC entry can name, keyed as pg_dump names it (desc, schema, tag; function tags with their
# argument types as format_type prints them under search_path ''). restore/dbPlan.ts decides from
# this which entries to keep as they are, which to create, and what to refuse.
# Objects a DBA adds beside Kadi's (a collation or text search configuration its columns and indexes
# use): kind, catalog, and its name, owner and schema columns. Another role's cannot be dropped by Kadi's.
_IN_SCHEMA = (('COLLATION', 'pg_collation', 'collname', 'collowner', 'collnamespace'),
              ('CONVERSION', 'pg_conversion', 'conname', 'conowner', 'connamespace'),
              ('TEXT SEARCH CONFIGURATION', 'pg_ts_config', 'cfgname', 'cfgowner', 'cfgnamespace'),
              ('TEXT SEARCH DICTIONARY', 'pg_ts_dict', 'dictname', 'dictowner', 'dictnamespace'))
_IN_SCHEMA_SQL = ''.join(
    "  UNION ALL\n"
    "  SELECT '%s', n.nspname, x.%s, n.oid, pg_catalog.pg_get_userbyid(x.%s), x.%s,\n"
    "         EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_catalog.%s'::pg_catalog.regclass AND objid = x.oid), true\n"
    "    FROM pg_catalog.%s x JOIN nsp n ON n.oid = x.%s\n" % (kind, name, owner, owner, catalog, catalog, schema)
    for kind, catalog, name, owner, schema in _IN_SCHEMA)
# The schemas a dump of the database holds: all but the system's.
_NSP_CTE = r"""nsp AS (
  SELECT oid, nspname FROM pg_catalog.pg_namespace
   WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\_toast%' AND nspname NOT LIKE 'pg\_temp%'
)"""
# What a pg_dump of the whole database as this role cannot read (a backup's, or a restore's safety
# backup after the services stopped, would fail on it): a schema without USAGE, a table (pg_dump
# locks and reads it; a partitioned one it locks) or sequence without SELECT, a table whose row
# security applies to the role (forced, or another role's table; pg_dump refuses to dump part of
# it), another role's large object without SELECT. Not a view or materialized view: their rows are
# not dumped. A JSON array of [kind, schema, name, how]; needs the nsp CTE.
_UNREADABLE_SQL = r"""(SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_array(k, s, t, h)), '[]') FROM (
    SELECT 'SCHEMA' AS k, '-' AS s, n.nspname AS t, '' AS h FROM nsp n WHERE NOT pg_catalog.has_schema_privilege(n.oid, 'USAGE')
    UNION ALL
    SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, n.nspname, c.relname, ''
      FROM pg_catalog.pg_class c JOIN nsp n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'S') AND pg_catalog.has_schema_privilege(n.oid, 'USAGE')
       AND NOT pg_catalog.has_table_privilege(c.oid, 'SELECT')
    UNION ALL
    -- h: 'forced' where the role owns the table (NO FORCE is its remedy), 'other' where another role
    -- does (only its owner disabling row security, or a superuser's BYPASSRLS for the role, helps).
    SELECT 'ROW SECURITY', n.nspname, c.relname, CASE WHEN pg_catalog.pg_has_role(c.relowner, 'USAGE') THEN 'forced' ELSE 'other' END
      FROM pg_catalog.pg_class c JOIN nsp n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND c.relrowsecurity
       AND (c.relforcerowsecurity OR NOT pg_catalog.pg_has_role(c.relowner, 'USAGE'))
       AND NOT (SELECT rolbypassrls OR rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
    UNION ALL
    SELECT 'LARGE OBJECT', '-', l.oid::pg_catalog.text, ''
      FROM pg_catalog.pg_largeobject_metadata l
     WHERE NOT pg_catalog.pg_has_role(l.lomowner, 'USAGE')
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.aclexplode(coalesce(l.lomacl, pg_catalog.acldefault('L', l.lomowner))) a
                        WHERE a.privilege_type = 'SELECT' AND (a.grantee = 0 OR pg_catalog.pg_has_role(a.grantee, 'USAGE')))
       AND NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)) u)"""
# The same alone, for `check` (prerequisites): one line of JSON.
UNREADABLE_SQL = "SET search_path = '';\nWITH " + _NSP_CTE + "\nSELECT " + _UNREADABLE_SQL + ";\n"
OBJECTS_SQL = r"""SET search_path = '';
WITH """ + _NSP_CTE + r""", ext AS (
  SELECT classid, objid FROM pg_catalog.pg_depend WHERE deptype = 'e'
), fn AS (
  -- Functions as pg_dump's TOC names them: argument types by format_type, a zero-argument aggregate
  -- as agg(*). Not those PostgreSQL makes itself (a range type's constructors: an internal
  -- dependency), which pg_dump never dumps.
  SELECT p.oid, p.proname || '(' || CASE WHEN p.prokind = 'a' AND p.pronargs = 0 THEN '*'
         ELSE coalesce((SELECT pg_catalog.string_agg(pg_catalog.format_type(a.t, NULL), ', ' ORDER BY a.i)
                          FROM pg_catalog.unnest(p.proargtypes) WITH ORDINALITY AS a(t, i)), '') END || ')' AS tag
    FROM pg_catalog.pg_proc p JOIN nsp n ON n.oid = p.pronamespace
   WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend i WHERE i.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND i.objid = p.oid AND i.deptype = 'i')
), objs AS (
  SELECT 'SCHEMA' AS kind, '-' AS sch, n.nspname AS tag, n.oid AS nsp_oid, pg_catalog.pg_get_userbyid(s.nspowner) AS owner, s.nspowner AS owner_oid,
         EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND objid = n.oid) AS ext, true AS top
    FROM nsp n JOIN pg_catalog.pg_namespace s ON s.oid = n.oid
  UNION ALL
  SELECT 'EXTENSION', '-', e.extname, NULL, pg_catalog.pg_get_userbyid(e.extowner), e.extowner, false, true FROM pg_catalog.pg_extension e
  UNION ALL
  SELECT CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'TABLE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                        WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'c' THEN 'TYPE' ELSE 'INDEX' END,
         n.nspname, c.relname, n.oid, pg_catalog.pg_get_userbyid(c.relowner), c.relowner,
         EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND objid = c.oid), c.relkind NOT IN ('i', 'I')
    FROM pg_catalog.pg_class c JOIN nsp n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c', 'i', 'I')
  UNION ALL
  SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END, n.nspname, f.tag,
         n.oid, pg_catalog.pg_get_userbyid(p.proowner), p.proowner,
         EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND objid = p.oid), true
    FROM pg_catalog.pg_proc p JOIN nsp n ON n.oid = p.pronamespace JOIN fn f ON f.oid = p.oid
  UNION ALL
  SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname, t.typname, n.oid, pg_catalog.pg_get_userbyid(t.typowner), t.typowner,
         EXISTS (SELECT 1 FROM ext WHERE classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND objid = t.oid), true
    FROM pg_catalog.pg_type t JOIN nsp n ON n.oid = t.typnamespace
   WHERE t.typtype IN ('b', 'd', 'e', 'r') AND t.typcategory <> 'A' AND t.typrelid = 0
  UNION ALL
  SELECT CASE o.contype WHEN 'f' THEN 'FK CONSTRAINT' WHEN 'c' THEN 'CHECK CONSTRAINT' ELSE 'CONSTRAINT' END, n.nspname,
         c.relname || ' ' || o.conname, n.oid, pg_catalog.pg_get_userbyid(c.relowner), c.relowner, false, false
    FROM pg_catalog.pg_constraint o JOIN pg_catalog.pg_class c ON c.oid = o.conrelid JOIN nsp n ON n.oid = c.relnamespace
""" + _IN_SCHEMA_SQL + r"""  UNION ALL
  -- Extended statistics (CREATE STATISTICS) on a table: another role's cannot be kept when the table is made again.
  SELECT 'STATISTICS', n.nspname, s.stxname, n.oid, pg_catalog.pg_get_userbyid(s.stxowner), s.stxowner, false, false
    FROM pg_catalog.pg_statistic_ext s JOIN nsp n ON n.oid = s.stxnamespace
  UNION ALL
  SELECT 'BLOB', '-', l.oid::pg_catalog.text, NULL, pg_catalog.pg_get_userbyid(l.lomowner), l.lomowner, false, false
    FROM pg_catalog.pg_largeobject_metadata l WHERE NOT pg_catalog.pg_has_role(current_user, l.lomowner, 'USAGE')
  UNION ALL
  SELECT 'PUBLICATION', '-', p.pubname, NULL, pg_catalog.pg_get_userbyid(p.pubowner), p.pubowner, false, true FROM pg_catalog.pg_publication p
  UNION ALL
  SELECT 'EVENT TRIGGER', '-', e.evtname, NULL, pg_catalog.pg_get_userbyid(e.evtowner), e.evtowner, false, false FROM pg_catalog.pg_event_trigger e
  UNION ALL
  SELECT 'TRIGGER', n.nspname, c.relname || ' ' || g.tgname, n.oid, pg_catalog.pg_get_userbyid(c.relowner), c.relowner, false, false
    FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid JOIN nsp n ON n.oid = c.relnamespace WHERE NOT g.tgisinternal
)
SELECT pg_catalog.json_build_object(
  'user', current_user,
  'superuser', (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user),
  'createSchemas', pg_catalog.has_database_privilege(current_user, pg_catalog.current_database(), 'CREATE'),
  -- What a pg_dump of the whole database as this role cannot read (_UNREADABLE_SQL says what).
  'unreadable', """ + _UNREADABLE_SQL + r""",
  -- Relations in a tablespace of their own, and whether the role may create there (a restore makes
  -- them again in it: without CREATE on it the restore fails part way).
  'tablespaces', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_array(
                     CASE c.relkind WHEN 'i' THEN 'INDEX' WHEN 'I' THEN 'INDEX' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
                     n.nspname, c.relname, t.spcname, pg_catalog.has_tablespace_privilege(t.oid, 'CREATE'))), '[]')
                    FROM pg_catalog.pg_class c JOIN nsp n ON n.oid = c.relnamespace
                    JOIN pg_catalog.pg_tablespace t ON t.oid = c.reltablespace
                   WHERE c.relkind IN ('r', 'p', 'm', 'i', 'I')),
  -- The tables each publication lists by name: dropping a table takes it out of them.
  'publicationTables', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_array(p.pubname, pg_catalog.pg_get_userbyid(p.pubowner), n.nspname, c.relname)), '[]')
                          FROM pg_catalog.pg_publication p JOIN pg_catalog.pg_publication_rel r ON r.prpubid = p.oid
                          JOIN pg_catalog.pg_class c ON c.oid = r.prrelid JOIN nsp n ON n.oid = c.relnamespace),
  -- Indexes (not those of a constraint, nor a partition's copy of its parent's) and extended
  -- statistics on tables, with their definitions: dropping a table takes them along, whoever made them.
  'attached', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_array(k, s, t, rs, rt, def)), '[]') FROM (
    SELECT 'INDEX' AS k, n.nspname AS s, i.relname AS t, n.nspname AS rs, c.relname AS rt, pg_catalog.pg_get_indexdef(x.indexrelid) AS def
      FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
      JOIN pg_catalog.pg_class c ON c.oid = x.indrelid JOIN nsp n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'm')
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint o WHERE o.conindid = x.indexrelid AND o.contype IN ('p', 'u', 'x'))
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits h WHERE h.inhrelid = x.indexrelid)
    UNION ALL
    SELECT 'STATISTICS', sn.nspname, s.stxname, n.nspname, c.relname, pg_catalog.pg_get_statisticsobjdef(s.oid)
      FROM pg_catalog.pg_statistic_ext s JOIN nsp sn ON sn.oid = s.stxnamespace
      JOIN pg_catalog.pg_class c ON c.oid = s.stxrelid JOIN nsp n ON n.oid = c.relnamespace) a),
  'lockSlots', pg_catalog.current_setting('max_locks_per_transaction')::int
               * (pg_catalog.current_setting('max_connections')::int + pg_catalog.current_setting('max_prepared_transactions')::int),
  'roles', (SELECT pg_catalog.json_agg(rolname ORDER BY rolname) FROM pg_catalog.pg_roles),
  'myRoles', (SELECT pg_catalog.json_agg(rolname ORDER BY rolname) FROM pg_catalog.pg_roles WHERE pg_catalog.pg_has_role(current_user, oid, 'USAGE')),
  'objects', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_array(kind, sch, tag, owner,
                 pg_catalog.pg_has_role(current_user, owner_oid, 'USAGE'), ext, top)), '[]') FROM objs),
  'available', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_array(a.name, v.trusted, v.superuser)), '[]')
                  FROM pg_catalog.pg_available_extensions a
                  JOIN pg_catalog.pg_available_extension_versions v ON v.name = a.name AND v.version = a.default_version),
  -- The role's own default privileges for new tables and sequences (ALTER DEFAULT PRIVILEGES), with
  -- whom they grant to: a table the restore makes again gets them, also where the set had none.
  'defaultAcls', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_array(coalesce(n.nspname, ''), d.defaclobjtype,
                    (SELECT coalesce(pg_catalog.json_agg(DISTINCT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee) END), '[]')
                       FROM pg_catalog.aclexplode(d.defaclacl) a WHERE a.grantee <> d.defaclrole))), '[]')
                    FROM pg_catalog.pg_default_acl d LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace
                   WHERE d.defaclrole = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) AND d.defaclobjtype IN ('r', 'S')),
  -- What depends on a table or view of another relation (a view by its rules, a foreign key by the
  -- table it references), on a type or on a sequence: pg_restore --clean cannot drop the one while the other stays. Not the
  -- copies of a foreign key PostgreSQL makes for partitions (conparentid): pg_dump never dumps
  -- them, and they go with the key they copy.
  'dependents', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_array(dk, ds, dt, rk, rs, rt, via)), '[]') FROM (
    SELECT CASE v.relkind WHEN 'v' THEN 'VIEW' ELSE 'MATERIALIZED VIEW' END AS dk, vn.nspname AS ds, v.relname AS dt,
           CASE t.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END AS rk, tn.nspname AS rs, t.relname AS rt, '' AS via
      FROM pg_catalog.pg_depend d
      JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND r.oid = d.objid
      JOIN pg_catalog.pg_class v ON v.oid = r.ev_class JOIN nsp vn ON vn.oid = v.relnamespace
      JOIN pg_catalog.pg_class t ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND t.oid = d.refobjid
      JOIN nsp tn ON tn.oid = t.relnamespace
     WHERE d.deptype = 'n' AND t.oid <> v.oid AND v.relkind IN ('v', 'm') AND t.relkind IN ('r', 'p', 'v', 'm')
    UNION
    SELECT 'FK CONSTRAINT', cn.nspname, c.relname || ' ' || o.conname, 'TABLE', tn.nspname, t.relname, ''
      FROM pg_catalog.pg_constraint o
      JOIN pg_catalog.pg_class c ON c.oid = o.conrelid JOIN nsp cn ON cn.oid = c.relnamespace
      JOIN pg_catalog.pg_class t ON t.oid = o.confrelid JOIN nsp tn ON tn.oid = t.relnamespace
     WHERE o.contype = 'f' AND o.conrelid <> o.confrelid AND o.conparentid = 0
    UNION
    -- A column of a type (an enum, a domain, a composite or range type, or an array of one), a domain
    -- or range over it, and a function taking or returning it: the type cannot be dropped while they
    -- stay; and so does one of a table's row type while the table is dropped.
    SELECT CASE WHEN c.oid IS NOT NULL THEN CASE c.relkind WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'c' THEN 'TYPE' ELSE 'TABLE' END
                WHEN t2.oid IS NOT NULL THEN CASE t2.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END
                WHEN p.prokind = 'p' THEN 'PROCEDURE' WHEN p.prokind = 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
           coalesce(cn.nspname, t2n.nspname, pn.nspname),
           coalesce(c.relname, t2.typname, f.tag),
           CASE WHEN rel.relkind IN ('r', 'p') THEN 'TABLE' WHEN rel.relkind = 'v' THEN 'VIEW' WHEN rel.relkind = 'm' THEN 'MATERIALIZED VIEW'
                WHEN ty.typtype = 'd' THEN 'DOMAIN' ELSE 'TYPE' END, tn.nspname, coalesce(rel.relname, ty.typname), ''
      FROM pg_catalog.pg_depend d
      JOIN pg_catalog.pg_type ty0 ON d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass AND ty0.oid = d.refobjid
      JOIN pg_catalog.pg_type ty ON ty.oid = CASE WHEN ty0.typcategory = 'A' AND ty0.typelem <> 0 THEN ty0.typelem ELSE ty0.oid END
      JOIN nsp tn ON tn.oid = ty.typnamespace
      -- A relation's row type: dropping the relation drops it (the dependent is named against the relation).
      LEFT JOIN pg_catalog.pg_class rel ON rel.oid = ty.typrelid AND ty.typrelid <> 0
      LEFT JOIN pg_catalog.pg_class c ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND c.oid = d.objid AND c.relkind IN ('r', 'p', 'm', 'f', 'c')
      LEFT JOIN nsp cn ON cn.oid = c.relnamespace
      LEFT JOIN pg_catalog.pg_type t2 ON d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND t2.oid = d.objid AND t2.typtype IN ('d', 'r') AND t2.oid <> ty.oid
      LEFT JOIN nsp t2n ON t2n.oid = t2.typnamespace
      LEFT JOIN pg_catalog.pg_proc p ON d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND p.oid = d.objid
      LEFT JOIN fn f ON f.oid = p.oid
      LEFT JOIN nsp pn ON pn.oid = p.pronamespace
     WHERE d.deptype = 'n' AND ty.typtype IN ('e', 'd', 'c', 'r') AND (c.oid IS NULL OR c.oid <> ty.typrelid)
       AND (cn.oid IS NOT NULL OR t2n.oid IS NOT NULL OR (pn.oid IS NOT NULL AND f.oid IS NOT NULL))
    UNION
    -- A column default that takes numbers from a sequence (DEFAULT nextval): the sequence cannot be dropped while it stays.
    SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, cn.nspname, c.relname, 'SEQUENCE', sn.nspname, sq.relname, ''
      FROM pg_catalog.pg_depend d
      JOIN pg_catalog.pg_attrdef ad ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND ad.oid = d.objid
      JOIN pg_catalog.pg_class c ON c.oid = ad.adrelid JOIN nsp cn ON cn.oid = c.relnamespace
      JOIN pg_catalog.pg_class sq ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND sq.oid = d.refobjid AND sq.relkind = 'S'
      JOIN nsp sn ON sn.oid = sq.relnamespace
     WHERE d.deptype = 'n'
    UNION
    -- A partition (DROP TABLE of the partitioned table takes it along, rows and all, whoever owns it)
    -- or a table that inherits (the drop is refused while it stays): via says which.
    SELECT CASE c.relkind WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, cn.nspname, c.relname, 'TABLE', pn.nspname, p.relname,
           CASE WHEN c.relispartition THEN 'partition' ELSE 'inherits' END
      FROM pg_catalog.pg_inherits i
      JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid JOIN nsp cn ON cn.oid = c.relnamespace
      JOIN pg_catalog.pg_class p ON p.oid = i.inhparent JOIN nsp pn ON pn.oid = p.relnamespace
     WHERE c.relkind IN ('r', 'p', 'f') AND p.relkind IN ('r', 'p')) x))"""


def toc_entries(text):
    return sum(1 for l in text.splitlines() if l[:1].isdigit())


def count_file_entries(path):
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return sum(1 for l in f if l[:1].isdigit())
    except OSError:
        return 0


class Session:
    """A psql session fed on stdin, its output read line by line with a timeout."""

    def __init__(self, argv, env):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        self.buf = b''

    def send(self, text):
        try:
            self.p.stdin.write(text.encode('utf-8'))
            self.p.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def readline(self, timeout):
        """The next line without its newline, or None at the end of the output or after TIMEOUT."""
        end = time.monotonic() + timeout
        while b'\n' not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.p.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.p.stdout.fileno(), 65536)
            if not chunk:
                if self.buf:
                    line, self.buf = self.buf, b''
                    return line.decode('utf-8', 'replace')
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return line.decode('utf-8', 'replace')

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        self.p.wait()


# --- backup -----------------------------------------------------------------------------------------

def _sizes(ctx):
    if 'sizes' not in ctx.__dict__:
        text = ctx.conn.query(SIZES_SQL, extra=['-F', ' '])
        db_bytes, table_bytes = (int(x) for x in text.split())
        ctx.sizes = (db_bytes, table_bytes)
    return ctx.sizes


def space_needed_kb(ctx, first):
    return _sizes(ctx)[0] // 1024 // 4


def backup_begin(ctx):
    """One session holds a REPEATABLE READ snapshot; pg_dump uses it and the row counts are taken in
    it, so the dump, the counts and the start of the file copies are one consistent moment."""
    o, conn, job = ctx.opts, ctx.conn, ctx.job
    step('database: exporting a snapshot')
    env = dict(os.environ, PGAPPNAME='kadi-ops-' + job.id)
    s = Session([conn.psql, '-X', '-At', '-q', *conn.args(), '-d', conn.db], env)
    s.send('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_export_snapshot();\n')
    snapshot = s.readline(60) or ''
    if not re.fullmatch(r'[0-9A-F-]+', snapshot):
        s.close()
        fail('could not export a database snapshot: %s' % snapshot)
    ctx.info_line('snapshot=' + snapshot)
    z = o['dump_compression']
    if not re.fullmatch(r'[0-9]', z):
        s.close()
        fail("dump_compression must be a gzip level 0-9, got '%s'" % z)
    step('database: pg_dump -Fc -Z %s (%s)' % (z, o['pg_dump']))
    dump = subprocess.Popen([o['pg_dump'], '-Fc', '-Z', z, *conn.args(), '--snapshot=' + snapshot,
                             '-f', os.path.join(ctx.partial, 'db.dump'), conn.db], env=pg.without_client_encoding(env),
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors='replace')
    # pg_dump's messages quote names (a table it may not read): relayed, so that a name holding a
    # newline never adds a line of the job's own to the log.
    messages = threading.Thread(target=lambda: [relay(l.rstrip('\n'), 'pg_dump: ') for l in dump.stderr], daemon=True)
    messages.start()
    watcher = ReadWatcher('database', dump.pid, _sizes(ctx)[1])
    return {'session': s, 'dump': dump, 'watcher': watcher, 'locks': LockWatch(conn, 'kadi-ops-' + job.id, 'dump', job_kind='restore' if ctx.opts.yes('pre_restore') else 'backup'),
            'messages': messages}


def backup_wait(ctx, h):
    """Row counts in the snapshot, read while the dump and the copies run; then the dump's end.
    ON_ERROR_ROLLBACK (a savepoint per statement, set only after the export, which a savepoint would
    refuse): a failing count must not end the transaction, or the snapshot would vanish under a
    pg_dump that has not imported it yet. Each count is one line: a tag no error message begins
    with, then the JSON array."""
    s = h['session']
    tag = 'kadi-ops-count-' + secrets.token_hex(8)
    s.send('\\set cnt_tag %s\n\\set ON_ERROR_ROLLBACK on\n%s\\echo :cnt_tag done\n' % (tag, COUNT_TAGGED_SQL))
    error = ''
    # A full disk while the counts are written is said as such (the counts are still read to their
    # end, the dump waited for and the session closed, as for any other failure).
    written = None  # the OSError that stopped the writing
    try:
        f = open(os.path.join(ctx.partial, '.counts.jsonl'), 'w', encoding='utf-8')
    except OSError as e:
        f, written = None, e
    while True:
        line = s.readline(3600)
        if line is None:
            error = error or 'counting rows: the database session ended early'
            break
        if line == tag + ' done':
            break
        if line.startswith(tag + ' '):
            if f is not None:
                try:
                    f.write(line[len(tag) + 1:] + '\n')
                except OSError as e:
                    written = e
                    try: f.close()
                    except OSError: pass
                    f = None
        else:
            error = error or 'counting rows: ' + line
    if f is not None:
        try:
            f.close()
        except OSError as e:
            written = e
    if written is not None:
        error = 'writing the row counts into the set failed: %s' % (full_disk(written, os.path.dirname(ctx.partial)) or one_line(written))
    rc = h['dump'].wait()
    h['messages'].join(10)
    h['watcher'].stop()
    h['locks'].stop()
    # The session may have ended already (the database went away): no error for that.
    s.send('COMMIT;\n')
    s.close()
    if error:
        return error
    if rc != 0:
        return 'pg_dump ' + ended(rc)
    return ''


def backup_finish(ctx):
    path = os.path.join(ctx.partial, 'db.dump')
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        fail('pg_dump produced an empty file')
    step("database: reading the dump's table of contents")
    with open(os.path.join(ctx.partial, 'db.toc'), 'wb') as f:
        if subprocess.run([ctx.opts['pg_restore'], '-l', path], stdout=f).returncode != 0:
            fail('pg_restore -l cannot read the new dump')


# --- verify -----------------------------------------------------------------------------------------

def verify_quick(ctx):
    """The dump's table of contents must be readable: its entry count, compared with the manifest's."""
    r = subprocess.run([ctx.opts['pg_restore'], '-l', os.path.join(ctx.set_dir, 'db.dump')],
                       capture_output=True, text=True, errors='replace')
    return {'toc_ok': r.returncode == 0, 'toc_n': toc_entries(r.stdout) if r.returncode == 0 else 0}


# --- restore ----------------------------------------------------------------------------------------

def restore(ctx):
    o, conn, job, d = ctx.opts, ctx.conn, ctx.job, ctx.set_dir
    n = int(conn.query(USER_TABLES_SQL))
    # One transaction: whatever fails (an entry, a privilege, a killed pg_restore, a cut database
    # connection, a full disk, a cancel), PostgreSQL rolls all of it back and the database is as it
    # was; only a COMMIT makes it the set's content (docs/guarantees.md says why not --jobs).
    args = ['--single-transaction', '--exit-on-error', *conn.args(), '-d', conn.db]
    # As a role that is not a superuser, objects whose owner in the set is another role are created
    # owned by this role instead of failing on ALTER ... OWNER (no_owner, decided in restore/dbPlan.ts).
    if o.yes('no_owner'):
        args.append('--no-owner')
    if n > 0 or o.yes('clean'):
        out('database is not empty (%d relations, or objects of the set exist already): pg_restore --clean --if-exists in one transaction' % n)
        args += ['--clean', '--if-exists']
    else:
        out('database is empty: plain pg_restore in one transaction')
    if o['jobs']:
        out('not using --jobs %s: parallel workers cannot share the one transaction that makes the restore atomic' % o['jobs'])
    listing = job.path('listing')
    toc = os.path.join(d, 'db.toc')
    if os.path.isfile(listing) and os.path.getsize(listing) > 0:
        entries = count_file_entries(listing)
        out("restoring the %d enabled entries of the plan's listing (kept objects and left-out entries are commented out)" % entries)
        args += ['-L', listing]
    elif os.path.isfile(toc):
        entries = count_file_entries(toc)
    else:
        r = subprocess.run([o['pg_restore'], '-l', os.path.join(d, 'db.dump')], capture_output=True, text=True, errors='replace')
        entries = toc_entries(r.stdout)
    dump = os.path.join(d, 'db.dump')
    out('pg_restore -v %s %s' % (' '.join(args), dump))
    # -v names every entry as it is restored: the log shows where a long restore is, and the count
    # of those lines against the enabled entries is the progress.
    err = job.path('pg_restore.err')
    app = 'kadi-ops-' + job.id
    # What the database became is marked the moment it is known (restore.half_done): before the
    # run 'db-restoring'; then 'db-committed' or 'db-rolled-back'. A job ended in between (a cancel
    # just as pg_restore committed) leaves only the first: the database may be either.
    job.write('db-restoring', '')
    p = subprocess.Popen([o['pg_restore'], '-v', *args, dump], env=dict(os.environ, PGAPPNAME=app),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, errors='replace')
    watch = LockWatch(conn, app)
    xid = XidWatch(conn, app, job, p)
    try:
        pg_restore_progress(p.stderr, entries, err)
        rc = p.wait()
        # --single-transaction --exit-on-error: 0 is a COMMIT, anything else no COMMIT.
        job.write('db-committed' if rc == 0 else 'db-rolled-back', '')
    finally:
        xid.stop()
        watch.stop()
    with open(err, encoding='utf-8', errors='replace') as f:
        err_text = f.read()
    if rc != 0 or 'errors ignored on restore' in err_text:
        name_failed_entries(err_text, toc)
        fail('pg_restore failed (exit status %d); the database is unchanged: the restore ran in one transaction, which PostgreSQL rolled back' % rc)
    step('database: ANALYZE')
    why = analyze(conn)
    if why:
        # After the COMMIT: the database is the set's. A failed ANALYZE (a statement_timeout of the
        # role's, a lock) costs only the planner's statistics; it must not read as a failed restore.
        ctx.attention('the database was restored, but ANALYZE afterwards failed (%s): the planner works from old '
                      'statistics until it runs; run it as the Kadi role: psql -d %s -c ANALYZE' % (why, conn.db))


# Who holds what the session named APP waits for (pg_blocking_pids), as one JSON array. The name is
# a psql variable (:'app'), quoted by psql, never part of the statement's text.
BLOCKERS_SQL = r"""SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_array(b.pid, b.usename, b.application_name, b.state,
         pg_catalog.round(extract(epoch FROM pg_catalog.now() - b.xact_start))) ORDER BY b.pid), '[]')
  FROM pg_catalog.pg_stat_activity w
 CROSS JOIN LATERAL pg_catalog.unnest(pg_catalog.pg_blocking_pids(w.pid)) AS x(pid)
  JOIN pg_catalog.pg_stat_activity b ON b.pid = x.pid
 WHERE w.application_name = :'app' AND w.wait_event_type = 'Lock';
"""


# The transaction id pg_restore's session (named APP) was given, as the 64-bit id txid_status takes:
# pg_stat_activity has the 32-bit xid; of the 64-bit ids it can stand for, the one nearest to the
# snapshot's xmax (the xid may have been given after the snapshot was taken, so lie beyond it; ids
# in use are never 2^31 apart). Nothing until the session has written (its first DROP or CREATE).
XID_SQL = r"""SELECT CASE WHEN q.c > q.s + 2147483648 THEN q.c - 4294967296 WHEN q.c < q.s - 2147483648 THEN q.c + 4294967296 ELSE q.c END
  FROM (SELECT t.s, (t.s >> 32) << 32 | t.x AS c
          FROM (SELECT pg_catalog.txid_snapshot_xmax(pg_catalog.txid_current_snapshot()) AS s, a.backend_xid::text::bigint AS x
                  FROM pg_catalog.pg_stat_activity a
                 WHERE a.application_name = :'app' AND a.backend_xid IS NOT NULL LIMIT 1) t) q;
"""
XID_STATUS_SQL = "SELECT pg_catalog.txid_status(:'xid'::bigint);\n"


class XidWatch:
    """Writes the transaction id of pg_restore's one transaction (its session named APP) to the job's
    db-xid as soon as it has one, so that a restore ended while pg_restore ran can ask PostgreSQL
    whether that transaction committed (settle_restored_db) instead of saying it may have."""

    def __init__(self, conn, app, job, proc, every=0.1, most=2.0):
        self.conn, self.app, self.job, self.proc, self.every, self.most = conn, app, job, proc, every, most
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        # Asked often at first (the id comes with pg_restore's first statement), then less: a
        # pg_restore waiting for a lock has none yet, perhaps for long, and each ask is a connection.
        every = self.every
        while not self.stopped.is_set() and self.proc.poll() is None:
            ok, text = self.conn.query_with(XID_SQL, {'app': self.app})
            if not ok:
                return  # not readable here: the end stays "may have committed"
            if text.strip().isdigit():
                self.job.write('db-xid', text.strip())
                return
            self.stopped.wait(every)
            every = min(self.most, every * 2)

    def stop(self):
        self.stopped.set()
        self.thread.join(10)


def settle_restored_db(job, conn, wait_s=10.0):
    """For a restore that ended while pg_restore ran (db-restoring, and neither db-committed nor
    db-rolled-back): PostgreSQL's word on pg_restore's transaction (db-xid), marked as the restore
    would have marked it. Returns 'committed', 'rolled back' or None (not known: no id taken, the
    server not reachable, the transaction still open after WAIT_S seconds)."""
    if not os.path.exists(job.path('db-restoring')) or os.path.exists(job.path('db-committed')) or os.path.exists(job.path('db-rolled-back')):
        return None
    xid = job.read('db-xid').strip()
    if not xid.isdigit():
        return None
    deadline = time.monotonic() + wait_s
    while True:
        ok, status = conn.query_with(XID_STATUS_SQL, {'xid': xid})
        if not ok:
            return None
        if status == 'committed':
            job.write('db-committed', '')
            return 'committed'
        if status == 'aborted':
            job.write('db-rolled-back', '')
            return 'rolled back'
        # 'in progress': the server has not yet seen its client go (it then rolls back).
        if status != 'in progress' or time.monotonic() > deadline:
            return None
        time.sleep(0.2)


class LockWatch:
    """While a restore's pg_restore or a backup's pg_dump (WHAT; its sessions named APP) runs, says which
    sessions hold a lock it waits for, every EVERY seconds as long as that changes: a job stuck behind a client's open
    transaction (a Kadi service not stopped, a psql left open) is otherwise silent for as long as
    that transaction lasts. What another role's session runs is shown as far as the Kadi role may
    see it (pg_stat_activity hides it from roles without pg_read_all_stats)."""

    def __init__(self, conn, app, what='restore', every=5.0, job_kind=None):
        self.conn, self.app, self.what, self.every = conn, app, what, every
        # The job the operator would cancel: a restore also while its safety backup dumps.
        self.job_kind = job_kind or ('restore' if what == 'restore' else 'backup')
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _blockers(self):
        ok, text = self.conn.query_with(BLOCKERS_SQL, {'app': self.app})
        if not ok:
            return None
        try:
            return json.loads(text.strip() or '[]')
        except ValueError:
            return None

    def _run(self):
        shown = set()
        while not self.stopped.wait(self.every):
            found = self._blockers()
            if found is None:
                return  # not readable here: nothing to say, nothing to guess
            # One line per holder, however many of the job's sessions it blocks.
            found = list({b[0]: b for b in found}.values())
            pids = {b[0] for b in found}
            if pids - shown:
                for pid, user, application, state, open_s in found:
                    out('database: waiting for a lock held by pid %s (%s%s%s%s); the %s goes on when that '
                        'transaction ends: end that client\'s transaction or stop it, or cancel the %s (nothing changes)'
                        % (pid, 'user %s' % (user or '?'), ", application '%s'" % application if application else '',
                           ', ' + state if state else '', ', transaction open %d s' % open_s if isinstance(open_s, (int, float)) else '',
                           self.what, self.job_kind))
            elif shown and not pids:
                out('database: the lock was released; the %s goes on' % self.what)
            shown = pids

    def stop(self):
        self.stopped.set()
        self.thread.join(10)


# PostgreSQL 15: `skipping "t" --- only superuser or database owner can analyze it`;
# 16 and later: `permission denied to analyze "t", skipping it`.
_ANALYZE_SKIPPED = re.compile(r'^WARNING:\s+(skipping ".*" --- only .* can analyze it|permission denied to analyze ".*", skipping it)$')


def analyze(conn):
    """ANALYZE as the Kadi role: '' or why it failed. It warns once per system table the role may
    not analyze: those go to the log as detail, counted in one line; any other message is shown as
    it is."""
    r = subprocess.run([conn.psql, '-X', '-q', *conn.args(), '-d', conn.db, '-c', 'ANALYZE'],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                       text=True, errors='replace')
    skipped = 0
    for line in r.stderr.splitlines():
        if _ANALYZE_SKIPPED.match(line):
            skipped += 1
            detail(line)
        elif line.strip():
            relay(line, 'WARNING:  ', 'ERROR:  ', 'NOTICE:  ', 'INFO:  ', 'DETAIL:  ', 'HINT:  ', 'psql:')
    if skipped:
        out('ANALYZE skipped %d system table%s only their owner or a superuser may analyze'
            % (skipped, '' if skipped == 1 else 's'))
    if r.returncode != 0:
        errors = [l for l in r.stderr.splitlines() if l.startswith(('ERROR:', 'psql:'))]
        return one_line(errors[-1]) if errors else 'psql ' + ended(r.returncode)
    return ''


def _toc_lines(toc):
    try:
        with open(toc, encoding='utf-8', errors='replace') as f:
            return f.read().splitlines()
    except OSError:
        return None


def name_failed_entries(err_text, toc):
    """pg_restore names the entry it failed on ("from TOC entry 215; 1259 16390 TABLE ..."), without
    its schema; the dump's TOC line has it. Errors in the --clean phase name only the command: its
    entry is found in the TOC by the command's object."""
    lines = _toc_lines(toc)
    found = [m.group(1) for m in (re.match(r'^.*from TOC entry ([0-9]+;.*)$', l) for l in err_text.splitlines()) if m]
    if found:
        for entry in found:
            entry_id = entry.split(';', 1)[0]
            match = next((l for l in lines or [] if l.startswith(entry_id + '; ')), None)
            out('FAILED TOC ENTRY: ' + (match or entry))
        return
    cmd = next((l[len('Command was: '):] for l in err_text.splitlines() if l.startswith('Command was: ')), '')
    m = re.match(r'^(DROP|CREATE|ALTER) ([A-Z]+) (IF EXISTS )?(ONLY )?([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)', cmd)
    if m and lines is not None:
        pat = re.compile(r'^[0-9]+; [0-9]+ [0-9]+ %s %s %s ' % (m.group(2), m.group(5), m.group(6)))
        for l in lines:
            if pat.match(l):
                out('FAILED TOC ENTRY: ' + l)


# --- preflight --------------------------------------------------------------------------------------

def probe(ctx):
    conn = ctx.conn
    ok, n = conn.query(USER_TABLES_SQL, check=False)
    if not ok:
        return ['db_error=' + n.replace('\n', ' ')]
    lines = ['db_relations=' + n, 'db_bytes=' + conn.query('select pg_database_size(current_database())', check=False)[1]]
    ok, objects = conn.query(OBJECTS_SQL, extra=['-q'], check=False)
    lines.append('db_objects=' + objects if ok else 'db_objects_error=' + objects.replace('\n', ' '))
    return lines


# --- deep verification ------------------------------------------------------------------------------

def verify_deep(ctx):
    """Restores the dump into a throwaway cluster (cluster.py) or, without the server binaries, into a
    scratch database on the production server (needs CREATEDB); counts the rows and reads the file
    records there; then deep-check compares them with the set (verify_deep.py). Which mode ran goes
    to the output and to the result's deep.mode; when neither can run, the result says why
    (deep.notRun) instead of calling the set damaged."""
    from .. import cluster, verify_deep_note, verify_deep as deep_check
    from ..pg import tool_major
    o, job, d = ctx.opts, ctx.job, ctx.set_dir
    job.remove('deep.json', 'restored.counts.jsonl', 'restored.files.jsonl')
    major = o['pg_major'] or tool_major(o['pg_restore'])
    bindir = o['pg_bindir'] or ('/usr/lib/postgresql/%s/bin' % major if major else '')
    dump = os.path.join(d, 'db.dump')
    why = cluster.unusable(bindir, major)
    conn = None
    if not why:
        conn = cluster.start(job, o['psql'], o['pg_restore'], dump, bindir, major)
    if conn is not None:
        mode, where = 'throwaway-cluster', 'the throwaway cluster'
    else:
        why = why or job.read('cluster_failed').strip() or 'the throwaway cluster did not start'
        cluster.stop(job)
        out('deep: no throwaway cluster (%s); falling back to a scratch database on the production server' % why)
        conn = scratch_create(ctx)
        if conn is None:
            return not_run(ctx, 'no throwaway PostgreSQL cluster (%s), and role %s may not create a scratch database '
                                'on the production server (CREATEDB)' % (why, o['pg_user']),
                           cluster_fix(why, major, o['pg_user']))
        mode, where = 'scratch-database', 'the scratch database'
    out('deep: mode=' + mode)
    if mode == 'throwaway-cluster':
        step('deep: restoring the dump into the throwaway cluster')
        _make_policy_roles(o, conn, dump)
    err = job.path('deep_restore.err')
    # Owners, privileges and tablespaces are the production server's (roles and tablespaces this
    # cluster does not have): what is checked is the dump's schema and rows.
    p = subprocess.Popen([o['pg_restore'], '-v', '--no-owner', '--no-privileges', '--no-tablespaces', '--exit-on-error', *conn.args(),
                          '-d', conn.db, dump], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True, errors='replace')
    pg_restore_progress(p.stderr, count_file_entries(os.path.join(d, 'db.toc')), err)
    rc = p.wait()
    if rc != 0:
        with open(err, encoding='utf-8', errors='replace') as f:
            err_text = f.read()
        first = next((l.replace('\r', '')[:400] for l in err_text.splitlines() if re.search(r'error:|ERROR:', l)), '')
        deep_finish(ctx)
        # A missing extension or library of this host's server binaries is not a fault of the set.
        if mode == 'throwaway-cluster' and re.search(r'extension "[^"]*" is not available|extension control file|could not access file|could not load library', err_text):
            return not_run(ctx, "the dump needs something this host's PostgreSQL %s server binaries lack: %s" % (major, first),
                           'install the package that provides it for PostgreSQL %s on this host (for an extension: '
                           'postgresql-%s-<extension> on Debian), then verify again' % (major, major))
        # Nor a role the dump names that this server lacks (one a policy applies to, dropped since).
        missing_role = re.search(r'role "((?:[^"]|"")*)" does not exist', first)
        if missing_role:
            return not_run(ctx, '%s has no role %s, which the dump names: %s' % (where, missing_role.group(1), first),
                           'create the role on the database server (CREATE ROLE ... NOLOGIN), or verify on a host whose '
                           'PostgreSQL server binaries let deep verification use its own throwaway cluster')
        # Nor is what the Kadi role may not create in a scratch database (an event trigger, an
        # untrusted extension): the superuser's objects of a dump restore as a superuser only.
        if mode == 'scratch-database' and re.search(r'permission denied|must be superuser|must be owner|only superuser', first):
            return not_run(ctx, 'role %s may not create everything the dump holds in a scratch database: %s' % (o['pg_user'], first),
                           'install the PostgreSQL server binaries on this host (postgresql-%s on Debian): deep verification then '
                           'restores into its own throwaway cluster, as a superuser there' % (major or '<major>'))
        verify_deep_note.main([job.path('deep.json'), 'failed', 'pg_restore into %s failed%s' % (where, ': ' + first if first else ''), mode])
        return False
    step('deep: counting rows and reading file records')
    with open(job.path('restored.counts.jsonl'), 'w') as outf, open(job.path('restored.err'), 'w') as errf:
        count_ok = subprocess.run([o['psql'], '-X', '-At', '-v', 'ON_ERROR_STOP=1', *conn.args(), '-d', conn.db],
                                  input=COUNT_SQL, text=True, stdout=outf, stderr=errf).returncode == 0
    with open(job.path('restored.files.jsonl'), 'w') as outf, open(job.path('restored.err'), 'a') as errf:
        files_ok = subprocess.run([o['psql'], '-X', '-At', '-v', 'ON_ERROR_STOP=1', *conn.args(), '-d', conn.db, '-c',
                                   "SELECT json_build_array(id::text, size, coalesce(checksum, ''), state::text)::text "
                                   "FROM %s WHERE storage_type = 'local'" % file_table(conn)],
                                  stdout=outf, stderr=errf, stdin=subprocess.DEVNULL).returncode == 0
    deep_finish(ctx)
    step("deep: checking the set's files against the set's database")
    return deep_check.main([d, job.dir, o['chunk_size'], mode, 'yes' if count_ok else 'no', 'yes' if files_ok else 'no'])


def _make_policy_roles(o, conn, dump):
    """The roles the dump's row security policies apply to, made in the throwaway cluster (the job is
    its superuser): CREATE POLICY names them, and without them the restore there would fail, which
    is no fault of the set. Each name reaches psql as a variable, quoted by psql (:"r")."""
    from ..restore import entry_roles
    roles = sorted({r for rs in (entry_roles(o['pg_restore'], dump, ('POLICY',)) or {}).values() for r in rs})
    script = ("SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :'r') AS missing \\gset\n"
              "\\if :missing\nCREATE ROLE :\"r\" NOLOGIN;\n\\endif\n")
    for r in roles:
        conn.query_with(script, {'r': r})


# Kadi's file table where the restored database has it: in public, or in the schema Kadi's role
# finds it through its search_path (ALTER ROLE ... SET search_path, which a dump does not hold).
FILE_TABLE_SQL = r"""SELECT pg_catalog.quote_ident(n.nspname) || '.file'
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname = 'file' AND c.relkind IN ('r', 'p')
   AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'storage_type' AND NOT a.attisdropped)
 ORDER BY n.nspname <> 'public', n.nspname LIMIT 1"""


# The bytes of Kadi's active, local file rows changed since :'since' (an ISO time in UTC; psql quotes
# it, format's %L quotes it again in the statement \gexec runs; compared in UTC, whether the column
# has a time zone or holds UTC without one, as Kadi's UTCDateTime does): what a repeat set copies of
# STORAGE_PATH, as the database knows it. A deleted file's row changes too, but its data is gone.
# No output where there is no file table with these columns.
NEW_FILE_BYTES_SQL = r"""SET TimeZone TO 'UTC';
SELECT pg_catalog.format('SELECT coalesce(sum(size), 0) FROM %I.file WHERE state = ''active'' AND storage_type = ''local'' AND last_modified >= %L', n.nspname, :'since')
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname = 'file' AND c.relkind IN ('r', 'p')
   AND (SELECT count(*) FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = c.oid AND a.attname IN ('state', 'storage_type', 'size', 'last_modified') AND NOT a.attisdropped) = 4
 ORDER BY n.nspname <> 'public', n.nspname LIMIT 1
\gexec
"""


def new_file_bytes(conn, since_ns):
    """The bytes of the file rows Kadi changed since SINCE_NS (ns since the epoch): an estimate of what
    a repeat set copies of STORAGE_PATH (the rest is linked). 0 where the database cannot say (no
    file table, the query refused): the estimate is then the directories alone, as before."""
    import time as _time
    since = _time.strftime('%Y-%m-%dT%H:%M:%SZ', _time.gmtime(since_ns // 1000000000))
    ok, text = conn.query_with(NEW_FILE_BYTES_SQL, {'since': since})
    return int(text) if ok and text.strip().isdigit() else 0


def file_table(conn):
    """The qualified name of Kadi's file table in CONN's database ('file' when none is found: the
    query then fails naming it)."""
    ok, name = conn.query(FILE_TABLE_SQL, check=False)
    return name if ok and name else 'file'


def not_run(ctx, why, fix=''):
    """Records that deep verification could not run, why, and what would let it run: not a problem
    of the set."""
    from .. import verify_deep_note
    warn('deep verification could not run: ' + why)
    verify_deep_note.main([ctx.job.path('deep.json'), 'not-run', why, fix])
    return False


def cluster_fix(why, major, role):
    """What lets a deep verification run on a host that has neither a throwaway cluster (WHY not)
    nor CREATEDB: the cluster is preferred (nothing is created on the production server)."""
    from .. import cluster
    return '%s, or let the role create a scratch database: ALTER ROLE "%s" CREATEDB' % (cluster.fix(why, major), str(role).replace('"', '""'))


def scratch_name(job_id):
    return 'kadi_ops_verify_' + re.sub(r'[^A-Za-z0-9]', '_', job_id).lower()


def scratch_create(ctx):
    """The fallback: a scratch database on the production server (needs CREATEDB). Its connection, or
    None when it cannot be created."""
    from .. import plan
    o, job = ctx.opts, ctx.job
    secrets = plan.job_input(job)
    pg.make_passfile(job.dir, o['pg_host'], o['pg_port'], '*', o['pg_user'], secrets['password'], secrets['pg_params'])
    scratch = scratch_name(job.id)
    step('deep: restoring the dump into scratch database %s on the production server' % scratch)
    job.write('scratch_db', scratch + '\n')
    conn = pg.Conn(o['psql'], o['pg_host'], o['pg_port'], o['pg_user'], scratch)
    # The name is made of [a-z0-9_] only (scratch_name), so it needs no quoting beyond the quotes.
    r = subprocess.run([o['psql'], '-X', '-At', '-v', 'ON_ERROR_STOP=1', *conn.args(), '-d', o['pg_db'], '-c',
                        'CREATE DATABASE "%s"' % scratch], stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        job.remove('scratch_db')
        return None
    return conn


def drop_scratch(ctx):
    o, job = ctx.opts, ctx.job
    scratch = job.read('scratch_db').strip()
    if not scratch:
        return True
    # After a cancel the killed pg_restore's session may linger a moment and block the DROP.
    conn = pg.Conn(o['psql'], o['pg_host'], o['pg_port'], o['pg_user'], o['pg_db'])
    for _ in range(5):
        if subprocess.run([o['psql'], '-X', '-q', *conn.args(), '-d', o['pg_db'], '-c', 'DROP DATABASE IF EXISTS "%s"' % scratch],
                          stdin=subprocess.DEVNULL).returncode == 0:
            job.remove('scratch_db')
            return True
        time.sleep(1)
    warn('could not drop the scratch database %s; drop it by hand' % scratch)
    return False


def deep_finish(ctx):
    """After the restore was read (or failed): the cluster stopped, or the scratch database dropped."""
    from .. import cluster
    cluster.stop(ctx.job)
    drop_scratch(ctx)
