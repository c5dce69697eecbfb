"""qmail:submission's passwd file and qmail:smarthost's authsenders on Salt's
loader: the hash schemes, the file's owner, mode and atomic replacement, and
that no hash or password reaches a state's changes or comment (each state
case applied for real and with test=True)."""

import os

import pytest
from salt.exceptions import SaltInvocationError

YESCRYPT = "$y$j9T$F5Jx5fExrKuJdvj4.HRbW.$iiO9F69OBDvIchQQ0VYIflVLmgIVdBrdJ4TsAJCyBpC"
SHA512 = ("$6$ijBI29QySlOaMA8Z$IOiBYYMnKdWonO/PFuiHN.1oZK7IfimFki63aF0FCt3sqYbYg4SQsxd0"
          "RFTdKN83JU3X4rIjRJxY9VWP5mGQ51")
SHA512_ROUNDS = ("$6$rounds=5000$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDe"
                 "hy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1")
ME = "root"  # the account the files are for here (qmail's accounts are not on this machine)


@pytest.fixture
def utils(loaders):
    return loaders.utils


@pytest.mark.parametrize("value", [YESCRYPT, SHA512, SHA512_ROUNDS])
def test_yescrypt_and_sha512_crypt_are_taken(utils, value):
    assert utils["qmail_submission.check_hash"](value, "k") == value


@pytest.mark.parametrize(("value", "says"), [
    ("hunter2", "plain text"),
    ("$1$saltsalt$2vnaRpHa6Jxjz5n83ok8Z0", "md5-crypt"),
    ("$2b$12$abcdefghijklmnopqrstuuP3n8TjEjVRNr1h0QuGrGdA0OdEiq/4y", "bcrypt"),
    ("$5$saltsalt$Gcm6FsVtF/Qa77ZKD.iwsJlCVPY0XSMgLJL0Hnww/c1", "sha256-crypt"),
    ("$9$x$y", "unknown hash scheme"),
    (YESCRYPT[:-1], "not a whole yescrypt"),
    (SHA512 + "\n", "not a whole sha512-crypt"),
])
def test_other_values_are_refused_without_being_quoted(utils, value, says):
    with pytest.raises(SaltInvocationError) as err:
        utils["qmail_submission.check_hash"](value, "qmail:submission:users:alice")
    text = str(err.value)
    assert text.startswith("qmail:submission:users:alice: ") and says in text
    assert value.strip() not in text


def _mode_owner(path):
    st = os.stat(path)
    return oct(st.st_mode & 0o7777), st.st_uid


def test_passwd_new_file(states, tmp_path, test_mode):
    path = tmp_path / "qmail-smtpsd" / "passwd"
    ret = states.qmail_submission.passwd_managed(
        name=str(path), users={"bob": SHA512, "alice": YESCRYPT}, account=ME, test=test_mode)
    assert ret.result is (None if test_mode else True)
    assert ret.changes == {"file": "created", "added": ["alice", "bob"]}
    assert YESCRYPT not in str(ret) and SHA512 not in str(ret)
    assert path.exists() is not test_mode
    if not test_mode:
        home = str(path.parent)
        assert path.read_text() == (
            f"alice:{YESCRYPT}:0:0:qmail submission:{home}:/usr/sbin/nologin\n"
            f"bob:{SHA512}:0:0:qmail submission:{home}:/usr/sbin/nologin\n")
        assert _mode_owner(path) == ("0o400", 0)


def test_passwd_converged(states, tmp_path, test_mode):
    path = tmp_path / "passwd"
    states.qmail_submission.passwd_managed(name=str(path), users={"alice": YESCRYPT}, account=ME)
    inode = path.stat().st_ino
    ret = states.qmail_submission.passwd_managed(name=str(path), users={"alice": YESCRYPT},
                                                 account=ME, test=test_mode)
    assert ret.result is True and ret.changes == {}
    assert path.stat().st_ino == inode


def test_passwd_change_replaces_the_file_and_names_only_users(states, tmp_path, test_mode):
    path = tmp_path / "passwd"
    states.qmail_submission.passwd_managed(
        name=str(path), users={"alice": YESCRYPT, "carol": SHA512}, account=ME)
    before = (path.read_bytes(), path.stat().st_ino)
    ret = states.qmail_submission.passwd_managed(
        name=str(path), users={"alice": SHA512_ROUNDS, "dave": YESCRYPT}, account=ME,
        test=test_mode)
    assert ret.changes == {"added": ["dave"], "removed": ["carol"],
                           "password changed": ["alice"]}
    assert all(h not in str(ret) for h in (YESCRYPT, SHA512, SHA512_ROUNDS))
    after = (path.read_bytes(), path.stat().st_ino)
    if test_mode:
        assert after == before
    else:  # a new inode: a login reads the old file or the new one, never a part
        assert after[1] != before[1] and SHA512_ROUNDS.encode() in after[0]
        assert _mode_owner(path) == ("0o400", 0)


def test_passwd_mode_is_put_back(states, tmp_path, test_mode):
    path = tmp_path / "passwd"
    states.qmail_submission.passwd_managed(name=str(path), users={"alice": YESCRYPT}, account=ME)
    path.chmod(0o644)
    ret = states.qmail_submission.passwd_managed(name=str(path), users={"alice": YESCRYPT},
                                                 account=ME, test=test_mode)
    assert ret.changes == {"fixed": ["mode"]}
    assert _mode_owner(path)[0] == ("0o644" if test_mode else "0o400")


def test_passwd_bad_hash_fails_and_writes_nothing(states, tmp_path, test_mode):
    path = tmp_path / "passwd"
    ret = states.qmail_submission.passwd_managed(name=str(path), users={"alice": "hunter2"},
                                                 account=ME, test=test_mode)
    assert ret.result is False and ret.changes == {}
    assert "plain text" in ret.comment and "hunter2" not in ret.comment
    assert not path.exists()


def test_authsenders_written_for_qmailr_alone(modules, tmp_path):
    path = tmp_path / "control" / "authsenders"
    fun = modules.qmail_submission
    kwargs = {"account": ME, "host": "smtp.isp.example", "port": 587, "user": "me@isp.example",
              "password": "pa|ss word"}
    assert fun.authsenders_changes(str(path), **kwargs) == {"file": "created",
                                                            "credentials": "set"}
    assert fun.write_authsenders(str(path), **kwargs) == "written"
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# Managed by Salt (qmail:smarthost)")
    assert lines[1:] == [":smtp.isp.example:587|me@isp.example|pa|ss word"]
    assert _mode_owner(path) == ("0o400", 0)
    assert fun.authsenders_changes(str(path), **kwargs) == {}
    changed = fun.authsenders_changes(str(path), **{**kwargs, "password": "new"})
    assert changed == {"credentials": "changed"}


def test_no_smarthost_removes_only_the_formulas_file(states, modules, tmp_path, test_mode):
    ours, theirs = tmp_path / "a" / "authsenders", tmp_path / "b" / "authsenders"
    modules.qmail_submission.write_authsenders(
        str(ours), account=ME, host="smtp.isp.example", port=587, user="u", password="p")
    theirs.parent.mkdir()
    theirs.write_text(":other.example:25|u|p\n")
    for path, removed in ((ours, True), (theirs, False)):
        ret = states.qmail_submission.authsenders_managed(
            name=str(path), account=ME, host="", port=587, user="", test=test_mode)
        assert ret.changes == ({"file": "removed"} if removed else {})
        assert ret.result is (None if test_mode and removed else True)
        assert path.exists() is (test_mode or not removed)
        assert "|p" not in str(ret)


def test_show_redacts_the_smarthost_password(utils):
    shown = utils["qmail_submission.redacted"]({"host": "h", "password": "s3cret"})
    assert shown == {"host": "h", "password": "**********"}


def test_test_mode_predicts_before_the_account_exists(states, tmp_path):
    """A first run with test=True: qmail.users has not made qmaild yet."""
    path = tmp_path / "passwd"
    ret = states.qmail_submission.passwd_managed(
        name=str(path), users={"alice": YESCRYPT}, account="no-such-account-here", test=True)
    assert ret.result is None and ret.changes == {"file": "created", "added": ["alice"]}
    assert not path.exists()
