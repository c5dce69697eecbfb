"""requirements.lock (bin/venv-packages): it pins every package that
requirements.txt names, at a version requirements.txt allows, and the venv
the tests run in holds exactly the lock's versions (an edit of
requirements.txt without `make lock` fails here, named)."""

import importlib.metadata
import pathlib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = pathlib.Path(__file__).resolve().parents[2]


def _lines(name):
    text = (REPO / name).read_text(encoding="utf-8")
    return [line.split("#", 1)[0].strip() for line in text.splitlines()
            if line.split("#", 1)[0].strip()]


def _lock():
    pins = {}
    for line in _lines("requirements.lock"):
        name, version = line.split("==")
        pins[canonicalize_name(name)] = version
    return pins


def test_the_lock_pins_every_requirement_at_an_allowed_version():
    pins = _lock()
    wrong = {}
    for line in _lines("requirements.txt"):
        req = Requirement(line)
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None or not req.specifier.contains(pinned, prereleases=True):
            wrong[line] = pinned
    assert wrong == {}, f"requirements.lock is stale, run `make lock`: {wrong}"


def test_the_venv_holds_the_locks_versions():
    differ = {}
    for name, version in _lock().items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            differ[name] = (version, installed)
    assert differ == {}, f"(locked, installed): {differ}"
