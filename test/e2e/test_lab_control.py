"""Issue #3 on real hosts: control files through a real salt-master.

Two hosts made from the ``sendmail`` image (the legacy machines): a spool
``ccs.cla.kobe-u.ac.jp`` and a client ``hostname.cla.kobe-u.ac.jp``. Salt is
driven as a user would: ``salt '*' saltutil.sync_all`` then ``salt '*'
state.apply qmail.control``. Fresh hosts check a cold highstate and that
``test=True`` changes nothing on disk.
"""

from __future__ import annotations

import json

import pytest

from lab.disk import disk_listing

pytestmark = pytest.mark.lab

SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENT = "hostname.cla.kobe-u.ac.jp"
CONTROL = "/var/qmail/control"
PILLARS = {
    SPOOL: {"qmail": {"role": "spool", "me": SPOOL}},
    CLIENT: {"qmail": {"role": "client", "spool": SPOOL}},
}


def expected_control(fqdn: str, spool: str | None = None) -> dict[str, str]:
    """The control files of issue #3 for a spool (or, with ``spool``, a client)."""
    domain = fqdn.split(".", 1)[1]
    locals_ = f"localhost.{domain}\n{fqdn}\n"
    files = {
        "me": f"{fqdn}\n",
        "defaultdomain": f"{domain}\n",
        "plusdomain": ".".join(fqdn.split(".")[-2:]) + "\n",
        "locals": locals_,
        "rcpthosts": locals_,
    }
    if spool:
        files["defaulthost"] = f"{spool}\n"
        files["locals"] = f"localhost.{domain}\n"
        files["smtproutes"] = f":{spool}\n"
    return files


def state_results(ret: dict, minion: str) -> dict:
    """The state results of ``minion``; fail with the return if it is not one."""
    data = ret.get(minion)
    assert isinstance(data, dict), f"{minion}: no state data: {data!r}"
    return data


def changed(results: dict) -> dict:
    """State ids whose ``changes`` are not empty."""
    return {sid: r["changes"] for sid, r in results.items() if r.get("changes")}


def failed(results: dict) -> dict:
    """State ids whose result is not True."""
    return {sid: r.get("comment") for sid, r in results.items() if r.get("result") is not True}


def control_listing(host) -> dict[str, tuple[str, str, str]]:
    """{file name: (mode, owner:group, content)} of the host's control dir."""
    out = host.run(f"cd {CONTROL} && for f in *; do stat -c '%n %a %U:%G' \"$f\"; done",
                   check=True).stdout
    listing = {}
    for line in out.splitlines():
        name, mode, owner = line.split()
        listing[name] = (mode, owner, host.read_file(f"{CONTROL}/{name}"))
    return listing


@pytest.fixture(scope="module")
def pair(lab_master, lab_hosts_module):
    """Spool and client, synced and applied once with ``qmail.control``."""
    spool, client = lab_hosts_module([SPOOL, CLIENT], image="sendmail", pillars=PILLARS)
    sync = lab_master.salt("*", "saltutil.sync_all")
    assert set(sync) == {SPOOL, CLIENT}
    first = lab_master.salt("*", "state.apply", "qmail.control")
    return {"spool": spool, "client": client, "first": first}


def test_control_files_for_spool_and_client(pair):
    """(a) exact files, newline-terminated, 0644 root-owned; nothing else there."""
    for minion in (SPOOL, CLIENT):
        results = state_results(pair["first"], minion)
        assert not failed(results), failed(results)
        assert changed(results), f"{minion}: the first apply changed nothing"
    for host, spool in ((pair["spool"], None), (pair["client"], SPOOL)):
        want = expected_control(host.fqdn, spool)
        got = control_listing(host)
        assert {name: content for name, (_, _, content) in got.items()} == want
        assert {name: (mode, owner) for name, (mode, owner, _) in got.items()} == {
            name: ("644", "root:root") for name in want}


def test_second_apply_changes_nothing(lab_master, pair):
    """(c) converged: a second apply reports no change on any host."""
    again = lab_master.salt("*", "state.apply", "qmail.control")
    assert set(again) == {SPOOL, CLIENT}
    for minion in again:
        results = state_results(again, minion)
        assert not failed(results), failed(results)
        assert changed(results) == {}, json.dumps(changed(results), indent=1)


def test_client_resolves_its_spool_through_dns(pair):
    """qmail-remote uses DNS only: the lab's DNS must know the spool's FQDN."""
    client = pair["client"]
    # getent ahosts would read /etc/hosts first; ask the resolver directly.
    script = ("import socket,sys;"
              "sys.stdout.write(open('/etc/resolv.conf').read())")
    assert "nameserver" in client.run(["python3", "-c", script], check=True).stdout
    got = client.run(["python3", "-c", _DNS_QUERY, SPOOL], check=True).stdout.strip()
    assert got == pair["spool"].ip


# A minimal A query to the first nameserver in /etc/resolv.conf (no /etc/hosts).
_DNS_QUERY = r"""
import random, socket, struct, sys
name = sys.argv[1]
ns = next(l.split()[1] for l in open('/etc/resolv.conf') if l.startswith('nameserver'))
qid = random.randrange(65536)
q = struct.pack('>HHHHHH', qid, 0x0100, 1, 0, 0, 0)
q += b''.join(bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\0'
q += struct.pack('>HH', 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(q, (ns, 53)); r = s.recv(512)
an = struct.unpack('>H', r[6:8])[0]
i = len(q)
for _ in range(an):
    i += 2 if r[i] & 0xC0 == 0xC0 else len(name) + 2
    rtype, _, _, rdlen = struct.unpack('>HHIH', r[i:i + 10]); i += 10
    if rtype == 1:
        print(socket.inet_ntoa(r[i:i + 4])); break
    i += rdlen
"""


def test_highstate_on_a_cold_host(lab_master, lab_hosts):
    """(b) a highstate on a freshly booted host syncs the custom modules itself.

    The top.sls assigns ``qmail.control`` here: the full ``qmail`` needs a
    qmail source (see test_highstate_full_qmail_on_a_cold_host).
    """
    fqdn = "cold.cla.kobe-u.ac.jp"
    with lab_master.temporary_top({"base": {fqdn: ["qmail.control"]}}):
        (host,) = lab_hosts([fqdn], pillars={fqdn: {"qmail": {"role": "client",
                                                              "spool": SPOOL}}})
        ret = lab_master.salt(fqdn, "state.apply", timeout=600)
    results = state_results(ret, fqdn)
    assert not failed(results), failed(results)
    assert host.read_file(f"{CONTROL}/smtproutes") == f":{SPOOL}\n"
    assert host.read_file(f"{CONTROL}/me") == f"{fqdn}\n"


def test_highstate_full_qmail_on_a_cold_host(lab_master, lab_hosts, qmail_source):
    """(b) with a qmail source: top.sls gives ``qmail`` to '*'; highstate, twice."""
    fqdn = "coldfull.cla.kobe-u.ac.jp"
    pillar = {"qmail": {"role": "spool", "me": fqdn,
                        "source": lab_master.put_source(qmail_source),
                        "build": lab_master.prebuilt(qmail_source)}}
    with lab_master.temporary_top({"base": {"*": ["qmail"]}}):
        (host,) = lab_hosts([fqdn], image="sendmail", pillars={fqdn: pillar})
        first = state_results(lab_master.salt(fqdn, "state.apply", timeout=1200), fqdn)
        assert not failed(first), failed(first)
        second = state_results(lab_master.salt(fqdn, "state.apply", timeout=1200), fqdn)
    assert not failed(second), failed(second)
    assert changed(second) == {}, json.dumps(changed(second), indent=1)
    assert host.read_file(f"{CONTROL}/me") == f"{fqdn}\n"


@pytest.fixture(scope="module")
def fresh(lab_master, lab_hosts_module, qmail_source):
    """A fresh legacy host, its modules synced: the ``test=True`` runs below
    share it, each proving that it is still as it was."""
    fqdn = "dryrun.cla.kobe-u.ac.jp"
    # ``qmail`` (everything, sendmail's neutralisation included) needs a
    # qmail source in the pillar to render its build step.
    pillar = {"qmail": {"role": "client", "spool": SPOOL,
                        "source": lab_master.put_source(qmail_source)}}
    (host,) = lab_hosts_module([fqdn], image="sendmail", pillars={fqdn: pillar})
    lab_master.salt(fqdn, "saltutil.sync_all")
    return host


@pytest.mark.parametrize("sls", ["qmail.control", "qmail"])
def test_test_mode_changes_nothing_on_a_fresh_host(lab_master, fresh, sls):
    """(d) ``state.apply SLS test=True`` on a fresh host leaves the disk as it was."""
    before = disk_listing(fresh)
    ret = lab_master.salt(fresh.fqdn, "state.apply", sls, test=True, timeout=600)
    results = state_results(ret, fresh.fqdn)
    # test mode predicts changes (result None) or finds nothing to do (True)
    assert results and not [sid for sid, r in results.items() if r["result"] is False], results
    assert any(r["result"] is None for r in results.values())
    after = disk_listing(fresh)
    diff = {p: (before.get(p), after.get(p)) for p in before.keys() | after.keys()
            if before.get(p) != after.get(p)}
    assert diff == {}


def test_control_files_survive_a_reboot(lab_master, pair):
    """A rebooted spool comes back with its minion and unchanged control files."""
    spool = pair["spool"]
    before = control_listing(spool)
    lab_master.restart_host(spool)
    assert control_listing(spool) == before
    again = lab_master.salt(SPOOL, "state.apply", "qmail.control")
    assert changed(state_results(again, SPOOL)) == {}
