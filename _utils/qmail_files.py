"""
File helpers shared by the formula's execution modules (``__utils__``).

qmail reads its files at any moment and a killed Salt run must not leave a
half-written one behind: every write goes through a temporary file in the
same folder, fsync, rename, then fsync of the folder.
"""

import logging
import os
import tempfile

log = logging.getLogger(__name__)


def fsync_dir(directory):
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, data, mode=0o644, uid=None, gid=None):
    """
    Write bytes ``data`` to ``path`` so that readers see the old file or the
    new one, never a part: ``mode``, and ``uid``/``gid`` when given, are set
    on the temporary file before it takes the name.
    """
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    # mkstemp: O_CREAT|O_EXCL under a random name, so nothing planted in the
    # folder (a hard link, a symlink) is ever opened, truncated or chowned.
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if uid is not None or gid is not None:
                os.fchown(handle.fileno(), -1 if uid is None else uid,
                          -1 if gid is None else gid)
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(directory)
