"""
qmail:filter on real hosts (issue 23): the chain that the spool's
qmail-smtpd runs through QMAILQUEUE, with Debian's python3-dkim and
SpamAssassin from the image's local archive.

- ``ccs`` (spool): ``qmail:filter`` with DKIM signing for its own domain,
  ``hostname`` in its relay clients;
- ``hostname`` (client): hands every message to the spool;
- ``mx`` (a second spool): plays the recipient domain's MX (mail to
  ``someone@mx...``), and an outside sender to the spool.

What a user checks: the client's message arrives at the MX with a
DKIM-Signature that dkimpy verifies against the record of
``qmail_dkim.dns_record`` (as the only DNS answer), the rest of the message
as sent; so does mail injected on the spool by a user who cannot read the
key; mail from outside is not signed; with qmail-filterd stopped the
client's message waits (4xx) and arrives once after the next apply starts
it; a key the filter cannot read gives the client 4xx, the message waits in
the client's queue and arrives exactly once when the key is put right; a
new selector signs, the old one stays published until removed; spamd tags
GTUBE, refuses it at a score, and when stopped makes senders wait (4xx),
the message arriving once after the restart; with SPF's ``fail`` set to
reject, a sender whose domain's record fails is refused and a softfail only
tagged (the two records served by a stub DNS server on ``mx`` that forwards
every other question to the lab's resolver). A second apply changes
nothing.

The tests share the hosts and run in this file's order.
"""

import json
import uuid

import pytest

from lab.fleet import Fleet, changed
from lab.wait import wait_until

pytestmark = pytest.mark.lab

SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENT = "hostname.cla.kobe-u.ac.jp"
MX = "mx.cla.kobe-u.ac.jp"
MAILDIR = "/home/someone/Maildir"
KEYS = "/etc/qmail-filter/dkim"

# dkimpy verifies the message on stdin with the TXT record in argv[1] as the
# only DNS answer; prints the selector it verified ("" when it did not).
VERIFY = """\
import dkim, re, sys
record = sys.argv[1].encode()
message = sys.stdin.buffer.read()
ok = dkim.verify(message, dnsfunc=lambda name, timeout=5: record)
sig = re.search(rb"^DKIM-Signature:.*?\\bs=([A-Za-z0-9-]+)", message, re.M | re.S)
print(sig.group(1).decode() if ok and sig else "")
"""

# A DNS server for the SPF test, run on mx: TXT records for two sender
# domains; every other question forwarded to the lab's resolver (argv[1]),
# so the spool still finds its lab peers while it uses this one.
STUB_DNS = """\
import socket, struct, sys
TXT = {b"spf-fail.example": b"v=spf1 -all", b"spf-soft.example": b"v=spf1 ~all"}
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", 53))
while True:
    query, peer = sock.recvfrom(4096)
    i, labels = 12, []
    while query[i]:
        labels.append(query[i + 1:i + 1 + query[i]])
        i += 1 + query[i]
    name, qtype, end = b".".join(labels).lower(), struct.unpack("!H", query[i + 1:i + 3])[0], i + 5
    if name in TXT:
        answer = b""
        if qtype == 16:
            rdata = bytes([len(TXT[name])]) + TXT[name]
            answer = b"\\xc0\\x0c" + struct.pack("!HHIH", 16, 1, 60, len(rdata)) + rdata
        head = query[:2] + struct.pack("!HHHHH", 0x8180, 1, 1 if answer else 0, 0, 0)
        sock.sendto(head + query[12:end] + answer, peer)
        continue
    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    up.settimeout(5)
    try:
        up.sendto(query, (sys.argv[1], 53))
        sock.sendto(up.recvfrom(4096)[0], peer)
    except OSError:
        pass
    finally:
        up.close()
"""


class FilterLab(Fleet):
    def __init__(self, master, hosts, source, build):
        super().__init__(master, hosts)
        self.spool, self.client, self.mx = (self.hosts[h] for h in (SPOOL, CLIENT, MX))
        self.source, self.build = source, build
        self.filter = {"steps": ["dkim"],
                       "dkim": {"domains": {SPOOL: {"keys": {"s1": ""}}}}}

    def pillars(self):
        base = {"source": self.source, "build": self.build}
        return {
            SPOOL: {"qmail": {**base, "role": "spool", "filter": self.filter,
                              "relay_clients": [f"{self.client.ip}/32"]}},
            CLIENT: {"qmail": {**base, "role": "client", "spool": SPOOL}},
            MX: {"qmail": {**base, "role": "spool"}},
        }

    def set_filter(self, **changes):
        self.filter = {**self.filter, **changes}
        self.master.set_pillar(self.pillars())
        return self.apply(target=SPOOL)

    def message(self, subject, sender=f"someone@{SPOOL}", to=f"someone@{MX}", body=None):
        return (f"From: Some One <{sender}>\nTo: {to}\nSubject: {subject}\n"
                f"Message-ID: <{uuid.uuid4().hex}@{SPOOL}>\n\n{body or subject}\n")

    def send(self, host, recipient, message):
        proc = host.run(["/usr/sbin/sendmail", recipient], input=message)
        assert proc.returncode == 0, proc.stderr

    def arrived(self, host, subject, timeout=120):
        (found,) = wait_until(lambda: host.delivered(MAILDIR, subject), timeout,
                              what=f"{subject!r} delivered on {host.fqdn}")
        return host.read_file(found)

    def records(self, selector=None):
        kwargs = {"selector": selector} if selector else {}
        return self.call(SPOOL, "qmail_dkim.dns_record", SPOOL, **kwargs)

    def verified_selector(self, text, selector):
        """The selector dkimpy verified ``text`` with, against the record of
        ``selector`` that qmail_dkim.dns_record gives."""
        (record,) = self.records(selector).values()
        proc = self.spool.run(["python3", "-c", VERIFY, record], input=text)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def deferred_on_client(self, subject, naming):
        """The client's message ``subject`` to the MX deferred by the spool:
        its qmail-send's deferral names ``naming`` and says 4.3.0; the
        message waits in the client's queue."""
        self.send(self.client, f"someone@{MX}", self.message(subject))
        log = wait_until(lambda: [line for line in self.call(CLIENT, "qmail_service.logs",
                                                             "qmail-send", lines=300)
                                  if "deferral" in line and naming in line], 120,
                         what=f"the client's deferral naming {naming}")
        assert "4.3.0" in log[-1]
        assert self.queue_count(CLIENT) == 1 and not self.mx.delivered(MAILDIR, subject)

    def delivered_once_after_apply(self, subject, state_id):
        """The next apply of the spool changes ``state_id`` alone; the
        client's retry then brings ``subject`` to the MX once, signed."""
        assert changed(self.apply(target=SPOOL))[SPOOL] == [state_id]
        self.call(CLIENT, "qmail_service.flush")
        assert self.verified_selector(self.arrived(self.mx, subject), "s1") == "s1"
        wait_until(lambda: self.queue_count(CLIENT) == 0, 60, what="the client's queue empty")
        assert len(self.mx.delivered(MAILDIR, subject)) == 1

    def queue_count(self, fqdn):
        return self.call(fqdn, "qmail_service.queue_status")["messages"]

    def smtp_from(self, host, recipient, message, sender=f"someone@{MX}"):
        """One SMTP session from ``host`` to the spool: the reply codes."""
        script = ("import json, smtplib, sys\na = json.loads(sys.argv[1])\n"
                  "s = smtplib.SMTP(a['ip'], 25, local_hostname='outside.example')\n"
                  "s.mail(a['sender']); r = s.rcpt(a['rcpt'])[0]\n"
                  "try:\n    d = s.data(a['msg'])\n"
                  "except smtplib.SMTPDataError as e:\n    d = (e.smtp_code, e.smtp_error)\n"
                  "print(json.dumps([r, d[0], d[1].decode()]))\n")
        args = json.dumps({"ip": self.spool.ip, "sender": sender, "rcpt": recipient,
                           "msg": message})
        proc = host.run(["python3", "-c", script, args])
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def flab(lab_master, lab_hosts_module, qmail_source):
    hosts = lab_hosts_module([SPOOL, CLIENT, MX])
    the_lab = FilterLab(lab_master, hosts, lab_master.put_source(qmail_source),
                        lab_master.prebuilt(qmail_source))
    return the_lab.converge(the_lab.pillars(), mail_users={SPOOL: "someone", MX: "someone"})


def test_the_key_is_qmailds_alone_and_its_record_is_in_the_comment(flab):
    key = f"{KEYS}/s1.{SPOOL}.key"
    assert flab.spool.run(["stat", "-c", "%a %U", key], check=True).stdout.split() == [
        "400", "qmaild"]
    (state,) = [s for s in flab.first_apply[SPOOL].values()
                if s["__id__"] == "qmail-filter-dkim-keys-qmail_dkim-keys_managed"]
    (name, record), = flab.records().items()
    assert name == f"s1._domainkey.{SPOOL}" and record.startswith("v=DKIM1; k=rsa; p=")
    assert f'{name} TXT "{record}"' in state["comment"]
    assert "PRIVATE" not in json.dumps(flab.first_apply[SPOOL])
    # qmail-smtpd's wrapper hands messages to the chain's client, which
    # hands them to qmail-filterd: running as qmaild (the key's owner).
    assert "QMAILQUEUE=/etc/qmail-filter/qmail-filter" in flab.spool.read_file(
        "/var/qmail/supervise/qmail-smtpd/smtpd")
    assert flab.call(SPOOL, "qmail_service.status")["qmail-filterd"]["running"]
    users = flab.spool.run(["ps", "-o", "user=", "-C", "python3"], check=True).stdout.split()
    assert "qmaild" in users
    # This host's sendmail is the wrapper that exports QMAILQUEUE.
    assert flab.spool.run(["readlink", "/usr/sbin/sendmail"]).stdout.strip() == \
        "/etc/qmail-filter/sendmail"


def test_relay_client_mail_arrives_signed_and_otherwise_unchanged(flab):
    subject = f"signed {uuid.uuid4().hex}"
    sent = flab.message(subject, body="line one\n\nline three, after an empty line")
    flab.send(flab.client, f"someone@{MX}", sent)
    text = flab.arrived(flab.mx, subject)
    assert text.count("DKIM-Signature:") == 1
    assert flab.verified_selector(text, "s1") == "s1"
    assert "d=ccs.cla.kobe-u.ac.jp;" in text
    # Every header and the body as sent, after the signature and trace lines.
    for line in sent.splitlines():
        assert line in text.splitlines()
    # A changed body no longer verifies.
    assert flab.verified_selector(text.replace("line three", "line 3"), "s1") == ""


def test_mail_injected_on_the_spool_by_any_user_is_signed(flab):
    """cron's or a script's mail: /usr/sbin/sendmail as a user without any
    right to the key (qmaild's, 0400) is signed by qmail-filterd."""
    subject = f"local {uuid.uuid4().hex}"
    proc = flab.spool.run(["/usr/sbin/sendmail", f"someone@{MX}"], user="someone",
                          input=flab.message(subject))
    assert proc.returncode == 0, proc.stderr
    text = flab.arrived(flab.mx, subject)
    assert flab.verified_selector(text, "s1") == "s1"
    assert "invoked by uid" in text  # qmail-queue ran as the user, not as qmaild
    uid = flab.spool.run(["id", "-u", "someone"], check=True).stdout.strip()
    assert f"invoked by uid {uid}" in text


def test_qmail_filterd_stopped_defers_and_the_message_arrives_once_after_the_apply(flab):
    flab.spool.run(["systemctl", "stop", "qmail-filterd"], check=True)
    subject = f"filterd down {uuid.uuid4().hex}"
    flab.deferred_on_client(subject, "qmail-filterd")
    flab.delivered_once_after_apply(subject, "qmail-filter-daemon-qmail_service-running")


def test_mail_from_outside_is_not_signed(flab):
    subject = f"inbound {uuid.uuid4().hex}"
    # mx is no relay client: an outsider, even with the spool's own From:.
    codes = flab.smtp_from(flab.mx, f"someone@{SPOOL}",
                           flab.message(subject, to=f"someone@{SPOOL}"))
    assert codes[:2] == [250, 250], codes
    assert "DKIM-Signature:" not in flab.arrived(flab.spool, subject)


def test_unreadable_key_defers_and_the_message_arrives_once_when_fixed(flab):
    flab.spool.run(["chmod", "000", f"{KEYS}/s1.{SPOOL}.key"], check=True)
    subject = f"deferred {uuid.uuid4().hex}"
    flab.deferred_on_client(subject, "dkim")
    # The key put right by the next apply; the client retries now.
    flab.delivered_once_after_apply(subject, "qmail-filter-dkim-keys-qmail_dkim-keys_managed")


def test_second_apply_changes_nothing(flab):
    assert changed(flab.apply()) == {SPOOL: [], CLIENT: [], MX: []}
    assert changed(flab.apply(test=True)) == {SPOOL: [], CLIENT: [], MX: []}


def test_rotation_new_selector_signs_old_stays_published_until_removed(flab):
    old = flab.records("s1")
    flab.set_filter(dkim={"domains": {SPOOL: {"selector": "s2", "keys": {"s1": "", "s2": ""}}}})
    assert sorted(flab.records()) == [f"s1._domainkey.{SPOOL}", f"s2._domainkey.{SPOOL}"]
    assert flab.records("s1") == old
    subject = f"rotated {uuid.uuid4().hex}"
    flab.send(flab.client, f"someone@{MX}", flab.message(subject))
    assert flab.verified_selector(flab.arrived(flab.mx, subject), "s2") == "s2"
    assert changed(flab.apply(target=SPOOL)) == {SPOOL: []}
    flab.set_filter(dkim={"domains": {SPOOL: {"selector": "s2", "keys": {"s2": ""}}}})
    assert list(flab.records()) == [f"s2._domainkey.{SPOOL}"]
    assert not flab.spool.exists(f"{KEYS}/s1.{SPOOL}.key")


GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def test_spamassassin_tags_gtube_and_refuses_it_at_a_score(flab):
    flab.set_filter(steps=["dkim", "spamassassin"])
    flab.spool.wait_listening(783, 120)
    subject = f"gtube {uuid.uuid4().hex}"
    codes = flab.smtp_from(flab.mx, f"someone@{SPOOL}",
                          flab.message(subject, sender=f"someone@{MX}", to=f"someone@{SPOOL}",
                                      body=GTUBE))
    assert codes[:2] == [250, 250]
    text = flab.arrived(flab.spool, subject)
    assert "X-Spam-Flag: YES" in text and "GTUBE" in text
    flab.set_filter(spamassassin={"reject_score": 10})
    codes = flab.smtp_from(flab.mx, f"someone@{SPOOL}",
                          flab.message(f"refused {uuid.uuid4().hex}", body=GTUBE))
    assert codes[1] == 554 and "spam" in codes[2]


def test_spamd_stopped_defers_and_the_message_arrives_once_after_restart(flab):
    flab.spool.run(["systemctl", "stop", "spamd"], check=True)
    subject = f"spamd down {uuid.uuid4().hex}"
    flab.send(flab.mx, f"someone@{SPOOL}", flab.message(subject, sender=f"someone@{MX}",
                                                     to=f"someone@{SPOOL}"))
    wait_until(lambda: [line for line in flab.call(MX, "qmail_service.logs", "qmail-send",
                                                  lines=300)
                        if "deferral" in line and "spamassassin" in line], 120,
               what="mx's deferral naming the spamassassin step")
    assert flab.queue_count(MX) == 1 and not flab.spool.delivered(MAILDIR, subject)
    ret = flab.apply(target=SPOOL)  # service.running starts spamd again
    assert "qmail-filter-spamd-service-running" in changed(ret)[SPOOL]
    flab.spool.wait_listening(783, 120)
    flab.call(MX, "qmail_service.flush")
    text = flab.arrived(flab.spool, subject)
    assert "X-Spam-Status: No" in text
    wait_until(lambda: flab.queue_count(MX) == 0, 60, what="mx's queue empty")
    assert len(flab.spool.delivered(MAILDIR, subject)) == 1


@pytest.fixture
def stub_dns(flab):
    """The spool resolves through STUB_DNS on mx for the test's length."""
    resolv = flab.spool.read_file("/etc/resolv.conf")
    upstream = next(line.split()[1] for line in resolv.splitlines()
                    if line.startswith("nameserver"))
    flab.mx.put_file("/root/stub-dns.py", STUB_DNS)
    flab.mx.run(["systemd-run", "--unit", "qmail-lab-stub-dns", "python3", "/root/stub-dns.py",
                 upstream], check=True)
    wait_until(lambda: flab.mx.run(["ss", "-Hlun", "sport = :53"]).stdout.strip(), 60,
               what="the stub DNS server listening on mx")
    flab.spool.put_file("/etc/resolv.conf", f"nameserver {flab.mx.ip}\n")
    try:
        yield
    finally:
        flab.spool.put_file("/etc/resolv.conf", resolv)
        flab.mx.run(["systemctl", "stop", "qmail-lab-stub-dns"])


def test_spf_fail_is_refused_when_set_and_softfail_only_tagged(flab, stub_dns):
    flab.set_filter(steps=["dkim", "spf", "spamassassin"],
                    spf={"required": False, "reject_fail": True})
    codes = flab.smtp_from(flab.mx, f"someone@{SPOOL}",
                           flab.message(f"spf fail {uuid.uuid4().hex}",
                                        sender="someone@spf-fail.example", to=f"someone@{SPOOL}"),
                           sender="someone@spf-fail.example")
    assert codes[1] == 554 and "SPF fail" in codes[2], codes
    subject = f"spf softfail {uuid.uuid4().hex}"
    codes = flab.smtp_from(flab.mx, f"someone@{SPOOL}",
                           flab.message(subject, sender="someone@spf-soft.example",
                                        to=f"someone@{SPOOL}"),
                           sender="someone@spf-soft.example")
    assert codes[:2] == [250, 250], codes
    text = flab.arrived(flab.spool, subject)
    assert "Received-SPF: softfail" in text and f"client-ip={flab.mx.ip}" in text
    # The lab's names still resolve through the stub: relayed mail leaves.
    subject = f"after spf {uuid.uuid4().hex}"
    flab.send(flab.client, f"someone@{MX}", flab.message(subject))
    assert flab.verified_selector(flab.arrived(flab.mx, subject), "s2") == "s2"


def test_clean_removes_the_filter_folder_the_ledger_lists(flab):
    assert flab.call(SPOOL, "qmail_ledger.lists", "dirs", "/etc/qmail-filter") is True
    assert flab.call(SPOOL, "qmail_ledger.lists", "dirs", "/run/qmail-filterd") is True
    flab.apply("qmail.clean", target=SPOOL)
    assert not flab.spool.exists("/etc/qmail-filter")
    assert not flab.spool.exists("/run/qmail-filterd")
    assert not flab.spool.exists("/etc/systemd/system/qmail-filterd.service")
    assert "qmail-filterd" not in flab.spool.run(["ps", "-eo", "args"]).stdout
    assert flab.call(SPOOL, "qmail_ledger.lists", "dirs", "/etc/qmail-filter") is False
