"""
The layers of the formula's Python, read from the sources (issue 21, "no
circles"), as in Salt itself: ``_utils`` never calls ``__salt__``; the
execution modules call ``_utils`` and one another without a circle (above
all ``qmail_settings``, the one reader of the pillar, calls none of the
modules that ask it for settings); states call execution modules; nothing
reads Salt's private run data; no module is longer than a reader can hold
(600 lines).

Each check is a function of the sources (folder/file name -> text), run on
the formula's own files and on a synthetic bad tree, so that each can be
seen to fail.
"""

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
FOLDERS = ("_modules", "_states", "_utils", "_beacons")
MAX_LINES = 600
# Salt's private run data: what a state may not decide anything by.
RUN_DATA = ("__low__", "__running__", "_gen_tag")


def _sources():
    return {f"{folder}/{path.name}": path.read_text()
            for folder in FOLDERS for path in sorted((REPO / folder).glob("*.py"))}


def _salt_keys(source):
    """The ``__salt__`` keys a source names: ``__salt__["mod.fn"]``,
    ``__salt__[f"mod.{fn}"]`` (its constant head) and ``__salt__.get(...)``."""
    keys = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and _is_salt(node.value):
            key = node.slice
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and _is_salt(node.func.value) and node.args):
            key = node.args[0]
        else:
            continue
        if isinstance(key, ast.JoinedStr) and key.values:
            key = key.values[0]
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            keys.append(key.value)
    return keys


def _is_salt(node):
    return isinstance(node, ast.Name) and node.id == "__salt__"


def run_data_uses(sources):
    """(file, name) for every mention of Salt's private run data."""
    return [(file, name) for file, text in sources.items() for name in RUN_DATA
            if name in text]


def salt_in_utils(sources):
    """The ``_utils`` files that use ``__salt__`` (the loader gives them none)."""
    return [file for file, text in sources.items() if file.startswith("_utils/")
            and any(isinstance(node, ast.Name) and node.id == "__salt__"
                    for node in ast.walk(ast.parse(text)))]


def long_files(sources):
    """(file, lines) for every file over MAX_LINES lines."""
    return [(file, len(text.splitlines())) for file, text in sources.items()
            if len(text.splitlines()) > MAX_LINES]


def call_graph(sources):
    """Execution module -> the formula's execution modules it calls through
    ``__salt__`` (itself left out: a call to its own function through the
    loader is no circle between modules)."""
    modules = {pathlib.PurePath(file).stem for file in sources if file.startswith("_modules/")}
    graph = {}
    for file, text in sources.items():
        if not file.startswith("_modules/"):
            continue
        name = pathlib.PurePath(file).stem
        called = {key.split(".")[0] for key in _salt_keys(text)}
        graph[name] = sorted((called & modules) - {name})
    return graph


def cycles(graph):
    """Every circle of ``graph`` (node -> nodes), each as a list of nodes
    from its smallest name round to it again; none when it is layered."""
    found = set()

    def walk(node, path):
        for nxt in graph.get(node, ()):
            if nxt in path:
                loop = path[path.index(nxt):]
                start = loop.index(min(loop))
                found.add(tuple(loop[start:] + loop[:start]))
            else:
                walk(nxt, path + [nxt])

    for node in sorted(graph):
        walk(node, [node])
    return [list(loop) + [loop[0]] for loop in sorted(found)]


# --------------------------------------------------------------------------
# The formula's own sources
# --------------------------------------------------------------------------
def test_no_module_reads_salt_s_run_data():
    assert run_data_uses(_sources()) == []


def test_utils_never_call_salt():
    assert salt_in_utils(_sources()) == []


def test_no_module_is_over_600_lines():
    assert long_files(_sources()) == []


def test_execution_modules_call_one_another_without_a_circle():
    graph = call_graph(_sources())
    assert "qmail_settings" in graph and "qmail_control" in graph  # the graph was read
    assert cycles(graph) == []


def test_settings_calls_no_module_of_the_formula():
    # The one reader of the pillar: everyone asks it, it asks no one of them.
    assert call_graph(_sources())["qmail_settings"] == []


def test_fleet_installs_without_qmail_build():
    # qmail_build drives qmail_fleet; never the other way round.
    graph = call_graph(_sources())
    assert "qmail_fleet" in graph["qmail_build"]
    assert "qmail_build" not in graph["qmail_fleet"]


# --------------------------------------------------------------------------
# Each check fails where it should: a synthetic bad tree
# --------------------------------------------------------------------------
BAD = {
    "_modules/qmail_a.py": 'def f():\n    return __salt__["qmail_b.g"]()\n',
    "_modules/qmail_b.py": 'def g():\n    return __salt__[f"qmail_c.{NAME}"]()\n',
    "_modules/qmail_c.py": 'def h():\n    return __salt__.get("qmail_a.f")()\n',
    "_modules/qmail_d.py": 'def k():\n    return __salt__["qmail_d.k"](), __salt__["cmd.run"]\n',
    "_states/qmail_a.py": 'def s():\n    return __low__["__reqs__"], __salt__["qmail_a.f"]\n',
    "_utils/qmail_x.py": 'def u():\n    return __salt__["qmail_a.f"]()\n',
    "_utils/qmail_long.py": "x = 1\n" * (MAX_LINES + 1),
}


def test_a_circle_through_salt_is_found():
    graph = call_graph(BAD)
    assert graph == {"qmail_a": ["qmail_b"], "qmail_b": ["qmail_c"],
                     "qmail_c": ["qmail_a"], "qmail_d": []}
    assert cycles(graph) == [["qmail_a", "qmail_b", "qmail_c", "qmail_a"]]


@pytest.mark.parametrize("graph, expected", [
    ({"a": ["b"], "b": ["a"]}, [["a", "b", "a"]]),
    ({"a": ["b", "c"], "b": ["c"], "c": []}, []),  # a diamond is no circle
    ({"a": ["b"], "b": ["c"], "c": ["b"]}, [["b", "c", "b"]]),
], ids=["two", "diamond", "tail"])
def test_cycles(graph, expected):
    assert cycles(graph) == expected


def test_run_data_is_found():
    assert run_data_uses(BAD) == [("_states/qmail_a.py", "__low__")]
    assert run_data_uses({"_states/x.py": "from salt.state import _gen_tag\n"}) == [
        ("_states/x.py", "_gen_tag")]


def test_salt_in_utils_is_found():
    assert salt_in_utils(BAD) == ["_utils/qmail_x.py"]


def test_a_long_file_is_found():
    assert long_files(BAD) == [("_utils/qmail_long.py", MAX_LINES + 1)]
    assert long_files({"_utils/qmail_ok.py": "x = 1\n" * MAX_LINES}) == []
