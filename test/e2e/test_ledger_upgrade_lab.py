"""
Issue 19 on a host converged by the previous release (1cf42ba, before the
ledger existed): the master serves that release's formula for the first
apply (``LabMaster.formula_from``), then the checkout's. The new apply
succeeds and writes the ledger from what the host proves is the formula's
(accounts, groups, the build workdir, the relay rules, the dummy MTA
package); a second apply changes nothing; ``qmail.clean`` with
``remove_install`` removes what the ledger lists and leaves the queue and
everything else as it was before the old release came.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from lab import config
from lab.disk import disk_listing
from lab.fleet import changed

pytestmark = pytest.mark.lab

FQDN = "upgrade.cla.kobe-u.ac.jp"
PREVIOUS = "1cf42ba"  # the last release without the ledger
LEDGER = "/var/lib/qmail-formula/ledger.json"
USERS = sorted(["alias", "qmaild", "qmaill", "qmailp", "qmailq", "qmailr", "qmails"])
# What an install and clean leave by design (as in test_trust_lab): the
# queue and qmail's own folders, the journal's folder, dpkg's and apt's
# bookkeeping of the dummy MTA package, useradd's backups.
KEPT = ["/var/qmail", "/var/lib/qmail-formula", "/var/lib/dpkg", "/var/cache/debconf",
        "/var/cache/apt/pkgcache.bin", "/var/cache/apt/srcpkgcache.bin",
        "/var/lib/apt/extended_states", "/var/lib/apt/lists/auxfiles",
        "/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-"]


def changes_of(before: dict, after: dict) -> dict:
    return {p: (before.get(p), after.get(p)) for p in before.keys() | after.keys()
            if before.get(p) != after.get(p)}


@pytest.fixture(scope="module")
def previous_formula(tmp_path_factory):
    """The previous release's formula parts, as ``git archive`` gives them."""
    tree = tmp_path_factory.mktemp("formula-" + PREVIOUS)
    archive = subprocess.run(["git", "-C", str(config.REPO_ROOT), "archive", PREVIOUS,
                              "qmail", "_modules", "_states", "_utils", "_beacons"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


@pytest.fixture(scope="module")
def old_host(lab_master, lab_hosts_module, qmail_source, previous_formula):
    """A spool converged by the previous release; its pristine listing."""
    pillar = {"qmail": {"role": "spool", "me": FQDN,
                        "source": lab_master.put_source(qmail_source),
                        "build": lab_master.prebuilt(qmail_source),
                        "relay_clients": ["10.213.0.0/16"]}}
    (host,) = lab_hosts_module([FQDN], image="base", pillars={FQDN: pillar})
    pristine = disk_listing(host, KEPT)
    with lab_master.formula_from(previous_formula):
        lab_master.salt(FQDN, "saltutil.sync_all")
        ret = lab_master.apply_ok(FQDN, "qmail", timeout=1800)[FQDN]
    build = next(v for v in ret.values() if v["__id__"] == "qmail-build-tree-qmail_build-installed")
    print(f"previous release installed qmail from: {build['changes'].get('from', 'a compile')}")
    assert not any("qmail_ledger" in key for key in ret), "the previous release has no ledger"
    assert host.exists("/var/qmail/bin/qmail-send") and host.exists("/etc/tcp.smtp.cdb")
    assert not host.exists(LEDGER)
    return host, pristine


def test_the_new_release_writes_the_ledger_of_an_old_host(lab_master, old_host):
    host, _ = old_host
    lab_master.salt(FQDN, "saltutil.sync_all")
    ret = lab_master.apply_ok(FQDN, "qmail", timeout=1800)[FQDN]
    recorded = sorted(v["__id__"] for v in ret.values() if v["changes"].get("recorded"))
    assert recorded, "nothing recorded"
    ledger = json.loads(host.read_file(LEDGER))
    assert ledger["users"] == USERS
    assert ledger["groups"] == ["nofiles", "qmail"]
    assert ledger["dirs"] == ["/var/cache/qmail-build"]
    assert ledger["files"] == ["/etc/tcp.smtp", "/etc/tcp.smtp.cdb"]
    assert ledger["packages"] == ["qmail-formula-mta"]
    # Adopting changes nothing else: no account, package or qmail tree
    # touched. What the new release itself brings, once: the beacon's
    # settings file, qmail-smtpd's run script (tcpserver told 0.0.0.0: IPv4
    # unless qmail:ipv6) and wrapper (no SMTPAUTH on port 25), so a restart.
    others = [i for i in changed({FQDN: ret})[FQDN] if "qmail_ledger-recorded" not in i]
    assert others == ["qmail-service-beacon-settings-file-serialize",
                      "qmail-service-smtpd-qmail_service-running",
                      "qmail-service-smtpd-run-file-managed",
                      "qmail-service-smtpd-wrapper-file-managed"], others


def test_a_second_apply_changes_nothing(lab_master, old_host):
    ret = lab_master.apply_ok(FQDN, "qmail", timeout=900)
    assert changed(ret) == {FQDN: []}


def test_clean_removes_what_the_ledger_lists_and_keeps_the_queue(lab_master, old_host):
    host, pristine = old_host
    pillar = {"qmail": {"clean": {"remove_install": True}}}
    ret = lab_master.salt(FQDN, "state.apply", "qmail.clean", pillar=pillar, timeout=900)
    failed = {k: v["comment"] for k, v in ret[FQDN].items() if v["result"] is False}
    assert failed == {}, failed
    for user in USERS:
        assert host.run(["getent", "passwd", user]).returncode == 2, user
    for gone in ("/var/cache/qmail-build", "/var/qmail/bin", "/etc/tcp.smtp",
                 "/etc/tcp.smtp.cdb", LEDGER):
        assert not host.exists(gone), gone
    assert host.exists("/var/qmail/queue")
    diff = changes_of(pristine, disk_listing(host, KEPT))
    assert diff == {}, json.dumps(diff, indent=1)[:4000]
