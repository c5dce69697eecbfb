"""
File helpers shared by the formula's execution modules (``__utils__``).

qmail reads its files at any moment and a killed Salt run must not leave a
half-written one behind: every write, copy and symlink of the formula goes
through a temporary name in the same folder, fsync, rename, then fsync of
the folder. This is the one writer; the modules call it directly.
"""

import contextlib
import logging
import os
import secrets
import shutil
import tempfile

log = logging.getLogger(__name__)


def fsync_dir(directory):
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _temporary(path):
    """A new file beside ``path`` (O_EXCL, random name): ``(fd, name)``. When
    the block ends well it is renamed over ``path`` and the folder fsynced;
    on any failure it is removed."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    # mkstemp: O_CREAT|O_EXCL under a random name, so nothing planted in the
    # folder (a hard link, a symlink) is ever opened, truncated or chowned.
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=directory)
    try:
        yield fd, tmp
        # rename: readers (and a running binary) keep the old inode.
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(directory)


def _replace(path, fill, mode, uid=None, gid=None):
    """Let ``fill`` write a temporary file beside ``path``, set owner then
    mode (chown clears set-id bits), fsync, and rename it over ``path``."""
    with _temporary(path) as (fd, _tmp), os.fdopen(fd, "wb") as handle:
        fill(handle)
        handle.flush()
        if uid is not None or gid is not None:
            os.fchown(handle.fileno(), -1 if uid is None else uid,
                      -1 if gid is None else gid)
        os.fchmod(handle.fileno(), mode)
        os.fsync(handle.fileno())


@contextlib.contextmanager
def replacing(path, mode=0o644):
    """
    For a file that a program writes (``dpkg-deb --build ROOT TMP``): yields
    a temporary name beside ``path`` for it to fill; when the block ends well
    the file gets ``mode``, is fsynced and renamed over ``path``. A failure
    or a kill inside the block leaves ``path`` as it was, and no half-made
    file that could pass for the new one.
    """
    with _temporary(path) as (fd, tmp):
        os.close(fd)
        yield tmp
        os.chmod(tmp, mode)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())


def atomic_write(path, data, mode=0o644, uid=None, gid=None, like=None):
    """
    Write bytes ``data`` to ``path`` so that readers see the old file or the
    new one, never a part: ``mode``, and ``uid``/``gid`` when given, are set
    on the temporary file before it takes the name. ``like``: an
    ``os.stat_result`` whose mode and owner the new file takes instead.
    """
    if like is not None:
        mode, uid, gid = like.st_mode & 0o7777, like.st_uid, like.st_gid
    _replace(path, lambda handle: handle.write(data), mode, uid, gid)


def rewrite(path, data):
    """Write bytes ``data`` over the file ``path`` leads to, with that file's
    mode and owner (0644 for a new one): a symlinked rc.conf stays a
    symlink, the file it leads to is replaced."""
    path = os.path.realpath(path)
    try:
        like = os.stat(path)
    except FileNotFoundError:
        like = None
    atomic_write(path, data, mode=0o644, like=like)


def atomic_copy(src, dst, mode, uid=None, gid=None):
    """Copy file ``src`` over ``dst`` the same way (a running program ``dst``
    keeps its old inode)."""
    def fill(handle):
        with open(src, "rb") as source:
            shutil.copyfileobj(source, handle, 1 << 20)

    _replace(dst, fill, mode, uid, gid)


def atomic_symlink(target, path):
    """Make ``path`` a symlink to ``target`` by renaming a new one over it: a
    reader sees the old link or the new one, never none."""
    directory = os.path.dirname(path)
    for _ in range(100):  # symlink() has no mkstemp: a random name, O_EXCL-like
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
        try:
            os.symlink(target, tmp)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no free temporary name beside {path}")
    try:
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    fsync_dir(directory)
