"""
``state.apply qmail.sendmail`` and ``qmail.sendmail.clean`` through
``salt-call --local`` with the ``os_family`` grain set to FreeBSD, old
RedHat and IRIX, their files laid into a temporary tree (every OS path goes
there through ``qmail:lookup``): exact contents after an apply, after a
second one, and after clean; test=True changes nothing.

The services named are ones that do not exist, so this machine's own
services are never touched; the stop step finds no process running the
tree's sendmail.
"""

import hashlib
import os

import pytest
import yaml
from render_many import snapshot

NO_SERVICE = "qmail-test-no-such-sendmail"

# FreeBSD 4.x-style rc.conf: the seed's knob missing, comments to keep.
RC_CONF = (
    '# -- sysinstall generated deltas -- #\n'
    'hostname="hostname.cla.kobe-u.ac.jp"\n'
    'ifconfig_fxp0="inet 133.30.0.10  netmask 255.255.255.0"\n'
    '# sendmail_enable="NO"\n'
    'sendmail_submit_enable="YES"\n'
    'inetd_enable="YES"\n'
)
RC_CONF_AFTER = (
    '# -- sysinstall generated deltas -- #\n'
    'hostname="hostname.cla.kobe-u.ac.jp"\n'
    'ifconfig_fxp0="inet 133.30.0.10  netmask 255.255.255.0"\n'
    '# sendmail_enable="NO"\n'
    'sendmail_submit_enable="NO"\n'
    'inetd_enable="YES"\n'
    'sendmail_enable="NO"\n'
    'sendmail_outbound_enable="NO"\n'
    'sendmail_msp_queue_enable="NO"\n'
)
DEFAULTS_RC_CONF = 'sendmail_enable="YES"\nsendmail_submit_enable="YES"\n'
MAILER_CONF = (
    "# $FreeBSD$\n"
    "sendmail\t/usr/libexec/sendmail/sendmail\n"
    "send-mail\t/usr/libexec/sendmail/sendmail\n"
    "mailq\t\t/usr/libexec/sendmail/sendmail\n"
    "newaliases\t/usr/libexec/sendmail/sendmail\n"
)
SYSCONFIG = "DAEMON=yes\nQUEUE=1h\n"


class OsTree:
    """A system's sendmail files under ``root``; ``path('/etc/rc.conf')``
    gives where a system path lives in the tree."""

    def __init__(self, root, family):
        self.root = root
        self.family = family
        self.home = root / "var/qmail"
        for directory in ("usr/sbin", "usr/lib", "usr/libexec/sendmail", "etc"):
            (root / directory).mkdir(parents=True, exist_ok=True)
        getattr(self, f"_lay_{family.lower().replace('-', '_')}")()
        # Stands for qmail.build's output (qmail's bin/sendmail, qmail-qread).
        (self.home / "bin").mkdir(parents=True)
        for program in ("sendmail", "qmail-qread"):
            (self.home / "bin" / program).write_text("#!/bin/sh\nexit 0\n")
            os.chmod(self.home / "bin" / program, 0o755)

    def path(self, system_path):
        return self.root / system_path.lstrip("/")

    def _binary(self, system_path, mode):
        path = self.path(system_path)
        path.write_bytes(b"\x7fELF sendmail 8.x " + system_path.encode())
        os.chmod(path, mode)

    def _lay_freebsd(self):
        self.path("/etc/defaults").mkdir()
        self.path("/etc/mail").mkdir()
        self.path("/etc/rc.conf").write_text(RC_CONF)
        self.path("/etc/defaults/rc.conf").write_text(DEFAULTS_RC_CONF)
        self.path("/etc/mail/mailer.conf").write_text(MAILER_CONF)
        self._binary("/usr/libexec/sendmail/sendmail", 0o2555)
        self._binary("/usr/sbin/mailwrapper", 0o555)
        self.path("/usr/sbin/sendmail").symlink_to("mailwrapper")
        self.lookup = {
            "sendmail_paths": [str(self.path("/usr/libexec/sendmail/sendmail"))],
            "sendmail_links": [str(self.path("/usr/lib/sendmail"))],
            "sendmail_rc_conf": str(self.path("/etc/rc.conf")),
            "sendmail_mailer_conf": str(self.path("/etc/mail/mailer.conf")),
        }

    def _lay_redhat_old(self):
        self.path("/etc/sysconfig").mkdir()
        self.path("/etc/sysconfig/sendmail").write_text(SYSCONFIG)
        self._binary("/usr/sbin/sendmail", 0o4755)  # set-uid root, as on Red Hat 6
        self.path("/usr/lib/sendmail").symlink_to("../sbin/sendmail")
        self.lookup = {
            "sendmail_boot": "sysconfig",
            "sendmail_alternatives": [],  # no mta group before Red Hat 7.3
            "sendmail_paths": [str(self.path("/usr/sbin/sendmail")),
                               str(self.path("/usr/lib/sendmail"))],
            "sendmail_links": [str(self.path("/usr/sbin/sendmail")),
                               str(self.path("/usr/lib/sendmail"))],
            "sendmail_sysconfig": str(self.path("/etc/sysconfig/sendmail")),
        }

    def _lay_irix(self):
        self.path("/etc/config").mkdir()
        self.path("/etc/config/sendmail").write_text("on\n")
        self._binary("/usr/lib/sendmail", 0o4755)
        self.lookup = {
            "sendmail_paths": [str(self.path("/usr/lib/sendmail"))],
            "sendmail_links": [str(self.path("/usr/sbin/sendmail")),
                               str(self.path("/usr/lib/sendmail"))],
            "sendmail_irix_config": str(self.path("/etc/config/sendmail")),
        }

    def pillar(self):
        return {"qmail": {"lookup": {
            "home": str(self.home),
            "sendmail_services": [NO_SERVICE],
            "sendmail_journal": str(self.path("/var/lib/qmail-formula/sendmail.json")),
            **self.lookup,
        }}}

    def snapshot(self):
        """Every path of the tree: ('link', target) or (mode, sha256)."""
        result = {}
        for path in sorted(self.root.rglob("*")):
            key = "/" + str(path.relative_to(self.root))
            if path.is_symlink():
                result[key] = ("link", os.readlink(path))
            elif path.is_file():
                result[key] = (f"{path.stat().st_mode & 0o7777:04o}",
                               hashlib.sha256(path.read_bytes()).hexdigest()[:12])
        return result

    def text(self, system_path):
        return self.path(system_path).read_text()


@pytest.fixture(scope="module")
def minion(salt_call_synced, tmp_path_factory):
    """A minion of its own whose os_family grain each test sets."""
    cls = type(salt_call_synced)
    minion = cls(tmp_path_factory.mktemp("salt-call-sendmail"))
    minion.run("saltutil.sync_all")
    return minion


def set_os_family(minion, family):
    config_path = minion.root / "minion"
    config = yaml.safe_load(config_path.read_text())
    config["grains"] = {"os_family": family.split("-")[0]}
    config_path.write_text(yaml.safe_dump(config))


FAMILIES = ["FreeBSD", "RedHat-old", "IRIX"]


@pytest.fixture(params=FAMILIES)
def system(request, minion, tmp_path):
    set_os_family(minion, request.param)
    tree = OsTree(tmp_path / "os", request.param)
    minion.set_pillar(tree.pillar())
    return tree


def _q(tree, name):
    return str(tree.home / "bin" / name)


def expected_after_apply(tree, before):
    """The tree as the formula must leave it, per system."""
    after = dict(before)
    link = ("link", _q(tree, "sendmail"))
    after["/var/lib/qmail-formula/sendmail.json"] = None  # present; checked apart
    if tree.family == "FreeBSD":
        real = before["/usr/libexec/sendmail/sendmail"]
        del after["/usr/libexec/sendmail/sendmail"]
        after["/usr/libexec/sendmail/sendmail.bak"] = ("0000", real[1])
        after["/usr/lib/sendmail"] = link
        after["/etc/rc.conf"] = ("0644", hashlib.sha256(RC_CONF_AFTER.encode()).hexdigest()[:12])
        mailer = MAILER_CONF.replace(
            "sendmail\t/usr/libexec/sendmail/sendmail", f"sendmail\t{_q(tree, 'sendmail')}"
        ).replace(
            "send-mail\t/usr/libexec/sendmail/sendmail", f"send-mail\t{_q(tree, 'sendmail')}"
        ).replace("mailq\t\t/usr/libexec/sendmail/sendmail", f"mailq\t\t{_q(tree, 'qmail-qread')}")
        after["/etc/mail/mailer.conf"] = ("0644", hashlib.sha256(mailer.encode()).hexdigest()[:12])
    elif tree.family == "RedHat-old":
        real = before["/usr/sbin/sendmail"]
        after["/usr/sbin/sendmail.bak"] = ("0000", real[1])
        after["/usr/sbin/sendmail"] = link
        # /usr/lib/sendmail -> ../sbin/sendmail leads to qmail now: left alone.
        after["/etc/sysconfig/sendmail"] = (
            "0644", hashlib.sha256(b"DAEMON=NO\nQUEUE=1h\n").hexdigest()[:12])
    else:
        real = before["/usr/lib/sendmail"]
        after["/usr/lib/sendmail.bak"] = ("0000", real[1])
        after["/usr/lib/sendmail"] = link
        after["/usr/sbin/sendmail"] = link
        after["/etc/config/sendmail"] = ("0644", hashlib.sha256(b"off\n").hexdigest()[:12])
    return after


def _without_journal(snapshot):
    return {k: v for k, v in snapshot.items() if not k.startswith("/var/lib/qmail-formula")}


def test_apply_twice_then_clean(minion, system):
    before = system.snapshot()

    predicted = minion.apply("qmail.sendmail", test=True)
    assert system.snapshot() == before
    assert all(r["result"] in (True, None) for r in predicted.values())

    applied = minion.apply("qmail.sendmail")
    assert all(r["result"] is True for r in applied.values()), applied
    # test=True predicted exactly what the apply changed.
    assert minion.changed(predicted) == minion.changed(applied)
    assert {r["__id__"]: r["changes"] for r in predicted.values() if r["changes"]} == {
        r["__id__"]: r["changes"] for r in applied.values() if r["changes"]}
    after = system.snapshot()
    assert after.keys() == expected_after_apply(system, before).keys()
    assert _without_journal(after) == _without_journal(expected_after_apply(system, before))
    for path in system.lookup["sendmail_links"]:
        assert os.path.realpath(path) == _q(system, "sendmail")
    if system.family == "FreeBSD":
        assert system.text("/etc/rc.conf") == RC_CONF_AFTER
        assert system.text("/etc/defaults/rc.conf") == DEFAULTS_RC_CONF
        assert os.readlink(system.path("/usr/sbin/sendmail")) == "mailwrapper"
    # The journal is private to root.
    assert after["/var/lib/qmail-formula/sendmail.json"][0] == "0600"

    again = minion.apply("qmail.sendmail")
    assert minion.changed(again) == []
    assert system.snapshot() == after

    predicted_clean = minion.apply("qmail.sendmail.clean", test=True)
    assert system.snapshot() == after
    cleaned = minion.apply("qmail.sendmail.clean")
    assert minion.changed(predicted_clean) == minion.changed(cleaned) == [
        "qmail-sendmail-clean-qmail_sendmail-restored"]
    assert system.snapshot() == before
    assert minion.changed(minion.apply("qmail.sendmail.clean")) == []


@pytest.fixture(scope="module")
def bad_applies(minion, tmp_path_factory):
    """``state.apply qmail.sendmail`` with a bad port on each system, in one
    Salt process: per family the tree's snapshot before and the result
    (with the snapshot after it)."""
    work = tmp_path_factory.mktemp("sendmail-bad")
    minion.set_pillar({})  # each case's pillar is all the pillar there is
    before, cases = {}, []
    for family in FAMILIES:
        tree = OsTree(work / family, family)
        pillar = tree.pillar()
        pillar["qmail"]["lookup"]["sendmail_ports"] = [25, "submission"]
        before[family] = snapshot(tree.root)
        cases.append({"pillar": pillar, "fun": "state.apply", "args": ["qmail.sendmail"],
                      "grains": {"os_family": family.split("-")[0]}, "watch": str(tree.root)})
    results = minion.call_many(cases, work)
    return {family: (before[family], result)
            for family, result in zip(FAMILIES, results, strict=True)}


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_pillar_fails_before_any_change(bad_applies, family):
    before, result = bad_applies[family]
    assert "errors" in result, result
    text = "\n".join(result["errors"])
    assert "qmail:lookup:sendmail_ports[1]" in text and "Traceback" not in text, text
    assert result["snapshot"] == before
