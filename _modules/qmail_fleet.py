"""
Build qmail once per fleet, with Salt's own means.

Releases that look their accounts up at run time (notqmail >= 1.07) build a
tree that any host of the same OS, architecture, source and ``conf-*`` can
install (``qmail_build.build_id`` names it). The host named
``qmail:build:share:builder`` compiles, says so (``announce``), packs the
staged tree and ``cp.push``-es it with a manifest to the master
(``publish``); the master's ``minionfs`` file server backend serves it to
the other hosts as ``salt://<builder>/qmail-build/<build id>.tar.gz``,
where they look for it (``find``, waiting while the builder builds) and
install it (``install``). ``qmail_build.build`` drives these; the master
needs ``file_recv: True`` and ``minionfs`` (see the README).
"""

import functools
import json
import logging
import os
import shutil
import time

import salt.utils.hashutils

log = logging.getLogger(__name__)

__virtualname__ = "qmail_fleet"

SHARE_DIR = "qmail-build"  # below salt://<builder>/ (minionfs)
POLL_SECONDS = 3
ANNOUNCE_GRACE = 60  # seconds a host waits for a builder that has not said "building"
FETCH_TRIES = 3  # a file the master lists but failed to serve is asked for again
# qmail_build.build_id: the preset's name and a digest.
_BUILD_ID_RE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"


def __virtual__():
    return __virtualname__


@functools.cache  # one loader call per validator, not per value
def _v(name):
    """A validator of ``_utils/qmail_validate.py`` (the one schema owner)."""
    return __utils__["qmail_validate.plain"](name)


def _build_id(value, key="build_id"):
    return _v("matches")(value, key, _BUILD_ID_RE, "a build id")


def enabled():
    """
    Whether this minion can share builds: it talks to a master (a remote
    file client), not ``salt-call --local``.

    CLI Example::

        salt '*' qmail_fleet.enabled
    """
    return __opts__.get("file_client") == "remote" and not __opts__.get("local")


def _url(builder, build_id, ext):
    """Where the master serves ``builder``'s pushed file ``<build id>.<ext>``
    (minionfs: ``salt://<minion id>/<upload path>``)."""
    return f"salt://{builder}/{SHARE_DIR}/{build_id}.{ext}"


def _listed(url):
    """Whether the master lists ``url``'s file."""
    path = url[len("salt://"):]
    return path in (__salt__["cp.list_master"](prefix=os.path.dirname(path)) or ())


def _fetch(function, url):
    """``cp.<function>(url)``, asked again while the master lists a file it
    did not serve. Salt's minionfs hashes a pushed file on its first request
    into a cache folder it creates without ``exist_ok``: when two master
    workers do that at once, one request fails. A fleet's hosts ask for a
    new tree together, and the one that got the error would compile it."""
    got = __salt__[function](url)
    for _ in range(FETCH_TRIES - 1):
        if got or not _listed(url):
            break
        log.info("the master lists %s but did not serve it: asking again", url)
        got = __salt__[function](url)
    return got


def _json(builder, build_id, ext):
    text = _fetch("cp.get_file_str", _url(builder, build_id, ext))
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None  # still being pushed
    return data if isinstance(data, dict) else None


def find(builder, build_id, wait=0):
    """
    Look for ``builder``'s published tree ``build_id``; return its manifest
    (``id``, ``sha256``, ``builder``, ``record``) or None. With ``wait`` > 0,
    keep looking while the builder says it is building (its ``.building``
    note is younger than ``wait`` seconds), for up to ``wait`` seconds.

    CLI Example::

        salt '*' qmail_fleet.find build1.example.org notqmail-1.09-0123456789abcdef
    """
    builder = _v("minion_id")(builder, "builder")
    build_id = _build_id(build_id)
    wait = _v("integer")(wait, "wait", 0, 86400)
    started = time.time()
    while True:
        manifest = _json(builder, build_id, "json")
        if manifest and manifest.get("id") == build_id:
            return manifest
        waited = time.time() - started
        if waited >= wait:
            return None
        note = _json(builder, build_id, "building") or {}
        building = time.time() - note.get("started", 0) < wait
        # A fleet's highstates start together: give the builder a little
        # while to reach its build state and say so, but no longer.
        if not building and waited >= min(wait, ANNOUNCE_GRACE):
            return None
        time.sleep(POLL_SECONDS)


def _push(path, upload):
    try:
        return bool(__salt__["cp.push"](path, upload_path=upload))
    except Exception:  # pylint: disable=broad-except
        return False


def announce(workdir, build_id):
    """
    Tell the fleet that this minion is building ``build_id``: a
    ``.building`` note pushed to the master, which ``find`` waits on.
    Returns True when it arrived.

    CLI Example::

        salt '*' qmail_fleet.announce /var/cache/qmail-build notqmail-1.09-0123456789abcdef
    """
    workdir = _v("own_dir")(workdir, "workdir")
    build_id = _build_id(build_id)
    note = os.path.join(workdir, "shared", f"{build_id}.building")
    os.makedirs(os.path.dirname(note), mode=0o700, exist_ok=True)
    __utils__["qmail_files.atomic_write"](
        note, json.dumps({"id": build_id, "started": time.time()}).encode(), 0o600)
    return _push(note, f"{SHARE_DIR}/{build_id}.building")


def publish(stage, workdir, build_id, record):
    """
    Pack the staged tree ``stage`` into ``workdir``/shared and push it with
    its manifest (``build_id``, sha256, this minion, the build's ``record``)
    to the master. Returns True when both arrived.

    CLI Example::

        salt '*' qmail_fleet.publish /var/cache/qmail-build/destdir/var/qmail \\
            /var/cache/qmail-build notqmail-1.09-0123456789abcdef "{preset: notqmail-1.09}"
    """
    workdir = _v("own_dir")(workdir, "workdir")
    build_id = _build_id(build_id)
    record = _v("mapping")(record, "record")
    shared = os.path.join(workdir, "shared")
    tarball = os.path.join(shared, f"{build_id}.tar.gz")
    stage = _v("existing_dir")(stage, "stage")
    digest = __utils__["qmail_install.pack"](stage, tarball, __utils__["qmail_files.replacing"])
    manifest = os.path.join(shared, f"{build_id}.json")
    data = {"id": build_id, "sha256": digest, "builder": __grains__["id"], "record": record}
    __utils__["qmail_files.atomic_write"](
        manifest, (json.dumps(data, sort_keys=True) + "\n").encode(), 0o600)
    # The tree first, its manifest last: a reader that sees the manifest
    # finds the whole tarball, and checks it against the manifest's hash.
    return _push(tarball, f"{SHARE_DIR}/{build_id}.tar.gz") and _push(
        manifest, f"{SHARE_DIR}/{build_id}.json"
    )


def install(builder, manifest, workdir, home):
    """
    Install ``builder``'s published tree (``manifest`` as ``find`` returns
    it) into ``home``: fetched from the master, checked against the
    manifest's sha256, unpacked into ``workdir``/stage and installed like a
    compiled one (``_utils/qmail_install.py``). Returns the number of files
    written, or None when the tree could not be fetched or does not match.

    CLI Example::

        salt '*' qmail_fleet.install build1.example.org \\
            "{id: notqmail-1.09-0123456789abcdef, sha256: 0123}" /var/cache/qmail-build /var/qmail
    """
    builder = _v("minion_id")(builder, "builder")
    _v("fields")(manifest, "manifest", ("id", "sha256"))
    build_id = _build_id(manifest["id"], "manifest:id")
    workdir, home = _v("own_dir")(workdir, "workdir"), _v("own_dir")(home, "home")
    path = _fetch("cp.cache_file", _url(builder, build_id, "tar.gz"))
    if not path or salt.utils.hashutils.get_hash(path, form="sha256") != manifest.get("sha256"):
        return None
    stage = os.path.join(workdir, "stage")
    __utils__["qmail_install.extract_into"](path, stage)
    written = __utils__["qmail_install.install_tree"](
        stage, home, __utils__["qmail_files.atomic_copy"], __utils__["qmail_files.atomic_symlink"])
    shutil.rmtree(stage, ignore_errors=True)
    return written
