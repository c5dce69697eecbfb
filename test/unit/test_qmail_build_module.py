"""qmail_build (execution): settings checks, fetch, extract, install_tree, record."""

import io
import os
import pathlib
import stat
import subprocess
import sys
import tarfile

import pytest
import yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from orchestration_fixture import make_tarball  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
OFFICIAL_109 = "sha256=e921891e7c2d84e30b6b52c02c251f61eb4a6255a922620a99a337f46fa32c52"


def _params(name):
    return yaml.safe_load((REPO / "qmail" / "parameters" / name).read_text())


def settings(modules, pillar=None, os_family="Debian"):
    """What map.jinja gives the SLS files for ``pillar`` on ``os_family``."""
    return modules.qmail_settings.merge(
        _params("defaults.yaml"), _params(f"os_family/{os_family}.yaml"), pillar or {}
    )


# -- settings --------------------------------------------------------------
def test_defaults_are_notqmail_109_with_the_official_hash(modules):
    got = settings(modules)
    assert got["build_source"]["preset"] == "notqmail-1.09"
    assert got["build_source"]["hash"] == OFFICIAL_109
    assert got["build_source"]["url"].startswith("https://github.com/notqmail/")
    assert got["build_source"]["runtime_ids"] is True


@pytest.mark.parametrize("preset, fixes, implicit, runtime_ids", [
    ("qmail-1.03", True, True, False), ("netqmail-1.06", False, True, False),
    ("notqmail-1.09", False, False, True),
])
def test_presets(modules, preset, fixes, implicit, runtime_ids):
    got = settings(modules, {"source": {"preset": preset}})["build_source"]
    assert got["errno_fix"] is fixes and got["alloc_fix"] is fixes
    assert got["implicit_fix"] is implicit
    assert got["runtime_ids"] is runtime_ids
    assert preset in got["url"]


def test_conf_files_follow_lookup_and_pillar(modules):
    got = settings(modules, {
        "lookup": {"home": "/opt/qmail"},
        "build": {"conf": {"spawn": 200, "split": 31, "cc": "cc -O1"}},
    })["build_conf"]
    assert got["conf-qmail"] == "/opt/qmail"
    assert got["conf-spawn"] == "200" and got["conf-split"] == "31"
    assert got["conf-cc"] == "cc -O1" and got["conf-ld"] == "cc -s"
    assert got["conf-users"].split("\n") == [
        "alias", "qmaild", "qmaill", "root", "qmailp", "qmailq", "qmailr", "qmails"]
    assert got["conf-groups"] == "qmail\nnofiles"


def test_accounts_as_install_ids_says(modules):
    got = settings(modules)
    users = {u["name"]: (u["group"], u["home"]) for u in got["accounts_users"]}
    assert users == {
        "alias": ("nofiles", "/var/qmail/alias"),
        "qmaild": ("nofiles", "/var/qmail"), "qmaill": ("nofiles", "/var/qmail"),
        "qmailp": ("nofiles", "/var/qmail"), "qmailq": ("qmail", "/var/qmail"),
        "qmailr": ("qmail", "/var/qmail"), "qmails": ("qmail", "/var/qmail"),
    }
    assert [g["name"] for g in got["accounts_groups"]] == ["qmail", "nofiles"]


def test_freebsd_uses_qnofiles_and_the_ports_ids(modules):
    got = settings(modules, os_family="FreeBSD")
    assert {g["name"]: g["gid"] for g in got["accounts_groups"]} == {"qmail": 82, "qnofiles": 81}
    alias = next(u for u in got["accounts_users"] if u["key"] == "alias")
    assert (alias["group"], alias["uid"]) == ("qnofiles", 81)
    assert got["build_conf"]["conf-groups"] == "qmail\nqnofiles"


def test_pillar_renames_accounts(modules):
    got = settings(modules, {"lookup": {"users": {"qmaild": "qmail-daemon"},
                                        "uids": {"qmaild": 2001}}})
    daemon = next(u for u in got["accounts_users"] if u["key"] == "qmaild")
    assert (daemon["name"], daemon["uid"]) == ("qmail-daemon", 2001)
    assert "qmail-daemon" in got["build_conf"]["conf-users"].split("\n")


def test_aliases_and_delivery_defaults(modules):
    got = settings(modules)
    names = ("root", "postmaster", "mailer-daemon")
    assert got["aliases_files"] == {n: ["./Maildir/"] for n in names}
    assert got["aliases_maildirs"] == ["/var/qmail/alias/Maildir"]
    assert got["delivery_arg"] == "./Maildir/"


def test_aliases_forward_and_removal(modules):
    got = settings(modules, {"aliases": {"root": ["&admin@example.org"], "mailer-daemon": None},
                             "delivery": "|preline procmail"})
    assert got["aliases_files"]["root"] == ["&admin@example.org"]
    assert got["aliases_files"]["mailer-daemon"] is None
    assert got["aliases_maildirs"] == ["/var/qmail/alias/Maildir"]  # postmaster still
    assert got["delivery_arg"] == "'|preline procmail'"


@pytest.mark.parametrize("pillar, key", [
    ({"source": {"preset": "qmail-2.0"}}, "qmail:source:preset"),
    ({"source": {"url": "https://example.org/q.tar.gz"}}, "qmail:source:hash"),
    ({"source": {"url": "/x.tgz", "hash": "md5=abc"}}, "qmail:source:hash"),
    ({"source": {"url": "/x.tgz", "hash": "sha256=abc"}}, "qmail:source:hash"),
    ({"source": {"url": "relative/x.tgz", "hash": OFFICIAL_109}}, "qmail:source:url"),
    ({"source": {"url": "/x.tgz\n/y", "hash": OFFICIAL_109}}, "qmail:source:url"),
    ({"build": {"conf": {"spawn": 256}}}, "qmail:build:conf:spawn"),
    ({"build": {"conf": {"split": 0}}}, "qmail:build:conf:split"),
    ({"build": {"conf": {"patrn": "08"}}}, "qmail:build:conf:patrn"),
    ({"build": {"conf": {"break": "--"}}}, "qmail:build:conf:break"),
    ({"build": {"conf": {"cc": "cc\nrm -rf /"}}}, "qmail:build:conf:cc"),
    ({"build": {"workdir": "relative"}}, "qmail:build:workdir"),
    ({"build": {"workdir": "/var/cache"}}, "qmail:build:workdir"),
    ({"lookup": {"home": "/usr"}}, "qmail:lookup:home"),
    ({"lookup": {"home": "/opt/qmail"}, "build": {"workdir": "/opt/qmail"}},
     "qmail:build:workdir"),
    ({"build": {"share": {"wait": -1}}}, "qmail:build:share:wait"),
    ({"source": {"preset": "qmail-1.03"}, "build": {"share": {"builder": "b1"}}},
     "qmail:build:share:builder"),
    ({"lookup": {"groups": {"nofiles": "nogroup"}}}, "qmail:lookup:groups:nofiles"),
    ({"lookup": {"users": {"alias": "Bad Name"}}}, "qmail:lookup:users:alias"),
    ({"lookup": {"uids": {"qmaild": "x"}}}, "qmail:lookup:uids:qmaild"),
    ({"lookup": {"gids": {"wheel": 0}}}, "qmail:lookup:gids:wheel"),
    ({"aliases": {"root": []}}, "qmail:aliases:root"),
    ({"aliases": {"root": ["a\nb"]}}, "qmail:aliases:root[0]"),
    ({"delivery": "Maildir"}, "qmail:delivery"),
    ({"clean": {"remove_install": "yes"}}, "qmail:clean:remove_install"),
])
def test_bad_pillar_names_its_key(modules, pillar, key):
    with pytest.raises(SaltInvocationError) as err:
        settings(modules, pillar)
    assert str(err.value).startswith(key + ":")


@pytest.mark.parametrize("value, expected", [
    ("sha256=" + "A" * 64, ("sha256", "a" * 64)),
    ("sha256:" + "b" * 64, ("sha256", "b" * 64)),
    ("c" * 128, ("sha512", "c" * 128)),
])
def test_parse_hash(modules, value, expected):
    assert modules.qmail_build.parse_hash(value) == expected


# -- fetch and extract -----------------------------------------------------
def test_fetch_verifies_the_hash(modules, tmp_path):
    path, digest = make_tarball(tmp_path, tmp_path / "fail", tmp_path / "compiles")
    assert modules.qmail_build.fetch(str(path), digest) == str(path)
    with pytest.raises(CommandExecutionError, match="qmail:source:hash: .* does not match the "
                                                    r"expected hash \(sha256 0{64}\)") as err:
        modules.qmail_build.fetch(str(path), "sha256=" + "0" * 64)
    # The file's real digest is never shown (the file may be a secret).
    assert digest.split("=")[1] not in str(err.value)


@pytest.mark.parametrize("url", ["file://etc/shadow", "file:///srv/../etc/shadow",
                                 "https://user:secret@example.org/q.tar.gz"])
def test_fetch_refuses_tricky_urls_before_reading(modules, url):
    with pytest.raises(SaltInvocationError, match="^qmail:source:url: ") as err:
        modules.qmail_build.fetch(url, "sha256=" + "0" * 64)
    assert "secret" not in str(err.value)


def test_fetch_takes_a_file_url_as_its_path(modules, tmp_path):
    path, digest = make_tarball(tmp_path, tmp_path / "fail", tmp_path / "compiles")
    assert modules.qmail_build.fetch(f"file://{path}", digest) == str(path)


def test_fetch_missing_file(modules, tmp_path):
    with pytest.raises(CommandExecutionError, match="does not exist"):
        modules.qmail_build.fetch(str(tmp_path / "nope.tar.xz"), OFFICIAL_109)


def test_fetch_unreachable_url_is_a_clean_error(modules):
    # Port 9 (discard) on loopback: nothing listens, the connection is refused.
    url = "http://127.0.0.1:9/notqmail-1.09.tar.xz"
    with pytest.raises(CommandExecutionError, match=f"^qmail:source:url: cannot fetch {url}"):
        modules.qmail_build.fetch(url, OFFICIAL_109)


def test_extract_finds_the_source_dir(modules, tmp_path):
    path, _ = make_tarball(tmp_path, tmp_path / "fail", tmp_path / "compiles")
    src = modules.qmail_build.extract(str(path), str(tmp_path / "src"))
    assert src == str(tmp_path / "src" / "fixture-1.0")
    assert (pathlib.Path(src) / "Makefile").is_file()


@pytest.mark.parametrize("member", ["../evil", "/etc/evil", "a/../../evil"])
def test_extract_refuses_paths_outside(modules, tmp_path, member):
    tarball = tmp_path / "evil.tar"
    with tarfile.open(tarball, "w") as archive:
        info = tarfile.TarInfo(member)
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(CommandExecutionError, match="unsafe member"):
        modules.qmail_build.extract(str(tarball), str(tmp_path / "src"))
    assert not (tmp_path / "evil").exists()


def test_fix_errno(modules, tmp_path):
    (tmp_path / "error.h").write_text("#ifndef ERROR_H\nextern int errno;\n#endif\n")
    assert modules.qmail_build.fix_errno(str(tmp_path)) is True
    assert "#include <errno.h>" in (tmp_path / "error.h").read_text()
    assert modules.qmail_build.fix_errno(str(tmp_path)) is False


def test_fix_alloc(modules, tmp_path):
    spawn = '#include "str.h"\n#include "stralloc.h"\n#include "select.h"\n'
    (tmp_path / "spawn.c").write_text(spawn)
    assert modules.qmail_build.fix_alloc(str(tmp_path)) is True
    assert (tmp_path / "spawn.c").read_text() == (
        '#include "str.h"\n#include "alloc.h"\n#include "stralloc.h"\n#include "select.h"\n')
    assert modules.qmail_build.fix_alloc(str(tmp_path)) is False  # once only
    with pytest.raises(SaltInvocationError, match="^srcdir: .* is not a folder"):
        modules.qmail_build.fix_alloc(str(tmp_path / "none"))


def test_fix_implicit_appends_to_conf_ccs_first_line_once(modules, tmp_path):
    (tmp_path / "conf-cc").write_text("cc -O2\nnotes\n")
    assert modules.qmail_build.fix_implicit(str(tmp_path)) is True
    assert (tmp_path / "conf-cc").read_text() == (
        "cc -O2 -Wno-error=implicit-function-declaration -Wno-error=implicit-int\nnotes\n")
    assert modules.qmail_build.fix_implicit(str(tmp_path)) is False  # once only


def test_fix_implicit_lets_gcc14s_errors_compile(modules, tmp_path):
    """What gcc 14 refuses by default (here forced with -Werror=, as this
    machine's gcc may be older) compiles with the fixed conf-cc."""
    cc = "cc -Werror=implicit-function-declaration -Werror=implicit-int"
    (tmp_path / "t.c").write_text("main() { return close(-1) == -1 ? 0 : 1; }\n")
    modules.qmail_build.write_conf(str(tmp_path), {"conf-cc": cc})

    def compiles():
        argv = (tmp_path / "conf-cc").read_text().split() + ["-c", "t.c"]
        return subprocess.run(argv, cwd=tmp_path, capture_output=True).returncode == 0

    assert not compiles()
    modules.qmail_build.fix_implicit(str(tmp_path))
    assert compiles()


def test_write_conf(modules, tmp_path):
    modules.qmail_build.write_conf(str(tmp_path), {"conf-qmail": "/var/qmail", "conf-split": "23"})
    assert (tmp_path / "conf-qmail").read_text() == "/var/qmail\n"
    with pytest.raises(SaltInvocationError):
        modules.qmail_build.write_conf(str(tmp_path), {"../conf-x": "1"})


# -- install_tree ------------------------------------------------------------
def _stage(root):
    (root / "bin").mkdir(parents=True)
    (root / "queue" / "lock").mkdir(parents=True)
    (root / "control").mkdir()
    (root / "bin" / "qmail-queue").write_bytes(b"new binary")
    os.chmod(root / "bin" / "qmail-queue", 0o4711)
    (root / "queue" / "lock" / "sendmutex").write_bytes(b"")
    (root / "queue" / "lock" / "tcpto").write_bytes(b"\0" * 8)
    os.mkfifo(root / "queue" / "lock" / "trigger", 0o622)
    os.chmod(root / "queue" / "lock" / "trigger", 0o622)
    os.chmod(root / "queue", 0o750)
    return root


def test_install_tree_fresh(modules, tmp_path):
    stage, home = _stage(tmp_path / "stage"), tmp_path / "home"
    assert modules.qmail_build.install_tree(str(stage), str(home)) == 4
    queue = home / "bin" / "qmail-queue"
    assert stat.S_IMODE(queue.stat().st_mode) == 0o4711
    assert stat.S_ISFIFO((home / "queue" / "lock" / "trigger").lstat().st_mode)
    assert stat.S_IMODE((home / "queue").stat().st_mode) == 0o750


def test_install_tree_keeps_queue_and_control_and_replaces_binaries(modules, tmp_path):
    stage, home = _stage(tmp_path / "stage"), tmp_path / "home"
    modules.qmail_build.install_tree(str(stage), str(home))
    (home / "queue" / "lock" / "tcpto").write_bytes(b"remote host timeouts")
    (home / "queue" / "mess" / "0").mkdir(parents=True)
    (home / "queue" / "mess" / "0" / "4711").write_bytes(b"a message")
    (home / "control" / "me").write_text("ccs.cla.kobe-u.ac.jp\n")
    old_inode = (home / "bin" / "qmail-queue").stat().st_ino
    (stage / "bin" / "qmail-queue").write_bytes(b"newer binary")
    os.chmod(stage / "bin" / "qmail-queue", 0o4711)
    assert modules.qmail_build.install_tree(str(stage), str(home)) == 1
    assert (home / "queue" / "lock" / "tcpto").read_bytes() == b"remote host timeouts"
    assert (home / "queue" / "mess" / "0" / "4711").read_bytes() == b"a message"
    assert (home / "control" / "me").read_text() == "ccs.cla.kobe-u.ac.jp\n"
    queue = home / "bin" / "qmail-queue"
    assert queue.read_bytes() == b"newer binary"
    assert queue.stat().st_ino != old_inode  # replaced by rename, not rewritten
    assert stat.S_IMODE(queue.stat().st_mode) == 0o4711
    assert modules.qmail_build.install_tree(str(stage), str(home)) == 0


def test_pack_unpack_keeps_modes(modules, tmp_path):
    stage = _stage(tmp_path / "stage")
    digest = modules.qmail_build.pack(str(stage), str(tmp_path / "out" / "tree.tar.gz"))
    assert len(digest) == 64
    again = modules.qmail_build.unpack(str(tmp_path / "out" / "tree.tar.gz"), str(tmp_path / "s2"))
    mode = (pathlib.Path(again) / "bin" / "qmail-queue").stat().st_mode
    assert stat.S_IMODE(mode) == 0o4711


# -- record ------------------------------------------------------------------
def test_check_changes_and_record(modules, tmp_path):
    source = {"preset": "notqmail-1.09", "hash": OFFICIAL_109}
    conf = {"conf-qmail": str(tmp_path), "conf-split": "23"}
    assert modules.qmail_build.record(str(tmp_path)) == {}
    change = modules.qmail_build.check_changes(str(tmp_path), source, conf)
    assert change == {"old": None, "new": {"preset": "notqmail-1.09", "hash": OFFICIAL_109,
                                           "conf": conf}}


def test_queue_is_empty(modules, tmp_path):
    assert modules.qmail_build.queue_is_empty(str(tmp_path)) is True
    (tmp_path / "queue" / "mess" / "3").mkdir(parents=True)
    assert modules.qmail_build.queue_is_empty(str(tmp_path)) is True
    (tmp_path / "queue" / "mess" / "3" / "123").write_text("x")
    assert modules.qmail_build.queue_is_empty(str(tmp_path)) is False


def test_build_id_depends_on_conf(modules):
    source = {"preset": "notqmail-1.09", "hash": OFFICIAL_109}
    one = modules.qmail_build.build_id(source, {"conf-split": "23"})
    assert one == modules.qmail_build.build_id(source, {"conf-split": "23"})
    assert one != modules.qmail_build.build_id(source, {"conf-split": "31"})
    assert one.startswith("notqmail-1.09-")
