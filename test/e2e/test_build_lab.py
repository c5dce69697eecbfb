"""
Issue #5 on real hosts: qmail.users, qmail.build, qmail.aliases through a
real salt-master, with the notqmail tarball from $QMAIL_SOURCE served by the
master (``salt://qmail-src/...``).

A spool host checks the accounts, the installed tree against qmail's hier.c,
qmail-showctl, aliases and rc, a second apply that compiles nothing, and a
conf change that rebuilds without losing the queue or the control files.
Two fresh client hosts check that a wrong hash leaves no trace, then that a
fleet installs with one compile between them (builder + minionfs).

Sharing needs ``file_recv: True`` and the ``minionfs`` file server backend:
the suite's master has both (the lab's compiled trees are served that way).
"""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.lab

SPOOL = "bspool.cla.kobe-u.ac.jp"
CLIENT1 = "bclient1.cla.kobe-u.ac.jp"
CLIENT2 = "bclient2.cla.kobe-u.ac.jp"
SLS = "qmail.aliases"  # includes qmail.build, which includes qmail.users
BUILD = "qmail_build_|-qmail-build-tree-qmail_build-installed_|-/var/qmail_|-installed"
VERIFY = ("qmail_build_|-qmail-build-source-qmail_build-source_verified_|-/var/qmail_|-"
          "source_verified")
USERS = {  # INSTALL.ids: user -> (primary group, home)
    "alias": ("nofiles", "/var/qmail/alias"),
    "qmaild": ("nofiles", "/var/qmail"), "qmaill": ("nofiles", "/var/qmail"),
    "qmailp": ("nofiles", "/var/qmail"), "qmailq": ("qmail", "/var/qmail"),
    "qmailr": ("qmail", "/var/qmail"), "qmails": ("qmail", "/var/qmail"),
}
# What qmail's hier.c makes (split 23): path -> (owner, group, octal mode, type).
HIER = {
    "": ("root", "qmail", "755", "directory"),
    "bin/qmail-queue": ("qmailq", "qmail", "4711", "regular file"),
    "bin/qmail-lspawn": ("root", "qmail", "700", "regular file"),
    "bin/qmail-start": ("root", "qmail", "700", "regular file"),
    "bin/qmail-send": ("root", "qmail", "711", "regular file"),
    "bin/qmail-showctl": ("root", "qmail", "755", "regular file"),
    "control": ("root", "qmail", "755", "directory"),
    "alias": ("alias", "qmail", "2755", "directory"),
    "queue": ("qmailq", "qmail", "750", "directory"),
    "queue/pid": ("qmailq", "qmail", "700", "directory"),
    "queue/intd": ("qmailq", "qmail", "700", "directory"),
    "queue/todo": ("qmailq", "qmail", "750", "directory"),
    "queue/bounce": ("qmails", "qmail", "700", "directory"),
    "queue/mess/22": ("qmailq", "qmail", "750", "directory"),
    "queue/info/0": ("qmails", "qmail", "700", "directory"),
    "queue/local/5": ("qmails", "qmail", "700", "directory"),
    "queue/remote/17": ("qmails", "qmail", "700", "directory"),
    "queue/lock": ("qmailq", "qmail", "750", "directory"),
    "queue/lock/tcpto": ("qmailr", "qmail", "644", "regular file"),
    "queue/lock/sendmutex": ("qmails", "qmail", "600", "regular empty file"),
    "queue/lock/trigger": ("qmails", "qmail", "622", "fifo"),
}


@pytest.fixture(scope="module")
def pillar_for(lab_master, qmail_source):
    """Pillar factory: the tarball on the master's file server, plus ``extra``."""
    source = lab_master.put_source(qmail_source)

    def make(**extra):
        qmail = {"source": dict(source)}
        for key, value in extra.items():
            qmail[key] = value
        return {"qmail": qmail}
    return make


@pytest.fixture(scope="module")
def hosts(lab_master):
    started = []

    def start(fqdns, pillars):
        new = lab_master.start_hosts(fqdns, pillars=pillars)
        started.extend(new)
        lab_master.sync_formula(list(fqdns))
        return new
    yield start
    lab_master.remove_hosts(started)


def apply(master, minions, **kwargs):
    """state.apply SLS on ``minions``; {minion: {state key: result}} and seconds."""
    started = time.monotonic()
    ret = master.salt(list(minions), "state.apply", SLS, tgt_type="list", check=False,
                      **kwargs)
    seconds = time.monotonic() - started
    for minion in minions:
        assert isinstance(ret.get(minion), dict), f"{minion}: {ret.get(minion)!r}"
    return ret, seconds


def failures(results):
    return {k: r["comment"] for k, r in results.items() if r["result"] is not True}


def stat_of(host, path):
    out = host.run(["stat", "-c", "%U %G %a %F", path], check=True).stdout.split(" ", 3)
    return out[0], out[1], out[2], out[3].strip()


@pytest.fixture(scope="module")
def spool(lab_master, hosts, pillar_for):
    (host,) = hosts([SPOOL], {SPOOL: pillar_for()})
    ret, seconds = apply(lab_master, [SPOOL])
    return {"host": host, "first": ret[SPOOL], "seconds": seconds}


def test_first_apply_compiles_and_installs(spool):
    results = spool["first"]
    assert not failures(results), json.dumps(failures(results), indent=1)
    build = results[BUILD]["changes"]
    assert build["compiled"] is True and build["from"] == "compiled"
    assert build["installed"]["old"] is None
    assert build["installed"]["new"]["preset"] == "notqmail-1.09"


def test_accounts_as_install_ids(spool):
    host = spool["host"]
    for user, (group, home) in USERS.items():
        name, _, _uid, gid, _, got_home, shell = host.run(
            ["getent", "passwd", user], check=True).stdout.strip().split(":")
        got_group = host.run(["getent", "group", gid], check=True).stdout.split(":")[0]
        assert (got_group, got_home, shell) == (group, home, "/usr/sbin/nologin"), name
    for group in ("qmail", "nofiles"):
        host.run(["getent", "group", group], check=True)


def test_installed_tree_as_hier_c_makes_it(spool):
    host = spool["host"]
    got = {rel: stat_of(host, f"/var/qmail/{rel}".rstrip("/")) for rel in HIER}
    assert got == HIER
    check = host.run("cd /var/cache/qmail-build && grep -c 'instcheck: warning' build.log")
    assert check.stdout.strip() == "0"


def test_qmail_showctl_runs(spool):
    out = spool["host"].run(["/var/qmail/bin/qmail-showctl"], check=True).stdout
    assert "qmail home directory: /var/qmail." in out
    assert "subdirectory split: 23." in out


def test_aliases_and_rc(spool):
    host = spool["host"]
    for name in ("root", "postmaster", "mailer-daemon"):
        path = f"/var/qmail/alias/.qmail-{name}"
        assert host.read_file(path) == "./Maildir/\n"
        assert stat_of(host, path)[2] == "644"
    for sub in ("", "/cur", "/new", "/tmp"):
        assert stat_of(host, f"/var/qmail/alias/Maildir{sub}")[:3] == ("alias", "nofiles", "700")
    assert stat_of(host, "/var/qmail/rc")[:3] == ("root", "root", "755")
    rc = host.read_file("/var/qmail/rc")
    assert "qmail-start ./Maildir/ splogger qmail" in rc
    host.run(["sh", "-n", "/var/qmail/rc"], check=True)


def test_second_apply_compiles_nothing(lab_master, spool):
    host = spool["host"]
    marker = "/run/qmail-build-second-apply"
    host.run(["touch", marker], check=True)
    ret, _ = apply(lab_master, [SPOOL])
    results = ret[SPOOL]
    assert not failures(results)
    assert {k: r["changes"] for k, r in results.items() if r["changes"]} == {}
    assert "is installed in /var/qmail" in results[BUILD]["comment"]
    # Deciding took a record lookup, not a compile: nothing of the build
    # tree, its log or the installed programs was written during the apply
    # (an event on disk, not a share of the first apply's time).
    newer = host.run(["find", "/var/cache/qmail-build", "/var/qmail/bin", "-newer", marker],
                     check=True).stdout.split()
    assert newer == []


def test_conf_change_rebuilds_keeping_queue_and_control(lab_master, spool, pillar_for):
    host = spool["host"]
    host.run("echo ccs.cla.kobe-u.ac.jp > /var/qmail/control/me", check=True)
    host.run("printf 'To: someone@example.org\\nSubject: wait\\n\\nqueued\\n' | "
             "/var/qmail/bin/qmail-inject", check=True)  # qmail-send is not running
    queued = host.run("cd /var/qmail/queue && find mess info remote -type f | sort",
                      check=True).stdout
    assert queued.count("mess/") == 1
    trigger = host.run(["stat", "-c", "%i", "/var/qmail/queue/lock/trigger"]).stdout
    lab_master.set_pillar({SPOOL: pillar_for(build={"conf": {"spawn": 100}})})
    ret, _ = apply(lab_master, [SPOOL])
    results = ret[SPOOL]
    assert not failures(results), failures(results)
    build = results[BUILD]["changes"]
    assert build["compiled"] is True
    assert build["installed"]["old"]["conf"]["conf-spawn"] == "120"
    assert build["installed"]["new"]["conf"]["conf-spawn"] == "100"
    assert host.run("cd /var/qmail/queue && find mess info remote -type f | sort").stdout == queued
    assert host.read_file("/var/qmail/control/me") == "ccs.cla.kobe-u.ac.jp\n"
    assert host.run(["stat", "-c", "%i", "/var/qmail/queue/lock/trigger"]).stdout == trigger
    out = host.run(["/var/qmail/bin/qmail-showctl"], check=True).stdout
    assert "silent concurrency limit: 100." in out


def test_clean_removes_the_tree_only_when_asked_and_never_the_queue(lab_master, spool,
                                                                     pillar_for):
    host = spool["host"]
    queued = host.run("cd /var/qmail/queue && find mess info remote -type f | sort",
                      check=True).stdout
    assert queued
    sls = "qmail.aliases.clean,qmail.build.clean,qmail.users.clean"
    ret = lab_master.salt(SPOOL, "state.apply", sls)[SPOOL]
    assert not failures(ret), failures(ret)
    assert not host.exists("/var/qmail/alias/.qmail-root")  # the formula's alias files go
    for kept in ("/var/qmail/bin/qmail-queue", "/var/qmail/rc", "/var/qmail/alias/Maildir"):
        assert host.exists(kept), kept
    host.run(["getent", "passwd", "qmailq"], check=True)
    lab_master.set_pillar({SPOOL: pillar_for(clean={"remove_install": True})})
    ret = lab_master.salt(SPOOL, "state.apply", sls)[SPOOL]
    assert not failures(ret), failures(ret)
    for gone in ("bin", "boot", "doc", "man", "rc", ".qmail-build.json"):
        assert not host.exists(f"/var/qmail/{gone}"), gone
    assert not host.exists("/var/cache/qmail-build")
    assert host.run(["getent", "passwd", "qmailq"]).returncode == 2
    # The mail stays: the queue, the control files, the alias Maildir.
    assert host.run("cd /var/qmail/queue && find mess info remote -type f | sort").stdout == queued
    assert host.read_file("/var/qmail/control/me") == "ccs.cla.kobe-u.ac.jp\n"
    assert host.exists("/var/qmail/alias/Maildir/new")


@pytest.fixture(scope="module")
def clients(hosts, pillar_for):
    shared = pillar_for(build={"share": {"builder": CLIENT1, "wait": 300}})
    return hosts([CLIENT1, CLIENT2], {CLIENT1: shared, CLIENT2: shared})


def test_wrong_hash_fails_and_leaves_no_trace(lab_master, clients, pillar_for):
    client1 = clients[0]
    bad = pillar_for(build={"share": {"builder": CLIENT1, "wait": 300}})
    bad["qmail"]["source"]["hash"] = "sha256=" + "0" * 64
    lab_master.set_pillar({CLIENT1: bad})
    ret, _ = apply(lab_master, [CLIENT1])
    results = ret[CLIENT1]
    assert results[VERIFY]["result"] is False
    assert results[VERIFY]["comment"].startswith("qmail:source:hash:")
    assert results[BUILD]["result"] is False
    assert {k: r["changes"] for k, r in results.items() if r["changes"]} == {}
    for path in ("/var/qmail", "/var/cache/qmail-build",
                 "/var/cache/salt/minion/files/base/qmail-src"):
        assert not client1.exists(path), path
    assert client1.run(["getent", "passwd", "qmailq"]).returncode == 2
    assert client1.run(["getent", "group", "nofiles"]).returncode == 2


def test_test_mode_on_a_fresh_host_changes_nothing(lab_master, clients):
    client2 = clients[1]
    ret = lab_master.salt([CLIENT2], "state.apply", SLS, tgt_type="list", test=True,
                            check=False)[CLIENT2]
    assert {k: r["comment"] for k, r in ret.items() if r["result"] is False} == {}
    assert ret[BUILD]["result"] is None
    assert ret[BUILD]["changes"]["installed"]["old"] is None
    assert ret[VERIFY]["result"] is True  # the hash is checked in a dry run too
    for path in ("/var/qmail", "/var/cache/qmail-build"):
        assert not client2.exists(path), path
    assert client2.run(["getent", "passwd", "qmailq"]).returncode == 2


def test_fleet_of_two_installs_with_one_compile(lab_master, clients, pillar_for):
    client1, client2 = clients
    # Other account ids on the second host: the shared tree maps owners by name.
    client2.run(["useradd", "--system", "--no-create-home", "unrelated"], check=True)
    shared = pillar_for(build={"share": {"builder": CLIENT1, "wait": 300}})
    lab_master.set_pillar({CLIENT1: shared, CLIENT2: shared})
    ret, _ = apply(lab_master, [CLIENT1, CLIENT2])
    for minion in (CLIENT1, CLIENT2):
        assert not failures(ret[minion]), (minion, failures(ret[minion]))
    built, installed = ret[CLIENT1][BUILD]["changes"], ret[CLIENT2][BUILD]["changes"]
    assert built["compiled"] is True and built["published"]
    assert installed["compiled"] is False and installed["from"] == f"shared:{CLIENT1}"
    assert not client2.exists("/var/cache/qmail-build/build.log")  # never compiled
    uid = {h.fqdn: h.run(["id", "-u", "qmailq"], check=True).stdout for h in clients}
    assert uid[CLIENT1] != uid[CLIENT2]
    for host in clients:  # compiled, and installed from the shared tree: the same
        got = {rel: stat_of(host, f"/var/qmail/{rel}".rstrip("/")) for rel in HIER}
        assert got == HIER, host.fqdn
        host.run(["/var/qmail/bin/qmail-showctl"], check=True)
    record = json.loads(client2.read_file("/var/qmail/.qmail-build.json"))
    assert record["installed_from"] == f"shared:{CLIENT1}"
    again, _ = apply(lab_master, [CLIENT1, CLIENT2])
    for minion in (CLIENT1, CLIENT2):
        assert {k: r["changes"] for k, r in again[minion].items() if r["changes"]} == {}
