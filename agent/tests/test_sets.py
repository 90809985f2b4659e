"""The set listing, run as the host runs it: the built zipapp, `python3 -I -S agent.pyz list-sets`."""
import json
import os
import tempfile
import time
import unittest

from support import AS_NOBODY, NobodyRun, ZipappTestCase


class ListSetsTest(ZipappTestCase):
    def setUp(self):
        self.bd = tempfile.mkdtemp(dir=self.tmp.name)

    def put(self, rel, data=''):
        p = os.path.join(self.bd, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, 'w', encoding='utf-8') as f:
            f.write(data if isinstance(data, str) else json.dumps(data))

    def list_sets(self, *argv):
        return self.agent('list-sets', *(argv or [self.bd]))

    def test_sets_newest_first_with_manifest_verify_pin_and_pre_restore_partials_and_invalid(self):
        old, new = '2026-01-01T00-00-00Z', '2026-02-01T00-00-00Z'
        self.put(old + '/manifest.json', {'format': 3, 'artifacts': [], 'rowCounts': {'public.record': 5}})
        self.put(old + '/.pinned')
        self.put(old + '/.verify.json', {'level': 'quick', 'ok': True})
        self.put(new + '/manifest.json', {'format': 3, 'profile': 'ü'})
        self.put(new + '/.pre-restore')
        self.put(new + '/.verify.json', '{broken')  # an unreadable verify result is no result
        self.put('2026-03-01T00-00-00Z/db.dump', 'x')  # no manifest
        self.put('2026-04-01T00-00-00Z/manifest.json', '{"truncated":')
        os.makedirs(os.path.join(self.bd, '.partial-job-123'))
        os.utime(os.path.join(self.bd, '.partial-job-123'), (1_700_000_000, 1_700_000_000))
        self.put('2026-05-01T00-00-00Z', 'a file named like a set')
        self.put('.partial-file', 'a file named like a partial set')
        os.makedirs(os.path.join(self.bd, 'not-a-set', 'x'))
        os.makedirs(os.path.join(self.bd, '.kadi-ops'))
        r = self.list_sets()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(r.stdout.endswith('\n'), 'no newline after the document (overview prints the jobs after it)')
        out = json.loads(r.stdout)
        self.assertEqual(r.stdout, json.dumps(out, separators=(',', ':')), 'compact, non-ASCII escaped')
        self.assertEqual(out['sets'], [
            {'name': new, 'manifest': {'format': 3, 'profile': 'ü'}, 'verify': None, 'pinned': False, 'preRestore': True},
            {'name': old, 'manifest': {'format': 3, 'artifacts': []}, 'verify': {'level': 'quick', 'ok': True}, 'pinned': True, 'preRestore': False},
        ])
        self.assertEqual(out['partials'], [{'name': '.partial-job-123', 'job': 'job-123', 'mtime': 1_700_000_000}])
        self.assertEqual([i['name'] for i in out['invalid']], ['2026-04-01T00-00-00Z', '2026-03-01T00-00-00Z'])
        self.assertTrue(out['invalid'][0]['reason'].startswith('manifest.json is not valid JSON: '), out['invalid'][0])
        self.assertEqual(out['invalid'][1]['reason'], 'no manifest.json')

    def test_a_manifest_that_is_no_object_a_verify_record_that_is_none_and_an_impossible_date_never_break_the_listing(self):
        self.put('2026-01-01T00-00-00Z/manifest.json', 'null')
        self.put('2026-01-02T00-00-00Z/manifest.json', {'formatVersion': 1})
        self.put('2026-01-02T00-00-00Z/.verify.json', [])
        self.put('2024-02-30T00-00-00Z/manifest.json', {'formatVersion': 1})
        self.put('2026-01-03T00-00-00Z/manifest.json', '{"formatVersion": NaN}')  # Python reads it; JSON (the client) does not
        r = self.list_sets()
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out['sets'], [{'name': '2026-01-02T00-00-00Z', 'manifest': {'formatVersion': 1}, 'verify': None, 'pinned': False, 'preRestore': False}])
        self.assertEqual(out['invalid'], [{'name': '2026-01-03T00-00-00Z', 'reason': 'manifest.json is not valid JSON: NaN is not JSON'},
                                          {'name': '2026-01-01T00-00-00Z', 'reason': 'manifest is not an object'},
                                          {'name': '2024-02-30T00-00-00Z', 'reason': 'name is not a timestamp'}])
        self.assertNotIn('NaN', r.stdout.replace('NaN is not JSON', ''))

    def test_what_an_interrupted_prune_left_is_listed_and_removed_by_the_next_prune_or_clean_partials(self):
        # A prune renames a set to .deleting-SET, then removes it: killed in between (a cancel, a
        # reboot during the long rm of a big set), what was left stayed for good, listed nowhere.
        import fcntl
        import time
        left = '.deleting-2026-01-01T00-00-00Z'
        self.put(left + '/storage/ab/file', 'x')
        self.put('2026-02-01T00-00-00Z/manifest.json', {'format': 3})
        os.utime(os.path.join(self.bd, left), (1_700_000_000, 1_700_000_000))
        out = json.loads(self.list_sets().stdout)
        self.assertEqual(out['partials'], [{'name': left, 'job': '', 'mtime': 1_700_000_000}])
        self.assertEqual([x['name'] for x in out['sets']], ['2026-02-01T00-00-00Z'])
        # clean-partials removes it, but not while a job (maybe the prune deleting it) holds the lock.
        os.makedirs(os.path.join(self.bd, '.kadi-ops'), 0o700)
        lock = os.open(os.path.join(self.bd, '.kadi-ops', 'lock'), os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        r = self.agent('clean-partials', self.bd, left)
        os.close(lock)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('a job is running (a prune may be deleting %s); try again when it has ended' % left, r.stderr)
        self.assertTrue(os.path.isdir(os.path.join(self.bd, left)))
        r = self.agent('clean-partials', self.bd, left)
        self.assertEqual((r.returncode, r.stdout), (0, 'removed=%s\n' % left), r.stderr)
        self.assertFalse(os.path.lexists(os.path.join(self.bd, left)))
        # The next prune finishes such a deletion before its own.
        self.put(left + '/storage/ab/file', 'x')
        job = '20261202T000000Z-prune1'
        r = self.agent('job-start', self.bd, job, 'prune', 'op', 'laptop', 'no', 'prune', self.bd, '2026-02-01T00-00-00Z')
        self.assertEqual(r.returncode, 0, r.stderr)
        def read(name):
            try:
                with open(os.path.join(self.bd, '.kadi-ops', 'jobs', job, name), encoding='utf-8') as f:
                    return f.read()
            except FileNotFoundError:
                return ''
        end = time.monotonic() + 30
        while not read('status').strip() and time.monotonic() < end:
            time.sleep(0.05)
        log = read('log')
        self.assertEqual(read('status').strip(), '0', log)
        self.assertIn('finishing the deletion of set 2026-01-01T00-00-00Z (an earlier prune was interrupted)', log)
        self.assertEqual(sorted(n for n in os.listdir(self.bd) if n != '.kadi-ops'), [])

    def test_a_set_pinned_while_a_prune_runs_is_not_deleted_and_a_pin_during_its_rename_finds_no_set(self):
        # A pin takes no instance lock: it may land while the prune deletes the sets before it (the
        # set is then left), or while the prune renames the set for deletion (the pins' own lock
        # makes it wait, and it then finds no set: it never says pinned= of a set being deleted).
        import contextlib
        import io
        import sys
        import threading
        from support import AGENT_SOURCE
        sys.path.insert(0, AGENT_SOURCE)
        from kadi_ops_agent import sets
        names = ['2026-01-0%dT00-00-00Z' % i for i in (1, 2, 3)]
        for n in names:
            self.put(n + '/manifest.json', {'format': 3})
        real_remove, real_step = sets.remove_tree, sets.step
        late = {}

        def remove_tree(path):
            if path.endswith(names[0]):
                sets.mark_pinned(self.bd, names[1])  # pinned while the first set is deleted
            return real_remove(path)

        def late_pin():
            try:
                sets.mark_pinned(self.bd, names[2])
                late['result'] = 'pinned'
            except BaseException as e:  # noqa: BLE001 - die() exits: what the pin verb would say
                late['result'] = 'refused: %r' % e

        def step(msg):
            real_step(msg)
            if msg == 'deleting set %s' % names[2]:  # the pins' lock is held here, up to the rename
                late['thread'] = threading.Thread(target=late_pin)
                late['thread'].start()
                late['thread'].join(0.3)
                late['waited'] = late['thread'].is_alive()
        sets.remove_tree, sets.step = remove_tree, step
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                sets.prune([self.bd, *names])
                late['thread'].join(10)
        finally:
            sets.remove_tree, sets.step = real_remove, real_step
        self.assertEqual(sorted(n for n in os.listdir(self.bd) if n != '.kadi-ops'), [names[1]])
        self.assertIn('pruned=2', out.getvalue())
        self.assertIn('WARNING: set %s was pinned while the prune ran; not deleting it' % names[1], err.getvalue())
        self.assertTrue(late['waited'], 'the late pin waited for the rename')
        self.assertIn('no set %s (deleted meanwhile?)' % names[2], late['result'])

    @unittest.skipUnless(AS_NOBODY, 'needs root to make a leftover the Kadi user cannot remove')
    def test_a_leftover_the_kadi_user_cannot_remove_never_stops_a_prune(self):
        import time
        run = NobodyRun(self)
        bd = os.path.join(run.base, 'bd')
        for rel in ('.deleting-2025-01-01T00-00-00Z/r/f', '2025-01-05T00-00-00Z/manifest.json'):
            p = os.path.join(bd, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, 'w') as f:
                f.write('{}')
        run.give(bd)
        os.chown(os.path.join(bd, '.deleting-2025-01-01T00-00-00Z', 'r'), 0, 0)  # f in it: not nobody's to remove
        job = '20261202T000000Z-prune2'
        r = run.agent('job-start', bd, job, 'prune', 'op', 'laptop', 'no', 'prune', bd, '2025-01-05T00-00-00Z')
        self.assertEqual(r.returncode, 0, r.stderr)
        status = os.path.join(bd, '.kadi-ops', 'jobs', job, 'status')
        end = time.monotonic() + 30
        while not (os.path.exists(status) and os.path.getsize(status)) and time.monotonic() < end:
            time.sleep(0.05)
        with open(os.path.join(bd, '.kadi-ops', 'jobs', job, 'log'), encoding='utf-8') as f:
            log = f.read()
        with open(status) as f:
            self.assertEqual(f.read().strip(), '0', log)
        self.assertIn('WARNING: could not delete all of %s/.deleting-2025-01-01T00-00-00Z' % bd, log)
        self.assertFalse(os.path.exists(os.path.join(bd, '2025-01-05T00-00-00Z')), 'the set asked for is deleted')
        self.assertTrue(os.path.exists(os.path.join(bd, '.deleting-2025-01-01T00-00-00Z', 'r', 'f')))

    def test_a_missing_backup_directory_lists_nothing(self):
        before = time.time()
        r = self.list_sets(os.path.join(self.bd, 'nowhere'))
        self.assertEqual(r.returncode, 0, r.stderr)
        listing = json.loads(r.stdout)
        # now: the host's clock, by which the client judges the sets' times.
        self.assertTrue(before - 0.01 <= listing.pop('now') <= time.time() + 0.01, r.stdout)
        self.assertEqual(listing, {'sets': [], 'partials': [], 'invalid': []})

    def test_the_overview_says_no_schedule_without_a_plan_and_survives_a_bad_one(self):
        # What the tree reads on every refresh: it must not fail for want of a stored plan.
        r = self.agent('overview', self.bd)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split('--- schedule\n')[1], 'schedule=none\n')
        os.makedirs(os.path.join(self.bd, '.kadi-ops'), mode=0o700)
        os.chmod(os.path.join(self.bd, '.kadi-ops'), 0o700)
        self.put('.kadi-ops/plan.json', '{not json')
        os.chmod(os.path.join(self.bd, '.kadi-ops', 'plan.json'), 0o600)
        r = self.agent('overview', self.bd)
        self.assertEqual(r.returncode, 0, r.stderr)
        tail = r.stdout.split('--- schedule\n')[1].splitlines()
        self.assertEqual(tail[0], 'schedule=none')
        self.assertTrue(tail[1].startswith('schedule_error=the plan is not JSON'), tail)
        # A plan valid JSON but not a valid plan: its first problem, never a secret value.
        self.put('.kadi-ops/plan.json', json.dumps({'version': 1, 'monitoring': {'success': 'hxxps://hc-ping.com/SECRET'}}))
        tail = self.agent('overview', self.bd).stdout.split('--- schedule\n')[1].splitlines()
        self.assertEqual(tail[1], 'schedule_error=the plan is not valid (5 problems; see plan_error lines): plan: host is missing')
        self.assertNotIn('SECRET', self.agent('overview', self.bd).stdout)

    def test_the_newest_good_set_is_not_one_dated_in_the_future_unless_there_is_no_other(self):
        from kadi_ops_agent import sets
        self.put('2099-01-01T00-00-00Z/manifest.json', {'formatVersion': 1})
        self.assertEqual(sets.newest_good_set(self.bd), os.path.join(self.bd, '2099-01-01T00-00-00Z'))
        self.put('2026-01-01T00-00-00Z/manifest.json', {'formatVersion': 1})
        self.assertEqual(sets.newest_good_set(self.bd), os.path.join(self.bd, '2026-01-01T00-00-00Z'))

    def test_the_previous_set_a_backup_links_from_is_never_a_damaged_one(self):
        import sys
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from kadi_ops_agent import sets
        old, damaged = '2026-01-01T00-00-00Z', '2026-02-01T00-00-00Z'
        self.put(old + '/manifest.json', {'format': 1})
        self.put(damaged + '/manifest.json', {'format': 1})
        self.assertEqual(sets.newest_good_set(self.bd), os.path.join(self.bd, damaged))
        self.put(damaged + '/.verify.json', {'level': 'quick', 'ok': False, 'problems': ['storage/a: sha256 does not match']})
        self.assertEqual(sets.newest_good_set(self.bd), os.path.join(self.bd, old), 'its damaged file would be linked into every later set')
        self.put(old + '/.verify.json', '{broken')
        self.assertEqual(sets.newest_good_set(self.bd), os.path.join(self.bd, old), 'an unreadable record is no finding')

    def test_wrong_arguments_fail_clearly(self):
        r = self.agent('list-sets')
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('usage: list-sets BACKUP_DIR', r.stderr)


if __name__ == '__main__':
    unittest.main()
