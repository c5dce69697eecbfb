"""The formula's parts of a checkout (or of another tree), served as a
directory of symlinks: ``qmail/`` and the ``_modules``-style folders only.

Serving a checkout's root itself makes Salt's file server walk .venv and
.git (15,000+ files) for every file list: a masterless render then spends
half its time listing files, and ``saltutil.sync_all`` takes a minute
instead of seconds. Symlinks keep edits in the checkout live.
"""

from __future__ import annotations

import pathlib

from . import config


def parts(tree: pathlib.Path) -> dict[str, pathlib.Path]:
    """{name: path} of the formula folders of ``tree``."""
    return {e.name: e for e in sorted(pathlib.Path(tree).iterdir()) if e.is_dir() and (
        e.name == "qmail" or (e.name.startswith("_") and e.name != "__pycache__"))}


def link_view(view: pathlib.Path, tree: pathlib.Path | None = None) -> pathlib.Path:
    """Make (or top up) ``view``: a symlink per formula folder of ``tree``
    (default: this checkout); return ``view``."""
    view.mkdir(parents=True, exist_ok=True)
    for name, target in parts(tree or config.REPO_ROOT).items():
        if not (view / name).is_symlink():
            (view / name).symlink_to(target)
    return view
