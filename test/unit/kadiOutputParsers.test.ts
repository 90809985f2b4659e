import { strict as assert } from 'node:assert';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { REDACTED, Secret } from '../../src/core/secret';
import { databaseTarget, KadiConfigError, redactSecretAssignments } from '../../src/kadi/discovery';
import {
  compareKadiVersions,
  fatalReason,
  orphanedIndices,
  parseDatabaseUri,
  parseDbUpgradeOutput,
  parseFilesCheck,
  parseKadiConfig,
  parseKadiVersion,
  parseRedisAuth,
  redisAuthJson,
  parseReindexOutput,
  parseSearchLs,
  parseSearchLsOutput,
  parseSearchRemove,
  redactConfigText,
  redactUriPasswords,
} from '../../src/kadi/outputParsers';
import { formatReport, parseJobReport } from '../../src/restore/report';

const SEARCH_LS = `Indices for 'record':
* record_20250101120000123456 (pointed to by alias 'record')
* record_20241201090000000001
Indices for 'collection':
* collection_20250101120000123456 (pointed to by alias 'collection')
Indices for 'template':
Indices for 'group':
* group_20250101120000123456 (pointed to by alias 'group')
* group_20250214083000999999
* group
`;

const REINDEX_OK = `Rebuilding index for 'record'.
Populating new index 'record_20250301101500000001' with 1532 record(s)...
Moved alias 'record' from old index 'record_20250101120000123456' to new index 'record_20250301101500000001'.
Rebuilding index for 'collection'.
Populating new index 'collection_20250301101512000002' with 12 collection(s)...
Moved alias 'collection' from old index 'collection_20250101120000123456' to new index 'collection_20250301101512000002'.
Search indices rebuilt successfully.
`;

const CONFIG = `CELERY_BROKER_URL: redis://:br0ker%40pw@localhost:6379/0
ELASTICSEARCH_HOSTS: ['http://localhost:9200', 'https://elastic:es-secret@es2.example.org:9200']
MAIL_PASSWORD: hunter2
MISC_UPLOADS_PATH: /opt/kadi/uploads
OIDC_SIGNING_KEYS: ['/opt/kadi/config/oidc/key1.pem', '/opt/kadi/config/oidc/key2.pem']
RATELIMIT_STORAGE_URI: redis://localhost:6379/0
SECRET_KEY: 8f1c2e7d-super-secret-value
SENTRY_DSN: None
SMTP_TOKEN: -----BEGIN TOKEN-----
abc123tokenbody
-----END TOKEN-----
SQLALCHEMY_DATABASE_URI: postgresql://kadi:p%40ss%3Aw%2Frd@db.internal:5433/kadi_prod
STORAGE_PATH: /opt/kadi/storage
`;

const SECRETS = ['p@ss:w/rd', 'p%40ss%3Aw%2Frd', 'hunter2', '8f1c2e7d-super-secret-value', 'es-secret', 'br0ker', 'abc123tokenbody'];

function assertNoSecrets(s: string): void {
  for (const secret of SECRETS) assert.ok(!s.includes(secret), `leaked ${secret} in ${s}`);
}

describe('kadi CLI output parsers', () => {
  describe('kadi search ls', () => {
    it('reads each model with its indices and which one the alias points to', () => {
      const parsed = parseSearchLs(SEARCH_LS);
      assert.deepEqual(parsed, [
        {
          model: 'record',
          indices: [{ name: 'record_20250101120000123456', alias: 'record' }, { name: 'record_20241201090000000001' }],
        },
        { model: 'collection', indices: [{ name: 'collection_20250101120000123456', alias: 'collection' }] },
        { model: 'template', indices: [] },
        {
          model: 'group',
          indices: [{ name: 'group_20250101120000123456', alias: 'group' }, { name: 'group_20250214083000999999' }, { name: 'group' }],
        },
      ]);
    });

    it('offers only unaliased indices for removal, never a name that is a model or alias', () => {
      assert.deepEqual(orphanedIndices(parseSearchLs(SEARCH_LS)), [
        { model: 'record', name: 'record_20241201090000000001' },
        { model: 'group', name: 'group_20250214083000999999' },
      ]);
    });

    it('never offers a live index, an alias name or a wildcard, whatever ls prints', () => {
      const name = fc.stringMatching(/^[a-z*?]{1,8}(_[0-9]{1,4})?$/);
      fc.assert(
        fc.property(fc.array(fc.record({ model: name, indices: fc.array(fc.record({ name, alias: fc.option(name, { nil: undefined }) }), { maxLength: 5 }) }), { maxLength: 4 }), (models) => {
          const text = models
            .map((m) => [`Indices for '${m.model}':`, ...m.indices.map((i) => `* ${i.name}${i.alias === undefined ? '' : ` (pointed to by alias '${i.alias}')`}`)].join('\n'))
            .join('\n');
          const parsed = parseSearchLs(text);
          const live = new Set(models.flatMap((m) => m.indices.filter((i) => i.alias !== undefined).map((i) => i.name)));
          const aliases = new Set(models.flatMap((m) => [m.model, ...m.indices.flatMap((i) => (i.alias === undefined ? [] : [i.alias]))]));
          for (const o of orphanedIndices(parsed)) {
            assert.ok(!live.has(o.name), `live index ${o.name} offered`);
            assert.ok(!aliases.has(o.name), `alias/model name ${o.name} offered`);
            assert.ok(!/[*?]/.test(o.name));
          }
        }),
        { numRuns: 300 },
      );
    });
  });

  describe('kadi search reindex', () => {
    it('reports each rebuilt index with its predecessor and count', () => {
      const r = parseReindexOutput(REINDEX_OK);
      assert.equal(r.success, true);
      assert.deepEqual(r.rebuilt, [
        { model: 'record', newIndex: 'record_20250301101500000001', oldIndex: 'record_20250101120000123456', count: 1532 },
        { model: 'collection', newIndex: 'collection_20250301101512000002', oldIndex: 'collection_20250101120000123456', count: 12 },
      ]);
      assert.deepEqual(r.errors, []);
      assert.deepEqual(r.fatal, []);
    });

    it('fails on per-object errors although the CLI printed its success trailer and exited 0', () => {
      const text = REINDEX_OK.replace(
        "with 1532 record(s)...\n",
        "with 1532 record(s)...\nError indexing record with ID '17'.\nError indexing record with ID '942'.\n",
      );
      const r = parseReindexOutput(text);
      assert.equal(r.success, false);
      assert.deepEqual(r.errors, [
        { model: 'record', id: '17' },
        { model: 'record', id: '942' },
      ]);
      assert.deepEqual(r.fatal, []);
      assert.equal(r.rebuilt.length, 2);
    });

    it('fails on a fatal error and keeps what was rebuilt before it', () => {
      const r = parseReindexOutput(
        "Rebuilding index for 'record'.\nPopulating new index 'record_20250301101500000001' with 3 record(s)...\nMoved alias 'record' from old index 'record_1' to new index 'record_20250301101500000001'.\nRebuilding index for 'collection'.\nError creating new index for 'collection'.\n",
      );
      assert.equal(r.success, false);
      assert.deepEqual(r.fatal, ["Error creating new index for 'collection'."]);
      assert.deepEqual(r.rebuilt.map((x) => x.model), ['record']);
    });

    it('fails when the trailer is missing (interrupted) or the command refused without --i-am-sure', () => {
      assert.equal(parseReindexOutput(REINDEX_OK.replace('Search indices rebuilt successfully.\n', '')).success, false);
      const refused = parseReindexOutput('This will rebuild all search indices. If you are sure you want to do this, use the flag --i-am-sure.\n');
      assert.equal(refused.success, false);
      assert.equal(refused.fatal.length, 1);
      assert.equal(parseReindexOutput('').success, false);
    });

    it('fails on a Python traceback even with a success trailer', () => {
      const r = parseReindexOutput(
        REINDEX_OK +
          'Traceback (most recent call last):\n  File "/opt/kadi/venv/bin/kadi", line 8, in <module>\nsqlalchemy.exc.OperationalError: connection to postgresql://kadi:topsecret@localhost/kadi failed\n',
      );
      assert.equal(r.success, false);
      assert.equal(r.fatal.length, 2);
      assert.ok(!r.fatal.join('\n').includes('topsecret'));
    });

    it('ignores ANSI colours and CRLF', () => {
      const r = parseReindexOutput(REINDEX_OK.replace(/\n/g, '\r\n').replace('Search indices rebuilt successfully.', '\x1b[32mSearch indices rebuilt successfully.\x1b[0m'));
      assert.equal(r.success, true);
      assert.equal(r.rebuilt[0].count, 1532);
    });
  });

  describe('kadi search ls, with a verdict', () => {
    it('trusts a listing with model headers and nothing fatal, also when it shows no orphans', () => {
      assert.equal(parseSearchLsOutput(SEARCH_LS).success, true);
      assert.equal(parseSearchLsOutput("Indices for 'record':\n* record_20250101120000123456 (pointed to by alias 'record')\n").success, true);
    });

    it('a traceback or an empty listing is no listing (not "no orphans")', () => {
      const tb = parseSearchLsOutput('Traceback (most recent call last):\n  File "x", line 1\nelastic_transport.ConnectionError: Connection refused\n');
      assert.equal(tb.success, false);
      assert.equal(fatalReason(tb.fatal), 'elastic_transport.ConnectionError: Connection refused');
      assert.equal(parseSearchLsOutput('').success, false);
      assert.equal(parseSearchLsOutput(SEARCH_LS + 'Traceback (most recent call last):\n  File "x", line 1\nKeyError: x\n').success, false);
    });
  });

  describe('job report of a failing kadi command', () => {
    const section = (name: string, text: string, rc: number): string => `[kadi-ops] begin ${name}\n${text}\n[kadi-ops] end ${name} rc=${rc}`;

    it('a files check that failed is FAILED with its reason, never "0 inconsistenc(ies)"', () => {
      const log = [
        section('files-check', 'Traceback (most recent call last):\n  File "x", line 1\nsqlalchemy.exc.ProgrammingError: (psycopg2.errors.UndefinedTable) relation "file" does not exist', 1),
        'step_failed=files-check',
        'ATTENTION: kadi files check failed (exit status 1)',
        'timing=files-check 1',
      ].join('\n');
      const r = parseJobReport(log);
      assert.equal(r.filesCheck?.completed, false);
      assert.deepEqual(r.steps, [{ name: 'files-check', seconds: 1, result: 'failed' }]);
      const text = formatReport('kadi files check', r, 'failed').join('\n');
      assert.doesNotMatch(text, /0 inconsistenc/);
      assert.match(text, /files check: FAILED: it did not run to its end \(sqlalchemy\.exc\.ProgrammingError: .*relation "file" does not exist\)/);
      assert.match(text, /files-check\s+1s {2}FAILED/);
    });

    it('a non-zero exit status fails a section whatever it printed', () => {
      const r = parseJobReport(section('files-check', 'Checking 0 files...\nChecking 0 uploads...\nFiles checked successfully.', 1) + '\n' + section('db-upgrade', 'Upgrade completed successfully.', 1));
      assert.equal(r.filesCheck?.clean, false);
      assert.equal(r.filesCheck?.completed, false);
      assert.equal(r.dbUpgrade?.success, false);
    });

    it('a failed search ls leaves the orphans unknown, not none', () => {
      const r = parseJobReport(section('search-ls', 'Traceback (most recent call last):\n  File "x", line 1\nelastic_transport.ConnectionError: refused', 1));
      assert.equal(r.orphans, undefined);
      const text = formatReport('kadi search reindex', r, 'failed').join('\n');
      assert.match(text, /orphaned indices: unknown \(kadi search ls failed: elastic_transport\.ConnectionError: refused\)/);
      assert.doesNotMatch(text, /orphaned indices: none/);
    });
  });

  describe('kadi search remove', () => {
    it('lists removed indices and treats "no indices found" as failure', () => {
      const ok = parseSearchRemove("Removing index 'record_20241201090000000001'...\nSearch indices removed successfully.\n");
      assert.deepEqual(ok, { removed: ['record_20241201090000000001'], noneFound: false, fatal: [], success: true });
      const none = parseSearchRemove("No indices found for 'record_2019*'.\n");
      assert.equal(none.noneFound, true);
      assert.equal(none.success, false);
    });
  });

  describe('kadi files check', () => {
    const FILE_A = '3f9a1c2e-8b7d-4e6f-a5b4-c3d2e1f0a9b8';
    const FILE_B = '0b2f4c1e-7d3a-4e5f-9a8b-1c2d3e4f5a6b';
    const FILE_C = 'c0ffee00-1111-4222-8333-444455556666';
    const UPLOAD = 'deadbeef-0000-4000-8000-000000000001';
    const DIRTY = `Checking 1204 files...
[1] Mismatched size for active file with storage type 'local' and ID '${FILE_A}'.
[2] Found orphaned active file with storage type 'local' and ID '${FILE_B}'.
[3] Found deleted file with associated data with storage type 'local' and ID '${FILE_C}'.
Checking 7 uploads...
[4] Found expired upload with ID '${UPLOAD}'.
Found 4 inconsistencies.
Do you want to resolve all inconsistencies automatically by deleting all inconsistent database objects and associated data? [y/N]: `;

    it('reads a clean check as clean', () => {
      const r = parseFilesCheck('Checking 1204 files...\nChecking 0 uploads...\nFiles checked successfully.\n');
      assert.deepEqual(r, { filesChecked: 1204, uploadsChecked: 0, findings: [], clean: true, completed: true, prompted: false, aborted: false, fatal: [] });
    });

    it('classifies each numbered finding and picks out the ids', () => {
      const r = parseFilesCheck(DIRTY);
      assert.equal(r.filesChecked, 1204);
      assert.equal(r.uploadsChecked, 7);
      assert.equal(r.reportedCount, 4);
      assert.equal(r.prompted, true);
      assert.equal(r.aborted, false);
      assert.equal(r.clean, false);
      assert.deepEqual(
        r.findings.map((f) => [f.n, f.kind, f.fileId, f.uploadId]),
        [
          [1, 'mismatched-size', FILE_A, undefined],
          [2, 'orphaned-active', FILE_B, undefined],
          [3, 'deleted-with-data', FILE_C, undefined],
          [4, 'upload', undefined, UPLOAD],
        ],
      );
      assert.equal(r.findings[0].text, `Mismatched size for active file with storage type 'local' and ID '${FILE_A}'.`);
    });

    it('notices "Aborted!" after the prompt when stdin hit EOF, on its own line or glued to the prompt', () => {
      assert.equal(parseFilesCheck(DIRTY + '\nAborted!\n').aborted, true);
      const glued = parseFilesCheck(DIRTY + 'Aborted!\n');
      assert.equal(glued.aborted, true);
      assert.equal(glued.findings.length, 4);
      assert.deepEqual(glued.fatal, []);
    });

    it('is not clean when the success trailer comes with findings or without the trailer', () => {
      const lying = parseFilesCheck(`Checking 3 files...\n[1] Found orphaned active file with storage type 'local' and ID '${FILE_B}'.\nChecking 0 uploads...\nFiles checked successfully.\n`);
      assert.equal(lying.clean, false);
      assert.equal(parseFilesCheck('Checking 3 files...\n').clean, false);
    });

    // What Kadi prints when its tables are gone (e.g. after a half-done restore), exit status 1.
    const NO_FILE_TABLE = `Traceback (most recent call last):
  File "/opt/kadi/venv/bin/kadi", line 8, in <module>
    sys.exit(kadi())
  File "/opt/kadi/venv/lib/python3.11/site-packages/sqlalchemy/engine/default.py", line 922, in do_execute
    cursor.execute(statement, parameters)
sqlalchemy.exc.ProgrammingError: (psycopg2.errors.UndefinedTable) relation "file" does not exist
LINE 1: SELECT file.id FROM file ORDER BY file.last_modified DESC
                            ^

[SQL: SELECT file.id FROM file ORDER BY file.last_modified DESC]
(Background on this error at: https://sqlalche.me/e/20/f405)
`;

    it('a check that failed did not run to its end: not clean, no count, the exception as the reason', () => {
      const r = parseFilesCheck(NO_FILE_TABLE);
      assert.equal(r.completed, false);
      assert.equal(r.clean, false);
      assert.equal(r.reportedCount, undefined);
      assert.deepEqual(r.findings, []);
      assert.equal(fatalReason(r.fatal), 'sqlalchemy.exc.ProgrammingError: (psycopg2.errors.UndefinedTable) relation "file" does not exist');
    });

    it('ran to its end only with "Files checked successfully." or "Found N inconsistencies." and nothing fatal', () => {
      assert.equal(parseFilesCheck(DIRTY).completed, true);
      assert.equal(parseFilesCheck('Checking 3 files...\nChecking 0 uploads...\nFiles checked successfully.\n').completed, true);
      assert.equal(parseFilesCheck('').completed, false, 'no output');
      assert.equal(parseFilesCheck('Checking 3 files...\nChecking 0 uploads...\n').completed, false, 'cut off before its result');
      assert.equal(parseFilesCheck('Checking 3 files...\n' + NO_FILE_TABLE.replace('"file"', '"upload"')).completed, false, 'failed half-way');
      assert.equal(parseFilesCheck('Checking 3 files...\nFiles checked successfully.\n' + NO_FILE_TABLE).completed, false, 'a traceback after the trailer');
    });

    it('keeps an unknown finding as "other" with its text', () => {
      const r = parseFilesCheck('Checking 2 files...\n[1] Something new about file ID \'x\'.\nChecking 0 uploads...\nFound 1 inconsistency.\n');
      assert.deepEqual(r.findings, [{ n: 1, kind: 'other', text: "Something new about file ID 'x'." }]);
      assert.equal(r.reportedCount, 1);
    });
  });

  describe('kadi utils config', () => {
    it('finds the database, storage, uploads, search, broker and OIDC key settings', () => {
      const c = parseKadiConfig(CONFIG);
      assert.ok(c.database);
      assert.equal(c.database.host, 'db.internal');
      assert.equal(c.database.port, 5433);
      assert.equal(c.database.name, 'kadi_prod');
      assert.equal(c.database.user, 'kadi');
      assert.equal(c.database.password.reveal(), 'p@ss:w/rd');
      assert.equal(c.database.driver, 'postgresql');
      assert.equal(c.storagePath, '/opt/kadi/storage');
      assert.equal(c.uploadsPath, '/opt/kadi/uploads');
      assert.deepEqual(c.elasticsearchHosts, ['http://localhost:9200', `https://elastic:${REDACTED}@es2.example.org:9200`]);
      assert.equal(c.celeryBrokerUrl, `redis://:${REDACTED}@localhost:6379/0`);
      assert.deepEqual(c.oidcSigningKeys, ['/opt/kadi/config/oidc/key1.pem', '/opt/kadi/config/oidc/key2.pem']);
      assert.deepEqual(c.problems, []);
    });

    it('never shows the password through JSON, inspect, console formatting or string interpolation', () => {
      const c = parseKadiConfig(CONFIG);
      for (const shown of [JSON.stringify(c), inspect(c, { depth: 10, showHidden: true }), `${c.database?.password}`, String(c.database?.password), inspect(c.database)]) {
        assertNoSecrets(shown);
      }
      assert.ok(JSON.stringify(c).includes(`"password":"${REDACTED}"`));
      assert.equal(c.redactedValues.SECRET_KEY, REDACTED);
      assert.equal(c.redactedValues.SMTP_TOKEN, REDACTED);
      assert.equal(c.redactedValues.SQLALCHEMY_DATABASE_URI, `postgresql://kadi:${REDACTED}@db.internal:5433/kadi_prod`);
      assert.equal(c.redactedValues.RATELIMIT_STORAGE_URI, 'redis://localhost:6379/0');
    });

    it("takes where Kadi's Redis is and its credentials from the broker URL (percent-decoded), never shown", () => {
      const c = parseKadiConfig(CONFIG);
      assert.deepEqual(c.redisAuth && [c.redisAuth.user, c.redisAuth.password.reveal(), c.redisAuth.port], ['', 'br0ker@pw', 6379]);
      assertNoSecrets(JSON.stringify(c));
      const got = (url: string): [string, number, string, string] | undefined => {
        const a = parseRedisAuth(url);
        return a && [a.host, a.port, a.user, a.password.reveal()];
      };
      assert.deepEqual(got('redis://kadi-ops:p%3Aw@127.0.0.1:6380/0'), ['127.0.0.1', 6380, 'kadi-ops', 'p:w']);
      assert.deepEqual(got('rediss://:a b@c@[::1]/1'), ['::1', 6379, '', 'a b@c']);
      // As kombu reads it: the host part ends at the first '/', '?' or '#'; the first of a failover list.
      assert.deepEqual(got('redis://:pw@localhost:6379/0?x=a@b'), ['localhost', 6379, '', 'pw']);
      assert.deepEqual(got('redis://:pw1@h1:6379/0;redis://:pw2@h2:6379/0'), ['h1', 6379, '', 'pw1']);
      assert.deepEqual(got('redis://:pw%zz%41%e2%82%ac@h'), ['h', 6379, '', 'pw%zzA€'], 'valid sequences decoded, others kept (as unquote)');
      // Without credentials: still where Redis is (a Redis bound to another address of the host, or on another host).
      assert.deepEqual(got('redis://localhost:6379/0'), ['localhost', 6379, '', '']);
      assert.deepEqual(got('redis://user@127.0.0.2:40001/0'), ['127.0.0.2', 40001, '', '']);
      assert.deepEqual(got('redis://:@cache.internal/0'), ['cache.internal', 6379, '', '']);
      assert.deepEqual(got('redis://'), ['localhost', 6379, '', '']);
      for (const none of ['amqp://u:p@localhost//', 'redis://:pw@localhost:99999/0', 'redis://:pw@localhost:0x18EC/0', 'redis://h:0/0']) {
        assert.equal(parseRedisAuth(none), undefined, none);
      }
      // A Unix socket (kombu's redis+socket://, redis-py's unix://), credentials before the path.
      const sock = parseRedisAuth('redis+socket://:p%40ss@/run/redis/redis%20server.sock?virtual_host=0');
      assert.deepEqual(sock && [sock.socket, sock.host, sock.port, sock.user, sock.password.reveal()], ['/run/redis/redis server.sock', '', 0, '', 'p@ss']);
      assert.deepEqual(redisAuthJson(parseRedisAuth('unix:///var/run/redis.sock?db=0')), { socket: '/var/run/redis.sock', host: '', port: 0, user: '', password: '' });
      assert.equal(parseRedisAuth('socket://relative.sock'), undefined, 'a socket path is absolute');
      // The agent reads the same URLs the same way (plan.redis_auth; agent/tests/test_plan.py).
      assert.deepEqual(redisAuthJson(parseRedisAuth('redis://u:p@[::1]:7000/2')), { host: '::1', port: 7000, user: 'u', password: 'p' });
    });

    it('reads driver-qualified URIs, default ports, IPv6 hosts and socket directories', () => {
      const psy = parseDatabaseUri('postgresql+psycopg2://kadi:pw@localhost/kadi');
      assert.deepEqual(psy && { ...psy, password: psy.password.reveal(), params: psy.params.reveal() }, { host: 'localhost', port: 5432, name: 'kadi', user: 'kadi', password: 'pw', driver: 'postgresql+psycopg2', params: '' });
      const v6 = parseDatabaseUri('postgresql://kadi@[::1]:6543/kadi');
      assert.deepEqual(v6 && [v6.host, v6.port, v6.user, v6.password.reveal()], ['::1', 6543, 'kadi', '']);
      const sock = parseDatabaseUri('postgresql://kadi:x@/kadi?host=/var/run/postgresql');
      assert.deepEqual(sock && [sock.host, sock.port, sock.name], ['/var/run/postgresql', 5432, 'kadi']);
      // No host: libpq's default socket (''), which the agent names once connected; never TCP localhost.
      const none = parseDatabaseUri('postgresql:///kadi');
      assert.deepEqual(none && [none.host, none.port, none.name, none.user], ['', 5432, 'kadi', '']);
      const portOnly = parseDatabaseUri('postgresql://kadi@:5433/kadi');
      assert.deepEqual(portOnly && [portOnly.host, portOnly.port], ['', 5433]);
      const at = parseDatabaseUri('postgresql://kadi:a@b@db:5432/kadi');
      assert.deepEqual(at && [at.host, at.password.reveal()], ['db', 'a@b']);
      assert.equal(parseDatabaseUri('mysql://kadi:pw@localhost/kadi'), undefined);
      assert.equal(parseDatabaseUri('postgresql://kadi:pw@localhost:notaport/kadi'), undefined);
      // Decoded as Python's unquote (SQLAlchemy, the agent's plan.database_uri): a '%' without two hex digits stays.
      const pct = parseDatabaseUri('postgresql://kadi:p%40ss%word%e2%82%ac@127.0.0.1:5433/kadi');
      assert.deepEqual(pct && [pct.password.reveal(), pct.port], ['p@ss%word€', 5433]);
    });

    it('keeps the query\'s libpq parameters (TLS, options) as a secret to pass on, without those that say where and as whom', () => {
      const tls = parseDatabaseUri('postgresql://kadi:pw@db.example/kadi?sslmode=verify-full&sslrootcert=%2Fetc%2Fkadi%20ca.crt&sslpassword=k%26y&host=ignored&port=6000&user=u&dbname=x&application_name=&options=-c%20search_path%3Dkadi&sslmode=disable');
      assert.ok(tls);
      assert.equal(String(tls.params), '«redacted»', 'sslpassword is a secret: the parameters print as one');
      assert.deepEqual(JSON.parse(tls.params.reveal()), { sslmode: 'verify-full', sslrootcert: '/etc/kadi ca.crt', sslpassword: 'k&y', options: '-c search_path=kadi' });
      assert.deepEqual([tls.host, tls.port, tls.user, tls.name], ['db.example', 6000, 'kadi', 'kadi'], 'where and as whom stay the URI\'s own fields');
      assert.equal(parseDatabaseUri('postgresql://kadi:pw@db/kadi?host=/run/postgresql')?.params.reveal(), '', 'nothing to pass on: no parameters');
    });

    it('a URI that cannot be read is an error naming it, not a made-up localhost:5432/kadi (unless the profile names the database)', () => {
      for (const uri of ['postgresql://kadi:pw@127.0.0.1:5432x/kadi', 'sqlite:////opt/kadi/kadi.db']) {
        const c = parseKadiConfig(`SQLALCHEMY_DATABASE_URI: ${uri}\n`);
        assert.throws(() => databaseTarget(c, {}), (e: unknown) => e instanceof KadiConfigError && /^SQLALCHEMY_DATABASE_URI is not a PostgreSQL URI I can read: .*overrides\.database/.test(e.message));
        assert.deepEqual(databaseTarget(c, { host: 'db', name: 'kadi', user: 'kadi' }), { host: 'db', port: 5432, name: 'kadi', user: 'kadi' });
      }
      assert.throws(() => databaseTarget(parseKadiConfig('STORAGE_PATH: /s\n'), { host: 'db' }), /SQLALCHEMY_DATABASE_URI is not set\./);
      assert.deepEqual(databaseTarget(parseKadiConfig('SQLALCHEMY_DATABASE_URI: postgresql://k:p@h:6000/n\n'), { port: 7000 }), { host: 'h', port: 7000, name: 'n', user: 'k' });
    });

    it('reports a missing or unreadable database URI without quoting its password', () => {
      assert.deepEqual(parseKadiConfig('STORAGE_PATH: /s\n').problems, ['SQLALCHEMY_DATABASE_URI is not set.']);
      const bad = parseKadiConfig('SQLALCHEMY_DATABASE_URI: sqlite://user:topsecret@x/y.db\n');
      assert.equal(bad.database, undefined);
      assert.equal(bad.problems.length, 1);
      assert.ok(!bad.problems[0].includes('topsecret'));
    });

    it('treats None and empty values as unset', () => {
      const c = parseKadiConfig('SQLALCHEMY_DATABASE_URI: postgresql://k:p@h/k\nSTORAGE_PATH: None\nMISC_UPLOADS_PATH: \nELASTICSEARCH_HOSTS: None\n');
      assert.equal(c.storagePath, undefined);
      assert.equal(c.uploadsPath, undefined);
      assert.deepEqual(c.elasticsearchHosts, []);
      assert.equal(c.oidcSigningKeys, undefined);
    });

    it('redacts secret keys, their continuation lines and URI passwords in the raw text', () => {
      const red = redactConfigText(CONFIG);
      assertNoSecrets(red);
      const lines = red.split('\n');
      assert.equal(lines.length, CONFIG.split('\n').length);
      assert.ok(lines.includes(`SECRET_KEY: ${REDACTED}`));
      assert.ok(lines.includes(`MAIL_PASSWORD: ${REDACTED}`));
      assert.ok(lines.includes(`SMTP_TOKEN: ${REDACTED}`));
      assert.ok(lines.includes(`SQLALCHEMY_DATABASE_URI: postgresql://kadi:${REDACTED}@db.internal:5433/kadi_prod`));
      assert.ok(lines.includes('STORAGE_PATH: /opt/kadi/storage'));
      assert.ok(lines.includes('MISC_UPLOADS_PATH: /opt/kadi/uploads'));
    });

    it('masks a database password with an unencoded space or @ completely', () => {
      const text = 'SQLALCHEMY_DATABASE_URI: postgresql://kadi:pass word@x@db/kadi\nCELERY_BROKER_URL: redis://:a b@c@localhost:6379/0\n';
      const c = parseKadiConfig(text);
      assert.equal(c.database?.password.reveal(), 'pass word@x');
      assert.equal(c.database?.host, 'db');
      assert.equal(c.celeryBrokerUrl, `redis://:${REDACTED}@localhost:6379/0`);
      const red = redactConfigText(text);
      assert.equal(red, `SQLALCHEMY_DATABASE_URI: postgresql://kadi:${REDACTED}@db/kadi\nCELERY_BROKER_URL: redis://:${REDACTED}@localhost:6379/0\n`);
      assert.ok(!JSON.stringify(c).includes('pass word'));
    });

    it('masks any generated password inside a URI value or an error message', () => {
      const scheme = fc.constantFrom('postgresql', 'postgresql+psycopg2', 'redis', 'https');
      const anyPassword = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((s) => !/[\r\n%]/.test(s));
      fc.assert(
        fc.property(scheme, anyPassword, (sch, password) => {
          const c = parseKadiConfig(`CELERY_BROKER_URL: ${sch}://user:${password}@x:1/db\nSQLALCHEMY_DATABASE_URI: postgresql://k:${password}@h/k\n`);
          assert.equal(c.celeryBrokerUrl, `${sch}://user:${REDACTED}@x:1/db`);
          assert.equal(c.redactedValues.SQLALCHEMY_DATABASE_URI, `postgresql://k:${REDACTED}@h/k`);
          assert.equal(c.database?.password.reveal(), password);
          const message = `could not connect to ${sch}://user:${encodeURIComponent(password)}@x:1/db (timeout)`;
          assert.equal(redactUriPasswords(message), `could not connect to ${sch}://user:${REDACTED}@x:1/db (timeout)`);
        }),
        { numRuns: 300 },
      );
      assert.equal(redactUriPasswords('postgresql://h/db?user=k&password=s3cret'), `postgresql://h/db?user=k&password=${REDACTED}`);
    });
  });

  describe('kadi db upgrade logging errors', () => {
    it('counts an alembic ERROR log line as fatal', () => {
      const r = parseDbUpgradeOutput("INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\nERROR [flask_migrate] Error: Can't locate revision identified by 'ffff0000'\n");
      assert.equal(r.success, false);
      assert.deepEqual(r.fatal, ["ERROR [flask_migrate] Error: Can't locate revision identified by 'ffff0000'"]);
    });
  });

  describe('Secret', () => {
    it('hides its value from every implicit conversion and reveals it on request', () => {
      const s = new Secret('tiger');
      assert.equal(s.reveal(), 'tiger');
      assert.equal(`${s}`, REDACTED);
      assert.equal(s + '', REDACTED);
      assert.equal(JSON.stringify({ s }), `{"s":"${REDACTED}"}`);
      assert.equal(inspect({ s }, { showHidden: true }), `{ s: ${REDACTED} }`);
      assert.deepEqual(Object.keys(s), []);
      assert.ok(!JSON.stringify(structuredClone({ s })).includes('tiger'));
      assert.equal(s.isEmpty, false);
      assert.equal(new Secret('').isEmpty, true);
    });
  });

  describe('kadi --version', () => {
    it('reads the bare version and ignores warnings before it', () => {
      assert.deepEqual(parseKadiVersion('1.13.0\n'), { major: 1, minor: 13, patch: 0, suffix: '', text: '1.13.0' });
      assert.equal(parseKadiVersion('/opt/kadi/venv/lib/python3.11/site-packages/x.py:3: UserWarning: blah\n  warn()\n1.12.1\n')?.text, '1.12.1');
      assert.equal(parseKadiVersion('kadi, version 1.14.0rc1')?.suffix, 'rc1');
    });

    it('returns nothing for a traceback instead of a version', () => {
      assert.equal(parseKadiVersion("Traceback (most recent call last):\nKeyError: 'SQLALCHEMY_DATABASE_URI'\n"), undefined);
      assert.equal(parseKadiVersion(''), undefined);
    });

    it('orders versions numerically, releases after their pre-releases', () => {
      const v = (s: string) => {
        const p = parseKadiVersion(s);
        assert.ok(p);
        return p;
      };
      assert.equal(compareKadiVersions(v('1.9.0'), v('1.13.0')), -1);
      assert.equal(compareKadiVersions(v('1.13.0'), v('1.13.0rc1')), 1);
      assert.equal(compareKadiVersions(v('2.0.0'), v('2.0.0')), 0);
    });
  });

  describe('kadi db upgrade', () => {
    const OK = `INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.
INFO  [alembic.runtime.migration] Will assume transactional DDL.
INFO  [alembic.runtime.migration] Running upgrade 8a3f2b1c0d9e -> c5f0ab3d2e41, Add file checksums
INFO  [alembic.runtime.migration] Running upgrade c5f0ab3d2e41 -> 1f2e3d4c5b6a
Upgrade completed successfully.
`;

    it('reads the migrations that ran and the success trailer', () => {
      const r = parseDbUpgradeOutput(OK);
      assert.equal(r.success, true);
      assert.deepEqual(r.migrations, [
        { from: '8a3f2b1c0d9e', to: 'c5f0ab3d2e41', message: 'Add file checksums' },
        { from: 'c5f0ab3d2e41', to: '1f2e3d4c5b6a' },
      ]);
    });

    it('is a success with nothing to migrate only when the trailer is there', () => {
      assert.equal(parseDbUpgradeOutput('Upgrade completed successfully.\n').success, true);
      assert.equal(parseDbUpgradeOutput('INFO  [alembic.runtime.migration] Will assume transactional DDL.\n').success, false);
    });

    it('fails on a traceback even when a success trailer follows (lying exit code)', () => {
      const r = parseDbUpgradeOutput(
        OK.replace('Upgrade completed', 'Traceback (most recent call last):\n  File "x.py", line 1\npsycopg2.errors.DuplicateColumn: column "checksum" already exists\nUpgrade completed'),
      );
      assert.equal(r.success, false);
      assert.deepEqual(r.fatal, ['Traceback (most recent call last):', 'psycopg2.errors.DuplicateColumn: column "checksum" already exists']);
    });
  });
});

describe('an error of kadi utils config, as shown', () => {
  it('masks a URI password and a secret assignment the exception quotes', () => {
    const shown = redactConfigText(redactSecretAssignments("ValueError: bad value SECRET_KEY = 'hunter2' in postgresql://kadi:topsecret@db/kadi"));
    assert.doesNotMatch(shown, /hunter2|topsecret/);
    assert.match(shown, /SECRET_KEY = <redacted>/);
  });
});
