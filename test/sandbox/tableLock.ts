/**
 * Holds an ACCESS EXCLUSIVE lock on one table of the sandbox database, so a backup's pg_dump waits
 * (a realistic slow backup) until release() ends the session. Used where a test needs a job that
 * is certainly still running.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';

export interface LockTarget {
  port: number;
  binDir: string;
  database: string;
  user: string;
  password: string;
}

export async function holdTableLock(pg: LockTarget, table: string): Promise<{ release(): Promise<void> }> {
  const child = spawn(path.join(pg.binDir, 'psql'), ['-X', '-At', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(pg.port), '-U', pg.user, '-d', pg.database], {
    env: { ...process.env, PGPASSWORD: pg.password, PGAPPNAME: 'kadi-ops-test-lock' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  child.stdin.write(`BEGIN;\nLOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n`);
  for (const started = Date.now(); !out.includes('locked'); ) {
    if (child.exitCode !== null) throw new Error(`psql could not lock ${table}: ${out}`);
    if (Date.now() - started > 15000) throw new Error(`no lock on ${table} within 15 s: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    async release() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin.end('ROLLBACK;\n');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
