/** Shared by the backup, restore and maintenance integration tests: tree and table snapshots, job runs. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MemorySink } from '../../src/core/sink';
import type { ConnectionPool } from '../../src/remote/connectionPool';
import { followJob, type JobOutcome } from '../../src/remote/jobs';
import type { RemoteHost } from '../../src/remote/remoteHost';
import { parseJobReport, type JobReport } from '../../src/restore/report';
import type { SandboxHost } from '../sandbox/sandbox';

export interface Ran {
  id: string;
  outcome: JobOutcome;
  log: string;
  report: JobReport;
}

export async function runJob(host: RemoteHost, pool: ConnectionPool, start: () => Promise<string>, onLine?: (line: string) => void): Promise<Ran> {
  const id = await start();
  const sink = new MemorySink();
  const outcome = await followJob(host, id, { sink, reconnect: () => pool.get(host.profile), onLine });
  const log = sink.text('stdout');
  return { id, outcome, log, report: parseJobReport(log) };
}

export function setNameFrom(log: string): string {
  const m = /^set=(\S+)$/m.exec(log);
  assert.ok(m, `backup printed no set name:\n${log}`);
  return m[1];
}

/** mode, owner and content of every entry of a tree. */
export function treeState(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      const st = fs.lstatSync(p);
      const rel = path.relative(root, p);
      if (e.isDirectory()) {
        out.set(rel + '/', `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`);
        walk(p);
      } else out.set(rel, `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${st.size} ${fs.readFileSync(p).toString('base64')}`);
    }
  };
  walk(root);
  return out;
}

/**
 * A digest of the database's content computed by a plain query (not by Kadi Ops): every table's rows
 * (order-independent), every sequence's position and every large object, one line each. One query,
 * so identifiers with newlines, quotes or semicolons never pass through a line-based protocol.
 */
export const DB_DIGEST_SQL = `
SELECT string_agg(line, E'\\n' ORDER BY line) FROM (
  SELECT 'table ' || replace(format('%I.%I', n.nspname, c.relname), E'\\n', '\\n') || ' ' ||
         (xpath('//d/text()', query_to_xml(format('SELECT count(*) || '' '' || coalesce(md5(string_agg(x::text, ''|'' ORDER BY x::text)), '''') AS d FROM %I.%I x', n.nspname, c.relname), false, true, '')))[1]::text AS line
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
  UNION ALL
  SELECT 'sequence ' || replace(format('%I.%I', n.nspname, c.relname), E'\\n', '\\n') || ' ' ||
         (xpath('//d/text()', query_to_xml(format('SELECT last_value || '' '' || is_called AS d FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  UNION ALL
  SELECT 'large object ' || oid || ' ' || md5(lo_get(oid)) FROM pg_largeobject_metadata
) s`;

/** The content digest (DB_DIGEST_SQL) of a database, as the superuser. */
export async function tableDigests(sb: SandboxHost, db = 'kadi'): Promise<string> {
  return (await sb.psql(DB_DIGEST_SQL, db)).trim();
}

export function jobDir(sb: SandboxHost, id: string): string {
  return path.join(sb.backupDir, '.kadi-ops', 'jobs', id);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
