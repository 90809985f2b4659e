"""A file tree of the instance (STORAGE_PATH or MISC_UPLOADS_PATH): the shared part of the storage
and uploads components. In a set it is a plain tree (NAME/ with NAME.files.jsonl, written by the
incremental copier) or an archive (NAME.tar.zst or NAME.tar.gz)."""
import glob
import json
import os
import stat
import grp
import shlex
import subprocess
import threading

from ..common import archive_listing, decompressor, disk_kb, du, ended, fail, have, one_line, out, remove_tree, resolved, user_name, user_of, warn
from ..progress import ReadWatcher
from .. import jobs
from ..manifest import copy_started_ns, started_ns, tree_artifact, tree_entries, tree_others


class ArchiveUnreadable(Exception):
    """A set's archive that does not decompress or parse to its end."""


def _see_archive_dirs(archive, dirs):
    """Shows LiveDirs DIRS every directory the tar ARCHIVE holds, as the archive was written (tar
    --sort=name: in name order, so the chain of open directories is reused), read from the archive
    itself (tarfile: names as stored; none kept beyond the one at hand, though tarfile would keep
    every member it read). The whole stream is read: an archive that does not decompress or parse
    to its end (a damaged header after the first, which tarfile takes for the end unless asked, a
    missing end) is ArchiveUnreadable."""
    import tarfile
    bad = []

    class Strict(tarfile.TarInfo):
        @classmethod
        def fromtarfile(cls, t):
            try:
                return super().fromtarfile(t)
            except tarfile.EOFHeaderError:
                raise  # the end marker: the archive's proper end
            except tarfile.HeaderError as e:
                bad.append('%s at byte %d' % (str(e) or type(e).__name__, t.offset))
                raise

    dec = subprocess.Popen(decompressor(archive), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        try:
            with tarfile.open(fileobj=dec.stdout, mode='r|', tarinfo=Strict) as t:
                while True:
                    m = t.next()
                    t.members.clear()
                    if m is None:
                        break
                    if m.isdir():
                        rel = m.name[2:] if m.name.startswith('./') else '' if m.name == '.' else m.name
                        rel = rel.rstrip('/')
                        if rel and not rel.startswith('/') and '..' not in rel.split('/'):
                            dirs.see(rel)
            if bad:
                raise ArchiveUnreadable(bad[0])
            while dec.stdout.read(1 << 16):
                pass  # tar's padding after the end marker: the decompressor's exit status then counts
        except (tarfile.TarError, EOFError) as e:
            raise ArchiveUnreadable(bad[0] if bad else str(e) or type(e).__name__)
    finally:
        dec.stdout.close()
        rc = dec.wait()
    if rc != 0:
        raise ArchiveUnreadable('%s ended with status %d' % (decompressor(archive)[0], rc))


class Tree:
    def __init__(self, name, option, label):
        self.name, self.option, self.label = name, option, label

    def live(self, ctx):
        """The live tree, symbolic links resolved once (STORAGE_PATH is often a link to another disk):
        its mode and owner are the real directory's, never the link's."""
        p = ctx.opts[self.option]
        real = resolved(p)
        if real != os.path.abspath(p) and not getattr(ctx, '_said_' + self.name, False):
            setattr(ctx, '_said_' + self.name, True)
            out('%s %s is a symbolic link to %s: using the directory itself' % (self.label, p, real))
            if ctx.info:
                ctx.info_line('%s_resolved=%s' % (self.name, real))
        return real

    # --- backup ---------------------------------------------------------------------------------

    def space_needed_kb(self, ctx, first):
        """KiB the new set needs for this tree. A first set: the tree's du. A repeat set in archive
        mode: the previous set's archive again (each archive is whole). A repeat set of a copied
        tree links the unchanged files but makes every directory again, a block each at least
        (about 7 GiB at a million files in Kadi's layout): counted from the previous set's
        manifest; what it copies comes on top, estimated from Kadi's file rows (_changed_kb;
        the walk alone knows it exactly). A previous set
        that holds the tree otherwise (or does not say) gives nothing to link to: the du."""
        known = None if first else self._from_previous(ctx)
        if known is None:
            return du(self.live(ctx))
        if ctx.opts['files_mode'] == 'archive':
            return known
        return known * _block_kb(ctx.opts['backup_dir']) + self._changed_kb(ctx)

    def _from_previous(self, ctx):
        """What the previous set's manifest says a repeat set of this tree needs, before any walk: in
        archive mode its archive's KiB, else its directories and links (each made again); None when
        it does not say (it holds the tree otherwise, or is older)."""
        if ctx.opts['files_mode'] == 'archive':
            a = tree_artifact(ctx.prev, self.name)
            size = a.get('size') if a is not None and a.get('archiveOf') == self.name else None
            return size // 1024 if isinstance(size, int) else None
        return tree_others(ctx.prev, self.name)

    def _changed_kb(self, ctx):
        """What a repeat set copies, as far as is known before the walk, since the previous set's copy
        began (a minute earlier, to be safe): the bytes restores wrote into the tree since (their
        record, restored_bytes), and the record files (STORAGE_PATH) whose rows in Kadi's database
        changed since. Uploads have no table: only restores are counted for them."""
        since = copy_started_ns(ctx.prev, self.name) or started_ns(ctx.prev)
        if since is None:
            return 0
        since -= 60 * 1000000000
        # A restore since then wrote its files anew (their ctime is after the previous set's copy):
        # the set copies them all again. Onto an emptied tree (a new disk) that is the whole tree.
        kb = restored_bytes(ctx.opts['backup_dir'], self.name, since) // 1024
        if self.name == 'storage' and getattr(ctx, 'conn', None) is not None:
            from .database import new_file_bytes
            kb += new_file_bytes(ctx.conn, since) // 1024
        return kb

    def space_walks(self, ctx, first):
        """Whether space_needed_kb is the tree's du (a walk of every file, ~1 min at a million): the
        backup then measures it beside the copy instead of before it."""
        return first or self._from_previous(ctx) is None

    def inodes_needed(self, ctx, first):
        """Inodes a repeat set of a copied tree takes: one per directory and link it makes again (the
        files it links take none; those it copies are not known before its walk). 0 when not
        known (a first set: its du counts blocks, not entries)."""
        if first or ctx.opts['files_mode'] == 'archive':
            return 0
        return self._from_previous(ctx) or 0

    def backup_begin(self, ctx):
        src = self.live(ctx)
        if not os.path.isdir(src):
            fail('%s directory %s does not exist' % (self.name, src))
        if ctx.opts['files_mode'] == 'archive':
            return self._archive_begin(ctx, src)
        # Copies the live tree into the set, hard-linking what is unchanged since the previous set
        # (copier.py says how); a process of its own, side by side with the dump and the other tree.
        return {'copier': subprocess.Popen([*jobs.agent_argv(), 'copier', self.name, src,
                                            os.path.join(ctx.partial, self.name), ctx.prev],
                                           stdin=subprocess.DEVNULL)}

    def backup_check(self, ctx):
        """Before anything runs (services stopped, the dump): an empty live tree where the previous set
        has files is refused. A disk or NFS share that is not mounted leaves an empty mount point, a
        path may now name another directory; a set of it would be complete and verify (against
        itself), and retention would go on to remove the sets that hold the files."""
        src = self.live(ctx)
        if not os.path.isdir(src):
            return  # said by backup_begin
        if ctx.opts.yes('pre_restore'):
            # A restore's safety backup keeps the instance as it is, empty trees too (restoring onto
            # a new, empty disk): the set is marked pre-restore, and the restore brings the files back.
            return
        with os.scandir(src) as it:
            if any(e.name != 'lost+found' for e in it):
                return
        if not ctx.prev:
            return
        # The previous set's own count (its manifest), whether it holds a tree or an archive.
        try:
            with open(os.path.join(ctx.prev, 'manifest.json'), encoding='utf-8') as f:
                arts = json.load(f).get('artifacts') or []
            count = sum(int(a.get('files') or 0) for a in arts if isinstance(a, dict) and self.name in (a.get('tree'), a.get('archiveOf')))
        except (OSError, ValueError, AttributeError, TypeError):
            return  # no manifest to compare with: nothing said either way
        if count <= 0:
            return
        held = ' (%d files)' % count
        fail('refusing to back up: %s %s is empty, but the previous set %s has files there%s. Is the disk or share that holds it '
             'mounted (findmnt %s)? A set without them would pass its verification, and retention would then remove the sets '
             'that have them. A new, empty disk: restore a set onto it (a restore\'s safety backup takes the tree as it is). If the '
             'tree is empty on purpose, move the older sets out of the backup directory first.'
             % (self.label, src, os.path.basename(ctx.prev), held, src))

    def _archive_begin(self, ctx, src):
        """NAME.tar.zst (or .tar.gz) of the tree, in name order. tar's exit status 1 means files changed
        or vanished while tar read them (Kadi deletes files while it runs): a warning, as for the
        copier; 2 or more fails."""
        out_base = os.path.join(ctx.partial, self.name)
        tar = subprocess.Popen(['tar', '-C', src, '--sort=name', '-cf', '-', '.'], stdout=subprocess.PIPE,
                               stdin=subprocess.DEVNULL)
        if have('zstd'):
            comp = subprocess.Popen(['zstd', '-q', '-T0', '-3', '-o', out_base + '.tar.zst'], stdin=tar.stdout)
        else:
            with open(out_base + '.tar.gz', 'wb') as f:
                comp = subprocess.Popen(['gzip', '-1'], stdin=tar.stdout, stdout=f)
        tar.stdout.close()
        h = {'tar': tar, 'comp': comp, 'watcher': None}

        # The compressor reads the whole tar stream: its read count against the tree's size,
        # measured while tar already runs (a walk of a large tree must not delay the archive).
        def watch():
            h['watcher'] = ReadWatcher(self.name, comp.pid, du(src, '-sb'))
        h['thread'] = threading.Thread(target=watch, daemon=True)
        h['thread'].start()
        return h

    def backup_wait(self, ctx, h):
        if 'copier' in h:
            rc, who = h['copier'].wait(), 'the copier'
        else:
            rc, who = h['comp'].wait(), 'the compressor'
            t = h['tar'].wait()
            h['thread'].join()
            if h['watcher']:
                h['watcher'].stop()
            if rc == 0:
                if t == 1:
                    warn('WARNING: %s: files changed or vanished while tar read them (tar names them above); '
                         'the archive holds what tar read' % self.name)
                elif t != 0:
                    # 2 or more, or killed (negative): the compressor saw its input end and exited 0,
                    # and a stream cut at a member's boundary reads back as a whole smaller archive.
                    rc, who = t, 'tar'
        if rc == 0:
            return ''
        return 'copying %s failed: %s %s' % (self.label, who, ended(rc))

    def backup_finish(self, ctx):
        if ctx.opts['files_mode'] != 'archive':
            return
        for a in sorted(glob.glob(os.path.join(glob.escape(ctx.partial), self.name + '.tar.*'))):
            listing = archive_listing(a)
            if listing is None:
                fail('cannot read back %s' % os.path.basename(a))
            ctx.info_line('archive_%s=%d %d' % (os.path.basename(a), listing[0], listing[1]))

    # --- verify -----------------------------------------------------------------------------------

    def verify_quick(self, ctx):
        """Archives (archive-mode sets) must decompress and parse; their entry counts are compared."""
        found = {}
        for a in sorted(glob.glob(os.path.join(glob.escape(ctx.set_dir), self.name + '.tar.*'))):
            if os.path.isfile(a):
                listing = archive_listing(a)
                found[os.path.basename(a)] = '%d %d' % listing if listing else 'unreadable'
        return {'archives': found}

    # --- restore ----------------------------------------------------------------------------------

    restore_step = 'files'

    def restore_check(self, ctx):
        """Before the restore changes anything (it runs before the services are stopped): a set's
        tree that is not what its file list says, where the sync would carry the difference into
        the live tree (treesync.check_set), is refused. So is a live tree with a directory of the
        set's that the sync, run as this user, could not write (treesync.LiveDirs): the files step
        comes after the database step committed, and would fail there half done. Archive-mode sets
        have no list: their archive is checked by its extraction, and the live tree against the
        directories the archive holds (read from it, in its name order)."""
        d = ctx.set_dir
        src, listing = os.path.join(d, self.name), os.path.join(d, self.name + '.files.jsonl')
        # As restore() chooses: the set's tree when it has one as a directory, else its archive.
        archives = [] if os.path.isdir(src) else sorted(glob.glob(os.path.join(glob.escape(d), self.name + '.tar.*')))
        if not archives and (not os.path.lexists(src) or not os.path.isfile(listing)):
            return
        from ..treesync import LiveDirs, check_set
        from ..verify_quick import entries_name
        record = os.path.join(d, entries_name(self.name))
        live = self.live(ctx)
        if not os.path.isdir(live):
            fail('refusing to restore: %s %s does not exist (make it, owned by the Kadi user); nothing was changed' % (self.label, live))
        try:
            dirs = LiveDirs(live)
        except OSError as e:
            fail('refusing to restore: %s %s cannot be opened (%s); nothing was changed' % (self.label, live, one_line(e)))
        n = mounted = 0
        try:
            if archives:
                _see_archive_dirs(archives[0], dirs)
            else:
                n, first = check_set(self.name, src, listing, record if os.path.isfile(record) else None, live=dirs)
                mounted, over = dirs.mounted_over(src)
        except ArchiveUnreadable as e:
            fail('refusing to restore: the set\'s %s cannot be read (%s); nothing was changed. Verify the set'
                 % (os.path.basename(archives[0]), one_line(e)))
        except (OSError, ValueError, TypeError, LookupError) as e:
            fail('refusing to restore: the set\'s %s tree cannot be checked against its lists or %s (%s); nothing was changed'
                 % (self.name, self.label, one_line(e)))
        finally:
            dirs.close()
        if n:
            fail('refusing to restore: the set\'s %s tree is not what its file list says (%d %s; %s): a restore would '
                 'carry that into %s. Verify the set; nothing was changed'
                 % (self.name, n, 'problem' if n == 1 else 'problems', '; '.join(one_line(p) for p in first), self.label))
        if mounted:
            fail('refusing to restore: %d %s mounted inside %s %s where the set has a file, not a directory (%s): the '
                 'restore could not put the set\'s %s there, and that would only show after the database was. Unmount %s, or '
                 'restore without this tree; nothing was changed'
                 % (mounted, 'file system is' if mounted == 1 else 'file systems are', self.label, live, '; '.join(over),
                    'file' if mounted == 1 else 'files', 'it' if mounted == 1 else 'them'))
        if dirs.n:
            st = os.stat(live)
            fail('refusing to restore: %d %s under %s %s that the set also has cannot be written by %s (%s): its files '
                 'could not be restored, and that would only show after the database was. As root, run: chown -R %s:%s %s '
                 '(or mount the file system read-write); nothing was changed'
                 % (dirs.n, 'directory' if dirs.n == 1 else 'directories', self.label, live, user_name(), '; '.join(dirs.found),
                    user_name(), _group(st.st_gid), shlex.quote(live)))

    def restore(self, ctx):
        """Makes the live tree exactly the set's. Only differences are written and the sync is
        idempotent, so an interrupted restore is completed by running it again. Files are copied,
        never hard-linked to the set: a link would make live files and backup files one inode, and
        a chmod or an edit of one would change the other."""
        live, d = self.live(ctx), ctx.set_dir
        if not os.path.isdir(live):
            fail('%s directory %s does not exist' % (self.name, live))
        st = os.stat(live)
        owner, group = user_of(st.st_uid), _group(st.st_gid)
        extract = ctx.job.path('extract-' + self.name)
        if os.path.isdir(os.path.join(d, self.name)):
            src = os.path.join(d, self.name)
        else:
            archives = sorted(glob.glob(os.path.join(glob.escape(d), self.name + '.tar.*')))
            if not archives:
                fail('set has neither %s/ nor %s.tar.*' % (self.name, self.name))
            src = extract
            remove_tree(src)
            os.makedirs(src)
            out('extracting ' + archives[0])
            dec = subprocess.Popen(decompressor(archives[0]), stdout=subprocess.PIPE)
            tar = subprocess.run(['tar', '-C', src, '-xf', '-'], stdin=dec.stdout)
            dec.stdout.close()
            if dec.wait() or tar.returncode:
                fail('extracting %s failed' % archives[0])
        # One walk of both trees (treesync.py): what differs is copied, what the set lacks removed,
        # and the guide's modes, the group (and as root the owner) set on the way - not rsync and
        # then walks of the whole live tree for owner, group and modes.
        result = ctx.job.path('sync-%s.json' % self.name)
        content = ctx.opts.yes('compare_content')
        out('syncing %s/ into %s/ (directories 750, files 640, owner %s, group %s; files compared by %s)'
            % (src, live, owner, group, 'content' if content else 'size and modification time'))
        r = subprocess.run([*jobs.agent_argv(), 'tree-sync', self.name, src, live, str(st.st_uid), str(st.st_gid),
                            str(tree_entries(d, self.name) if src != extract else 0), result, *(['content'] if content else [])],
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            try:
                with open(result, encoding='utf-8') as f:
                    _record_restored(ctx.opts['backup_dir'], self.name, json.load(f).get('copiedBytes', 0))
            except (OSError, ValueError, AttributeError):
                pass  # it wrote nothing before it failed
            fail('restoring %s failed (status %d; the reason is above)' % (self.label, r.returncode))
        with open(result, encoding='utf-8') as f:
            res = json.load(f)
        _record_restored(ctx.opts['backup_dir'], self.name, res.get('copiedBytes', 0))
        _attributes_left(ctx, live, owner, group, res['otherOwner'], res['otherOwnerFirst'], res['groupFailed'])
        if res['contentDiffered']:
            # Restored now; but bytes that change under an unchanged size and time are what a failing
            # disk, controller or memory leaves, and it may go on.
            ctx.attention('%d files under %s had the set\'s size and modification time but other content (the first: %s); '
                          'they were replaced by the set\'s. Nothing writes files that way: check the disk '
                          '(dmesg, smartctl -a) and run a deep verification of the newer sets'
                          % (res['contentDiffered'], live, one_line(res['contentDifferedFirst'][0])))
        if res['unreadLive']:
            ctx.attention('%d files under %s could not be read to compare them with the set (the first: %s); they were '
                          'replaced by the set\'s. A read error there is what a failing disk gives: check it (dmesg, smartctl -a)'
                          % (res['unreadLive'], live, one_line(res['unreadLiveFirst'][0])))
        if res.get('mountsLeft'):
            ctx.attention('%d mount points under %s that the set does not hold were left as they are, with what is mounted '
                          'there (the first: %s): nothing on another file system was removed. Unmount them (or remove a '
                          'btrfs subvolume) if they are not wanted there' % (res['mountsLeft'], live, one_line(res['mountsLeftFirst'][0])))
        if res['notRemoved']:
            ctx.attention('%d entries under %s that the set does not hold could not be removed by %s and were left (the first: %s); '
                          'the restored files are complete, these are extra. Remove them as root if they are not wanted'
                          % (res['notRemoved'], live, user_name(), one_line(res['notRemovedFirst'][0])))
        remove_tree(extract)

    # --- preflight --------------------------------------------------------------------------------

    def probe(self, ctx):
        p = self.live(ctx)
        if not os.path.isdir(p):
            return ['%s_missing=yes' % self.name]
        st = os.stat(p)
        free = disk_kb(p)[0]
        lines = ['%s_owner=%s' % (self.name, user_of(st.st_uid)), '%s_group=%s' % (self.name, _group(st.st_gid)),
                 '%s_mode=%o' % (self.name, stat.S_IMODE(st.st_mode)), '%s_free_kb=%d' % (self.name, free),
                 # A tree whose root the restore cannot write (a new disk mounted as root's): its files
                 # step would fail after the database step committed. Said at the preflight instead.
                 '%s_writable=%s' % (self.name, 'yes' if os.access(p, os.W_OK | os.X_OK) else 'no')]
        # The live tree's size only matters when the set's tree would not fit beside it anyway: its
        # du is a walk of the whole tree (half a minute at a million files), so it is taken only then.
        try:
            need = int(ctx.opts['%s_need_kb' % self.name])
        except ValueError:
            need = None
        if need is None or need > free:
            lines.append('%s_kb=%d' % (self.name, du(p)))
        return lines


RESTORED = 'restored-trees.jsonl'
RESTORED_KEEP = 100


def _record_restored(backup_dir, tree, copied_bytes):
    """Notes that a restore wrote COPIED_BYTES into TREE now (one JSON line in the backup
    directory's state, the last RESTORED_KEEP kept), for the next backup's space estimate. A note
    that cannot be written costs only that estimate: said, not a failure."""
    import time
    from ..jobs import state_dir
    path = os.path.join(state_dir(backup_dir), RESTORED)
    try:
        try:
            with open(path, encoding='utf-8', errors='replace') as f:
                lines = [l for l in f.read().splitlines() if _restored_line(l) is not None][-(RESTORED_KEEP - 1):]
        except FileNotFoundError:
            lines = []
        lines.append(json.dumps({'tree': tree, 'endedNs': time.time_ns(), 'copiedBytes': int(copied_bytes)}))
        tmp = path + '.tmp'
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write('\n'.join(lines) + '\n')
        os.replace(tmp, path)
    except (OSError, ValueError) as e:
        warn('WARNING: could not note what the restore wrote into %s (%s): the next backup\'s space check will not count it'
             % (tree, one_line(e)))


def restored_bytes(backup_dir, tree, since_ns):
    """The bytes restores wrote into TREE after SINCE_NS (ns since the epoch), by their notes."""
    from ..jobs import state_dir
    n = 0
    try:
        with open(os.path.join(state_dir(backup_dir), RESTORED), encoding='utf-8', errors='replace') as f:
            for line in f:
                r = _restored_line(line)
                if r is not None and r[0] == tree and r[1] > since_ns:
                    n += r[2]
    except OSError:
        pass
    return n


def _restored_line(line):
    """(tree, endedNs, copiedBytes) of a line of the restores' notes, or None for one that is not."""
    try:
        r = json.loads(line)
        t, ended, copied = r['tree'], r['endedNs'], r['copiedBytes']
        if isinstance(t, str) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (ended, copied)):
            return t, ended, copied
    except Exception:  # noqa: BLE001 - any line that is not a note is skipped (ValueError, RecursionError, …)
        pass
    return None


def _block_kb(path):
    """The block size of PATH's file system in KiB (what a directory takes at least), 4 if unknown."""
    try:
        return max(1, os.statvfs(path).f_bsize // 1024)
    except OSError:
        return 4


def _group(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _attributes_left(ctx, live, owner, group, other_owner, other_first, group_failed):
    """What tree-sync's attribute pass (a restore's or fix-permissions') could not set, for the
    operator: entries of another owner (for a root chown) and entries whose group it could not set."""
    if other_owner:
        ctx.attention('%d entries under %s are not owned by %s (the first: %s); run as root: chown -R %s:%s %s'
                      % (other_owner, live, owner, one_line(other_first[0]), owner, group, live))
    if group_failed:
        ctx.attention('could not set group %s on %d entries under %s (is %s a member of %s?)'
                      % (group, group_failed, live, user_name(), group))


def fix_perms(ctx, live, uid, gid):
    """The guide's chown/chmod by one walk that never follows a link (treesync.own_tree, the
    restore's own attribute pass), touching only entries that differ.

    A non-root Kadi user cannot chown to another user. When it owns the live tree itself (the usual
    kadi:kadi or kadi:www-data layout) everything it wrote is already its own, so only group and
    modes remain. Anything owned by someone else is reported for a root chown. (maintenance's
    permission repair.)"""
    from ..treesync import own_tree
    try:
        s = own_tree(live, uid, gid)
    except OSError as e:
        fail('setting owner, group and modes under %s failed: %s' % (live, one_line(e)))
    _attributes_left(ctx, live, user_of(uid), _group(gid), s.other_owner_n, s.other_owner, s.group_failed)
    if s.linked:
        ctx.attention('%d files under %s have other names (hard links) and were left as they are: one may be outside '
                      'the tree (find %s -type f -links +1)' % (s.linked, live, live))
    out('%s: %d entries checked, %d changed' % (live, s.checked, s.attrs))
