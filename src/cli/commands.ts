/** The CLI's verbs: each declares its arguments and options (args.ts), takes a context and returns the process exit status. */
import { discover, type HostFacts } from '../kadi/discovery';
import { checkPrerequisites, formatPrerequisites, missingFeatures } from '../kadi/prerequisites';
import { sudoersSnippet } from '../config/sudoers';
import { formatBytes } from '../core/format';
import { HOST_ARG, pickProfile, type CliCommand, type CliContext } from './context';
import { jobCommands } from './jobCommands';
import { restoreCommands } from './restoreCommands';

function printFacts(ctx: CliContext, f: HostFacts): void {
  const rows: [string, string][] = [
    ['Host', `${f.profile} (hostname ${f.hostname ?? '?'}, running as ${f.remoteUser ?? '?'})`],
    ['Kadi version', f.kadiVersion ?? 'unknown'],
    ['Schema revision', f.alembicRevision ?? 'unknown'],
    ['PostgreSQL server', f.pg.serverVersionNum ? `${f.pg.serverMajor} (${f.pg.serverVersionNum})` : `unreachable${f.pg.error ? ': ' + f.pg.error : ''}`],
    ['pg_dump', f.pg.pgDump ?? 'none matching the server'],
    ['Database', `${f.database.user}@${f.database.host}:${f.database.port}/${f.database.name}`],
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
      const host = await ctx.pool.get(profile);
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
      ctx.out(sudoersSnippet(pickProfile(ctx, ctx.positionals[0])).trimEnd());
      return 0;
    },
  },
  ...jobCommands,
  ...restoreCommands,
};
