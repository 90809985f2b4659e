/**
 * Off-site copies in VS Code (src/offsite): set up the repository of a host, copy a set to it,
 * check it, forget old snapshots by the profile's keep rules, and bring a set back from it onto
 * this host or another. Jobs run with the usual furniture (output channel, progress, outcome).
 *
 * The repository password is shown once, in a modal, when the repository is created; it is kept
 * in VS Code's SecretStorage under the repository's address (and on the host, as the agent's 0600
 * file). It never goes to an output channel, a log or any other message.
 */
import * as vscode from 'vscode';
import type { HostProfile } from '../config/types';
import type { PlanOffsite } from '../core/plan';
import { runJobBreakingStaleLock } from '../flows/frontEnd';
import { discover } from '../kadi/discovery';
import {
  backendCredentials,
  connectOffsite,
  forgetIds,
  forgetPlanLines,
  lacksPassword,
  listOffsite,
  newRepositoryPassword,
  offsiteOf,
  startOffsiteCheck,
  startOffsiteForget,
  startOffsitePush,
  startOffsiteRestore,
  type ConnectResult,
  type OffsiteSnapshot,
} from '../offsite/offsite';
import type { RemoteHost } from '../remote/remoteHost';
import { guard, pickSet, type CommandDeps } from './backupCommands';
import { hostOf, nodeArg } from './commandArgs';
import { vscodeFrontEnd } from './frontEnd';
import { setLabel, type ModelNode } from './treeModel';
import type { OffsitePasswords } from './vscodeSecrets';

type OffsiteProfile = HostProfile & { offsite: PlanOffsite };

const hasOffsite = (p: HostProfile | undefined): p is OffsiteProfile => !!p?.offsite;

async function editHostsOffer(message: string): Promise<void> {
  const c = await vscode.window.showWarningMessage(message, 'Edit Hosts');
  if (c) await vscode.commands.executeCommand('kadiOps.editHosts');
}

/** The host the command acts on: the node's, or one of the hosts with an off-site repository. */
async function pickOffsiteHost(deps: CommandDeps, node: ModelNode | undefined): Promise<OffsiteProfile | undefined> {
  const fromNode = hostOf(node);
  if (fromNode) {
    if (hasOffsite(fromNode)) return fromNode;
    try {
      offsiteOf(fromNode);
    } catch (e) {
      await editHostsOffer((e as Error).message);
    }
    return undefined;
  }
  const profiles = deps.tree.profiles().filter(hasOffsite);
  if (profiles.length === 0) {
    await editHostsOffer('No Kadi host has an off-site repository: add "offsite": { "repository": "…" } to a host profile (docs/offsite.md).');
    return undefined;
  }
  if (profiles.length === 1) return profiles[0];
  const picked = await vscode.window.showQuickPick(
    profiles.map((p) => ({ label: p.name, description: p.offsite.repository, profile: p })),
    { title: 'Kadi host with an off-site repository', placeHolder: 'Choose a Kadi host' },
  );
  return picked?.profile;
}

const passwordPrompt = (what: string): vscode.InputBoxOptions => ({
  title: 'Off-site repository password',
  prompt: what,
  password: true,
  ignoreFocusOut: true,
  validateInput: (v) =>
    v.length < 8 || /[\r\n]/.test(v)
      ? 'The password is one line of at least 8 characters.'
      : v !== v.trim()
        ? 'The password must not begin or end with a space: restic leaves them out, and plain restic would not open the repository with it.'
        : undefined,
});

function connect(host: RemoteHost, o: PlanOffsite, password: string, create: boolean): Thenable<ConnectResult> {
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Connecting ${host.profile.name} to the off-site repository…` }, () =>
    connectOffsite(host, o, { password, credentials: backendCredentials(process.env, o.repository), create }),
  );
}

export function registerOffsiteCommands(deps: CommandDeps, passwords: OffsitePasswords): vscode.Disposable[] {
  /** Runs an off-site job with the stale-lock question; its outcome, and its stdout for the dry run. */
  const job = (profile: HostProfile, title: string, start: (host: RemoteHost, breakStaleLock: boolean) => Promise<string>) => runJobBreakingStaleLock(vscodeFrontEnd(deps, profile), title, start);

  /**
   * Makes sure ONTO holds the password of O (the repository of SOURCE's profile): SOURCE just
   * listed it, or ONTO lists it; when ONTO has none, it is connected with the password from
   * SecretStorage, else the one the operator types (then kept in SecretStorage).
   */
  const ensurePassword = async (onto: HostProfile, source: HostProfile, o: PlanOffsite): Promise<boolean> => {
    const listing = deps.tree.state(source.name).offsite;
    if (onto.name === source.name && listing?.snapshots && !listing.stale) return true;
    const host = await deps.pool.get(onto);
    try {
      await listOffsite(host, o);
      return true;
    } catch (e) {
      if (!lacksPassword((e as Error).message)) throw e;
    }
    const stored = await passwords.get(o.repository);
    const password =
      stored ?? (await vscode.window.showInputBox(passwordPrompt(`${onto.name} has no password for the off-site repository ${o.repository}. Type it (the one shown when the repository was set up); ${onto.name} keeps it as a 0600 file of the Kadi user.`)));
    if (!password) return false;
    await connect(host, o, password, false);
    if (!stored) await passwords.store(o.repository, password);
    deps.outputs.channel(onto.name).info(`${onto.name} is connected to the off-site repository ${o.repository} (with the password ${stored ? "from VS Code's secret storage" : 'typed in'}).`);
    return true;
  };

  const pickSnapshot = async (profile: OffsiteProfile): Promise<OffsiteSnapshot | undefined> => {
    const s = deps.tree.state(profile.name);
    if (!s.offsite || s.offsite.stale || s.offsite.error) await deps.tree.loadOffsite(profile);
    const listing = deps.tree.state(profile.name).offsite;
    if (listing?.error) throw new Error(listing.error);
    const snaps = (listing?.snapshots ?? []).filter((x) => x.set);
    if (snaps.length === 0) {
      void vscode.window.showWarningMessage(`The off-site repository of ${profile.name} holds no set yet.`);
      return undefined;
    }
    const picked = await vscode.window.showQuickPick(
      snaps.map((x) => ({ label: setLabel(x.set ?? ''), description: `snapshot ${x.short} · Kadi ${x.kadiVersion ?? '?'} · from ${x.hostname}`, snapshot: x })),
      { title: `Off-site snapshot of ${profile.name}`, placeHolder: 'Newest first' },
    );
    return picked?.snapshot;
  };

  return [
    vscode.commands.registerCommand('kadiOps.offsiteSetUp', async (arg?: unknown) => {
      const profile = await pickOffsiteHost(deps, nodeArg(arg));
      if (!profile) return;
      const o = profile.offsite;
      await guard(profile, deps, async () => {
        const host = await deps.pool.get(profile);
        const stored = await passwords.get(o.repository);
        let password = stored ?? newRepositoryPassword();
        let r: ConnectResult;
        try {
          r = await connect(host, o, password, true);
        } catch (e) {
          // A repository there already, with a password of its own: joined with that one.
          if (stored || !/password is wrong/.test((e as Error).message)) throw e;
          const typed = await vscode.window.showInputBox(passwordPrompt(`There is a restic repository at ${o.repository} already. Type its password to connect ${profile.name} to it.`));
          if (!typed) return;
          password = typed;
          r = await connect(host, o, password, false);
        }
        await passwords.store(o.repository, password);
        const did = r.created ? 'Created' : 'Joined';
        deps.outputs
          .channel(profile.name)
          .info(`${did} the off-site repository ${o.repository} (id ${r.repositoryId.slice(0, 12)}) for ${profile.name}; its password is kept on the host (a 0600 file of the Kadi user) and in VS Code's secret storage.`);
        await deps.tree.loadOffsite(profile);
        if (r.created && !stored) {
          const c = await vscode.window.showWarningMessage(
            `The password of the new off-site repository of ${profile.name}, shown this once:`,
            {
              modal: true,
              detail:
                `${password}\n\nKeep it apart from the host (a password manager). ${profile.name} keeps a copy and VS Code's secret storage another, ` +
                'but losing the host and this password loses the off-site copies: restic\'s encryption has no way around it.',
            },
            'Copy Password',
          );
          if (c === 'Copy Password') await vscode.env.clipboard.writeText(password);
        } else {
          void vscode.window.showInformationMessage(`${did} the off-site repository ${o.repository} for ${profile.name} with the password ${stored ? "from VS Code's secret storage" : 'typed in'}.`);
        }
      });
    }),
    vscode.commands.registerCommand('kadiOps.offsitePush', async (arg?: unknown) => {
      const node = nodeArg(arg);
      const profile = await pickOffsiteHost(deps, node);
      if (!profile) return;
      const picked = node?.kind === 'set' ? { set: node.set } : await pickSet(deps, { kind: 'host', profile, state: deps.tree.state(profile.name) }, (s) => s.status !== 'damaged');
      if (!picked) return;
      if (picked.set.status === 'damaged') {
        void vscode.window.showWarningMessage(`${picked.set.name} was found damaged by its last verification; a damaged set is not copied off-site.`);
        return;
      }
      const name = picked.set.name;
      const ran = await job(profile, `Copy ${name} off-site`, (h, b) => startOffsitePush(h, profile.offsite, name, { breakStaleLock: b }));
      if (ran?.outcome.result === 'succeeded') await deps.tree.loadOffsite(profile);
    }),
    vscode.commands.registerCommand('kadiOps.offsiteCheck', async (arg?: unknown) => {
      const profile = await pickOffsiteHost(deps, nodeArg(arg));
      if (!profile) return;
      const items: (vscode.QuickPickItem & { subset?: string })[] = [
        { label: 'Structure only', description: 'the index, the snapshots and the packs\' headers; no data is read' },
        { label: 'Read 5% of the data', description: 'also downloads and verifies a random 5% of the packs', subset: '5%' },
        { label: 'Read 100% of the data', description: 'downloads and verifies every pack: as long as a full restore', subset: '100%' },
      ];
      const pick = await vscode.window.showQuickPick(items, { title: `Check the off-site repository of ${profile.name}`, placeHolder: profile.offsite.repository });
      if (!pick) return;
      await job(profile, `Off-site check${pick.subset ? ` (reading ${pick.subset} of the data)` : ''}`, (h, b) => startOffsiteCheck(h, profile.offsite, pick.subset, { breakStaleLock: b }));
    }),
    vscode.commands.registerCommand('kadiOps.offsiteForget', async (arg?: unknown) => {
      const profile = await pickOffsiteHost(deps, nodeArg(arg));
      if (!profile) return;
      const policy = { ...(profile.offsite.keep ?? {}) };
      if (!(['keepLast', 'keepDaily', 'keepWeekly', 'keepMonthly'] as const).some((k) => policy[k] !== undefined)) {
        await editHostsOffer(`${profile.name} has no off-site retention: set "offsite": { "keep": { "keepDaily": 7, "keepMonthly": 12 } } in its profile.`);
        return;
      }
      const dry = await job(profile, 'Off-site forget (dry run)', (h, b) => startOffsiteForget(h, profile.offsite, policy, { dryRun: true, breakStaleLock: b }));
      if (!dry || dry.outcome.result !== 'succeeded') return;
      const plan = forgetPlanLines(dry.log);
      if (plan.forget.length === 0) {
        void vscode.window.showInformationMessage(`Off-site retention of ${profile.name} keeps all ${plan.keep.length} of its snapshots.`);
        return;
      }
      const ok = await vscode.window.showWarningMessage(
        `Forget ${plan.forget.length} off-site snapshot(s) of ${profile.name} and prune the repository?`,
        { modal: true, detail: `${plan.forget.join('\n')}\n\n${plan.keep.join('\n')}\n\nPolicy ${JSON.stringify(policy)}; snapshots of other hosts are never touched.` },
        'Forget',
      );
      if (ok !== 'Forget') return;
      // Exactly what was confirmed: the host forgets no snapshot the dry run did not name.
      const only = forgetIds(plan.forget);
      const ran = await job(profile, 'Off-site forget', (h, b) => startOffsiteForget(h, profile.offsite, policy, { breakStaleLock: b, only }));
      if (ran?.outcome.result === 'succeeded') await deps.tree.loadOffsite(profile);
    }),
    vscode.commands.registerCommand('kadiOps.offsiteRestore', async (arg?: unknown) => {
      const node = nodeArg(arg);
      const source = await pickOffsiteHost(deps, node);
      if (!source) return;
      await guard(source, deps, async () => {
        const snapshot = node?.kind === 'snapshot' ? node.snapshot : await pickSnapshot(source);
        if (!snapshot) return;
        const setName = snapshot.set;
        if (!setName) {
          void vscode.window.showWarningMessage(`Snapshot ${snapshot.short} has no set tag: it was not made by Kadi Ops and is not restored from here.`);
          return;
        }
        const others = deps.tree.profiles().filter((p) => p.name !== source.name);
        const pick = await vscode.window.showQuickPick(
          [
            { label: source.name, description: 'this host: its backup directory gets the set back', profile: source as HostProfile },
            ...others.map((p) => ({ label: p.name, description: `another host (${p.ssh.user}@${p.ssh.hostName}): a new host after a disaster`, profile: p })),
          ],
          { title: `Bring ${setName} back from off-site into which host?`, placeHolder: 'The set is restored into its backup directory and verified; Kadi itself is not touched' },
        );
        if (!pick) return;
        const onto = pick.profile;
        if (deps.tree.state(onto.name).overview?.sets.some((s) => s.name === setName)) {
          void vscode.window.showWarningMessage(`${onto.name} has a set ${setName} already; an existing set is never overwritten from off-site.`);
          return;
        }
        if (!(await guard(onto, deps, () => ensurePassword(onto, source, source.offsite)))) return;
        const ran = await job(onto, `Restore ${setName} from off-site`, async (h, b) => startOffsiteRestore(h, await discover(h), source.offsite, snapshot.id, { breakStaleLock: b }));
        if (ran?.outcome.result !== 'succeeded') return;
        await deps.tree.load(onto);
        const set = deps.tree.state(onto.name).overview?.sets.find((s) => s.name === setName);
        if (!set) return;
        const c = await vscode.window.showInformationMessage(`${setName} is back on ${onto.name}, verified against its manifest. Restore Kadi from it now (the guarded restore, with its plan)?`, 'Restore…');
        if (c) await vscode.commands.executeCommand('kadiOps.restore', { kind: 'set', profile: onto, set } satisfies ModelNode);
      });
    }),
  ];
}
