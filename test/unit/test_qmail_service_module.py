"""qmail_service (execution): settings checks, relay rules, queue parsing. The
rules as the real tcprules compiles them: test/integration/test_host_programs_salt_call.py."""

import importlib.util
import os
import pathlib
import signal

import pytest
import yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

REPO = pathlib.Path(__file__).resolve().parents[2]


def _params(name):
    return yaml.safe_load((REPO / "qmail" / "parameters" / name).read_text())


def settings(modules, pillar=None, os_family="Debian"):
    """What map.jinja gives the SLS files for ``pillar`` on ``os_family``."""
    pillar = dict(pillar or {})
    pillar.setdefault("me", "ccs.cla.kobe-u.ac.jp")
    return modules.qmail_settings.merge(
        _params("defaults.yaml"), _params(f"os_family/{os_family}.yaml"), pillar
    )


CLIENT = {"role": "client", "me": "hostname.cla.kobe-u.ac.jp", "spool": "ccs.cla.kobe-u.ac.jp"}


# -- settings -----------------------------------------------------------------
def test_defaults_spool_runs_tcpserver_under_systemd(modules):
    got = settings(modules)["service"]
    assert got["supervisor"] == "systemd" and got["smtpd_mode"] == "tcpserver"
    # No relay client by default: everyone may only send to rcpthosts.
    assert got["tcp_rules"] == [":allow"]


def test_client_runs_no_smtpd(modules):
    got = settings(modules, CLIENT)["service"]
    assert got["smtpd_mode"] == "off"


def test_daemontools_supervises_both(modules):
    got = settings(modules, {"service": {"supervisor": "daemontools"}})["service"]
    assert (got["supervisor"], got["smtpd_mode"]) == ("daemontools", "tcpserver")


def test_bootscript_spool_uses_inetd_the_seeds_way(modules):
    got = settings(modules, {"service": {"supervisor": "bootscript", "smtpd": "inetd"}})
    assert got["service"]["smtpd_mode"] == "inetd"
    assert got["service"]["inetd_line"] == (
        "smtp stream tcp nowait qmaild /var/qmail/bin/tcp-env tcp-env "
        "/bin/sh /var/qmail/supervise/qmail-smtpd/smtpd")


def test_inetd_line_follows_home_port_and_account(modules):
    got = settings(modules, {"service": {"smtpd": "inetd", "smtpd_port": 2525},
                             "lookup": {"home": "/opt/q", "users": {"qmaild": "qd"}}})
    assert got["service"]["inetd_line"] == (
        "2525 stream tcp nowait qd /opt/q/bin/tcp-env tcp-env "
        "/bin/sh /opt/q/supervise/qmail-smtpd/smtpd")


def test_morercpthosts_cdb_built_or_dropped_with_the_file(modules):
    built = settings(modules, {"control": {"morercpthosts": ["a.example", "b.example"]}})
    assert built["service"]["newmrh_build"] == ["morercpthosts"]
    assert built["service"]["newmrh_drop"] == []
    dropped = settings(modules, {"control": {"morercpthosts": None}})
    assert dropped["service"]["newmrh_build"] == []
    assert dropped["service"]["newmrh_drop"] == ["morercpthosts"]
    assert settings(modules)["service"]["newmrh_build"] == []


@pytest.mark.parametrize("pillar, error", [
    ({"service": {"supervisor": "runit"}},
     "qmail:service:supervisor: 'runit' is not one of systemd, daemontools, bootscript"),
    ({"service": {"smtpd": "xinetd"}}, "qmail:service:smtpd: 'xinetd' is not one of"),
    ({"service": {"smtpd_port": 0}}, "qmail:service:smtpd_port: 0 is out of range"),
    ({"service": {"smtpd_port": "25"}}, "qmail:service:smtpd_port: expected a number"),
    ({"service": {"smtpd_concurrency": 0}}, "qmail:service:smtpd_concurrency: 0 is out of range"),
    ({"service": {"surpervisor": "systemd"}}, "qmail:service:surpervisor: unknown key"),
    ({"relay_clients": "10.0.0.0/8"}, "qmail:relay_clients: expected a list"),
    ({"relay_clients": ["10.1.2.0/24", "10.1.2.3/24"]},
     "qmail:relay_clients[1]: '10.1.2.3/24' is not an IP address or network"),
    ({"relay_clients": ["0.0.0.0/0"]}, "qmail:relay_clients[0]: '0.0.0.0/0' is wider than /8"),
    ({"relay_clients": ["fd00::/64"]},
     "qmail:relay_clients[0]: 'fd00::/64' is an IPv6 entry, but qmail:ipv6 is off"),
    ({"relay_clients": ["cla.kobe-u.ac.jp"]}, "qmail:relay_clients[0]: 'cla.kobe-u.ac.jp'"),
    ({"relay_clients": [10]}, "qmail:relay_clients[0]: expected a string, got a number 10"),
    ({"relay_clients": ["10.1.2.0/24"], "service": {"smtpd": "inetd"}},
     "qmail:relay_clients: inetd gives qmail-smtpd no per-client rules"),
    ({"service": {"supervisor": "bootscript"}},
     "qmail:service:smtpd: tcpserver needs a supervisor"),
    ({"lookup": {"service": {"tcp_rules": "tcp.smtp"}}},
     "qmail:lookup:service:tcp_rules: 'tcp.smtp' is not an absolute path"),
    ({"lookup": {"service": {"unit_dir": "/etc/systemd/system\n"}}},
     "qmail:lookup:service:unit_dir:"),
])
def test_bad_pillar_names_the_key(modules, pillar, error):
    with pytest.raises(SaltInvocationError) as exc:
        settings(modules, pillar)
    assert str(exc.value).startswith(error)


def test_bootscript_client_needs_no_smtpd_supervisor(modules):
    got = settings(modules, {**CLIENT, "service": {"supervisor": "bootscript"}})
    assert (got["service"]["supervisor"], got["service"]["smtpd_mode"]) == (
        "bootscript", "off")


@pytest.mark.parametrize("os_family, supervisor, smtpd", [
    ("Debian", "systemd", "tcpserver"), ("RedHat", "systemd", "tcpserver"),
    ("Suse", "systemd", "tcpserver"),
    # No systemd there: the seed's way.
    ("FreeBSD", "bootscript", "inetd"), ("IRIX", "bootscript", "inetd"),
])
def test_every_os_family_has_a_working_default(modules, os_family, supervisor, smtpd):
    got = settings(modules, os_family=os_family)["service"]
    assert (got["supervisor"], got["smtpd_mode"]) == (supervisor, smtpd)


# -- relay rules ----------------------------------------------------------------
@pytest.mark.parametrize("clients, rules", [
    ([], []),
    (["10.1.2.0/24"], ["10.1.2."]),
    (["10.1.2.7"], ["10.1.2.7"]),
    (["10.1.2.7/32", "10.1.2.7"], ["10.1.2.7"]),
    (["172.16.0.0/12"], [f"172.{n}." for n in range(16, 32)]),
    (["10.0.0.0/8"], ["10."]),
    (["10.1.0.0/16"], ["10.1."]),
    (["10.1.2.128/25"], ["10.1.2.128-255"]),
    (["10.1.2.8/30"], ["10.1.2.8-11"]),
    (["10.1.4.0/23"], ["10.1.4.", "10.1.5."]),
])
def test_tcp_rules_spell_networks_as_tcprules_knows_them(modules, clients, rules):
    got = modules.qmail_service.tcp_rules(clients)
    assert got == [f'{r}:allow,RELAYCLIENT=""' for r in rules] + [":allow"]


# -- queue parsing (qmail-qread's and qmail-qstat's formats) ------------------
def _module():
    spec = importlib.util.spec_from_file_location(
        "qmail_service_source", REPO / "_modules" / "qmail_service.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


QREAD = (
    "28 Nov 2026 10:58:03 GMT  #1311775  412  <root@ccs.cla.kobe-u.ac.jp> \n"
    "\tremote\tsomeone@ccs.cla.kobe-u.ac.jp\n"
    "  done\tremote\tother@example.org\n"
    "28 Nov 2026 11:02:44 GMT  #1311999  1290  <>  bouncing\n"
    "\tlocal\tpostmaster@ccs.cla.kobe-u.ac.jp\n"
    "warning: trouble with #1312001\n"
)


def test_qread_output_becomes_data():
    messages, warnings = _module()._parse_qread(QREAD)
    assert messages == [
        {"id": 1311775, "date": "28 Nov 2026 10:58:03 GMT", "size": 412,
         "sender": "root@ccs.cla.kobe-u.ac.jp", "bouncing": False,
         "recipients": [
             {"channel": "remote", "address": "someone@ccs.cla.kobe-u.ac.jp", "done": False},
             {"channel": "remote", "address": "other@example.org", "done": True}]},
        {"id": 1311999, "date": "28 Nov 2026 11:02:44 GMT", "size": 1290, "sender": "",
         "bouncing": True,
         "recipients": [{"channel": "local", "address": "postmaster@ccs.cla.kobe-u.ac.jp",
                         "done": False}]},
    ]
    assert warnings == ["warning: trouble with #1312001"]


def test_empty_queue_reads_as_nothing():
    assert _module()._parse_qread("") == ([], [])


def test_qstat_output_becomes_counts():
    text = "messages in queue: 7\nmessages in queue but not yet preprocessed: 2\n"
    assert _module()._parse_qstat(text) == {"messages": 7, "unprocessed": 2}


def test_qstat_garbage_is_an_error():
    with pytest.raises(CommandExecutionError):
        _module()._parse_qstat("qmail-qstat: fatal: unable to chdir\n")


def test_queue_status_without_qmail_says_what_failed(modules, home):
    with pytest.raises(CommandExecutionError) as exc:
        modules.qmail_service.queue_status(home=str(home))
    assert "qmail-qstat" in str(exc.value)


def test_control_settings_are_the_effective_ones(modules, home):
    modules.qmail_control.write("me", "ccs.cla.kobe-u.ac.jp", home=str(home))
    modules.qmail_control.write("concurrencyremote", 40, home=str(home))
    got = modules.qmail_service.control_settings(home=str(home))
    assert got["concurrencyremote"] == {"value": 40, "default": False}
    assert got["concurrencylocal"] == {"value": 10, "default": True}
    assert got["bouncehost"] == {"value": "ccs.cla.kobe-u.ac.jp", "default": True}
    assert got["rcpthosts"]["open_relay"] is True


# -- signalling: only once the process handles the signal ---------------------
def test_catches_reads_the_signal_handlers_of_a_real_process():
    module = _module()
    # A Python handler for SIGINT (set here: a job started in the background
    # by a shell inherits SIGINT ignored), SIGHUP at its default (death).
    previous = (signal.signal(signal.SIGINT, signal.default_int_handler),
                signal.signal(signal.SIGHUP, signal.SIG_DFL))
    try:
        assert module._catches(os.getpid(), signal.SIGINT) is True
        assert module._catches(os.getpid(), signal.SIGHUP) is False
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGHUP, previous[1])


def test_wait_ready_gives_up_on_a_process_that_would_die_of_the_signal():
    with pytest.raises(CommandExecutionError) as exc:
        _module()._wait_ready(os.getpid(), signal.SIGHUP, timeout=0.3)
    assert "does not handle signal" in str(exc.value)


def test_logs_under_daemontools_read_current_and_the_rotated_files(modules, tmp_path):
    folder = tmp_path / "qmail-smtpd"
    folder.mkdir()
    (folder / "@400000006b0ed7d100000000.s").write_text("".join(f"old {i}\n" for i in range(3)))
    (folder / "@400000006b0ed7d200000000.s").write_text("".join(f"mid {i}\n" for i in range(3)))
    (folder / "current").write_text("new 0\nnew 1\n")
    logs = modules.qmail_service.logs("qmail-smtpd", lines=6, supervisor="daemontools",
                                      log_dir=str(tmp_path))
    assert logs == ["old 2", "mid 0", "mid 1", "mid 2", "new 0", "new 1"]
    assert modules.qmail_service.logs("qmail-smtpd", lines=1, supervisor="daemontools",
                                      log_dir=str(tmp_path)) == ["new 1"]
