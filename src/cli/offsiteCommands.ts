/** `kadi-ops offsite ACTION <host> …`: off-site copies of backup sets in a restic repository (src/offsite). */
import { listSets } from '../backup/backupSets';
import { hostNow, latestSet } from '../backup/manifest';
import type { HostProfile } from '../config/types';
import type { PlanOffsite, PlanRetentionRules } from '../core/plan';
import type { RemoteHost } from '../remote/remoteHost';
import { discover } from '../kadi/discovery';
import {
  backendCredentials,
  connectOffsite,
  listOffsite,
  newRepositoryPassword,
  offsiteOf,
  startOffsiteCheck,
  startOffsiteForget,
  startOffsitePush,
  startOffsiteRestore,
} from '../offsite/offsite';
import { UsageError, type OptionSpec } from './args';
import { BREAK_STALE_LOCK, pickProfile, intFlag, type CliCommand, type CliContext } from './context';
import { attach } from './jobCommands';

/** Where the operator gives the repository password to init (an existing repository) and to a disaster recovery. */
export const PASSWORD_VARIABLE = 'KADI_OPS_OFFSITE_PASSWORD';

const ACTIONS = ['init', 'push', 'list', 'check', 'forget', 'restore'] as const;
type Action = (typeof ACTIONS)[number];

const n = (name: string, description: string): OptionSpec => ({ name, type: 'string', value: 'N', description });

function forgetPolicy(ctx: CliContext, profile: HostProfile): PlanRetentionRules {
  const given: PlanRetentionRules = { keepLast: intFlag(ctx, 'keep-last'), keepDaily: intFlag(ctx, 'keep-daily'), keepWeekly: intFlag(ctx, 'keep-weekly'), keepMonthly: intFlag(ctx, 'keep-monthly'), minKeep: intFlag(ctx, 'min-keep', 1) };
  const anyGiven = Object.values(given).some((v) => v !== undefined);
  return anyGiven ? given : { ...(profile.offsite?.keep ?? {}) };
}

export const offsiteCommands: Record<string, CliCommand> = {
  offsite: {
    args: [
      { name: '<action>', required: true, description: `one of ${ACTIONS.join(', ')}`, missing: `Name an action: kadi-ops offsite ${ACTIONS.join('|')} <host> ….` },
      { name: '<host>', required: true, description: "a host profile's name (`kadi-ops hosts` lists them)" },
      { name: '[<set|latest|snapshot>]', required: false, description: 'push: a set or latest; restore: a snapshot id (`kadi-ops offsite list <host>`)' },
    ],
    options: [
      { name: 'to-host', type: 'string', value: 'HOST', description: 'restore: bring the set back into this other host\'s backup directory (a new host after a disaster)' },
      { name: 'read-data-subset', type: 'string', value: 'N%', description: 'check: also read and verify this share of the data (5% or n/t such as 1/10)' },
      { name: 'dry-run', type: 'boolean', description: 'forget: say which snapshots would be forgotten, and forget none' },
      n('keep-last', 'forget: keep this many newest snapshots'),
      n('keep-daily', 'forget: keep the newest snapshot of each of this many days'),
      n('keep-weekly', 'forget: keep the newest snapshot of each of this many ISO weeks'),
      n('keep-monthly', 'forget: keep the newest snapshot of each of this many months'),
      n('min-keep', 'forget: never keep fewer snapshots than this'),
      BREAK_STALE_LOCK,
    ],
    summary:
      `off-site copies in the profile's restic repository: init (create or join it; the password is printed once, or taken from $${PASSWORD_VARIABLE}), ` +
      'push <set|latest>, list, check [--read-data-subset N%], forget (the profile\'s offsite.keep or --keep-*), restore <snapshot> [--to-host HOST]',
    async run(ctx) {
      const action = ctx.positionals[0] as Action;
      if (!ACTIONS.includes(action)) throw new UsageError(`Unknown offsite action "${ctx.positionals[0]}": one of ${ACTIONS.join(', ')}.`);
      const profile = pickProfile(ctx, ctx.positionals[1]);
      const o = offsiteOf(profile);
      const target = ctx.positionals[2];
      const breakStaleLock = ctx.args.flag('break-stale-lock');
      if ((action === 'push' || action === 'restore') && !target) {
        throw new UsageError(action === 'push' ? 'Name the set to push (see `kadi-ops list <host>`), or "latest".' : 'Name the snapshot to restore (see `kadi-ops offsite list <host>`).');
      }
      if (!(action === 'push' || action === 'restore') && target) throw new UsageError(`offsite ${action} takes no third argument (got "${target}").`);
      // Disaster recovery onto another host: the lost host's profile names the repository, and the
      // lost host itself is not asked for anything (it may be gone).
      const toName = action === 'restore' ? ctx.args.value('to-host') : undefined;
      if (toName) return restoreOnto(ctx, o, await ctx.pool.get(pickProfile(ctx, toName), ctx.signal), target as string, breakStaleLock);
      const host = await ctx.pool.get(profile, ctx.signal);
      switch (action) {
        case 'init': {
          const given = process.env[PASSWORD_VARIABLE];
          const password = given ?? newRepositoryPassword();
          const r = await connectOffsite(host, o, { password, credentials: backendCredentials(process.env, o.repository), create: true });
          if (ctx.json) ctx.out(JSON.stringify({ ...r, ...(given ? {} : { password }) }, null, 2));
          else ctx.out(`${r.created ? 'Created' : 'Joined'} the restic repository ${o.repository} (id ${r.repositoryId.slice(0, 12)}) for ${profile.name}.`);
          if (!given && !ctx.json) {
            ctx.err(
              `The repository password (shown this once; ${profile.name} keeps a copy in a 0600 file of the Kadi user):\n\n  ${password}\n\n` +
                'Keep it apart from the host (a password manager). Without it the off-site copies cannot be read: losing the host and this password loses them.',
            );
          }
          return 0;
        }
        case 'list': {
          const snaps = await listOffsite(host, o);
          if (ctx.json) ctx.out(JSON.stringify(snaps, null, 2));
          else {
            for (const s of snaps) ctx.out(`${s.short}  ${s.time.slice(0, 19).replace('T', ' ')}  set ${s.set ?? '?'}  Kadi ${s.kadiVersion ?? '?'}  made on ${s.hostname}${s.incomplete ? '  INCOMPLETE (not a copy of the set)' : ''}`);
            if (snaps.length === 0) ctx.err(`No off-site snapshots of ${profile.name} in ${o.repository}.`);
          }
          return 0;
        }
        case 'push': {
          const listing = await listSets(host);
          const { sets } = listing;
          const set = target === 'latest' ? latestSet(sets, hostNow(listing)) : sets.find((s) => s.name === target);
          if (!set) throw new UsageError(`No complete backup set "${target}" on ${profile.name}.`);
          return attach(ctx, host, await startOffsitePush(host, o, set.name, { breakStaleLock }));
        }
        case 'check': {
          const subset = ctx.args.value('read-data-subset');
          return attach(ctx, host, await startOffsiteCheck(host, o, subset, { breakStaleLock }));
        }
        case 'forget':
          return attach(ctx, host, await startOffsiteForget(host, o, forgetPolicy(ctx, profile), { dryRun: ctx.args.flag('dry-run'), breakStaleLock }));
        case 'restore':
          return restoreOnto(ctx, o, host, target as string, breakStaleLock);
      }
    },
  },
};

/** The snapshot brought back into ONTO's backup directory as the set it was. */
async function restoreOnto(ctx: CliContext, o: PlanOffsite, onto: RemoteHost, snapshot: string, breakStaleLock: boolean): Promise<number> {
  const password = process.env[PASSWORD_VARIABLE];
  // A host that lost its backup directory (or a new one) has no password: given, it is connected first.
  if (password) await connectOffsite(onto, o, { password, credentials: backendCredentials(process.env, o.repository), create: false });
  const code = await attach(ctx, onto, await startOffsiteRestore(onto, await discover(onto), o, snapshot, { breakStaleLock }));
  if (code === 0) ctx.err(`The set is back in ${onto.profile.backupDir} on ${onto.profile.name}, verified against its manifest. Restore from it as from any set: kadi-ops restore ${onto.profile.name} <set>.`);
  return code;
}
