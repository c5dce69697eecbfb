"""The ledger (issue 19): recorded lists what the formula made or can prove
it made; removed takes away only what is listed, then forgets it; the file
is written atomically (0600) and goes once empty."""

import json
import stat


def _ledger(tmp_path):
    return str(tmp_path / "state" / "ledger.json")


def test_a_folder_made_by_the_formula_is_recorded_then_removed(states, modules, tmp_path,
                                                               test_mode):
    ledger, folder = _ledger(tmp_path), tmp_path / "qmail-tls"
    ret = states.qmail_ledger.recorded(name=str(folder), kind="dirs", ledger=ledger,
                                       only=["key.pem"], test=test_mode)
    assert ret.changes == {"recorded": {"dirs": str(folder)}}
    assert ret.result is (None if test_mode else True)
    if test_mode:
        assert not (tmp_path / "state").exists()
        return
    data = json.loads((tmp_path / "state" / "ledger.json").read_text())
    assert data["dirs"] == [str(folder)] and data["version"] == 1
    assert stat.S_IMODE((tmp_path / "state" / "ledger.json").stat().st_mode) == 0o600
    folder.mkdir()
    (folder / "key.pem").write_text("k")
    again = states.qmail_ledger.recorded(name=str(folder), kind="dirs", ledger=ledger)
    assert again.result is True and again.changes == {}
    gone = states.qmail_ledger.removed(name=str(folder), kind="dirs", ledger=ledger)
    assert gone.result is True and gone.changes["removed"] == {"dirs": str(folder)}
    assert not folder.exists()
    assert not (tmp_path / "state" / "ledger.json").exists()  # empty: the file goes


def test_a_folder_holding_others_files_is_not_recorded_nor_removed(states, tmp_path,
                                                                  test_mode):
    ledger, folder = _ledger(tmp_path), tmp_path / "ssh"
    folder.mkdir()
    (folder / "sshd_config").write_text("x")
    ret = states.qmail_ledger.recorded(name=str(folder), kind="dirs", ledger=ledger,
                                       only=["key.pem", "cert.pem"], test=test_mode)
    assert ret.result is True and ret.changes == {}
    assert "not recorded" in ret.comment
    gone = states.qmail_ledger.removed(name=str(folder), kind="dirs", ledger=ledger,
                                       test=test_mode)
    assert gone.result is True and gone.changes == {}
    assert (folder / "sshd_config").read_text() == "x"


def test_an_existing_file_is_recorded_only_with_the_formulas_header(states, tmp_path):
    ledger = _ledger(tmp_path)
    mine, theirs = tmp_path / "tcp.smtp", tmp_path / "tcp.other"
    mine.write_text("# Managed by Salt (qmail.service, pillar ...)\n:allow\n")
    theirs.write_text("127.:allow\n")
    for path in (mine, theirs):
        states.qmail_ledger.recorded(name=str(path), kind="files", ledger=ledger,
                                     marker="# Managed by Salt (qmail.service")
        states.qmail_ledger.removed(name=str(path), kind="files", ledger=ledger)
    assert not mine.exists()
    assert theirs.read_text() == "127.:allow\n"


def test_accounts_are_touched_only_when_listed(states, modules, tmp_path):
    """postgres exists on many hosts: not listed, it is left alone; a listed
    account that is gone already is only forgotten."""
    ledger = _ledger(tmp_path)
    ret = states.qmail_ledger.removed(name="root", kind="users", ledger=ledger)
    assert ret.result is True and ret.changes == {}
    assert "not in the ledger" in ret.comment
    modules.qmail_ledger.record("users", "qmail-no-such-account", ledger=ledger)
    assert modules.qmail_ledger.lists("users", "qmail-no-such-account", ledger=ledger)
    ret = states.qmail_ledger.removed(name="qmail-no-such-account", kind="users", ledger=ledger)
    assert ret.result is True
    assert ret.changes == {"forgotten": {"users": "qmail-no-such-account"}}
    assert modules.qmail_ledger.entries(ledger=ledger)["users"] == []


def test_a_bad_ledger_is_an_error_not_a_silent_empty_one(modules, tmp_path):
    path = tmp_path / "ledger.json"
    path.write_text("{not json")
    try:
        modules.qmail_ledger.entries(ledger=str(path))
    except Exception as exc:  # noqa: BLE001 - the loader wraps the error
        assert "not valid JSON" in str(exc)
    else:
        raise AssertionError("a broken ledger was read as empty")


def test_a_listed_folder_that_now_holds_others_files_is_kept(states, modules, tmp_path):
    """Only what still is what the formula made goes: a file someone put in
    the TLS folder since keeps the folder (and its ledger entry)."""
    ledger, folder = _ledger(tmp_path), tmp_path / "qmail-tls"
    states.qmail_ledger.recorded(name=str(folder), kind="dirs", ledger=ledger, only=["key.pem"])
    folder.mkdir()
    (folder / "key.pem").write_text("k")
    (folder / "their-ca.pem").write_text("c")
    ret = states.qmail_ledger.removed(name=str(folder), kind="dirs", ledger=ledger,
                                      only=["key.pem"])
    assert ret.result is True and ret.changes == {}
    assert "no longer what the formula made" in ret.comment
    assert (folder / "their-ca.pem").exists()
    assert modules.qmail_ledger.lists("dirs", str(folder), ledger=ledger)


def test_an_existing_cdb_is_recorded_only_with_its_listed_rules(states, modules, tmp_path):
    """A host of a release before the ledger: tcprules' .cdb carries no
    header, so it is the formula's when compiled from rules the ledger lists
    (proven by their header); beside rules that are not the formula's it stays."""
    ledger = _ledger(tmp_path)
    for rules, text in (("tcp.smtp", "# Managed by Salt (qmail.service, pillar ...)\n"),
                        ("tcp.other", "127.:allow\n")):
        (tmp_path / rules).write_text(text)
        (tmp_path / (rules + ".cdb")).write_bytes(b"\0cdb")
        states.qmail_ledger.recorded(name=str(tmp_path / rules), kind="files", ledger=ledger,
                                     marker="# Managed by Salt (qmail.service")
        ret = states.qmail_ledger.recorded(name=str(tmp_path / (rules + ".cdb")), kind="files",
                                           ledger=ledger, source=str(tmp_path / rules))
        assert ret.result is True
    assert modules.qmail_ledger.entries(ledger=ledger)["files"] == [
        str(tmp_path / "tcp.smtp"), str(tmp_path / "tcp.smtp.cdb")]


def test_a_displaced_package_is_put_back_only_when_listed(states, modules, tmp_path):
    """ucspi-tcp-ipv6 makes apt remove ucspi-tcp: the ledger lists it as
    displaced only while it is installed, and clean's ``restored`` would
    install it again (test mode here; the install itself is in
    test_ipv6_lab) only when listed."""
    ledger, name = _ledger(tmp_path), "qmail-formula-test-no-such-package"
    ret = states.qmail_ledger.recorded(name=name, kind="displaced", ledger=ledger)
    assert ret.result is True and ret.changes == {}
    assert "nothing for clean to put back" in ret.comment
    left = states.qmail_ledger.restored(name=name, ledger=ledger, test=True)
    assert left.result is True and left.changes == {} and "left as it is" in left.comment
    modules.qmail_ledger.record("displaced", name, ledger=ledger)
    ret = states.qmail_ledger.restored(name=name, ledger=ledger, test=True)
    assert ret.result is None
    assert ret.changes == {"installed": name, "forgotten": {"displaced": name}}
    assert modules.qmail_ledger.entries(ledger=ledger)["displaced"] == [name]


def test_an_account_to_be_created_is_recorded_before_it_exists(states, tmp_path, test_mode):
    """Write-ahead: a group the next state creates is listed first, so an
    apply killed right after creating it leaves it listed (the next render
    accepts it, clean removes it); an existing one is left to recorded."""
    ledger = _ledger(tmp_path)
    ret = states.qmail_ledger.intended(name="qmail-test-no-such-group", kind="groups",
                                       ledger=ledger, test=test_mode)
    assert ret.changes == {"recorded": {"groups": "qmail-test-no-such-group"}}
    assert ret.result is (None if test_mode else True)
    if test_mode:
        assert not (tmp_path / "state").exists()
        return
    data = json.loads((tmp_path / "state" / "ledger.json").read_text())
    assert data["groups"] == ["qmail-test-no-such-group"]
    again = states.qmail_ledger.intended(name="qmail-test-no-such-group", kind="groups",
                                         ledger=ledger)
    assert again.result is True and again.changes == {}
    # Never created (the apply was killed before): clean only forgets it.
    gone = states.qmail_ledger.removed(name="qmail-test-no-such-group", kind="groups",
                                       ledger=ledger)
    assert gone.result is True and "removed" not in gone.changes
    assert not (tmp_path / "state" / "ledger.json").exists()


def test_an_existing_group_is_not_recorded_ahead(states, tmp_path, test_mode):
    ledger = _ledger(tmp_path)
    ret = states.qmail_ledger.intended(name="root", kind="groups", ledger=ledger,
                                       test=test_mode)
    assert ret.result is True and ret.changes == {}
    assert "exists" in ret.comment
    assert not (tmp_path / "state").exists()


def test_one_state_records_the_accounts_of_a_kind_ahead_and_after(states, tmp_path, test_mode):
    """users.sls: one ``intended`` and one ``recorded`` per kind for all its
    accounts. Ahead, only those still to be created; after, the existing
    ones (the render-time check proved their shape); never one twice."""
    ledger = _ledger(tmp_path)
    absent = "qmail-test-no-such-group"
    ahead = states.qmail_ledger.intended(name="qmail groups", kind="groups", ledger=ledger,
                                         entries=[absent, "root"], test=test_mode)
    assert ahead.changes == {"recorded": {"groups": [absent]}}
    assert ahead.result is (None if test_mode else True)
    assert absent in ahead.comment and "root" not in ahead.comment
    if test_mode:
        assert not (tmp_path / "state").exists()
        return
    after = states.qmail_ledger.recorded(name="qmail groups", kind="groups", ledger=ledger,
                                         entries=[absent, "root"])
    assert after.result is True and after.changes == {"recorded": {"groups": ["root"]}}
    data = json.loads((tmp_path / "state" / "ledger.json").read_text())
    assert sorted(data["groups"]) == sorted([absent, "root"])
    again = states.qmail_ledger.recorded(name="qmail groups", kind="groups", ledger=ledger,
                                         entries=[absent, "root"])
    assert again.result is True and again.changes == {}
    assert again.comment == f"groups {absent}, root are in the ledger"
