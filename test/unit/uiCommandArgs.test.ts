import { strict as assert } from 'node:assert';
import { hostOf, nodeArg, setOf, uriArg } from '../../src/ui/commandArgs';
import type { ModelNode } from '../../src/ui/treeModel';
import { backupSet, job, profile } from './treeModelFixtures';

describe('command argument handling', () => {
  const p = profile();
  const s = backupSet('2026-11-26T06-37-07Z');
  const nodes: ModelNode[] = [
    { kind: 'host', profile: p, state: {} },
    { kind: 'set', profile: p, set: s },
    { kind: 'artifact', profile: p, set: s, artifact: s.manifest.artifacts[1] },
    { kind: 'job', profile: p, job: job() },
    { kind: 'partial', profile: p, name: '.partial-x', job: 'x' },
    { kind: 'snapshot', profile: p, snapshot: { id: 'a'.repeat(64), short: 'aaaaaaaa', time: '2026-11-26T06:40:00Z', hostname: 'h', tags: [] } },
  ];

  it('accepts tree nodes as they come from menus and item clicks', () => {
    for (const n of nodes) assert.equal(nodeArg(n), n);
    for (const n of nodes) assert.equal(hostOf(nodeArg(n)), p);
  });

  it('palette and keybindings pass nothing; unexpected values count as nothing', () => {
    for (const x of [undefined, null, 'prod', 42, [], {}, { kind: 'host' }, { kind: 'set', profile: p }, { kind: 'nope', profile: p }, { kind: 'host', profile: 'prod' }, { kind: 'snapshot', profile: p }]) {
      assert.equal(nodeArg(x), undefined, JSON.stringify(x));
    }
    assert.equal(hostOf(undefined), undefined);
  });

  it('a set or one of its artifacts stands for the set; other nodes do not', () => {
    assert.deepEqual(setOf(nodes[1]), { profile: p, set: s });
    assert.deepEqual(setOf(nodes[2]), { profile: p, set: s });
    assert.equal(setOf(nodes[0]), undefined);
    assert.equal(setOf(nodes[3]), undefined);
  });

  it('URIs from editor and explorer menus are recognised by shape', () => {
    const u = { scheme: 'kadi-dump', path: '/prod/2026-11-26T06-37-07Z/db.toc', fsPath: '/x' };
    assert.equal(uriArg(u), u);
    assert.equal(uriArg(nodes[0]), undefined);
    assert.equal(uriArg('kadi-dump:/x'), undefined);
    assert.equal(nodeArg(u), undefined);
  });
});
