import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { planFromProfile } from '../../src/backup/hostPlan';
import { resolveProfiles } from '../../src/config/hostProfiles';
import { PlanError, checkPlan, validatePlan, type HostPlan } from '../../src/core/plan';
import { agentPyz } from '../../src/remote/agent';

const VALID: HostPlan = {
  version: 1,
  host: { name: 'kadi prod', backupDir: '/mnt/backups/kadi' },
  kadi: { cli: '/opt/kadi/bin/kadi', configFile: '/opt/kadi/config/kadi.py' },
  components: {
    database: { dumpCompression: 6 },
    storage: { path: '/srv/kadi storage' },
    uploads: {},
    redis: { enabled: true, cli: 'redis-cli', port: 6379, dumpPath: '/var/lib/redis/dump.rdb' },
    config: {},
  },
  backup: { filesMode: 'tree', stopServices: false, services: ['kadi-uwsgi', 'kadi-celery'] },
  retention: { keepLast: 7, keepDaily: 14, minKeep: 2 },
};

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const change = (f: (d: Doc) => void): unknown => {
  const d = JSON.parse(JSON.stringify(VALID)) as Doc;
  f(d);
  return d;
};

/** Plans each side must judge alike: valid ones and one for every keyword of the schema. */
const CASES: [string, unknown][] = [
  ['valid', VALID],
  ['not an object', [1, 2]],
  ['empty', {}],
  ['wrong version', change((d) => (d.version = 2))],
  ['version as text', change((d) => (d.version = '1'))],
  ['compression too high', change((d) => (d.components.database.dumpCompression = 10))],
  ['compression a boolean', change((d) => (d.components.database.dumpCompression = true))],
  ['compression a fraction', change((d) => (d.components.database.dumpCompression = 1.5))],
  ['unknown files mode', change((d) => (d.backup.filesMode = 'zip'))],
  ['hostile service name', change((d) => (d.backup.services = ['kadi; rm -rf /', 'ok']))],
  ['relative backup dir', change((d) => (d.host.backupDir = 'relative/dir'))],
  ['backup dir with a final newline', change((d) => (d.host.backupDir = '/mnt/x\n'))],
  ['unicode name', change((d) => (d.host.name = 'Kadi Ünï 実験 "quoted"'))],
  ['a secret where none belongs', change((d) => (d.password = 'hunter2'))],
  ['negative retention', change((d) => (d.retention.keepLast = -1))],
  ['redis without enabled', change((d) => (d.components.redis = {}))],
  ['services not a list', change((d) => (d.backup.services = 'kadi-uwsgi'))],
  ['port out of range', change((d) => (d.components.redis.port = 70000))],
  ['a schedule with monitoring', change((d) => ((d.schedule = { calendar: '*-*-* 02:30:00', randomizedDelaySec: 900, verify: 'quick', deepCalendar: 'Sun *-*-* 04:00', whenBusy: 'wait', unit: 'system' }), (d.monitoring = { start: 'https://hc-ping.com/abc/start', success: 'https://hc-ping.com/abc', failure: 'https://hc-ping.com/abc/fail', webhook: 'http://10.0.0.1:8080/hook', ntfy: 'https://ntfy.sh/kadi-prod' })))],
  ['a schedule without a calendar', change((d) => (d.schedule = { verify: 'quick' }))],
  ['a calendar with a newline', change((d) => (d.schedule = { calendar: 'daily\nExecStart=/bin/sh' }))],
  ['an unknown busy rule', change((d) => (d.schedule = { calendar: 'daily', whenBusy: 'queue' }))],
  ['a delay over a day', change((d) => (d.schedule = { calendar: 'daily', randomizedDelaySec: 86401 }))],
  ['a ping URL that is no URL', change((d) => (d.monitoring = { failure: 'file:///etc/passwd' }))],
  ['a webhook with a space', change((d) => (d.monitoring = { webhook: 'https://x.example/a b' }))],
];

/** The agent's verdict on each plan: its plan_error lines, from one run of the built zipapp per case. */
function agentVerdicts(): string[][] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kadi-plan-'));
  try {
    const pyz = path.join(dir, 'agent.pyz');
    fs.writeFileSync(pyz, agentPyz());
    return CASES.map(([, doc]) => {
      const r = spawnSync('python3', ['-I', '-S', pyz, 'plan-check'], { input: JSON.stringify(doc), encoding: 'utf8' });
      assert.equal(r.status, r.stdout.includes('plan=ok') ? 0 : 2, r.stderr);
      return r.stdout.split('\n').filter((l) => l.startsWith('plan_error=')).map((l) => l.slice('plan_error='.length));
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('the host plan: one schema, validated alike by the client and the agent', () => {
  it('both sides give the same verdict and the same messages for every plan', () => {
    const fromAgent = agentVerdicts();
    CASES.forEach(([name, doc], i) => assert.deepEqual(validatePlan(doc), fromAgent[i], name));
    // The cases exercise the validators: only the valid ones pass, every other one says why.
    assert.deepEqual(CASES.filter((_, i) => fromAgent[i].length === 0).map(([n]) => n), ['valid', 'unicode name', 'a schedule with monitoring']);
  });

  it('names the path and the reason of each problem', () => {
    assert.deepEqual(validatePlan(change((d) => (d.backup.services = ['kadi; rm -rf /']))), ['plan.backup.services[0]: "kadi; rm -rf /" does not match ^[A-Za-z0-9@._:-]+$']);
    assert.deepEqual(validatePlan({}), ['plan: version is missing', 'plan: host is missing', 'plan: kadi is missing', 'plan: components is missing', 'plan: backup is missing']);
    assert.throws(() => checkPlan(change((d) => (d.password = 'x'))), (e: unknown) => e instanceof PlanError && /unknown key password/.test(e.message));
  });

  it('a host profile becomes a valid plan with nothing secret in it', () => {
    const { profiles } = resolveProfiles(
      [{ name: 'prod', ssh: { host: 'kadi.example.org' }, services: ['kadi-uwsgi'], redis: { enabled: true }, overrides: { storagePath: '/srv/storage', database: { host: 'db' } } }],
      { sshConfigText: '' },
    );
    const plan = planFromProfile(profiles[0], { filesMode: 'archive', retention: { keepDaily: 7 } });
    assert.deepEqual(validatePlan(plan), []);
    assert.equal(plan.components.storage.path, '/srv/storage');
    assert.deepEqual(plan.components.uploads, {});
    assert.deepEqual(plan.backup, { filesMode: 'archive', stopServices: false, services: ['kadi-uwsgi'] });
    assert.doesNotMatch(JSON.stringify(plan), /password|secret|kadi\.example\.org/i);
  });
});
