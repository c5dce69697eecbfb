"""The qmail_sendmail execution module: settings checks and the file edits,
on OS trees laid out in a temporary folder."""

import json
import os
import pathlib
import subprocess

import pytest
import yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

REPO = pathlib.Path(__file__).resolve().parents[2]
PARAMS = REPO / "qmail" / "parameters"


def _params(family):
    defaults = yaml.safe_load((PARAMS / "defaults.yaml").read_text())
    os_family = yaml.safe_load((PARAMS / "os_family" / f"{family}.yaml").read_text())
    return defaults, os_family


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["Debian", "RedHat", "FreeBSD", "IRIX", "Suse"])
def test_settings_per_os_family(modules, family):
    settings = modules.qmail_settings.merge(*_params(family), {})
    sendmail = settings["sendmail"]
    assert sendmail["frontend"] == "/var/qmail/bin/sendmail"
    assert sendmail["qread"] == "/var/qmail/bin/qmail-qread"
    assert sendmail["journal"] == "/var/lib/qmail-formula/sendmail.json"
    expected = {
        "Debian": ("sysv", None, [], [], ["qmail-formula-mta"]),
        "RedHat": ("systemd", None, [], ["mta"], []),
        "FreeBSD": ("rcconf", "/etc/rc.conf", ["/etc/mail/mailer.conf"], [], []),
        "IRIX": ("irix", "/etc/config/sendmail", [], [], []),
        "Suse": ("systemd", None, [], [], []),
    }[family]
    lookup = settings["lookup"]
    assert (lookup["sendmail_boot"], sendmail["boot_path"], sendmail["mailer_conf"],
            [a["name"] for a in sendmail["alternatives"]],
            [p["name"] for p in sendmail["mta_package"]]) == expected


def test_settings_redhat_alternative_slaves_point_into_home(modules):
    settings = modules.qmail_settings.merge(*_params("RedHat"),
                                            {"lookup": {"home": "/opt/qmail"}})
    (alt,) = settings["sendmail"]["alternatives"]
    assert alt["link"] == "/usr/sbin/sendmail"
    assert {s["link"]: s["target"] for s in alt["slaves"]} == {
        "/usr/lib/sendmail": "/opt/qmail/bin/sendmail",
        "/usr/bin/mailq": "/opt/qmail/bin/qmail-qread",
    }
    # What the mta group points to qmail's sendmail (mailq goes to qmail-qread).
    assert settings["sendmail"]["alternative_links"] == ["/usr/sbin/sendmail",
                                                         "/usr/lib/sendmail"]


def test_settings_debian_package_lives_next_to_the_journal(modules):
    settings = modules.qmail_settings.merge(
        *_params("Debian"), {"lookup": {"sendmail_journal": "/var/lib/qmail-state/sm.json"}})
    assert settings["sendmail"]["mta_package"] == [{
        "name": "qmail-formula-mta", "dir": "/var/lib/qmail-state/qmail-formula-mta",
        "deb": "/var/lib/qmail-state/qmail-formula-mta.deb"}]


BAD_LOOKUPS = [
    ({"sendmail_paths": ["usr/sbin/sendmail"]}, "qmail:lookup:sendmail_paths[0]"),
    ({"sendmail_paths": []}, "qmail:lookup:sendmail_paths"),
    ({"sendmail_links": ["/usr/lib/../lib"]}, "qmail:lookup:sendmail_links[0]"),
    ({"sendmail_links": ["/usr/lib/send\nmail"]}, "qmail:lookup:sendmail_links[0]"),
    ({"sendmail_boot": "launchd"}, "qmail:lookup:sendmail_boot"),
    ({"sendmail_services": ["send mail"]}, "qmail:lookup:sendmail_services[0]"),
    ({"sendmail_ports": [25, 70000]}, "qmail:lookup:sendmail_ports[1]"),
    ({"sendmail_ports": [True]}, "qmail:lookup:sendmail_ports[0]"),
    ({"sendmail_rc_conf": "rc.conf"}, "qmail:lookup:sendmail_rc_conf"),
    ({"sendmail_journal": ""}, "qmail:lookup:sendmail_journal"),
    ({"sendmail_mailer_conf": "mailer.conf"}, "qmail:lookup:sendmail_mailer_conf"),
    ({"sendmail_mta_package": "Bad_Name"}, "qmail:lookup:sendmail_mta_package"),
    ({"sendmail_alternatives": [{"name": "mta"}]}, "qmail:lookup:sendmail_alternatives[0]"),
    ({"sendmail_alternatives": [{"name": "mta", "link": "/usr/sbin/sendmail",
                                 "priority": -1}]},
     "qmail:lookup:sendmail_alternatives[0]:priority"),
    ({"sendmail_alternatives": [{"name": "mta", "link": "/usr/sbin/sendmail",
                                 "priority": 1, "slaves": [{"name": "x"}]}]},
     "qmail:lookup:sendmail_alternatives[0]:slaves[0]"),
    ({"sendmail_alternatives": [{"name": "mta", "link": "/usr/sbin/sendmail", "priority": 1,
                                 "slaves": [{"name": "x", "link": "/x",
                                             "program": "../bin/sh"}]}]},
     "qmail:lookup:sendmail_alternatives[0]:slaves[0]:program"),
    ({"sendmail_alternatives": [{"name": "mta", "link": "/usr/sbin/sendmail", "priority": 1,
                                 "slaves": [{"name": "x", "link": "/x", "program": ".."}]}]},
     "qmail:lookup:sendmail_alternatives[0]:slaves[0]:program"),
]


@pytest.mark.parametrize("lookup,key", BAD_LOOKUPS, ids=[k for _, k in BAD_LOOKUPS])
def test_settings_refuse_bad_values_naming_the_key(modules, lookup, key):
    with pytest.raises(SaltInvocationError) as err:
        modules.qmail_settings.merge(*_params("Debian"), {"lookup": lookup})
    assert str(err.value).startswith(key + ":")


# --------------------------------------------------------------------------
# key=value files (rc.conf, /etc/sysconfig/sendmail)
# --------------------------------------------------------------------------
RC_CONF = (
    '# /etc/rc.conf: local settings\n'
    'hostname="hostname.cla.kobe-u.ac.jp"\n'
    '# sendmail_enable="NO"   <- a comment, kept\n'
    'sendmail_enable="YES"\n'
    '\tsendmail_msp_queue_enable=YES # trailing comment\n'
    'ifconfig_em0="DHCP"'
)
RC_CONF_NO = (
    '# /etc/rc.conf: local settings\n'
    'hostname="hostname.cla.kobe-u.ac.jp"\n'
    '# sendmail_enable="NO"   <- a comment, kept\n'
    'sendmail_enable="NO"\n'
    '\tsendmail_msp_queue_enable="NO" # trailing comment\n'
    'ifconfig_em0="DHCP"\n'
    'sendmail_submit_enable="NO"\n'
    'sendmail_outbound_enable="NO"\n'
)


def test_set_keys_replaces_appends_and_keeps_the_rest(modules):
    wanted = {k: f'{k}="NO"' for k in ("sendmail_enable", "sendmail_submit_enable",
                                        "sendmail_outbound_enable",
                                        "sendmail_msp_queue_enable")}
    text, originals = modules.qmail_sendmail.set_keys(RC_CONF, wanted)
    assert text == RC_CONF_NO
    assert originals == {
        "sendmail_enable": ['sendmail_enable="YES"'],
        "sendmail_submit_enable": [],
        "sendmail_outbound_enable": [],
        "sendmail_msp_queue_enable": ["sendmail_msp_queue_enable=YES"],
    }
    assert modules.qmail_sendmail.set_keys(text, wanted)[0] == text


def test_boot_disable_rcconf_and_restore_exactly(modules, tmp_path):
    rc_conf = tmp_path / "rc.conf"
    rc_conf.write_bytes(RC_CONF.encode())
    os.chmod(rc_conf, 0o640)
    journal = str(tmp_path / "state" / "sendmail.json")
    changes = modules.qmail_sendmail.boot_disable("rcconf", path=str(rc_conf), journal=journal)
    assert changes == {str(rc_conf): {"old": RC_CONF, "new": RC_CONF_NO}}
    assert rc_conf.read_bytes() == RC_CONF_NO.encode()
    assert rc_conf.stat().st_mode & 0o777 == 0o640
    assert modules.qmail_sendmail.boot_disable("rcconf", path=str(rc_conf),
                                               journal=journal) == {}
    restored = modules.qmail_sendmail.restore(journal)
    assert restored == {"boot": {str(rc_conf): {"old": RC_CONF_NO, "new": RC_CONF + "\n"}}}
    # The one byte that cannot come back: the newline added at the end.
    assert rc_conf.read_bytes() == RC_CONF.encode() + b"\n"
    assert not os.path.exists(journal)


def test_boot_disable_sysconfig_absent_file_is_created_and_removed(modules, tmp_path):
    sysconfig = tmp_path / "sysconfig" / "sendmail"
    journal = str(tmp_path / "sendmail.json")
    sysconfig.parent.mkdir()
    modules.qmail_sendmail.boot_disable("sysconfig", path=str(sysconfig), journal=journal)
    assert sysconfig.read_text() == "DAEMON=NO\n"
    modules.qmail_sendmail.restore(journal)
    assert not sysconfig.exists()


def test_boot_disable_in_test_mode_touches_nothing(modules, tmp_path):
    irix = tmp_path / "sendmail"
    irix.write_text("on\n")
    journal = tmp_path / "sendmail.json"
    changes = modules.qmail_sendmail.boot_disable("irix", path=str(irix), journal=str(journal),
                                                  test=True)
    assert changes == {str(irix): {"old": "on\n", "new": "off\n"}}
    assert irix.read_text() == "on\n"
    assert not journal.exists()


def test_boot_disable_refuses_unknown_method(modules):
    with pytest.raises(SaltInvocationError):
        modules.qmail_sendmail.boot_disable("upstart", services=["sendmail"])


# --------------------------------------------------------------------------
# mailer.conf
# --------------------------------------------------------------------------
MAILER_CONF = (
    "# $FreeBSD$\n"
    "#\n"
    "# Execute the \"real\" sendmail program, named /usr/libexec/sendmail/sendmail\n"
    "#\n"
    "sendmail\t/usr/libexec/sendmail/sendmail\n"
    "mailq\t\t/usr/libexec/sendmail/sendmail\n"
    "newaliases\t/usr/libexec/sendmail/sendmail\n"
    "hoststat\t/usr/libexec/sendmail/sendmail\n"
    "purgestat\t/usr/libexec/sendmail/sendmail\n"
)
MAILER_CONF_QMAIL = (
    "# $FreeBSD$\n"
    "#\n"
    "# Execute the \"real\" sendmail program, named /usr/libexec/sendmail/sendmail\n"
    "#\n"
    "sendmail\t/var/qmail/bin/sendmail\n"
    "mailq\t\t/var/qmail/bin/qmail-qread\n"
    "newaliases\t/usr/libexec/sendmail/sendmail\n"
    "hoststat\t/usr/libexec/sendmail/sendmail\n"
    "purgestat\t/usr/libexec/sendmail/sendmail\n"
    "send-mail\t/var/qmail/bin/sendmail\n"
)


def test_mailer_conf_and_restore(modules, tmp_path):
    path = tmp_path / "mailer.conf"
    path.write_text(MAILER_CONF)
    journal = str(tmp_path / "sendmail.json")
    args = (str(path), "/var/qmail/bin/sendmail", "/var/qmail/bin/qmail-qread")
    assert modules.qmail_sendmail.mailer_conf(*args, journal=journal, test=True) == {
        str(path): {"old": MAILER_CONF, "new": MAILER_CONF_QMAIL}}
    assert path.read_text() == MAILER_CONF
    modules.qmail_sendmail.mailer_conf(*args, journal=journal)
    assert path.read_text() == MAILER_CONF_QMAIL
    assert modules.qmail_sendmail.mailer_conf(*args, journal=journal) == {}
    modules.qmail_sendmail.restore(journal)
    assert path.read_text() == MAILER_CONF


# --------------------------------------------------------------------------
# The binary, the links, the journal
# --------------------------------------------------------------------------
def test_neutralise_refuses_to_overwrite_a_bak(modules, tmp_path):
    real = tmp_path / "sendmail"
    real.write_bytes(b"new sendmail")
    bak = tmp_path / "sendmail.bak"
    bak.write_bytes(b"the original")
    journal = tmp_path / "sendmail.json"
    with pytest.raises(CommandExecutionError, match="never overwritten"):
        modules.qmail_sendmail.neutralise(str(real), "/var/qmail/bin/sendmail",
                                          journal=str(journal))
    assert bak.read_bytes() == b"the original"
    assert real.read_bytes() == b"new sendmail"
    assert not journal.exists()


def test_neutralise_refuses_mailwrapper(modules, tmp_path):
    wrapper = tmp_path / "mailwrapper"
    wrapper.write_bytes(b"wrapper")
    (tmp_path / "sendmail").symlink_to(wrapper)
    with pytest.raises(CommandExecutionError, match="mailwrapper"):
        modules.qmail_sendmail.neutralise(str(tmp_path / "sendmail"),
                                          "/var/qmail/bin/sendmail",
                                          journal=str(tmp_path / "r.json"))
    assert wrapper.stat().st_mode & 0o777 != 0


def test_journal_keeps_the_first_saved_state(modules, tmp_path):
    """An apply killed after chmod 0 but before the rename: the next run must
    still remember the original mode, not 0000."""
    real = tmp_path / "sendmail"
    real.write_bytes(b"sendmail")
    os.chmod(real, 0o2755)
    journal = tmp_path / "sendmail.json"
    modules.qmail_sendmail.neutralise(str(real), "/q/bin/sendmail", journal=str(journal))
    # Undo only the rename, as if the run had died between chmod and mv.
    os.rename(tmp_path / "sendmail.bak", real)
    modules.qmail_sendmail.neutralise(str(real), "/q/bin/sendmail", journal=str(journal))
    saved = json.loads(journal.read_text())["binaries"][str(real)]
    assert saved["mode"] == "2755"
    modules.qmail_sendmail.restore(str(journal))
    assert real.stat().st_mode & 0o7777 == 0o2755


def test_journal_that_is_not_json_is_an_error(modules, tmp_path):
    journal = tmp_path / "sendmail.json"
    journal.write_text("{half")
    with pytest.raises(CommandExecutionError, match="not valid JSON"):
        modules.qmail_sendmail.read_journal(str(journal))


def test_link_frontend_refuses_a_regular_file(modules, tmp_path):
    path = tmp_path / "sendmail"
    path.write_bytes(b"someone's file")
    with pytest.raises(CommandExecutionError, match="not replacing"):
        modules.qmail_sendmail.link_frontend(str(path), "/q/bin/sendmail",
                                             journal=str(tmp_path / "r.json"))
    assert path.read_bytes() == b"someone's file"


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------
def test_processes_and_listeners_find_a_sendmail_binary(modules, tmp_path):
    """A copy of python3 stands for a sendmail daemon: it runs from the
    sendmail path and listens on a port, as sendmail-mta does on 25."""
    binary = tmp_path / "sendmail"
    binary.write_bytes(pathlib.Path(os.path.realpath("/usr/bin/python3")).read_bytes())
    os.chmod(binary, 0o755)
    proc = subprocess.Popen(
        [str(binary), "-c", "import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1',0));"
         " s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        found = modules.qmail_sendmail.processes([str(binary)], ports=[port])
        assert [p["pid"] for p in found] == [proc.pid]
        assert found[0]["exe"] == str(binary)
        assert modules.qmail_sendmail.listeners([port]) == [
            {"port": port, "pid": proc.pid, "comm": "sendmail", "exe": str(binary)}]
    finally:
        proc.kill()
        proc.wait()
    assert modules.qmail_sendmail.processes([str(binary)], ports=[port]) == []


def test_alternative_status_reads_a_real_group(modules):
    """This machine's awk group, read with update-alternatives --display."""
    status = modules.qmail_sendmail.alternative_status("awk")
    assert status["link"] == "/usr/bin/awk"
    assert status["current"] == os.path.realpath("/etc/alternatives/awk")
    assert status["current"] in status["alternatives"]
    assert status["slave_links"]["nawk"] == "/usr/bin/nawk"
    entry = status["alternatives"][status["current"]]
    assert isinstance(entry["priority"], int) and "nawk" in entry["slaves"]
    assert modules.qmail_sendmail.alternative_status("qmail-test-no-such-group") is None


def test_neutralise_saves_the_alternatives_group_it_goes_through(modules, tmp_path):
    """A path whose chain passes through .../alternatives/<group>: the group
    is saved before the file moves (update-alternatives drops entries whose
    file is missing). This machine's awk group stands for RedHat's mta; it
    is only read."""
    real = tmp_path / "usr/bin/mawk"
    real.parent.mkdir(parents=True)
    real.write_bytes(b"an awk")
    (tmp_path / "etc/alternatives").mkdir(parents=True)
    (tmp_path / "etc/alternatives/awk").symlink_to(real)
    (tmp_path / "usr/bin/awk").symlink_to(tmp_path / "etc/alternatives/awk")
    journal = tmp_path / "sendmail.json"
    modules.qmail_sendmail.neutralise(str(tmp_path / "usr/bin/awk"), "/q/bin/sendmail",
                                      journal=str(journal))
    saved = json.loads(journal.read_text())["groups"]
    assert saved == {"awk": modules.qmail_sendmail.alternative_status("awk")}
    modules.qmail_sendmail.restore(str(journal))
    assert real.read_bytes() == b"an awk"
    assert not journal.exists()


def test_status_tells_where_each_path_leads(modules, tmp_path):
    frontend = tmp_path / "qmail/bin/sendmail"
    frontend.parent.mkdir(parents=True)
    frontend.write_text("#!/bin/sh\n")
    (tmp_path / "sendmail").symlink_to(frontend)
    other = tmp_path / "other"
    other.write_text("x")
    status = modules.qmail_sendmail.status(
        paths=[str(tmp_path / "sendmail"), str(other)], ports=[], frontend=str(frontend),
        journal=str(tmp_path / "journal.json"))
    assert status["paths"] == {
        str(tmp_path / "sendmail"): {"leads_to": str(frontend), "qmail": True},
        str(other): {"leads_to": str(other), "qmail": False},
    }
    # Nothing saved yet: every section of the journal is empty.
    assert status["processes"] == [] and not any(status["journal"].values())
