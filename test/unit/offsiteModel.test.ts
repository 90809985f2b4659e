/** The off-site parts of the tree and the dashboard as plain data, and the client's helpers they and the commands use. */
import { strict as assert } from 'node:assert';
import { backendCredentials, forgetIds, forgetPlanLines, lacksPassword, newestFirst, offsiteSets, type OffsiteSnapshot } from '../../src/offsite/offsite';
import { hostRow, offsiteCell } from '../../src/ui/dashboardModel';
import { childrenOf, viewOf, type HostState, type ModelNode } from '../../src/ui/treeModel';
import { backupSet, overview, profile } from './treeModelFixtures';

const NOW = new Date('2026-11-26T12:00:00Z');
const REPO = '/srv/restic/kadi';
const NO_PASSWORD = `Listing the off-site snapshots of prod failed with exit status 1:\nERROR: this host has no password for the off-site repository ${REPO} (kadi-ops offsite init <host> connects it, with the password kept apart from the host)`;

function snap(set: string | undefined, time: string, patch: Partial<OffsiteSnapshot> = {}): OffsiteSnapshot {
  const id = `${set ? set.replace(/\D/g, '').slice(0, 12) : 'f00d'}`.padEnd(64, 'a');
  return { id, short: id.slice(0, 8), time, hostname: 'kadi-prod', ...(set ? { set } : {}), kadiVersion: '1.2.3', schemaRevision: 'abc123', tags: ['kadi-ops', ...(set ? [`set:${set}`] : [])], ...patch };
}

const withOffsite = profile('prod', { offsite: { repository: REPO, keep: { keepDaily: 7 } } });
const without = profile('plain');
const SETS = [backupSet('2026-11-26T06-00-00Z'), backupSet('2026-11-25T06-00-00Z')];
const SNAPS = [snap('2026-11-26T06-00-00Z', '2026-11-26T06:10:00.123456789Z'), snap(undefined, '2026-11-25T07:00:00+01:00', { hostname: 'other-host' })];

const groups = (n: ModelNode): string[] => childrenOf(n).map((c) => (c.kind === 'group' ? c.group : c.kind));
const offsiteGroup = (state: HostState): ModelNode => {
  const g = childrenOf({ kind: 'host', profile: withOffsite, state }).find((c) => c.kind === 'group' && c.group === 'offsite');
  assert.ok(g, 'an Off-site group');
  return g;
};

describe('off-site in the tree', () => {
  it('an Off-site group only under a host whose profile has a repository, before the search indices', () => {
    assert.deepEqual(groups({ kind: 'host', profile: withOffsite, state: { overview: overview({ sets: SETS }) } }), ['backups', 'jobs', 'offsite', 'indices']);
    assert.deepEqual(groups({ kind: 'host', profile: without, state: { overview: overview({ sets: SETS }) } }), ['backups', 'jobs', 'indices']);
    assert.equal(viewOf({ kind: 'host', profile: withOffsite, state: { overview: overview() } }, NOW).contextValue, 'host;loaded;idle;offsiterepo;');
    assert.equal(viewOf({ kind: 'host', profile: without, state: { overview: overview() } }, NOW).contextValue, 'host;loaded;idle;');
  });

  it('the group is empty until listed (the provider lists it when it is opened), then says how many, or that it is listing', () => {
    assert.deepEqual(childrenOf(offsiteGroup({ overview: overview() })), []);
    const v = viewOf(offsiteGroup({ overview: overview() }), NOW);
    assert.deepEqual([v.label, v.description, v.contextValue, v.id, v.collapsible], ['Off-site', undefined, 'group;offsite;', 'prod/offsite', true]);
    assert.equal(viewOf(offsiteGroup({ overview: overview(), offsiteLoading: true }), NOW).description, 'listing…');
    assert.equal(viewOf(offsiteGroup({ overview: overview(), offsite: { at: NOW, snapshots: SNAPS } }), NOW).description, '2');
  });

  it('snapshots newest first, each with its set, age, Kadi version and the host it was made on', () => {
    assert.deepEqual(newestFirst([...SNAPS].reverse()).map((s) => s.time), SNAPS.map((s) => s.time), 'times with offsets and nanoseconds compared as times');
    const items = childrenOf(offsiteGroup({ overview: overview(), offsite: { at: NOW, snapshots: SNAPS } }));
    assert.deepEqual(items.map((n) => n.kind), ['snapshot', 'snapshot']);
    const [a, b] = items.map((n) => viewOf(n, NOW));
    assert.equal(a.label, '2026-11-26 06:00:00 UTC');
    assert.equal(a.description, '6 h ago · Kadi 1.2.3 · from kadi-prod');
    assert.equal(a.contextValue, 'snapshot;set;');
    assert.equal(a.icon, 'cloud');
    assert.match(a.tooltip ?? '', /^Off-site snapshot 20261126 \(20261126\w+\)\nBackup set 2026-11-26T06-00-00Z\nCopied 2026-11-26T06:10:00\.123456789Z on host kadi-prod\nKadi 1\.2\.3, schema abc123/);
    assert.equal(b.label, 'snapshot f00daaaa', 'a snapshot without a set tag is named by its id');
    assert.equal(b.description, '30 h ago · Kadi 1.2.3 · from other-host');
    assert.equal(b.contextValue, 'snapshot;noset;', 'not offered for a restore');
    assert.notEqual(a.id, b.id);
  });

  it('an empty repository and an error are one item each; no password says which command connects the host', () => {
    const empty = childrenOf(offsiteGroup({ overview: overview(), offsite: { at: NOW, snapshots: [] } }));
    assert.deepEqual(empty.map((n) => n.kind === 'message' && [n.text, n.severity]), [['No off-site snapshots yet (Copy Set Off-site on a backup set)', 'info']]);
    const noPassword = childrenOf(offsiteGroup({ overview: overview(), offsite: { at: NOW, error: NO_PASSWORD } }));
    assert.deepEqual(noPassword.map((n) => n.kind === 'message' && [n.text, n.severity]), [['prod has no password for the off-site repository: Set Up Off-site Repository… connects it', 'error']]);
    const unreachable = childrenOf(offsiteGroup({ overview: overview(), offsite: { at: NOW, error: 'Listing the off-site snapshots of prod failed with exit status 1:\nERROR: listing the snapshots: the off-site repository sftp:x cannot be reached: connection refused' } }));
    assert.equal(unreachable.length, 1);
    assert.equal(unreachable[0].kind === 'message' && unreachable[0].text, 'Off-site repository not listed: listing the snapshots: the off-site repository sftp:x cannot be reached: connection refused');
    assert.equal(viewOf(offsiteGroup({ overview: overview(), offsite: { at: NOW, error: NO_PASSWORD } }), NOW).description, 'not listed');
  });

  it('a set in the last listing is marked off-site; with no listing (the group never opened) no set is, and nothing is asked', () => {
    const backups = (state: HostState): ModelNode[] => childrenOf(childrenOf({ kind: 'host', profile: withOffsite, state })[0]);
    const marked = backups({ overview: overview({ sets: SETS }), offsite: { at: NOW, snapshots: SNAPS } }).map((n) => viewOf(n, NOW));
    assert.match(marked[0].description ?? '', /· unverified, off-site$/);
    assert.match(marked[0].tooltip ?? '', /\nOff-site: snapshot 20261126 of 2026-11-26 06:10:00 \(as the repository was last listed\)$/);
    assert.doesNotMatch(marked[1].description ?? '', /off-site/);
    assert.equal(marked[0].contextValue, 'backup;unverified;unpinned;offsiterepo;', 'the host has a repository to copy to');
    const unlisted = backups({ overview: overview({ sets: SETS }) }).map((n) => viewOf(n, NOW));
    assert.ok(unlisted.every((v) => !/off-site/.test(v.description ?? '')));
    const plain = childrenOf(childrenOf({ kind: 'host', profile: without, state: { overview: overview({ sets: SETS }) } })[0]).map((n) => viewOf(n, NOW));
    assert.equal(plain[0].contextValue, 'backup;unverified;unpinned;');
  });
});

describe('off-site snapshots of another host sharing the repository', () => {
  const other = snap('2026-11-26T06-00-00Z', '2026-11-26T08:00:00Z', { hostname: 'kadi-staging', mine: false });
  const own = snap('2026-11-25T06-00-00Z', '2026-11-25T06:10:00Z', { mine: true });

  it('do not mark this host\'s set of the same name as off-site', () => {
    const state: HostState = { overview: overview({ sets: SETS }), offsite: { at: NOW, snapshots: [other, own] } };
    const views = childrenOf(childrenOf({ kind: 'host', profile: withOffsite, state })[0]).map((n) => viewOf(n, NOW));
    assert.deepEqual(views.map((v) => /off-site/.test(v.description ?? '')), [false, true]);
  });

  it('do not make this host look fresh in the dashboard', () => {
    const c = offsiteCell(withOffsite, { overview: overview(), offsite: { at: NOW, snapshots: [other, own] } }, NOW);
    assert.match(c.text, /2026-11-25/);
  });
});

describe('an off-site snapshot restic saved without every file (recorded incomplete by its push)', () => {
  const incomplete = snap('2026-11-26T06-00-00Z', '2026-11-26T06:10:00Z', { mine: true, incomplete: true });
  const own = snap('2026-11-25T06-00-00Z', '2026-11-25T06:10:00Z', { mine: true });

  it('does not mark its set off-site, in the tree, the dashboard or the listing', () => {
    const state: HostState = { overview: overview({ sets: SETS }), offsite: { at: NOW, snapshots: [incomplete, own] } };
    const views = childrenOf(childrenOf({ kind: 'host', profile: withOffsite, state })[0]).map((n) => viewOf(n, NOW));
    assert.deepEqual(views.map((v) => /off-site/.test(v.description ?? '')), [false, true]);
    assert.match(offsiteCell(withOffsite, state, NOW).text, /2026-11-25/);
    assert.deepEqual([...offsiteSets([incomplete, own])], ['2026-11-25T06-00-00Z']);
  });

  it('is shown as incomplete and cannot be restored from the tree', () => {
    const v = viewOf({ kind: 'snapshot', profile: withOffsite, snapshot: incomplete }, NOW);
    assert.match(v.description ?? '', /^incomplete · /);
    assert.match(v.tooltip ?? '', /INCOMPLETE: restic saved it without every file of the set/);
    assert.equal(v.contextValue, 'snapshot;noset;');
  });
});

describe('off-site in the dashboard', () => {
  const cell = (p: typeof withOffsite, state: HostState): [string, string, string | undefined] => {
    const c = offsiteCell(p, state, NOW);
    return [c.state, c.text, c.detail];
  };

  it('a host without a repository: "not configured"', () => {
    assert.deepEqual(cell(without, { overview: overview() }), ['absent', 'not configured', undefined]);
    assert.deepEqual(hostRow({ profile: without, state: { overview: overview() } }, NOW).features.map((f) => [f.id, f.text]), [['schedule', 'no schedule'], ['offsite', 'not configured']]);
  });

  it('with a repository: the newest snapshot\'s set and age from the last listing, or why there is none', () => {
    assert.deepEqual(cell(withOffsite, { overview: overview() }).slice(0, 2), ['absent', 'not listed yet']);
    assert.deepEqual(cell(withOffsite, { overview: overview(), offsiteLoading: true }).slice(0, 2), ['absent', 'listing…']);
    const [state, text, detail] = cell(withOffsite, { overview: overview(), offsite: { at: NOW, snapshots: SNAPS } });
    assert.deepEqual([state, text], ['ok', '2026-11-26 06:00:00 UTC, 6 h ago']);
    assert.equal(detail, `Repository ${REPO}, listed 2026-11-26T12:00:00Z. 2 snapshot(s); the newest, 20261126, copied 2026-11-26T06:10:00.123456789Z from kadi-prod.`);
    // A listing kept from before the last reload is still the newest known.
    assert.equal(cell(withOffsite, { overview: overview(), offsite: { at: NOW, snapshots: SNAPS, stale: true } })[1], '2026-11-26 06:00:00 UTC, 6 h ago');
    assert.deepEqual(cell(withOffsite, { overview: overview(), offsite: { at: NOW, snapshots: [] } }).slice(0, 2), ['warning', 'no snapshot yet']);
    const failed = cell(withOffsite, { overview: overview(), offsite: { at: NOW, error: NO_PASSWORD } });
    assert.deepEqual(failed.slice(0, 2), ['error', 'could not be listed']);
    assert.match(failed[2] ?? '', /prod has no password for the off-site repository: Set Up Off-site Repository… connects it$/);
  });
});

describe('off-site client helpers', () => {
  it('the agent\'s "no password" answer is told apart from other failures', () => {
    assert.equal(lacksPassword(NO_PASSWORD), true);
    assert.equal(lacksPassword('opening the repository in /x: the repository password is wrong'), false);
  });

  it('a dry run\'s keep and forget lines, and nothing else of its log', () => {
    const log = ['[step] something', 'keep 0123abcd (set 2026-11-26T06-00-00Z): daily 1, last 1', 'forget 4567cdef (set 2026-11-20T06-00-00Z)', 'forgotten=0', 'keeper of nothing'].join('\n');
    assert.deepEqual(forgetPlanLines(log), { keep: ['keep 0123abcd (set 2026-11-26T06-00-00Z): daily 1, last 1'], forget: ['forget 4567cdef (set 2026-11-20T06-00-00Z)'] });
    // What the confirmation sends back to the host: the ids of the forget lines only.
    assert.deepEqual(forgetIds(forgetPlanLines(log).forget), ['4567cdef']);
  });

  it('backend credentials are restic\'s credential variables of the environment, nothing else', () => {
    const env = { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b', AWS_CA_BUNDLE: '/x', B2_ACCOUNT_ID: 'c', RESTIC_PASSWORD: 'no', HOME: '/root', PATH: '/bin' };
    assert.deepEqual(backendCredentials(env, 's3:https://s3.example/b'), { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b' });
    // Only the backend's own: an sftp or local repository gets none of the operator's cloud keys.
    assert.deepEqual(backendCredentials(env, 'b2:bucket:path'), { B2_ACCOUNT_ID: 'c' });
    assert.deepEqual(backendCredentials(env, 'sftp:u@h:/r'), {});
    assert.deepEqual(backendCredentials(env, '/mnt/offsite'), {});
  });
});
