"""Lab images built in the background while the tests that need none run.

A run on a machine without the lab images (a fresh CI machine, a new
``QMAIL_LAB_DIR``) spends minutes in debootstrap, mostly waiting for the
disk and the archive, with every pytest worker waiting on the build lock of
its first lab module. ``start`` (called once, by the controller) begins that
build in a child process and returns it; the schedule (test/durations.py) then
runs the modules that need no lab first, and the lab modules wait on the
same lock as before (``image.build``), finding the images made.

The images built are those of the default release and of the current stable
one (the ones ``make test`` uses); other releases are built when a host
first needs them, as before. A cached lab starts no child and changes no
order. ``python -m lab.prebuild R ...`` is the child.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

from . import config, image
from . import podman as lab_podman

RELEASES = sorted({config.DEFAULT_RELEASE, config.STABLE_RELEASE})
ROOT = pathlib.Path(__file__).resolve().parents[1]


def missing(engine: lab_podman.Podman) -> list[str]:
    """The releases of ``RELEASES`` with an image variant not in the lab."""
    return [release for release in RELEASES
            if not all(engine.image_exists(image.tag(variant, release))
                       for variant in image.VARIANTS)]


def start() -> subprocess.Popen | None:
    """Start building the missing images in a child process (its output in
    the lab dir's ``prebuild.log``); None when nothing is missing or the lab
    cannot run here (the lab fixture says why)."""
    if lab_podman.available():
        return None
    releases = missing(lab_podman.Podman())
    if not releases:
        return None
    log = config.lab_dir() / "prebuild.log"
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "lab.prebuild", *releases],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def stop(child: subprocess.Popen | None) -> None:
    """At the session's end: a build still running is stopped, debootstrap
    and chroots with it (its own process group; the chroots' mounts are in
    namespaces of their own, and the next build cleans a half-made tree)."""
    if child is not None and child.poll() is None:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait()


if __name__ == "__main__":
    image.build_all(releases=sys.argv[1:])
