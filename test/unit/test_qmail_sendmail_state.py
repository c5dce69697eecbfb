"""The qmail_sendmail states on a Debian-like tree laid out in a temporary
folder (alternatives links, a setgid sendmail binary), each case applied for
real and with test=True."""

import hashlib
import json
import os
import shutil
import subprocess

import pytest

from lab.wait import wait_until


class Tree:
    """sendmail as Debian installs it, under ``root``:
    usr/sbin/sendmail -> etc/alternatives/sendmail -> usr/libexec/sendmail/sendmail
    usr/lib/sendmail  -> etc/alternatives/lib.sendmail -> (the same file)."""

    def __init__(self, root):
        self.root = root
        self.real = root / "usr/libexec/sendmail/sendmail"
        self.bak = root / "usr/libexec/sendmail/sendmail.bak"
        self.sbin = root / "usr/sbin/sendmail"
        self.lib = root / "usr/lib/sendmail"
        self.home = root / "var/qmail"
        self.frontend = self.home / "bin/sendmail"
        self.journal = root / "var/lib/qmail-formula/sendmail.json"
        for path in (self.real, self.sbin, self.lib, root / "etc/alternatives/x"):
            path.parent.mkdir(parents=True, exist_ok=True)
        # Any executable serves as the binary; sleep lets a test run it as a daemon.
        shutil.copy("/bin/sleep", self.real)
        os.chmod(self.real, 0o2755)
        self.original = hashlib.sha256(self.real.read_bytes()).hexdigest()
        (root / "etc/alternatives/sendmail").symlink_to(self.real)
        (root / "etc/alternatives/lib.sendmail").symlink_to(self.real)
        self.sbin.symlink_to(root / "etc/alternatives/sendmail")
        self.lib.symlink_to(root / "etc/alternatives/lib.sendmail")

    def install_frontend(self):
        """Stands for qmail.build's output: qmail's bin/sendmail."""
        self.frontend.parent.mkdir(parents=True, exist_ok=True)
        self.frontend.write_text("#!/bin/sh\nexit 0\n")
        os.chmod(self.frontend, 0o755)

    def snapshot(self):
        """Every path under the tree: link target, or mode and content hash."""
        result = {}
        for path in sorted(self.root.rglob("*")):
            if path.is_symlink():
                result[str(path)] = ("link", os.readlink(path))
            elif path.is_file():
                result[str(path)] = (path.stat().st_mode,
                                     hashlib.sha256(path.read_bytes()).hexdigest())
        return result


@pytest.fixture
def tree(tmp_path):
    return Tree(tmp_path / "os")


def _neutralise_all(states, tree, test=False):
    return [states.qmail_sendmail.neutralised(name=str(p), frontend=str(tree.frontend),
                                              journal=str(tree.journal), test=test)
            for p in (tree.sbin, tree.lib)]


def _link_all(states, tree, test=False):
    return [states.qmail_sendmail.frontend_linked(name=str(p), frontend=str(tree.frontend),
                                                  journal=str(tree.journal), test=test)
            for p in (tree.sbin, tree.lib)]


def test_neutralised(states, tree, test_mode):
    before = tree.snapshot()
    first, second = _neutralise_all(states, tree, test=test_mode)
    assert first.result is (None if test_mode else True)
    assert first.changes == {str(tree.real): {
        "old": {"path": str(tree.real), "mode": "2755"},
        "new": {"path": str(tree.bak), "mode": "0000"}}}
    if test_mode:
        assert tree.snapshot() == before
        return
    # Both paths lead to the same file: it is moved once.
    assert second.result is True and second.changes == {}
    assert not tree.real.exists()
    assert tree.bak.stat().st_mode & 0o7777 == 0
    assert hashlib.sha256(tree.bak.read_bytes()).hexdigest() == tree.original
    saved = json.loads(tree.journal.read_text())["binaries"][str(tree.real)]
    assert (saved["mode"], saved["sha256"]) == ("2755", tree.original)


def test_frontend_linked(states, tree, test_mode):
    tree.install_frontend()
    _neutralise_all(states, tree)
    before = tree.snapshot()
    rets = _link_all(states, tree, test=test_mode)
    assert [r.result for r in rets] == [None if test_mode else True] * 2
    assert rets[0].changes == {str(tree.sbin): {
        "old": str(tree.root / "etc/alternatives/sendmail"), "new": str(tree.frontend)}}
    if test_mode:
        assert tree.snapshot() == before
    else:
        assert os.readlink(tree.sbin) == os.readlink(tree.lib) == str(tree.frontend)


def test_frontend_missing_neutralises_and_links_nothing(states, tree, test_mode):
    _neutralise_all(states, tree)
    before = tree.snapshot()
    ret = _link_all(states, tree, test=test_mode)[0]
    assert ret.result is True and ret.changes == {}
    assert "not installed yet" in ret.comment
    assert tree.snapshot() == before


def test_second_run_changes_nothing(states, tree, test_mode):
    tree.install_frontend()
    _neutralise_all(states, tree)
    _link_all(states, tree)
    before = tree.snapshot()
    rets = _neutralise_all(states, tree, test=test_mode) + _link_all(states, tree,
                                                                     test=test_mode)
    assert [(r.result, r.changes) for r in rets] == [(True, {})] * 4
    assert tree.snapshot() == before


def test_half_way_run_is_finished(states, tree, test_mode):
    """An apply killed after the binary went to .bak, before the links were
    made: the next run makes the links, and .bak keeps the original."""
    tree.install_frontend()
    _neutralise_all(states, tree)
    rets = _neutralise_all(states, tree, test=test_mode) + _link_all(states, tree,
                                                                     test=test_mode)
    assert [bool(r.changes) for r in rets] == [False, False, True, True]
    assert hashlib.sha256(tree.bak.read_bytes()).hexdigest() == tree.original
    if not test_mode:
        assert os.path.realpath(tree.sbin) == os.path.realpath(tree.lib) == str(tree.frontend)


def test_restored(states, tree, test_mode):
    tree.install_frontend()
    _neutralise_all(states, tree)
    _link_all(states, tree)
    done = tree.snapshot()
    ret = states.qmail_sendmail.restored(name=str(tree.journal), test=test_mode)
    assert ret.result is (None if test_mode else True)
    assert ret.changes["binaries"] == {str(tree.real): {
        "old": {"path": str(tree.bak), "mode": "0000"},
        "new": {"path": str(tree.real), "mode": "2755"}}}
    assert set(ret.changes["links"]) == {str(tree.sbin), str(tree.lib)}
    if test_mode:
        assert tree.snapshot() == done
        return
    after = tree.snapshot()
    assert not tree.journal.exists()
    assert after[str(tree.real)] == (0o102755, tree.original)
    assert after[str(tree.sbin)] == ("link", str(tree.root / "etc/alternatives/sendmail"))
    assert after[str(tree.lib)] == ("link", str(tree.root / "etc/alternatives/lib.sendmail"))
    again = states.qmail_sendmail.restored(name=str(tree.journal))
    assert (again.result, again.changes) == (True, {})


def test_restored_gives_back_the_tree_exactly(states, tree):
    tree.install_frontend()
    before = tree.snapshot()
    _neutralise_all(states, tree)
    _link_all(states, tree)
    states.qmail_sendmail.restored(name=str(tree.journal))
    assert tree.snapshot() == before


def test_neutralised_fails_when_both_binary_and_bak_exist(states, tree, test_mode):
    tree.bak.write_bytes(b"an older original")
    before = tree.snapshot()
    ret = _neutralise_all(states, tree, test=test_mode)[0]
    assert ret.result is False
    assert "never overwritten" in ret.comment
    assert tree.snapshot() == before


def _start_sendmail(tree):
    """Run the tree's sendmail (a copy of sleep) and return once it has
    exec'd: before that the child still runs Python, which no module takes
    for sendmail."""
    proc = subprocess.Popen([str(tree.sbin), "60"])
    wait_until(lambda: _exe(proc.pid) == os.path.realpath(tree.sbin), timeout=60, interval=0.02,
               what=f"pid {proc.pid} running {tree.sbin}")
    return proc


def _exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def test_stopped_kills_what_runs_sendmail(states, tree, test_mode):
    # The tree's sendmail is a copy of sleep: running it stands for the daemon.
    proc = _start_sendmail(tree)
    try:
        ret = states.qmail_sendmail.stopped(
            name="sendmail", services=["qmail-test-no-such-service"],
            paths=[str(tree.sbin), str(tree.lib)], ports=[], frontend=str(tree.frontend),
            journal=str(tree.journal), test=test_mode)
        assert ret.result is (None if test_mode else True)
        assert ret.changes["processes"] == {"old": [f"{proc.pid} sendmail"], "new": []}
        if test_mode:
            assert proc.poll() is None
            assert not tree.journal.exists()
        else:
            assert proc.wait(timeout=5) == -15
            saved = json.loads(tree.journal.read_text())
            # No such service: nothing for restore to start again.
            assert saved["stopped"] == {"services": []}
    finally:
        proc.kill()
        proc.wait()


def test_stopped_finds_a_daemon_running_from_the_bak(states, tree):
    """After the binary is moved, a daemon started before still runs it."""
    proc = _start_sendmail(tree)
    try:
        _neutralise_all(states, tree)
        ret = states.qmail_sendmail.stopped(
            name="sendmail", services=[], paths=[str(tree.sbin)], ports=[],
            frontend=str(tree.frontend), journal=str(tree.journal))
        assert ret.changes["processes"]["old"] == [f"{proc.pid} sendmail"]
        assert proc.wait(timeout=5) == -15
    finally:
        proc.kill()
        proc.wait()


def test_stopped_with_nothing_running(states, tree, test_mode):
    ret = states.qmail_sendmail.stopped(
        name="sendmail", services=[], paths=[str(tree.sbin)], ports=[],
        journal=str(tree.journal), test=test_mode)
    assert (ret.result, ret.changes) == (True, {})
    assert not tree.journal.exists()


@pytest.mark.parametrize("method,content,expected", [
    ("irix", "on\n", "off\n"),
    ("sysconfig", "DAEMON=YES\nQUEUE=1h\n", "DAEMON=NO\nQUEUE=1h\n"),
    ("rcconf", 'sendmail_enable="YES"\n',
     'sendmail_enable="NO"\nsendmail_submit_enable="NO"\n'
     'sendmail_outbound_enable="NO"\nsendmail_msp_queue_enable="NO"\n'),
])
def test_boot_disabled_files(states, tmp_path, test_mode, method, content, expected):
    path = tmp_path / "conf"
    path.write_text(content)
    journal = tmp_path / "sendmail.json"
    ret = states.qmail_sendmail.boot_disabled(name="sendmail", method=method, path=str(path),
                                              journal=str(journal), test=test_mode)
    assert ret.result is (None if test_mode else True)
    assert ret.changes == {str(path): {"old": content, "new": expected}}
    if test_mode:
        assert path.read_text() == content
        assert not journal.exists()
        return
    assert path.read_text() == expected
    again = states.qmail_sendmail.boot_disabled(name="sendmail", method=method,
                                                path=str(path), journal=str(journal))
    assert again.changes == {}
    assert path.read_text() == expected
    states.qmail_sendmail.restored(name=str(journal))
    assert path.read_text() == content


def test_boot_disabled_services_not_installed(states, tmp_path, test_mode):
    ret = states.qmail_sendmail.boot_disabled(
        name="sendmail", method="sysv", services=["qmail-test-no-such-service"],
        journal=str(tmp_path / "r.json"), test=test_mode)
    assert (ret.result, ret.changes) == (True, {})


def test_journal_is_written_atomically_with_mode_0600(states, tree):
    tree.install_frontend()
    _neutralise_all(states, tree)
    assert tree.journal.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tree.journal.parent.iterdir()] == ["sendmail.json"]



def test_switching_to_the_filter_wrapper_and_back_never_takes_either_for_sendmail(
        states, tree, test_mode):
    """qmail:filter makes the host's sendmail a wrapper (issue 23) and
    turning it off makes it qmail's own again: with the other passed as
    ``also``, neither is ever kept as .bak, and the journal still holds the
    links' first targets (sendmail's alternatives) for qmail.sendmail.clean."""
    tree.install_frontend()
    wrapper = tree.root / "etc/qmail-filter/sendmail"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text("#!/bin/sh\nexec qmail-sendmail \"$@\"\n")
    os.chmod(wrapper, 0o755)
    _neutralise_all(states, tree)
    _link_all(states, tree)  # qmail's own front end, as before the filter
    first_targets = json.loads(tree.journal.read_text())["links"]
    for front, other in ((wrapper, tree.frontend), (tree.frontend, wrapper)):
        before = tree.snapshot()
        for path in (tree.sbin, tree.lib):
            ret = states.qmail_sendmail.neutralised(
                name=str(path), frontend=str(front), also=[str(other)],
                journal=str(tree.journal), test=test_mode)
            assert (ret.result, ret.changes) == (True, {}), ret.comment
            ret = states.qmail_sendmail.stopped(
                name="sendmail", services=[], paths=[str(path)], frontend=str(front),
                also=[str(other)], journal=str(tree.journal), test=test_mode)
            assert ret.changes == {}
            ret = states.qmail_sendmail.frontend_linked(
                name=str(path), frontend=str(front), journal=str(tree.journal),
                test=test_mode)
            assert ret.changes == {str(path): {"old": str(other), "new": str(front)}}
        if test_mode:
            assert tree.snapshot() == before
            return
        assert os.readlink(tree.sbin) == os.readlink(tree.lib) == str(front)
        for kept in (wrapper, tree.frontend):
            assert kept.stat().st_mode & 0o7777 == 0o755
            assert not kept.with_name(kept.name + ".bak").exists()
    assert json.loads(tree.journal.read_text())["links"] == first_targets
    # Without ``also``, qmail's own sendmail (linked now) would be taken for
    # sendmail's binary once the wrapper is the front end.
    ret = states.qmail_sendmail.neutralised(name=str(tree.sbin), frontend=str(wrapper),
                                            journal=str(tree.journal), test=True)
    assert str(tree.frontend) in ret.changes
