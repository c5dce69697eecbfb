"""The qmail_service state module on Salt's loader, each case applied for
real and with test=True: what a watched change calls for, and the states
that need no supervisor here (tcp_rules_compiled, which runs the real
tcprules: test/integration/test_host_programs_salt_call.py)."""

import importlib.util
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def _state_module():
    spec = importlib.util.spec_from_file_location(
        "qmail_service_state_source", REPO / "_states" / "qmail_service.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_inetd_reloaded_by_itself_changes_nothing(states, tmp_path, test_mode):
    ret = states.qmail_service.inetd_reloaded(name=str(tmp_path / "inetd.conf"),
                                              test=test_mode)
    assert ret.result is True and ret.changes == {}


def test_running_refuses_smtpd_under_the_boot_script(states, home, test_mode):
    ret = states.qmail_service.running(name="qmail-smtpd", supervisor="bootscript",
                                       home=str(home), test=test_mode)
    assert ret.result is False
    assert "inetd runs it" in ret.comment


def test_dead_with_nothing_running_changes_nothing(states, home, tmp_path, test_mode):
    for supervisor in ("daemontools", "bootscript"):
        ret = states.qmail_service.dead(
            name="qmail-send", supervisor=supervisor, home=str(home),
            service_dir=str(tmp_path / "service"), daemontools_bin="/usr/bin", test=test_mode)
        assert ret.result is True and ret.changes == {}, ret


def test_dead_daemontools_takes_the_link_out(states, home, tmp_path, test_mode):
    service_dir = tmp_path / "service"
    service_dir.mkdir()
    (service_dir / "qmail-smtpd").symlink_to(home / "supervise" / "qmail-smtpd")
    ret = states.qmail_service.dead(
        name="qmail-smtpd", supervisor="daemontools", home=str(home),
        service_dir=str(service_dir), daemontools_bin="/usr/bin", test=test_mode)
    assert ret.changes == {"link": {"old": str(service_dir / "qmail-smtpd"), "new": None}}
    assert ret.result is (None if test_mode else True)
    assert (service_dir / "qmail-smtpd").is_symlink() is test_mode


@pytest.mark.parametrize("name, watched, actions", [
    # qmail-send(8): HUP re-reads locals and virtualdomains only.
    ("qmail-send", [("qmail_control", "managed", "locals", {"reload": "hup"})],
     {"hup": ["locals"]}),
    ("qmail-send", [("qmail_control", "managed", "locals", {"reload": "hup"}),
                    ("qmail_control", "managed", "me", {"reload": "restart"})],
     {"hup": ["locals"], "restart": ["me"]}),
    # qmail_control.files_managed reports a list.
    ("qmail-send", [("qmail_control", "files", "set", {"reload": ["hup", "newmrh"]})],
     {"hup": ["set"], "newmrh": ["set"]}),
    # Read per message: nothing.
    ("qmail-send", [("qmail_control", "managed", "databytes", {"diff": "..."})], {}),
    # Removed morercpthosts: no .cdb to build.
    ("qmail-send", [("qmail_control", "absent", "morercpthosts", {"reload": "newmrh"})], {}),
    # A run script, rc, unit or a reinstall: restart.
    ("qmail-send", [("file", "managed", "run", {"diff": "..."})], {"restart": ["run"]}),
    ("qmail-smtpd", [("qmail_control", "managed", "locals", {"reload": "hup"}),
                     ("file", "managed", "unit", {"diff": "..."})], {"restart": ["unit"]}),
])
def test_what_a_watched_change_calls_for(name, watched, actions):
    assert _state_module()._actions(name, watched) == actions
