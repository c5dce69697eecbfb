"""``python -m lab demo``: the formula on three lab hosts, as a user runs it.

A spool ``ccs.cla.kobe-u.ac.jp`` and two clients (sendmail image, i.e. the
legacy machines) of one Debian release (``--release``, default 13, the
current stable), one salt-master; ``salt '*' saltutil.sync_all`` then
``salt '*' state.apply qmail``, a second apply, and a short report. With a
qmail source ($QMAIL_SOURCE, a local qmail/notqmail tarball, else the
project's ../shared/sources, else the official notqmail release when it can
be downloaded) qmail is built on every
host and a message goes from a client through /usr/sbin/sendmail to the
spool's Maildir; without one the build (and with it the SLS files that need
qmail's binaries) is skipped and the demo says why.

The demo tears the lab down at the end; ``--keep`` leaves it up until Enter.
"""

from __future__ import annotations

import shlex
import sys
import time

from . import config, image
from . import source as lab_source
from .lab import Lab
from .master import LabMaster

SPOOL = "ccs.cla.kobe-u.ac.jp"
CLIENTS = ["hostname.cla.kobe-u.ac.jp", "client2.cla.kobe-u.ac.jp"]
CONTROL = "/var/qmail/control"


def say(msg: str = "") -> None:
    """Print a line of the report at once."""
    print(msg, flush=True)


def _changed(results) -> int:
    if not isinstance(results, dict):
        return -1
    return sum(1 for r in results.values() if r.get("changes"))


def _failed(results) -> list[str]:
    if not isinstance(results, dict):
        return [str(results)[:300]]
    return [f"{r.get('__id__', sid)}: {str(r.get('comment'))[:200]}"
            for sid, r in results.items() if r.get("result") is False]


def _salt(master: LabMaster, target: str, fun: str, *args, **kwargs) -> dict:
    shown = " ".join([shlex.quote(target), fun, *args,
                      *(f"{k}={v}" for k, v in kwargs.items() if k != "timeout")])
    say(f"$ salt {shown}")
    t0 = time.monotonic()
    ret = master.salt(target, fun, *args, **kwargs)
    say(f"  ({time.monotonic() - t0:.1f} s)")
    return ret


def _pillars(source_pillar: dict | None) -> dict[str, dict]:
    pillars = {SPOOL: {"qmail": {"role": "spool", "me": SPOOL}}}
    for client in CLIENTS:
        pillars[client] = {"qmail": {"role": "client", "spool": SPOOL}}
    if source_pillar:
        for data in pillars.values():
            data["qmail"]["source"] = dict(source_pillar)
    return pillars


def _send_and_fetch(hosts: dict, spool) -> None:
    client = hosts[CLIENTS[0]]
    say(f"\nSending a message from {client.fqdn} with /usr/sbin/sendmail ...")
    marker = f"lab-demo-{int(time.time())}"
    message = (f"From: root@{client.fqdn}\nTo: postmaster@{SPOOL}\n"
               f"Subject: {marker}\n\nHello from {client.fqdn}.\n")
    proc = client.run(["/usr/sbin/sendmail", "-t"], input=message)
    say(f"  sendmail exit status {proc.returncode} {proc.stderr.strip()}")
    find = (f"grep -rl {marker} /var/qmail/alias /root /home 2>/dev/null "
            "| grep '/Maildir/new/' | head -1")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        path = spool.run(find).stdout.strip()
        if path:
            say(f"  arrived on {spool.fqdn} in {path}:")
            for line in spool.read_file(path).splitlines()[:12]:
                say(f"    | {line}")
            return
        time.sleep(1)
    say(f"  NOT arrived on {spool.fqdn} after 90 s; client queue:")
    say(client.run("/var/qmail/bin/qmail-qread 2>&1; tail -5 /var/log/syslog 2>/dev/null").stdout)


def _os_name(host) -> str:
    """The host's own word on its release (/etc/os-release, /etc/debian_version)."""
    out = host.run(". /etc/os-release; echo \"$PRETTY_NAME, $(cat /etc/debian_version)\"")
    return out.stdout.strip()


def run(keep: bool = False, release: str = config.STABLE_RELEASE) -> int:
    """Run the demo on hosts of Debian ``release``; return the exit status
    (0: everything converged)."""
    release = config.check_release(release)
    say(f"== qmail formula demo on throwaway podman hosts (Debian {release}) ==")
    say("Images (built once, then cached):")
    image.build_all(releases=[release])
    try:
        source = lab_source.locate()
        skipped = ""
    except lab_source.SourceUnavailable as exc:
        source, skipped = None, str(exc)
    except lab_source.SourceError as exc:
        say(f"qmail source: {exc}")
        return 2
    ok = True
    with Lab() as lab, LabMaster(lab) as master:
        say(f"\nsalt-master listening on {lab.gateway} (lab network {lab.network})")
        source_pillar = None
        if source:
            source_pillar = master.put_source(source)
            say(f"qmail source: {source.path} -> {source_pillar['url']} "
                f"({source_pillar['hash'][:19]}...)")
            sls = "qmail"
        else:
            say(f"The qmail build is SKIPPED: {skipped}.\n"
                "Without qmail's binaries only the control files are applied "
                "(state.apply qmail.control).")
            sls = "qmail.control"
        master.set_pillar(_pillars(source_pillar), refresh=False)
        t0 = time.monotonic()
        started = master.start_hosts([SPOOL, *CLIENTS], image="sendmail", release=release)
        say(f"3 Debian {release} hosts booted, minions up in {time.monotonic() - t0:.1f} s")
        hosts = {h.fqdn: h for h in started}
        _salt(master, "*", "saltutil.sync_all")
        first = _salt(master, "*", "state.apply", sls, timeout=1800)
        second = _salt(master, "*", "state.apply", sls, timeout=1800)
        say("\n== report ==")
        for fqdn, host in hosts.items():
            role = "spool" if fqdn == SPOOL else "client"
            n1, n2 = _changed(first.get(fqdn)), _changed(second.get(fqdn))
            failures = _failed(first.get(fqdn)) + _failed(second.get(fqdn))
            ok = ok and not failures and n2 == 0
            say(f"\n{fqdn} ({role}, Debian {host.release}: {_os_name(host)}): "
                f"first apply {n1} states changed, "
                f"second apply {n2} changed{'' if n2 == 0 else '  <-- NOT CONVERGED'}")
            for line in failures:
                say(f"  FAILED {line}")
            listing = host.run(f"cd {CONTROL} && for f in *; do printf '%s: ' $f; "
                               "paste -sd, $f; done").stdout
            for line in listing.splitlines():
                say(f"  control/{line}")
        if source:
            _send_and_fetch(hosts, hosts[SPOOL])
        if keep:
            say("\nThe lab is up. Try e.g.:\n"
                f"  CONTAINERS_CONF={lab.podman.conf} {' '.join(lab.podman.argv('ps'))}\n"
                "Press Enter to tear it down.")
            try:
                input()
            except EOFError:
                pass
        say("\nTearing the lab down (hosts, network, master); images stay cached.")
    say("Done." if ok else "Done, with failures (see above).")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run("--keep" in sys.argv))  # python -m lab demo takes --release
