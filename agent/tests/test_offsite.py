"""Off-site copies (offsite.py) against a real restic and a repository in a temporary folder, run as
the host runs the agent (the built zipapp; job verbs through job-verb with a job directory)."""
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest
from unittest import mock

from support import AGENT_SOURCE, ZipappTestCase, put

sys.path.insert(0, AGENT_SOURCE)
from kadi_ops_agent import offsite  # noqa: E402

HAVE_RESTIC = shutil.which('restic') is not None
PASSWORD = 'correct horse battery staple'


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def make_set(bd, name, files, previous=None):
    """A set as a backup leaves it: a storage tree with its file list and the manifest; unchanged
    files hard-linked from PREVIOUS (as the copier does)."""
    d = os.path.join(bd, name)
    os.makedirs(d)
    lines = []
    for rel, data in sorted(files.items()):
        src = previous and os.path.join(bd, previous, 'storage', rel)
        target = os.path.join(d, 'storage', rel)
        if src and os.path.isfile(src) and read(src) == data:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.link(src, target)
        else:
            put(os.path.join(d, 'storage'), rel, data)
        lines.append([rel, len(data), int(os.path.getmtime(target)), sha(data)])
    listing = ''.join(json.dumps(l) + '\n' for l in lines).encode()
    put(d, 'storage.files.jsonl', listing)
    m = {'kadiVersion': '1.2.3', 'alembicRevision': 'a1b2c3d4e5f6',
         'artifacts': [{'name': 'storage.files.jsonl', 'size': len(listing), 'sha256': sha(listing), 'tree': 'storage',
                        'files': len(lines), 'bytes': sum(l[1] for l in lines)}]}
    with open(os.path.join(d, 'manifest.json'), 'w') as f:
        json.dump(m, f)
    return d


@unittest.skipUnless(HAVE_RESTIC, 'restic is not installed')
class OffsiteTest(ZipappTestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(dir=self.tmp.name)
        # The backup directory behind a symbolic link, as on hosts whose backup disk is mounted elsewhere.
        os.makedirs(os.path.join(self.root, 'disk', 'kadi', '.kadi-ops'), mode=0o700)
        self.bd = os.path.join(self.root, 'backups')
        os.symlink(os.path.join(self.root, 'disk', 'kadi'), self.bd)
        self.cfg = json.dumps({'repository': os.path.join(self.root, 'repo')})
        self.files = {'ab/cd/%04d' % i: os.urandom(3000) for i in range(60)}

    def connect(self, password=PASSWORD, create=True, bd=None, env=None):
        return self.agent('offsite-connect', bd or self.bd, self.cfg, input=json.dumps({'password': password, 'create': create, 'env': env or {}}))

    def job(self, verb, *opts, bd=None, secret=None):
        bd = bd or self.bd
        jd = tempfile.mkdtemp(dir=self.root)
        if secret is not None:
            with open(os.path.join(jd, 'secret'), 'w') as f:
                f.write(secret)
        env = dict(os.environ, JOB_DIR=jd, JOB_ID='20261130T000000Z-%s' % os.path.basename(jd)[-6:].lower().replace('_', '0'))
        r = subprocess.run([sys.executable, '-I', '-S', self.pyz, 'job-verb', verb, 'backup_dir=' + bd, 'offsite=' + self.cfg, *opts],
                           capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300)
        r.kv = dict(l.split('=', 1) for l in r.stdout.splitlines() if '=' in l and ' ' not in l.split('=', 1)[0])
        return r

    def job_popen(self, verb, *opts, bd=None):
        """As job(), started and not waited for."""
        bd = bd or self.bd
        jd = tempfile.mkdtemp(dir=self.root)
        env = dict(os.environ, JOB_DIR=jd, JOB_ID='20261130T000000Z-%s' % os.path.basename(jd)[-6:].lower().replace('_', '0'))
        return subprocess.Popen([sys.executable, '-I', '-S', self.pyz, 'job-verb', verb, 'backup_dir=' + bd, 'offsite=' + self.cfg, *opts],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL)

    def snapshots(self, bd=None):
        r = self.agent('offsite-list', bd or self.bd, self.cfg)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)['snapshots']

    def test_connect_creates_the_repository_and_keeps_the_password_in_a_private_file_only(self):
        r = self.connect()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('created=yes', r.stdout)
        key = offsite.key_path(self.bd, json.loads(self.cfg)['repository'])
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        self.assertEqual(read(key), (PASSWORD + '\n').encode())
        self.assertNotIn(PASSWORD, r.stdout + r.stderr)
        # Joining it again (a new host after a disk loss): no new repository, same id.
        again = self.connect(create=False)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn('created=no', again.stdout)
        self.assertEqual(r.stdout.split('repository_id=')[1], again.stdout.split('repository_id=')[1])

    def test_a_wrong_password_is_said_and_the_stored_one_is_kept(self):
        self.assertEqual(self.connect().returncode, 0)
        r = self.connect(password='not the password at all')
        self.assertEqual(r.returncode, 1)
        self.assertIn('the repository password is wrong', r.stderr)
        self.assertNotIn('not the password', r.stderr + r.stdout)
        self.assertEqual(read(offsite.key_path(self.bd, json.loads(self.cfg)['repository'])), (PASSWORD + '\n').encode())
        self.assertEqual([n for n in os.listdir(offsite.repo_dir(self.bd, json.loads(self.cfg)['repository'])) if 'tmp' in n or 'new' in n], [])

    def test_a_password_that_begins_or_ends_with_a_space_is_refused_before_anything_is_made(self):
        # restic strips its password file: the repository would open only without the spaces.
        r = self.connect(password='  abcdefgh-secret-1  ')
        self.assertEqual(r.returncode, 2)
        self.assertIn('must not begin or end with a space', r.stderr)
        self.assertFalse(os.path.exists(json.loads(self.cfg)['repository']))
        self.assertFalse(os.path.exists(offsite.key_path(self.bd, json.loads(self.cfg)['repository'])))

    def test_a_repository_this_host_knew_that_is_gone_is_not_made_again_in_its_place(self):
        # Its disk not mounted: the path is an empty directory now.
        self.assertEqual(self.connect().returncode, 0)
        repo = json.loads(self.cfg)['repository']
        shutil.rmtree(repo)
        os.makedirs(repo)
        r = self.connect()
        self.assertEqual(r.returncode, 1)
        self.assertIn('this host was connected to a restic repository at %s, and there is none there now' % repo, r.stderr)
        self.assertEqual(os.listdir(repo), [], 'no repository was made in its place')
        os.unlink(offsite.key_path(self.bd, repo))
        self.assertIn('created=yes', self.connect().stdout)

    def test_joining_a_repository_that_is_not_there_is_refused_without_create(self):
        r = self.connect(create=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('there is no restic repository at', r.stderr)
        self.assertFalse(os.path.exists(offsite.key_path(self.bd, json.loads(self.cfg)['repository'])))

    def stale_exclusive_lock(self, ours=True):
        """A real restic check (exclusive lock) killed with SIGKILL while it holds its lock, as the OOM
        killer leaves it (or a cancel: restic 0.14 leaves its lock on SIGTERM): the lock file stays,
        its process is gone. OURS: the check of this backup directory's own job (the agent started
        that restic); else one started by someone else of this node name (another host's, as far as
        this one can tell)."""
        import signal
        repo = json.loads(self.cfg)['repository']
        env = dict(os.environ, RESTIC_REPOSITORY=repo, RESTIC_PASSWORD=PASSWORD)
        locks = os.path.join(repo, 'locks')
        # A lock restic has written (the local backend writes NAME-tmp-N first, then renames it).
        held = lambda: [n for n in os.listdir(locks) if '-tmp-' not in n]  # noqa: E731

        def restic_child(parent):
            for d in os.listdir('/proc'):
                try:
                    with open('/proc/%s/stat' % d) as f:
                        fields = f.read().rsplit(')', 1)[1].split()
                    with open('/proc/%s/cmdline' % d, 'rb') as f:
                        argv = f.read().split(b'\0')
                except (OSError, ValueError):
                    continue
                if int(fields[1]) == parent and argv[0].endswith(b'restic') and b'check' in argv:
                    return int(d)
            return None
        for _ in range(20):
            for n in os.listdir(locks):
                os.unlink(os.path.join(locks, n))  # a half-written one of the last try
            if ours:
                agent = self.job_popen('offsite_check', 'subset=100%')
                p = None
                while agent.poll() is None and not (p and held()):
                    p = p or restic_child(agent.pid)
                    time.sleep(0.001)
                if agent.poll() is None:
                    os.kill(p, signal.SIGSTOP)
                    os.kill(p, signal.SIGKILL)
                agent.communicate()
            else:
                q = subprocess.Popen(['restic', 'check', '--read-data'], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                while q.poll() is None and not held():
                    time.sleep(0.001)
                if q.poll() is None:
                    os.kill(q.pid, signal.SIGSTOP)  # holding it now; then gone without a word
                    os.kill(q.pid, signal.SIGKILL)
                q.wait()
            if held():
                return
        self.fail('restic check never held its lock long enough to be killed with it')

    def test_a_lock_a_killed_restic_left_stops_no_push_or_restore(self):
        self.connect()
        make_set(self.bd, '2026-11-01T02-00-00Z', self.files)
        self.stale_exclusive_lock()
        r = self.job('offsite_push', 'set=2026-11-01T02-00-00Z')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.kv['pushed'], 'yes')
        self.stale_exclusive_lock()
        shutil.rmtree(os.path.join(self.bd, '2026-11-01T02-00-00Z'))
        sid = self.snapshots()[0]['id']
        self.stale_exclusive_lock()
        r = self.job('offsite_restore', 'snapshot=' + sid[:8], 'pg_restore=/bin/false')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.kv['restored'], '2026-11-01T02-00-00Z')
        # A lock of this node name that no restic of this backup directory left (another host of
        # the same name sharing the repository, its restic maybe running): never removed here.
        self.stale_exclusive_lock(ours=False)
        locks = os.path.join(json.loads(self.cfg)['repository'], 'locks')
        before = sorted(os.listdir(locks))
        r = self.job('offsite_push', 'set=2026-11-01T02-00-00Z')
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('the repository is locked by another restic', r.stderr)
        self.assertEqual(sorted(os.listdir(locks)), before, 'the stranger\'s lock is still there')
        subprocess.run(['restic', 'unlock'], env=dict(os.environ, RESTIC_REPOSITORY=json.loads(self.cfg)['repository'], RESTIC_PASSWORD=PASSWORD),
                       check=True, capture_output=True)
        # A lock of a restic that still runs is not taken away: said, with what holds it.
        env = dict(os.environ, RESTIC_REPOSITORY=json.loads(self.cfg)['repository'], RESTIC_PASSWORD=PASSWORD)
        holder = subprocess.Popen(['restic', 'backup', '--stdin', '--stdin-filename', 'x'], env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            locks = os.path.join(json.loads(self.cfg)['repository'], 'locks')
            while not [n for n in os.listdir(locks) if '-tmp-' not in n]:
                time.sleep(0.01)
            f = self.job('offsite_check')
            self.assertNotEqual(f.returncode, 0)
            self.assertIn('the repository is locked by another restic', f.stderr)
            self.assertIn('a restic that still runs keeps its lock until it ends', f.stderr)
            self.assertIn('remove the lock as the Kadi user: restic unlock', f.stderr)
        finally:
            holder.kill()
            holder.wait()
            holder.stdin.close()

    def test_push_tags_the_snapshot_and_a_repeat_push_reads_no_unchanged_file(self):
        self.connect()
        make_set(self.bd, '2026-11-01T02-00-00Z', self.files)
        with open(os.path.join(self.bd, '2026-11-01T02-00-00Z', '.verify.json'), 'w') as f:
            json.dump({'ok': True}, f)
        r = self.job('offsite_push', 'set=2026-11-01T02-00-00Z')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.kv['pushed'], 'yes')
        [s] = self.snapshots()
        self.assertEqual((s['set'], s['kadiVersion'], s['schemaRevision']), ('2026-11-01T02-00-00Z', '1.2.3', 'a1b2c3d4e5f6'))
        self.assertIn('kadi-ops', s['tags'])
        # The next set: hard links for every unchanged file (their ctime changes), one new file.
        files2 = dict(self.files, **{'zz/new': os.urandom(3000), 'ab/.verify.json': b'a record file of that name'})
        d2 = make_set(self.bd, '2026-11-02T02-00-00Z', files2, previous='2026-11-01T02-00-00Z')
        for mark in ('.verify.json', '.pinned'):
            with open(os.path.join(d2, mark), 'w') as f:
                f.write('{"ok": true}')
        r2 = self.job('offsite_push', 'set=2026-11-02T02-00-00Z')
        self.assertEqual(r2.returncode, 0, r2.stdout + r2.stderr)
        self.assertEqual(int(r2.kv['files_unmodified']), len(self.files), r2.stdout)
        self.assertLess(int(r2.kv['data_added']), 40000, 'a repeat push re-sent unchanged data')
        # The set's local marks stay here; a file of the same name inside a tree travels.
        ls = subprocess.run(['restic', 'ls', '--json', r2.kv['snapshot']], capture_output=True, text=True,
                            env=dict(os.environ, RESTIC_REPOSITORY=json.loads(self.cfg)['repository'], RESTIC_PASSWORD=PASSWORD))
        paths = [json.loads(l).get('path') for l in ls.stdout.splitlines() if '"path"' in l]
        self.assertIn('/storage/ab/.verify.json', paths)
        self.assertIn('/manifest.json', paths)
        self.assertNotIn('/.verify.json', paths)
        self.assertNotIn('/.pinned', paths)
        # Pushing a set that is off-site already changes nothing.
        r3 = self.job('offsite_push', 'set=2026-11-02T02-00-00Z')
        self.assertEqual((r3.returncode, r3.kv.get('pushed')), (0, 'already'))
        self.assertEqual(len(self.snapshots()), 2)

    def test_another_hosts_snapshot_of_a_set_of_the_same_name_does_not_count_as_this_hosts(self):
        self.connect()
        name = '2026-11-01T02-00-00Z'
        d = make_set(self.bd, name, self.files)
        env = dict(os.environ, RESTIC_REPOSITORY=json.loads(self.cfg)['repository'], RESTIC_PASSWORD=PASSWORD)
        subprocess.run(['restic', 'backup', '-q', '--host', 'another-host', '--tag', 'kadi-ops', '--tag', 'set:' + name, '.'],
                       cwd=d, env=env, check=True, capture_output=True)
        r = self.job('offsite_push', 'set=' + name)
        self.assertEqual((r.returncode, r.kv.get('pushed')), (0, 'yes'), r.stdout + r.stderr)
        listing = json.loads(self.agent('offsite-list', self.bd, self.cfg).stdout)
        self.assertEqual(listing['host'], os.uname().nodename)
        self.assertEqual(sorted(s['hostname'] for s in listing['snapshots']), sorted(['another-host', os.uname().nodename]))

    def test_two_hosts_of_the_same_node_name_sharing_a_repository_keep_apart(self):
        # A staging clone of production: same node name, same repository, a backup directory of its own.
        self.connect()
        staging = os.path.join(self.root, 'staging')
        os.makedirs(os.path.join(staging, '.kadi-ops'), mode=0o700)
        self.assertEqual(self.connect(create=False, bd=staging).returncode, 0)
        name = '2026-11-01T02-00-00Z'
        make_set(self.bd, name, self.files)
        open(os.path.join(self.bd, name, '.pinned'), 'w').close()
        self.assertEqual(self.job('offsite_push', 'set=' + name).kv['pushed'], 'yes')
        # A set of the same name on staging is not off-site "already": it is pushed.
        make_set(staging, name, dict(self.files, extra=b'staging'))
        self.assertEqual(self.job('offsite_push', 'set=' + name, bd=staging).kv['pushed'], 'yes')
        make_set(staging, '2026-11-02T02-00-00Z', self.files)
        self.assertEqual(self.job('offsite_push', 'set=2026-11-02T02-00-00Z', bd=staging).kv['pushed'], 'yes')
        ids = {s['id']: s for s in self.snapshots()}
        mine_here = {s['id'] for s in self.snapshots() if s['mine']}
        mine_there = {s['id'] for s in self.snapshots(bd=staging) if s['mine']}
        self.assertEqual((len(ids), len(mine_here), len(mine_there)), (3, 1, 2))
        self.assertFalse(mine_here & mine_there)
        # Staging's keepLast 1 forgets its own older snapshot, never production's (pinned there).
        r = self.job('offsite_forget', 'policy={"keepLast": 1}', bd=staging)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.kv['forgotten'], '1')
        left = {s['id'] for s in self.snapshots()}
        self.assertTrue(mine_here <= left, 'production\'s snapshot is still there')
        self.assertEqual(len(left), 2)

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which('setpriv'), 'needs root and setpriv to run the agent as another user')
    def test_a_snapshot_restic_could_not_complete_is_removed_and_the_push_fails_naming_the_file(self):
        # As an unprivileged user, one file of the set unreadable: restic exits 3 and keeps a snapshot without it.
        import pwd
        nobody = pwd.getpwnam('nobody')
        root = tempfile.mkdtemp(prefix='kadi-ops-offsite-')
        self.addCleanup(shutil.rmtree, root, True)
        os.chmod(root, 0o755)
        bd = os.path.join(root, 'backups')
        os.makedirs(os.path.join(bd, '.kadi-ops'), mode=0o700)
        d = make_set(bd, '2026-11-01T02-00-00Z', {'ab/x': b'readable', 'ab/y': b'secret'})
        for dirpath, dirs, files in os.walk(root):
            for n in dirs + files:
                os.chown(os.path.join(dirpath, n), nobody.pw_uid, nobody.pw_gid)
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        os.chmod(os.path.join(d, 'storage', 'ab', 'y'), 0)
        # Not named .pyz: no bytecode is made beside it (by nobody, in a folder removed at the end).
        shutil.copy(self.pyz, os.path.join(root, 'agent.zip'))
        cfg = json.dumps({'repository': os.path.join(root, 'repo')})
        setpriv = ['setpriv', '--reuid', str(nobody.pw_uid), '--regid', str(nobody.pw_gid), '--clear-groups']
        env = {'PATH': os.environ['PATH'], 'HOME': root}
        # This interpreter if nobody can run it (one built under /root may not be), else the system's.
        python = sys.executable if subprocess.run(setpriv + [sys.executable, '-c', ''], env=env, capture_output=True).returncode == 0 else '/usr/bin/python3'
        as_nobody = setpriv + [python, '-I', '-S', os.path.join(root, 'agent.zip')]
        r = subprocess.run(as_nobody + ['offsite-connect', bd, cfg], input=json.dumps({'password': PASSWORD, 'create': True}), capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        job = os.path.join(root, 'job')
        os.mkdir(job)
        os.chown(job, nobody.pw_uid, nobody.pw_gid)
        push = as_nobody + ['job-verb', 'offsite_push', 'backup_dir=' + bd, 'offsite=' + cfg, 'set=2026-11-01T02-00-00Z']
        jenv = dict(env, JOB_DIR=job, JOB_ID='20261130T000000Z-abc123')
        r = subprocess.run(push, capture_output=True, text=True, env=jenv, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn('restic could not read 1 file(s) of the set', r.stderr)
        self.assertIn('storage/ab/y', r.stderr)
        listed = subprocess.run(as_nobody + ['offsite-list', bd, cfg], capture_output=True, text=True, env=env)
        self.assertEqual(json.loads(listed.stdout)['snapshots'], [], 'the incomplete snapshot does not stand for the set')
        # The same while another restic (a shared repository's other host, here a live process) holds
        # a lock: forget cannot take its exclusive lock, so the incomplete snapshot stays. It is
        # recorded, listed as incomplete, never counted as the set's copy, and the next push removes it.
        holder = subprocess.Popen(setpriv + ['restic', '-r', os.path.join(root, 'repo'), 'backup', '--stdin', '--stdin-filename', 'held'],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env=dict(env, RESTIC_PASSWORD=PASSWORD))
        try:
            for _ in range(100):
                if os.listdir(os.path.join(root, 'repo', 'locks')):
                    break
                time.sleep(0.1)
            r = subprocess.run(push, capture_output=True, text=True, env=jenv, stdin=subprocess.DEVNULL)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn('could not be removed (restic forget:', r.stderr)
            self.assertIn('never counted as the set\'s copy', r.stderr)
            [snap] = json.loads(subprocess.run(as_nobody + ['offsite-list', bd, cfg], capture_output=True, text=True, env=env).stdout)['snapshots']
            self.assertEqual((snap['set'], snap.get('incomplete')), ('2026-11-01T02-00-00Z', True))
            again = subprocess.run(push, capture_output=True, text=True, env=jenv, stdin=subprocess.DEVNULL)
            self.assertNotIn('pushed=already', again.stdout, 'the incomplete snapshot is not the set\'s copy')
        finally:
            holder.communicate(b'', timeout=60)
        # Readable again, the lock gone: the next push forgets what was recorded and makes the set's snapshot.
        os.chmod(os.path.join(d, 'storage', 'ab', 'y'), 0o600)
        r = subprocess.run(push, capture_output=True, text=True, env=jenv, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('pushed=yes', r.stdout)
        self.assertRegex(r.stdout, r'forgot [12] incomplete snapshot\(s\) of earlier pushes')
        [snap] = json.loads(subprocess.run(as_nobody + ['offsite-list', bd, cfg], capture_output=True, text=True, env=env).stdout)['snapshots']
        self.assertNotIn('incomplete', snap)
        self.assertFalse(os.path.exists(offsite.incomplete_path(bd, json.loads(cfg)['repository'])))

    def test_an_incomplete_or_damaged_set_is_not_pushed(self):
        self.connect()
        d = make_set(self.bd, '2026-11-01T02-00-00Z', self.files)
        with open(os.path.join(d, '.verify.json'), 'w') as f:
            json.dump({'ok': False, 'problems': ['x']}, f)
        r = self.job('offsite_push', 'set=2026-11-01T02-00-00Z')
        self.assertEqual(r.returncode, 1)
        self.assertIn('found damaged', r.stderr)
        os.unlink(os.path.join(d, '.verify.json'))
        # Never verified, and files of it gone or cut short since it was made: not copied.
        os.unlink(os.path.join(d, 'storage', 'ab/cd/0003'))
        with open(os.path.join(d, 'storage', 'ab/cd/0007'), 'r+b') as f:
            f.truncate(10)
        r = self.job('offsite_push', 'set=2026-11-01T02-00-00Z')
        self.assertEqual(r.returncode, 1)
        self.assertIn('set 2026-11-01T02-00-00Z does not match its manifest (2 problem(s): storage/ab/cd/0003 is missing; '
                      'storage/ab/cd/0007: size 10, its list says 3000); it is not copied off-site', r.stderr)
        with open(os.path.join(d, 'storage.files.jsonl'), 'ab') as f:
            f.write(b'not json\n')
        self.assertIn('storage.files.jsonl: size', self.job('offsite_push', 'set=2026-11-01T02-00-00Z').stderr)
        os.unlink(os.path.join(d, 'manifest.json'))
        r = self.job('offsite_push', 'set=2026-11-01T02-00-00Z')
        self.assertIn('not a complete backup', r.stderr)
        self.assertEqual(self.snapshots(), [])

    def test_restore_brings_the_set_back_verified_and_never_over_an_existing_one(self):
        self.connect()
        name = '2026-11-01T02-00-00Z'
        make_set(self.bd, name, self.files)
        self.assertEqual(self.job('offsite_push', 'set=' + name).returncode, 0)
        [s] = self.snapshots()
        # A new host: an empty backup directory; without the password nothing is read.
        bd2 = os.path.join(self.root, 'other')
        os.makedirs(os.path.join(bd2, '.kadi-ops'), mode=0o700)
        r = self.job('offsite_restore', 'snapshot=' + s['short'], 'pg_restore=/bin/false', bd=bd2)
        self.assertEqual(r.returncode, 1)
        self.assertIn('this host has no password for', r.stderr)
        self.assertEqual(self.connect(create=False, bd=bd2).returncode, 0)
        r = self.job('offsite_restore', 'snapshot=' + s['short'], 'pg_restore=/bin/false', bd=bd2)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.kv['restored'], name)
        for rel, data in self.files.items():
            self.assertEqual(read(os.path.join(bd2, name, 'storage', rel)), data)
        self.assertTrue(json.loads(read(os.path.join(bd2, name, '.verify.json')))['ok'])
        self.assertFalse([n for n in os.listdir(bd2) if n.startswith('.partial-')])
        # Again: the set is there, it is not touched.
        r = self.job('offsite_restore', 'snapshot=' + s['short'], 'pg_restore=/bin/false', bd=bd2)
        self.assertEqual(r.returncode, 1)
        self.assertIn('never overwritten', r.stderr)

    def restic_that(self, command, does):
        """The real restic on PATH, but one whose COMMAND (backup, prune) does DOES (shell) instead: a
        context in which the agent's jobs run it."""
        wrap = tempfile.mkdtemp(dir=self.root)
        with open(os.path.join(wrap, 'restic'), 'w') as f:
            f.write('#!/bin/sh\nfor a in "$@"; do [ "$a" = %s ] && %s; done\nexec %s "$@"\n' % (command, does, shutil.which('restic')))
        os.chmod(os.path.join(wrap, 'restic'), 0o755)
        return mock.patch.dict(os.environ, {'PATH': wrap + os.pathsep + os.environ['PATH']})

    def test_a_restic_killed_during_a_push_is_said_as_killed(self):
        self.connect()
        make_set(self.bd, '2026-11-01T02-00-00Z', self.files)
        # restic as the OOM killer leaves it: gone with SIGKILL as its backup starts, without a word.
        with self.restic_that('backup', 'kill -9 $$'):
            r = self.job('offsite_push', 'set=2026-11-01T02-00-00Z')
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('failed: restic was killed by SIGKILL (if nobody killed it, the system may have run out of memory', r.stderr)
        self.assertNotIn('gave no reason', r.stderr)

    def test_a_prune_that_did_not_finish_is_run_by_the_next_forget_even_with_nothing_to_forget(self):
        self.connect()
        for day in (1, 2):
            make_set(self.bd, '2026-11-0%dT02-00-00Z' % day, dict(self.files, day=os.urandom(3000)))
            self.assertEqual(self.job('offsite_push', 'set=2026-11-0%dT02-00-00Z' % day).returncode, 0)
        with self.restic_that('prune', '{ echo "Fatal: the disk is on fire" >&2; exit 1; }'):
            r = self.job('offsite_forget', 'policy={"keepLast": 1}')
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(len(self.snapshots()), 1, 'the forget itself was done')
        r = self.job('offsite_forget', 'policy={"keepLast": 1}')
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('pruning the repository (the prune after an earlier forget did not finish)', r.stdout)
        self.assertEqual(r.kv['forgotten'], '0')
        r = self.job('offsite_forget', 'policy={"keepLast": 1}')
        self.assertNotIn('pruning', r.stdout, 'once done, not again')

    def test_a_full_disk_during_a_restore_is_said_as_such_not_as_a_damaged_repository(self):
        if os.geteuid() != 0:
            self.skipTest('mounting needs root')
        self.connect()
        name = '2026-11-01T02-00-00Z'
        make_set(self.bd, name, self.files)  # ~180 KB of files
        self.assertEqual(self.job('offsite_push', 'set=' + name).returncode, 0)
        [s] = self.snapshots()
        bd2 = os.path.join(self.root, 'small')
        os.makedirs(bd2)
        r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=96k,mode=700', 'kadi-ops-test', bd2], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest('cannot mount here: %s' % r.stderr.strip())
        self.addCleanup(subprocess.run, ['umount', '-l', bd2], capture_output=True)
        os.makedirs(os.path.join(bd2, '.kadi-ops'), mode=0o700)
        self.assertEqual(self.connect(create=False, bd=bd2).returncode, 0)
        r = self.job('offsite_restore', 'snapshot=' + s['short'], 'pg_restore=/bin/false', bd=bd2)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('could not be written into %s (no space left on device); nothing was put in place: the set needs more than the' % bd2, r.stderr)
        self.assertNotIn('repository may be damaged', r.stderr)
        self.assertFalse(os.path.exists(os.path.join(bd2, name)))

    def test_a_corrupted_pack_is_found_by_check(self):
        self.connect()
        make_set(self.bd, '2026-11-01T02-00-00Z', self.files)
        self.job('offsite_push', 'set=2026-11-01T02-00-00Z')
        self.assertEqual(self.job('offsite_check', 'subset=100%').returncode, 0)
        packs = []
        for dirpath, _, names in os.walk(os.path.join(self.root, 'repo', 'data')):
            packs += [os.path.join(dirpath, n) for n in names]
        biggest = max(packs, key=os.path.getsize)
        os.chmod(biggest, 0o600)
        with open(biggest, 'r+b') as f:
            f.seek(os.path.getsize(biggest) // 2)
            f.write(b'\0' * 64)
        r = self.job('offsite_check', 'subset=100%')
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn('is damaged', r.stderr)
        # Restoring the snapshot names what could not be restored and what to do; nothing is put in place.
        snap = self.snapshots()[0]['id']
        shutil.rmtree(os.path.join(self.bd, '2026-11-01T02-00-00Z'))  # the local set lost
        r = self.job('offsite_restore', 'snapshot=' + snap)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertRegex(r.stderr, r'restic could not restore \d+ file\(s\) of it \(/storage/ab/cd/\d{4}.*\); the repository may be damaged: '
                                   r'kadi-ops offsite check <host> --read-data-subset 100% says')

    def test_a_confirmed_forget_removes_only_what_was_confirmed_and_the_rules_still_forget(self):
        self.connect()
        for name in ('2026-11-01T02-00-00Z', '2026-11-02T02-00-00Z'):
            make_set(self.bd, name, {'a/b': name.encode()})
            self.assertEqual(self.job('offsite_push', 'set=' + name).returncode, 0)
        old, new = sorted(self.snapshots(), key=lambda s: s['set'])
        policy = 'policy=' + json.dumps({'keepLast': 1})
        # Confirmed: the newest (which the rules keep) — nothing is forgotten.
        r = self.job('offsite_forget', policy, 'only=' + new['short'])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('not forgetting %s: the rules keep it now, or it is gone' % new['short'], r.stdout)
        self.assertEqual(r.kv['forgotten'], '0')
        self.assertEqual(len(self.snapshots()), 2)
        r = self.job('offsite_forget', policy, 'only=' + old['short'])
        self.assertEqual((r.returncode, r.kv['forgotten']), (0, '1'), r.stdout + r.stderr)
        self.assertEqual([s['set'] for s in self.snapshots()], [new['set']])
        self.assertEqual(self.job('offsite_forget', policy, 'only=nothex').returncode, 2)

    def test_check_of_a_repository_that_is_gone_says_so_and_does_not_call_it_damaged(self):
        self.connect()
        shutil.rmtree(json.loads(self.cfg)['repository'])
        r = self.job('offsite_check')
        self.assertEqual(r.returncode, 1)
        self.assertIn('there is no restic repository at', r.stderr)
        self.assertNotIn('is damaged', r.stderr)

    def test_forget_keeps_by_the_rules_and_a_set_pinned_here_and_leaves_other_hosts_alone(self):
        snaps = [{'id': '%02d' % i + 'a' * 62, 'time': '2026-11-%02dT02:00:00.123456Z' % i, 'hostname': 'kadi1', 'set': '2026-11-%02dT02-00-00Z' % i}
                 for i in range(1, 6)] + [{'id': 'f' * 64, 'time': '2026-11-01T01:00:00Z', 'hostname': 'other', 'set': '2026-11-01T01-00-00Z'}]
        make_set(self.bd, '2026-11-01T02-00-00Z', {'a': b'x'})
        open(os.path.join(self.bd, '2026-11-01T02-00-00Z', '.pinned'), 'w').close()
        plan = offsite.forget_plan(snaps, {'keepLast': 2}, self.bd, 'kadi1')
        kept = {k['id'][:2]: k['reasons'] for k in plan['keep']}
        self.assertEqual(sorted(kept), ['01', '04', '05'])
        self.assertIn('pinned', kept['01'])
        self.assertEqual(sorted(r['id'][:2] for r in plan['remove']), ['02', '03'])
        # The newest set verified here keeps its snapshot, as local retention keeps the set.
        make_set(self.bd, '2026-11-02T02-00-00Z', {'a': b'y'})
        with open(os.path.join(self.bd, '2026-11-02T02-00-00Z', '.verify.json'), 'w') as f:
            json.dump({'ok': True}, f)
        kept = {k['id'][:2]: k['reasons'] for k in offsite.forget_plan(snaps, {'keepLast': 2}, self.bd, 'kadi1')['keep']}
        self.assertEqual(kept['02'], ['newest verified'])

    def test_forget_orders_snapshots_by_their_sets_time_not_by_when_they_were_pushed(self):
        # The newest set pushed first, an older one copied later: keepLast 1 keeps the newest set's
        # copy (local retention's choice), not the last pushed.
        snaps = [{'id': 'a' * 64, 'time': '2026-11-03T09:00:00Z', 'hostname': 'kadi1', 'set': '2026-11-03T02-00-00Z'},
                 {'id': 'b' * 64, 'time': '2026-11-03T10:00:00Z', 'hostname': 'kadi1', 'set': '2026-11-01T02-00-00Z'},
                 {'id': 'c' * 64, 'time': '2026-11-02T03:00:00Z', 'hostname': 'kadi1', 'set': '2026-11-02T02-00-00Z'}]
        plan = offsite.forget_plan(snaps, {'keepLast': 1}, self.bd, 'kadi1')
        self.assertEqual([k['id'][0] for k in plan['keep']], ['a'])
        self.assertEqual(sorted(r['id'][0] for r in plan['remove']), ['b', 'c'])
        # Two sets pushed on one day but made on two: keepDaily 2 keeps both.
        plan = offsite.forget_plan(snaps[:2], {'keepDaily': 2}, self.bd, 'kadi1')
        self.assertEqual(sorted(k['id'][0] for k in plan['keep']), ['a', 'b'])

    def test_snapshot_times_with_any_number_of_fraction_digits(self):
        # restic writes nanoseconds without trailing zeros: 0 to 9 digits.
        for t, want in (('2026-03-29T00:45:00Z', 0), ('2026-03-29T00:45:00.5Z', 500000), ('2026-03-29T02:45:00.1234+02:00', 123400),
                        ('2026-03-29T00:45:00.12345Z', 123450), ('2026-03-29T00:45:00.123456789Z', 123456)):
            with self.subTest(t):
                got = offsite.snapshot_time({'time': t})
                self.assertEqual((got.hour, got.minute, got.microsecond, got.utcoffset().total_seconds()), (0, 45, want, 0))

    def test_snapshot_times_are_compared_in_utc(self):
        a = {'time': '2026-03-29T01:30:00.123456789+01:00'}   # 00:30 UTC
        b = {'time': '2026-03-29T00:45:00Z'}
        self.assertLess(offsite.snapshot_time(a), offsite.snapshot_time(b))
        plan = offsite.forget_plan([dict(a, id='a' * 64, hostname='h', set=None), dict(b, id='b' * 64, hostname='h', set=None)], {'keepLast': 1}, self.bd, 'h')
        self.assertEqual([k['id'][0] for k in plan['keep']], ['b'])

    def test_a_restic_older_than_supported_is_refused_by_name(self):
        fake = os.path.join(self.root, 'oldbin')
        os.mkdir(fake)
        with open(os.path.join(fake, 'restic'), 'w') as f:
            f.write('#!/bin/sh\necho "restic 0.12.1 compiled with go1.15.9 on linux/amd64"\n')
        os.chmod(os.path.join(fake, 'restic'), 0o755)
        r = subprocess.run([sys.executable, '-I', '-S', self.pyz, 'offsite-list', self.bd, self.cfg], capture_output=True, text=True,
                           env={'PATH': fake + ':/usr/bin:/bin'}, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 1)
        self.assertIn('restic 0.12.1 is older than 0.14.0, the oldest Kadi Ops supports', r.stderr)

    def test_restic_missing_is_said_clearly(self):
        r = subprocess.run([sys.executable, '-I', '-S', self.pyz, 'offsite-list', self.bd, self.cfg], capture_output=True, text=True,
                           env={'PATH': '/nonexistent'}, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 1)
        self.assertIn('restic is not installed', r.stderr)


class ConfigTest(unittest.TestCase):
    def test_refused_access_is_not_taken_for_a_missing_repository(self):
        denied = ('Fatal: unable to open config file: Stat: The AWS Access Key Id you provided does not exist in our records.\n'
                  'Is there a repository at the following location?\ns3:https://s3.example.org/b/kadi\n')
        self.assertFalse(offsite._repository_missing(denied))
        self.assertIn('refused access', offsite.known_cause('s3:https://s3.example.org/b/kadi', 'opening the repository', denied))
        missing = 'Fatal: unable to open config file: stat /mnt/offsite/kadi/config: no such file or directory\nIs there a repository at the following location?\n'
        self.assertTrue(offsite._repository_missing(missing))
        self.assertIn('there is no restic repository at', offsite.known_cause('/mnt/offsite/kadi', 'opening the repository', missing))

    def test_a_relative_repository_path_is_refused(self):
        from kadi_ops_agent.common import Usage
        for repo in ('relrepo', 'backups/restic', 'local:relrepo'):
            with self.assertRaises(Usage) as e:
                offsite.parse_config({'repository': repo})
            self.assertIn('is a relative path', str(e.exception), repo)
        for repo in ('/mnt/offsite/kadi', 'local:/mnt/offsite/kadi', 'sftp:backup@host:/srv/restic'):
            self.assertEqual(offsite.parse_config({'repository': repo})['repository'], repo)

    def test_a_password_in_the_repository_address_is_refused(self):
        for repo in ('rest:https://user:secret@host/repo', 'sftp://u:secret@host//r'):
            with self.assertRaises(offsite.Usage if hasattr(offsite, 'Usage') else Exception) as e:
                offsite.parse_config({'repository': repo})
            self.assertNotIn('secret', str(e.exception))

    def test_sftp_goes_through_batch_mode_ssh_that_checks_the_host_key(self):
        cmd = offsite.sftp_command({'repository': 'sftp://backup@127.0.0.1:2222//srv/restic', 'sftp': {'identityFile': '/home/kadi/.ssh/off', 'knownHostsFile': '/home/kadi/.ssh/kh'}})
        self.assertEqual(cmd, 'ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=30 -o ServerAliveInterval=15 '
                              '-o ServerAliveCountMax=4 -o UserKnownHostsFile=/home/kadi/.ssh/kh '
                              '-i /home/kadi/.ssh/off -o IdentitiesOnly=yes -p 2222 -l backup 127.0.0.1 -s sftp')
        self.assertEqual(offsite.sftp_command({'repository': 'sftp:b@off.example:/r'}),
                         'ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=30 -o ServerAliveInterval=15 '
                         '-o ServerAliveCountMax=4 -l b off.example -s sftp')
        self.assertIsNone(offsite.sftp_command({'repository': 's3:https://s3.example/b'}))
        with self.assertRaises(Exception):
            offsite.sftp_command({'repository': 'sftp://-oProxyCommand=x//r'})

    def test_the_password_reaches_restic_as_a_file_and_inherited_restic_variables_are_dropped(self):
        os.environ['RESTIC_PASSWORD'] = 'inherited'
        os.environ['AWS_SECRET_ACCESS_KEY'] = 'inherited'
        try:
            repo = offsite.Repo('/b', {'repository': 's3:https://s3.example/b', 'caCert': '/etc/ca.pem'})
            env = repo.env()
            self.assertNotIn('RESTIC_PASSWORD', env)
            self.assertNotIn('AWS_SECRET_ACCESS_KEY', env)
            self.assertEqual(env['RESTIC_PASSWORD_FILE'], offsite.key_path('/b', 's3:https://s3.example/b'))
            self.assertRegex(env['RESTIC_PASSWORD_FILE'], r'^/b/\.kadi-ops/offsite/[0-9a-f]{16}/key$')
            self.assertEqual(repo.argv('snapshots'), ['restic', '--cacert', '/etc/ca.pem', 'snapshots'])
        finally:
            del os.environ['RESTIC_PASSWORD'], os.environ['AWS_SECRET_ACCESS_KEY']


if __name__ == '__main__':
    unittest.main()
