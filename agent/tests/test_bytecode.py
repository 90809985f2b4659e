"""The agent's bytecode beside its zip (kadi_ops_agent/bytecode.py, the zip's entry point in
agent/build.py): made by a first start in the background, used by the next ones when it is this
user's alone and its checksum holds; never when broken, writable by others or a link, and never a
failure: the zip itself runs then, as it always did."""
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
import zipfile

from support import AGENT_SOURCE, build

sys.path.insert(0, AGENT_SOURCE)
from kadi_ops_agent import bytecode  # noqa: E402


class BytecodeTest(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = os.path.join(tmp.name, 'agent')
        os.makedirs(self.dir, 0o700)
        self.pyz = os.path.join(self.dir, 'kadi-ops-agent-0123456789abcdef.pyz')
        with open(self.pyz, 'wb') as f:
            f.write(build.build())
        self.cache = bytecode.cache_path(self.pyz)
        self.assertEqual(self.cache, self.pyz[:-4] + '.%s.pyz' % sys.implementation.cache_tag)
        self.bd = os.path.join(tmp.name, 'bd')
        os.makedirs(self.bd)
        # Whatever a test started in the background is over before its folder goes.
        self.addCleanup(self.settled)

    def agent(self, *argv):
        """Runs the agent verbosely: which archive each module came from is on stderr."""
        r = subprocess.run([sys.executable, '-v', '-I', '-S', self.pyz, *argv], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        return r

    def loaded_from(self, r):
        """The archive kadi_ops_agent.common was imported from (Python 3.9's and 3.11's -v lines)."""
        m = re.search(r"^import '?kadi_ops_agent\.common'? # .*?(/\S*?\.pyz)/kadi_ops_agent/", r.stderr, re.M)
        self.assertTrue(m, 'no import line of kadi_ops_agent.common in: %s' % r.stderr[-2000:])
        return m.group(1)

    def intact_cache(self, timeout=60):
        """The cache's stat once it is there and intact (made in the background)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                with open(self.cache, 'rb') as f, open(self.pyz, 'rb') as z:
                    if bytecode.intact(f.read(), z.read()):
                        return os.lstat(self.cache)
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        self.fail('no intact cache after %d s: %s' % (timeout, os.listdir(self.dir)))

    def settled(self, timeout=60):
        end = time.monotonic() + timeout
        while any('.tmp-' in n or n.endswith('.making') for n in os.listdir(self.dir)) and time.monotonic() < end:
            time.sleep(0.05)

    def test_the_first_start_makes_it_and_the_next_use_it_with_the_same_answers(self):
        first = self.agent('lock-status', self.bd)
        self.assertEqual(first.stdout, 'lock=free\n')
        self.assertEqual(self.loaded_from(first), self.pyz)
        st = self.intact_cache()
        self.assertEqual(st.st_mode & 0o777, 0o600)
        with zipfile.ZipFile(self.pyz) as z:
            sources = z.namelist()
        with zipfile.ZipFile(self.cache) as z:
            cached = set(z.namelist())
        for name in sources:
            self.assertIn(name, cached)
            if name.endswith('.py') and name != '__main__.py':
                self.assertIn(name + 'c', cached)
        again = self.agent('lock-status', self.bd)
        self.assertEqual(self.loaded_from(again), self.cache)
        # And what this interpreter takes from it is the bytecode, not the sources beside it.
        files = subprocess.run([sys.executable, '-I', '-S', '-c', 'import sys; sys.path.insert(0, sys.argv[1]); '
                                'import kadi_ops_agent.common as c, kadi_ops_agent.jobs as j; print(c.__file__); print(j.__file__)',
                                self.cache], capture_output=True, text=True, check=True).stdout.split()
        self.assertEqual(files, [os.path.join(self.cache, 'kadi_ops_agent', m + '.pyc') for m in ('common', 'jobs')])
        self.assertEqual(again.stdout, first.stdout)
        # A verb that fails says the same from either.
        usage = [subprocess.run([sys.executable, '-I', '-S', self.pyz, 'job-tail'], capture_output=True, text=True)]
        os.rename(self.cache, self.cache + '.aside')
        usage.append(subprocess.run([sys.executable, '-I', '-S', self.pyz, 'job-tail'], capture_output=True, text=True))
        self.intact_cache()  # made again: it was missing
        self.assertEqual([(u.returncode, u.stderr) for u in usage], [(2, usage[0].stderr)] * 2)
        self.assertIn('usage: job-tail', usage[0].stderr)
        os.unlink(self.cache + '.aside')
        self.settled()
        self.assertEqual(sorted(os.listdir(self.dir)), sorted([os.path.basename(self.pyz), os.path.basename(self.cache)]))

    def test_a_broken_cache_is_never_used_and_is_made_again(self):
        bytecode.make(self.pyz, self.cache)
        with open(self.cache, 'r+b') as f:
            data = bytearray(f.read())
            at = len(data) // 2
            data[at] ^= 0xFF
            f.seek(0)
            f.write(data)
        with open(self.pyz, 'rb') as z:
            self.assertFalse(bytecode.intact(bytes(data), z.read()))
        r = self.agent('lock-status', self.bd)
        self.assertEqual(r.stdout, 'lock=free\n')
        self.assertEqual(self.loaded_from(r), self.pyz)
        self.intact_cache()  # the broken one removed, a new one made
        self.assertEqual(self.loaded_from(self.agent('lock-status', self.bd)), self.cache)

    def test_a_cache_others_may_write_or_a_link_in_its_place_is_never_used(self):
        bytecode.make(self.pyz, self.cache)
        os.chmod(self.cache, 0o620)
        with open(self.cache, 'rb') as f:
            data = f.read()
        self.assertEqual(self.loaded_from(self.agent('lock-status', self.bd)), self.pyz)
        time.sleep(0.5)
        with open(self.cache, 'rb') as f:
            self.assertEqual(f.read(), data, 'not used, and not touched either: it is not ours to judge')
        os.chmod(self.cache, 0o600)
        self.assertEqual(self.loaded_from(self.agent('lock-status', self.bd)), self.cache)
        # A link to an intact cache elsewhere: not followed, and replaced by a cache of its own.
        elsewhere = os.path.join(os.path.dirname(self.dir), 'elsewhere.pyz')
        os.rename(self.cache, elsewhere)
        os.symlink(elsewhere, self.cache)
        self.assertEqual(self.loaded_from(self.agent('lock-status', self.bd)), self.pyz)
        end = time.monotonic() + 60
        while os.path.islink(self.cache) and time.monotonic() < end:
            time.sleep(0.05)
        self.assertFalse(os.path.islink(self.cache))
        self.intact_cache()
        self.assertTrue(os.path.exists(elsewhere), 'what the link pointed to is left alone')


    def test_bytecode_of_another_zip_under_the_same_name_is_never_used(self):
        # A zip rebuilt (or installed again) under the same name: the bytecode of the one before is
        # another zip's, whatever its name says.
        bytecode.make(self.pyz, self.cache)
        with open(self.pyz, 'rb') as f:
            original = f.read()
        import zipfile
        with zipfile.ZipFile(self.pyz, 'a') as z:
            z.writestr('kadi_ops_agent/rebuilt_marker.py', '# another build\n')
        r = self.agent('lock-status', self.bd)
        self.assertEqual(self.loaded_from(r), self.pyz)
        self.intact_cache()  # made again, from this zip
        with zipfile.ZipFile(self.cache) as z:
            self.assertIn('kadi_ops_agent/rebuilt_marker.pyc', z.namelist())
        with open(self.pyz, 'rb') as f:
            self.assertNotEqual(f.read(), original)
        self.assertEqual(self.loaded_from(self.agent('lock-status', self.bd)), self.cache)

    def test_a_fifo_in_its_place_does_not_hold_the_agent_up(self):
        os.mkfifo(self.cache, 0o600)
        r = self.agent('lock-status', self.bd)  # a blocking open would wait for a writer forever
        self.assertEqual(self.loaded_from(r), self.pyz)
        self.intact_cache()  # the FIFO is no cache: removed, and a cache made


    @unittest.skipUnless(os.geteuid() == 0, 'needs root: a directory of another user')
    def test_root_leaves_no_file_of_its_own_in_another_users_directory(self):
        os.chown(self.dir, 65534, 65534)
        self.assertEqual(self.loaded_from(self.agent('lock-status', self.bd)), self.pyz)
        time.sleep(1)  # a background make would have made its file within milliseconds
        self.assertEqual(os.listdir(self.dir), [os.path.basename(self.pyz)])
        os.chown(self.dir, 0, 0)
        self.agent('lock-status', self.bd)
        self.intact_cache()

    def test_old_agents_unused_for_a_month_go_with_their_bytecode_and_no_other(self):
        month = time.time() - 31 * 86400

        def old_agent(hexname, age=month):
            p = os.path.join(self.dir, 'kadi-ops-agent-%s.pyz' % hexname)
            for f in (p, p[:-4] + '.cpython-39.pyz', p[:-4] + '.%s.pyz' % sys.implementation.cache_tag):
                with open(f, 'wb') as out:
                    out.write(b'old')
            os.utime(p, (age, age))
            return p
        stale = old_agent('aaaaaaaaaaaaaaaa')
        recent = old_agent('bbbbbbbbbbbbbbbb', time.time() - 29 * 86400)
        linked = old_agent('cccccccccccccccc')
        running = old_agent('dddddddddddddddd')
        os.symlink(os.path.basename(linked), os.path.join(self.dir, 'kadi-ops-agent.pyz'))
        with open(os.path.join(self.dir, 'kadi-ops-agent-eeeeeeeeeeeeeeee.pyz.notes'), 'w'):
            pass  # not an agent's name: never touched
        os.utime(self.pyz, (month, month))  # the one that runs now, however old
        holder = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', running])
        self.addCleanup(holder.wait)
        self.addCleanup(holder.kill)
        time.sleep(0.2)

        self.assertEqual(bytecode.prune_old(self.pyz), [os.path.basename(stale)])
        left = sorted(os.listdir(self.dir))
        self.assertFalse([n for n in left if n.startswith('kadi-ops-agent-aaaa')], left)
        for p in (recent, linked, running):
            self.assertIn(os.path.basename(p[:-4] + '.cpython-39.pyz'), left)
            self.assertIn(os.path.basename(p), left)
        self.assertIn(os.path.basename(self.pyz), left)
        self.assertIn('kadi-ops-agent-eeeeeeeeeeeeeeee.pyz.notes', left)

        # A start marks its zip used; the new agent's first start (its bytecode made) prunes.
        before = os.stat(self.pyz).st_mtime
        holder.kill()
        holder.wait()
        self.agent('lock-status', self.bd)
        self.assertGreater(os.stat(self.pyz).st_mtime, before + 86400)
        self.intact_cache()
        self.settled()
        end = time.monotonic() + 30
        while os.path.exists(running) and time.monotonic() < end:
            time.sleep(0.05)
        self.assertFalse(os.path.exists(running), os.listdir(self.dir))
        self.assertTrue(os.path.exists(recent) and os.path.exists(linked))

if __name__ == '__main__':
    unittest.main()
