"""The dummy mail-transport-agent package (qmail_mta_package) on Salt's
loader: a real dpkg-deb build in a temporary folder, each state case
applied for real and with test=True."""

import os
import subprocess

import pytest

CONTROL = ["Package: qmail-test-mta", "Version: 1.0", "Architecture: all",
           "Maintainer: test <root@localhost>", "Provides: mail-transport-agent",
           "Description: a test package"]


def _built(states, tmp_path, control=CONTROL, test=False):
    return states.qmail_mta_package.built(
        name=str(tmp_path / "mta.deb"), root=str(tmp_path / "mta"), control=control, test=test)


def _tree(tmp_path):
    return {str(p.relative_to(tmp_path)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(tmp_path.rglob("*")) if p.is_file()}


def _deb_field(deb, field):
    return subprocess.run(["dpkg-deb", "-f", str(deb), field], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_built_from_nothing(states, tmp_path, test_mode):
    ret = _built(states, tmp_path, test=test_mode)
    assert ret.result is (None if test_mode else True)
    assert ret.changes == {"built": str(tmp_path / "mta.deb"),
                           "control": str(tmp_path / "mta/DEBIAN/control")}
    if test_mode:
        assert _tree(tmp_path) == {}
        return
    assert _deb_field(tmp_path / "mta.deb", "Provides") == "mail-transport-agent"
    assert (tmp_path / "mta/DEBIAN/control").read_text() == "\n".join(CONTROL) + "\n"
    # No temporary .deb is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mta", "mta.deb"]


def test_built_converged_runs_nothing(states, tmp_path, test_mode):
    _built(states, tmp_path)
    before = _tree(tmp_path)
    ret = _built(states, tmp_path, test=test_mode)
    assert (ret.result, ret.changes) == (True, {})
    assert _tree(tmp_path) == before  # same mtimes: dpkg-deb did not run


def test_built_again_when_control_changes(states, tmp_path, test_mode):
    _built(states, tmp_path)
    before = _tree(tmp_path)
    ret = _built(states, tmp_path, control=[*CONTROL[:1], "Version: 2.0", *CONTROL[2:]],
                 test=test_mode)
    assert ret.result is (None if test_mode else True)
    assert set(ret.changes) == {"built", "control"}
    if test_mode:
        assert _tree(tmp_path) == before
    else:
        assert _deb_field(tmp_path / "mta.deb", "Version") == "2.0"


def test_built_again_when_deb_older_than_control(states, tmp_path, test_mode):
    _built(states, tmp_path)
    deb = tmp_path / "mta.deb"
    os.utime(deb, ns=(1, 1))
    ret = _built(states, tmp_path, test=test_mode)
    assert ret.result is (None if test_mode else True)
    assert ret.changes == {"built": str(deb)}
    assert (deb.stat().st_mtime_ns == 1) is test_mode


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"root": "relative/dir"}, "root"),
    ({"root": "/etc"}, "root"),
    ({"name": "/usr/bin/x.deb"}, "deb"),
    ({"control": "Package: x"}, "control"),
    ({"control": ["Package: x", "Version: 1.0\nDepends: exim4"]}, "control[1]"),
    ({"control": ["Version: 1.0"]}, "control[0]"),
])
def test_built_bad_arguments_fail_naming_them(states, tmp_path, test_mode, kwargs, key):
    args = {"name": str(tmp_path / "mta.deb"), "root": str(tmp_path / "mta"),
            "control": CONTROL, **kwargs}
    ret = states.qmail_mta_package.built(**args, test=test_mode)
    assert ret.result is False and ret.comment.startswith(f"{key}: "), ret.comment
    assert _tree(tmp_path) == {}


def test_providers_reads_dpkg(modules):
    found = modules.qmail_mta_package.providers()
    expected = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}|${Package}|${Provides}\n"],
        capture_output=True, text=True, check=True).stdout
    expected = sorted(line.split("|")[1] for line in expected.splitlines()
                      if line.startswith("ii") and "mail-transport-agent" in line.split("|")[2])
    assert found == expected
    assert modules.qmail_mta_package.provided() is bool(expected)
    # Any installed package provides its own name? No: only what Provides says.
    assert modules.qmail_mta_package.providers("dpkg") == []


def test_installed_in_test_mode_predicts_and_installs_nothing(states, modules, tmp_path):
    _built(states, tmp_path)
    ret = states.qmail_mta_package.installed(name="qmail-test-mta",
                                             source=str(tmp_path / "mta.deb"), test=True)
    if modules.qmail_mta_package.provided():
        assert ret.result is True and ret.changes == {}
        assert "provided by" in ret.comment
    else:
        assert ret.result is None and "qmail-test-mta" in ret.changes
    assert subprocess.run(["dpkg-query", "-W", "qmail-test-mta"],
                          capture_output=True, check=False).returncode != 0
