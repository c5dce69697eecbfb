"""qmail compiled once per run and build identity, installed everywhere else
through the formula's own fleet share.

Most lab tests are not about the build, yet each fresh host used to compile
qmail (a minute or two of both cores). Here one builder host compiles a
build identity once (Debian release, source, the formula's build code) and
publishes it the formula's way (``qmail:build:share:builder`` = itself:
``cp.push`` to its master); the lab keeps what it pushed in
``<lab dir>/builds/<key>/`` and hands it to every master as the pushed files
of a minion named ``CACHE_ID`` (minionfs). Hosts given ``pillar()`` as their
``qmail:build`` then find that tree and install it with
``qmail_fleet.install``: install, record, "a second apply builds nothing"
run on every host as they do for a user's fleet. A host whose build id
differs (other conf-*, another preset) finds nothing and, with ``wait: 0``,
compiles itself at once.

The key hashes the formula's build code too, so a changed recipe compiles
anew; entries live on across runs like the images (``python -m lab clean
--all`` removes them). One build per key at a time, across processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import shutil

from . import config

#: The minion id the cached trees are served under (salt://<id>/qmail-build/).
CACHE_ID = "lab-build-cache"
SHARE_DIR = "qmail-build"  # qmail_fleet.SHARE_DIR
#: What a compiled tree depends on besides the release and the source.
RECIPE = ("_modules/qmail_build.py", "_modules/qmail_fleet.py", "_utils/qmail_install.py",
          "_utils/qmail_build_inputs.py", "_modules/qmail_patches.py",
          "_utils/qmail_patches.py", "qmail/build.sls", "qmail/users.sls",
          "qmail/parameters/defaults.yaml", "qmail/parameters/os_family/Debian.yaml")


def key(release: str, source, patches=()) -> str:
    """The cache key of ``source`` (a lab.source.QmailSource) built on
    Debian ``release`` with the formula's defaults and ``patches`` (the
    same, applied in order with ``patch -p1``): their hashes are part of it."""
    digest = hashlib.sha256(f"{config.check_release(release)}\0{source.sha256}".encode())
    for patch in patches:
        digest.update(f"\0patch\0{patch.sha256}".encode())
    for name in RECIPE:
        digest.update(name.encode() + b"\0" + (config.REPO_ROOT / name).read_bytes())
    return f"debian{release}-{digest.hexdigest()[:16]}"


def _dir(cache_key: str) -> pathlib.Path:
    return config.lab_dir() / "builds" / cache_key


def _complete(folder: pathlib.Path) -> bool:
    """A manifest and the tarball it names, as qmail_fleet.publish leaves them."""
    for manifest in folder.glob("*.json"):
        data = json.loads(manifest.read_text())
        if (folder / f"{data['id']}.tar.gz").is_file():
            return True
    return False


@contextlib.contextmanager
def _locked(cache_key: str):
    path = config.lab_dir() / "builds" / f".{cache_key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def source_pillar(master, source, patches=()) -> dict:
    """``qmail:source`` for ``source`` and ``patches``, served by ``master``."""
    pillar = master.put_source(source)
    if patches:
        pillar["patches"] = [master.put_patch(patch) for patch in patches]
    return pillar


def _compile(master, source, release: str, folder: pathlib.Path, patches=()) -> None:
    """One host of ``release`` compiles and publishes; keep what it pushed."""
    builder = f"labbuild{release}.cla.kobe-u.ac.jp"
    pillar = {"qmail": {"source": source_pillar(master, source, patches),
                        "build": {"share": {"builder": builder, "wait": 0}}}}
    (host,) = master.start_hosts([builder], pillars={builder: pillar}, release=release)
    try:
        master.sync_formula(builder)
        ret = master.apply_ok(builder, "qmail.build", timeout=1800)[builder]
        built = next(v for v in ret.values()
                     if v["__id__"] == "qmail-build-tree-qmail_build-installed")
        assert built["changes"].get("published"), f"{builder} published nothing: {built}"
        pushed = pathlib.Path(master.minion_files(builder)) / SHARE_DIR
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for path in pushed.iterdir():
            if path.suffix in (".json", ".gz"):
                shutil.copy2(path, tmp / path.name)
        assert _complete(tmp), f"{builder} pushed no complete tree: {sorted(pushed.iterdir())}"
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    finally:
        master.remove_hosts([host])


def pillar(master, source, release: str | None = None, patches=()) -> dict:
    """``qmail:build`` for hosts of ``release`` that install ``source``'s
    tree (with ``patches``) from the cache (compiled first when missing),
    served by ``master``."""
    release = config.check_release(release)
    cache_key = key(release, source, patches)
    folder = _dir(cache_key)
    with _locked(cache_key):
        if not _complete(folder):
            _compile(master, source, release, folder, patches)
    served = pathlib.Path(master.minion_files(CACHE_ID)) / SHARE_DIR
    served.mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        target = served / path.name
        if not target.exists():
            shutil.copy2(path, target.with_name(path.name + ".part"))
            os.replace(target.with_name(path.name + ".part"), target)
    return {"share": {"builder": CACHE_ID, "wait": 0}}
