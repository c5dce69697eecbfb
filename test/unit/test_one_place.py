"""
Defaults live in qmail/parameters/ only, and each list the code checks
against is written once (issue 21, item 4): read from the sources, as
test_module_structure.py reads the layers. Each check runs on the
formula's files and on a synthetic bad tree, so that it can be seen to fail.
"""

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]
FOLDERS = ("_modules", "_states", "_utils", "_beacons")
# Values that parameters/defaults.yaml holds: none may be written in code
# (docstrings and CLI examples aside).
PARAMETER_VALUES = {"/var/qmail", "/var/cache/qmail-build", "/var/lib/qmail-formula"}
# Lists the settings and the modules check against, by one member each
# cannot be mistaken for another: where each may be written.
ONE_PLACE = {
    "boot methods": (frozenset({"sysv", "chkconfig", "rcconf", "sysconfig", "irix"}),
                     "_utils/qmail_boot.py"),
    "supervisors": (frozenset({"systemd", "daemontools", "bootscript"}),
                    "_utils/qmail_supervisors.py"),
}
RECORD_NAME = ".qmail-build.json"


def _sources():
    return {f"{folder}/{path.name}": path.read_text()
            for folder in FOLDERS for path in sorted((REPO / folder).glob("*.py"))}


def _docstrings(tree):
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def strings_in_code(sources):
    """(file, value) for every string constant that is not a docstring."""
    found = []
    for file, text in sources.items():
        tree = ast.parse(text)
        docs = _docstrings(tree)
        found += [(file, node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and id(node) not in docs]
    return found


def parameter_values_in_code(sources):
    return sorted((f, v) for f, v in strings_in_code(sources) if v in PARAMETER_VALUES)


def lists_out_of_place(sources):
    """(name, file) for every tuple/list literal holding a whole ONE_PLACE
    list outside its place, or any of them twice in its place."""
    wrong, seen = [], {}
    for file, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, (ast.Tuple, ast.List)):
                continue
            values = {e.value for e in node.elts if isinstance(e, ast.Constant)}
            for name, (members, place) in ONE_PLACE.items():
                if members <= values:
                    seen[name] = seen.get(name, 0) + 1
                    if file != place or seen[name] > 1:
                        wrong.append((name, file))
    return wrong


def record_name_places(sources):
    return sorted({f for f, v in strings_in_code(sources) if v == RECORD_NAME})


BAD = {
    "_modules/qmail_a.py": ('def build(home, workdir="/var/cache/qmail-build"):\n'
                            '    """Build into /var/qmail by default."""\n'
                            '    return ("systemd", "daemontools", "bootscript")\n'),
    "_utils/qmail_boot.py": 'NAMES = ("systemd", "sysv", "chkconfig", "rcconf", '
                            '"sysconfig", "irix")\n',
    "_utils/qmail_b.py": 'RECORD = ".qmail-build.json"\nHOME = "/var/qmail"\n'
                         'M = ["sysv", "chkconfig", "rcconf", "sysconfig", "irix"]\n',
}


def test_no_default_of_parameters_is_written_in_code():
    assert parameter_values_in_code(_sources()) == []


def test_each_list_is_written_once_in_its_place():
    assert lists_out_of_place(_sources()) == []


def test_the_build_records_name_is_written_once():
    assert record_name_places(_sources()) == ["_utils/qmail_install.py"]


def test_the_checks_find_what_they_look_for():
    assert parameter_values_in_code(BAD) == [
        ("_modules/qmail_a.py", "/var/cache/qmail-build"), ("_utils/qmail_b.py", "/var/qmail")]
    assert lists_out_of_place(BAD) == [("supervisors", "_modules/qmail_a.py"),
                                       ("boot methods", "_utils/qmail_b.py")]
    assert record_name_places(BAD) == ["_utils/qmail_b.py"]
