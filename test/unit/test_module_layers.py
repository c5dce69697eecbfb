"""
How the modules reach one another, read from their source (issue 10,
"modules by concern"):

- every execution module reaches the shared validators
  (``_utils/qmail_validate.py``) the one way, through the same cached
  ``_v``, and no module calls a validator through the loader elsewhere;
- ``_utils`` modules use neither ``__salt__`` nor ``__utils__``: Salt's
  loader gives them neither, so a helper that needs another one (the atomic
  writer, ``cmd.run_stdout``) takes it as an argument.

``test_module_structure.py`` checks the rest of the layering (no circle
through ``__salt__``, no private run data, no module over 600 lines).
"""

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
MODULES = sorted((REPO / "_modules").glob("*.py"))
STATES = sorted((REPO / "_states").glob("*.py"))
UTILS = sorted((REPO / "_utils").glob("*.py"))


def _tree(path):
    return ast.parse(path.read_text(), filename=str(path))


def _loader_keys(tree, dunder):
    """The keys of ``dunder[...]`` subscripts in ``tree`` (with their line)."""
    return [(node.slice.value, node.lineno) for node in ast.walk(tree)
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
            and node.value.id == dunder and isinstance(node.slice, ast.Constant)]


def _v_of(tree):
    found = [node for node in tree.body if isinstance(node, ast.FunctionDef)
             and node.name == "_v"]
    return ast.dump(found[0]) if found else None


def test_every_module_binds_the_validators_the_same_cached_way():
    bindings = {path.stem: _v_of(_tree(path)) for path in MODULES}
    users = {name: dump for name, dump in bindings.items() if dump}
    # Every module that checks arguments does (a new one without _v would
    # have to call the loader per value, or keep validators of its own).
    assert set(users) == {path.stem for path in MODULES}
    assert len(set(users.values())) == 1, sorted(users)
    assert "functools" in next(iter(users.values()))  # cached: one loader call per name


@pytest.mark.parametrize("path", MODULES + STATES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_validators_are_reached_only_through_v(path):
    keys = [key for key, _ in _loader_keys(_tree(path), "__utils__")
            if key.startswith("qmail_validate.")]
    # The one way in is the getter ``plain``: _v's, or handed to a function of
    # _utils (which has no loader of its own); states leave the checks to
    # the modules.
    if path.parent.name == "_modules":
        assert set(keys) == {"qmail_validate.plain"}
    else:
        assert keys == []


@pytest.mark.parametrize("path", UTILS, ids=lambda p: p.name)
def test_utils_need_no_dunder_the_loader_does_not_give_them(path):
    names = {node.id for node in ast.walk(_tree(path)) if isinstance(node, ast.Name)}
    assert names & {"__salt__", "__utils__", "__grains__", "__pillar__"} == set()
