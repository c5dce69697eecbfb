"""
The qmail_queue beacon and the README's reactor on real hosts through the
master: a spool and two clients, each with the beacon in its pillar, qmail
built from the real source.

What a sysadmin watching ``salt-run state.event`` would see: the spool's
SMTP service stops (``smtp_down``); clients queue mail and each says
``backlog`` with its count; the spool comes back (``up``), the master's
reactor (``qmail/files/reactor/flush-clients.sls``) runs
``qmail_service.flush`` on the clients, their queues drain long before
qmail-send's own next retry (400 s after the first attempt), each says
``drained``, and every message is in the spool's Maildir once.
"""

import json
import uuid

import pytest

from lab.fleet import Fleet
from lab.wait import wait_until

pytestmark = pytest.mark.lab

SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENTS = ["hostname.cla.kobe-u.ac.jp", "client2.cla.kobe-u.ac.jp"]
MAILDIR = "/home/someone/Maildir"
PER_CLIENT = 3
BACKLOG_OVER = 2
BEACON_SETTINGS = "/var/lib/qmail-formula/beacon.json"


@pytest.fixture(scope="module")
def fleet(lab_master, lab_hosts_module, qmail_source):
    hosts = lab_hosts_module([SPOOL, *CLIENTS], image="base")
    fleet = Fleet(lab_master, hosts)
    source = lab_master.put_source(qmail_source)
    build = lab_master.prebuilt(qmail_source)  # not the subject here: compiled once
    relay = [f"{fleet.hosts[c].ip}/32" for c in CLIENTS]
    beacon = [{"settings": BEACON_SETTINGS}, {"messages": BACKLOG_OVER}, {"age": 3600},
              {"interval": 1}]
    # The spool leaves qmail:role out (spool is the default): its events must
    # still say spool, from the file the formula wrote, not None from a
    # pillar lookup.
    pillars = {SPOOL: {"qmail": {"source": source, "build": build,
                                 "relay_clients": relay},
                       "beacons": {"qmail_queue": [*beacon, {"smtp": True}]}}}
    for client in CLIENTS:
        pillars[client] = {"qmail": {"role": "client", "spool": SPOOL, "source": source,
                                     "build": build},
                           "beacons": {"qmail_queue": beacon}}
    fleet.converge(pillars, mail_users={SPOOL: "someone"})
    # The minions take their beacons from the pillar they hold: refreshed
    # now, as a user's ``saltutil.refresh_pillar`` after the change would.
    lab_master.refresh_pillars()
    return fleet


def test_the_formula_writes_what_the_beacon_reads(fleet):
    """The settings file: the merged role (the spool's is the default), the
    home, and qmail-smtpd's port on the spool only."""
    spool = json.loads(fleet.hosts[SPOOL].read_file(BEACON_SETTINGS))
    assert spool == {"home": "/var/qmail", "role": "spool", "smtpd_port": 25}
    for client in CLIENTS:
        host = json.loads(fleet.hosts[client].read_file(BEACON_SETTINGS))
        assert host == {"home": "/var/qmail", "role": "client", "smtpd_port": None}


def test_events_from_outage_to_recovery_and_the_reactor_flushes(fleet, lab_master):
    spool = fleet.hosts[SPOOL]
    tag = uuid.uuid4().hex
    with lab_master.watch_events(r"salt/beacon/.*/qmail_queue/.*") as watch:
        spool.run(["systemctl", "stop", "qmail-smtpd"], check=True)
        (down,) = wait_until(lambda: watch.matching("smtp_down", SPOOL), 60,
                             what="the spool's smtp_down event")
        assert down["role"] == "spool"  # the default role, not None

        for client in CLIENTS:
            for n in range(PER_CLIENT):
                proc = fleet.hosts[client].run(["/usr/sbin/sendmail", f"someone@{SPOOL}"],
                                               input=f"Subject: {tag} {client} {n}\n\nx\n")
                assert proc.returncode == 0, proc.stderr
        for client in CLIENTS:
            (backlog,) = wait_until(lambda c=client: watch.matching("backlog", c), 60,
                                    what=f"{client}'s backlog event")
            assert backlog["messages"] == PER_CLIENT
            assert backlog["state"] == "backlog" and backlog["role"] == "client"
        assert not watch.matching("drained")

        spool.run(["systemctl", "start", "qmail-smtpd"], check=True)
        (up,) = wait_until(lambda: watch.matching("up", SPOOL), 60, what="the spool's up event")
        # The default role, reported as such (not None: no qmail:role in pillar).
        assert up["role"] == "spool" and up["smtp"] is True
        # qmail-send would wait 400 s before its second try: only the
        # reactor's flush gets the mail out within this minute.
        for client in CLIENTS:
            (drained,) = wait_until(lambda c=client: watch.matching("drained", c), 60,
                                    what=f"{client}'s drained event")
            # "drained": back within the limit, sampled once a second while
            # qmail-send delivers (it may still hold one or two then).
            assert drained["messages"] <= BACKLOG_OVER and drained["state"] == "ok"
    for client in CLIENTS:
        wait_until(fleet.hosts[client].qmail_queue_empty, 60, what=f"{client}'s queue empty")

    def arrived():
        return int(spool.run(f"grep -l -r -F 'Subject: {tag} ' {MAILDIR}/new | wc -l").stdout)
    assert wait_until(lambda: arrived() == 2 * PER_CLIENT, 30, what="all messages in the Maildir")
    subjects = spool.run(f"grep -h -r -F 'Subject: {tag} ' {MAILDIR}/new | sort -u | wc -l")
    assert int(subjects.stdout) == 2 * PER_CLIENT  # none twice
