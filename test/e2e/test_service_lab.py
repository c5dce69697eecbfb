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
second apply changes nothing; ``qmail.clean`` stops everything.
"""

import shlex
import smtplib
import time
import uuid

import pytest

from lab.wait import wait_until

# Real hosts: the lab fixture fails with the reason when podman cannot run.
pytestmark = pytest.mark.lab


SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENT = "client3.cla.kobe-u.ac.jp"
MAILDIR = "/home/someone/Maildir"


class Hosts:
    def __init__(self, master, hosts, source):
        self.master = master
        self.hosts = {h.fqdn: h for h in hosts}
        self.source = source
        self.spool_control = {}

    @property
    def spool(self):
        return self.hosts[SPOOL]

    @property
    def client(self):
        return self.hosts[CLIENT]

    def pillars(self):
        spool = {"role": "spool", "source": self.source,
                 "service": {"supervisor": "daemontools"},
                 "relay_clients": [f"{self.client.ip}/32"]}
        if self.spool_control:
            spool["control"] = dict(self.spool_control)
        client = {"role": "client", "spool": SPOOL, "source": self.source,
                  "service": {"supervisor": "bootscript"}}
        return {SPOOL: {"qmail": spool}, CLIENT: {"qmail": client}}

    def set_spool_control(self, **control):
        self.spool_control.update(control)
        self.master.set_pillar(self.pillars())

    def apply(self, sls="qmail", target="*", test=False):
        """``salt TARGET state.apply SLS``; every state must succeed."""
        return self.master.apply_ok(target, sls, test=test)

    def call(self, fqdn, fun, *args, **kwargs):
        return self.master.salt(fqdn, fun, *args, **kwargs)[fqdn]

    def svstat(self, name):
        return self.spool.run(["svstat", f"/etc/service/{name}"]).stdout


def changed(ret):
    return {minion: sorted(v["__id__"] for v in states.values() if v["changes"])
            for minion, states in ret.items()}


def parent_command(host, pid):
    ppid = host.run(["ps", "-o", "ppid=", "-p", str(pid)], check=True).stdout.strip()
    return host.run(["ps", "-o", "comm=", "-p", ppid], check=True).stdout.strip()


@pytest.fixture(scope="module")
def supervised(lab_master, lab_hosts_module, qmail_source):
    url = lab_master.put_file(f"sources/{qmail_source.path.name}",
                              qmail_source.path.read_bytes())
    hosts = lab_hosts_module([SPOOL, CLIENT], image="base")
    the_lab = Hosts(lab_master, hosts, {"url": url, "hash": qmail_source.salt_hash})
    lab_master.set_pillar(the_lab.pillars())
    lab_master.salt([h.fqdn for h in hosts], "saltutil.sync_all")
    the_lab.first_apply = the_lab.apply()
    the_lab.spool.run("useradd -m someone && su someone -s /bin/sh -c "
                      f"'mkdir -p {MAILDIR}/cur {MAILDIR}/new {MAILDIR}/tmp'", check=True)
    return the_lab


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
    wait_until(lambda: supervised.spool.run(
        f"grep -l -r -F {shlex.quote('Subject: ' + subject)} {MAILDIR}/new").stdout,
        60, what="delivery to the spool")


def test_control_changes_signal_through_each_supervisor(supervised):
    spool_pid = supervised.call(SPOOL, "qmail_service.send_pid")
    client_pid = supervised.call(CLIENT, "qmail_service.send_pid", supervisor="bootscript")
    supervised.set_spool_control(
        locals=["localhost.cla.kobe-u.ac.jp", SPOOL, "mx.cla.kobe-u.ac.jp"])
    ret = supervised.apply(target=[SPOOL])
    assert "qmail-service-send-hup-module-run" in changed(ret)[SPOOL]
    assert supervised.call(SPOOL, "qmail_service.send_pid") == spool_pid

    supervised.set_spool_control(concurrencyremote=30)
    ret = supervised.apply(target=[SPOOL])
    assert "qmail-service-send-restart-module-run" in changed(ret)[SPOOL]
    assert supervised.call(SPOOL, "qmail_service.send_pid") not in (None, spool_pid)

    # The boot-script client: restart through qmail_service (TERM, wait, start).
    new = supervised.call(CLIENT, "qmail_service.restart", supervisor="bootscript")
    assert new and new != client_pid
    assert supervised.call(CLIENT, "qmail_service.send_pid", supervisor="bootscript") == new
    assert supervised.call(CLIENT, "qmail_service.hup", supervisor="bootscript") == new


def smtp_greeting(host, ip):
    script = (f"import smtplib\ns = smtplib.SMTP()\nprint(s.connect({ip!r}, 25)[0])\n")
    return host.run(["python3", "-c", script])


def test_no_rcpthosts_no_mail(supervised):
    spool = supervised.spool
    spool.run(["rm", "/var/qmail/control/rcpthosts"], check=True)
    # Running: every connection is turned away.
    out = smtp_greeting(supervised.client, spool.ip)
    assert out.stdout.strip() == "421", out
    # Restarted: it does not come up at all.
    spool.run(["svc", "-t", "/etc/service/qmail-smtpd"], check=True)
    wait_until(lambda: spool.run("ss -Hltn | grep -q ':25 '").returncode != 0, 15,
               what="nothing listening on 25")
    time.sleep(3)  # supervise keeps trying the run script, which keeps refusing
    assert spool.run("ss -Hltn | grep -q ':25 '").returncode != 0
    with pytest.raises((OSError, smtplib.SMTPException)):
        with smtplib.SMTP(spool.ip, 25, timeout=5):
            pass
    # The formula puts rcpthosts back, and qmail-smtpd comes up again.
    ret = supervised.apply(target=[SPOOL])
    assert "qmail-control-file-managed-rcpthosts" in changed(ret)[SPOOL]
    wait_until(lambda: smtp_greeting(supervised.client, spool.ip).stdout.strip() == "220", 30,
               what="qmail-smtpd back")


def test_second_apply_changes_nothing(supervised):
    assert changed(supervised.apply()) == {SPOOL: [], CLIENT: []}


def test_clean_stops_every_supervisor(supervised):
    supervised.apply("qmail.clean")
    for host in (supervised.spool, supervised.client):
        for name in ("qmail-send", "supervise", "svscan", "tcpserver"):
            assert not host.run(["pgrep", "-x", name]).stdout, (host.fqdn, name)
        assert host.exists("/var/qmail/queue/mess")
    assert not supervised.spool.exists("/etc/service/qmail-send")
    assert not supervised.spool.exists("/etc/systemd/system/qmail-svscan.service")
    assert "qmail-send" not in supervised.client.read_file("/etc/rc.local")
