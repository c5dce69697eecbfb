"""
An upgrade keeps the queue (issue 11, item 3): a client on the seed's
``qmail-1.03`` (or ``netqmail-1.06``) preset has 200 messages queued for a
spool that is down; its pillar switches it to notqmail 1.09; after the
apply (a new build installed under the running queue, qmail-send
restarted) and the spool's return, every message arrives exactly once
(counted by Message-ID in the spool's Maildir).

Three compiles per case: marked ``slow`` (``make test-all``).
"""

import uuid

import pytest

from lab.fleet import Fleet, changed
from lab.pytest_plugin import source_or_skip
from lab.wait import wait_until

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENT = "hostname.cla.kobe-u.ac.jp"
MAILDIR = "/home/someone/Maildir"
COUNT = 200


@pytest.mark.parametrize("preset", ["qmail-1.03", "netqmail-1.06"])
def test_preset_upgrade_to_notqmail_keeps_200_queued_messages(
        lab_master, lab_hosts, qmail_source, preset):
    old_source = {"preset": preset, **lab_master.put_source(source_or_skip(preset))}
    new_source = lab_master.put_source(qmail_source)

    def pillars(client_source):
        return {SPOOL: {"qmail": {"role": "spool", "source": new_source}},
                CLIENT: {"qmail": {"role": "client", "spool": SPOOL,
                                   "source": client_source}}}

    hosts = {h.fqdn: h for h in lab_hosts([SPOOL, CLIENT], pillars=pillars(old_source))}
    spool, client = hosts[SPOOL], hosts[CLIENT]
    fleet = Fleet(lab_master, hosts.values())
    lab_master.sync_formula([SPOOL, CLIENT])
    spool.add_mail_user("someone")
    fleet.apply(target=[SPOOL, CLIENT])
    assert preset in client.read_file("/var/qmail/.qmail-build.json")

    spool.run(["systemctl", "stop", "qmail-smtpd"], check=True)
    tag = f"up{uuid.uuid4().hex[:10]}"
    script = "".join(
        f"printf 'Message-ID: <{n}.{tag}@{CLIENT}>\\nSubject: {n}\\n\\nx\\n' | "
        f"/usr/sbin/sendmail someone@{SPOOL} || exit 1\n" for n in range(COUNT))
    proc = client.run(script, timeout=900)
    assert proc.returncode == 0, proc.stderr

    def queued():
        return fleet.call(CLIENT, "qmail_service.queue_status")["messages"]
    wait_until(lambda: queued() == COUNT, 120, what=f"{COUNT} messages queued on the client")
    pid = fleet.call(CLIENT, "qmail_service.send_pid")

    lab_master.set_pillar(pillars(new_source))
    ret = fleet.apply(target=[CLIENT])
    ids = changed(ret)[CLIENT]
    assert "qmail-build-tree-qmail_build-installed" in ids
    assert "notqmail-1.09" in client.read_file("/var/qmail/.qmail-build.json")
    new_pid = fleet.call(CLIENT, "qmail_service.send_pid")
    assert new_pid and new_pid != pid  # the new qmail-send runs
    assert queued() == COUNT  # nothing lost in the install

    spool.run(["systemctl", "start", "qmail-smtpd"], check=True)
    spool.wait_listening(25)
    fleet.call(CLIENT, "qmail_service.flush")

    def arrived():
        out = spool.run(f"grep -h -r -F '.{tag}@' {MAILDIR}/new").stdout
        return out.split("\n")[:-1]
    wait_until(lambda: len(arrived()) >= COUNT, 600, interval=2,
               what=f"{COUNT} messages on the spool")
    wait_until(lambda: queued() == 0, 120, what="client queue empty")
    got = arrived()
    assert len(got) == COUNT and len(set(got)) == COUNT, (len(got), len(set(got)))
    assert changed(fleet.apply(target=[CLIENT])) == {CLIENT: []}
