"""restore key=value... (a job): the backup verb's options (for the safety backup) plus set, components
(comma list of db,storage,uploads,redis,config), safety (yes|no), jobs, listing (yes: the TOC listing
follows the password on stdin), services (space separated), overwrite_config (yes|no), db_upgrade
(yes|no), clean, no_owner, kadi_cli, redis_service.

One job holds the instance lock from the safety backup to the last check, so no backup, verify or
second restore can interleave with it. Every step records its duration; problems that need the
operator are collected; both end up in the summary. The components restore in their steps (the
database, then the trees, once the services are stopped); then the guide's steps:
`kadi db upgrade`, the services started, `kadi search reindex`, the orphaned indices, `kadi files check`.

Also the restore's read-only verbs: set-toc, restore-probe and config-diff.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

from . import pg, plan, services
from .common import Options, Usage, path_conflicts, check_set_name, die, disk_kb, fail, failing_on_full_disk, full_disk, have, one_line, out, user_name
from .components import Context, all_components, config, load
from .jobs import Job, agent_argv
from .sets import mark_pinned, unmark_pinned
from .kadi import Kadi
from .steps import Steps


def _context(argv):
    job = Job()
    o = plan.job_options(argv, job)
    steps = Steps(job)
    ctx = Context(o, job, steps=steps)
    check_set_name(o['set'])
    ctx.set_dir = os.path.join(o['backup_dir'], o['set'])
    ctx.components = [c for c in o['components'].split(',') if c]
    return ctx


def has(ctx, name):
    return name in ctx.components


def run(argv):
    ctx = _context(argv)
    o, job, steps, d = ctx.opts, ctx.job, ctx.steps, ctx.set_dir
    if not os.path.isfile(os.path.join(d, 'manifest.json')):
        fail('set %s has no manifest; it is not a complete backup' % o['set'])
    conflicts = path_conflicts({'STORAGE_PATH': o['storage_path'], 'MISC_UPLOADS_PATH': o['uploads_path'], 'the backup directory': o['backup_dir']})
    if conflicts:
        # rsync --delete into one of them would delete the other: the backup sets, the safety set included.
        fail('refusing to restore: %s' % '; '.join(conflicts))
    steps.begin()
    job.write('components', ','.join(ctx.components))  # for died_note, should the job be killed outright
    out('restoring set %s (components: %s)' % (o['set'], o['components']))
    secrets = plan.job_input(job)
    load('redis').use_auth(secrets['redis'])
    if has(ctx, 'redis'):
        # Checked again before anything changes: Redis may have changed since the preflight.
        refused, unknown = load('redis').judge(o)
        if refused:
            fail(refused + '; nothing was changed')
        if unknown:
            steps.attention(unknown)
    # The set's trees as their lists say, before anything changes: the database is restored
    # before the trees, and a tree refused then would leave the instance half restored.
    for n in ctx.components:
        load(n).restore_check(ctx)
    _check_read_whole(ctx)
    if o.yes('listing'):
        job.write('listing', secrets['listing'])
    # The services first: the safety backup then holds everything written until Kadi stopped.
    steps.run('stop-services', services.stop, job, o.words('services'))
    if o.yes('safety'):
        steps.run('safety-backup', safety_backup, ctx, argv)
    else:
        steps.skip('safety-backup', 'opted out')
    pg.make_passfile(job.dir, o['pg_host'], o['pg_port'], o['pg_db'], o['pg_user'], secrets['password'], secrets['pg_params'])
    ctx.conn = pg.Conn(o['psql'], o['pg_host'], o['pg_port'], o['pg_user'], o['pg_db'])

    trees = [load(n) for n in ('storage', 'uploads') if has(ctx, n)]

    def restore_files():
        for t in trees:
            t.restore(ctx)

    db = load('database') if has(ctx, 'db') else None
    # The database first, then the trees. The database step is one transaction: when it fails, it
    # changed nothing, and the trees, not touched yet, are as they were too - the instance is as
    # before. (Side by side, a failed database step left the trees already the set's while the
    # database's rows still named the files the sync had removed.) When the files step fails, the
    # database is the set's and the trees part way: cleanup says so and keeps Kadi stopped, and
    # running the restore again completes it.
    if db:
        steps.run('database', db.restore, ctx)
    else:
        steps.skip('database')
    if trees:
        steps.run('files', restore_files)
    else:
        steps.skip('files')
    if has(ctx, 'redis'):
        steps.run('redis', load('redis').restore, ctx)
    else:
        steps.skip('redis')
    if has(ctx, 'config') and o.yes('overwrite_config'):
        steps.run('config', config.restore, ctx)
    elif has(ctx, 'config'):
        steps.skip('config', 'not overwritten without confirmation')
    kadi = Kadi(o, steps)
    if o.yes('db_upgrade'):
        steps.run('db-upgrade', kadi.db_upgrade)
    else:
        steps.skip('db-upgrade', 'same Kadi version and revision')
    steps.run('start-services', lambda: services.start(job, steps.attention) or fail('a service did not start again'))
    # The search indices mirror the database: rebuilt only when it was replaced.
    if db:
        steps.run('reindex', kadi.reindex)
        steps.run('indices', kadi.indices)
    else:
        steps.skip('reindex', 'database not restored')
    steps.run('files-check', kadi.files_check)
    steps.summary('restore of ' + o['set'])
    _release_safety_pin(ctx)
    job.write('summarised', '')
    if os.path.exists(job.path('failed')):
        out('restore_result=failed')
        return 1
    out('restore_result=' + ('attention' if job.read('attention').strip() else 'ok'))


# What each component's restore reads whole from the set, by the manifest's artifact names.
READ_WHOLE = {'db': ('db.dump',), 'redis': ('redis.rdb',), 'config': ('config.tar.gz',),
              'storage': ('storage.tar.zst', 'storage.tar.gz'), 'uploads': ('uploads.tar.zst', 'uploads.tar.gz')}


def _check_read_whole(ctx):
    """The artifacts the restore reads whole (the dump, Redis' snapshot, the configuration, a tree's
    archive) hashed again against the manifest before anything changes. The preflight may rely on
    a verification up to a day old, and a byte changed since in an uncompressed dump would be
    restored as it is: pg_restore sees nothing wrong. (About 0.6 s per GB here; the dump is read
    again by pg_restore, from the page cache.) A tree's files are checked by its lists
    (restore_check) and that verification: reading them all again is what `verify` does."""
    from .common import Progress, sha256  # an archive may be hundreds of GB: its progress is shown
    try:
        with open(os.path.join(ctx.set_dir, 'manifest.json'), encoding='utf-8') as f:
            artifacts = {a.get('name'): a for a in json.load(f).get('artifacts', []) if isinstance(a, dict)}
    except (OSError, ValueError, AttributeError, TypeError) as e:
        fail('refusing to restore: the set\'s manifest cannot be read (%s); nothing was changed' % one_line(e))
    for n in ctx.components:
        for name in READ_WHOLE.get(n, ()):
            a = artifacts.get(name)
            if a is None:
                continue
            p = os.path.join(ctx.set_dir, name)
            out('checking %s against the manifest (sha256)' % name)
            try:
                why = 'its size differs' if os.path.getsize(p) != a.get('size') else \
                    'its sha256 differs' if sha256(p, Progress('restore-check', a['size'])) != a.get('sha256') else None
            except OSError as e:
                why = 'it cannot be read: %s' % (e.strerror or e)
            if why:
                fail('refusing to restore: the set\'s %s is not what its manifest says (%s): it changed since the set was '
                     'made or last verified. Verify the set; nothing was changed' % (name, why))


def safety_backup(ctx, argv):
    """The backup verb in a fresh agent process inside this job (JOB_DIR and JOB_ID are in its
    environment), so it shares this job's lock instead of waiting for it."""
    job = ctx.job
    # pre_restore: a copy of the instance as it is, also of a tree that is empty now (a disk replaced
    # before this restore), which a backup would refuse (trees.backup_check).
    p = subprocess.Popen([*agent_argv(), 'job-verb', 'backup', *argv, 'pre_restore=yes'], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    # Its output is kept in the job (safety_set reads the set's name there): a full disk there is
    # said as such once the backup has ended (its output still shown to its end), never a traceback.
    written = None
    try:
        f = open(job.path('safety.out'), 'wb')
    except OSError as e:
        f, written = None, e
    for line in p.stdout:
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
        if f is not None:
            try:
                f.write(line)
            except OSError as e:
                written = e
                try: f.close()
                except OSError: pass
                f = None
    p.stdout.close()
    if f is not None:
        try:
            f.close()
        except OSError as e:
            written = e
    if p.wait() != 0:
        fail('the safety backup failed; nothing was changed')
    if written is not None:
        fail('the safety backup\'s output could not be kept in the job: %s; nothing was changed'
             % (full_disk(written, job.dir) or one_line(written)))
    name = safety_set(job)
    if not name:
        fail('the safety backup printed no set name')
    with failing_on_full_disk('marking the safety set %s failed; nothing was changed' % name, ctx.opts['backup_dir']):
        open(os.path.join(ctx.opts['backup_dir'], name, '.pre-restore'), 'w').close()
        # Pinned until the restore has ended without leaving the instance half done (then released):
        # should the job be killed outright (its cleanup never runs: a reboot, the OOM killer), the one
        # whole state from before stays out of retention's reach.
        job.write('safety-pinned', name)  # first: a kill between the two never leaves a pin nobody knows of
        mark_pinned(ctx.opts['backup_dir'], name)
    out('safety_set=' + name)


def _release_safety_pin(ctx):
    """The pin safety_backup put on the pre-restore set, taken off (the set is an ordinary one again)."""
    name = ctx.job.read('safety-pinned').strip()
    if not name:
        return
    unmark_pinned(ctx.opts['backup_dir'], name)
    ctx.job.remove('safety-pinned')


def half_done(ctx):
    return half_done_in(ctx.job, ctx.components)


def half_done_in(job, components):
    """What a restore (its JOB, restoring COMPONENTS) that ended early left half done, for a person
    ('' when the database and the trees are still of one moment: nothing changed, or all that was
    asked). The database changes only when its one transaction commits (database.restore marks
    that); the trees change from the moment their sync starts."""
    done = {l.split()[0] for l in job.read('steps').splitlines() if l.split()[2:3] == ['ok']}
    db_changed = os.path.exists(job.path('db-committed'))
    db_unknown = os.path.exists(job.path('db-restoring')) and not db_changed and not os.path.exists(job.path('db-rolled-back'))
    trees = 'storage' in components or 'uploads' in components
    if os.path.exists(job.path('running', 'files')):
        return 'the files step failed part way: the trees are partly the set\'s%s' % (
            ', the database is the set\'s' if db_changed else '')
    if db_changed and trees and 'files' not in done:
        return 'the database is the set\'s but the files were not restored (the job ended before the files step)'
    if db_unknown and trees:
        return ('the job ended while pg_restore ran: the database is as it was unless pg_restore had just committed, and the '
                'files were not restored')
    return ''


def unfinished_after_commit(job, o):
    """For a restore that ended (cancelled, failed) after its database step committed and with
    nothing half done: what of the steps that follow the database did not run, and how to run it
    ('' when nothing is left)."""
    if not os.path.exists(job.path('db-committed')) or os.path.exists(job.path('summarised')):
        return ''
    done = {l.split()[0] for l in job.read('steps').splitlines() if l.split()[2:3] == ['ok']}
    todo = []
    if o.yes('db_upgrade') and 'db-upgrade' not in done:
        todo.append('`kadi db upgrade` did not run: Kadi may not work on the set\'s older schema until it does '
                    '(kadi-ops db-upgrade <host>)')
    if 'reindex' not in done:
        todo.append('the search indices were not rebuilt, so search shows what was there before the restore: rebuild '
                    'them (kadi-ops reindex <host>), then remove what an interrupted rebuild left (kadi-ops indices '
                    '<host>, kadi-ops remove-orphans <host>)')
    if not todo:
        return ''
    return 'the restore ended after the database (and the files asked for) were restored from the set; ' + '; '.join(todo)


def died_note(job):
    """For a restore job whose process ended without a status (killed outright, the host restarted:
    its cleanup never ran), what it left, from the marks in its directory: '' when it had changed
    nothing and stopped no service."""
    components = [c for c in job.read('components').strip().split(',') if c]
    half = half_done_in(job, components)
    names = services.stopped(job)
    pinned = job.read('safety-pinned').strip()
    redis_kept = job.read('redis-restoring').strip() if os.path.exists(job.path('redis-restoring')) else None
    if not half and not names and not pinned and redis_kept is None:
        return ''
    parts = []
    if redis_kept is not None:
        parts.append('it was writing the Redis dump, which may be cut short%s' % (
            ': the previous one is kept in %s (write it back as the redis user with Redis stopped)' % redis_kept if redis_kept else ''))
    if half:
        parts.append('%s, so the instance may be inconsistent; restore again (it completes what was done)%s'
                     % (half, ', or restore the pre-restore set %s (pinned, so that retention keeps it)' % pinned if pinned else ''))
    elif pinned:
        parts.append('it left nothing half done; its pre-restore set %s stays pinned until you unpin it (kadi-ops unpin <host> %s)'
                     % (pinned, pinned))
    if names:
        parts.append('the services it stopped (%s) may still be stopped: %s' % (
            ', '.join(names), 'start them only once the instance is whole again' if half or redis_kept is not None
            else 'sudo systemctl start ' + ' '.join(reversed(names))))
    return 'the restore ended without an exit status (killed, or the host restarted): ' + '; '.join(parts)


def safety_set(job):
    """The set the safety backup of this job made, or ''."""
    names = [l[4:] for l in job.read('safety.out').splitlines() if l.startswith('set=')]
    return names[-1] if names else ''


def _settle_db(ctx):
    """A restore ended while pg_restore ran: whether its transaction committed, asked of PostgreSQL
    (database.settle_restored_db) and said, so that what the restore left is told as it is."""
    job, o = ctx.job, ctx.opts
    if not os.path.exists(job.path('db-restoring')):
        return
    pg.use_job_files(job.dir)
    from .components.database import settle_restored_db
    try:
        said = settle_restored_db(job, pg.Conn(o['psql'], o['pg_host'], o['pg_port'], o['pg_user'], o['pg_db']))
    except Exception as e:  # noqa: BLE001 - the rest of the cleanup (Redis, services) matters more
        out('database: could not ask how pg_restore\'s transaction ended: %s' % one_line(e))
        return
    if said == 'committed':
        out("database: pg_restore's transaction had committed as the job ended: the database is the set's")
    elif said == 'rolled back':
        out("database: pg_restore's transaction was rolled back as the job ended: the database is as it was")


def cleanup(argv):
    ctx = _context(argv)
    job, steps = ctx.job, ctx.steps
    _settle_db(ctx)
    half = half_done(ctx)
    redis_note = load('redis').put_back(job, ctx.opts['redis_dump'])
    if redis_note:
        steps.attention(redis_note)
    names = services.stopped(job)
    if half:
        # The database and the trees may now be from different moments: Kadi is not started on
        # them. The pre-restore set is the one whole state from before: pinned, so that a second
        # restore's safety set (of this state) cannot make retention delete it.
        before = safety_set(job)
        if before:
            try:
                mark_pinned(ctx.opts['backup_dir'], before)
            except (OSError, Usage):  # gone, or not writable: said as not pinned, the cleanup goes on
                before = ''
        fix = 'restore again (it completes what was done)' + (
            ', or restore the pre-restore set %s (pinned, so that retention keeps it)' % before if before else '')
        if names:
            steps.attention('the services are left stopped (%s): %s, so the instance may be inconsistent; %s, then start them: '
                            'sudo systemctl start %s' % (', '.join(names), half, fix, ' '.join(reversed(names))))
        else:
            steps.attention('%s, so the instance may be inconsistent: %s' % (half, fix))
    else:
        services.start(job, steps.attention)
        _release_safety_pin(ctx)
        left = unfinished_after_commit(job, ctx.opts)
        if left:
            steps.attention(left)
    # Failed after its own summary (a post-restore check failed): nothing more to say.
    if os.path.exists(job.path('summarised')):
        return 0
    from . import backup
    try:
        backup.cleanup(argv)
    except Exception:  # noqa: BLE001 - the summary below still matters more
        pass
    steps.summary('restore of ' + ctx.opts['set'])
    if safety_set(job):
        out('The state before this restore is in the pre-restore set %s.' % safety_set(job))
    out('restore_result=failed')


# --- read-only verbs -------------------------------------------------------------------------------

def set_toc(argv):
    """set-toc BACKUP_DIR SET [PG_RESTORE]: the dump's table of contents as recorded at backup time
    (pg_restore -l), for validating a selective-restore listing before the job starts. With
    PG_RESTORE, the dump's own TOC read with -v: the same entries plus a "depends on:" line under each
    entry that has dependencies (restore/dbPlan.ts uses them)."""
    bd, name = argv[0], argv[1]
    check_set_name(name)
    if len(argv) > 2 and argv[2]:
        dump = os.path.join(bd, name, 'db.dump')
        if not os.path.isfile(dump):
            die('set %s has no db.dump' % name)
        r = subprocess.run([argv[2], '-l', '-v', dump], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            die('pg_restore -l cannot read the dump of set %s' % name)
        # Names in the dump's encoding, as UTF-8: the probe reads the live names so (pg.py).
        sys.stdout.write(dump_text(r.stdout, dump_encoding(argv[2], dump)))
        sys.stdout.flush()
        return 0
    from .transfer import read_toc
    read_toc([bd, name])


# PostgreSQL's names of the encodings a dump may be in, as Python's codecs. Names in a dump come in
# its encoding; the restore probe reads the live ones in UTF-8 (pg.CLIENT_ENCODING), which is what
# they are compared with. (SQL_ASCII and encodings without a codec: UTF-8, with replacement.)
_PG_CODECS = {'UTF8': 'utf-8', 'LATIN1': 'latin-1', 'LATIN2': 'iso8859-2', 'LATIN3': 'iso8859-3', 'LATIN4': 'iso8859-4',
              'LATIN5': 'iso8859-9', 'LATIN6': 'iso8859-10', 'LATIN7': 'iso8859-13', 'LATIN8': 'iso8859-14',
              'LATIN9': 'iso8859-15', 'LATIN10': 'iso8859-16', 'ISO_8859_5': 'iso8859-5', 'ISO_8859_6': 'iso8859-6',
              'ISO_8859_7': 'iso8859-7', 'ISO_8859_8': 'iso8859-8', 'WIN866': 'cp866', 'WIN874': 'cp874',
              'WIN1250': 'cp1250', 'WIN1251': 'cp1251', 'WIN1252': 'cp1252', 'WIN1253': 'cp1253', 'WIN1254': 'cp1254',
              'WIN1255': 'cp1255', 'WIN1256': 'cp1256', 'WIN1257': 'cp1257', 'WIN1258': 'cp1258', 'KOI8R': 'koi8_r',
              'KOI8U': 'koi8_u', 'EUC_JP': 'euc_jp', 'EUC_JIS_2004': 'euc_jis_2004', 'EUC_KR': 'euc_kr', 'EUC_CN': 'gb2312',
              'SJIS': 'shift_jis', 'SHIFT_JIS_2004': 'shift_jis_2004', 'BIG5': 'big5', 'GBK': 'gbk', 'UHC': 'cp949',
              'GB18030': 'gb18030', 'JOHAB': 'johab'}


def script_encoding(script):
    """The encoding of a script pg_restore wrote (bytes): every one starts with SET client_encoding,
    the dump's; 'UTF8' when it does not say."""
    m = re.search(rb"^SET client_encoding = '([A-Za-z0-9_]+)';", script, re.M)
    return m.group(1).decode('ascii').upper() if m else 'UTF8'


def dump_encoding(pg_restore, dump):
    """The encoding a dump is in: the header of a script of no entries."""
    with tempfile.NamedTemporaryFile('w', suffix='.list') as f:  # an empty listing: only the header
        r = subprocess.run([pg_restore, '-f', '-', '-L', f.name, dump], capture_output=True, stdin=subprocess.DEVNULL)
    return script_encoding(r.stdout)


def dump_text(data, encoding):
    return data.decode(_PG_CODECS.get(encoding, 'utf-8'), 'replace')


_SQL_TOKEN = re.compile(r"""\s+|--[^\n]*|"(?:[^"]|"")*"|'(?:[^']|'')*'|[A-Za-z_][A-Za-z0-9_$]*|.""", re.S)


def grant_roles(sql):
    """The roles the GRANT, REVOKE and ALTER DEFAULT PRIVILEGES statements of SQL (pg_dump's ACL
    entries) name: grantees, revokees, FOR ROLE and GRANTED BY. Tokens, not text: a quoted name may
    hold ' TO ' or a semicolon. A role list is names separated by commas, so a role named like an
    unreserved keyword, which pg_dump leaves unquoted (granted, cascade, role), is a name there.
    PUBLIC is no role."""
    toks = [t for t in _SQL_TOKEN.findall(sql) if not t.isspace() and not t.startswith('--')]
    word = lambda t: t.upper() if t[:1] != '"' else None  # noqa: E731 - unquoted words compare as keywords
    roles = []

    def names_from(i):
        while i < len(toks):
            if word(toks[i]) == 'GROUP' and i + 1 < len(toks):
                i += 1  # TO GROUP name: the old spelling (a role named group is always quoted)
            t = toks[i]
            if t[:1] == '"':
                roles.append(t[1:-1].replace('""', '"'))
            elif re.fullmatch(r'[A-Za-z_][A-Za-z0-9_$]*', t):
                if word(t) != 'PUBLIC':
                    roles.append(t.lower())
            else:
                return i
            if i + 1 < len(toks) and toks[i + 1] == ',':
                i += 2
                continue
            return i + 1
        return i

    i = 0
    while i < len(toks):
        w = word(toks[i])
        if w == 'FOR' and i + 1 < len(toks) and word(toks[i + 1]) in ('ROLE', 'USER'):
            i = names_from(i + 2)
            continue
        if w in ('TO', 'FROM') or (w == 'BY' and i > 0 and word(toks[i - 1]) == 'GRANTED'):
            i = names_from(i + 1)
            continue
        i += 1
    return sorted(set(roles))


def policy_roles(sql):
    """The roles a CREATE POLICY statement (pg_dump's POLICY entry) applies to: its TO list, which
    comes before USING and WITH CHECK (whose expressions may say FROM or TO of their own). PUBLIC is
    no role."""
    toks = [t for t in _SQL_TOKEN.findall(sql) if not t.isspace() and not t.startswith('--')]
    for i, t in enumerate(toks):
        w = t.upper() if t[:1] != '"' else None
        if w in ('USING', 'WITH', ';'):
            return []
        if w == 'TO':
            end = next((j for j in range(i + 1, len(toks)) if toks[j].upper() in ('USING', 'WITH', ';')), len(toks))
            return grant_roles(' '.join(toks[i:end]))
    return []


def entry_roles(pg_restore, dump, descs=('ACL', 'DEFAULT ACL', 'POLICY')):
    """{dumpId: [role...]}: the roles each entry of DESCS in DUMP names (grantees of a privilege
    entry, the roles a policy applies to); None when pg_restore cannot read the dump."""
    toc = subprocess.run([pg_restore, '-l', dump], capture_output=True, text=True, errors='replace', stdin=subprocess.DEVNULL)
    if toc.returncode != 0:
        return None
    kinds = '|'.join(re.escape(d) for d in descs)
    wanted = {}
    for l in toc.stdout.splitlines():
        m = re.match(r'^([0-9]+); [0-9]+ [0-9]+ (%s) ' % kinds, l)
        if m:
            wanted[m.group(1)] = m.group(2)
    found = {}
    if wanted:
        with tempfile.NamedTemporaryFile('w', encoding='utf-8', suffix='.list') as f:
            f.write(''.join(l + '\n' for l in toc.stdout.splitlines() if l.split(';', 1)[0] in wanted))
            f.flush()
            r = subprocess.run([pg_restore, '-v', '-L', f.name, '-f', '-', dump], capture_output=True, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            return None
        # The script of these entries says its encoding itself: no run to ask for it.
        parts = re.split(r'^-- TOC entry ([0-9]+) [^\n]*$', dump_text(r.stdout, script_encoding(r.stdout)), flags=re.M)
        for dump_id, text in zip(parts[1::2], parts[2::2]):
            roles = policy_roles(text) if wanted.get(dump_id) == 'POLICY' else grant_roles(text)
            if roles:
                found[dump_id] = roles
    return found


def set_grantees(argv):
    """set-grantees BACKUP_DIR SET PG_RESTORE: the roles each privilege entry (ACL, DEFAULT ACL) and
    each row security policy (POLICY) of the set's dump names, as one JSON object {dumpId: [role...]}
    on a line `grantees=`: the preflight refuses a restore whose grants or policies name a role the
    server does not have (the statement, and so the restore, would fail part way)."""
    bd, name, pg_restore = argv
    check_set_name(name)
    dump = os.path.join(bd, name, 'db.dump')
    if not os.path.isfile(dump):
        die('set %s has no db.dump' % name)
    found = entry_roles(pg_restore, dump)
    if found is None:
        die('pg_restore cannot read the dump of set %s' % name)
    out('grantees=' + json.dumps(found, separators=(',', ':')))


def probe(argv):
    """restore-probe key=value... (password on stdin): what the preflight needs to know about the live
    side - owners and free space of the trees, whether the database is empty, which services exist."""
    o = Options(argv)
    password = sys.stdin.readline().rstrip('\n')
    load('redis').use_auth_line(sys.stdin.readline())
    params = pg.read_params_line(sys.stdin.readline())
    with tempfile.TemporaryDirectory() as work:
        pg.make_passfile(work, o['pg_host'], o['pg_port'], o['pg_db'], o['pg_user'], password, params)
        ctx = Context(o, conn=pg.Conn(o['psql'], o['pg_host'], o['pg_port'], o['pg_user'], o['pg_db']))
        out('me=' + user_name())
        out(*('path_conflict=' + c for c in path_conflicts({'STORAGE_PATH': o['storage_path'], 'MISC_UPLOADS_PATH': o['uploads_path'],
                                                              'the backup directory': o['backup_dir']})))
        out('backup_free_kb=%d' % disk_kb(o['backup_dir'])[0])
        for c in all_components():
            out(*c.probe(ctx))
    if have('systemctl'):
        out('systemctl=yes')
        for s in o.words('services') + o.words('redis_service'):
            if services.exists(s):
                missing = services.missing_rules([s])
                out('service=%s exists %s %s' % (s, services.state(s), 'no-sudo' if missing else 'sudo-ok'))
                out(*('sudo_missing=' + m for m in missing))
            else:
                out('service=%s missing' % s)
        if o['redis_service'] and o['redis_dump']:
            out(*('sudo_missing=' + m for m in load('redis').missing_rules(o)))
    else:
        out('systemctl=no')
    if o['redis_cli']:
        # A Redis of another host (or another port): a safety backup with Redis (the profile's redis on) would fail.
        away = load('redis').not_kadis(o)
        if away:
            out('redis_away=' + one_line(away))
    if o['redis_cli'] and o['redis_dump']:
        refused, unknown = load('redis').judge(o)
        if refused:
            out('redis_refused=' + one_line(refused))
        if unknown:
            out('redis_unchecked=' + one_line(unknown))
