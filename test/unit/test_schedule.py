"""The suite's schedule (test/durations.py): longest modules first, and the
modules that need no lab first while the lab images are being built."""

import types

import durations


class Item:
    def __init__(self, nodeid, lab):
        self.nodeid = nodeid
        self._lab = lab

    def get_closest_marker(self, name):
        return object() if name == "lab" and self._lab else None


def _modules(items):
    return [item.nodeid.split("::")[0] for item in items]


def _items():
    return [Item("test/unit/test_a.py::t1", False), Item("test/unit/test_a.py::t2", False),
            Item("test/e2e/test_long_lab.py::t", True),
            Item("test/integration/test_b.py::t", False),
            Item("test/e2e/test_short_lab.py::t", True)]


def _schedule(monkeypatch, **config):
    monkeypatch.setattr(durations, "load", lambda: {
        "test/unit/test_a.py": 5.0, "test/e2e/test_long_lab.py": 300.0,
        "test/integration/test_b.py": 90.0, "test/e2e/test_short_lab.py": 40.0})
    items = _items()
    durations.pytest_collection_modifyitems(None, types.SimpleNamespace(**config), items)
    return _modules(items)


def test_longest_modules_first_when_the_images_are_there(monkeypatch):
    assert _schedule(monkeypatch, workerinput={durations.PREBUILD: False}) == [
        "test/e2e/test_long_lab.py", "test/integration/test_b.py",
        "test/e2e/test_short_lab.py", "test/unit/test_a.py", "test/unit/test_a.py"]


def test_while_the_images_are_built_the_modules_without_lab_go_first(monkeypatch):
    expected = ["test/integration/test_b.py", "test/unit/test_a.py", "test/unit/test_a.py",
                "test/e2e/test_long_lab.py", "test/e2e/test_short_lab.py"]
    # A worker, told by the controller; the controller alone (no xdist).
    assert _schedule(monkeypatch, workerinput={durations.PREBUILD: True}) == expected
    assert _schedule(monkeypatch, **{durations.PREBUILD: object()}) == expected
    assert _schedule(monkeypatch, **{durations.PREBUILD: None}) != expected


def _config(args, markexpr="", collectonly=False):
    return types.SimpleNamespace(args=args, invocation_params=types.SimpleNamespace(
                                     dir=durations.FILE.parents[1]),
                                 option=types.SimpleNamespace(markexpr=markexpr,
                                                              collectonly=collectonly))


def test_the_images_are_built_ahead_only_for_a_run_that_may_need_them():
    may = durations._may_run_lab
    assert may(_config(["test"], markexpr="not slow"))
    assert may(_config([]))
    assert may(_config(["test/unit", "test/e2e/test_mail.py::test_x"]))
    assert not may(_config(["test/unit", "test/integration/test_b.py"]))
    assert not may(_config(["test"], markexpr="not lab"))
    assert not may(_config(["test"], collectonly=True))
