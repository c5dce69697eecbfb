"""
IPv6 on the spool (issue 22), on real hosts of the lab's IPv6 network
(a ULA /64; each host's interface id holds one zero group, the spelling
where tcpserver and RFC 5952 differ), through the master, with Debian's
ucspi-tcp-ipv6 from the image's local archive:

- ``ccs``: a spool with ``qmail:ipv6: true``; ``relay_clients`` lists
  ``hostname``'s IPv6 address, written in full (uppercase, every zero);
- ``hostname``: that relay client;
- ``other``: another IPv6 host, in no relay rule.

What a user checks: the spool greets on its IPv6 address from another host
and on ``[::1]:25``, and still on IPv4; a message over IPv6 is delivered
with the client's IPv6 address in ``Received:`` as tcpserver wrote it;
relaying is allowed for the listed IPv6 address only (the other host gets
553 for a foreign domain and may still send to the spool's own); the
package is in the ledger (the formula installed it), and the image's
ucspi-tcp it displaced; a second apply and
``test=True`` change nothing; ``ipv6: false`` takes IPv6 away again;
``qmail.service.clean`` purges the package and installs ucspi-tcp again.

The tests share the hosts and run in this file's order.
"""

import importlib.util
import ipaddress
import json
import pathlib
import uuid

import pytest

from lab import smtp
from lab.fleet import Fleet, changed
from lab.wait import wait_until

pytestmark = pytest.mark.lab

REPO = pathlib.Path(__file__).resolve().parents[2]
SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENT = "hostname.cla.kobe-u.ac.jp"
OTHER = "other.cla.kobe-u.ac.jp"
MAILDIR = "/home/someone/Maildir"
PACKAGE = "ucspi-tcp-ipv6"
REPLACED = "ucspi-tcp"  # what apt removes to install it (lookup:service:ipv6_replaces)


def _ipv6_utils():
    spec = importlib.util.spec_from_file_location("qmail_ipv6", REPO / "_utils" / "qmail_ipv6.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# One plain SMTP session from a host: the reply codes, and the message sent
# (when every RCPT was taken).
_SEND = """\
import json, smtplib, sys
a = json.loads(sys.argv[1])
s = smtplib.SMTP(timeout=30, local_hostname="checker.example")
out = {"greeting": s.connect(a["ip"], 25)[0]}
out["ehlo"] = s.ehlo()[0]
out["mail"] = s.mail("someone@checker.example")[0]
out["rcpt"] = [s.rcpt(r)[0] for r in a["rcpts"]]
if a["message"] is not None and set(out["rcpt"]) == {250}:
    out["data"] = s.data(a["message"])[0]
s.quit()
print(json.dumps(out))
"""


def session(host, ip, rcpts, message=None):
    proc = host.run(["python3", "-c", _SEND, json.dumps(
        {"ip": ip, "rcpts": rcpts, "message": message})], timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


class Ipv6Lab(Fleet):
    def __init__(self, master, spool, client, other, source, build):
        super().__init__(master, [spool])
        self.spool, self.client, self.other = spool, client, other
        self.source, self.build = source, build

    def pillars(self, ipv6=True):
        listed = ipaddress.IPv6Address(self.client.ip6).exploded.upper()
        qmail = {"role": "spool", "source": self.source, "build": self.build, "ipv6": ipv6,
                 "relay_clients": [listed] if ipv6 else []}
        return {SPOOL: {"qmail": qmail}}


@pytest.fixture(scope="module")
def v6lab(lab_master, lab_hosts_module, qmail_source):
    spool, client, other = lab_hosts_module([SPOOL, CLIENT, OTHER], ipv6=True)
    assert spool.run(["dpkg", "-s", PACKAGE]).returncode != 0  # the image has ucspi-tcp
    the_lab = Ipv6Lab(lab_master, spool, client, other, lab_master.put_source(qmail_source),
                      lab_master.prebuilt(qmail_source))
    return the_lab.converge(the_lab.pillars(), mail_users={SPOOL: "someone"})


def test_the_lab_hosts_spell_ipv6_where_tcpserver_and_rfc_5952_differ(v6lab):
    """The premise of the relay test: Python's compressed form of the
    client's address is not what tcpserver writes."""
    address = ipaddress.IPv6Address(v6lab.client.ip6)
    assert _ipv6_utils().tcpserver_form(address) != address.compressed


def test_the_spool_listens_on_ipv4_and_ipv6(v6lab):
    ss = v6lab.spool.run(["ss", "-Hltn", "sport", "= :25"], check=True).stdout.split()
    assert "*:25" in ss  # one socket, both families (tcpserver host 0)
    assert v6lab.spool.run(["dpkg-query", "-W", "-f", "${Status}", PACKAGE],
                           check=True).stdout == "install ok installed"
    assert smtp.greeting(v6lab.spool.ip6, host=v6lab.client)[0] == 220
    assert smtp.greeting("::1", host=v6lab.spool)[0] == 220
    assert smtp.greeting(v6lab.spool.ip, host=v6lab.other)[0] == 220


def test_the_package_is_in_the_ledger_because_the_formula_installed_it(v6lab):
    entries = v6lab.call(SPOOL, "qmail_ledger.entries")
    assert PACKAGE in entries["packages"]
    # apt removed the image's ucspi-tcp to install it: listed to be put back.
    assert entries["displaced"] == [REPLACED]
    assert v6lab.spool.run(["dpkg", "-s", REPLACED]).returncode != 0


def test_mail_over_ipv6_is_delivered_with_the_client_address(v6lab):
    subject = f"over ipv6 {uuid.uuid4().hex}"
    message = (f"From: someone@checker.example\r\nTo: someone@{SPOOL}\r\n"
               f"Subject: {subject}\r\n\r\n{subject}\r\n")
    got = session(v6lab.client, v6lab.spool.ip6, [f"someone@{SPOOL}"], message)
    assert got["rcpt"] == [250] and got["data"] == 250
    (found,) = wait_until(lambda: v6lab.spool.delivered(MAILDIR, subject), 90, what="delivery")
    seen = _ipv6_utils().tcpserver_form(v6lab.client.ip6)
    received = [line for line in v6lab.spool.read_file(found).splitlines()
                if line.startswith("Received: from ")]
    assert received and f"(HELO checker.example) ({seen})" in received[0], received


def test_relaying_only_for_the_listed_ipv6_address(v6lab):
    outside = ["someone@example.org"]
    assert session(v6lab.client, v6lab.spool.ip6, outside)["rcpt"] == [250]
    # Another IPv6 host: no relaying, but the spool's own mail is taken.
    assert session(v6lab.other, v6lab.spool.ip6, outside + [f"someone@{SPOOL}"])["rcpt"] == [
        553, 250]
    # The listed client over IPv4 is another address: no relaying either.
    assert session(v6lab.client, v6lab.spool.ip, outside)["rcpt"] == [553]
    # The relay rule is the address as tcpserver writes it, nothing wider.
    seen = _ipv6_utils().tcpserver_form(v6lab.client.ip6)
    assert v6lab.spool.read_file("/etc/tcp.smtp").splitlines()[-2:] == [
        f'{seen}:allow,RELAYCLIENT=""', ":allow"]


def test_second_apply_changes_nothing(v6lab):
    assert changed(v6lab.apply(target=SPOOL)) == {SPOOL: []}
    assert changed(v6lab.apply(target=SPOOL, test=True)) == {SPOOL: []}


def test_ipv6_off_listens_on_ipv4_only(v6lab):
    v6lab.master.set_pillar(v6lab.pillars(ipv6=False))
    ret = v6lab.apply(target=SPOOL)
    assert "qmail-service-smtpd-run-file-managed" in changed(ret)[SPOOL]
    wait_until(lambda: "0.0.0.0:25" in v6lab.spool.run(["ss", "-Hltn", "sport", "= :25"])
               .stdout.split(), 60, what="tcpserver on 0.0.0.0:25")
    with pytest.raises(ConnectionError):
        smtp.greeting(v6lab.spool.ip6, host=v6lab.client)
    assert smtp.greeting(v6lab.spool.ip, host=v6lab.client)[0] == 220
    assert changed(v6lab.apply(target=SPOOL)) == {SPOOL: []}


def test_clean_purges_the_package_and_puts_back_the_ucspi_tcp_it_displaced(v6lab):
    ret = v6lab.apply("qmail.service.clean", target=SPOOL)
    assert {"qmail-service-clean-ipv6-package-qmail_ledger-removed",
            f"qmail-service-clean-ipv6-displaced-{REPLACED}-qmail_ledger-restored"} <= set(
        changed(ret)[SPOOL])
    assert v6lab.spool.run(["dpkg", "-s", PACKAGE]).returncode != 0
    assert "Status: install ok installed" in v6lab.spool.run(["dpkg", "-s", REPLACED]).stdout
    # The host's own tcpserver again, as before the formula came.
    assert v6lab.spool.run(["dpkg", "-S", "/usr/bin/tcpserver"]).stdout.startswith(
        f"{REPLACED}:")
    entries = v6lab.call(SPOOL, "qmail_ledger.entries")
    assert PACKAGE not in entries["packages"] and entries["displaced"] == []
