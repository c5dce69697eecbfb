"""
The seed's own way on real legacy hosts (``sendmail`` image: Debian's
sendmail running, and openbsd-inetd): qmail-send started from the boot script
and qmail-smtpd run by inetd (``qmail:service: {supervisor: bootscript,
smtpd: inetd}``), through ``salt '*' state.apply qmail``.

What a sysadmin would check: the spool answers SMTP through inetd with
qmail's greeting and takes mail only for its rcpthosts; a client drops the
qmail-smtpd line of its inetd.conf (seed §5.1) and inetd keeps serving its
other lines; mail flows; without ``rcpthosts`` each connection is refused;
after a reboot the same holds and sendmail stays off; a second apply changes
nothing; ``qmail.clean`` gives port 25 back to sendmail.

The first test needs no qmail build and always runs; the others need the
real qmail source.
"""

import uuid

import pytest

from lab import smtp
from lab.fleet import Fleet, changed
from lab.wait import wait_until

# Real hosts: the lab fixture fails with the reason when podman cannot run.
pytestmark = pytest.mark.lab

SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENT = "hostname.cla.kobe-u.ac.jp"
MAILDIR = "/home/someone/Maildir"
INETD_CONF = "/etc/inetd.conf"
SEED_SERVICE = {"supervisor": "bootscript", "smtpd": "inetd"}
# qmail's INSTALL put this line into inetd.conf; a client must lose it.
LEGACY_SMTPD = ("smtp stream tcp nowait qmaild /var/qmail/bin/tcp-env tcp-env "
                "/var/qmail/bin/qmail-smtpd\n")
# Another service of the same inetd, which must go on working.
DISCARD = "discard stream tcp nowait root internal\n"


def inetd_pid(host):
    pids = host.run(["pgrep", "-x", "inetd"]).stdout.split()
    assert len(pids) == 1, pids
    return int(pids[0])


def add_legacy_lines(host):
    """inetd.conf as a legacy host has it: discard and qmail-smtpd enabled."""
    original = host.read_file(INETD_CONF)
    host.put_file(INETD_CONF, original + DISCARD + LEGACY_SMTPD)
    host.run(["pkill", "-HUP", "-x", "inetd"], check=True)
    return original


def test_client_drops_a_legacy_smtpd_line_from_inetd_conf(lab_master, lab_hosts):
    """No qmail needed: ``qmail.service.smtpd`` on a legacy client."""
    pillar = {"qmail": {"role": "client", "spool": SPOOL}}
    (host,) = lab_hosts([CLIENT], image="sendmail", pillars={CLIENT: pillar})
    lab_master.sync_formula(CLIENT)
    # Debian's sendmail holds port 25: let it finish starting, then end it
    # (its init script's stop is not to be trusted; qmail.sendmail knows that).
    host.wait_listening(25, 120)
    host.run("/etc/init.d/sendmail stop; pkill -x sendmail-mta; pkill -x sendmail-msp")
    wait_until(lambda: 25 not in host.listeners(), 30, what="sendmail off port 25")
    original = add_legacy_lines(host)
    wait_until(lambda: host.listeners().get(25) == {"inetd"}, 30, what="inetd on 25")
    assert host.listeners()[9] == {"inetd"}
    pid = inetd_pid(host)

    predicted = lab_master.apply_ok(CLIENT, "qmail.service.smtpd", test=True)
    pending = {v["__id__"] for v in predicted[CLIENT].values() if v["result"] is None}
    assert "qmail-service-smtpd-inetd-no-line-file-replace" in pending
    assert host.read_file(INETD_CONF) == original + DISCARD + LEGACY_SMTPD
    assert 25 in host.listeners()

    ret = lab_master.apply_ok(CLIENT, "qmail.service.smtpd")
    assert changed(ret)[CLIENT] == ["qmail-service-smtpd-inetd-no-line-file-replace",
                                    "qmail-service-smtpd-inetd-qmail_service-inetd_reloaded"]
    assert host.read_file(INETD_CONF) == original + DISCARD  # the rest byte for byte
    wait_until(lambda: 25 not in host.listeners(), 30, what="inetd off port 25")
    assert host.listeners()[9] == {"inetd"}  # re-read (HUP), not restarted
    assert inetd_pid(host) == pid
    assert changed(lab_master.apply_ok(CLIENT, "qmail.service.smtpd")) == {CLIENT: []}


# --------------------------------------------------------------------------
# The seed's setup with real qmail
# --------------------------------------------------------------------------
class SeedLab(Fleet):
    def __init__(self, master, hosts):
        super().__init__(master, hosts)
        self.spool, self.client = self.hosts[SPOOL], self.hosts[CLIENT]

    def send_pid(self, fqdn):
        return self.call(fqdn, "qmail_service.send_pid", supervisor="bootscript")

    def mail_from_client(self, tag):
        subject = f"{tag} {uuid.uuid4().hex}"
        proc = self.client.run("/usr/sbin/sendmail someone", input=f"Subject: {subject}\n\nhi\n")
        assert proc.returncode == 0, proc.stderr
        wait_until(lambda: self.spool.delivered(MAILDIR, subject), 60,
                   what=f"{tag}: delivery to the spool")


@pytest.fixture(scope="module")
def seed(lab_master, lab_hosts_module, qmail_source):
    source = lab_master.put_source(qmail_source)
    build = lab_master.prebuilt(qmail_source)  # not the subject here: compiled once
    pillars = {
        SPOOL: {"qmail": {"role": "spool", "source": source, "build": build,
                          "service": SEED_SERVICE}},
        CLIENT: {"qmail": {"role": "client", "spool": SPOOL, "source": source,
                           "build": build, "service": SEED_SERVICE}},
    }
    hosts = lab_hosts_module([SPOOL, CLIENT], image="sendmail", pillars=pillars)
    the_lab = SeedLab(lab_master, hosts)
    the_lab.client_inetd_conf = add_legacy_lines(the_lab.client)
    return the_lab.converge(mail_users={SPOOL: "someone"})


def test_spool_answers_smtp_through_inetd(seed):
    spool = seed.spool
    assert "smtp stream tcp nowait qmaild /var/qmail/bin/tcp-env" in spool.read_file(INETD_CONF)
    assert spool.listeners()[25] == {"inetd"}
    assert not spool.run(["pgrep", "-x", "sendmail"]).stdout
    code, text = smtp.greeting(spool.ip)
    assert (code, text.split()[:2]) == (220, [SPOOL, "ESMTP"])
    # This machine is nobody's relay client: only rcpthosts' domains.
    assert smtp.rcpt(spool.ip, "someone@example.org") == 553
    assert smtp.rcpt(spool.ip, f"someone@{SPOOL}") == 250
    assert seed.send_pid(SPOOL)
    assert "/var/qmail/supervise/qmail-send/run" in spool.read_file("/etc/rc.local")


def test_client_lost_its_smtpd_line_and_keeps_inetd(seed):
    client = seed.client
    assert client.read_file(INETD_CONF) == seed.client_inetd_conf + DISCARD
    ports = client.listeners()
    assert 25 not in ports and 587 not in ports
    assert ports[9] == {"inetd"}
    assert seed.send_pid(CLIENT)


def test_mail_from_the_client_arrives_through_inetd(seed):
    seed.mail_from_client("via-inetd")


def test_without_rcpthosts_each_connection_is_refused(seed):
    spool = seed.spool
    spool.run(["rm", "/var/qmail/control/rcpthosts"], check=True)
    code, text = smtp.greeting(spool.ip)
    assert code == 421 and "rcpthosts is missing" in text
    ret = seed.apply(target=[SPOOL])
    assert changed(ret)[SPOOL] == ["qmail-control-file-managed-rcpthosts"]
    assert smtp.greeting(spool.ip)[0] == 220


def test_after_a_reboot_qmail_is_back_and_sendmail_stays_off(seed, lab_master):
    spool = seed.spool
    before = seed.send_pid(SPOOL)
    lab_master.restart_host(spool)
    pid = wait_until(lambda: seed.send_pid(SPOOL), 30, what="qmail-send from rc.local")
    assert pid != before
    wait_until(lambda: spool.listeners().get(25) == {"inetd"}, 30, what="inetd on 25")
    assert smtp.greeting(spool.ip)[1].startswith(f"{SPOOL} ESMTP")
    assert not spool.run(["pgrep", "-x", "sendmail"]).stdout
    seed.mail_from_client("after-reboot")


def test_second_apply_changes_nothing(seed):
    assert changed(seed.apply()) == {SPOOL: [], CLIENT: []}


def test_clean_gives_port_25_back_to_sendmail(seed):
    spool = seed.spool
    seed.apply("qmail.clean", target=[SPOOL])
    assert "qmail-smtpd" not in spool.read_file(INETD_CONF)
    assert not seed.send_pid(SPOOL)
    # inetd lets port 25 go once it has re-read its file; then sendmail takes
    # it (ss cannot name sendmail's process: set-gid, hence not dumpable).
    wait_until(lambda: "inetd" not in spool.listeners().get(25, {"inetd"}), 120,
               what="port 25 held, not by inetd")
    # Debian's sendmail listens on 127.0.0.1 only.
    assert "Sendmail" in smtp.greeting("127.0.0.1", host=spool)[1]

