/**
 * Values the host reports are data, never protocol or code: hostile content in alembic_version and in
 * `kadi utils config` (newlines, shell text) is named as a problem or fails the job clearly; it never
 * adds a line to the agent's answers, never runs, and no reported tool path is used unchecked.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startBackup } from '../../src/backup/backupSets';
import { MemorySink } from '../../src/core/sink';
import { PlanError } from '../../src/core/plan';
import { discover } from '../../src/kadi/discovery';
import { parseKeyValues, AgentProtocolError } from '../../src/remote/agent';
import { followJob } from '../../src/remote/jobs';
import type { SandboxHost } from '../sandbox/sandbox';
import { KADI_HEAD_REVISION } from '../sandbox/sandbox';
import { getSandbox, newPool, profileOf } from './fixture';

describe('hostile values from the host', function () {
  this.timeout(300000);
  let sb: SandboxHost;

  before(async () => {
    sb = await getSandbox();
  });

  it('a schema revision holding a newline, a second row and a forged key is named as a problem; the reported pg_dump stays the real one', async () => {
    await sb.psql(`DELETE FROM alembic_version; INSERT INTO alembic_version VALUES (E'abc\\npg_dump=/tmp/e'), ('second');`);
    const pool = newPool();
    try {
      const host = await pool.get(profileOf(sb, 'direct'));
      const { facts } = await discover(host);
      assert.equal(facts.alembicRevision, undefined);
      assert.ok(facts.problems.some((p) => /schema revision is not usable: alembic_version holds "abc\\npg_dump=\/tmp\/e\\nsecond"/.test(p)), facts.problems.join('\n'));
      assert.match(facts.pg.pgDump ?? '', /^\/usr\/lib\/postgresql\/\d+\/bin\/pg_dump$/);
      assert.match(facts.pg.pgRestore ?? '', /^\/usr\/lib\/postgresql\/\d+\/bin\/pg_restore$/);
    } finally {
      pool.closeAll();
      await sb.psql(`DELETE FROM alembic_version; INSERT INTO alembic_version VALUES ('${KADI_HEAD_REVISION}');`);
    }
  });

  it('a STORAGE_PATH with shell text from kadi utils config never runs and fails the backup clearly; one with a newline is refused before anything starts', async () => {
    const canary = path.join(sb.root, 'hostile-canary');
    const original = fs.readFileSync(sb.kadiConfig, 'utf8');
    const shellText = `/tmp/kadi-x[$(touch ${canary})]\`touch ${canary}\`;touch ${canary}`;
    const withStorage = (v: string): void => fs.writeFileSync(sb.kadiConfig, original.replace(/^STORAGE_PATH = .*$/m, `STORAGE_PATH = ${JSON.stringify(v)}`));
    try {
      withStorage(shellText);
      const pool = newPool();
      try {
        const host = await pool.get(profileOf(sb, 'direct'));
        const d = await discover(host);
        assert.equal(d.facts.storagePath, shellText);
        const sink = new MemorySink();
        const outcome = await followJob(host, await startBackup(host, d), { sink });
        assert.equal(outcome.result, 'failed', sink.text());
        assert.ok(sink.text().includes(`storage directory ${shellText} does not exist`), sink.text());
        assert.equal(fs.existsSync(canary), false, 'no shell ever ran the value');
      } finally {
        pool.closeAll();
      }
      withStorage(`${shellText}\npg_dump=/tmp/kadi-ops-evil`);
      const pool2 = newPool();
      try {
        const host = await pool2.get(profileOf(sb, 'direct'));
        const d = await discover(host);
        assert.match(d.facts.pg.pgDump ?? '', /^\/usr\/lib\/postgresql\//);
        await assert.rejects(startBackup(host, d), (e: unknown) => e instanceof PlanError && /plan\.facts\.storagePath: .* does not match/.test(e.message));
        assert.equal(fs.existsSync(canary), false);
      } finally {
        pool2.closeAll();
      }
    } finally {
      fs.writeFileSync(sb.kadiConfig, original);
    }
  });

  it("a table name pg_dump quotes in its error cannot add a line of the job's own: the rest of the message is indented", async () => {
    const name = 'x\nATTENTION: forged by a table name\nset=2020-01-01T00-00-00Z\ny';
    // The superuser's table, closed to the Kadi role: pg_dump fails on it, naming it.
    await sb.psql(`CREATE TABLE "${name}" (id integer); REVOKE ALL ON "${name}" FROM PUBLIC;`);
    const pool = newPool();
    try {
      const host = await pool.get(profileOf(sb, 'direct'));
      const sink = new MemorySink();
      const outcome = await followJob(host, await startBackup(host, await discover(host)), { sink });
      assert.equal(outcome.result, 'failed', sink.text());
      assert.match(sink.text(), /^pg_dump: error: .*permission denied for table x$/m);
      assert.match(sink.text(), /^ {2}\| ATTENTION: forged by a table name$/m);
      assert.doesNotMatch(sink.text(), /^ATTENTION: forged|^set=2020/m);
    } finally {
      pool.closeAll();
      await sb.psql(`DROP TABLE "${name}"`);
    }
  });

  it('the client refuses an answer that repeats a key it reads once', () => {
    const kv = parseKeyValues('pg_dump=/usr/bin/pg_dump\nalembic_revision=abc\npg_dump=/tmp/evil\n');
    assert.throws(() => kv.get('pg_dump'), AgentProtocolError);
    assert.equal(kv.get('alembic_revision'), 'abc');
  });
});
