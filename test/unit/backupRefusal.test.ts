import { strict as assert } from 'node:assert';
import { backupPlan, BackupRefusedError } from '../../src/backup/backupSets';
import { validatePlan } from '../../src/core/plan';
import { resolveProfiles } from '../../src/config/hostProfiles';
import { Secret } from '../../src/core/secret';
import { relativePathProblems, type Discovery, type HostFacts } from '../../src/kadi/discovery';
import type { RemoteHost } from '../../src/remote/remoteHost';

// backupArgs reads only the host's profile; the facts are what discovery reports for a host
// whose PostgreSQL server is 16 while only the client tools of 15 are installed.
const { profiles } = resolveProfiles([{ name: 'prod', ssh: { host: 'kadi.example.org' } }], { sshConfigText: '' });
const host = { profile: profiles[0] } as unknown as RemoteHost;

function facts(over: Partial<HostFacts['pg']> = {}): Discovery {
  const f: HostFacts = {
    profile: 'prod',
    kadiVersion: '1.13.0',
    database: { host: '127.0.0.1', port: 5432, name: 'kadi', user: 'kadi' },
    storagePath: '/opt/kadi/storage',
    uploadsPath: '/opt/kadi/uploads',
    oidcSigningKeys: [],
    pg: { serverVersionNum: 160004, serverMajor: 16, psql: '/usr/lib/postgresql/15/bin/psql', installedPgDumps: ['/usr/lib/postgresql/15/bin/pg_dump'], ...over },
    backupDir: { path: '/mnt/backups/kadi', exists: true },
    tools: {},
    problems: [],
  };
  return { facts: f, dbPassword: new Secret('pw') };
}

describe('a backup refuses to start without a pg_dump for the server major', () => {
  it('names the server major, what is installed and the package to install', () => {
    assert.throws(
      () => backupPlan(host, facts(), {}),
      (e: unknown) => e instanceof BackupRefusedError && /no pg_dump\/pg_restore for PostgreSQL 16 on the host \(found: \/usr\/lib\/postgresql\/15\/bin\/pg_dump\)\. Install postgresql-client-16\./.test((e as Error).message),
    );
  });

  it('refuses as well when only pg_restore is missing, and says why when the server is unreachable', () => {
    assert.throws(() => backupPlan(host, facts({ pgDump: '/usr/lib/postgresql/16/bin/pg_dump' }), {}), BackupRefusedError);
    assert.throws(() => backupPlan(host, facts({ error: 'connection refused' }), {}), /Cannot back up prod: connection refused/);
  });

  it('passes the matching tools to the job when they are there', () => {
    const plan = backupPlan(host, facts({ pgDump: '/usr/lib/postgresql/16/bin/pg_dump', pgRestore: '/usr/lib/postgresql/16/bin/pg_restore' }), {});
    assert.equal(plan.facts?.postgres.pgDump, '/usr/lib/postgresql/16/bin/pg_dump');
    assert.equal(plan.facts?.postgres.pgRestore, '/usr/lib/postgresql/16/bin/pg_restore');
    assert.deepEqual(validatePlan(plan), []);
    assert.equal(JSON.stringify(plan).includes('pw'), false, 'the password is not in the plan');
  });

  it('a relative STORAGE_PATH or MISC_UPLOADS_PATH is refused with what to set (before: "The plan is not valid: …pattern")', () => {
    const tools = { pgDump: '/usr/lib/postgresql/16/bin/pg_dump', pgRestore: '/usr/lib/postgresql/16/bin/pg_restore' };
    const d = facts(tools);
    d.facts.storagePath = 'data/storage';
    assert.throws(
      () => backupPlan(host, d, {}),
      (e: unknown) => e instanceof BackupRefusedError && (e as Error).message === 'Cannot back up prod: STORAGE_PATH is the relative path "data/storage": Kadi resolves it against the directory it runs in, which Kadi Ops cannot know. Set an absolute path in Kadi\'s configuration, or the profile\'s overrides.storagePath.',
    );
    const uploads = relativePathProblems({ storagePath: '/srv/storage', uploadsPath: './uploads' });
    assert.equal(uploads.length, 1);
    assert.match(uploads[0], /^MISC_UPLOADS_PATH is the relative path "\.\/uploads": .* overrides\.uploadsPath\.$/);
  });
});
