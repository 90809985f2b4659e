import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SetStatus } from '../../src/backup/manifest';
import { childrenOf, viewOf, type HostState, type ModelNode } from '../../src/ui/treeModel';
import { backupSet, job, overview, profile } from './treeModelFixtures';

const ROOT = path.resolve(__dirname, '../../..');

interface MenuItem {
  command: string;
  when?: string;
  group?: string;
}
interface Manifest {
  contributes: {
    commands: { command: string; title: string }[];
    menus: Record<string, MenuItem[]>;
    walkthroughs?: { steps: { description: string; completionEvents?: string[] }[] }[];
    viewsWelcome?: { contents: string }[];
  };
}

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Manifest;

/** Every node shape the model can show, hence every contextValue it can produce. */
function allNodes(): ModelNode[] {
  const nodes: ModelNode[] = [];
  const statuses: SetStatus[] = ['verified', 'unverified', 'damaged'];
  const sets = statuses.flatMap((status) => [false, true].flatMap((pinned) => [false, true].map((preRestore) => backupSet('2026-11-26T06-37-07Z', { status, pinned, preRestore }))));
  const snapshot = (set?: string) => ({ id: 'a'.repeat(64), short: 'aaaaaaaa', time: '2026-11-26T06:40:00Z', hostname: 'h', ...(set ? { set } : {}), tags: ['kadi-ops'] });
  for (const [redis, offsite] of [[false, false], [true, false], [false, true]]) {
    const p = profile('h', { redis: { enabled: redis }, ...(offsite ? { offsite: { repository: '/srv/restic' } } : {}) });
    const states: HostState[] = [
      {},
      { error: 'unreachable' },
      { overview: overview({ sets, partials: [{ name: '.partial-x', job: 'x', mtime: 0 }], jobs: [job(), job({ state: 'running', status: '' }), job({ state: 'died', status: '' })] }) },
      { overview: overview() },
      { overview: overview(), indices: [{ model: 'record', name: 'record_20250101120000123456', live: true }, { model: 'record', name: 'record_20240101120000123456', live: false }] },
      { overview: overview(), indicesError: 'kadi search ls failed' },
      { overview: overview({ sets }), offsite: { at: new Date(), snapshots: [snapshot('2026-11-26T06-37-07Z'), snapshot()] } },
      { overview: overview(), offsite: { at: new Date(), error: 'no password' } },
    ];
    for (const state of states) {
      const walk = (n: ModelNode): void => {
        nodes.push(n);
        childrenOf(n).forEach(walk);
      };
      walk({ kind: 'host', profile: p, state });
    }
  }
  return nodes;
}

const contextValues = [...new Set(allNodes().map((n) => viewOf(n).contextValue))].sort();

/** The viewItem regexes of a when clause (all must match), or undefined when it does not test viewItem. */
function viewItemRegexes(when: string | undefined): RegExp[] | undefined {
  if (!when || !when.includes('viewItem')) return undefined;
  const res = [...when.matchAll(/viewItem =~ \/((?:\\\/|[^/])+)\/([a-z]*)/g)].map((m) => new RegExp(m[1], m[2]));
  assert.ok(res.length > 0, `when clause tests viewItem but not with a regex: ${when}`);
  assert.ok(!/viewItem ==/.test(when), `use a regex on contextValue tags, not equality: ${when}`);
  return res;
}

/** Tree items that deliberately have no context menu. */
const NO_MENU = [/^message;$/, /^group;(backups|jobs);$/, /^artifact;(file|filelist|archive);$/, /^snapshot;noset;$/];

describe('menus match the tree model (package.json contributes)', () => {
  const itemMenus = pkg.contributes.menus['view/item/context'];

  it('the model produces the expected tag shapes', () => {
    assert.ok(contextValues.includes('backup;verified;pinned;'));
    assert.ok(contextValues.includes('backup;damaged;unpinned;prerestore;'));
    assert.ok(contextValues.includes('host;loaded;busy;redis;'));
    assert.ok(contextValues.includes('job;running;'));
    assert.ok(contextValues.includes('artifact;dbdump;'));
    assert.ok(contextValues.every((c) => c.endsWith(';')), 'every contextValue ends with ";" so /;tag;/ matches the last tag');
  });

  it('every view/item/context menu item matches at least one contextValue the model produces', () => {
    for (const item of itemMenus) {
      const res = viewItemRegexes(item.when);
      assert.ok(res, `${item.command} (${item.group}) has no viewItem test: ${item.when}`);
      assert.ok(item.when?.includes('view == kadiOps.hosts'), `${item.command}: restricted to the Kadi Hosts view`);
      const hits = contextValues.filter((c) => res.every((r) => r.test(c)));
      assert.ok(hits.length > 0, `${item.command} (${item.when}) matches no tree item`);
    }
  });

  it('every contextValue has a context menu, except the items listed as having none', () => {
    for (const c of contextValues) {
      const menus = itemMenus.filter((i) => (viewItemRegexes(i.when) ?? []).every((r) => r.test(c)));
      const exempt = NO_MENU.some((r) => r.test(c));
      if (exempt) assert.deepEqual(menus.map((m) => m.command), [], `${c} is listed as menu-less but has menus`);
      else assert.ok(menus.length > 0, `${c} has no context menu`);
    }
  });

  it('pin and unpin are mutually exclusive; cancel only on running jobs', () => {
    const commandsFor = (c: string): string[] => itemMenus.filter((i) => (viewItemRegexes(i.when) ?? []).every((r) => r.test(c))).map((i) => i.command);
    assert.ok(commandsFor('backup;verified;pinned;').includes('kadiOps.unpin'));
    assert.ok(!commandsFor('backup;verified;pinned;').includes('kadiOps.pin'));
    assert.ok(commandsFor('backup;unverified;unpinned;').includes('kadiOps.pin'));
    assert.ok(!commandsFor('backup;unverified;unpinned;').includes('kadiOps.unpin'));
    assert.ok(commandsFor('job;running;').includes('kadiOps.cancelJob'));
    assert.ok(!commandsFor('job;finished;').includes('kadiOps.cancelJob'));
    assert.ok(commandsFor('artifact;dbdump;').includes('kadiOps.showDumpListing'));
    assert.ok(commandsFor('backup;verified;unpinned;').includes('kadiOps.downloadSet'));
    assert.ok(commandsFor('host;loaded;idle;').includes('kadiOps.uploadSet'));
    assert.ok(commandsFor('host;error;idle;').includes('kadiOps.forgetSecrets'));
    // Off-site: only where the host has a repository; a damaged set is not offered for a copy.
    assert.ok(commandsFor('host;loaded;idle;offsiterepo;').includes('kadiOps.offsiteSetUp'));
    assert.ok(!commandsFor('host;loaded;idle;').includes('kadiOps.offsiteSetUp'));
    assert.ok(commandsFor('backup;verified;unpinned;offsiterepo;').includes('kadiOps.offsitePush'));
    assert.ok(!commandsFor('backup;damaged;unpinned;offsiterepo;').includes('kadiOps.offsitePush'));
    assert.ok(!commandsFor('backup;verified;unpinned;').includes('kadiOps.offsitePush'));
    assert.deepEqual(commandsFor('group;offsite;').sort(), ['kadiOps.offsiteCheck', 'kadiOps.offsiteForget', 'kadiOps.offsiteSetUp', 'kadiOps.refresh']);
    assert.deepEqual(commandsFor('snapshot;set;'), ['kadiOps.offsiteRestore']);
  });

  it('every command in menus, the welcome view, the walkthrough and the tree is declared and registered', () => {
    const declared = new Set(pkg.contributes.commands.map((c) => c.command));
    const src = fs
      .readdirSync(path.join(ROOT, 'src/ui'))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => fs.readFileSync(path.join(ROOT, 'src/ui', f), 'utf8'))
      .join('\n');
    const registered = new Set([...src.matchAll(/registerCommand\(\s*'(kadiOps\.[A-Za-z]+)'/g)].map((m) => m[1]));
    const used = new Set<string>();
    for (const items of Object.values(pkg.contributes.menus)) for (const i of items) used.add(i.command);
    const links = [...(pkg.contributes.viewsWelcome ?? []).map((w) => w.contents), ...(pkg.contributes.walkthroughs ?? []).flatMap((w) => w.steps.map((s) => s.description))].join('\n');
    for (const m of links.matchAll(/command:(kadiOps\.[A-Za-z]+)/g)) used.add(m[1]);
    for (const w of pkg.contributes.walkthroughs ?? []) for (const s of w.steps) for (const e of s.completionEvents ?? []) if (e.startsWith('onCommand:')) used.add(e.slice('onCommand:'.length));
    for (const m of src.matchAll(/command: '(kadiOps\.[A-Za-z]+)'/g)) used.add(m[1]);
    for (const c of used) assert.ok(declared.has(c), `${c} is used but not declared`);
    for (const c of declared) assert.ok(registered.has(c), `${c} is declared but never registered`);
  });
});
