"""What the restore's check of the live tree's directories (treesync.LiveDirs) adds to its check of
the set against its lists (treesync.check_set), in the same process on the same tree: a Kadi-shaped
tree (bench/copier/tree.py), copied into a set by the agent's copier, then check_set without and
with the live side, alternated ROUNDS times; wall seconds per run. Not part of npm test.

Usage: python3 bench/restore-check/cost.py [FILES] [ROUNDS] [DIR]
  DIR (default /tmp/kadi-ops-restore-check) holds the tree and the set; removed at the end."""
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'agent'))
from kadi_ops_agent.treesync import LiveDirs, check_set  # noqa: E402


def main():
    files = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    d = sys.argv[3] if len(sys.argv) > 3 else '/tmp/kadi-ops-restore-check'
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, 'set'))
    try:
        live, tree = os.path.join(d, 'live'), os.path.join(d, 'set', 'storage')
        subprocess.run([sys.executable, os.path.join(REPO, 'bench', 'copier', 'tree.py'), live, str(files)], check=True)
        pyz = os.path.join(d, 'agent.pyz')
        subprocess.run([sys.executable, os.path.join(REPO, 'agent', 'build.py'), pyz], check=True)
        subprocess.run([sys.executable, '-I', '-S', pyz, 'copier', 'storage', live, tree, ''], check=True, stdout=subprocess.DEVNULL)
        listing, record = tree + '.files.jsonl', os.path.join(d, 'set', 'storage.entries.jsonl')
        with open(record, encoding='utf-8') as f:
            dirs = sum(1 for l in f if l.startswith('["d"'))
        print('tree: %d files, %d directories' % (files, dirs))
        for _ in range(rounds):
            for side in ('set only', 'set and live'):
                t = time.perf_counter()
                live_dirs = LiveDirs(live) if side == 'set and live' else None
                n, _first = check_set('storage', tree, listing, record, live=live_dirs)
                if live_dirs is not None:
                    live_dirs.close()
                print('%-12s %.2f s (%d problems)' % (side, time.perf_counter() - t, n + (live_dirs.n if live_dirs else 0)))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == '__main__':
    main()
