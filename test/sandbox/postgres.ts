/**
 * A private PostgreSQL cluster for the sandbox: initdb as the `postgres` account (initdb and
 * postgres refuse root), TCP on 127.0.0.1:<random>, a socket directory inside the sandbox, and
 * password (SCRAM) logins over TCP like a real Kadi host.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type Daemon, freePort, onProcessExit, run, runOk, sleep, startDaemon } from './proc';
import type { Account } from './system';

export interface PgServer {
  daemon: Daemon;
  port: number;
  socketDir: string;
  binDir: string;
  dataDir: string;
}

/** Environment for client tools: nothing inherited that could redirect or authenticate them. */
function clientEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  env.PGCONNECT_TIMEOUT = '10';
  return env;
}

function ownerOptions(owner: Account, cwd: string): { uid: number; gid: number; cwd: string; env: NodeJS.ProcessEnv } {
  return { uid: owner.uid, gid: owner.gid, cwd, env: { ...clientEnv(), HOME: cwd, LC_ALL: 'C.UTF-8' } };
}

const templates = new Map<string, Promise<string>>();

/**
 * A freshly initdb'd cluster, made once per process and copied for each sandbox: initdb takes
 * ~2.5 s here, a copy a fraction of that. Removed when the process exits.
 */
function clusterTemplate(binDir: string, owner: Account): Promise<string> {
  let t = templates.get(binDir);
  if (!t) {
    t = (async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-sandbox-pgtemplate-'));
      onProcessExit(() => fs.rmSync(dir, { recursive: true, force: true }));
      fs.chmodSync(dir, 0o755);
      fs.chownSync(dir, owner.uid, owner.gid);
      const data = path.join(dir, 'data');
      const args = ['-D', data, '-U', 'postgres', '-E', 'UTF8', '--locale=C.UTF-8', '--auth-local=trust', '--auth-host=scram-sha-256', '--no-sync'];
      await runOk(path.join(binDir, 'initdb'), args, ownerOptions(owner, dir));
      return data;
    })();
    templates.set(binDir, t);
    t.catch(() => templates.delete(binDir));
  }
  return t;
}

export async function startPostgres(root: string, binDir: string, owner: Account): Promise<PgServer> {
  const dataDir = path.join(root, 'pgdata');
  const socketDir = path.join(root, 'pgsock');
  fs.mkdirSync(socketDir, { mode: 0o755 });
  fs.chownSync(socketDir, owner.uid, owner.gid);
  const asOwner = ownerOptions(owner, root);
  await runOk('cp', ['-a', await clusterTemplate(binDir, owner), dataDir]);

  const port = await freePort();
  fs.appendFileSync(
    path.join(dataDir, 'postgresql.conf'),
    [
      '',
      '# Kadi Ops sandbox host',
      "listen_addresses = '127.0.0.1'",
      `port = ${port}`,
      `unix_socket_directories = '${socketDir}'`,
      "password_encryption = 'scram-sha-256'",
      'max_connections = 40',
      'shared_buffers = 32MB',
      // Throwaway data: durability only costs time here.
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      '',
    ].join('\n'),
  );
  fs.writeFileSync(path.join(dataDir, 'pg_hba.conf'), ['local all postgres trust', 'host all all 127.0.0.1/32 scram-sha-256', ''].join('\n'));

  const daemon = startDaemon('postgres', path.join(binDir, 'postgres'), ['-D', dataDir], { ...asOwner, cwd: dataDir, logFile: path.join(root, 'postgres.log') });
  const pg: PgServer = { daemon, port, socketDir, binDir, dataDir };
  await waitUntilReady(pg);
  return pg;
}

async function waitUntilReady(pg: PgServer, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (!pg.daemon.running) throw new Error(`postgres exited during startup. Its log:\n${pg.daemon.logTail()}`);
    const r = await run(path.join(pg.binDir, 'psql'), superArgs(pg, 'postgres', ['-c', 'select 1']), { env: clientEnv() });
    if (r.code === 0) return;
    last = r.stderr.trim();
    await sleep(100);
  }
  throw new Error(`postgres did not accept connections within ${timeoutMs} ms (${last}). Its log:\n${pg.daemon.logTail()}`);
}

function superArgs(pg: PgServer, db: string, extra: string[]): string[] {
  return ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', pg.socketDir, '-p', String(pg.port), '-U', 'postgres', '-d', db, ...extra];
}

/** Runs SQL as the superuser over the unix socket; SQL goes through stdin, output is -At. */
export async function superPsql(pg: PgServer, sql: string, db = 'postgres'): Promise<string> {
  const r = await run(path.join(pg.binDir, 'psql'), superArgs(pg, db, ['-f', '-']), { input: sql, env: clientEnv() });
  if (r.code !== 0) throw new Error(`psql (${db}) failed: ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for a password. Setting the verifier instead of
 * the password keeps the clear text out of the server (and out of its log if a statement fails).
 */
export function scramVerifier(password: string, iterations = 4096): string {
  const salt = crypto.randomBytes(16);
  const salted = crypto.pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const hmac = (key: Buffer, text: string): Buffer => crypto.createHmac('sha256', key).update(text).digest();
  const storedKey = crypto.createHash('sha256').update(hmac(salted, 'Client Key')).digest();
  const serverKey = hmac(salted, 'Server Key');
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** Quotes a value as an SQL string literal. */
export function sqlLiteral(v: string): string {
  return `'${v.replace(/'/g, "''")}'`;
}
