JOB_VERBS+=(verify)

# verify key=value...  (a job). Quick: every artifact's size and sha256, every tree file's size and
# sha256 against the set's file lists, and the dump's table of contents. Deep, in addition:
# restore the dump into a scratch database, compare row counts with those taken at backup time,
# and check the set's own files against the set's own `file` rows (size and Kadi's MD5).
# The result goes to <set>/.verify.json; the manifest is never edited.
cmd_verify() {
  parse_opts "$@"
  local bd set pg_restore level
  bd=$(opt backup_dir); set=$(opt set); pg_restore=$(opt pg_restore); level=$(opt level)
  check_set_name "$set"
  local dir="$bd/$set"
  [ -f "$dir/manifest.json" ] || fail "set $set has no manifest; it is not a complete backup"
  step "verifying $set: checksums of every artifact and file"
  local toc_ok=yes toc_n
  if toc_n=$("$pg_restore" -l "$dir/db.dump" 2>/dev/null | grep -c '^[0-9]'); then :; else toc_ok=no; fi
  # Archives (archive-mode sets) must decompress and parse; their entry counts are compared below.
  local a
  : > "$JOB_DIR/archives.tsv"
  for a in "$dir"/storage.tar.* "$dir"/uploads.tar.*; do
    [ -f "$a" ] || continue
    printf '%s\t%s\n' "${a##*/}" "$(archive_listing "$a" 2>/dev/null || echo unreadable)" >> "$JOB_DIR/archives.tsv"
  done
  { echo "$PY_PRELUDE"; cat <<'PY'; } | python3 -I -S - "$dir" "$toc_ok" "${toc_n:-0}" "$JOB_DIR/quick.json" "$JOB_DIR/archives.tsv"
import concurrent.futures, datetime, json, os
d, toc_ok, toc_n, out = sys.argv[1], sys.argv[2] == 'yes', int(sys.argv[3] or 0), sys.argv[4]
archives = dict(l.rstrip('\n').split('\t', 1) for l in open(sys.argv[5]) if '\t' in l)
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
    entries = [json.loads(l) for l in open(os.path.join(d, a['name']), encoding='utf-8')]
    def check(e):
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
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        for e, r in zip(entries, ex.map(check, entries)):
            if r: problems.append(r)
            progress.add(e[1])
    listed = set(e[0] for e in entries)
    for dirpath, dirnames, filenames in os.walk(root):
        for fn in filenames:
            rel = os.path.relpath(os.path.join(dirpath, fn), root)
            if rel not in listed: problems.append('%s/%s: not in the file list' % (tree, rel))
    checked_files += len(entries); checked_bytes += sum(e[1] for e in entries)
result = {'level': 'quick', 'ok': not problems, 'problems': problems[:1000], 'problemCount': len(problems),
          'files': checked_files, 'bytes': checked_bytes,
          'at': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}
for p in problems[:200]: print('PROBLEM: ' + p)
with open(out, 'w') as f: json.dump(result, f)
print('checked %d files, %d bytes: %d problem(s)' % (checked_files, checked_bytes, len(problems)))
PY
  if [ "$level" = deep ]; then
    verify_deep "$dir" || true
  fi
  python3 -I -S - "$dir" "$JOB_DIR" "$level" <<'PY'
import json, os, sys
d, job, level = sys.argv[1:4]
r = json.load(open(os.path.join(job, 'quick.json')))
r['level'] = level
try:
    deep = json.load(open(os.path.join(job, 'deep.json')))
    r['problems'] += deep['problems']; r['problemCount'] += len(deep['problems'])
    r['warnings'] = deep.get('warnings', []); r['deep'] = deep.get('summary', {})
except FileNotFoundError:
    if level == 'deep':
        r['problems'].append('deep verification did not complete'); r['problemCount'] += 1
r['ok'] = r['problemCount'] == 0
tmp = os.path.join(d, '.verify.json.tmp')
with open(tmp, 'w') as f: json.dump(r, f)
os.rename(tmp, os.path.join(d, '.verify.json'))
for p in r['problems'][:200]: print('PROBLEM: ' + p)
for w in r.get('warnings', [])[:200]: print('WARNING: ' + w)
print('verified=%s level=%s problems=%d' % ('ok' if r['ok'] else 'failed', level, r['problemCount']))
sys.exit(0 if r['ok'] else 1)
PY
}

verify_deep() {
  local dir=$1 psql pg_host pg_port pg_db pg_user scratch
  psql=$(opt psql); pg_host=$(opt pg_host); pg_port=$(opt pg_port); pg_db=$(opt pg_db); pg_user=$(opt pg_user)
  make_passfile "$JOB_DIR" "$pg_host" "$pg_port" "*" "$pg_user" < "$JOB_DIR/secret"
  local C=(-X -At -v ON_ERROR_STOP=1 -h "$pg_host" -p "$pg_port" -U "$pg_user" -w)
  scratch="kadi_ops_verify_$(printf '%s' "$JOB_ID" | tr -c 'A-Za-z0-9' '_' | tr 'A-Z' 'a-z')"
  echo "$scratch" > "$JOB_DIR/scratch_db"
  step "deep: restoring the dump into scratch database $scratch"
  "$psql" "${C[@]}" -d "$pg_db" -c "CREATE DATABASE \"$scratch\"" \
    || { echo "deep verification needs the CREATEDB privilege for role $pg_user" >&2; return 1; }
  local rc=0
  set +o errexit
  "$(opt pg_restore)" -v --no-owner --no-privileges --exit-on-error -h "$pg_host" -p "$pg_port" -U "$pg_user" -w -d "$scratch" "$dir/db.dump" 2>&1 >/dev/null |
    pg_restore_progress "$(grep -c '^[0-9]' "$dir/db.toc" 2>/dev/null || true)" "$JOB_DIR/deep_restore.err" quiet
  rc=${PIPESTATUS[0]}
  set -o errexit
  if [ "$rc" -ne 0 ]; then
    echo '{"problems": ["pg_restore into the scratch database failed"], "warnings": []}' > "$JOB_DIR/deep.json"
    drop_scratch
    return 1
  fi
  step "deep: counting rows and reading file records"
  "$psql" "${C[@]}" -d "$scratch" > "$JOB_DIR/scratch.counts.tsv" <<'SQL'
SELECT format('SELECT %L || E''\t'' || count(*) FROM %I.%I;', n.nspname || '.' || c.relname, n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
 ORDER BY 1 \gexec
SQL
  "$psql" "${C[@]}" -F $'\t' -d "$scratch" -c "SELECT id, size, coalesce(checksum, ''), state FROM file WHERE storage_type = 'local'" > "$JOB_DIR/scratch.files.tsv"
  drop_scratch
  step "deep: checking the set's files against the set's database"
  python3 -I -S - "$dir" "$JOB_DIR" "$(opt chunk_size)" <<'PY'
import concurrent.futures, hashlib, json, os, re, sys
d, job, chunk_size = sys.argv[1], sys.argv[2], int(sys.argv[3] or 0)
problems, warnings = [], []
m = json.load(open(os.path.join(d, 'manifest.json')))
expected = {}
try:
    for l in open(os.path.join(d, 'db.counts.tsv'), encoding='utf-8'):
        t, c = l.rstrip('\n').rsplit('\t', 1); expected[t] = int(c)
except FileNotFoundError:
    warnings.append('the set recorded no row counts')
restored = {}
for l in open(os.path.join(job, 'scratch.counts.tsv'), encoding='utf-8'):
    if '\t' in l:
        t, c = l.rstrip('\n').rsplit('\t', 1); restored[t] = int(c)
for t, c in sorted(expected.items()):
    if t not in restored: problems.append('table %s: missing after restore' % t)
    elif restored[t] != c: problems.append('table %s: %d rows restored, %d at backup time' % (t, restored[t], c))
root = os.path.join(d, 'storage')
if not os.path.isdir(root):
    warnings.append('storage is archived; file cross-check skipped')
    rows = []
else:
    rows = [l.rstrip('\n').split('\t') for l in open(os.path.join(job, 'scratch.files.tsv'), encoding='utf-8') if l.strip()]
def path_of(fid):
    return os.path.join(root, fid[0:2], fid[2:4], fid[4:6], fid[6:])
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
with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
    for r in ex.map(check, rows):
        if r: (problems if r[0] == 'problem' else warnings).append(r[1])
known = set(path_of(r[0]) for r in rows)
extra = 0
if os.path.isdir(root):
    for dirpath, dirnames, filenames in os.walk(root):
        for fn in filenames:
            p = os.path.join(dirpath, fn)
            if p not in known and not re.search(r'-\d+$', fn):
                extra += 1
                if extra <= 100: warnings.append('extra file in storage with no file row: %s' % os.path.relpath(p, root))
summary = {'tablesCompared': len(expected), 'fileRows': len(rows), 'extraFiles': extra}
json.dump({'problems': problems, 'warnings': warnings, 'summary': summary}, open(os.path.join(job, 'deep.json'), 'w'))
print('deep: %d tables compared, %d file rows checked, %d extra files' % (len(expected), len(rows), extra))
PY
}

drop_scratch() {
  local scratch; scratch=$(cat "$JOB_DIR/scratch_db" 2>/dev/null || true)
  [ -n "$scratch" ] || return 0
  # After a cancel the killed pg_restore's session may linger a moment and block the DROP.
  local i
  for i in 1 2 3 4 5; do
    if "$(opt psql)" -X -q -h "$(opt pg_host)" -p "$(opt pg_port)" -U "$(opt pg_user)" -w -d "$(opt pg_db)" \
      -c "DROP DATABASE IF EXISTS \"$scratch\""; then
      rm -f "$JOB_DIR/scratch_db"
      return 0
    fi
    sleep 1
  done
  echo "could not drop the scratch database $scratch; drop it by hand" >&2
  return 1
}

cleanup_verify() { parse_opts "$@"; drop_scratch || true; }

