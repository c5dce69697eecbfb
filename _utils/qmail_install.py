"""
Installing a staged qmail home (``__utils__``): the install layer under
``qmail_build`` and ``qmail_fleet``, file I/O only.

- ``install_tree``: a staged home (``make setup`` with ``DESTDIR``, or a
  builder's unpacked tree) into the live one, the way ``make setup`` would
  but safely while qmail runs (binaries replaced by rename, queue/ files
  kept, control/ and alias/ files never touched);
- ``pack``/``extract_into``: a staged home to a tarball and back (owners by
  name; no member may leave its folder);
- the record of what is installed (``<home>/.qmail-build.json``), which
  makes a second apply a no-op, and whether the queue is empty.

The callers check every argument (``qmail_validate``) and pass the writers
of ``qmail_files`` (the loader gives ``_utils`` modules no ``__utils__``).
"""

import grp
import json
import logging
import os
import pwd
import shutil
import stat
import tarfile

import salt.utils.hashutils
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

RECORD_NAME = ".qmail-build.json"


# --------------------------------------------------------------------------
# The record of what is installed
# --------------------------------------------------------------------------
def record_path(home):
    return os.path.join(home, RECORD_NAME)


def read_record(home):
    """What the formula installed into ``home`` ({} when nothing is recorded)."""
    try:
        with open(record_path(home), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_record(home, data, write):
    """Record ``data`` in ``home`` through ``write`` (``qmail_files.atomic_write``)."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    write(record_path(home), text.encode())


def queue_is_empty(home):
    """True when no message waits in ``home``/queue (queue/mess holds one
    file per message)."""
    for _dirpath, _dirs, files in os.walk(os.path.join(home, "queue", "mess")):
        if files:
            return False
    return True


# --------------------------------------------------------------------------
# Tarballs
# --------------------------------------------------------------------------
def _safe_members(archive, dest):
    """Refuse members that would land outside ``dest`` or are devices."""
    root = os.path.realpath(dest)
    for member in archive.getmembers():
        target = os.path.realpath(os.path.join(root, member.name))
        if os.path.commonpath([root, target]) != root or member.ischr() or member.isblk():
            raise CommandExecutionError(f"unsafe member {member.name!r} in the tarball")
        if member.islnk() or member.issym():
            link = os.path.join(os.path.dirname(target), member.linkname)
            if member.islnk():
                link = os.path.join(root, member.linkname)
            if os.path.commonpath([root, os.path.realpath(link)]) != root:
                raise CommandExecutionError(f"unsafe link {member.name!r} in the tarball")
        yield member


def extract_into(tarball, dest):
    """Unpack ``tarball`` into an emptied, private ``dest`` (no member may leave it)."""
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest, mode=0o700)
    try:
        with tarfile.open(tarball) as archive:
            archive.extractall(dest, members=_safe_members(archive, dest))
    except tarfile.TarError as exc:
        raise CommandExecutionError(f"cannot extract {tarball}: {exc}") from exc


def _owner_names(tarinfo):
    """Store owners by name: the accounts may have other ids on other hosts."""
    try:
        tarinfo.uname = pwd.getpwuid(tarinfo.uid).pw_name
        tarinfo.gname = grp.getgrgid(tarinfo.gid).gr_name
    except KeyError:
        pass
    return tarinfo


def pack(stage, tarball, replacing):
    """Pack the staged qmail home ``stage`` into ``tarball`` (gzip), owners by
    name, paths relative to the qmail home, through ``replacing``
    (``qmail_files.replacing``: a new file beside it, renamed over it when
    whole); returns its sha256."""
    os.makedirs(os.path.dirname(tarball), mode=0o700, exist_ok=True)
    with replacing(tarball) as tmp, \
            tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        archive.add(stage, arcname=".", filter=_owner_names)
    return salt.utils.hashutils.get_hash(tarball, form="sha256")


# --------------------------------------------------------------------------
# The staged tree into the live home
# --------------------------------------------------------------------------
def _same_file(src, dst, st):
    try:
        dst_st = os.lstat(dst)
    except FileNotFoundError:
        return False
    if (dst_st.st_mode, dst_st.st_uid, dst_st.st_gid, dst_st.st_size) != (
        st.st_mode, st.st_uid, st.st_gid, st.st_size
    ):
        return False
    with open(src, "rb") as a, open(dst, "rb") as b:
        return a.read() == b.read()


def install_tree(stage, home, copy, symlink):
    """
    Install the staged qmail home ``stage`` into ``home`` with the staged
    owners and modes: directories are created or re-moded, never emptied;
    files are replaced by rename through ``copy`` and ``symlink``
    (``qmail_files.atomic_copy``/``atomic_symlink``: a running qmail-send
    keeps its binary); files that already exist under queue/ (lock/tcpto,
    lock/sendmutex, lock/trigger) are kept, so the queue survives. control/
    and alias/ are only directories in the stage: their files are never
    touched. Returns the number of files written.
    """
    written = 0
    for dirpath, dirnames, filenames in os.walk(stage):
        dirnames.sort()
        rel = os.path.relpath(dirpath, stage)
        target_dir = os.path.normpath(os.path.join(home, rel))
        st = os.lstat(dirpath)
        os.makedirs(target_dir, mode=0o700, exist_ok=True)
        os.chown(target_dir, st.st_uid, st.st_gid)
        os.chmod(target_dir, stat.S_IMODE(st.st_mode))
        in_queue = rel == "queue" or rel.startswith("queue" + os.sep)
        for name in sorted(filenames):
            src, dst = os.path.join(dirpath, name), os.path.join(target_dir, name)
            st = os.lstat(src)
            if in_queue and os.path.lexists(dst):
                os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
                if not stat.S_ISLNK(st.st_mode):
                    os.chmod(dst, stat.S_IMODE(st.st_mode))
                continue
            if stat.S_ISFIFO(st.st_mode):
                os.mkfifo(dst, 0o600)
                os.chown(dst, st.st_uid, st.st_gid)
                os.chmod(dst, stat.S_IMODE(st.st_mode))
            elif stat.S_ISLNK(st.st_mode):
                symlink(os.readlink(src), dst)
            elif stat.S_ISREG(st.st_mode):
                if _same_file(src, dst, st):
                    continue
                copy(src, dst, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            else:
                continue
            written += 1
    return written
