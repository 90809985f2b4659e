"""The backup directory's listing: one JSON document with every set, partial set and invalid set.

Sets are the timestamp-named directories (newest first) with their manifest (without rowCounts, the
long part), their last verify result (.verify.json, or null) and whether they are pinned or the
safety set of a restore; partial sets (.partial-JOB) are named with their job and mtime, what an
interrupted prune left of a set (.deleting-SET) as a partial set of no job; a set whose
manifest is missing or not JSON is listed as invalid with the reason. A missing backup directory
lists nothing. Printed compact, without a final newline (the client reads one round trip, and the
overview verb prints the jobs after it).

Usage: list-sets BACKUP_DIR

Also the verbs on sets: pin, unpin, prune (a job), clean-partials and overview (sets, partial sets
and jobs in one answer: the tree's one round trip).
"""
import fcntl
import json
import os
import re
import signal
import sys
import time

from .common import SET_RE, check_set_name, die, fail, one_line, out, remove_tree, step, warn
from . import jobs


def main(argv):
    if len(argv) != 1:
        raise SystemExit('usage: list-sets BACKUP_DIR')
    json.dump(listing(argv[0]), sys.stdout, separators=(',', ':'))


def listing(bd):
    """The backup directory's sets (with manifest, verification record, pinned, preRestore), partial
    sets and invalid entries, newest first; and now, by this host's clock (Unix seconds), which the
    client judges the sets' times by (a set dated in the future), not by its own."""
    out = {'sets': [], 'partials': [], 'invalid': [], 'now': round(time.time(), 3)}
    try:
        names = sorted(os.listdir(bd), reverse=True)
    except FileNotFoundError:
        names = []
    for n in names:
        p = os.path.join(bd, n)
        if n.startswith('.partial-') and os.path.isdir(p):
            out['partials'].append({'name': n, 'job': n[len('.partial-'):], 'mtime': int(os.path.getmtime(p))})
            continue
        if DELETING_RE.match(n) and os.path.isdir(p):
            # A set an interrupted prune had begun to delete: what is left of it takes room until
            # the next prune (or clean-partials) finishes the deletion. No job writes it.
            out['partials'].append({'name': n, 'job': '', 'mtime': int(os.path.getmtime(p))})
            continue
        if not SET_RE.match(n) or not os.path.isdir(p):
            continue
        if _name_time(n) is None:
            # 2024-02-30T…: a set's name, but no time; retention cannot place it (as the client's setTime).
            out['invalid'].append({'name': n, 'reason': 'name is not a timestamp'}); continue
        try:
            with open(os.path.join(p, 'manifest.json'), encoding='utf-8') as f:
                m = json.load(f, parse_constant=_not_json)
        except FileNotFoundError:
            out['invalid'].append({'name': n, 'reason': 'no manifest.json'}); continue
        except ValueError as e:
            out['invalid'].append({'name': n, 'reason': 'manifest.json is not valid JSON: %s' % e}); continue
        except OSError as e:
            out['invalid'].append({'name': n, 'reason': 'manifest.json cannot be read: %s' % e.strerror}); continue
        if not isinstance(m, dict):
            out['invalid'].append({'name': n, 'reason': 'manifest is not an object'}); continue
        verify = None
        try:
            with open(os.path.join(p, '.verify.json'), encoding='utf-8') as f:
                verify = json.load(f, parse_constant=_not_json)
        except (OSError, ValueError):
            pass
        if not isinstance(verify, dict):
            verify = None  # a record that says nothing: not verified
        m.pop('rowCounts', None)
        out['sets'].append({'name': n, 'manifest': m, 'verify': verify,
                            'pinned': os.path.exists(os.path.join(p, '.pinned')),
                            'preRestore': os.path.exists(os.path.join(p, '.pre-restore'))})
    return out


def _not_json(word):
    """NaN and Infinity, which Python's json reads and writes but JSON (and the client) does not."""
    raise ValueError('%s is not JSON' % word)


def _name_time(name):
    """The time a set's name says (UTC), or None for a name that is no time (2024-02-30T…)."""
    import datetime
    try:
        return datetime.datetime.strptime(name, '%Y-%m-%dT%H-%M-%SZ').replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def manifest_problem(m):
    """Why a manifest cannot describe a good set, or None: the client's manifestProblem
    (backup/manifest.ts), word for word. Such a set is listed as invalid by the client; retention
    on the host leaves it out as well (scheduled._retention_sets)."""
    from .plan import MANIFEST_FORMAT
    if not isinstance(m, dict):
        return 'manifest is not an object'
    if m.get('formatVersion') != MANIFEST_FORMAT or isinstance(m.get('formatVersion'), bool):
        return 'unsupported manifest format %s' % _js_string(m, 'formatVersion')
    arts = m.get('artifacts')
    if not isinstance(arts, list) or not all(isinstance(a, dict) for a in arts):
        return 'manifest lists no artifacts'
    names = {a.get('name') for a in arts}
    if 'db.dump' not in names:
        return 'manifest has no db.dump'
    for a in arts:
        sha, size = a.get('sha256'), a.get('size')
        if not isinstance(sha, str) or not re.fullmatch(r'[0-9a-f]{64}', sha):
            return 'artifact %s has no valid sha256' % _js_string(a, 'name')
        if not isinstance(size, (int, float)) or isinstance(size, bool):
            return 'artifact %s has no size' % _js_string(a, 'name')
        if size <= 0 and a.get('tree') in (None, False, 0, '') and a.get('name') != 'db.counts.tsv':  # JavaScript's falsy
            return 'artifact %s is empty' % _js_string(a, 'name')
    for t in ('storage', 'uploads'):
        if '%s.files.jsonl' % t not in names and not any(isinstance(n, str) and n.startswith(t + '.tar.') for n in names):
            return 'manifest has no %s copy' % t
    return None


def _js_string(d, key):
    """String(d[key]) as JavaScript writes it, for the few values a manifest problem names."""
    if key not in d:
        return 'undefined'
    v = d[key]
    if v is None:
        return 'null'
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def newest_good_set(bd):
    """The newest set directory that has a manifest and whose last verification did not find it
    damaged, or ''. A backup links its unchanged files from it: linking from a damaged set would
    carry the damaged file into every later set."""
    try:
        names = sorted(os.listdir(bd), reverse=True)
    except FileNotFoundError:
        return ''
    ahead = None
    for n in names:
        if SET_RE.match(n) and os.path.isfile(os.path.join(bd, n, 'manifest.json')) and not found_damaged(os.path.join(bd, n)):
            if _dated_ahead(n):
                # Made while the clock was ahead: not the newest (a scheduled deep verification would
                # check it every time, never the sets made since); only when there is no other.
                ahead = ahead or os.path.join(bd, n)
                continue
            return os.path.join(bd, n)
    return ahead or ''


def _dated_ahead(name):
    import datetime
    from .retention import FUTURE_SLACK
    t = _name_time(name)
    return t is not None and t > datetime.datetime.now(datetime.timezone.utc) + FUTURE_SLACK


def damaged_record(set_dir):
    """The set's last verification record when it found the set damaged (ok false), else None (no
    record, or one that cannot be read or says nothing: not known to be damaged)."""
    try:
        with open(os.path.join(set_dir, '.verify.json'), encoding='utf-8') as f:
            r = json.load(f)
    except (OSError, ValueError):
        return None
    return r if isinstance(r, dict) and r.get('ok') is False else None


def found_damaged(set_dir):
    """Whether the set's last verification found it damaged (no record, or an unreadable one: not known to be)."""
    return damaged_record(set_dir) is not None


def pin(argv):
    """pin BACKUP_DIR SET"""
    bd, name = argv
    check_set_name(name)
    if not os.path.isfile(os.path.join(bd, name, 'manifest.json')):
        die('no set %s' % name)
    mark_pinned(bd, name)
    out('pinned=' + name)


def mark_pinned(bd, name):
    """Marks set NAME pinned: retention never deletes it."""
    with pins_locked(bd):
        if not os.path.isdir(os.path.join(bd, name)):
            die('no set %s (deleted meanwhile?)' % name)
        open(os.path.join(bd, name, '.pinned'), 'w').close()


class pins_locked:
    """A short lock of the backup directory's pins (<state>/pins.lock), apart from the instance lock
    (a pin must not wait for a long job): a pin and a prune's look at a set's pin and its rename come
    one after the other, so a pin that says pinned= is never of a set being deleted."""

    def __init__(self, bd):
        self.path = os.path.join(jobs.state_dir(bd), 'pins.lock')

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # lets go of the lock
        return False


def unpin(argv):
    """unpin BACKUP_DIR SET"""
    bd, name = argv
    check_set_name(name)
    if not os.path.isdir(os.path.join(bd, name)):
        die('no set %s' % name)
    unmark_pinned(bd, name)
    out('unpinned=' + name)


def unmark_pinned(bd, name):
    """Set NAME no longer pinned (nothing to do when it is not)."""
    with pins_locked(bd):
        try:
            os.unlink(os.path.join(bd, name, '.pinned'))
        except FileNotFoundError:
            pass


def prune(argv):
    """prune BACKUP_DIR SET... (a job): deletes the named sets, refusing pinned ones."""
    bd, names = argv[0], argv[1:]
    for n in names:
        check_set_name(n)
        if not os.path.isdir(os.path.join(bd, n)):
            out('set %s is already gone' % n)
            continue
        if os.path.lexists(os.path.join(bd, n, '.pinned')):
            fail('set %s is pinned; not deleting it' % n)
    finish_deletions(bd)
    pruned = 0
    for n in names:
        if not os.path.isdir(os.path.join(bd, n)):
            continue
        # A pin does not wait for the instance lock (it is a mark, and must work while a long job
        # runs), only for the pins' own: a set pinned while this prune deleted the ones before it is
        # left; a pin asked while it is renamed waits for the rename, and then finds no set.
        gone = os.path.join(bd, '.deleting-' + n)
        with pins_locked(bd):
            if os.path.lexists(os.path.join(bd, n, '.pinned')):
                warn('WARNING: set %s was pinned while the prune ran; not deleting it' % n)
                continue
            step('deleting set %s' % n)
            # Renamed first, so a set is never listed half-deleted.
            os.rename(os.path.join(bd, n), gone)
        if not remove_tree(gone):
            fail('could not delete all of set %s (left as %s)' % (n, gone))
        pruned += 1
    out('pruned=%d' % pruned)


def finish_deletions(bd):
    """Removes what interrupted prunes left of the sets they were deleting (.deleting-SET). Called by
    a prune, which holds the instance lock: no other prune is deleting them. One that cannot be
    removed (a file of root's in it, a read-only disk) is said and left: it must not stop this prune
    (nor every later one, and a scheduled run's retention with it)."""
    try:
        names = sorted(n for n in os.listdir(bd) if DELETING_RE.match(n))
    except FileNotFoundError:
        return
    for n in names:
        gone = os.path.join(bd, n)
        if not os.path.isdir(gone) or os.path.islink(gone):
            continue
        step('finishing the deletion of set %s (an earlier prune was interrupted)' % n[len('.deleting-'):])
        if not remove_tree(gone):
            warn('WARNING: could not delete all of %s (left as it is; remove it as root if the Kadi user may not)' % gone)


PARTIAL_RE = re.compile(r'^\.partial-[A-Za-z0-9T:._-]+$')
DELETING_RE = re.compile(r'^\.deleting-' + SET_RE.pattern.lstrip('^'))


def clean_partials(argv):
    """clean-partials BACKUP_DIR NAME...: removes leftover partial sets whose job is not running, and
    what an interrupted prune left of a set (.deleting-SET) while no job runs (a running prune may
    be deleting it)."""
    bd = argv[0]
    for n in argv[1:]:
        if DELETING_RE.match(n):
            _clean_deleting(bd, n)
            continue
        if not PARTIAL_RE.match(n):
            die('not a partial set: %s' % n)
        job = n[len('.partial-'):]
        if os.path.isdir(os.path.join(jobs.state_dir(bd), 'jobs', job)) and jobs.job_alive(os.path.join(jobs.state_dir(bd), 'jobs', job)):
            die('job %s is still writing %s' % (job, n))
        if not remove_tree(os.path.join(bd, n)):
            fail('could not remove all of %s' % n)
        out('removed=' + n)


def overview(argv):
    """overview BACKUP_DIR: sets, partial sets and jobs in one answer."""
    main(argv)
    out('', '--- jobs', *jobs.job_list_lines(argv[0]))
    from . import schedule
    out('--- schedule', *schedule.status_lines(argv[0]))


def _clean_deleting(bd, n):
    st = jobs.state_dir(bd)
    fd = jobs.open_lock(st)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            die('a job is running (a prune may be deleting %s); try again when it has ended' % n)
        if not remove_tree(os.path.join(bd, n)):
            fail('could not remove all of %s' % n)
        out('removed=' + n)
    finally:
        os.close(fd)


# What verify-quick (and deep-check, for storage's files by their id) says of one file of a tree: the
# problems that name a path, after "TREE/PATH".
_FILE_PROBLEM_ENDS = (': missing', ': sha256 does not match', ': not a regular file',
                      ': a symbolic link, not the listed file', ': not in the file list')
_SIZE_PROBLEM = re.compile(r'(.*): size [0-9]+, list says [0-9]+', re.S)
_DEEP_FILE_PROBLEM = re.compile(r'file ([^/:]{7,}): (active in the database but missing from the set|size -?[0-9]+, database says .*'
                                r'|MD5 does not match the database checksum)', re.S)


def problem_path(problem, tree):
    """The path below TREE that a verification's PROBLEM names: (True, path); (True, None) for a
    problem of the tree that names no file of it (its list damaged, its top unreadable, a text not
    known here); (False, None) for a problem of something else (the dump, another tree)."""
    if problem.startswith(tree + '/'):
        rest = problem[len(tree) + 1:]
        for end in _FILE_PROBLEM_ENDS:
            if rest.endswith(end) and len(rest) > len(end):
                return True, rest[:-len(end)]
        m = _SIZE_PROBLEM.fullmatch(rest)
        if m and m.group(1):
            return True, m.group(1)
        path, sep, _ = rest.rpartition(': cannot be read: ')
        if sep and path:
            return True, path
        return True, None
    if problem.startswith(tree + ':'):
        return True, None
    if tree == 'storage':
        m = _DEEP_FILE_PROBLEM.fullmatch(problem)
        if m:  # deep-check's own path of a file row (rel_of)
            fid = m.group(1)
            return True, '/'.join((fid[0:2], fid[2:4], fid[4:6], fid[6:]))
        if problem.startswith('file '):
            return True, None
    return False, None


def damaged_paths(bd, tree):
    """The paths of TREE that the last verification of any set in BD found damaged (a hard-linked
    file is one inode in every set that has it: a backup must copy such a path from the live tree,
    never link it). (paths, None); or (None, WHY) when a set found damaged does not say which of
    its files (its problems cut short, or one naming no file): then nothing of the tree is linked.
    Only the sets whose record says ok false are looked into."""
    paths = set()
    try:
        names = sorted(os.listdir(bd))
    except OSError:
        return paths, None
    for n in names:
        if not SET_RE.match(n):
            continue
        r = damaged_record(os.path.join(bd, n))
        if r is None:
            continue
        problems, count = r.get('problems'), r.get('problemCount')
        if not isinstance(problems, list) or not all(isinstance(p, str) for p in problems):
            return None, 'set %s was found damaged, but its verification record does not list its problems' % n
        if isinstance(count, int) and not isinstance(count, bool) and count > len(problems):
            return None, ('set %s was found damaged with %d problems, but its verification record names only the first %d'
                          % (n, count, len(problems)))
        for p in problems:
            mine, rel = problem_path(p, tree)
            if not mine:
                continue
            if rel is None:
                return None, 'set %s was found damaged, and a problem names no file of %s: %s' % (n, tree, one_line(p))
            paths.add(rel)
    return paths, None
