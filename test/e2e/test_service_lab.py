"""
The other supervisors on real hosts (``qmail.service``): a spool whose
qmail-send and qmail-smtpd run under daemontools (``svscan`` from the unit
``qmail-svscan``), and a client whose qmail-send is started the seed's way,
from the boot script. Both from the ``base`` image, qmail built from
``QMAIL_SOURCE``, through ``salt '*' state.apply qmail``.

What a sysadmin would check: the processes run under the chosen supervisor
and come back after a kill; control changes HUP (same PID) or restart;
without ``rcpthosts`` the spool takes no mail and qmail-smtpd does not come
back; mail flows from the boot-script client to the daemontools spool; a
second apply changes nothing; ``qmail:filter``'s daemon runs under
daemontools too (supervise, multilog) and signs the client's mail;
``qmail.clean`` stops everything.
"""

import uuid

import pytest

from lab import smtp
from lab.fleet import Fleet, changed
from lab.wait import wait_until

# Real hosts: the lab fixture fails with the reason when podman cannot run.
pytestmark = pytest.mark.lab


SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENT = "client3.cla.kobe-u.ac.jp"
MAILDIR = "/home/someone/Maildir"


class Hosts(Fleet):
    def __init__(self, master, hosts, source, build):
        super().__init__(master, hosts)
        self.spool, self.client = self.hosts[SPOOL], self.hosts[CLIENT]
        self.source = source
        self.build = build  # lab.buildcache: the tree compiled once
        self.spool_control = {}
        self.spool_filter = {}

    def pillars(self):
        spool = {"role": "spool", "source": self.source, "build": self.build,
                 "service": {"supervisor": "daemontools"},
                 "relay_clients": [f"{self.client.ip}/32"]}
        if self.spool_control:
            spool["control"] = dict(self.spool_control)
        if self.spool_filter:
            spool["filter"] = dict(self.spool_filter)
        client = {"role": "client", "spool": SPOOL, "source": self.source, "build": self.build,
                  "service": {"supervisor": "bootscript"}}
        return {SPOOL: {"qmail": spool}, CLIENT: {"qmail": client}}

    def set_spool_control(self, **control):
        self.spool_control.update(control)
        self.master.set_pillar(self.pillars())

    def svstat(self, name):
        return self.spool.run(["svstat", f"/etc/service/{name}"]).stdout


def parent_command(host, pid):
    ppid = host.run(["ps", "-o", "ppid=", "-p", str(pid)], check=True).stdout.strip()
    return host.run(["ps", "-o", "comm=", "-p", ppid], check=True).stdout.strip()


@pytest.fixture(scope="module")
def supervised(lab_master, lab_hosts_module, qmail_source):
    hosts = lab_hosts_module([SPOOL, CLIENT], image="base")
    the_lab = Hosts(lab_master, hosts, lab_master.put_source(qmail_source),
                   lab_master.prebuilt(qmail_source))
    return the_lab.converge(the_lab.pillars(), mail_users={the_lab.spool.fqdn: "someone"})


def test_daemontools_supervises_the_spool(supervised):
    spool = supervised.spool
    assert spool.service_active("qmail-svscan")
    assert not spool.service_active("qmail-send")  # no systemd unit of its own
    pid = wait_until(lambda: supervised.call(SPOOL, "qmail_service.send_pid"), 30,
                     what="qmail-send")
    assert f"up (pid {pid})" in supervised.svstat("qmail-send")
    assert parent_command(spool, pid) == "supervise"
    # svscan looks for new service directories every 5 s.
    wait_until(lambda: ": up (pid" in supervised.svstat("qmail-smtpd"), 15, what="smtpd up")
    # supervise brings a killed qmail-send back.
    spool.run(["kill", "-KILL", str(pid)], check=True)
    new = wait_until(lambda: (p := supervised.call(SPOOL, "qmail_service.send_pid")) != pid and p,
                     30, what="qmail-send back under supervise")
    assert parent_command(spool, new) == "supervise"


def test_boot_script_starts_qmail_on_the_client(supervised):
    client = supervised.client
    pid = supervised.call(CLIENT, "qmail_service.send_pid", supervisor="bootscript")
    assert pid
    script = client.read_file("/etc/rc.local")
    assert script.startswith("#!/bin/sh\n")
    assert "/var/qmail/supervise/qmail-send/run </dev/null >/dev/null &" in script
    assert not client.service_active("qmail-send")
    assert not client.run(["pgrep", "-x", "tcpserver"]).stdout  # a client takes no mail


def test_mail_from_the_boot_script_client_reaches_the_daemontools_spool(supervised):
    subject = f"via-supervisors {uuid.uuid4().hex}"
    proc = supervised.client.run("/usr/sbin/sendmail someone", input=f"Subject: {subject}\n\nhi\n")
    assert proc.returncode == 0, proc.stderr
    wait_until(lambda: supervised.spool.delivered(MAILDIR, subject), 60,
               what="delivery to the spool")


SEND_RUNNING = "qmail-service-send-qmail_service-running"
SEND_HUP = "qmail-service-send-hup-qmail_service-send_reloaded"


def send_changes(ret, fqdn=SPOOL, state_id=SEND_RUNNING):
    return next(v for v in ret[fqdn].values() if v["__id__"] == state_id)["changes"]


def started(host, pid):
    """When ``pid`` started (ticks since boot): a restart changes it, a HUP does not."""
    return host.run(["cut", "-d", " ", "-f", "22", f"/proc/{pid}/stat"], check=True).stdout


def test_control_changes_signal_through_each_supervisor(supervised):
    spool_pid = supervised.call(SPOOL, "qmail_service.send_pid")
    client_pid = supervised.call(CLIENT, "qmail_service.send_pid", supervisor="bootscript")
    spool_started = started(supervised.spool, spool_pid)
    supervised.set_spool_control(
        locals=["localhost.cla.kobe-u.ac.jp", SPOOL, "mx.cla.kobe-u.ac.jp"])
    predicted = supervised.apply(target=[SPOOL], test=True)
    assert send_changes(predicted, state_id=SEND_HUP)["action"] == "hup"  # predicted, not sent:
    assert supervised.call(SPOOL, "qmail_service.send_pid") == spool_pid
    assert started(supervised.spool, spool_pid) == spool_started
    ret = supervised.apply(target=[SPOOL])
    assert SEND_HUP in changed(ret)[SPOOL]
    assert send_changes(ret, state_id=SEND_HUP)["action"] == "hup"
    assert supervised.call(SPOOL, "qmail_service.send_pid") == spool_pid
    assert started(supervised.spool, spool_pid) == spool_started

    supervised.set_spool_control(concurrencyremote=30)
    predicted = supervised.apply(target=[SPOOL], test=True)
    assert send_changes(predicted)["action"] == "restart"
    assert supervised.call(SPOOL, "qmail_service.send_pid") == spool_pid
    assert started(supervised.spool, spool_pid) == spool_started
    ret = supervised.apply(target=[SPOOL])
    assert SEND_RUNNING in changed(ret)[SPOOL]
    assert send_changes(ret)["action"] == "restart"
    assert supervised.call(SPOOL, "qmail_service.send_pid") not in (None, spool_pid)

    # The boot-script client: restart through qmail_service (TERM, wait, start).
    new = supervised.call(CLIENT, "qmail_service.restart", supervisor="bootscript")
    assert new and new != client_pid
    assert supervised.call(CLIENT, "qmail_service.send_pid", supervisor="bootscript") == new
    assert supervised.call(CLIENT, "qmail_service.hup", supervisor="bootscript") == new


def test_no_rcpthosts_no_mail(supervised):
    spool = supervised.spool
    spool.run(["rm", "/var/qmail/control/rcpthosts"], check=True)
    # Running: every connection is turned away.
    code, text = smtp.greeting(spool.ip, host=supervised.client)
    assert code == 421 and "rcpthosts is missing" in text
    # Restarted: it does not come up at all.
    refusals = spool.run(["grep", "-c", "rcpthosts is missing; not starting",
                          "/var/log/qmail/qmail-smtpd/current"]).stdout.strip() or "0"
    spool.run(["svc", "-t", "/etc/service/qmail-smtpd"], check=True)
    wait_until(lambda: 25 not in spool.listeners(), 15, what="nothing listening on 25")
    # supervise keeps trying the run script, which keeps refusing (logged):
    # two more refusals, and still nothing listens.
    wait_until(lambda: int(spool.run(
        ["grep", "-c", "rcpthosts is missing; not starting",
         "/var/log/qmail/qmail-smtpd/current"]).stdout.strip() or 0) >= int(refusals) + 2,
        60, what="the run script refusing twice more")
    assert 25 not in spool.listeners()
    with pytest.raises(ConnectionError):
        smtp.greeting(spool.ip, host=supervised.client)
    # The formula puts rcpthosts back, and qmail-smtpd comes up again.
    ret = supervised.apply(target=[SPOOL])
    assert "qmail-control-file-managed-rcpthosts" in changed(ret)[SPOOL]
    wait_until(lambda: smtp.greeting(spool.ip, host=supervised.client)[0] == 220, 30,
               what="qmail-smtpd back", ignore=ConnectionError)


def test_second_apply_changes_nothing(supervised):
    assert changed(supervised.apply()) == {SPOOL: [], CLIENT: []}


def test_filter_daemon_runs_under_daemontools_and_signs(supervised):
    spool = supervised.spool
    supervised.spool_filter = {"steps": ["dkim"], "dkim": {"domains": {SPOOL: {"keys": {
        "s1": ""}}}}}
    supervised.master.set_pillar(supervised.pillars())
    ret = supervised.apply(target=[SPOOL])
    assert "qmail-filter-daemon-qmail_service-running" in changed(ret)[SPOOL]
    wait_until(lambda: ": up (pid" in supervised.svstat("qmail-filterd"), 30,
               what="qmail-filterd up")
    pid = supervised.call(SPOOL, "qmail_service.status")["qmail-filterd"]["pid"]
    assert parent_command(spool, pid) == "supervise"
    subject = f"signed-under-daemontools {uuid.uuid4().hex}"
    proc = supervised.client.run(["/usr/sbin/sendmail", "someone"],
                                 input=f"From: someone@{SPOOL}\nSubject: {subject}\n\nhi\n")
    assert proc.returncode == 0, proc.stderr
    (found,) = wait_until(lambda: spool.delivered(MAILDIR, subject), 60,
                          what="delivery to the spool")
    text = spool.read_file(found)
    unfolded = text.replace("\n ", " ")  # the signature header is folded
    assert f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={SPOOL};" in unfolded
    # Its log through multilog, as qmail-send's.
    assert "dkim: signed" in spool.read_file("/var/log/qmail/qmail-filterd/current")
    assert changed(supervised.apply(target=[SPOOL])) == {SPOOL: []}


def test_clean_stops_every_supervisor(supervised):
    ret = supervised.apply("qmail.clean")
    # Under daemontools each service goes with its log (`svc -dx . log`),
    # before svscan's unit is stopped: nothing is left for systemd to kill.
    stopped = {v["__id__"]: v["changes"] for v in ret[SPOOL].values()}
    for name in ("send", "smtpd", "filterd"):
        changes = stopped[f"qmail-service-clean-{name}-daemontools-qmail_service-dead"]
        assert changes.get("log_running") == {"old": True, "new": False}, (name, changes)
    for host in (supervised.spool, supervised.client):
        for name in ("qmail-send", "supervise", "svscan", "tcpserver", "multilog"):
            assert not host.run(["pgrep", "-x", name]).stdout, (host.fqdn, name)
        assert not host.run(["pgrep", "-f", "qmail-filterd"]).stdout
        assert host.exists("/var/qmail/queue/mess")
    assert not supervised.spool.exists("/etc/service/qmail-send")
    assert not supervised.spool.exists("/etc/systemd/system/qmail-svscan.service")
    assert "qmail-send" not in supervised.client.read_file("/etc/rc.local")
