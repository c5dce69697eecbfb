"""The real qmail source for the tests, the demo and the benchmarks.

In this order: ``$QMAIL_SOURCE`` (a local tarball) when set; else the
project's shared copy, ``<repo>/../shared/sources/<preset>.tar.*`` (or
``$QMAIL_SHARED_SOURCES``), real release trees whose own sha256 is used;
else the formula's default release (the ``notqmail-1.09`` preset of
``_utils/qmail_build_inputs.py``: its URL and sha256), downloaded once into the
lab directory and verified. When none is available, ``SourceUnavailable``
says why, with the error of the download: callers skip (tests) or say so
(demo, benchmarks).

The other presets work alike, each with a variable of its own:
``QMAIL_SOURCE_QMAIL_1_03``, ``QMAIL_SOURCE_NETQMAIL_1_06``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import pathlib
import re
import urllib.error
import urllib.request

from . import config

DEFAULT_PRESET = "notqmail-1.09"


class SourceUnavailable(Exception):
    """No qmail source here: QMAIL_SOURCE unset and the official URL unreachable."""


class SourceError(Exception):
    """A qmail source that is there but wrong (not a file, bad download)."""


@dataclasses.dataclass(frozen=True)
class QmailSource:
    """A local qmail source tarball."""

    path: pathlib.Path
    sha256: str

    @property
    def salt_hash(self) -> str:
        """The hash in Salt's notation: ``sha256=<hex>``."""
        return f"sha256={self.sha256}"

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def official(preset: str = DEFAULT_PRESET) -> tuple[str, str]:
    """The preset's (url, sha256 hex) as the formula itself knows them."""
    path = config.REPO_ROOT / "_utils" / "qmail_build_inputs.py"
    spec = importlib.util.spec_from_file_location("_qmail_build_presets", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entry = module.PRESETS[preset]
    algo, _, digest = entry["hash"].partition("=")
    assert algo == "sha256", entry
    return entry["url"], digest


def env_name(preset: str = DEFAULT_PRESET) -> str:
    """The variable naming a local tarball of ``preset``."""
    if preset == DEFAULT_PRESET:
        return "QMAIL_SOURCE"
    return "QMAIL_SOURCE_" + re.sub(r"[^A-Z0-9]", "_", preset.upper())


def shared_dir() -> pathlib.Path:
    """The folder of shared real sources (``$QMAIL_SHARED_SOURCES``, else
    ``../shared/sources`` beside the checkout)."""
    value = os.environ.get("QMAIL_SHARED_SOURCES", "")
    return pathlib.Path(value) if value else config.REPO_ROOT.parent / "shared" / "sources"


def _shared(preset: str) -> pathlib.Path | None:
    """The shared tarball of ``preset``, if there is one."""
    folder = shared_dir()
    for suffix in (".tar.xz", ".tar.gz", ".tgz", ".tar.bz2"):
        path = folder / f"{preset}{suffix}"
        if path.is_file():
            return path
    return None


def _download(url: str, sha256: str, timeout: float, env: str) -> pathlib.Path:
    cache = config.lab_dir() / "sources"
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / url.rsplit("/", 1)[-1]
    if target.is_file() and _sha256(target) == sha256:
        return target
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, \
                partial.open("wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise SourceUnavailable(
            f"{env} is not set and the official qmail source {url} cannot be "
            f"downloaded ({exc}); set {env} to a local tarball of it"
        ) from exc
    got = _sha256(partial)
    if got != sha256:
        partial.unlink()
        raise SourceError(f"{url} downloaded, but its sha256 is {got}, not {sha256}")
    partial.rename(target)
    return target


def locate(preset: str = DEFAULT_PRESET, timeout: float = 20) -> QmailSource:
    """Return the source of ``preset`` to use; raise SourceUnavailable or SourceError."""
    env = env_name(preset)
    value = os.environ.get(env, "")
    if value:
        path = pathlib.Path(value)
        if not path.is_file():
            raise SourceError(f"{env}={value} is not a file")
        return QmailSource(path, _sha256(path))
    # Not byte-identical to the official tarball: its own hash is the one to pass.
    shared = _shared(preset)
    if shared is not None:
        return QmailSource(shared, _sha256(shared))
    url, sha256 = official(preset)
    path = _download(url, sha256, timeout, env)
    return QmailSource(path, sha256)


def locate_or_none(preset: str = DEFAULT_PRESET, prefix: str = "  skipped: ") -> QmailSource | None:
    """``locate``, or None after printing why there is no source (benchmarks)."""
    try:
        return locate(preset)
    except SourceUnavailable as exc:
        print(f"{prefix}{exc}", flush=True)
        return None
