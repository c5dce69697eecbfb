"""
qmail:source:patches on the loader: the schema (qmail_settings), the stack's
part of the build identity, and qmail_build.installed / qmail_patches.applicable
applying real patches (GNU patch) to the orchestration fixture (not qmail).
"""

import difflib
import hashlib
import pathlib
import subprocess
import sys

import pytest
import yaml
from salt.exceptions import CommandExecutionError

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from orchestration_fixture import PROG, make_tarball  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
H1 = "sha256=" + "1" * 64
H2 = "sha256=" + "2" * 64
CONF = {
    "conf-users": "alias\nqmaild\nqmaill\nroot\nqmailp\nqmailq\nqmailr\nqmails",
    "conf-groups": "qmail\nnofiles", "conf-cc": "cc -O2", "conf-ld": "cc -s",
    "conf-spawn": "120", "conf-split": "23", "conf-patrn": "002", "conf-break": "-",
}


def _params(name):
    return yaml.safe_load((REPO / "qmail" / "parameters" / name).read_text())


def settings(modules, source):
    return modules.qmail_settings.merge(
        _params("defaults.yaml"), _params("os_family/Debian.yaml"), {"source": source})


# -- the schema ----------------------------------------------------------------
def test_no_patches_by_default(modules):
    got = modules.qmail_settings.merge(_params("defaults.yaml"),
                                       _params("os_family/Debian.yaml"), {})
    assert got["build_source"]["patches"] == []
    assert got["lookup"]["patch_package"] == "patch"


def test_a_stack_in_the_form_the_build_takes(modules):
    got = settings(modules, {"patches": [
        {"url": "salt://p/auth.patch", "hash": "1" * 64},
        {"url": "file:///srv/two.patch", "hash": H2.replace("=", ":"), "strip": "0",
         "applies_to": ["notqmail-1.09"]},
    ]})["build_source"]["patches"]
    assert got == [
        {"url": "salt://p/auth.patch", "hash": H1, "strip": 1, "applies_to": None},
        {"url": "/srv/two.patch", "hash": H2, "strip": 0, "applies_to": ["notqmail-1.09"]},
    ]


@pytest.mark.parametrize("source, key, says", [
    ({"patches": [{"url": "/srv/a.patch"}]}, "qmail:source:patches:0:hash", "required"),
    ({"patches": [{"url": "/srv/a.patch", "hash": ""}]}, "qmail:source:patches:0:hash",
     "required"),
    ({"patches": [{"hash": H1}]}, "qmail:source:patches:0:url", "required"),
    ({"patches": [{"url": "/srv/a.patch", "hash": "md5=abc"}]},
     "qmail:source:patches:0:hash", "sha256"),
    ({"patches": [{"url": "/a", "hash": H1}, {"url": "/b", "hash": "sha256=" + "1" * 63}]},
     "qmail:source:patches:1:hash", "64 hex digits"),
    ({"patches": [{"url": "gopher://example.org/a.patch", "hash": H1}]},
     "qmail:source:patches:0:url", "https://"),
    ({"patches": [{"url": "https://u:pw@example.org/a.patch", "hash": H1}]},
     "qmail:source:patches:0:url", "credentials"),
    ({"patches": [{"url": "/srv/../etc/shadow", "hash": H1}]},
     "qmail:source:patches:0:url", "canonical"),
    ({"patches": [{"url": "/a", "hash": H1, "strip": "one"}]},
     "qmail:source:patches:0:strip", "whole number"),
    ({"patches": [{"url": "/a", "hash": H1, "strip": 1.5}]},
     "qmail:source:patches:0:strip", "whole number"),
    ({"patches": [{"url": "/a", "hash": H1, "strip": True}]},
     "qmail:source:patches:0:strip", "whole number"),
    ({"patches": [{"url": "/a", "hash": H1, "strip": 99}]},
     "qmail:source:patches:0:strip", "out of range"),
    ({"patches": [{"url": "/a", "hash": H1, "applies_to": ["notqmail-2.0"]}]},
     "qmail:source:patches:0:applies_to:0", "not a preset"),
    ({"patches": [{"url": "/a", "hash": H1, "applies_to": []}]},
     "qmail:source:patches:0:applies_to", "non-empty"),
    ({"preset": "qmail-1.03", "patches": [{"url": "/a", "hash": H1,
                                           "applies_to": ["notqmail-1.09"]}]},
     "qmail:source:patches:0:applies_to", "made for notqmail-1.09, not for"),
    ({"patches": [{"url": "/a", "hash": H1}, {"url": "/b", "hash": H1}]},
     "qmail:source:patches:1:hash", "the same patch as qmail:source:patches:0"),
    ({"patches": [{"url": "/a", "hash": H1, "fuzz": 2}]},
     "qmail:source:patches:0:fuzz", "unknown key"),
    ({"patches": ["/srv/a.patch"]}, "qmail:source:patches:0", "expected a mapping"),
    ({"patches": {"url": "/a", "hash": H1}}, "qmail:source:patches", "expected a list"),
])
def test_bad_stacks_name_their_key(modules, source, key, says):
    with pytest.raises(Exception, match=f"^{key}: ") as err:
        settings(modules, source)
    assert says in str(err.value)


# -- the build identity ------------------------------------------------------------
def test_the_stack_is_part_of_the_identity_an_empty_one_is_not(modules):
    build = modules.qmail_build
    plain = {"preset": "notqmail-1.09", "hash": H1}
    one = dict(plain, patches=[{"url": "/a", "hash": H2, "strip": 1}])
    assert build.build_id(dict(plain, patches=[]), CONF) == build.build_id(plain, CONF)
    ids = {build.build_id(s, CONF) for s in (
        plain, one, dict(plain, patches=[{"url": "/elsewhere", "hash": H2, "strip": 0}]),
        dict(plain, patches=[{"url": "/a", "hash": H2, "strip": 1},
                             {"url": "/b", "hash": H1, "strip": 1}]),
        dict(plain, patches=[{"url": "/b", "hash": H1, "strip": 1},
                             {"url": "/a", "hash": H2, "strip": 1}]),
    )}
    assert len(ids) == 5  # the stack, its strip and its order all count
    # Where a patch comes from does not.
    assert build.build_id(one, CONF) == build.build_id(
        dict(plain, patches=[{"url": "salt://x/a", "hash": H2, "strip": 1}]), CONF)


# -- real patches on the fixture ---------------------------------------------------
def _diff(name, old, new):
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        f"a/{name}", f"b/{name}"))


PATCHED = PROG.replace("orchestration fixture, not qmail", "patched fixture")
CLASH = PROG.replace("orchestration fixture, not qmail", "another fixture")


class Fixture:
    def __init__(self, modules, states, tmp_path):
        self.modules, self.states, self.tmp = modules, states, tmp_path
        self.compiles_log = tmp_path / "compiles.log"
        self.tarball, self.hash = make_tarball(tmp_path / "dl", tmp_path / "fail",
                                               self.compiles_log)
        self.home, self.workdir = tmp_path / "qmail", tmp_path / "work"
        self.conf = dict(CONF, **{"conf-qmail": str(self.home)})

    def patch(self, name, text, strip=1):
        path = self.tmp / "dl" / name
        path.write_text(text)
        return {"url": str(path), "strip": strip, "applies_to": None,
                "hash": "sha256=" + hashlib.sha256(text.encode()).hexdigest()}

    def source(self, patches):
        return {"preset": "notqmail-1.09", "url": str(self.tarball), "hash": self.hash,
                "runtime_ids": True, "errno_fix": False, "patches": patches}

    def apply(self, patches, test=False):
        return self.states.qmail_build.installed(
            name=str(self.home), source=self.source(patches), conf=self.conf,
            workdir=str(self.workdir), share={}, test=test)

    def tried(self, patches, test=False):
        return self.states.qmail_patches.applicable(
            name=str(self.home), source=self.source(patches), conf=self.conf, test=test)

    @property
    def compiles(self):
        return len(self.compiles_log.read_text().splitlines()) if (
            self.compiles_log.exists()) else 0

    def says(self):
        return subprocess.run([str(self.home / "bin" / "qmail-queue")], capture_output=True,
                              text=True, check=True).stdout


@pytest.fixture
def fx(modules, states, tmp_path):
    return Fixture(modules, states, tmp_path)


def test_a_patched_build_rebuilds_once_per_stack_change(fx):
    patched = fx.patch("p.patch", _diff("prog.c", PROG, PATCHED))
    assert fx.apply([]).result is True and fx.compiles == 1
    assert "orchestration fixture" in fx.says()
    predicted = fx.apply([patched], test=True)
    assert predicted.result is None
    assert predicted.changes["installed"]["new"]["patches"] == [
        {"hash": patched["hash"], "strip": 1}]
    assert fx.compiles == 1 and "orchestration fixture" in fx.says()
    ret = fx.apply([patched])
    assert ret.result is True, ret.comment
    assert ret.changes["installed"]["new"]["patches"] == [{"hash": patched["hash"], "strip": 1}]
    assert fx.compiles == 2 and "patched fixture" in fx.says()
    assert f"### qmail:source:patches:0: patch -p1 < {patched['url']}" in (
        fx.workdir / "build.log").read_text()
    assert fx.apply([patched]).changes == {} and fx.compiles == 2
    # Taking the stack away is a change too: back to the plain build.
    ret = fx.apply([])
    assert ret.changes["installed"]["old"]["patches"] and "patches" not in (
        ret.changes["installed"]["new"])
    assert fx.compiles == 3 and "orchestration fixture" in fx.says()
    assert fx.apply([]).changes == {}


def test_strip_is_passed_to_patch(fx):
    zero = fx.patch("p0.patch", _diff("prog.c", PROG, PATCHED).replace("a/prog.c", "prog.c")
                    .replace("b/prog.c", "prog.c"), strip=0)
    assert fx.apply([zero]).result is True and "patched fixture" in fx.says()


def test_a_wrong_patch_hash_extracts_nothing(fx, test_mode):
    patched = fx.patch("p.patch", _diff("prog.c", PROG, PATCHED))
    ret = fx.apply([dict(patched, hash="sha256=" + "0" * 64)], test=test_mode)
    if test_mode:
        assert ret.result is None
    else:
        assert ret.result is False and ret.comment.startswith("qmail:source:patches:0:hash: ")
    assert not fx.home.exists() and not fx.workdir.exists() and fx.compiles == 0
    checked = fx.states.qmail_build.source_verified(
        name=str(fx.home), source=fx.source([dict(patched, hash="sha256=" + "0" * 64)]),
        conf=fx.conf)
    assert checked.result is False and "qmail:source:patches:0:hash" in checked.comment


def test_a_conflicting_patch_is_named_and_nothing_is_built(fx, test_mode):
    first = fx.patch("p.patch", _diff("prog.c", PROG, PATCHED))
    clash = fx.patch("clash.patch", _diff("prog.c", PROG, CLASH))
    ret = fx.tried([first, clash], test=test_mode)
    assert ret.result is False and ret.changes == {}
    assert ret.comment.startswith("qmail:source:patches:1: ")
    assert "does not apply on top of qmail:source:patches:0..0" in ret.comment
    assert not fx.home.exists() and not fx.workdir.exists()
    good = fx.tried([first], test=test_mode)
    assert good.result is True and "1 patches apply" in good.comment
    # The build refuses it on its own too, before make.
    ret = fx.apply([first, clash])
    assert ret.result is False and ret.comment.startswith("qmail:source:patches:1: ")
    assert fx.compiles == 0 and not (fx.home / "bin").exists()


def test_apply_stack_leaves_the_tree_as_before_the_refused_patch(fx, tmp_path):
    src = tmp_path / "tree"
    src.mkdir()
    (src / "prog.c").write_text(PROG)
    first = fx.patch("p.patch", _diff("prog.c", PROG, PATCHED))
    clash = fx.patch("clash.patch", _diff("prog.c", PROG, CLASH))
    with pytest.raises(CommandExecutionError, match="^qmail:source:patches:1: "):
        fx.modules.qmail_patches.apply_stack(str(src), [first, clash],
                                             [first["url"], clash["url"]])
    assert (src / "prog.c").read_text() == PATCHED
    assert sorted(p.name for p in src.iterdir()) == ["prog.c"]  # no .orig, no .rej


def test_nothing_to_try_without_patches_or_when_installed(fx):
    assert fx.tried([]).comment == "no patches"
    patched = fx.patch("p.patch", _diff("prog.c", PROG, PATCHED))
    fx.apply([patched])
    ret = fx.tried([patched])
    assert ret.result is True and "is installed" in ret.comment
