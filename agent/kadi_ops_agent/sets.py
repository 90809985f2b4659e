"""The backup directory's listing: one JSON document with every set, partial set and invalid set.

Sets are the timestamp-named directories (newest first) with their manifest (without rowCounts, the
long part), their last verify result (.verify.json, or null) and whether they are pinned or the
safety set of a restore; partial sets (.partial-JOB) are named with their job and mtime; a set whose
manifest is missing or not JSON is listed as invalid with the reason. A missing backup directory
lists nothing. Printed compact, without a final newline (the client reads one round trip, and the
overview verb prints the jobs after it).

Usage: list-sets BACKUP_DIR
"""
import json
import os
import re
import sys

SET_RE = re.compile(r'^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$')


def main(argv):
    if len(argv) != 1:
        raise SystemExit('usage: list-sets BACKUP_DIR')
    bd = argv[0]
    out = {'sets': [], 'partials': [], 'invalid': []}
    try:
        names = sorted(os.listdir(bd), reverse=True)
    except FileNotFoundError:
        names = []
    for n in names:
        p = os.path.join(bd, n)
        if n.startswith('.partial-') and os.path.isdir(p):
            out['partials'].append({'name': n, 'job': n[len('.partial-'):], 'mtime': int(os.path.getmtime(p))})
            continue
        if not SET_RE.match(n) or not os.path.isdir(p):
            continue
        try:
            with open(os.path.join(p, 'manifest.json'), encoding='utf-8') as f:
                m = json.load(f)
        except FileNotFoundError:
            out['invalid'].append({'name': n, 'reason': 'no manifest.json'}); continue
        except ValueError as e:
            out['invalid'].append({'name': n, 'reason': 'manifest.json is not valid JSON: %s' % e}); continue
        verify = None
        try:
            with open(os.path.join(p, '.verify.json'), encoding='utf-8') as f:
                verify = json.load(f)
        except (FileNotFoundError, ValueError):
            pass
        m.pop('rowCounts', None)
        out['sets'].append({'name': n, 'manifest': m, 'verify': verify,
                            'pinned': os.path.exists(os.path.join(p, '.pinned')),
                            'preRestore': os.path.exists(os.path.join(p, '.pre-restore'))})
    json.dump(out, sys.stdout, separators=(',', ':'))
