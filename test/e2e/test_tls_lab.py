"""
TLS on the spool and logs where sysadmins look (issue 13), on real hosts
through the master, with Debian's tlswrapper:

- ``ccs`` (systemd): a spool with ``qmail:tls`` from pillar (a certificate
  of a throwaway CA) and implicit TLS on 465;
- ``hostname`` (systemd): its client, in ``relay_clients``, sending as
  today (plain SMTP, which tlswrapper-smtp passes through);
- ``mx2`` (daemontools): a second spool with a self-signed certificate made
  by Salt's x509_v2 states, and multilog rotating at 4096 bytes.

What a user checks: Python's smtplib sees STARTTLS, verifies the
certificate (against the CA, or the self-signed one by its fingerprint)
and delivers; 465 delivers; relaying stays refused for outsiders inside
TLS and allowed for the client; a certificate replaced in pillar is what
the next session gets, with no restart and the session already open still
delivering; logs of qmail-send and qmail-smtpd are in the journal or in
multilog's files, rotated at the configured size; a second apply changes
nothing.

The tests share the hosts and run in this file's order.
"""

import uuid

import pytest

from lab import smtp, tls
from lab.fleet import Fleet, changed
from lab.wait import wait_until

pytestmark = pytest.mark.lab

SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENT = "hostname.cla.kobe-u.ac.jp"
SPOOL2 = "mx2.cla.kobe-u.ac.jp"
MAILDIR = "/home/someone/Maildir"
PEM = "/etc/qmail-tls/smtpd.pem"


class TlsLab(Fleet):
    def __init__(self, master, hosts, source, build):
        super().__init__(master, hosts)
        self.spool, self.client, self.spool2 = (self.hosts[h] for h in (SPOOL, CLIENT, SPOOL2))
        self.source = source
        self.build = build  # lab.buildcache: the tree compiled once
        self.ca = tls.CA()
        self.cert, self.key = self.ca.issue(SPOOL)

    def pillars(self):
        spool = {"role": "spool", "source": self.source, "build": self.build,
                 "relay_clients": [f"{self.client.ip}/32"],
                 "tls": {"enable": True, "smtps": True, "certificate": self.cert,
                         "key": self.key}}
        spool2 = {"role": "spool", "source": self.source, "build": self.build,
                  "service": {"supervisor": "daemontools", "log": {"size": 4096, "count": 3}},
                  "tls": {"enable": True}}
        client = {"role": "client", "spool": SPOOL, "source": self.source, "build": self.build}
        return {SPOOL: {"qmail": spool}, SPOOL2: {"qmail": spool2}, CLIENT: {"qmail": client}}

    def session(self, host_ip, name, **kwargs):
        return smtp.tls_session(host_ip, name, **kwargs)

    def message(self, subject, to=f"someone@{SPOOL}"):
        return (f"From: someone@checker.example\r\nTo: {to}\r\nSubject: {subject}\r\n"
                f"\r\n{subject}\r\n")


@pytest.fixture(scope="module")
def tlslab(lab_master, lab_hosts_module, qmail_source):
    hosts = lab_hosts_module([SPOOL, CLIENT, SPOOL2])  # tlswrapper: Debian 12 and later
    the_lab = TlsLab(lab_master, hosts, lab_master.put_source(qmail_source),
                   lab_master.prebuilt(qmail_source))
    return the_lab.converge(the_lab.pillars(), mail_users={SPOOL: "someone", SPOOL2: "someone"})


def test_tls_services_listen_and_the_pem_is_roots_alone(tlslab):
    assert {25, 465} <= tlslab.spool.listeners().keys()
    assert 25 in tlslab.spool2.listeners() and 465 not in tlslab.spool2.listeners()
    for host in (tlslab.spool, tlslab.spool2):
        # tcpserver runs as root (tlswrapper reads the key), never qmail-smtpd
        assert host.run(["stat", "-c", "%a %U %G", PEM], check=True).stdout.split() == [
            "600", "root", "root"]
        assert host.run(["stat", "-c", "%a %U", "/etc/qmail-tls"],
                        check=True).stdout.split() == ["700", "root"]
    # Only the self-signed host keeps a separate key, root's alone too.
    assert tlslab.spool2.run(["stat", "-c", "%a %U", "/etc/qmail-tls/key.pem"],
                          check=True).stdout.split() == ["600", "root"]
    assert not tlslab.spool.exists("/etc/qmail-tls/key.pem")


def test_starttls_verified_against_the_ca_and_delivered(tlslab):
    subject = f"starttls {uuid.uuid4().hex}"
    got = tlslab.session(tlslab.spool.ip, SPOOL, ca=tlslab.ca.pem, rcpts=[f"someone@{SPOOL}"],
                      message=tlslab.message(subject))
    assert got["starttls_offered"] and got["starttls"] == 220
    assert got["rcpt"] == [250] and got["data"] == 250
    assert got["fingerprint"] == tls.fingerprint_pem(tlslab.cert)
    (found,) = wait_until(lambda: tlslab.spool.delivered(MAILDIR, subject), 60, what="delivery")
    assert "Delivered-To: someone@ccs.cla.kobe-u.ac.jp" in tlslab.spool.read_file(found)


def test_a_wrong_name_fails_verification(tlslab):
    with pytest.raises(ConnectionError, match="CERTIFICATE_VERIFY_FAILED|match"):
        tlslab.session(tlslab.spool.ip, "other.example.org", ca=tlslab.ca.pem)


def test_implicit_tls_on_465_delivers(tlslab):
    subject = f"smtps {uuid.uuid4().hex}"
    got = tlslab.session(tlslab.spool.ip, SPOOL, port=465, implicit=True, ca=tlslab.ca.pem,
                      rcpts=[f"someone@{SPOOL}"], message=tlslab.message(subject))
    assert got["greeting"] == 220 and got["rcpt"] == [250] and got["data"] == 250
    wait_until(lambda: tlslab.spool.delivered(MAILDIR, subject), 60, what="delivery over 465")


@pytest.mark.parametrize(("port", "implicit"), [(25, False), (465, True)])
def test_relaying_inside_tls_still_by_client_address(tlslab, port, implicit):
    outsider = tlslab.session(tlslab.spool.ip, SPOOL, port=port, implicit=implicit,
                              ca=tlslab.ca.pem, rcpts=["someone@example.org", f"someone@{SPOOL}"])
    assert outsider["rcpt"] == [553, 250]
    client = tlslab.session(tlslab.spool.ip, SPOOL, port=port, implicit=implicit, ca=tlslab.ca.pem,
                         rcpts=["someone@example.org"], host=tlslab.client)
    assert client["rcpt"] == [250]


def test_the_client_still_sends_as_today(tlslab):
    subject = f"plain {uuid.uuid4().hex}"
    proc = tlslab.client.run("/usr/sbin/sendmail someone", input=f"Subject: {subject}\n\nx\n")
    assert proc.returncode == 0, proc.stderr
    (found,) = wait_until(lambda: tlslab.spool.delivered(MAILDIR, subject), 90, what="delivery")
    assert f"(HELO {CLIENT})" in tlslab.spool.read_file(found)


def test_self_signed_certificate_for_me_checked_by_fingerprint(tlslab):
    info = tlslab.call(SPOOL2, "qmail_tls.certificate")
    assert info["names"] == [SPOOL2] and info["mode"] == "0600" and info["uid"] == 0
    subject = f"self-signed {uuid.uuid4().hex}"
    got = tlslab.session(tlslab.spool2.ip, SPOOL2, rcpts=[f"someone@{SPOOL2}"],
                      message=tlslab.message(subject, f"someone@{SPOOL2}"))
    assert got["fingerprint"] == info["fingerprint"]
    assert got["data"] == 250
    wait_until(lambda: tlslab.spool2.delivered(MAILDIR, subject), 60, what="delivery on mx2")
    # Salt made it with x509_v2, valid for the configured days, renewed before expiry.
    assert tlslab.spool2.exists("/etc/qmail-tls/cert.pem")


def test_journal_has_deliveries_and_connections_under_the_unit_names(tlslab):
    send = tlslab.call(SPOOL, "qmail_service.logs", "qmail-send", lines=500)
    assert any("delivery" in line and "success" in line for line in send), send[-20:]
    smtpd = tlslab.call(SPOOL, "qmail_service.logs", "qmail-smtpd", lines=500)
    assert any("tcpserver: ok" in line and tlslab.client.ip in line for line in smtpd), smtpd[-20:]
    smtpsd = tlslab.call(SPOOL, "qmail_service.logs", "qmail-smtpsd", lines=500)
    assert any("tcpserver: ok" in line for line in smtpsd), smtpsd[-20:]


def test_multilog_has_deliveries_connections_and_rotates_at_the_size(tlslab):
    # Enough sessions to pass 4096 bytes of smtpd log more than once.
    for _ in range(40):
        smtp.greeting(tlslab.spool2.ip)
    send = tlslab.call(SPOOL2, "qmail_service.logs", "qmail-send", lines=500)
    assert any("delivery" in line and "success" in line for line in send), send[-20:]
    assert all(line.startswith("@4000") for line in send)  # multilog's t: TAI64N
    smtpd = tlslab.call(SPOOL2, "qmail_service.logs", "qmail-smtpd", lines=500)
    assert any("tcpserver: ok" in line for line in smtpd), smtpd[-20:]
    folder = "/var/log/qmail/qmail-smtpd"
    files = wait_until(lambda: [f for f in tlslab.spool2.run(["ls", folder]).stdout.split()
                                if f.startswith("@")], 30, what="a rotated multilog file")
    assert len(files) <= 2  # n3: current and two old ones
    size = int(tlslab.spool2.run(["stat", "-c", "%s", f"{folder}/current"]).stdout)
    assert size <= 4096
    assert tlslab.spool2.run(["stat", "-c", "%U", folder]).stdout.strip() == "qmaill"


def test_second_apply_changes_nothing(tlslab):
    assert changed(tlslab.apply()) == {SPOOL: [], CLIENT: [], SPOOL2: []}
    assert changed(tlslab.apply(test=True)) == {SPOOL: [], CLIENT: [], SPOOL2: []}


def test_a_new_certificate_is_used_by_the_next_session_and_nothing_is_lost(tlslab):
    pid = tlslab.call(SPOOL, "qmail_service.service_pid", "qmail-smtpd")
    old = tls.fingerprint_pem(tlslab.cert)
    # A session opened with the old certificate, paused after RCPT.
    pause = f"/tmp/pause-{uuid.uuid4().hex}"
    subject = f"in flight {uuid.uuid4().hex}"
    import concurrent.futures  # noqa: PLC0415 - only this test needs a thread

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        inflight = pool.submit(tlslab.session, tlslab.spool.ip, SPOOL, rcpts=[f"someone@{SPOOL}"],
                               message=tlslab.message(subject), host=tlslab.client,
                               pause_file=pause)
        wait_until(lambda: tlslab.client.exists(pause + ".ready"), 60, what="the open session")
        tlslab.ca = tls.CA("second test CA")
        tlslab.cert, tlslab.key = tlslab.ca.issue(SPOOL)
        tlslab.master.set_pillar(tlslab.pillars())
        ret = tlslab.apply(target=SPOOL)
        assert changed(ret)[SPOOL] == ["qmail-service-tls-pem-qmail_tls-pem_managed"]
        tlslab.client.run(["touch", pause], check=True)
        first = inflight.result(timeout=180)
    assert first["fingerprint"] == old and first["data"] == 250
    wait_until(lambda: tlslab.spool.delivered(MAILDIR, subject), 60, what="the in-flight message")
    nxt = tlslab.session(tlslab.spool.ip, SPOOL, ca=tlslab.ca.pem)
    assert nxt["fingerprint"] == tls.fingerprint_pem(tlslab.cert) != old
    assert tlslab.call(SPOOL, "qmail_service.service_pid", "qmail-smtpd") == pid  # no restart
