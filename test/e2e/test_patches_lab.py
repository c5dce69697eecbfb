"""
Issue 22, item 1 on real hosts: ``qmail:source:patches`` with notqmail's
SMTP AUTH patch (``../shared/sources/patches``, served by the master like
the source tarball) and a patch made here that conflicts with it.

Three Debian 12 hosts and two compiles in all. ``pother`` is refused a
wrong patch hash (nothing fetched into the build, no account, no patch
program, no tree) and a stack whose second patch conflicts with the first
(named, nothing built). ``pfleet1`` (the builder) and ``pfleet2`` install
the AUTH build with one compile between them (``test=True`` first predicts
it; the second apply changes nothing), and the built qmail-smtpd announces
``AUTH LOGIN PLAIN`` when ``SMTPAUTH`` is set. ``pother`` then builds the
plain release with the same builder configured (another stack: it compiles
its own), and adding the AUTH patch to it is one new install, predicted by
``test=True``, of the fleet's AUTH tree: the share is keyed by the stack.

``patch`` is in the base image's apt archive, not installed: the formula's
``pkg.installed`` installs it with apt. Sharing needs ``file_recv`` and
``minionfs``: the suite's master has both.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import subprocess
import tarfile

import pytest

from lab import source as lab_source

pytestmark = pytest.mark.lab

FLEET1 = "pfleet1.cla.kobe-u.ac.jp"
FLEET2 = "pfleet2.cla.kobe-u.ac.jp"
OTHER = "pother.cla.kobe-u.ac.jp"
SLS = "qmail.build"
BUILD = "qmail_build_|-qmail-build-tree-qmail_build-installed_|-/var/qmail_|-installed"
VERIFY = ("qmail_build_|-qmail-build-source-qmail_build-source_verified_|-/var/qmail_|-"
          "source_verified")
TRY = ("qmail_patches_|-qmail-build-patches-qmail_patches-applicable_|-/var/qmail_|-"
       "applicable")
PKG = "pkg_|-qmail-build-patch-pkg-installed_|-patch_|-installed"
RECORD = "/var/qmail/.qmail-build.json"
# The line of qmail-smtpd.c whose EHLO reply the AUTH patch rewrites.
EHLO_LINE = 'smtp_greet("250-"); out("\\r\\n250-PIPELINING\\r\\n250 8BITMIME\\r\\n");'


def conflicting_patch(qmail_source) -> str:
    """A patch of the release's own qmail-smtpd.c that rewrites the EHLO line
    the AUTH patch rewrites: it applies to the plain tree, not after AUTH."""
    with tarfile.open(qmail_source.path) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("/qmail-smtpd.c"))
        text = archive.extractfile(member).read().decode("latin-1")
    assert EHLO_LINE in text, "the release's qmail-smtpd.c changed: pick another line"
    changed = text.replace(EHLO_LINE, EHLO_LINE.replace("250 8BITMIME", "250 SMTPUTF8"))
    return "".join(difflib.unified_diff(text.splitlines(True), changed.splitlines(True),
                                        "a/qmail-smtpd.c", "b/qmail-smtpd.c"))


@pytest.fixture(scope="module")
def stack(lab_master, qmail_source, tmp_path_factory):
    """The source and the patches as the master serves them."""
    try:
        auth_patch = lab_source.smtp_auth_patch()
    except lab_source.SourceUnavailable as exc:
        pytest.skip(str(exc))
    conflict = conflicting_patch(qmail_source)
    # It is the stack that conflicts: alone, the patch applies to the release.
    tree = tmp_path_factory.mktemp("plain")
    with tarfile.open(qmail_source.path) as archive:
        archive.extractall(tree)  # the release tree the tests build from
    (srcdir,) = tree.iterdir()
    alone = subprocess.run(["patch", "--dry-run", "--batch", "--fuzz=0", "-p1", "-d",
                            str(srcdir)], input=conflict, capture_output=True, text=True)
    assert alone.returncode == 0, alone.stdout
    return {
        "source": lab_master.put_source(qmail_source),
        "auth": lab_master.put_patch(auth_patch),
        "conflict": {"url": lab_master.put_file("patches/conflict.patch", conflict),
                     "hash": "sha256=" + hashlib.sha256(conflict.encode()).hexdigest()},
    }


def pillar(stack, patches, wait=600):
    """One stack on hosts that share builds with FLEET1 as the builder."""
    return {"qmail": {"source": dict(stack["source"], patches=patches),
                      "build": {"share": {"builder": FLEET1, "wait": wait}}}}


@pytest.fixture(scope="module")
def hosts(lab_master, stack):
    fqdns = [FLEET1, FLEET2, OTHER]
    started = lab_master.start_hosts(fqdns, pillars={f: pillar(stack, []) for f in fqdns})
    try:
        lab_master.sync_formula(fqdns)
        yield {h.fqdn: h for h in started}
    finally:
        lab_master.remove_hosts(started)


def apply(master, minions, test=False):
    ret = master.salt(list(minions), "state.apply", SLS, tgt_type="list", check=False,
                      test=test, timeout=1800)
    for minion in minions:
        assert isinstance(ret.get(minion), dict), f"{minion}: {ret.get(minion)!r}"
    return ret


def failures(results):
    return {k: r["comment"] for k, r in results.items() if r["result"] is False}


def changed(results):
    return {k: r["changes"] for k, r in results.items() if r["changes"]}


def ehlo(host, smtpauth=True):
    """The EHLO reply of the installed qmail-smtpd over stdin (a name in
    control/me: qmail.build writes no control file)."""
    if not host.exists("/var/qmail/control/me"):
        host.put_file("/var/qmail/control/me", host.fqdn + "\n")
    env = ["env", "SMTPAUTH="] if smtpauth else ["env", "-u", "SMTPAUTH"]
    out = host.run([*env, "TCPREMOTEIP=127.0.0.1", "TCPLOCALPORT=465",
                    "/var/qmail/bin/qmail-smtpd", "/bin/false"],
                   input="EHLO client.example\r\nQUIT\r\n", timeout=60).stdout
    assert out.startswith("220 "), out
    return out


def state_of(host):
    """What a refused apply must leave as it was (the record and the binary)."""
    return host.run("stat -c '%n %Y %s' /var/qmail/.qmail-build.json /var/qmail/bin/qmail-smtpd"
                    " 2>&1; true").stdout


def test_a_wrong_patch_hash_extracts_nothing(lab_master, stack, hosts):
    host = hosts[OTHER]
    bad = dict(stack["auth"], hash="sha256=" + "0" * 64)
    lab_master.set_pillar({OTHER: pillar(stack, [bad], wait=0)})
    results = apply(lab_master, [OTHER])[OTHER]
    assert results[VERIFY]["result"] is False
    assert results[VERIFY]["comment"].startswith("qmail:source:patches:0:hash: ")
    assert changed(results) == {}
    for path in ("/var/qmail", "/var/cache/qmail-build",
                 "/var/cache/salt/minion/files/base/patches"):
        assert not host.exists(path), path
    assert host.run(["getent", "passwd", "qmailq"]).returncode == 2
    assert host.run(["dpkg-query", "-W", "patch"]).returncode != 0  # not even patch(1)


def test_a_conflicting_second_patch_is_named(lab_master, stack, hosts):
    host = hosts[OTHER]
    lab_master.set_pillar({OTHER: pillar(stack, [stack["auth"], stack["conflict"]], wait=0)})
    results = apply(lab_master, [OTHER])[OTHER]
    assert results[TRY]["result"] is False
    assert results[TRY]["comment"].startswith("qmail:source:patches:1: "), results[TRY]
    assert "on top of qmail:source:patches:0..0" in results[TRY]["comment"]
    assert set(failures(results)) >= {TRY, BUILD}
    # Verified first, then the build dependency (and the ledger's note of
    # the workdir to come); nothing of qmail.
    assert PKG in changed(results)
    assert [k for k in changed(results) if k != PKG and not k.startswith("qmail_ledger_")] == []
    assert not host.exists("/var/qmail") and not host.exists("/var/cache/qmail-build/src")
    assert host.run(["getent", "passwd", "qmailq"]).returncode == 2
    assert not host.run("ls /tmp | grep qmail-patches").stdout  # the scratch copy is gone


def test_a_fleet_with_one_stack_compiles_once(lab_master, stack, hosts):
    fleet = [FLEET1, FLEET2]
    lab_master.set_pillar({f: pillar(stack, [stack["auth"]]) for f in fleet})
    predicted = apply(lab_master, fleet, test=True)
    identity = [{"hash": stack["auth"]["hash"], "strip": 1}]
    for minion in fleet:
        assert failures(predicted[minion]) == {}, failures(predicted[minion])
        assert predicted[minion][BUILD]["result"] is None
        assert predicted[minion][BUILD]["changes"]["installed"]["new"]["patches"] == identity
        assert not hosts[minion].exists("/var/qmail")
        assert hosts[minion].run(["dpkg-query", "-W", "patch"]).returncode != 0
    ret = apply(lab_master, fleet)
    for minion in fleet:
        assert failures(ret[minion]) == {}, (minion, failures(ret[minion]))
        assert ret[minion][TRY]["comment"].startswith("the 1 patches apply")
    built, installed = ret[FLEET1][BUILD]["changes"], ret[FLEET2][BUILD]["changes"]
    assert built["compiled"] is True and built["published"]
    assert installed["compiled"] is False and installed["from"] == f"shared:{FLEET1}"
    assert not hosts[FLEET2].exists("/var/cache/qmail-build/build.log")  # never compiled
    log = hosts[FLEET1].read_file("/var/cache/qmail-build/build.log")
    assert "### qmail:source:patches:0: patch -p1 < salt://patches/" in log
    for minion in fleet:
        record = json.loads(hosts[minion].read_file(RECORD))
        assert record["patches"] == identity
        assert "250-AUTH LOGIN PLAIN" in ehlo(hosts[minion]).splitlines()
        assert "AUTH" not in ehlo(hosts[minion], smtpauth=False)
    again = apply(lab_master, fleet)
    for minion in fleet:
        assert changed(again[minion]) == {}, (minion, changed(again[minion]))


def test_a_host_with_another_stack_compiles_its_own(lab_master, stack, hosts):
    host = hosts[OTHER]
    lab_master.set_pillar({OTHER: pillar(stack, [], wait=0)})
    ret = apply(lab_master, [OTHER])[OTHER]
    assert failures(ret) == {}, failures(ret)
    built = ret[BUILD]["changes"]
    assert built["compiled"] is True and built["from"] == "compiled"
    assert "patches" not in json.loads(host.read_file(RECORD))
    assert "AUTH" not in ehlo(host)  # plain notqmail: no AUTH whatever SMTPAUTH says


def test_adding_the_auth_patch_rebuilds_once(lab_master, stack, hosts):
    host = hosts[OTHER]
    lab_master.set_pillar({OTHER: pillar(stack, [stack["auth"]], wait=0)})
    before = state_of(host)
    predicted = apply(lab_master, [OTHER], test=True)[OTHER]
    assert predicted[BUILD]["result"] is None
    change = predicted[BUILD]["changes"]["installed"]
    assert "patches" not in change["old"]
    assert change["new"]["patches"] == [{"hash": stack["auth"]["hash"], "strip": 1}]
    assert state_of(host) == before and "AUTH" not in ehlo(host)
    ret = apply(lab_master, [OTHER])[OTHER]
    assert failures(ret) == {}, failures(ret)
    # The fleet built this stack already: the share is keyed by it.
    assert ret[BUILD]["changes"]["from"] == f"shared:{FLEET1}"
    assert "250-AUTH LOGIN PLAIN" in ehlo(host).splitlines()
    assert changed(apply(lab_master, [OTHER])[OTHER]) == {}
