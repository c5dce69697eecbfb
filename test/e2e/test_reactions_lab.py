"""
qmail-send's reactions on real hosts (issue 21): two spools, qmail-send
under systemd on one and under daemontools on the other, both from the
``base`` image with qmail built from ``QMAIL_SOURCE``, through
``salt '*' state.apply qmail``.

Each reaction is a state of its own watching the changes that call for it,
so one apply with changes of several reload classes does each of them:
``morercpthosts`` with ``concurrencyremote`` rebuilds the .cdb (qmail-smtpd
takes the new domain) and restarts qmail-send; ``locals`` with ``rc``
restarts it (a HUP alone would leave the old ``rc``). ``test=True`` first
predicts exactly that and tells qmail-send nothing; a second apply changes
nothing.
"""

import pytest

from lab import smtp
from lab.fleet import Fleet, changed
from lab.wait import wait_until

# Real hosts: the lab fixture fails with the reason when podman cannot run.
pytestmark = pytest.mark.lab

SYSTEMD = "ccs.cla.kobe-u.ac.jp"
DAEMONTOOLS = "mx.cla.kobe-u.ac.jp"
SPOOLS = (SYSTEMD, DAEMONTOOLS)
LISTS = "lists.example.org"
CONTROL = "/var/qmail/control"
RUNNING = "qmail-service-send-qmail_service-running"
HUP = "qmail-service-send-hup-qmail_service-send_reloaded"
NEWMRH = "qmail-service-send-morercpthosts-cdb-qmail_service-morercpthosts_compiled"


class Spools(Fleet):
    def __init__(self, master, hosts, source, build):
        super().__init__(master, hosts)
        self.source = source
        self.build = build  # lab.buildcache: the tree compiled once
        self.control = {}
        self.delivery = None

    def pillars(self):
        pillars = {}
        for fqdn, supervisor in ((SYSTEMD, "systemd"), (DAEMONTOOLS, "daemontools")):
            qmail = {"role": "spool", "source": self.source, "build": self.build,
                     "service": {"supervisor": supervisor}}
            if self.control:
                qmail["control"] = dict(self.control)
            if self.delivery:
                qmail["delivery"] = self.delivery
            pillars[fqdn] = {"qmail": qmail}
        return pillars

    def change(self, delivery=None, **control):
        self.control.update(control)
        self.delivery = delivery or self.delivery
        self.master.set_pillar(self.pillars())

    def process(self, fqdn):
        """qmail-send's (PID, start time): a restart changes both, a HUP neither."""
        pid = self.call(fqdn, "qmail_service.send_pid")
        return pid, self.call(fqdn, "qmail_service.start_time", pid)

    def files(self, fqdn):
        """What the control files and rc hold: test=True must leave it as it is."""
        return self.hosts[fqdn].run(f"md5sum {CONTROL}/* /var/qmail/rc", check=True).stdout

    def mtime(self, fqdn, path):
        return int(self.hosts[fqdn].run(
            ["python3", "-c", "import os, sys; print(os.stat(sys.argv[1]).st_mtime_ns)", path],
            check=True).stdout)


def state(ret, fqdn, state_id):
    return next(v for v in ret[fqdn].values() if v["__id__"] == state_id)


def predicted(spools):
    """``state.apply test=True``, checking that it told qmail-send nothing
    (same PID, same start time) and changed no file."""
    before = {fqdn: (spools.process(fqdn), spools.files(fqdn)) for fqdn in SPOOLS}
    ret = spools.apply(test=True)
    for fqdn in SPOOLS:
        assert (spools.process(fqdn), spools.files(fqdn)) == before[fqdn], fqdn
    return ret


@pytest.fixture(scope="module")
def spools(lab_master, lab_hosts_module, qmail_source):
    hosts = lab_hosts_module(list(SPOOLS), image="base")
    the_lab = Spools(lab_master, hosts, lab_master.put_source(qmail_source),
                     lab_master.prebuilt(qmail_source))
    the_lab.converge(the_lab.pillars())
    for host in the_lab.hosts.values():  # svscan looks for new services every 5 s
        wait_until(lambda ip=host.ip: smtp.greeting(ip)[0] == 220, 60,
                   what=f"qmail-smtpd on {host.fqdn}", ignore=ConnectionError)
    return the_lab


def test_morercpthosts_with_concurrencyremote_rebuilds_and_restarts(spools):
    for fqdn in SPOOLS:
        assert smtp.rcpt(spools.hosts[fqdn].ip, f"someone@{LISTS}") == 553
    old = {fqdn: spools.process(fqdn) for fqdn in SPOOLS}
    spools.change(morercpthosts=[LISTS], concurrencyremote=23)

    ret = predicted(spools)
    for fqdn in SPOOLS:
        restart = state(ret, fqdn, RUNNING)
        assert restart["result"] is None
        assert restart["changes"]["action"] == "restart"
        assert restart["changes"]["because"] == ["qmail-control-file-managed-concurrencyremote"]
        assert state(ret, fqdn, NEWMRH)["changes"] == {"newmrh": f"{CONTROL}/morercpthosts.cdb"}
        assert not state(ret, fqdn, HUP)["changes"]
        assert not spools.hosts[fqdn].exists(f"{CONTROL}/morercpthosts.cdb")

    ret = spools.apply()
    for fqdn in SPOOLS:
        assert changed(ret)[fqdn] == sorted([
            "qmail-control-file-managed-concurrencyremote",
            "qmail-control-file-managed-morercpthosts", NEWMRH, RUNNING]), fqdn
        assert state(ret, fqdn, RUNNING)["changes"]["action"] == "restart"
        pid, started = spools.process(fqdn)
        assert pid not in (None, old[fqdn][0]) and started != old[fqdn][1], fqdn
        assert (spools.mtime(fqdn, f"{CONTROL}/morercpthosts.cdb")
                > spools.mtime(fqdn, f"{CONTROL}/morercpthosts")), fqdn
        settings = spools.call(fqdn, "qmail_service.control_settings")
        assert settings["concurrencyremote"] == {"value": 23, "default": False}
        # qmail-smtpd reads the .cdb per connection: the domain is taken at once.
        assert smtp.rcpt(spools.hosts[fqdn].ip, f"someone@{LISTS}") == 250, fqdn
    assert changed(spools.apply()) == {fqdn: [] for fqdn in SPOOLS}


def test_locals_with_rc_restarts_not_only_hups(spools):
    old = {fqdn: spools.process(fqdn) for fqdn in SPOOLS}
    spools.change(delivery="./Mailbox",
                  locals=["localhost.cla.kobe-u.ac.jp", SYSTEMD, DAEMONTOOLS, "mail.example.org"])

    ret = predicted(spools)
    for fqdn in SPOOLS:
        hup = state(ret, fqdn, HUP)["changes"]
        assert (hup["action"], hup["because"]) == ("hup", ["qmail-control-file-managed-locals"])
        restart = state(ret, fqdn, RUNNING)
        assert restart["result"] is None and restart["changes"]["action"] == "restart"
        assert "qmail-build-rc-file-managed" in restart["changes"]["because"]
        assert "qmail-control-file-managed-locals" not in restart["changes"]["because"]

    ret = spools.apply()
    for fqdn in SPOOLS:
        assert {"qmail-build-rc-file-managed", "qmail-control-file-managed-locals",
                RUNNING} <= set(changed(ret)[fqdn]), fqdn
        restart = state(ret, fqdn, RUNNING)["changes"]
        assert restart["action"] == "restart" and restart["pid"]["old"] == old[fqdn][0]
        pid, started = spools.process(fqdn)
        assert pid not in (None, old[fqdn][0]) and started != old[fqdn][1], fqdn
        assert restart["pid"]["new"] == pid
        assert "./Mailbox" in spools.hosts[fqdn].read_file("/var/qmail/rc")
    assert changed(spools.apply()) == {fqdn: [] for fqdn in SPOOLS}
