"""Paths and constants shared by the lab modules."""

from __future__ import annotations

import os
import pathlib

#: Salt version installed in the images; must equal the master's.
SALT_VERSION = "3008.4"

#: Debian releases the lab can boot: release number -> (suite, its python3).
RELEASES = {"11": ("bullseye", "3.9"), "12": ("bookworm", "3.11"), "13": ("trixie", "3.13")}
#: The release of hosts when a caller names none (existing tests run on it);
#: ``QMAIL_LAB_RELEASE=13 pytest test/e2e/test_mail.py`` runs a module's
#: hosts (and their prebuilt qmail) on another release.
DEFAULT_RELEASE = os.environ.get("QMAIL_LAB_RELEASE", "12")
#: The current stable release: the demo's default.
STABLE_RELEASE = "13"
if DEFAULT_RELEASE not in RELEASES:
    raise SystemExit(f"QMAIL_LAB_RELEASE={DEFAULT_RELEASE!r}: choose from {sorted(RELEASES)}")
#: Debian suite of the default release (kept for callers of the old name).
SUITE = RELEASES[DEFAULT_RELEASE][0]
#: Mirror the images are bootstrapped from.
MIRROR = os.environ.get("QMAIL_LAB_MIRROR", "http://deb.debian.org/debian")

#: Repository checkout root (the formula lives at <REPO_ROOT>/qmail).
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent

#: Image name prefix; the tag is a hash of the recipe.
IMAGE_PREFIX = "localhost/qmail-lab"

#: Container name prefix; every lab container carries the label below too.
CONTAINER_PREFIX = "qlab"
LABEL = "qmail-lab=1"


def lab_dir() -> pathlib.Path:
    """Return the lab's cache/work directory (env ``QMAIL_LAB_DIR``).

    It holds the podman storage, the wheelhouse and the image build trees. It
    lives outside the repository so that ``git clean`` never throws away the
    (expensive) images.
    """
    path = pathlib.Path(os.environ.get("QMAIL_LAB_DIR", "/var/tmp/qmail-lab"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_release(release: str | int | None) -> str:
    """Return ``release`` as a key of RELEASES (None: the default release);
    raise ValueError naming the choices otherwise."""
    key = DEFAULT_RELEASE if release is None else str(release)
    if key not in RELEASES:
        raise ValueError(f"unknown Debian release {release!r}; choose from {sorted(RELEASES)}")
    return key
