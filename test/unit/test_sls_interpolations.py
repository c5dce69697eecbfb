"""
Every value the SLS files interpolate reaches YAML as data: each ``{{ }}``
in ``qmail/**/*.sls`` ends in ``| json``, state IDs built from names too
(``{{ ("qmail-control-file-managed-" ~ name) | json }}:``). A new raw
interpolation (``name: {{ pillar_value }}``) fails here, before any pillar
value can become YAML syntax, a requisite or a shell word.
"""

import pathlib
import re

import jinja2
import pytest

QMAIL = pathlib.Path(__file__).resolve().parents[2] / "qmail"
EXPRESSION = re.compile(r"\{\{-?(.*?)-?\}\}", re.S)
SLS = sorted(QMAIL.rglob("*.sls"))


def _joins_outside_json(expr):
    """``"a-" ~ name | json``: the filter takes ``name`` only, the rest is raw."""
    depth, quote = 0, None
    for ch in expr:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch in "~+" and depth == 0:
            return True
    return False


def _raw(text):
    found = []
    for match in EXPRESSION.finditer(text):
        expr = " ".join(match.group(1).split())
        if expr.endswith("| json") and not _joins_outside_json(expr):
            continue
        found.append(expr)
    return found


@pytest.mark.parametrize("path", SLS, ids=[str(p.relative_to(QMAIL)) for p in SLS])
def test_no_raw_interpolation(path):
    assert _raw(path.read_text()) == []


def test_the_check_finds_a_raw_interpolation():
    assert _raw("x-{{ name }}:\n  file.managed:\n    - name: {{ name | json }}\n") == ["name"]
    assert _raw("- require:\n  - file: {{ ('a-' ~ name) | json }}\n") == []
    assert _raw("{{ 'a-' ~ name | json }}:\n") == ["'a-' ~ name | json"]


@pytest.mark.parametrize("name", ["me", "/usr/sbin/sendmail", "x: y\n  - cmd: evil",
                                  "a #comment", "{{ 7*7 }}", "'\"quote"])
def test_state_id_keeps_any_name_one_yaml_key(name):
    import yaml  # noqa: PLC0415

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(QMAIL)))
    env.filters["json"] = lambda v: __import__("json").dumps(v)
    sls = env.from_string(
        '{{ ("qmail-x-" ~ name) | json }}:\n  test.nop: []\n'
        'other:\n  test.nop:\n    - require:\n      - test: {{ ("qmail-x-" ~ name) | json }}\n'
    ).render(name=name)
    data = yaml.safe_load(sls)
    assert list(data) == [f"qmail-x-{name}", "other"]
    assert data["other"]["test.nop"][0]["require"] == [{"test": f"qmail-x-{name}"}]
