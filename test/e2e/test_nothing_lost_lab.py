"""
Nothing lost, whatever happens (issue 11), on real hosts through the master:
a spool ``ccs.cla.kobe-u.ac.jp`` and two clients, all legacy hosts running
Debian's sendmail, qmail built from the real source on each.

What a sysadmin would check, counting messages by Message-ID in the spool's
Maildir (every one there, none twice):

- messages stuck in sendmail's queues (the MTA's ``/var/spool/mqueue`` and
  the submission program's ``/var/spool/mqueue-client``) when qmail takes
  over are handed to qmail with their envelope and all arrive; ``test=True``
  says how many would be handed over first;
- mail flowing from two clients while control changes HUP and restart
  qmail-send and a full re-apply runs: all of it arrives once (300 messages
  here; 1,000 under the ``slow`` marker);
- mail queued on a client survives its reboot and leaves after it;
- a control write on a full file system fails with a clear message and the
  old file stays as it was.

The tests share one mail system and run in this file's order.
"""

import concurrent.futures
import re
import shlex
import subprocess
import threading
import uuid

import pytest

from lab.fleet import Fleet, changed
from lab.wait import wait_until

pytestmark = pytest.mark.lab

SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENT1 = "hostname.cla.kobe-u.ac.jp"
CLIENT2 = "client2.cla.kobe-u.ac.jp"
CLIENTS = (CLIENT1, CLIENT2)
MAILDIR = "/home/someone/Maildir"
MQUEUES = ("/var/spool/mqueue", "/var/spool/mqueue-client")


class MailFleet(Fleet):
    def __init__(self, master, hosts, source, build):
        super().__init__(master, hosts)
        self.spool = self.hosts[SPOOL]
        self.source = source
        self.build = build  # lab.buildcache: the tree compiled once
        self.control = {SPOOL: {}, CLIENT1: {}, CLIENT2: {}}
        self.churn_rounds = 0  # over the module: each round's values are new

    def pillars(self):
        relay = [f"{self.hosts[c].ip}/32" for c in CLIENTS]
        out = {SPOOL: {"role": "spool", "source": self.source, "build": self.build,
                       "relay_clients": relay}}
        for fqdn in CLIENTS:
            out[fqdn] = {"role": "client", "spool": SPOOL, "source": self.source,
                         "build": self.build}
        for fqdn, control in self.control.items():
            if control:
                out[fqdn]["control"] = dict(control)
        return {fqdn: {"qmail": data} for fqdn, data in out.items()}

    def set_control(self, fqdn, **control):
        self.control[fqdn].update(control)
        self.master.set_pillar(self.pillars())

    def queue_count(self, fqdn):
        return self.call(fqdn, "qmail_service.queue_status")["messages"]

    def queue_empty(self, fqdn):
        """Nothing left to deliver on ``fqdn``: neither in qmail's queue nor
        in sendmail's (qmail.clean gives it back)."""
        status = self.call(fqdn, "qmail_service.queue_status")
        sendmail = self.hosts[fqdn].run("ls /var/spool/mqueue /var/spool/mqueue-client"
                                        " 2>/dev/null | grep -c '^qf'").stdout.strip()
        return sendmail == "0" and (not isinstance(status, dict) or (
            status["messages"] == 0 and status["unprocessed"] == 0))

    def message_ids(self, tag):
        """Message-IDs containing ``tag`` in the spool's Maildir, one per message."""
        out = self.spool.run(f"grep -h -r -i -F 'Message-ID: <' {MAILDIR}/new {MAILDIR}/cur"
                             f" | grep -F {shlex.quote(tag)}").stdout
        return [line.split(":", 1)[1].strip() for line in out.splitlines()]

    def wait_all(self, tag, count, timeout):
        """Wait until ``count`` messages of ``tag`` arrived; return their IDs."""
        wait_until(lambda: len(self.message_ids(tag)) >= count, timeout, interval=2,
                   what=f"{count} messages tagged {tag} on the spool")
        # With every queue empty nothing more can arrive: then count.
        wait_until(lambda: all(self.queue_empty(fqdn) for fqdn in self.hosts), 120,
                   interval=2, what="every queue empty")
        return self.message_ids(tag)


# One message per id read from stdin (the ids go as data: 500 of them in one
# command line would pass the kernel's limit on one argument).
SUBMIT = ('while read -r i; do printf "Message-ID: <%s>\\nSubject: %s %s\\n\\nbody %s\\n" '
          '"$i" "$3" "$i" "$i" | /usr/sbin/sendmail -f "$1" "$2" || exit 1; done')


def submit(host, sender, ids, tag):
    """Give each id's message to the host's /usr/sbin/sendmail."""
    proc = host.run(["sh", "-c", SUBMIT, "submit", sender, f"someone@{SPOOL}", tag],
                    input="".join(f"{i}\n" for i in ids), timeout=900)
    assert proc.returncode == 0, proc.stderr


def stop_sendmail(host):
    """Stop Debian's sendmail for real (its init script leaves sendmail-mta)."""
    host.run("systemctl stop sendmail; pkill -x sendmail-mta; pkill -x sendmail-msp; true")
    wait_until(lambda: not host.run(["pgrep", "-f", "^sendmail: "]).stdout, 30,
               what=f"sendmail stopped on {host.fqdn}")


def qf_files(host):
    return host.run(f"ls {' '.join(MQUEUES)} | grep '^qf'").stdout.split()


@pytest.fixture(scope="module")
def fleet(lab_master, lab_hosts_module, qmail_source):
    hosts = lab_hosts_module([SPOOL, CLIENT1, CLIENT2], image="sendmail")
    the_lab = MailFleet(lab_master, hosts, lab_master.put_source(qmail_source),
                   lab_master.prebuilt(qmail_source))
    lab_master.set_pillar(the_lab.pillars())
    lab_master.sync_formula([h.fqdn for h in hosts])
    the_lab.spool.add_mail_user("someone")
    return the_lab


def test_messages_in_sendmails_queue_are_handed_over_and_arrive_once(fleet):
    """Item 1: 20 messages stuck in sendmail's two queues of a legacy client."""
    client = fleet.hosts[CLIENT1]
    tag = f"mq{uuid.uuid4().hex[:10]}"
    # The spool refuses connections: the client's sendmail must keep its mail.
    stop_sendmail(fleet.spool)
    client.run(["systemctl", "start", "sendmail"], check=True)
    client.wait_listening(25, 120)
    submit(client, f"alice@{CLIENT1}", [f"{n}.{tag}@{CLIENT1}" for n in range(10)], tag)
    wait_until(lambda: client.run("ls /var/spool/mqueue | grep -c ^qf").stdout.strip() == "10",
               60, what="10 messages in sendmail's MTA queue")
    # The MTA down: the submission program queues in mqueue-client.
    stop_sendmail(client)
    submit(client, f"bob@{CLIENT1}", [f"{n}.{tag}@{CLIENT1}" for n in range(10, 20)], tag)
    queued = client.run("ls /var/spool/mqueue | grep -c ^qf; "
                        "ls /var/spool/mqueue-client | grep -c ^qf").stdout.split()
    assert queued == ["10", "10"]
    before = client.run(f"ls -l {' '.join(MQUEUES)}").stdout

    predicted = fleet.apply(target=[CLIENT1], test=True)[CLIENT1]
    state = next(v for v in predicted.values()
                 if v["__id__"] == "qmail-sendmail-queue-qmail_mqueue-handed_over")
    assert state["result"] is None and state["changes"]["handed_over"] == 20
    assert "20 message(s) would be handed over to qmail" in state["comment"]
    assert client.run(f"ls -l {' '.join(MQUEUES)}").stdout == before

    ret = fleet.apply()
    state = next(v for v in ret[CLIENT1].values()
                 if v["__id__"] == "qmail-sendmail-queue-qmail_mqueue-handed_over")
    assert state["changes"]["handed_over"] == 20, state
    assert qf_files(client) == []
    status = fleet.call(CLIENT1, "qmail_sendmail.status")["queues"]
    assert {q: (v["messages"], v["claimed"], v["kept"]) for q, v in status.items()} == {
        q: (0, 0, []) for q in MQUEUES}

    # The spool may have come up after the client's first try: retry now.
    fleet.call(CLIENT1, "qmail_service.flush")
    ids = fleet.wait_all(tag, 20, 300)
    assert sorted(ids) == sorted(f"<{n}.{tag}@{CLIENT1}>" for n in range(20))
    # With its envelope: the sender qmail delivered for is sendmail's.
    first = fleet.spool.run(f"grep -l -r -F '<0.{tag}@' {MAILDIR}/new", check=True).stdout.split()
    assert f"Return-Path: <alice@{CLIENT1}>" in fleet.spool.read_file(first[0])
    last = fleet.spool.run(f"grep -l -r -F '<19.{tag}@' {MAILDIR}/new", check=True).stdout.split()
    assert f"Return-Path: <bob@{CLIENT1}>" in fleet.spool.read_file(last[0])
    # The second apply has nothing left to hand over.
    assert changed(fleet.apply()) == {SPOOL: [], CLIENT1: [], CLIENT2: []}


def _churn(fleet, stop, log):
    """HUPs, restarts and full re-applies until ``stop`` is set. The round
    count is the fleet's: a value left by an earlier test's round would
    change nothing (no HUP, no restart)."""
    while not stop.is_set():
        fleet.churn_rounds += 1
        round_ = fleet.churn_rounds
        # locals: HUP on the spool (same PID).
        names = ["localhost.cla.kobe-u.ac.jp", SPOOL, f"alias{round_}.cla.kobe-u.ac.jp"]
        fleet.set_control(SPOOL, locals=names)
        log.append(("hup", changed(fleet.apply(target=[SPOOL]))[SPOOL]))
        # concurrencyremote: a restart of qmail-send on both clients.
        for fqdn in CLIENTS:
            fleet.set_control(fqdn, concurrencyremote=20 + round_)
        log.append(("restart", changed(fleet.apply(target=list(CLIENTS)))))
        # concurrencylocal on the spool: a restart while it delivers.
        fleet.set_control(SPOOL, concurrencylocal=10 + round_)
        log.append(("full", changed(fleet.apply())))


@pytest.mark.parametrize("total", [
    300, pytest.param(1000, marks=pytest.mark.slow)])
def test_restarts_and_reapplies_under_load_lose_and_duplicate_nothing(fleet, total):
    """Item 4: two clients send while qmail-send is HUPed and restarted."""
    tag = f"load{total}x{uuid.uuid4().hex[:8]}"
    per_client = total // 2
    stop, log = threading.Event(), []
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        churn = pool.submit(_churn, fleet, stop, log)
        sends = [pool.submit(submit, fleet.hosts[c], f"load@{c}",
                             [f"{n}.{tag}@{c}" for n in range(per_client)], tag)
                 for c in CLIENTS]
        try:
            for future in sends:
                future.result()
        finally:  # a failed send must not leave the churn running forever
            stop.set()
        churn.result()
    kinds = [kind for kind, _ in log]
    print(f"churn during {total} messages: {kinds}")
    assert {"hup", "restart", "full"} <= set(kinds)
    assert any("qmail-service-send-hup-qmail_service-send_reloaded" in ids
               for kind, ids in log if kind == "hup")
    assert any("qmail-service-send-qmail_service-running" in ids
               for kind, by_host in log if kind == "restart" for ids in by_host.values())
    ids = fleet.wait_all(tag, total, 900)
    assert len(ids) == total, f"{len(ids)} delivered, {len(set(ids))} distinct"
    assert len(set(ids)) == total  # none twice
    for fqdn in (*CLIENTS, SPOOL):
        wait_until(lambda f=fqdn: fleet.queue_count(f) == 0, 120, what=f"{fqdn} queue empty")


def test_mail_queued_on_a_client_survives_its_reboot(fleet):
    """Item 5: 50 messages wait on a client for a spool that is down; the
    client reboots; they all leave once the spool is back."""
    client = fleet.hosts[CLIENT2]
    tag = f"boot{uuid.uuid4().hex[:10]}"
    fleet.spool.run(["systemctl", "stop", "qmail-smtpd"], check=True)
    submit(client, f"carol@{CLIENT2}", [f"{n}.{tag}@{CLIENT2}" for n in range(50)], tag)
    wait_until(lambda: fleet.queue_count(CLIENT2) == 50, 60, what="50 messages queued")
    fleet.master.restart_host(client)
    assert client.service_active("qmail-send")
    assert fleet.queue_count(CLIENT2) == 50
    fleet.spool.run(["systemctl", "start", "qmail-smtpd"], check=True)
    fleet.spool.wait_listening(25)
    fleet.call(CLIENT2, "qmail_service.flush")
    ids = fleet.wait_all(tag, 50, 300)
    assert sorted(ids) == sorted(f"<{n}.{tag}@{CLIENT2}>" for n in range(50))
    wait_until(lambda: fleet.queue_count(CLIENT2) == 0, 60, what="client queue empty")


def _in_host_namespace(host, command):
    """Run ``command`` in the host's mount namespace as this machine's root
    (a lab host's own root may not mount file systems)."""
    pid = host.podman("inspect", "--format", "{{.State.Pid}}", host.name).stdout.strip()
    return subprocess.run(["nsenter", "-t", pid, "-m", "--", "sh", "-c", command],
                          capture_output=True, text=True, check=True)


def test_control_write_on_a_full_file_system_keeps_the_old_file(fleet):
    """Item 5: control/ on a small file system that is full."""
    client = fleet.hosts[CLIENT1]
    control = "/var/qmail/control"
    fleet.set_control(CLIENT1, timeoutremote=900)
    fleet.apply(target=[CLIENT1])
    old = client.read_file(f"{control}/timeoutremote")
    assert old == "900\n"
    _in_host_namespace(client, (
        f"cp -a {control} /root/control.copy && "
        f"mount -t tmpfs -o size=128k,mode=0755 qmail-full {control} && "
        f"cp -a /root/control.copy/. {control}/ && "
        f"(dd if=/dev/zero of={control}/.filler bs=1k 2>/dev/null || true)"))
    fleet.set_control(CLIENT1, timeoutremote=1200)
    ret = fleet.master.salt(CLIENT1, "state.apply", "qmail")[CLIENT1]
    failed = {v["__id__"]: v["comment"] for v in ret.values() if v["result"] is False}
    comment = failed.get("qmail-control-file-managed-timeoutremote", "")
    assert re.search(
        rf"cannot write {control}/timeoutremote: No space left on device; "
        "the file keeps its old content", comment), ret
    assert client.read_file(f"{control}/timeoutremote") == old
    assert not client.run(f"ls -a {control} | grep '\\.tmp'").stdout  # no half file left
    # Room again: the next apply writes it.
    client.run(["rm", f"{control}/.filler"], check=True)
    fleet.apply(target=[CLIENT1])
    assert client.read_file(f"{control}/timeoutremote") == "1200\n"


def test_clean_gives_what_qmail_still_holds_to_sendmail(fleet):
    """Item 1, ``qmail.clean`` loses none either: 10 messages wait in a
    client's qmail queue for a spool that is down; after clean the restored
    sendmail has them and delivers them once the spool is back."""
    client = fleet.hosts[CLIENT2]
    tag = f"back{uuid.uuid4().hex[:10]}"
    fleet.spool.run(["systemctl", "stop", "qmail-smtpd"], check=True)
    submit(client, f"dan@{CLIENT2}", [f"{n}.{tag}@{CLIENT2}" for n in range(10)], tag)
    wait_until(lambda: fleet.queue_count(CLIENT2) == 10, 60, what="10 messages queued")

    ret = fleet.apply("qmail.clean", target=[CLIENT2])[CLIENT2]
    state = next(v for v in ret.values()
                 if v["__id__"] == "qmail-sendmail-clean-queue-qmail_mqueue-handed_back")
    assert state["changes"] == {"handed_back": 10}, state
    assert not client.run("find /var/qmail/queue/mess -type f").stdout  # none left behind
    client.wait_listening(25, 120)

    fleet.spool.run(["systemctl", "start", "qmail-smtpd"], check=True)
    fleet.spool.wait_listening(25)
    client.run("/usr/sbin/sendmail -q; /usr/sbin/sendmail -Ac -q", check=True)
    ids = fleet.wait_all(tag, 10, 300)
    assert sorted(ids) == sorted(f"<{n}.{tag}@{CLIENT2}>" for n in range(10))
    # The envelope sender came along.
    path = fleet.spool.run(f"grep -l -r -F '<0.{tag}@' {MAILDIR}/new",
                           check=True).stdout.split()[0]
    assert f"Return-Path: <dan@{CLIENT2}>" in fleet.spool.read_file(path)
