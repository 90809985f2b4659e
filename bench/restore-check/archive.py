"""What the restore's check of an archive-mode set adds (trees._see_archive_dirs: the archive read
whole through Python's tarfile, each directory shown to treesync.LiveDirs in the live tree), next to
what reading the same archive whole costs by hand (`zstd -dc ARCHIVE | tar -tf -`, or gzip) and what
the restore's extraction of it costs (`... | tar -xf -`, which the restore does anyway), on one
Kadi-shaped tree (bench/copier/tree.py) archived as the backup does (tar --sort=name, zstd -3 or
gzip -1), alternated ROUNDS times; wall seconds and the check's peak memory. Not part of npm test.

Usage: python3 bench/restore-check/archive.py [FILES] [ROUNDS] [DIR]
  DIR (default /tmp/kadi-ops-archive-check) holds the tree and the archive; removed at the end."""
import os
import resource
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'agent'))
from kadi_ops_agent.common import decompressor  # noqa: E402
from kadi_ops_agent.components.trees import _see_archive_dirs  # noqa: E402
from kadi_ops_agent.treesync import LiveDirs  # noqa: E402


def main():
    files = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    d = sys.argv[3] if len(sys.argv) > 3 else '/tmp/kadi-ops-archive-check'
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    try:
        live = os.path.join(d, 'live')
        subprocess.run([sys.executable, os.path.join(REPO, 'bench', 'copier', 'tree.py'), live, str(files)], check=True)
        zstd = shutil.which('zstd')
        archive = os.path.join(d, 'storage.tar.zst' if zstd else 'storage.tar.gz')
        with open(archive, 'wb') as f:
            tar = subprocess.Popen(['tar', '-C', live, '--sort=name', '-cf', '-', '.'], stdout=subprocess.PIPE)
            subprocess.run(['zstd', '-q', '-T0', '-3'] if zstd else ['gzip', '-1'], stdin=tar.stdout, stdout=f, check=True)
            tar.stdout.close()
            tar.wait()
        print('tree: %d files; archive %s, %.0f MiB' % (files, os.path.basename(archive), os.path.getsize(archive) / 2**20))
        for _ in range(rounds):
            t = time.perf_counter()
            dec = subprocess.Popen(decompressor(archive), stdout=subprocess.PIPE)
            subprocess.run(['tar', '-tf', '-'], stdin=dec.stdout, stdout=subprocess.DEVNULL, check=True)
            dec.stdout.close()
            dec.wait()
            by_hand = time.perf_counter() - t
            # What the restore does with the archive anyway: extract it whole (decompress | tar -x).
            out = os.path.join(d, 'extract')
            os.mkdir(out)
            t = time.perf_counter()
            dec = subprocess.Popen(decompressor(archive), stdout=subprocess.PIPE)
            subprocess.run(['tar', '-C', out, '-xf', '-'], stdin=dec.stdout, check=True)
            dec.stdout.close()
            dec.wait()
            extract = time.perf_counter() - t
            shutil.rmtree(out)
            t = time.perf_counter()
            dirs = LiveDirs(live)
            _see_archive_dirs(archive, dirs)
            dirs.close()
            check = time.perf_counter() - t
            print('list (decompress | tar -tf) %.2f s, extract (decompress | tar -xf) %.2f s, the check %.2f s (%.2fx the list, %.2fx the '
                  'extraction), %d directories refused; peak RSS %.0f MiB'
                  % (by_hand, extract, check, check / by_hand, check / extract, dirs.n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == '__main__':
    main()
