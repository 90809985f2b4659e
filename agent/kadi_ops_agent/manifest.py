"""The backup set's manifest: every artifact of a finished partial set hashed, into manifest.json.

Reads the partial set's .info (key=value lines: started, ended, hostname, previous, and
archive_<name>=FILES BYTES for archives), the copier's summaries (.storage.copy.json,
.uploads.copy.json), the row counts (.counts.jsonl: one [schema, table, rows] line per table) and
the dump's table of contents (db.toc). Writes the row counts as db.counts.json first (an artifact
like the others), then manifest.json: BASE_JSON (the client's part) with the times, host, previous
set, artifacts (name, size, sha256 of each visible file; tree lists and archives with their
summaries; the dump with its table of contents' entries, tables and rows), trees and rowCounts
("schema.table" keys). The manifest is written to manifest.json.tmp, synced, then renamed, so it is
there whole or not at all. Prints `[progress] manifest ...` lines while hashing.

Usage: manifest PARTIAL BASE_JSON
"""
import json
import os

from .common import Progress, sha256

USAGE = 'usage: manifest PARTIAL BASE_JSON'


def tree_artifact(set_dir, tree):
    """The artifact of SET_DIR's manifest that holds its TREE: the tree's list (`tree`, with the
    copier's counts) or its archive (`archiveOf`, with its size); None when the set has neither or
    its manifest cannot be read."""
    try:
        with open(os.path.join(set_dir, 'manifest.json'), encoding='utf-8') as f:
            for a in json.load(f).get('artifacts', []):
                if isinstance(a, dict) and tree in (a.get('tree'), a.get('archiveOf')):
                    return a
    except (OSError, ValueError, AttributeError):
        pass
    return None


def _count(a, key):
    v = (a or {}).get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def tree_entries(set_dir, tree):
    """The entries (files, directories, links) the backup of SET_DIR counted in its TREE, as its
    manifest records them: a progress total without a walk. 0 when the set does not say."""
    a = tree_artifact(set_dir, tree)
    return (_count(a, 'entries') or 0) if a is not None and a.get('tree') == tree else 0


def tree_others(set_dir, tree):
    """The directories and links (entries that are not files) in SET_DIR's copied TREE, as its
    manifest counts them; None when it is not a copied tree or does not say."""
    a = tree_artifact(set_dir, tree)
    if a is None or a.get('tree') != tree:
        return None
    entries, files = _count(a, 'entries'), _count(a, 'files')
    return None if entries is None or files is None else max(0, entries - files)


def main(argv):
    if len(argv) != 2:
        raise SystemExit(USAGE)
    partial, base_json = argv
    if not os.path.isdir(partial):
        raise SystemExit('manifest: %s is not a directory' % partial)
    try:
        m = json.loads(base_json)
    except ValueError as e:
        raise SystemExit('manifest: BASE_JSON is not valid JSON: %s' % e)
    if not isinstance(m, dict):
        raise SystemExit('manifest: BASE_JSON is not a JSON object')
    try:
        write(partial, m)
    except FileNotFoundError as e:
        raise SystemExit('manifest: missing input: %s' % e)


def write(partial, m):
    with open(os.path.join(partial, '.info')) as f:
        info = dict(l.rstrip('\n').split('=', 1) for l in f if '=' in l)
    m['startedAt'] = info.get('started'); m['endedAt'] = info.get('ended')
    m['hostname'] = info.get('hostname'); m['previousSet'] = info.get('previous') or None
    # Trees whose configured path is a symbolic link: the directory the set was read from.
    real = {k[:-len('_resolved')]: v for k, v in info.items() if k.endswith('_resolved')}
    if real and isinstance(m.get('paths'), dict):
        m['paths']['resolved'] = real
    m['artifacts'] = []
    # The trees' files were hashed as they were copied (copier); their lists are artifacts here.
    trees = {}
    for name in ('storage', 'uploads'):
        summary = os.path.join(partial, '.' + name + '.copy.json')
        if os.path.isfile(summary):
            with open(summary, encoding='utf-8') as f:
                trees[name] = json.load(f)
    # Row counts: [schema, table, rows] per table into db.counts.json (an artifact like the others);
    # the manifest's rowCounts keeps its "schema.table" keys.
    with open(os.path.join(partial, '.counts.jsonl'), encoding='utf-8') as f:
        tables = [json.loads(l) for l in f if l.strip()]
    with open(os.path.join(partial, 'db.counts.json'), 'w', encoding='utf-8') as f:
        json.dump({'format': 1, 'tables': tables}, f, ensure_ascii=True); f.write('\n')
    counts = dict(('%s.%s' % (s, t), int(c)) for s, t, c in tables)
    names = [fn for fn in sorted(os.listdir(partial)) if not fn.startswith('.') and os.path.isfile(os.path.join(partial, fn))]
    progress = Progress('manifest', sum(os.path.getsize(os.path.join(partial, fn)) for fn in names))
    with open(os.path.join(partial, 'db.toc'), encoding='utf-8', errors='replace') as f:
        toc_entries = sum(1 for l in f if l and l[0].isdigit())
    for fn in names:
        p = os.path.join(partial, fn)
        a = {'name': fn, 'size': os.path.getsize(p), 'sha256': sha256(p)}
        progress.add(a['size'])
        if fn == 'db.dump': a['tocEntries'] = toc_entries; a['tables'] = len(tables); a['rows'] = sum(int(c) for s, t, c in tables)
        for name, t in trees.items():
            if fn == name + '.files.jsonl': a['tree'] = name; a.update(t)
        if fn.startswith(('storage.tar', 'uploads.tar')):
            a['archiveOf'] = fn.split('.')[0]
            files, nbytes = info.get('archive_' + fn, '0 0').split()
            a['files'] = int(files); a['bytes'] = int(nbytes)
        m['artifacts'].append(a)
    m['trees'] = trees
    m['rowCounts'] = counts
    tmp = os.path.join(partial, 'manifest.json.tmp')
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(m, f, indent=2, sort_keys=True); f.write('\n'); f.flush(); os.fsync(f.fileno())
    os.rename(tmp, os.path.join(partial, 'manifest.json'))


def copy_started_ns(set_dir, tree):
    """When the copy of TREE into SET_DIR began (the manifest's trees.TREE.copyStartedNs, taken before
    the live tree was read), in nanoseconds since the epoch; None when the set does not say."""
    try:
        with open(os.path.join(set_dir, 'manifest.json'), encoding='utf-8') as f:
            t = json.load(f)['trees'][tree]['copyStartedNs']
        return t if isinstance(t, int) and not isinstance(t, bool) and t > 0 else None
    except (OSError, ValueError, TypeError, KeyError):
        return None


def started_ns(set_dir):
    """When the backup of SET_DIR began (its manifest's startedAt, whole seconds of UTC, taken before
    its trees were read) in nanoseconds since the epoch; None when the set does not say."""
    import calendar
    import time
    try:
        with open(os.path.join(set_dir, 'manifest.json'), encoding='utf-8') as f:
            t = json.load(f).get('startedAt')
        return calendar.timegm(time.strptime(t, '%Y-%m-%dT%H:%M:%SZ')) * 1000000000
    except (OSError, ValueError, TypeError, AttributeError, OverflowError):
        return None
