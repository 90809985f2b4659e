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

/** A stable digest of every table's content (order-independent). */
export async function tableDigests(sb: SandboxHost, db = 'kadi'): Promise<string> {
  const tables = (await sb.psql("select quote_ident(schemaname)||'.'||quote_ident(tablename) from pg_tables where schemaname not in ('pg_catalog','information_schema') order by 1", db)).trim().split('\n');
  const parts: string[] = [];
  for (const t of tables) parts.push(`${t} ${(await sb.psql(`select count(*) || ' ' || coalesce(md5(string_agg(x::text, '|' order by x::text)), '') from ${t} x`, db)).trim()}`);
  return parts.join('\n');
}

export function jobDir(sb: SandboxHost, id: string): string {
  return path.join(sb.backupDir, '.kadi-ops', 'jobs', id);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
