/** The PostgreSQL database on the client: plan part, restore preflight and plan lines. */
import { compareKadiVersions, parseKadiVersion } from '../kadi/outputParsers';
import { parseListing, validateAgainst } from '../pgtoc/listing';
import { checkAgent, parseKeyValues } from '../remote/agent';
import { formatDbDecisions, parseGrantees, planDbRestore } from '../restore/dbPlan';
import type { ClientComponent } from './types';

export const database: ClientComponent = {
  name: 'db',
  planKey: 'database',
  restoredByDefault: true,
  planPart: (p) => ({ dumpCompression: p.dumpCompression }),

  checkSet({ set, d, host, blockers }) {
    const m = set.manifest;
    const f = d.facts;
    const setV = m.kadiVersion ? parseKadiVersion(m.kadiVersion) : undefined;
    const hostV = f.kadiVersion ? parseKadiVersion(f.kadiVersion) : undefined;
    if (setV && hostV && compareKadiVersions(setV, hostV) > 0) {
      blockers.push(`Set ${set.name} was made by Kadi ${setV.text}, newer than the installed ${hostV.text}: the schema cannot be downgraded. Upgrade Kadi first.`);
    }
    // The host's pg_restore (matching its server) must read the dump.
    const dumpMajor = m.postgres.serverMajor;
    if (!f.pg.pgRestore) blockers.push(`No pg_restore for PostgreSQL ${f.pg.serverMajor ?? '?'} on ${host.profile.name}.`);
    if (dumpMajor !== undefined && f.pg.serverMajor !== undefined && dumpMajor > f.pg.serverMajor) {
      blockers.push(`The dump comes from PostgreSQL ${dumpMajor}, the server is ${f.pg.serverMajor}: restoring into an older major is not supported.`);
    }
  },

  async decide(ctx) {
    const { host, set, d, probe, opts, blockers, warnings, decided } = ctx;
    const f = d.facts;
    // A selective restore: the listing must only enable, disable or reorder the dump's entries.
    if (opts.listing !== undefined) {
      const toc = (await checkAgent(host, `Reading the table of contents of ${set.name}`, 'set-toc', [host.profile.backupDir, set.name])).stdout;
      const tocProblems = validateAgainst(parseListing(opts.listing), parseListing(toc));
      for (const p of tocProblems.slice(0, 20)) blockers.push(`Listing line ${p.line}: ${p.message}`);
      decided.listing = opts.listing;
    }
    // The database's objects as they really are: extensions a superuser installed, objects of other
    // roles, schemas that still hold objects. Decided per TOC entry before anything runs.
    if (!probe.dbError && f.pg.pgRestore) {
      if (!probe.db) {
        blockers.push(`The database's objects could not be read (${probe.dbObjectsError ?? 'no answer'}); the restore cannot tell which objects it may replace.`);
      } else {
        const tocVerbose = (await checkAgent(host, `Reading the dependencies of ${set.name}`, 'set-toc', [host.profile.backupDir, set.name, f.pg.pgRestore])).stdout;
        const grantees = parseGrantees(parseKeyValues((await checkAgent(host, `Reading the privileges of ${set.name}`, 'set-grantees', [host.profile.backupDir, set.name, f.pg.pgRestore])).stdout).get('grantees'));
        decided.db = planDbRestore(tocVerbose, probe.db, { listing: opts.listing, clean: !ctx.empty, database: f.database.name, grantees });
        blockers.push(...decided.db.blockers);
        warnings.push(...decided.db.warnings);
      }
    }
    if (opts.jobs) warnings.push(`--jobs ${opts.jobs} is not used: the database is restored in one transaction, so that a failure changes nothing.`);
  },

  planLines(p) {
    const how = p.database.mode === 'plain' ? 'empty: plain pg_restore' : `${p.database.relations} relations: pg_restore --clean --if-exists`;
    return [`  database           ${how}, in one transaction (a failure changes nothing)${p.listing ? ', selective (-L listing)' : ''}`, ...(p.db ? formatDbDecisions(p.db.decisions) : [])];
  },
};
