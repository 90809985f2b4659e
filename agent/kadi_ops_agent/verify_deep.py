"""The check at the end of a deep verification, once the set's dump was restored and read: row counts
of the restored tables against those taken at backup time, and the set's own files against the
restored database's `file` rows (size and Kadi's MD5, also of chunked uploads).

Inputs, in JOB_DIR, one JSON value per line (identifiers with newlines, tabs or quotes cannot split
a line): restored.counts.jsonl (`["schema", "table", rows]` per table), restored.files.jsonl
(`["id", size, "checksum", "state"]` per local file row), and restored.err (psql's errors, quoted in
a problem when reading them failed). Expected counts: SET_DIR/db.counts.json
(`{"tables": [[schema, table, rows], ...]}`) or, in sets made before it, db.counts.tsv
(`schema.table<TAB>rows` lines, compared by those names).

Writes JOB_DIR/deep.json (problems and warnings: the first 1,000 of each, problemCount and
warningCount: all of them; summary: mode, tablesCompared, fileRows, extraFiles) for
verify-result and prints `deep: T tables compared, F file rows checked, E extra files (MODE)`.

Usage: deep-check SET_DIR JOB_DIR CHUNK_SIZE MODE COUNT_OK FILES_OK
  CHUNK_SIZE  Kadi's UPLOAD_CHUNK_SIZE in bytes (empty or 0: unknown, powers of two are tried)
  MODE        where the dump was restored: throwaway-cluster or scratch-database
  COUNT_OK, FILES_OK  yes when reading the counts, the file rows succeeded, else no
"""
import collections
import concurrent.futures
import hashlib
import json
import os
import re

from .common import walk_tree
from .verify_quick import KEEP, KeySet, Problems

USAGE = 'usage: deep-check SET_DIR JOB_DIR CHUNK_SIZE MODE COUNT_OK FILES_OK'


def main(argv):
    if len(argv) != 6:
        raise SystemExit(USAGE)
    d, job, mode = argv[0], argv[1], argv[3]
    try:
        chunk_size = int(argv[2] or 0)
    except ValueError:
        raise SystemExit('deep-check: CHUNK_SIZE is not a number: %r\n%s' % (argv[2], USAGE))
    count_ok, files_ok = argv[4] == 'yes', argv[5] == 'yes'
    problems, warnings = Problems(), Problems()  # the first KEEP of each, counted exactly
    def shown(x, quote=True):
        # An identifier as SQL would write it, control characters escaped: one line, unambiguous.
        if quote and not re.fullmatch(r'[a-z_][a-z0-9_$]*', x): x = '"' + x.replace('"', '""') + '"'
        return re.sub(r'[\x00-\x1f\x7f\u2028\u2029]', lambda c: '\\x%02x' % ord(c.group()) if ord(c.group()) < 256 else '\\u%04x' % ord(c.group()), x)
    def err_line():
        try: return ' '.join(open(os.path.join(job, 'restored.err'), encoding='utf-8', errors='replace').read().split())[:400]
        except FileNotFoundError: return ''
    # Row counts taken at backup time: db.counts.json ([schema, table, rows] per table); sets made
    # before it have db.counts.tsv ("schema.table<TAB>rows" lines), compared by those names.
    expected, old_names = {}, False
    try:
        for s, t, c in json.load(open(os.path.join(d, 'db.counts.json'), encoding='utf-8'))['tables']:
            expected[(s, t)] = int(c)
    except FileNotFoundError:
        try:
            old_names = True
            for l in open(os.path.join(d, 'db.counts.tsv'), encoding='utf-8'):
                if '\t' in l:
                    t, c = l.rstrip('\n').rsplit('\t', 1); expected[t] = int(c)
        except FileNotFoundError:
            warnings.append('the set recorded no row counts')
    restored = {}
    if count_ok:
        for l in open(os.path.join(job, 'restored.counts.jsonl'), encoding='utf-8'):
            if not l.strip(): continue
            s, t, c = json.loads(l)
            restored['%s.%s' % (s, t) if old_names else (s, t)] = int(c)
    else:
        problems.append('counting rows in the restored database failed: %s' % err_line())
    def name(k): return shown(k, False) if isinstance(k, str) else '%s.%s' % (shown(k[0]), shown(k[1]))
    for t, c in (sorted(expected.items()) if count_ok else []):
        if t not in restored: problems.append('table %s: missing after restore' % name(t))
        elif restored[t] != c: problems.append('table %s: %d rows restored, %d at backup time' % (name(t), restored[t], c))
    root = os.path.join(d, 'storage')
    if not os.path.isdir(root):
        warnings.append('storage is archived; file cross-check skipped')
    elif not files_ok:
        problems.append('reading the file table of the restored database failed: %s' % err_line())
    def file_rows():
        # Read as they are checked: a million rows are never held at once.
        if os.path.isdir(root) and files_ok:
            with open(os.path.join(job, 'restored.files.jsonl'), encoding='utf-8') as f:
                for l in f:
                    if l.strip(): yield json.loads(l)
    def rel_of(fid):
        return '/'.join((fid[0:2], fid[2:4], fid[4:6], fid[6:]))
    def path_of(fid):
        return os.path.join(root, rel_of(fid))
    def md5_plain(p):
        h = hashlib.md5()
        with open(p, 'rb') as f:
            for b in iter(lambda: f.read(1 << 20), b''): h.update(b)
        return h.hexdigest()
    def md5_chunked(p, chunk):
        digests = b''; n = 0
        with open(p, 'rb') as f:
            for b in iter(lambda: f.read(chunk), b''):
                digests += hashlib.md5(b).digest(); n += 1
        return '%s-%d' % (hashlib.md5(digests).hexdigest(), n)
    def md5_matches(p, size, checksum):
        # Kadi: plain MD5 of the content, or for chunked uploads the MD5 of the chunks' binary MD5
        # digests followed by "-<number of chunks>". The chunk size is Kadi's UPLOAD_CHUNK_SIZE when
        # known; otherwise every power of two that gives that number of chunks is tried.
        m = re.match(r'^([0-9a-f]{32})-(\d+)$', checksum)
        if not m:
            return md5_plain(p) == checksum
        n = int(m.group(2))
        candidates = ([chunk_size] if chunk_size > 0 else []) + [1 << k for k in range(16, 33)]
        tried = set()
        for c in candidates:
            if c in tried or (size + c - 1) // c != n: continue
            tried.add(c)
            if md5_chunked(p, c) == checksum: return True
        return False
    def check(row):
        fid, size, checksum, state = row
        p = path_of(fid)
        exists = os.path.isfile(p)
        if state != 'active':
            return ('warn', 'file %s (%s) still has data in the set' % (fid, state)) if exists and state == 'deleted' else None
        if not exists: return ('problem', 'file %s: active in the database but missing from the set' % fid)
        if os.path.getsize(p) != int(size): return ('problem', 'file %s: size %d, database says %s' % (fid, os.path.getsize(p), size))
        if checksum and not md5_matches(p, int(size), checksum): return ('problem', 'file %s: MD5 does not match the database checksum' % fid)
        return None
    # Four threads hash; at most 4096 rows are in flight (a big file's MD5 does not idle the other
    # threads) and results are taken in the rows' order.
    known = KeySet()
    n_rows = 0
    def took(r):
        if r: (problems if r[0] == 'problem' else warnings).append(r[1])
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        pending = collections.deque()
        for row in file_rows():
            n_rows += 1
            known.add(rel_of(row[0]))
            pending.append(ex.submit(check, row))
            if len(pending) >= 4096: took(pending.popleft().result())
        while pending: took(pending.popleft().result())
    # Files of the set no row names (a 64-bit key per row: two paths share one with a chance of
    # ~3e-8 at a million rows, which could only hide an extra file). The first 100 are named, after
    # the rows' warnings, which leave them room.
    extra, extras = 0, []
    if os.path.isdir(root):
        for dirpath, dirnames, filenames in walk_tree(root):
            dirnames.sort()
            under = dirpath[len(root) + 1:]
            for fn in sorted(filenames):
                rel = under + '/' + fn if under else fn
                if rel not in known and not re.search(r'-\d+$', fn):
                    extra += 1
                    if extra <= 100: extras.append('extra file in storage with no file row: %s' % rel)
    kept_warnings = warnings[:KEEP - len(extras)] + extras
    summary = {'mode': mode, 'tablesCompared': len(expected), 'fileRows': n_rows, 'extraFiles': extra}
    with open(os.path.join(job, 'deep.json'), 'w') as f:
        json.dump({'problems': problems[:KEEP], 'problemCount': problems.count, 'warnings': kept_warnings,
                   'warningCount': warnings.count + extra, 'summary': summary}, f)
    print('deep: %d tables compared, %d file rows checked, %d extra files (%s)' % (len(expected), n_rows, extra, mode))
