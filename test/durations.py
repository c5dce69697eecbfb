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

On a machine without the lab images, the controller starts building them
in the background (``lab.prebuild``) and the modules that need no lab (not
marked ``lab``) go first, in the same order among themselves, so that the
workers test while debootstrap runs instead of all waiting on its lock.
"""

from __future__ import annotations

import collections
import json
import pathlib

from lab import prebuild

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


PREBUILD = "qmail_lab_prebuild"


def _images_building(config) -> bool:
    """The controller's word (passed to each worker, so that all collect in
    the same order), or this process's own when it runs alone."""
    if hasattr(config, "workerinput"):
        return bool(config.workerinput.get(PREBUILD))
    return getattr(config, PREBUILD, None) is not None


def pytest_collection_modifyitems(session, config, items):
    known = load()
    lab_last = _images_building(config)
    order = {}
    for index, item in enumerate(items):
        order.setdefault(_module(item.nodeid), index)
    # Unknown modules first (inf), then longest first; ties keep their order.
    # While the lab images are built, the modules that need none go first.
    items.sort(key=lambda item: (lab_last and item.get_closest_marker("lab") is not None,
                                 -known.get(_module(item.nodeid), float("inf")),
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


def _may_run_lab(config) -> bool:
    """Whether this run may select lab tests: not for ``--collect-only``,
    ``-m "not lab"``, or paths all under test/unit or test/integration."""
    if config.option.collectonly or "not lab" in (config.option.markexpr or ""):
        return False
    here = FILE.parent
    no_lab = (here / "unit", here / "integration")
    paths = [pathlib.Path(config.invocation_params.dir, arg.split("::", 1)[0]).resolve()
             for arg in config.args] or [here]
    return any(not any(path.is_relative_to(folder) for folder in no_lab) for path in paths)


def pytest_configure_node(node):
    """xdist (controller): tell each worker whether the images are being built."""
    node.workerinput[PREBUILD] = _images_building(node.config)


def unconfigure(config):
    """A background image build still running when the run ends is stopped."""
    prebuild.stop(getattr(config, PREBUILD, None))


def configure(config):
    """Called from the root conftest's ``pytest_configure``: keeps this
    order under ``--dist loadfile``; records on the controller only (xdist
    workers report to it); starts the background image build when lab
    tests may run and images are missing (controller only)."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
    if not hasattr(config, "workerinput") and _may_run_lab(config):
        setattr(config, PREBUILD, prebuild.start())
    if config.getoption("store_durations") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Recorder(), "qmail-durations")
