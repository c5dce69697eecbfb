"""patch(1) for lab hosts, until the base image's archive carries it.

The formula installs ``qmail:lookup:patch_package`` (Debian: ``patch``)
with ``pkg.installed`` when ``qmail:source:patches`` is not empty; the lab's
hosts reach no mirror, and ``lab/image.py``'s local archive (their only apt
source) has no ``patch`` yet. ``add_to_archive(host)`` puts Debian's .deb
into that host's archive with its index entry, as the image would, so that
the formula's ``pkg.installed`` really installs it with apt. The .deb is
fetched once per release into ``<lab dir>/debs/<release>/`` with this
machine's ``apt-get download`` (only where this machine runs that Debian
release), or taken from ``$QMAIL_LAB_PATCH_DEB``.
"""

from __future__ import annotations

import os
import pathlib
import subprocess

from . import config
from .source import SourceUnavailable

ARCHIVE_DIR = "/var/lib/qmail-lab-archive"  # lab.image.ARCHIVE_DIR


def _machine_release() -> str:
    for line in pathlib.Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_ID="):
            return line.split("=", 1)[1].strip('"')
    return ""


def deb(release: str) -> pathlib.Path:
    """Debian ``release``'s patch .deb; SourceUnavailable when there is none."""
    value = os.environ.get("QMAIL_LAB_PATCH_DEB", "")
    if value:
        return pathlib.Path(value)
    folder = config.lab_dir() / "debs" / release
    found = sorted(folder.glob("patch_*.deb"))
    if found:
        return found[-1]
    if _machine_release() != release:
        raise SourceUnavailable(f"no patch .deb for Debian {release}: set QMAIL_LAB_PATCH_DEB")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["apt-get", "download", "-q", "patch"], cwd=folder,
                          capture_output=True, text=True, timeout=300, check=False)
    found = sorted(folder.glob("patch_*.deb"))
    if done.returncode or not found:
        raise SourceUnavailable(f"apt-get download patch failed: {done.stderr.strip()}")
    return found[-1]


def _stanza(path: pathlib.Path) -> str:
    """The archive index entry of ``path`` (dpkg-scanpackages, as the image's)."""
    out = subprocess.run(["dpkg-scanpackages", ".", "/dev/null"], cwd=path.parent,
                         capture_output=True, text=True, check=True).stdout
    for stanza in out.split("\n\n"):
        if f"Filename: ./{path.name}\n" in stanza + "\n":
            return stanza.strip() + "\n"
    raise AssertionError(f"dpkg-scanpackages gave no entry for {path.name}")


def add_to_archive(host) -> None:
    """Make ``patch`` installable from ``host``'s local archive (not installed)."""
    path = deb(host.release)
    host.put_file(f"{ARCHIVE_DIR}/{path.name}", path.read_bytes())
    index = host.read_file(f"{ARCHIVE_DIR}/Packages")
    if f"./{path.name}" not in index:
        host.put_file(f"{ARCHIVE_DIR}/Packages", index.rstrip("\n") + "\n\n" + _stanza(path))
    host.run(["apt-get", "update", "-qq"], check=True)
