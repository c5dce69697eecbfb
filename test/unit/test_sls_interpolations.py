"""
Every value the SLS files interpolate reaches YAML as data: each ``{{ }}``
in ``qmail/**/*.sls`` ends in ``| json``, or is one of the two macros that
write JSON themselves (``sid`` for state IDs, ``files_switch`` for TOFS
sources). A new raw interpolation (``name: {{ pillar_value }}``) fails
here, before any pillar value can become YAML syntax, a requisite or a
shell word.
"""

import pathlib
import re

import jinja2
import pytest

QMAIL = pathlib.Path(__file__).resolve().parents[2] / "qmail"
EXPRESSION = re.compile(r"\{\{-?(.*?)-?\}\}", re.S)
JSON_MACROS = ("sid(", "files_switch(")
SLS = sorted(QMAIL.rglob("*.sls"))


def _raw(text):
    found = []
    for match in EXPRESSION.finditer(text):
        expr = " ".join(match.group(1).split())
        if expr.endswith("| json") or expr.startswith(JSON_MACROS):
            continue
        found.append(expr)
    return found


@pytest.mark.parametrize("path", SLS, ids=[str(p.relative_to(QMAIL)) for p in SLS])
def test_no_raw_interpolation(path):
    assert _raw(path.read_text()) == []


def test_the_check_finds_a_raw_interpolation():
    assert _raw("x-{{ name }}:\n  file.managed:\n    - name: {{ name | json }}\n") == ["name"]
    assert _raw("- require:\n  - file: {{ sid(['a-', name]) }}\n") == []


@pytest.mark.parametrize("macro", ["libsid.jinja", "libtofs.jinja"])
def test_json_macros_write_json(macro):
    """The macros the check trusts end in ``| json`` themselves."""
    text = (QMAIL / macro).read_text()
    body = text[text.index("{%- macro"):text.index("{%- endmacro")]
    outputs = [" ".join(e.split()) for e in EXPRESSION.findall(body)]
    assert outputs and all(o.endswith("| json") for o in outputs), outputs


@pytest.mark.parametrize("name", ["me", "/usr/sbin/sendmail", "x: y\n  - cmd: evil",
                                  "a #comment", "{{ 7*7 }}", "'\"quote"])
def test_sid_keeps_any_name_one_yaml_key(name):
    import yaml  # noqa: PLC0415

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(QMAIL)))
    env.filters["json"] = lambda v: __import__("json").dumps(v)
    sls = env.from_string(
        '{%- from "libsid.jinja" import sid %}\n'
        '{{ sid(["qmail-x-", name]) }}:\n  test.nop: []\n'
        'other:\n  test.nop:\n    - require:\n      - test: {{ sid(["qmail-x-", name]) }}\n'
    ).render(name=name)
    data = yaml.safe_load(sls)
    assert list(data) == [f"qmail-x-{name}", "other"]
    assert data["other"]["test.nop"][0]["require"] == [{"test": f"qmail-x-{name}"}]
