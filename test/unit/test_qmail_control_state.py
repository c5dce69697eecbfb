"""The qmail_control state module, each case applied for real and with test=True."""

FQDN = "hostname.cla.kobe-u.ac.jp"


def _snapshot(home):
    if not home.exists():
        return {}
    return {
        p.name: (p.read_bytes(), p.stat().st_mode, p.stat().st_ino)
        for p in sorted((home / "control").iterdir())
    }


def test_managed_new_file(states, home, test_mode):
    ret = states.qmail_control.managed(
        name="locals", contents=["localhost.cla.kobe-u.ac.jp", FQDN], home=str(home),
        test=test_mode,
    )
    assert ret.result is (None if test_mode else True)
    assert "+localhost.cla.kobe-u.ac.jp" in ret.changes["diff"]
    assert ret.changes["reload"] == "hup"
    path = home / "control" / "locals"
    if test_mode:
        assert not home.exists()
    else:
        assert path.read_text() == f"localhost.cla.kobe-u.ac.jp\n{FQDN}\n"


def test_managed_converged(states, home, test_mode):
    states.qmail_control.managed(name="me", contents=FQDN, home=str(home))
    before = _snapshot(home)
    ret = states.qmail_control.managed(name="me", contents=FQDN, home=str(home), test=test_mode)
    assert ret.result is True
    assert ret.changes == {}
    assert _snapshot(home) == before


def test_managed_changed_shows_diff(states, home, test_mode):
    states.qmail_control.managed(name="concurrencyremote", contents=20, home=str(home))
    before = _snapshot(home)
    ret = states.qmail_control.managed(
        name="concurrencyremote", contents=40, home=str(home), test=test_mode
    )
    assert "-20\n+40" in ret.changes["diff"]
    assert ret.changes["reload"] == "restart"
    assert (_snapshot(home) == before) is test_mode


def test_managed_bad_value_fails_and_touches_nothing(states, home, test_mode):
    ret = states.qmail_control.managed(
        name="rcpthosts", contents=["ok.example.com", "evil\n.com"], home=str(home),
        test=test_mode,
    )
    assert ret.result is False
    assert "line break" in ret.comment
    assert ret.changes == {}
    assert not home.exists()


def test_absent(states, home, test_mode):
    states.qmail_control.managed(name="smtproutes", contents=":ccs.example.com", home=str(home))
    ret = states.qmail_control.absent(name="smtproutes", home=str(home), test=test_mode)
    assert ret.result is (None if test_mode else True)
    assert ret.changes["old"] == ":ccs.example.com\n"
    assert (home / "control" / "smtproutes").exists() is test_mode


def test_absent_when_absent(states, home, test_mode):
    ret = states.qmail_control.absent(name="smtproutes", home=str(home), test=test_mode)
    assert ret.result is True and ret.changes == {}


def test_files_applies_a_set(states, home, test_mode):
    states.qmail_control.managed(name="smtproutes", contents=":old.example.com", home=str(home))
    before = _snapshot(home)
    ret = states.qmail_control.files_managed(
        name="set", home=str(home), test=test_mode,
        files={"me": FQDN, "locals": [FQDN], "smtproutes": None, "concurrencyremote": 30},
    )
    assert ret.result is (None if test_mode else True)
    assert sorted(ret.changes) == ["concurrencyremote", "locals", "me", "reload", "smtproutes"]
    assert ret.changes["reload"] == ["hup", "restart"]
    if test_mode:
        assert _snapshot(home) == before
    else:
        assert sorted(p.name for p in (home / "control").iterdir()) == [
            "concurrencyremote", "locals", "me"]


def test_files_checks_everything_before_writing(states, home, test_mode):
    ret = states.qmail_control.files_managed(
        name="set", home=str(home), test=test_mode,
        files={"me": FQDN, "locals": [FQDN], "timeoutsmtpd": -5},
    )
    assert ret.result is False
    assert "files:timeoutsmtpd" in ret.comment
    assert not home.exists()


def test_files_second_apply_reports_nothing(states, home, test_mode):
    wanted = {"me": FQDN, "rcpthosts": [FQDN, ".cla.kobe-u.ac.jp"]}
    states.qmail_control.files_managed(name="set", home=str(home), files=wanted)
    ret = states.qmail_control.files_managed(name="set", home=str(home), files=wanted,
                                             test=test_mode)
    assert ret.result is True and ret.changes == {}
