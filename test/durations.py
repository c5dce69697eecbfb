"""The suite's schedule: test modules longest first, by ``test/durations.json``.

With ``-n N --dist loadfile`` each xdist worker takes one module at a time in
the order collected; a lab module of several minutes that starts last keeps
the run going alone at the end. Sorting the modules by their last measured
wall time, longest first, lets the short ones fill the gaps.

``--store-durations`` (``make test-times``) writes each module's time (the
sum of its tests' setup, call and teardown, module fixtures included) into
the file. The file is kept in the repository; a module it does not know yet
goes first (it may be long), then the rest by time. pytest-xdist (3.6 and
later) would put the modules with the most tests first instead (its
``--loadscope-reorder``, on by default), which sent the lab modules, few
tests each but minutes long, to the end of the run: ``configure`` turns that
off.
"""

from __future__ import annotations

import collections
import json
import pathlib

FILE = pathlib.Path(__file__).resolve().parent / "durations.json"


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def load() -> dict[str, float]:
    try:
        return json.loads(FILE.read_text())
    except (OSError, ValueError):
        return {}


def pytest_addoption(parser):
    parser.addoption("--store-durations", action="store_true",
                     help=f"write each test module's wall time to {FILE.name}")


def pytest_collection_modifyitems(session, config, items):
    known = load()
    order = {}
    for index, item in enumerate(items):
        order.setdefault(_module(item.nodeid), index)
    # Unknown modules first (inf), then longest first; ties keep their order.
    items.sort(key=lambda item: (-known.get(_module(item.nodeid), float("inf")),
                                 order[_module(item.nodeid)]))


class _Recorder:
    def __init__(self):
        self.seconds = collections.defaultdict(float)

    def pytest_runtest_logreport(self, report):
        self.seconds[_module(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session):
        merged = load()
        merged.update({name: round(value, 1) for name, value in self.seconds.items()})
        FILE.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")


def configure(config):
    """Called from the root conftest's ``pytest_configure``: keeps this
    order under ``--dist loadfile``; records on the controller only (xdist
    workers report to it)."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
    if config.getoption("store_durations") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Recorder(), "qmail-durations")
