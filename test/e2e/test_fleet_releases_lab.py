"""
A mixed fleet in one lab, as a site that upgrades machine by machine has it:
a Debian 13 spool (the fleet's builder) with a second Debian 13 client, a
Debian 12 client and a Debian 11 client, all from their release's
``sendmail`` image, one ``salt '*' state.apply qmail``.

What a sysadmin would check: mail from every client's /usr/sbin/sendmail
lands in the spool's Maildir; the builder's tree went only to the host of
its own release and architecture, and every other release compiled once
for itself; a second apply changes nothing. In ``make test-all`` only
(marker ``slow``): it boots the Debian 11 images and compiles three times.

This module runs its own master: sharing needs ``file_recv: True`` and the
``minionfs`` file server backend (as test_build_lab.py).
"""

from __future__ import annotations

import json
import pathlib
import uuid

import pytest

from lab.fleet import Fleet, changed
from lab.master import LabMaster
from lab.wait import wait_until

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SPOOL = "ccs.cla.kobe-u.ac.jp"
RELEASES = {SPOOL: "13", "trixie2.cla.kobe-u.ac.jp": "13",
            "bookworm.cla.kobe-u.ac.jp": "12", "bullseye.cla.kobe-u.ac.jp": "11"}
CLIENTS = [fqdn for fqdn in RELEASES if fqdn != SPOOL]
MAILDIR = "/home/someone/Maildir"
BUILD = "qmail-build-tree-qmail_build-installed"


@pytest.fixture(scope="module")
def fleet(lab, qmail_source):
    master = LabMaster(lab)
    extra = pathlib.Path(master.config_dir) / "master.d"
    extra.mkdir(exist_ok=True)
    (extra / "qmail-build-share.conf").write_text(
        "file_recv: true\nfileserver_backend: [roots, minionfs]\n")
    with master:
        hosts = master.start_hosts(list(RELEASES), image="sendmail", release=RELEASES,
                                   timeout=300)
        try:
            yield _applied(master, hosts, qmail_source)
        finally:
            # The worker's lab lives on: the next module there may name
            # the same hosts.
            master.remove_hosts(hosts)


def _applied(master, hosts, qmail_source):
    """The fleet with its pillar, synced and applied once."""
    fleet = Fleet(master, hosts)
    source = master.put_source(qmail_source)
    share = {"share": {"builder": SPOOL, "wait": 600}}
    relay = [f"{fleet.hosts[c].ip}/32" for c in CLIENTS]
    pillars = {SPOOL: {"qmail": {"role": "spool", "source": source, "build": share,
                                 "relay_clients": relay}}}
    for client in CLIENTS:
        pillars[client] = {"qmail": {"role": "client", "spool": SPOOL, "source": source,
                                     "build": share}}
    master.set_pillar(pillars)
    master.sync_formula(list(RELEASES))
    first = master.apply_ok(list(RELEASES), "qmail", timeout=1800)
    fleet.builds = {fqdn: next(v["changes"] for v in states.values()
                               if v["__id__"] == BUILD)
                    for fqdn, states in first.items()}
    fleet.hosts[SPOOL].add_mail_user("someone")
    return fleet


def test_every_host_runs_its_own_release(fleet):
    for fqdn, release in RELEASES.items():
        assert fleet.hosts[fqdn].release == release
        assert fleet.call(fqdn, "grains.get", "osmajorrelease") == int(release)


def _build_id(changes):
    return changes["installed"]["new"]["id"]


def test_one_compile_per_release_shared_only_within_a_release(fleet):
    builds = fleet.builds
    trixie2 = CLIENTS[0]
    assert builds[SPOOL]["compiled"] is True
    assert builds[SPOOL]["published"] == _build_id(builds[SPOOL])
    # The other Debian 13 host installs the builder's tree...
    assert builds[trixie2]["compiled"] is False
    assert builds[trixie2]["from"] == f"shared:{SPOOL}"
    assert _build_id(builds[trixie2]) == _build_id(builds[SPOOL])
    # ...the Debian 12 and 11 hosts compile for themselves, each its own build.
    for client in CLIENTS[1:]:
        assert builds[client]["compiled"] is True, client
        assert builds[client]["from"] == "compiled", client
    assert len({_build_id(b) for b in builds.values()}) == 3
    arch = {fleet.call(f, "grains.get", "osarch") for f in RELEASES}
    assert len(arch) == 1  # same architecture: the release alone tells them apart
    for fqdn, host in fleet.hosts.items():
        record = json.loads(host.read_file("/var/qmail/.qmail-build.json"))
        assert record["id"] == _build_id(builds[fqdn])
        host.run(["/var/qmail/bin/qmail-showctl"], check=True)


def test_mail_from_every_release_lands_in_the_spools_maildir(fleet):
    spool = fleet.hosts[SPOOL]
    subjects = {}
    for client in CLIENTS:
        subjects[client] = f"from Debian {RELEASES[client]} {uuid.uuid4().hex}"
        proc = fleet.hosts[client].run("/usr/sbin/sendmail someone",
                                       input=f"Subject: {subjects[client]}\n\nhi\n")
        assert proc.returncode == 0, (client, proc.stderr)
    for client, subject in subjects.items():
        (found,) = wait_until(lambda s=subject: spool.delivered(MAILDIR, s), 60,
                              what=f"mail from {client}")
        assert f"(HELO {client})" in spool.read_file(found)


def test_second_apply_changes_nothing(fleet):
    assert changed(fleet.apply(target=list(RELEASES))) == {f: [] for f in RELEASES}
