"""scheduled plan=yes [action=backup|deep-verify] (a job, started by `run-plan ... origin=scheduled`
from a systemd timer): what the stored plan asks for, as one job under the one lock, with one log.

- action=backup (the default): a backup set; then, when the plan's schedule says `verify: quick`,
  a quick verification of it; then retention by the plan's `retention` (the same rules as the
  client's prune: pinned sets, the newest verified and the newest pre-restore set are never removed);
- action=deep-verify: a deep verification of the newest set.

Monitoring (monitoring.py) is told when the run starts and how it ended, with the tail of this
job's log on failure; an endpoint that does not answer is a warning here, never a failed run.
A failed step fails the job and a failed backup leaves no set. A failure is reported by the job's
cleanup, after the services the backup stopped are started again (and the report says which are
not running again), so that the report is the whole story.
"""
import json
import os
import time

from . import backup, jobs, plan, retention, services, sets, verify
from .common import Failure, Options, Usage, out, step, utc_now, warn
from .jobs import COULD_NOT_RUN, Job

# How much of the log a failure report carries (monitoring bounds it again).
LOG_TAIL_BYTES = 10000


def _policy(doc):
    return {k: v for k, v in (doc.get('retention') or {}).items() if v is not None}


def _verify_args(o, set_name, level):
    keys = ('backup_dir', 'pg_restore', 'psql', 'pg_host', 'pg_port', 'pg_db', 'pg_user')
    args = ['%s=%s' % (k, o[k]) for k in keys]
    major = ((o.get('manifest_json') and json.loads(o['manifest_json']).get('postgres')) or {}).get('serverMajor')
    return args + ['set=' + set_name, 'level=' + level, 'pg_major=%s' % (major or ''), 'pg_bindir=']


def _log_tail(job):
    try:
        with open(os.path.join(job.dir, 'log'), 'rb') as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - LOG_TAIL_BYTES))
            return f.read().decode('utf-8', 'replace')
    except OSError:
        return ''


def _retention_sets(bd):
    """The sets as retention sees them (id, time, status, pinned, preRestore), from the listing."""
    listing = sets.listing(bd)
    out_ = []
    for s in listing['sets']:
        if sets.manifest_problem(s['manifest']):
            continue  # invalid to the client: counted toward no rule and never removed, as there
        v = s['verify']
        status = 'unverified' if v is None else ('verified' if v.get('ok') else 'damaged')
        t = s['name']
        out_.append({'id': t, 'time': '%sT%s:%s:%sZ' % (t[:10], t[11:13], t[14:16], t[17:19]), 'status': status,
                     'pinned': s['pinned'], 'preRestore': s['preRestore']})
    return out_


def _leftovers(bd):
    """A warning for partial sets that interrupted jobs left (a reboot, a kill) and no job writes: on a
    host that only runs schedules nobody else would see them take the disk."""
    old = []
    for p in sets.listing(bd)['partials']:
        if p['mtime'] > time.time() - 86400:
            continue
        d = os.path.join(jobs.state_dir(bd), 'jobs', p['job']) if p['job'] else ''
        if d and os.path.isdir(d) and jobs.job_alive(d):
            continue
        old.append(p['name'])
    if not old:
        return []
    return ['%d partial set(s) older than a day, left by interrupted jobs, take room in %s (%s): remove them with '
            'kadi-ops clean-partials <host>' % (len(old), bd, ', '.join(old[:3]) + (', …' if len(old) > 3 else ''))]


def _offsite(doc, o, set_name):
    """The plan's off-site copy of the new set (unless pushAfterBackup is false), then off-site retention
    when the plan has keep rules. A failure fails the run (monitoring must hear that the second copy is
    missing) and says the set itself is good."""
    off = doc.get('offsite')
    if not off or off.get('pushAfterBackup') is False:
        return
    from . import offsite
    args = ['backup_dir=' + o['backup_dir'], 'offsite=' + json.dumps(off)]
    try:
        step('scheduled: off-site copy of %s to %s' % (set_name, offsite.parse_config(off)['repository']))
        offsite.push(args + ['set=' + set_name])
    except (Failure, Usage) as e:
        raise Failure('the set %s is good here, but its off-site copy failed: %s' % (set_name, e))
    keep = {k: v for k, v in (off.get('keep') or {}).items() if v is not None}
    if any(keep.get(r) is not None for r in retention.RULES):
        try:
            step('scheduled: off-site retention %s' % json.dumps(keep, sort_keys=True))
            offsite.forget(args + ['policy=' + json.dumps(keep)])
        except (Failure, Usage) as e:
            raise Failure('the set %s is good here and off-site, but off-site retention failed: %s' % (set_name, e))


def run(argv):
    job = Job()
    o = plan.job_options(argv, job)
    doc = plan.job_input(job)['plan'] or {}
    action = Options(argv).get('action', 'backup')
    if action not in ('backup', 'deep-verify'):
        raise Failure('unknown scheduled action %s' % json.dumps(action))
    schedule = doc.get('schedule') or {}
    from . import monitoring
    info = monitoring.run_info(doc['host']['name'], job.id, action, utc_now())
    t0 = time.monotonic()

    def note(warnings):
        for w in warnings:
            warn('WARNING: ' + w)
            info['warnings'].append(w)

    note(monitoring.started(doc.get('monitoring') or {}, info))
    could_not_run = False
    try:
        if action == 'backup':
            step('scheduled: backup of %s' % info['host'])
            info['set'] = backup.make_set(argv)
            # A service the backup stopped that did not start again: the set is good, Kadi is down.
            # The run goes on (verify, retention, off-site) and then fails, so monitoring hears it.
            not_started = [l for l in job.read('attention').splitlines() if l.startswith('could not start ')]
            if schedule.get('verify', 'none') == 'quick':
                step('scheduled: quick verification of %s' % info['set'])
                if verify.run(_verify_args(o, info['set'], 'quick')) != 0:
                    raise Failure('the new set %s did not verify' % info['set'])
            policy = _policy(doc)
            if any(policy.get(r) is not None for r in retention.RULES):
                step('scheduled: retention %s' % json.dumps(policy, sort_keys=True))
                decided = retention.apply(_retention_sets(o['backup_dir']), policy)
                # The set this run made is never removed by it (a policy of zeros, a clock set back).
                if any(r['id'] == info['set'] for r in decided['remove']):
                    decided['remove'] = [r for r in decided['remove'] if r['id'] != info['set']]
                    decided['keep'].append({'id': info['set'], 'reasons': ['this run']})
                for k in decided['keep']:
                    out('keep %s (%s)' % (k['id'], ', '.join(k['reasons'])))
                ahead = [k['id'] for k in decided['keep'] if 'dated in the future' in k['reasons']]
                if ahead:
                    note(['%d set(s) are dated after this host\'s clock (%s): made while the clock was ahead, or the clock is behind now. '
                          'Retention keeps them and does not count them; check the clock (timedatectl) and remove them by hand once '
                          'newer sets exist.' % (len(ahead), ', '.join(ahead[:3]) + (', …' if len(ahead) > 3 else ''))])
                remove = [r['id'] for r in decided['remove']]
                # Pinned since retention listed them (a pin does not wait for the instance lock): left,
                # instead of a prune that refuses a pinned set and fails the run.
                pinned = [n for n in remove if os.path.lexists(os.path.join(o['backup_dir'], n, '.pinned'))]
                if pinned:
                    note(['set(s) %s were pinned while retention ran; not deleted' % ', '.join(pinned)])
                    remove = [n for n in remove if n not in pinned]
                if remove:
                    sets.prune([o['backup_dir'], *remove])
                else:
                    out('pruned=0')
            note(_leftovers(o['backup_dir']))
            _offsite(doc, o, info['set'])
            if not_started:
                raise Failure('the set %s is complete, but %s' % (info['set'], '; '.join(not_started)))
        else:
            newest = sets.newest_good_set(o['backup_dir'])
            if not newest:
                raise Failure('no backup set to verify in %s' % o['backup_dir'])
            info['set'] = os.path.basename(newest)
            step('scheduled: deep verification of %s' % info['set'])
            rc = verify.run(_verify_args(o, info['set'], 'deep'))
            if rc == COULD_NOT_RUN:
                # Not a finding and not a failure of the set: the job ends with COULD_NOT_RUN, its
                # could_not_run= lines (verify_result) in the log, for the client to show with the fix.
                # Monitoring hears of it as a failure: no deep verification was made.
                could_not_run = True
            elif rc != 0:
                raise Failure('deep verification of %s %s' % (info['set'], 'found problems' if rc == 1 else 'could not run'))
    except BaseException as e:
        info['result'] = 'cancelled' if isinstance(e, KeyboardInterrupt) else 'failed'
        info['duration'] = round(time.monotonic() - t0, 1)
        if isinstance(e, (Failure, SystemExit)):
            info['reason'] = str(e)
        # Reported by cleanup(), which the runner runs next, once the services are back.
        job.write(PENDING_REPORT, json.dumps(info))
        raise
    info['result'] = 'failed' if could_not_run else 'succeeded'
    info['duration'] = round(time.monotonic() - t0, 1)
    if could_not_run:
        info['reason'] = 'the deep verification of %s could not run' % info['set']
    note(monitoring.finished(doc.get('monitoring') or {}, info, _log_tail(job)))
    job.write('reported', info['result'] + '\n')
    out('scheduled=%s' % ('could-not-run' if could_not_run else info['result']))
    return COULD_NOT_RUN if could_not_run else 0


# A failed run's report, written by run() for cleanup() to send.
PENDING_REPORT = 'failure-report.json'


def _report_end(job, action, not_running):
    """The end of a run that did not report it itself, said to monitoring from the cleanup (which
    runs after it in any case, and after the services are started again): a failure run() wrote down,
    or a cancel (the TERM ends the verb at once) or a kill. NOT_RUNNING: the services the backup
    stopped that are not running again, named in the report."""
    if os.path.exists(job.path('reported')):
        return
    doc = plan.job_input(job)['plan']
    if doc is None:
        # The job's input is gone already (taken away with a job read as ended, or by a cancel that
        # ended it): a scheduled job's plan is the stored one, and the end is reported all the same.
        try:
            doc = plan.load(os.path.dirname(os.path.dirname(os.path.dirname(job.dir))), quiet=True)
        except (SystemExit, Exception):  # noqa: BLE001 - no stored plan either: said below
            doc = None
        warn('WARNING: the job\'s input was gone at its end; monitoring %s' % (
            'is told from the stored plan' if doc else 'cannot be told (no stored plan either)'))
    doc = doc or {}
    if not doc.get('monitoring'):
        return
    from . import monitoring
    pending = job.read(PENDING_REPORT)
    tail = _log_tail(job)
    if pending:
        info = json.loads(pending)
    else:
        cancelled = os.environ.get('KADI_OPS_CANCELLED') == '1'
        why = 'the job was cancelled' if cancelled else 'the job ended before it finished (killed)'
        info = monitoring.run_info(doc['host']['name'], job.id, action, '', result='cancelled' if cancelled else 'failed', reason=why)
        tail += '\n' + why + '\n'
    if not_running:
        said = 'the services %s are not running again: start them by hand' % ', '.join(not_running)
        info['reason'] = '%s; %s' % (info['reason'], said) if info.get('reason') else said
    for w in monitoring.finished(doc['monitoring'], info, tail):
        warn('WARNING: ' + w)
    job.write('reported', info['result'] + '\n')


def cleanup(argv):
    """What a failed or cancelled scheduled run leaves: the backup's partial set and services, a deep
    verification's cluster or scratch database; then the report."""
    action = Options(argv).get('action', 'backup')
    job = Job()
    stopped = services.stopped(job) if action == 'backup' else []
    try:
        if action == 'backup':
            backup.cleanup(argv)
        o = plan.job_options(argv, job)
        newest = sets.newest_good_set(o['backup_dir'])
        if newest:
            verify.cleanup(_verify_args(o, os.path.basename(newest), 'deep' if action == 'deep-verify' else 'quick'))
    finally:
        _report_end(job, action, [s for s in stopped if not services.active(s)])
