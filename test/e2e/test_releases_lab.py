"""
The whole mail path on Debian 13 (trixie, the current stable: gcc 14,
Python 3.13) and Debian 11 (bullseye: gcc 10, Python 3.9), as
test_mail.py proves it on Debian 12: a spool ``ccs.cla.kobe-u.ac.jp`` and
two clients, all from the release's ``sendmail`` image (its own Debian
sendmail installed and running), qmail built from the shared source on
each host through one master.

What a sysadmin would check: a message given to a client's
/usr/sbin/sendmail lands in the spool's Maildir; the spool refuses to
relay (553) for this machine, outside ``relay_clients``; a second apply
changes nothing; ``qmail.clean`` gives back the release's working
sendmail. Debian 11 runs in ``make test-all`` only (marker ``slow``).
"""

import uuid

import pytest

from lab import smtp
from lab.fleet import Fleet, changed
from lab.wait import wait_until

pytestmark = pytest.mark.lab

SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENT1 = "hostname.cla.kobe-u.ac.jp"
CLIENT2 = "client2.cla.kobe-u.ac.jp"
MAILDIR = "/home/someone/Maildir"
RELEASES = [pytest.param("13", id="debian13"),
            pytest.param("11", id="debian11", marks=pytest.mark.slow)]
#: What each release calls itself in /etc/os-release.
CODENAMES = {"11": "bullseye", "13": "trixie"}


@pytest.fixture(scope="module", params=RELEASES)
def fleet(request, lab_master, qmail_source):
    release = request.param
    hosts = lab_master.start_hosts([SPOOL, CLIENT1, CLIENT2], image="sendmail",
                                   release=release)
    try:
        fleet = Fleet(lab_master, hosts)
        fleet.release = release
        source = lab_master.put_source(qmail_source)
        relay = [f"{fleet.hosts[c].ip}/32" for c in (CLIENT1, CLIENT2)]
        # The spool compiles on this release; the clients install its tree
        # (README: Build once per fleet), as a user's fleet would.
        build = {"share": {"builder": SPOOL, "wait": 1800}}
        client = {"role": "client", "spool": SPOOL, "source": source, "build": build}
        lab_master.set_pillar({
            SPOOL: {"qmail": {"role": "spool", "source": source, "build": build,
                              "relay_clients": relay}},
            CLIENT1: {"qmail": client}, CLIENT2: {"qmail": client}})
        lab_master.sync_formula([SPOOL, CLIENT1, CLIENT2])
        fleet.sendmail_before = {
            fqdn: host.run("readlink -f /usr/sbin/sendmail").stdout.strip()
            for fqdn, host in fleet.hosts.items()}
        fleet.first_apply = fleet.apply()
        fleet.hosts[SPOOL].add_mail_user("someone")
        yield fleet
    finally:
        lab_master.remove_hosts(hosts)


def test_hosts_run_the_release_asked_for(fleet):
    for fqdn, host in fleet.hosts.items():
        os_release = host.read_file("/etc/os-release")
        assert f"VERSION_CODENAME={CODENAMES[fleet.release]}" in os_release, fqdn
        grains = fleet.call(fqdn, "grains.item", "osmajorrelease", "os_family")
        assert grains == {"osmajorrelease": int(fleet.release), "os_family": "Debian"}
        # Debian's own sendmail was there and running before the formula came.
        assert "sendmail" in fleet.sendmail_before[fqdn], fleet.sendmail_before


def test_first_apply_runs_qmail_and_only_the_spool_listens(fleet):
    assert set(fleet.first_apply) == {SPOOL, CLIENT1, CLIENT2}
    for fqdn, host in fleet.hosts.items():
        assert host.service_active("qmail-send"), fqdn
        assert host.run("readlink -f /usr/sbin/sendmail").stdout.strip() \
            == "/var/qmail/bin/sendmail", fqdn
        # Debian's sendmail daemon is gone, not only "stopped" by its script.
        assert not host.run(["pgrep", "-f", "^sendmail: MTA"]).stdout, fqdn
    assert 25 in fleet.hosts[SPOOL].listeners()
    for client in (CLIENT1, CLIENT2):
        assert not fleet.hosts[client].listeners().keys() & {25, 587}, client


def test_sendmail_on_a_client_delivers_into_the_spools_maildir(fleet):
    client, spool = fleet.hosts[CLIENT1], fleet.hosts[SPOOL]
    subject = f"debian{fleet.release} {uuid.uuid4().hex}"
    proc = client.run("/usr/sbin/sendmail someone", input=f"Subject: {subject}\n\nhi\n")
    assert proc.returncode == 0, proc.stderr
    (found,) = wait_until(lambda: spool.delivered(MAILDIR, subject), 60,
                          what="delivery to the spool")
    message = spool.read_file(found)
    assert "Delivered-To: someone@ccs.cla.kobe-u.ac.jp" in message
    assert f"(HELO {CLIENT1})" in message


def test_relay_refused_from_outside_relay_clients(fleet):
    spool_ip = fleet.hosts[SPOOL].ip
    assert smtp.rcpt(spool_ip, "someone@example.org") == 553
    assert smtp.rcpt(spool_ip, "someone@example.org", host=fleet.hosts[CLIENT2]) == 250


def test_second_apply_changes_nothing(fleet):
    assert changed(fleet.apply()) == {SPOOL: [], CLIENT1: [], CLIENT2: []}


def test_clean_gives_the_releases_sendmail_back(fleet):
    fleet.apply("qmail.clean")
    for fqdn, host in fleet.hosts.items():
        assert not host.run(["pgrep", "-x", "qmail-send"]).stdout, fqdn
        assert host.run("readlink -f /usr/sbin/sendmail").stdout.strip() \
            == fleet.sendmail_before[fqdn], fqdn
    spool = fleet.hosts[SPOOL]
    spool.wait_listening(25, 120)
    code, text = smtp.greeting("127.0.0.1", host=spool)
    assert code == 220 and "Sendmail" in text
    verify = spool.run(["/usr/sbin/sendmail", "-bv", "root"], check=True).stdout
    assert "deliverable" in verify
