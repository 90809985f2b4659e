"""Quick verification of a backup set: every artifact's size and sha256 against the manifest, every
tree file's size and sha256 against its tree's file list, files in a tree the list does not name,
archives' file and byte counts, and the dump's table of contents.

Prints a `[progress] verify ...` line as it hashes, a `PROBLEM: ...` line per problem (the first
200) and `checked N files, B bytes: P problem(s)`; writes the result (level quick, ok, problems,
problemCount, files, bytes, at) to OUT for verify-result.

Usage: verify-quick SET_DIR TOC_OK TOC_ENTRIES OUT ARCHIVES_TSV
  TOC_OK       yes when `pg_restore -l` read db.dump, else no
  TOC_ENTRIES  the entries it listed (empty: 0)
  ARCHIVES_TSV one `NAME<TAB>FILES BYTES` (or `NAME<TAB>unreadable`) line per archive of the set
"""
import array
import bisect
import collections
import concurrent.futures
import datetime
import hashlib
import json
import os

from .common import Progress, one_line, sha256

USAGE = 'usage: verify-quick SET_DIR TOC_OK TOC_ENTRIES OUT ARCHIVES_TSV'

# Files hashed at once at most (4 threads; the rest wait as list lines not yet read).
WINDOW = 256


def path_key(rel):
    """A 64-bit key of a tree path (its bytes, as a name that is not UTF-8 has them): whether a file
    found in the tree is in the list is asked of these keys. Two paths share one with a chance of
    about n²/2⁶⁵ (~3·10⁻⁸ for a million files), and that could only hide a file the list does not
    name; every listed file is still checked by its own size and sha256."""
    return int.from_bytes(hashlib.blake2b(os.fsencode(rel), digest_size=8).digest(), 'little')


def _listed(keys, k):
    i = bisect.bisect_left(keys, k)
    return i < len(keys) and keys[i] == k


def main(argv):
    if len(argv) != 5:
        raise SystemExit(USAGE)
    d, toc_ok, out = argv[0], argv[1] == 'yes', argv[3]
    try:
        toc_n = int(argv[2] or 0)
    except ValueError:
        raise SystemExit('verify-quick: TOC_ENTRIES is not a number: %r\n%s' % (argv[2], USAGE))
    archives = dict(l.rstrip('\n').split('\t', 1) for l in open(argv[4]) if '\t' in l)
    m = json.load(open(os.path.join(d, 'manifest.json'), encoding='utf-8'))
    problems = []
    checked_files = 0; checked_bytes = 0
    # Everything hashed: the artifacts, and the files of each tree (its list's artifact records their bytes).
    progress = Progress('verify', sum(a.get('size', 0) + (a.get('bytes', 0) if a.get('tree') else 0) for a in m.get('artifacts', [])))
    bad = set()
    for a in m.get('artifacts', []):
        p = os.path.join(d, a['name'])
        if not os.path.isfile(p):
            problems.append('missing artifact %s' % a['name']); bad.add(a['name']); continue
        size = os.path.getsize(p)
        if size != a['size']:
            problems.append('%s: size %d, manifest says %d' % (a['name'], size, a['size'])); bad.add(a['name']); continue
        if sha256(p) != a['sha256']:
            problems.append('%s: sha256 does not match the manifest' % a['name'])
            bad.add(a['name'])
        progress.add(size)
        checked_files += 1; checked_bytes += size
        if a.get('archiveOf'):
            got = archives.get(a['name'], 'unreadable')
            if got == 'unreadable' or len(got.split()) != 2:
                problems.append('%s: tar cannot read it' % a['name'])
            elif (int(got.split()[0]), int(got.split()[1])) != (a.get('files'), a.get('bytes')):
                problems.append('%s: %s files/bytes, manifest says %s %s' % (a['name'], got, a.get('files'), a.get('bytes')))
        if a['name'] == 'db.dump':
            if not toc_ok: problems.append('db.dump: pg_restore -l cannot read it')
            elif a.get('tocEntries') is not None and toc_n != a['tocEntries']:
                problems.append('db.dump: %d TOC entries, manifest says %d' % (toc_n, a['tocEntries']))
    for a in m.get('artifacts', []):
        tree = a.get('tree')
        if not tree: continue
        if a['name'] in bad:
            # The list itself is damaged, so it cannot vouch for the tree.
            problems.append('%s: tree not checked, its file list is damaged' % tree); continue
        root = os.path.join(d, tree)
        def check(e, tree=tree, root=root):
            rel, size, mtime, digest = e
            p = os.path.join(root, rel)
            try:
                st = os.stat(p)
            except FileNotFoundError:
                return '%s/%s: missing' % (tree, rel)
            if st.st_size != size:
                return '%s/%s: size %d, list says %d' % (tree, rel, st.st_size, size)
            if sha256(p) != digest:
                return '%s/%s: sha256 does not match' % (tree, rel)
            return None
        # The list is streamed and at most WINDOW files are in flight: memory does not grow with the
        # number of files (a million-file tree's list held as objects took ~2 GiB). What the walk
        # below needs of it is a 64-bit key per path, 8 bytes each.
        keys = array.array('Q')
        pending = collections.deque()

        def drain(limit):
            while len(pending) > limit:
                size, fut = pending.popleft()
                r = fut.result()
                if r: problems.append(r)
                progress.add(size)
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex, \
                open(os.path.join(d, a['name']), encoding='utf-8') as listing:
            for line in listing:
                e = json.loads(line)
                keys.append(path_key(e[0]))
                checked_files += 1; checked_bytes += e[1]
                pending.append((e[1], ex.submit(check, e)))
                drain(WINDOW)
            drain(0)
        keys = array.array('Q', sorted(keys))
        for dirpath, dirnames, filenames in os.walk(root):
            for fn in filenames:
                rel = os.path.relpath(os.path.join(dirpath, fn), root)
                if not _listed(keys, path_key(rel)): problems.append('%s/%s: not in the file list' % (tree, rel))
    result = {'level': 'quick', 'ok': not problems, 'problems': problems[:1000], 'problemCount': len(problems),
              'files': checked_files, 'bytes': checked_bytes,
              'at': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}
    for p in problems[:200]: print('PROBLEM: ' + one_line(p))
    with open(out, 'w') as f: json.dump(result, f)
    print('checked %d files, %d bytes: %d problem(s)' % (checked_files, checked_bytes, len(problems)))
