"""_utils/qmail_files.py, the one writer for files, copies and symlinks,
through Salt's loader: the old content or the new one, never a part, and
nothing planted beside the target is ever opened."""

import os
import stat


def _utils(loaders):
    return loaders.utils


def test_atomic_copy_keeps_owner_mode_and_setuid(loaders, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "qmail-queue"
    src.write_bytes(b"new program")
    dst.write_bytes(b"old program")
    old_inode = dst.stat().st_ino
    planted = tmp_path / "secret"
    planted.write_bytes(b"do not touch")
    os.link(planted, tmp_path / ".qmail-queue.qmail-build")  # the old predictable name
    _utils(loaders)["qmail_files.atomic_copy"](str(src), str(dst), 0o4711, 0, 0)
    assert dst.read_bytes() == b"new program"
    assert stat.S_IMODE(dst.stat().st_mode) == 0o4711  # set after chown: kept
    assert dst.stat().st_ino != old_inode  # renamed over: a running binary keeps its inode
    assert planted.read_bytes() == b"do not touch"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".qmail-queue.qmail-build", "qmail-queue", "secret", "src"]


def test_atomic_symlink_replaces_a_link_or_file(loaders, tmp_path):
    link = tmp_path / "sendmail"
    link.write_text("a file")
    _utils(loaders)["qmail_files.atomic_symlink"]("/var/qmail/bin/sendmail", str(link))
    assert os.readlink(link) == "/var/qmail/bin/sendmail"
    _utils(loaders)["qmail_files.atomic_symlink"]("/other", str(link))
    assert os.readlink(link) == "/other"
    assert [p.name for p in tmp_path.iterdir()] == ["sendmail"]


def test_atomic_write_like_takes_mode_and_owner(loaders, tmp_path):
    ref = tmp_path / "rc.conf"
    ref.write_text("x\n")
    os.chmod(ref, 0o640)
    _utils(loaders)["qmail_files.atomic_write"](str(ref), b"y\n", like=ref.stat())
    assert ref.read_text() == "y\n" and stat.S_IMODE(ref.stat().st_mode) == 0o640


def test_replacing_a_file_a_program_writes(loaders, tmp_path):
    """What the block's program wrote takes the name, with the mode given;
    a failure inside the block leaves the old file and no temporary."""
    target = tmp_path / "mta.deb"
    target.write_bytes(b"old package")
    replacing = _utils(loaders)["qmail_files.replacing"]
    try:
        with replacing(str(target), mode=0o644) as tmp:
            with open(tmp, "wb") as half:
                half.write(b"half a pack")
            raise RuntimeError("dpkg-deb failed")
    except RuntimeError:
        pass
    assert target.read_bytes() == b"old package"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mta.deb"]
    with replacing(str(target), mode=0o640) as tmp:
        with open(tmp, "wb") as new:
            new.write(b"new package")
    assert target.read_bytes() == b"new package"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mta.deb"]
