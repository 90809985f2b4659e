"""backup key=value... (a job; backup/backupSets.ts builds the options).

A loop over the components: free space (each says what it needs), optionally the services stopped,
then every component's work started (the database's dump in a snapshot, the trees' copies, side by
side), waited for, and finished in order (the dump's table of contents, Redis, the configuration);
then the manifest (manifest.py) and the seal: the partial set is renamed to its timestamp only when
everything is in it and hashed."""
import os
import subprocess
import threading
import time

from . import manifest, pg, plan, services
from .common import disk_kb, failing_on_full_disk, path_conflicts, fail, out, remove_tree, set_stamp, step, sync_fs, utc_now, hostname, warn
from .components import Context, all_components
from .components import redis
from .jobs import Job
from .sets import newest_good_set


def run(argv):
    make_set(argv)


def make_set(argv):
    """The backup itself; the new set's name (a scheduled run goes on to verify and prune it)."""
    job = Job()
    o = plan.job_options(argv, job)
    bd = o['backup_dir']
    if not os.path.isdir(bd):
        fail('backup directory %s does not exist' % bd)
    conflicts = path_conflicts({'STORAGE_PATH': o['storage_path'], 'MISC_UPLOADS_PATH': o['uploads_path'], 'the backup directory': bd})
    if conflicts:
        fail('refusing to back up: %s' % '; '.join(conflicts))
    # A full disk anywhere in the backup directory (the partial set, the job's files) is said as
    # such, not as a traceback.
    with failing_on_full_disk('backing up failed', bd):
        return _make_set(job, o, bd)


def _make_set(job, o, bd):
    t0 = time.monotonic()
    partial = os.path.join(bd, '.partial-' + job.id)
    os.mkdir(partial, 0o700)
    job.write('partial', partial + '\n')
    prev = newest_good_set(bd)
    ctx = Context(o, job)
    ctx.partial, ctx.prev, ctx.info = partial, prev, os.path.join(partial, '.info')
    ctx.info_line('started=' + utc_now())
    ctx.info_line('previous=' + os.path.basename(prev))
    ctx.info_line('hostname=' + hostname())

    # Database password: from the job's secret file into a 0600 passfile in the job dir; Kadi's Redis
    # credentials (when it asks for a password) for redis-cli's environment.
    secrets = plan.job_input(job)
    pg.make_passfile(job.dir, o['pg_host'], o['pg_port'], o['pg_db'], o['pg_user'], secrets['password'], secrets['pg_params'])
    redis.use_auth(secrets['redis'])
    # A Redis of another host has no snapshot here, one on another port is not Kadi's: refused before anything is copied.
    away = o.yes('redis') and redis.not_kadis(o)
    if away:
        fail(away)
    ctx.conn = pg.Conn(o['psql'], o['pg_host'], o['pg_port'], o['pg_user'], o['pg_db'])
    components = all_components()
    for c in components:
        if hasattr(c, 'backup_check'):
            c.backup_check(ctx)

    step('checking free space in %s' % bd)
    # What a first set needs of the trees is their du, a walk of every file (~1 min at a million
    # files): measured beside the copies, which it no longer delays (so is a repeat set's where the
    # previous set has nothing to link to). When it finds too little room
    # the copies are stopped and the backup fails with that reason; the rest is known at once.
    first = not prev
    free_kb = disk_kb(bd)[0]
    later = [c for c in components if c.NAME in ('storage', 'uploads') and c.space_walks(ctx, first)]
    need_kb = sum(c.space_needed_kb(ctx, first) for c in components if c not in later)
    short = lambda kb: 'not enough space in %s: about %d MiB needed, %d MiB free' % (bd, kb // 1024, free_kb // 1024)  # noqa: E731
    if need_kb > free_kb:
        fail(short(need_kb))
    # Inodes run out before blocks where a set is mostly directories (a repeat set of Kadi's uuid
    # layout: ~1.9 per file, each set again). A file system without a fixed count says 0 (btrfs).
    need_inodes = sum(c.inodes_needed(ctx, first) for c in components)
    fs = os.statvfs(bd)
    if fs.f_files and need_inodes > fs.f_favail:
        fail('not enough inodes in %s: about %d needed (a set makes its directories again), %d free (df -i); '
             'prune older sets or move the backup directory to a file system with more' % (bd, need_inodes, fs.f_favail))
    space = {}
    handles = []

    def stop_all():
        for _, h in list(handles):
            for proc in (h.values() if isinstance(h, dict) else ()):
                if isinstance(proc, subprocess.Popen) and proc.poll() is None:
                    proc.terminate()

    def measure():
        space['kb'] = need_kb + sum(c.space_needed_kb(ctx, first) for c in later)
        if space['kb'] > free_kb:
            space['short'] = True
            stop_all()
    measuring = threading.Thread(target=measure, daemon=True)
    if later:
        measuring.start()

    # Optional: stop the application for a fully consistent set; started again as soon as the
    # dump and the copies are done.
    if o.yes('stop_services'):
        step('services: stopping ' + o['services'])
        services.stop(job, o.words('services'))

    t_files = None
    for c in components:
        if c.NAME in ('storage', 'uploads') and t_files is None:
            step('files: copying STORAGE_PATH and MISC_UPLOADS_PATH (%s)' % o['files_mode'])
            t_files = time.monotonic()
        handles.append((c, c.backup_begin(ctx)))
        if space.get('short'):  # found short before this one began: stopped at once too
            stop_all()
    errors, waited = [], {}
    for c, h in handles:
        e = c.backup_wait(ctx, h)
        waited[c.NAME] = time.monotonic()
        if e:
            errors.append(e)
    if later:
        measuring.join()
    t_copied = time.monotonic()
    if o.yes('stop_services'):
        step('services: starting them again')
        if not services.start(job, ctx.attention):
            warn('WARNING: a service did not start again; see above')
    if space.get('short'):
        fail(short(space['kb']))  # the reason, whatever the stopped copies said
    if errors:
        fail(errors[0])

    for c in components:
        c.backup_finish(ctx)

    t_manifest = time.monotonic()
    step('manifest: hashing the database dump and the other artifacts')
    ctx.info_line('ended=' + utc_now())
    # Hashes every artifact, writes db.counts.json and manifest.json.
    if manifest.main([partial, o['manifest_json']]):
        fail('writing the manifest failed')
    for f in ('.info', '.storage.copy.json', '.uploads.copy.json', '.counts.jsonl'):
        try:
            os.unlink(os.path.join(partial, f))
        except FileNotFoundError:
            pass

    t_seal = time.monotonic()
    step('sealing the set')
    sync_fs(partial)
    ts = set_stamp()
    while os.path.lexists(os.path.join(bd, ts)):
        time.sleep(1)
        ts = set_stamp()
    os.rename(partial, os.path.join(bd, ts))
    job.remove('partial')
    sync_fs(bd)
    end = time.monotonic()
    t_files = t_files or t_copied
    # Where the time went (dump and file copies run side by side).
    out('timing: until-copies-started=%.1fs dump=%.1fs files=%.1fs toc-redis-config=%.1fs manifest=%.1fs seal=%.1fs total=%.1fs'
        % (t_files - t0, waited.get('database', t_files) - t_files, t_copied - t_files, t_manifest - t_copied,
           t_seal - t_manifest, end - t_seal, end - t0))
    out('set=' + ts)
    return ts


def cleanup(argv):
    """Removes what a cancelled or failed backup left behind."""
    job = Job()
    o = plan.job_options(argv, job)
    if o.yes('stop_services'):
        services.start(job, lambda msg: out('ATTENTION: ' + msg))
    p = job.read('partial').strip()
    if p and os.path.isdir(p):
        if remove_tree(p):
            out('[kadi-ops] removed partial set ' + p)
        else:
            warn('WARNING: could not remove all of the partial set ' + p)
    job.remove('pgpass')
    job.remove('pg_service')
