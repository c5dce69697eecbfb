"""
qmail_build.installed on the orchestration fixture (a generated source tree
with setup/check targets; not qmail): hash check, extract, conf-* written,
make invoked, record kept, failure retried, test mode.
"""

import pathlib
import stat
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from orchestration_fixture import make_tarball  # noqa: E402

CONF = {
    "conf-qmail": None,  # set per test: the scratch home
    "conf-users": "alias\nqmaild\nqmaill\nroot\nqmailp\nqmailq\nqmailr\nqmails",
    "conf-groups": "qmail\nnofiles",
    "conf-cc": "cc -O2",
    "conf-ld": "cc -s",
    "conf-spawn": "120",
    "conf-split": "23",
    "conf-patrn": "002",
    "conf-break": "-",
}


class Fixture:
    """A generated source tarball, a scratch home and workdir, and a state call."""

    def __init__(self, states, tmp_path, old_errno=False):
        self.states = states
        self.tmp = tmp_path
        self.fail_flag = tmp_path / "fail-setup"
        self.compiles_log = tmp_path / "compiles.log"
        self.tarball, self.hash = make_tarball(tmp_path / "dl", self.fail_flag, self.compiles_log,
                                               old_errno=old_errno)
        self.home = tmp_path / "qmail"
        self.workdir = tmp_path / "work"
        self.conf = dict(CONF, **{"conf-qmail": str(self.home)})

    def source(self, **kw):
        return {"preset": "notqmail-1.09", "url": str(self.tarball), "hash": self.hash,
                "runtime_ids": True, "errno_fix": False, **kw}

    def apply(self, test=False, conf=None, **source):
        return self.states.qmail_build.installed(
            name=str(self.home), source=self.source(**source), conf=conf or self.conf,
            workdir=str(self.workdir), share={}, test=test,
        )

    @property
    def compiles(self):
        if not self.compiles_log.exists():
            return 0
        return len(self.compiles_log.read_text().splitlines())

    def tree(self):
        if not self.home.exists():
            return None
        return sorted(
            (str(p.relative_to(self.home)), p.lstat().st_mode, p.lstat().st_mtime_ns)
            for p in self.home.rglob("*")
        )


@pytest.fixture
def fx(states, tmp_path):
    return Fixture(states, tmp_path)


def test_first_apply_builds_installs_and_records(fx, test_mode):
    ret = fx.apply(test=test_mode)
    new = {"preset": "notqmail-1.09", "hash": fx.hash, "conf": fx.conf}
    if test_mode:
        assert ret.result is None
        assert ret.changes == {"installed": {"old": None, "new": new}}
        assert fx.tree() is None and not fx.workdir.exists() and fx.compiles == 0
        return
    assert ret.result is True, ret.comment
    assert ret.changes["compiled"] is True and ret.changes["from"] == "compiled"
    assert ret.changes["installed"]["old"] is None
    assert {k: ret.changes["installed"]["new"][k] for k in new} == new
    assert fx.compiles == 1
    queue = fx.home / "bin" / "qmail-queue"
    assert stat.S_IMODE(queue.stat().st_mode) == 0o4711
    # Every conf-* value reached the build.
    conf_txt = (fx.home / "bin" / "conf.txt").read_text()
    assert f"conf-qmail: {fx.home}" in conf_txt and "conf-split: 23" in conf_txt
    # The log is kept; the build trees are not.
    log = (fx.workdir / "build.log").read_text()
    assert "### make setup DESTDIR=" in log and "### make check" in log
    assert not (fx.workdir / "src").exists() and not (fx.workdir / "destdir").exists()
    assert (fx.home / ".qmail-build.json").is_file()


def test_second_apply_builds_nothing(fx, test_mode):
    fx.apply()
    before = fx.tree()
    ret = fx.apply(test=test_mode)
    assert ret.result is True and ret.changes == {}
    assert fx.compiles == 1 and fx.tree() == before


def test_wrong_hash_fails_before_extracting(fx, test_mode):
    ret = fx.apply(hash="sha256=" + "0" * 64, test=test_mode)
    if test_mode:
        assert ret.result is None  # test mode fetches nothing
    else:
        assert ret.result is False and "qmail:source:hash" in ret.comment
        assert ret.changes == {}
    assert fx.tree() is None and not fx.workdir.exists() and fx.compiles == 0


def test_failure_shows_the_log_tail_and_is_retried(fx):
    fx.fail_flag.write_text("")
    ret = fx.apply()
    assert ret.result is False
    assert "make setup failed" in ret.comment
    assert f"fixture: setup fails while {fx.fail_flag} exists" in ret.comment
    assert not (fx.home / ".qmail-build.json").exists()  # no false "installed"
    # The same settings again: still not installed, so it tries again.
    assert fx.apply(test=True).result is None
    fx.fail_flag.unlink()
    ret = fx.apply()
    assert ret.result is True and ret.changes["compiled"] is True
    assert fx.compiles == 2


def test_check_warnings_fail_the_state(fx):
    (fx.tmp / "fail-setup-check").write_text("")
    ret = fx.apply()
    assert ret.result is False
    assert "make check failed (instcheck warnings)" in ret.comment
    assert "instcheck: warning: .../bin/qmail-queue has wrong owner" in ret.comment
    assert not (fx.home / ".qmail-build.json").exists()


def test_lost_record_reinstalls(fx):
    fx.apply()
    (fx.home / "bin" / "qmail-queue").chmod(0o711)  # setuid lost by hand
    (fx.home / ".qmail-build.json").unlink()        # and the record
    ret = fx.apply()
    assert ret.result is True and ret.changes["installed"]["old"] is None
    assert stat.S_IMODE((fx.home / "bin" / "qmail-queue").stat().st_mode) == 0o4711


def test_changed_conf_rebuilds_keeping_queue_and_control(fx, test_mode):
    fx.apply()
    (fx.home / "control" / "me").write_text("ccs.cla.kobe-u.ac.jp\n")
    (fx.home / "queue" / "mess" / "0" / "4711").write_text("a message in the queue")
    (fx.home / "alias" / ".qmail-root").write_text("&admin\n")
    conf = dict(fx.conf, **{"conf-spawn": "200"})
    ret = fx.apply(conf=conf, test=test_mode)
    assert ret.changes["installed"]["old"]["conf"]["conf-spawn"] == "120"
    assert ret.changes["installed"]["new"]["conf"]["conf-spawn"] == "200"
    assert fx.compiles == (1 if test_mode else 2)
    assert "conf-spawn: 200" in (fx.home / "bin" / "conf.txt").read_text() or test_mode
    assert (fx.home / "control" / "me").read_text() == "ccs.cla.kobe-u.ac.jp\n"
    assert (fx.home / "queue" / "mess" / "0" / "4711").read_text() == "a message in the queue"
    assert (fx.home / "alias" / ".qmail-root").read_text() == "&admin\n"


def test_changed_source_rebuilds(fx):
    fx.apply()
    tarball, digest = make_tarball(fx.tmp / "dl2", fx.fail_flag, fx.compiles_log, "fixture-1.1")
    ret = fx.apply(url=str(tarball), hash=digest)
    assert ret.result is True and ret.changes["compiled"] is True
    assert ret.changes["installed"]["old"]["hash"] == fx.hash
    assert fx.compiles == 2


def test_split_change_refused_with_a_full_queue(fx):
    fx.apply()
    (fx.home / "queue" / "mess" / "0" / "4711").write_text("waiting")
    ret = fx.apply(conf=dict(fx.conf, **{"conf-split": "31"}))
    assert ret.result is False
    assert ret.comment.startswith("qmail:build:conf:split:")
    assert fx.compiles == 1


def test_source_verified(fx, test_mode):
    verify = fx.states.qmail_build.source_verified
    ret = verify(name=str(fx.home), source=fx.source(), conf=fx.conf, test=test_mode)
    assert ret.result is True and ret.changes == {} and "matches" in ret.comment
    bad = verify(name=str(fx.home), source=fx.source(hash="sha256=" + "2" * 64), conf=fx.conf,
                 test=test_mode)
    assert bad.result is False and bad.comment.startswith("qmail:source:hash:")
    assert bad.changes == {} and fx.tree() is None and not fx.workdir.exists()


def test_source_verified_fetches_nothing_once_installed(fx):
    fx.apply()
    fx.tarball.unlink()  # the source is gone: only an installed build passes
    ret = fx.states.qmail_build.source_verified(name=str(fx.home), source=fx.source(),
                                                conf=fx.conf)
    assert ret.result is True and "nothing to verify" in ret.comment


def test_qmail_103_gets_the_errno_fix_and_installs_in_place(states, tmp_path):
    fx = Fixture(states, tmp_path, old_errno=True)
    ret = fx.apply(preset="qmail-1.03", runtime_ids=False, errno_fix=True)
    assert ret.result is True, ret.comment
    log = (fx.workdir / "build.log").read_text()
    assert "### error.h: extern int errno -> #include <errno.h>" in log
    assert "### make setup check (in " in log and "DESTDIR" not in log  # no staging
    assert stat.S_IMODE((fx.home / "bin" / "qmail-queue").stat().st_mode) == 0o4711
    again = fx.apply(preset="qmail-1.03", runtime_ids=False, errno_fix=True)
    assert again.result is True and again.changes == {}


def test_qmail_103_without_the_errno_fix_does_not_link(states, tmp_path):
    fx = Fixture(states, tmp_path, old_errno=True)
    ret = fx.apply(preset="qmail-1.03", runtime_ids=False, errno_fix=False)
    assert ret.result is False
    assert "make setup check failed" in ret.comment and "errno" in ret.comment
    assert not (fx.home / ".qmail-build.json").exists()
