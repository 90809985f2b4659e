"""A file tree of the instance (STORAGE_PATH or MISC_UPLOADS_PATH): the shared part of the storage
and uploads components. In a set it is a plain tree (NAME/ with NAME.files.jsonl, written by the
incremental copier) or an archive (NAME.tar.zst or NAME.tar.gz)."""
import glob
import os
import pwd
import grp
import subprocess
import threading

from ..common import archive_listing, decompressor, disk_kb, du, fail, have, one_line, out, remove_tree, resolved, warn
from ..progress import ReadWatcher, rsync_progress
from .. import jobs


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
        return du(self.live(ctx)) if first else 0

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
            rc = h['copier'].wait()
        else:
            rc = h['comp'].wait()
            t = h['tar'].wait()
            h['thread'].join()
            if h['watcher']:
                h['watcher'].stop()
            if rc == 0:
                if t == 1:
                    warn('WARNING: %s: files changed or vanished while tar read them (tar names them above); '
                         'the archive holds what tar read' % self.name)
                elif t > 1:
                    rc = t
        return '' if rc == 0 else 'copying %s failed (status %d)' % (self.label, rc)

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

    def restore(self, ctx):
        """Makes the live tree exactly the set's. rsync moves only differences and is idempotent, so an
        interrupted restore is completed by running it again. Never --link-dest toward the set: a
        hard link would make live files and backup files one inode, and a chmod or an edit of one
        would change the other."""
        live, d = self.live(ctx), ctx.set_dir
        if not os.path.isdir(live):
            fail('%s directory %s does not exist' % (self.name, live))
        st = os.stat(live)
        owner, group = _user(st.st_uid), _group(st.st_gid)
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
        # The guide's chmod is rsync's own work on every entry it visits (--chmod), and owner and
        # group are one walk after it, not four: at a million files each walk costs what the whole
        # restore of a day's changes does.
        out('rsync -a --delete --chmod=D750,F640 %s/ %s/   (owner %s, group %s)' % (src, live, owner, group))
        p = subprocess.Popen(['rsync', '-a', '--delete', '--chmod=D750,F640', '--stats', '--info=progress2', '--no-inc-recursive',
                              src + '/', live + '/'], stdout=subprocess.PIPE)
        rsync_progress(p.stdout, self.name,
                       '^(Number of (regular )?files transferred|Number of deleted files|Total transferred file size)')
        if p.wait() != 0:
            fail('rsync of %s failed' % self.name)
        remove_tree(extract)
        owner_and_group(ctx, live, owner, group)

    # --- preflight --------------------------------------------------------------------------------

    def probe(self, ctx):
        p = self.live(ctx)
        if not os.path.isdir(p):
            return ['%s_missing=yes' % self.name]
        st = os.stat(p)
        return ['%s_owner=%s' % (self.name, _user(st.st_uid)), '%s_group=%s' % (self.name, _group(st.st_gid)),
                '%s_free_kb=%d' % (self.name, disk_kb(p)[0]), '%s_kb=%d' % (self.name, du(p))]


def _user(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def owner_and_group(ctx, live, owner, group):
    """After rsync made the modes, in one walk: entries of another owner (set to OWNER as root; run
    as the Kadi user, who cannot chown, reported for a root chown) and of another group (set to
    GROUP where this user may; the rest reported). find's answers are taken as they come: a tree
    that is all wrong is not held in memory."""
    root = os.geteuid() == 0
    uid = (int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid) if root else -1
    gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    p = subprocess.Popen(['find', live, '(', '!', '-user', owner, '-printf', 'u%p\\0', ')', ',',
                          '(', '!', '-group', group, '-printf', 'g%p\\0', ')'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    other_owner = failed = 0
    rest = b''
    for chunk in iter(lambda: p.stdout.read(1 << 16), b''):
        *whole, rest = (rest + chunk).split(b'\0')
        for e in whole:
            try:
                if e[:1] == b'u':
                    other_owner += 1
                    if root: os.chown(e[1:], uid, -1, follow_symlinks=False)
                elif e[:1] == b'g':
                    os.chown(e[1:], -1, gid, follow_symlinks=False)
            except FileNotFoundError:
                pass  # gone since find saw it
            except OSError:
                failed += 1
    err = p.stderr.read()
    if p.wait():
        fail('reading the owners under %s failed: %s' % (live, one_line(err.decode(errors='replace'))))
    if other_owner and not root:
        ctx.attention('%d entries under %s are not owned by %s; run as root: chown -R %s:%s %s' % (other_owner, live, owner, owner, group, live))
    if failed:
        from ..common import user_name
        ctx.attention('could not set the owner or group of %d entries under %s (is %s a member of %s?)' % (failed, live, user_name(), group))


def fix_perms(ctx, live, owner, group):
    """The guide's chown/chmod, touching only entries that differ and with one process per many files
    (find -exec {} +), so 20k+ files take a moment, not minutes.

    A non-root Kadi user cannot chown to another user. When it owns the live tree itself (the usual
    kadi:kadi or kadi:www-data layout) everything rsync wrote is already its own, so only group and
    modes remain. Anything owned by someone else is reported for a root chown."""
    if os.geteuid() == 0:
        subprocess.run(['find', live, '!', '-user', owner, '-exec', 'chown', '-h', owner, '{}', '+'], check=True)
    else:
        r = subprocess.run(['find', live, '!', '-user', owner, '-print0'], capture_output=True)
        n = r.stdout.count(b'\0')
        if n:
            ctx.attention('%d entries under %s are not owned by %s; run as root: chown -R %s:%s %s' % (n, live, owner, owner, group, live))
    if subprocess.run(['find', live, '!', '-group', group, '-exec', 'chgrp', '-h', group, '{}', '+']).returncode:
        from ..common import user_name
        ctx.attention('could not set group %s everywhere under %s (is %s a member of %s?)' % (group, live, user_name(), group))
    for kind, mode in (('d', '750'), ('f', '640')):
        if subprocess.run(['find', live, '-type', kind, '!', '-perm', mode, '-exec', 'chmod', mode, '{}', '+']).returncode:
            fail('chmod %s of the %s under %s failed' % (mode, 'directories' if kind == 'd' else 'files', live))
