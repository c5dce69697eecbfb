"""
A command-line call that gives every argument it needs checks only those:
it never merges and checks the whole ``qmail`` pillar (TLS pair, Public
Suffix List, the host's files), which only a left-out argument asks for
(``qmail_settings.get``). Run on Salt's own loader, with a pillar that
fails every merge: a call that merged it would fail naming ``qmail:role``.
"""

import copy

import pytest
from salt.exceptions import SaltInvocationError
from saltfactories.utils.functional import Loaders

ACCOUNTS = {k: k for k in ("alias", "qmaild", "qmaill", "qmailp", "qmailq", "qmailr", "qmails")}
GROUPS = {"qmail": "qmail", "nofiles": "nofiles"}
CONF = {"cc": "cc -O2", "ld": "cc -s", "spawn": 120, "split": 23, "patrn": "002", "break": "-"}
TOFS = {"files_switch": ["id"], "path_prefix": "qmail", "source_files": {},
        "dirs": {"files": "files", "default": "default"}}


@pytest.fixture
def bad_pillar_modules(minion_opts, tmp_path):
    """The execution modules of a minion whose ``qmail`` pillar cannot merge."""
    roots = tmp_path / "pillar"
    roots.mkdir()
    (roots / "top.sls").write_text("base:\n  '*':\n    - qmail\n")
    (roots / "qmail.sls").write_text("qmail:\n  role: relay\n")
    opts = copy.deepcopy(minion_opts)
    opts["pillar_roots"] = {"base": [str(roots)]}
    opts["extension_modules"] = str(tmp_path / "extmods")
    loaders = Loaders(opts)
    assert loaders.pillar["qmail"]["role"] == "relay"
    yield loaders.modules
    loaders.reset_state()


def test_the_pillar_fails_every_merge(bad_pillar_modules):
    # What the calls below would meet if they merged the pillar.
    with pytest.raises(SaltInvocationError, match="^qmail:role: 'relay'"):
        bad_pillar_modules.qmail_settings.get("lookup:home")
    with pytest.raises(SaltInvocationError, match="^qmail:role"):
        bad_pillar_modules.qmail_build.record()
    with pytest.raises(SaltInvocationError, match="^qmail:role"):
        bad_pillar_modules.qmail_control.list()


def test_calls_with_every_argument_merge_no_pillar(bad_pillar_modules, tmp_path):
    m = bad_pillar_modules
    home = tmp_path / "qmail"
    (home / "control").mkdir(parents=True)
    (home / "control" / "me").write_text("mail.example.org\n")
    assert m.qmail_build.record(home=str(home)) == {}
    assert m.qmail_build.queue_is_empty(str(home)) is True
    assert m.qmail_build.conf_files(str(home), ACCOUNTS, GROUPS, CONF)["conf-qmail"] == str(home)
    assert m.qmail_build.parse_hash("sha256=" + "a" * 64) == ("sha256", "a" * 64)
    assert "notqmail-1.09" in m.qmail_build.presets()
    assert m.qmail_control.list(home=str(home)) == ["me"]
    assert m.qmail_control.read("me", home=str(home)) == "mail.example.org\n"
    assert m.qmail_control.showctl(home=str(home))["me"]["value"] == "mail.example.org"
    assert m.qmail_control.check_changes("me", "mail.example.org", home=str(home)) == {}
    assert m.qmail_control.derive("spool", "mail.example.org")["locals"] == [
        "localhost.example.org", "mail.example.org"]
    assert m.qmail_control.normalize("rcpthosts", ["example.org"]) == "example.org\n"
    assert m.qmail_control.reload_action("locals") == "hup"
    assert m.qmail_service.tcp_rules(["10.1.2.0/24"]) == [
        '10.1.2.:allow,RELAYCLIENT=""', ":allow"]
    assert m.qmail_tofs.candidates(["service/rc"], "rc", tofs=TOFS)[-1] == (
        "salt://qmail/files/default/service/rc")
    assert m.qmail_sendmail.read_journal(str(tmp_path / "state" / "sendmail.json"))[
        "links"] == {}
    assert not any(m.qmail_ledger.entries(ledger=str(tmp_path / "state" / "ledger.json")).values())
