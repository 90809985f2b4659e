"""What a restore that ended early left half done (restore.half_done), from the marks its steps
leave in the job directory: the database changes only when pg_restore's one transaction commits,
the trees from the moment their sync starts."""
import os
import sys
import tempfile
import types
import unittest

from support import AGENT_SOURCE, ZipappTestCase


class HalfDoneTest(unittest.TestCase):
    def setUp(self):
        sys.path.insert(0, AGENT_SOURCE)
        self.addCleanup(sys.path.remove, AGENT_SOURCE)
        from kadi_ops_agent import restore
        from kadi_ops_agent.jobs import Job
        self.restore = restore
        d = tempfile.mkdtemp()
        self.addCleanup(__import__('shutil').rmtree, d)
        os.environ.update(JOB_DIR=d, JOB_ID='20261202T000000Z-abcdef')
        self.addCleanup(lambda: [os.environ.pop(k, None) for k in ('JOB_DIR', 'JOB_ID')])
        self.job = Job()

    def state(self, components, marks=(), steps='', running=()):
        for m in marks:
            self.job.write(m, '')
        self.job.write('steps', steps)
        os.makedirs(self.job.path('running'), exist_ok=True)
        for r in running:
            self.job.write(os.path.join('running', r), '')
        return self.restore.half_done(types.SimpleNamespace(job=self.job, components=components))

    def test_nothing_changed_or_all_done_is_not_half_done(self):
        self.assertEqual(self.state(['db', 'storage']), '')  # ended before the database step
        self.assertEqual(self.state(['db', 'storage'], ['db-restoring', 'db-rolled-back'], running=['database']), '')
        self.assertEqual(self.state(['db', 'storage'], ['db-restoring', 'db-committed'], 'database 9 ok\nfiles 3 ok\n'), '')

    def test_a_database_restore_alone_is_never_half_done(self):
        self.assertEqual(self.state(['db'], ['db-restoring'], running=['database']), '')

    def test_committed_without_files_or_files_part_way_is_half_done(self):
        self.assertIn("the database is the set's but the files were not restored",
                      self.state(['db', 'storage'], ['db-restoring', 'db-committed'], running=['database']))

    def test_ended_after_the_commit_names_what_did_not_run_and_how_to_run_it(self):
        from kadi_ops_agent.common import Options
        self.state(['db', 'storage'], ['db-restoring', 'db-committed'], 'database 9 ok\nfiles 3 ok\nstart-services 1 ok\n')
        left = self.restore.unfinished_after_commit(self.job, Options(['db_upgrade=no']))
        self.assertTrue(left.startswith('the restore ended after the database (and the files asked for) were restored from the set; '
                                        'the search indices were not rebuilt'), left)
        self.assertIn('kadi-ops reindex <host>', left)
        self.assertNotIn('db upgrade', left)
        with_upgrade = self.restore.unfinished_after_commit(self.job, Options(['db_upgrade=yes']))
        self.assertIn('`kadi db upgrade` did not run', with_upgrade)
        # All done, or the database never committed, or the verb said it all in its own summary: nothing.
        self.job.write('steps', 'database 9 ok\nfiles 3 ok\ndb-upgrade 2 ok\nreindex 5 ok\n')
        self.assertEqual(self.restore.unfinished_after_commit(self.job, Options(['db_upgrade=yes'])), '')
        self.job.write('steps', 'database 9 ok\n')
        self.job.write('summarised', '')
        self.assertEqual(self.restore.unfinished_after_commit(self.job, Options([])), '')
        self.job.remove('summarised', 'db-committed')
        self.assertEqual(self.restore.unfinished_after_commit(self.job, Options([])), '')

    def test_a_section_cut_by_a_kill_is_closed_by_the_summary(self):
        import contextlib
        import io
        from kadi_ops_agent.steps import Steps
        steps = Steps(self.job)
        self.job.write('section-open', 'reindex')  # as section() leaves it when the verb is killed inside
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            steps.summary('restore of x')
        lines = buf.getvalue().splitlines()
        self.assertEqual(lines[:3], ['', '[kadi-ops] end reindex rc=143', '[kadi-ops] summary of restore of x'])
        self.assertEqual(self.job.read('section-open'), '')
        # A section that ended on its own leaves nothing open.
        with contextlib.redirect_stdout(io.StringIO()):
            self.assertEqual(steps.section('ls', ['true']), 0)
        self.assertEqual(self.job.read('section-open'), '')

    def test_files_part_way(self):
        self.assertEqual(self.state(['db', 'uploads'], ['db-restoring', 'db-committed'], 'database 9 ok\n', running=['files']),
                         "the files step failed part way: the trees are partly the set's, the database is the set's")

    def test_ended_while_pg_restore_ran_is_said_as_possibly_committed(self):
        self.assertIn('the job ended while pg_restore ran: the database is as it was unless pg_restore had just committed',
                      self.state(['db', 'storage'], ['db-restoring'], running=['database']))


class ReadWholeTest(unittest.TestCase):
    """What the restore reads whole from the set is hashed again against the manifest before
    anything changes (restore._check_read_whole): by the components restored, an artifact the set
    does not hold left out."""

    def setUp(self):
        sys.path.insert(0, AGENT_SOURCE)
        self.addCleanup(sys.path.remove, AGENT_SOURCE)
        import hashlib
        import json
        from kadi_ops_agent import restore
        from kadi_ops_agent.common import Failure
        self.restore, self.Failure = restore, Failure
        self.set = tempfile.mkdtemp()
        self.addCleanup(__import__('shutil').rmtree, self.set)
        artifacts = []
        for name in ('db.dump', 'redis.rdb', 'config.tar.gz', 'uploads.tar.zst'):
            data = ('%s content' % name).encode()
            with open(os.path.join(self.set, name), 'wb') as f:
                f.write(data)
            artifacts.append({'name': name, 'size': len(data), 'sha256': hashlib.sha256(data).hexdigest()})
        with open(os.path.join(self.set, 'manifest.json'), 'w', encoding='utf-8') as f:
            json.dump({'artifacts': artifacts}, f)

    def check(self, *components):
        import contextlib
        import io
        ctx = types.SimpleNamespace(set_dir=self.set, components=list(components))
        with contextlib.redirect_stdout(io.StringIO()) as said:
            self.restore._check_read_whole(ctx)
        return said.getvalue()

    def flip(self, name):
        with open(os.path.join(self.set, name), 'r+b') as f:
            b = f.read(1)
            f.seek(0)
            f.write(bytes([b[0] ^ 1]))

    def test_each_component_checks_its_own_and_a_changed_byte_is_refused(self):
        self.assertEqual(self.check('db', 'storage', 'uploads', 'redis', 'config').count('(sha256)'), 4)
        for name, component in (('db.dump', 'db'), ('redis.rdb', 'redis'), ('config.tar.gz', 'config'), ('uploads.tar.zst', 'uploads')):
            self.flip(name)
            self.check(*[c for c in ('db', 'storage', 'uploads', 'redis', 'config') if c != component])  # not read: not checked
            with self.assertRaises(self.Failure) as e:
                self.check(component)
            self.assertEqual(str(e.exception), "refusing to restore: the set's %s is not what its manifest says (its sha256 differs): it "
                             'changed since the set was made or last verified. Verify the set; nothing was changed' % name)
            self.flip(name)
        os.unlink(os.path.join(self.set, 'redis.rdb'))
        with self.assertRaises(self.Failure) as e:
            self.check('redis')
        self.assertIn("the set's redis.rdb is not what its manifest says (it cannot be read: No such file or directory)", str(e.exception))
        with open(os.path.join(self.set, 'config.tar.gz'), 'ab') as f:
            f.write(b'more')
        with self.assertRaises(self.Failure) as e:
            self.check('config')
        self.assertIn('(its size differs)', str(e.exception))


class DiedRestoreTest(ZipappTestCase):
    """A restore killed outright (its cleanup never ran): job-status says what it left, from its marks."""

    def died_job(self, files):
        bd = tempfile.mkdtemp(dir=self.tmp.name)
        d = os.path.join(bd, '.kadi-ops', 'jobs', '20261202T000000Z-died01')
        os.makedirs(os.path.join(d, 'running'))
        for name, text in dict({'meta': 'id=20261202T000000Z-died01\nkind=restore\noperator=op\n'}, **files).items():
            with open(os.path.join(d, name), 'w') as f:
                f.write(text)
        r = self.agent('job-status', bd, '20261202T000000Z-died01')
        self.assertEqual(r.returncode, 0, r.stderr)
        kv = dict(l.split('=', 1) for l in r.stdout.splitlines() if '=' in l)
        self.assertEqual(kv['state'], 'died')
        return kv.get('died_note')

    def test_killed_during_the_files_step_names_what_is_half_done_the_pinned_set_and_the_stopped_services(self):
        note = self.died_job({'components': 'db,storage', 'db-restoring': '', 'db-committed': '', 'steps': 'database 9 ok\n',
                              'running/files': '', 'safety-pinned': '2026-12-02T10-00-00Z\n', 'stopped': 'kadi-web\nkadi-celery\n'})
        self.assertEqual(note, "the restore ended without an exit status (killed, or the host restarted): the files step failed part way: "
                               "the trees are partly the set's, the database is the set's, so the instance may be inconsistent; restore "
                               "again (it completes what was done), or restore the pre-restore set 2026-12-02T10-00-00Z (pinned, so that "
                               "retention keeps it); the services it stopped (kadi-web, kadi-celery) may still be stopped: start them "
                               "only once the instance is whole again")

    def test_killed_before_it_changed_anything_names_only_the_services_to_start(self):
        note = self.died_job({'components': 'db,storage', 'steps': 'stop-services 0 ok\n', 'stopped': 'kadi-web\nkadi-celery\n'})
        self.assertEqual(note, 'the restore ended without an exit status (killed, or the host restarted): the services it stopped '
                               '(kadi-web, kadi-celery) may still be stopped: sudo systemctl start kadi-celery kadi-web')
        self.assertIsNone(self.died_job({'components': 'db,storage', 'steps': ''}))

    def test_killed_while_writing_the_redis_dump_names_the_kept_copy_and_redis_among_the_stopped(self):
        note = self.died_job({'components': 'redis', 'steps': 'stop-services 0 ok\n', 'running/redis': '', 'stopped': 'redis-server\n',
                              'redis-restoring': '/backups/.kadi-ops/jobs/x/redis-before.rdb\n'})
        self.assertEqual(note, 'the restore ended without an exit status (killed, or the host restarted): it was writing the Redis dump, '
                               'which may be cut short: the previous one is kept in /backups/.kadi-ops/jobs/x/redis-before.rdb (write it '
                               'back as the redis user with Redis stopped); the services it stopped (redis-server) may still be stopped: '
                               'start them only once the instance is whole again')

    def test_killed_with_nothing_half_done_names_the_pin_it_leaves(self):
        note = self.died_job({'components': 'db,storage', 'steps': 'stop-services 0 ok\nsafety-backup 3 ok\n', 'running/database': '',
                              'safety-pinned': '2026-12-02T10-00-00Z\n'})
        self.assertEqual(note, 'the restore ended without an exit status (killed, or the host restarted): it left nothing half done; '
                               'its pre-restore set 2026-12-02T10-00-00Z stays pinned until you unpin it (kadi-ops unpin <host> '
                               '2026-12-02T10-00-00Z)')


if __name__ == '__main__':
    unittest.main()
