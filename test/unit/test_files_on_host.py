"""
Control files and rc.conf-style files already on the host (issue 9, class
7): compared as bytes, never followed out of control/, never written
through a planted temporary name; key edits touch only the key.
"""

import os
import pathlib

import pytest
import yaml

PARAMETERS = pathlib.Path(__file__).resolve().parents[2] / "qmail" / "parameters"


def managed(states, home, name, contents, test):
    return states.qmail_control.managed(name=name, contents=contents, home=str(home), test=test)


@pytest.fixture
def control_dir(home):
    directory = home / "control"
    directory.mkdir(parents=True)
    return directory


@pytest.mark.parametrize("old", [
    b"ccs.cla.kobe-u.ac.jp\r\n",          # CRLF: qmail keeps the \r
    b"ccs.cla.kobe-u.ac.jp\r",             # a stray \r
    b"ccs.cla.kobe-u.ac.jp",               # no final newline
    b"ccs.cla.kobe-u.ac.jp\n\n",           # an empty second line
], ids=["crlf", "stray-cr", "no-newline", "blank-line"])
def test_bytes_that_differ_are_a_change_and_get_rewritten(states, home, control_dir, old,
                                                          test_mode):
    (control_dir / "me").write_bytes(old)
    ret = managed(states, home, "me", "ccs.cla.kobe-u.ac.jp", test_mode)
    assert ret.result is (None if test_mode else True)
    assert "\\r" in ret.changes["diff"] or old.count(b"\n") != 1
    expected = old if test_mode else b"ccs.cla.kobe-u.ac.jp\n"
    assert (control_dir / "me").read_bytes() == expected


def test_crlf_rcpthosts_is_no_longer_in_the_correct_state(states, home, control_dir):
    (control_dir / "rcpthosts").write_bytes(b"a.example.com\r\nb.example.com\r\n")
    ret = managed(states, home, "rcpthosts", ["a.example.com", "b.example.com"], False)
    assert ret.changes and ret.result is True
    assert (control_dir / "rcpthosts").read_bytes() == b"a.example.com\nb.example.com\n"
    assert managed(states, home, "rcpthosts", ["a.example.com", "b.example.com"],
                   False).changes == {}


def test_a_euc_jp_greeting_crashes_nothing(states, modules, home, control_dir, test_mode):
    euc = "ようこそ ccs ESMTP\n".encode("euc-jp")
    (control_dir / "smtpgreeting").write_bytes(euc)
    assert "\\x" in modules.qmail_control.read("smtpgreeting", home=str(home))
    assert modules.qmail_control.showctl(home=str(home))["smtpgreeting"]["default"] is False
    ret = managed(states, home, "smtpgreeting", "ccs ESMTP", test_mode)
    assert ret.result is (None if test_mode else True)
    assert "\\x" in ret.changes["diff"]
    ret = states.qmail_control.absent(name="smtpgreeting", home=str(home), test=test_mode)
    assert ret.result is (None if test_mode else True)
    assert (control_dir / "smtpgreeting").exists() is test_mode


def test_a_folder_in_a_control_files_place_fails_naming_it(states, home, control_dir):
    (control_dir / "locals").mkdir()
    ret = managed(states, home, "locals", ["a.example.com"], False)
    assert ret.result is False
    assert "locals is a folder" in ret.comment


def test_a_folder_in_a_control_files_place_fails_before_anything_is_written(modules, home,
                                                                              control_dir):
    (control_dir / "locals").mkdir()
    defaults = yaml.safe_load((PARAMETERS / "defaults.yaml").read_text())
    with pytest.raises(Exception, match=r"^qmail:control:locals: .*locals is a folder"):
        modules.qmail_settings.merge(defaults, {}, {"me": "ccs.cla.kobe-u.ac.jp",
                                                    "lookup": {"home": str(home)}})
    assert sorted(os.listdir(control_dir)) == ["locals"]


def test_a_symlink_out_of_control_shows_no_secret(states, modules, home, control_dir,
                                                  tmp_path, test_mode):
    secret = tmp_path / "secret"
    secret.write_text("root-password-hash\n")
    os.symlink(secret, control_dir / "me")
    ret = managed(states, home, "me", "ccs.cla.kobe-u.ac.jp", test_mode)
    assert "root-password-hash" not in str(ret.changes)
    assert "root-password-hash" not in modules.qmail_control.read("me", home=str(home))
    assert secret.read_text() == "root-password-hash\n"
    assert (control_dir / "me").is_symlink() is test_mode
    ret = states.qmail_control.absent(name="me", home=str(home), test=test_mode)
    assert "root-password-hash" not in str(ret.changes)
    assert secret.exists()


def test_a_planted_hard_link_is_never_truncated(modules, home, control_dir, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.chmod(victim, 0o600)
    # The old helper's predictable name, planted as a hard link.
    for pid in range(os.getpid() - 5, os.getpid() + 5):
        os.link(victim, control_dir / f".me.tmp{pid}")
    modules.qmail_control.write("me", "ccs.cla.kobe-u.ac.jp", home=str(home))
    assert victim.read_text() == "precious\n"
    assert victim.stat().st_mode & 0o777 == 0o600
    assert (control_dir / "me").read_bytes() == b"ccs.cla.kobe-u.ac.jp\n"


RC_CONF = 'hostname="h"\nsendmail_enable="YES"; sshd_enable="YES"\n'


def test_rc_conf_edit_keeps_other_assignments_on_the_line(modules):
    text, originals = modules.qmail_sendmail.set_keys(
        RC_CONF, {"sendmail_enable": 'sendmail_enable="NO"'})
    assert text == 'hostname="h"\nsendmail_enable="NO"; sshd_enable="YES"\n'
    assert originals == {"sendmail_enable": ['sendmail_enable="YES"']}


def test_a_symlinked_rc_conf_stays_a_symlink_through_disable_and_restore(modules, tmp_path):
    real = tmp_path / "etc" / "rc.conf.real"
    real.parent.mkdir()
    real.write_text(RC_CONF)
    link = tmp_path / "etc" / "rc.conf"
    os.symlink("rc.conf.real", link)
    journal = str(tmp_path / "state" / "sendmail.json")
    modules.qmail_sendmail.boot_disable("rcconf", path=str(link), journal=journal)
    assert link.is_symlink() and os.readlink(link) == "rc.conf.real"
    assert 'sendmail_enable="NO"; sshd_enable="YES"' in real.read_text()
    modules.qmail_sendmail.restore(journal=journal)
    assert link.is_symlink() and os.readlink(link) == "rc.conf.real"
    assert real.read_text() == RC_CONF
