"""Paths and constants shared by the lab modules."""

from __future__ import annotations

import os
import pathlib

#: Salt version installed in the images; must equal the master's.
SALT_VERSION = "3008.4"

#: Debian suite and mirror the images are bootstrapped from.
SUITE = "bookworm"
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
