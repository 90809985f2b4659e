/** The CLI's verbs: each declares its arguments and options (args.ts), takes a context and returns the process exit status. */
import { databaseLabel, discover, type HostFacts } from '../kadi/discovery';
import { checkPrerequisites, formatPrerequisites, missingFeatures } from '../kadi/prerequisites';
import { privilegedCommands, scheduleUnitBase, sudoersSnippet } from '../config/sudoers';
import type { HostProfile } from '../config/types';
import { hostOverview } from '../backup/backupSets';
import { couldNotRunText, installSchedule, lastScheduledJobResult, lastScheduledRunCouldNotRun, lastScheduledRunFailed, removeSchedule, rootScript, scheduleStatus, scheduleUnits, staleHours } from '../backup/schedule';
import { setState, stateLabel } from '../backup/setState';
import { clockNote, hostNow, newestGoodSet } from '../backup/manifest';
import { formatAge, formatBytes } from '../core/format';
import { UntrustedAgentError } from '../remote/agent';
import { CancelledError, HostKeyChangedError } from '../ssh/errors';
import { UsageError } from './args';
import { CliConfigError, HOST_ARG, pickProfile, type CliCommand, type CliContext } from './context';
import { jobCommands } from './jobCommands';
import { offsiteCommands } from './offsiteCommands';
import { restoreCommands } from './restoreCommands';

function printFacts(ctx: CliContext, f: HostFacts): void {
  const rows: [string, string][] = [
    ['Host', `${f.profile} (hostname ${f.hostname ?? '?'}, running as ${f.remoteUser ?? '?'})`],
    ['Kadi version', f.kadiVersion ?? 'unknown'],
    ['Schema revision', f.alembicRevision ?? 'unknown'],
    ['PostgreSQL server', f.pg.serverVersionNum ? `${f.pg.serverMajor} (${f.pg.serverVersionNum})` : `unreachable${f.pg.error ? ': ' + f.pg.error : ''}`],
    ['pg_dump', f.pg.pgDump ?? 'none matching the server'],
    ['Database', databaseLabel(f.database)],
    ['STORAGE_PATH', f.storagePath || 'not set'],
    ['MISC_UPLOADS_PATH', f.uploadsPath || 'not set'],
    ['Backup directory', `${f.backupDir.path} (${f.backupDir.exists ? (f.backupDir.freeBytes === undefined ? 'unknown' : formatBytes(f.backupDir.freeBytes)) + ' free' : 'missing'})`],
    ['Tools', Object.entries(f.tools).map(([t, ok]) => (ok ? t : `no ${t}`)).join(', ')],
  ];
  for (const [k, v] of rows) ctx.out(`${k.padEnd(18)} ${v}`);
  if (f.problems.length > 0) {
    ctx.out('');
    ctx.out('Problems:');
    for (const p of f.problems) ctx.out(`  - ${p}`);
  }
}

export const commands: Record<string, CliCommand> = {
  hosts: {
    args: [],
    options: [],
    summary: 'list the configured hosts',
    async run(ctx) {
      if (ctx.json) ctx.out(JSON.stringify(ctx.profiles.map((p) => ({ name: p.name, ssh: `${p.ssh.user}@${p.ssh.hostName}:${p.ssh.port}`, runAs: p.runAs, backupDir: p.backupDir })), null, 2));
      else for (const p of ctx.profiles) ctx.out(`${p.name.padEnd(20)} ${p.ssh.user}@${p.ssh.hostName}:${p.ssh.port}  ${p.runAs === 'sudo' ? `(sudo -u ${p.kadi.user}) ` : ''}${p.backupDir}`);
      return 0;
    },
  },
  check: {
    args: [HOST_ARG],
    options: [],
    summary: 'connect, verify the host key, discover Kadi, PostgreSQL, paths and free disk, and check every prerequisite per feature (✓/✗ with the fix)',
    async run(ctx) {
      const profile = pickProfile(ctx, ctx.positionals[0]);
      const host = await ctx.pool.get(profile, ctx.signal);
      const d = await discover(host);
      const { facts } = d;
      const prereq = await checkPrerequisites(host, d);
      if (ctx.json) ctx.out(JSON.stringify({ ...facts, prerequisites: prereq.features }, null, 2));
      else {
        printFacts(ctx, facts);
        ctx.out('');
        for (const l of formatPrerequisites(prereq)) ctx.out(l);
      }
      // Optional features (deep verification, schedules) that cannot run do not fail the check.
      return facts.problems.length === 0 && missingFeatures(prereq).length === 0 ? 0 : 1;
    },
  },
  sudoers: {
    args: [HOST_ARG],
    options: [],
    summary: 'print the exact sudoers rules the host needs (its services stop/start, the Redis restore), and nothing more',
    async run(ctx) {
      const profile = pickProfile(ctx, ctx.positionals[0]);
      const text = sudoersSnippet(profile);
      if (ctx.json) {
        // The file as it is to be installed, and each privileged command as its words.
        const commands = privilegedCommands(profile).map((r) => ({ runAs: r.runAs, argv: r.argv }));
        ctx.out(JSON.stringify({ host: profile.name, user: profile.kadi.user, file: '/etc/sudoers.d/kadi-ops', text, commands }, null, 2));
      } else ctx.out(text.trimEnd());
      return 0;
    },
  },
  schedule: {
    args: [HOST_ARG],
    options: [
      { name: 'remove', type: 'boolean', description: 'disable the timers and remove every unit of this host\'s schedule (system units: with --root-script)' },
      { name: 'show', type: 'boolean', description: 'print the units the profile\'s schedule makes, and change nothing on the host' },
      { name: 'root-script', type: 'boolean', description: 'print the script root runs on the host to install (with --remove: remove) the system units; read it, then: ... | ssh root@HOST sh' },
    ],
    summary: "install or update the host's own schedule (a systemd timer and service running the profile's plan: backup, quick verify, retention, monitoring), or remove it",
    async run(ctx) {
      const profile = pickProfile(ctx, ctx.positionals[0]);
      if (ctx.args.flag('remove') && ctx.args.flag('show')) throw new UsageError('Give --remove or --show, not both.');
      if (ctx.args.flag('show') && ctx.args.flag('root-script')) throw new UsageError('Give --show or --root-script, not both.');
      if (!ctx.args.flag('remove') && !profile.schedule) {
        throw new UsageError(`${profile.name} has no schedule: add "schedule": { "calendar": "*-*-* 02:30:00", "verify": "quick", "retention": { "keepDaily": 7 } } to its profile.`);
      }
      const host = await ctx.pool.get(profile, ctx.signal);
      const asRoot = (remove: boolean): void =>
        ctx.err(
          `${profile.name}'s schedule uses system units, which are root's to ${remove ? 'remove' : 'install'} (a unit file the Kadi user could write would run anything as root). ` +
            `Read the script, then run it on the host as root:\n  kadi-ops schedule ${profile.name}${remove ? ' --remove' : ''} --root-script | ssh root@${profile.ssh.hostName} sh\n` +
            `${remove ? '' : `then check with: kadi-ops schedule ${profile.name}`}`.trimEnd(),
        );
      if (ctx.args.flag('root-script')) {
        process.stdout.write(await rootScript(host, profile, ctx.args.flag('remove')));
        return 0;
      }
      if (ctx.args.flag('remove')) {
        const r = await removeSchedule(host);
        if (r.needsRoot) {
          asRoot(true);
          return 1;
        }
        ctx.err(`The schedule of ${profile.name} is removed: no timer or unit of it is left.`);
        return 0;
      }
      if (ctx.args.flag('show')) {
        const units = await scheduleUnits(host, profile);
        if (ctx.json) ctx.out(JSON.stringify(units, null, 2));
        else for (const [name, text] of Object.entries(units)) ctx.out(`# ${name}\n${text}`);
        return 0;
      }
      const r = await installSchedule(host, profile);
      if (r.needsRoot) {
        if (ctx.json) ctx.out(JSON.stringify({ needsRoot: true, differs: r.differs, stale: r.stale }, null, 2));
        for (const n of r.differs) ctx.err(`not installed as the plan needs it: ${n}`);
        for (const n of r.stale) ctx.err(`left over from an earlier schedule of this backup directory: ${n}`);
        asRoot(false);
        return 1;
      }
      const status = await scheduleStatus(host);
      if (ctx.json) ctx.out(JSON.stringify({ units: r.units, status }, null, 2));
      else {
        for (const u of r.units) ctx.out(`installed ${u}`);
        ctx.out(`next backup: ${r.nextBackup ?? status.next ?? '?'}${r.nextVerify ? `; next deep verification: ${r.nextVerify}` : ''}`);
      }
      return 0;
    },
  },
  status: {
    args: [{ name: '[<host>…]', required: false, variadic: true, description: 'hosts to report on (default: every configured host)' }],
    options: [],
    summary: 'one line per host: newest good set and its age, its state, the schedule and its last run; exit status 1 when any host is stale, failed, unreachable, untrusted (host key or agent) or has no schedule',
    async run(ctx) {
      // Each host once; none configured is an error of the configuration, never "all good" (exit 0) to a monitor.
      const names = ctx.positionals.length > 0 ? [...new Set(ctx.positionals)] : ctx.profiles.map((p) => p.name);
      if (names.length === 0) throw new CliConfigError('No hosts are configured: `kadi-ops status` has nothing to report on (add hosts to the configuration).');
      const rows = await Promise.all(names.map((n) => hostStatus(ctx, pickProfile(ctx, n))));
      if (ctx.json) ctx.out(JSON.stringify(rows, null, 2));
      else {
        ctx.out(['HOST', 'NEWEST GOOD SET', 'AGE', 'STATE', 'SCHEDULE', 'LAST SCHEDULED RUN', 'VERDICT'].join('\t'));
        for (const r of rows) ctx.out([r.host, r.newest ?? '-', r.age ?? '-', r.state ?? '-', r.schedule, r.lastRun ?? '-', r.verdict + (r.why ? `: ${r.why}` : '')].join('\t'));
        for (const r of rows) if (r.clock) ctx.err(`Note: on ${r.host}, ${r.clock}.`);
      }
      return rows.every((r) => r.verdict === 'ok') ? 0 : 1;
    },
  },
  ...jobCommands,
  ...restoreCommands,
  ...offsiteCommands,
};

interface StatusRow {
  host: string;
  newest?: string;
  age?: string;
  state?: string;
  schedule: string;
  lastRun?: string;
  verdict: 'ok' | 'stale' | 'failed' | 'no schedule' | 'could not run' | 'unreachable' | 'untrusted';
  why?: string;
  /** The host's clock when it is minutes off this machine's (clockNote). */
  clock?: string;
}

/** One host's row for `status`: what the tree's host row and the status bar say, as text. */
async function hostStatus(ctx: CliContext, profile: HostProfile): Promise<StatusRow> {
  let overview;
  try {
    overview = await hostOverview(await ctx.pool.get(profile, ctx.signal));
  } catch (e) {
    if (e instanceof CancelledError) throw e; // Ctrl-C: the command ends (130), no host is "unreachable"
    // A changed host key or an agent someone else wrote is a security alert, not a host that is down.
    const untrusted = e instanceof HostKeyChangedError || e instanceof UntrustedAgentError;
    return { host: profile.name, schedule: '?', verdict: untrusted ? 'untrusted' : 'unreachable', why: (e as Error).message.split('\n')[0] };
  }
  const s = overview.schedule;
  // The sets' times are the host's clock's: judged by it.
  const now = hostNow(overview).getTime();
  const good = newestGoodSet(overview.sets, new Date(now));
  const ageH = good ? (now - good.time.getTime()) / 3600_000 : undefined;
  const row: StatusRow = {
    host: profile.name,
    ...(good ? { newest: good.name, age: formatAge(now - good.time.getTime()), state: stateLabel(setState(good.verify)) } : {}),
    schedule: s?.state === 'installed' ? `${s.calendar}${s.next ? ` (next ${s.next})` : ''}` : s?.state === 'stored' ? `${s.calendar} (not installed)` : 'none',
    ...(s?.lastJob ? { lastRun: `${s.lastJob.started} ${lastScheduledJobResult(s)}` } : {}),
    verdict: 'ok',
    ...(clockNote(overview) ? { clock: clockNote(overview) } : {}),
  };
  const limit = staleHours(profile, s);
  if (s?.error) return { ...row, schedule: 'unusable plan', verdict: 'failed', why: `the stored plan cannot be used (${s.error}); a timer installed for it fails every run: store it again (kadi-ops schedule ${profile.name})` };
  if (lastScheduledRunFailed(s)) {
    const why = s?.unit && s.unit.result !== 'success' ? `the last scheduled run (${s.unit.exited}) failed (${s.unit.result}; journalctl -u ${scheduleUnitBase(profile)}-backup.service)` : `the last scheduled run (job ${s?.lastJob?.id}) ended with ${s?.lastJob?.status}`;
    return { ...row, verdict: 'failed', why };
  }
  if (ageH === undefined) return { ...row, verdict: 'stale', why: 'no good backup set' };
  if (ageH > limit) return { ...row, verdict: 'stale', why: `the newest good set is older than ${Math.round(limit)} h` };
  if (!s || s.state !== 'installed') return { ...row, verdict: 'no schedule', why: 'backups happen only when someone starts them (kadi-ops schedule <host>)' };
  const couldNotRun = lastScheduledRunCouldNotRun(s);
  if (couldNotRun) return { ...row, verdict: 'could not run', why: couldNotRunText(couldNotRun) };
  return row;
}
