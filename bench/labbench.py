"""
What the lab benchmarks share: a stopwatch, the bare compile they compare
the formula's first apply with, and a fleet of hosts with qmail applied.
"""

import contextlib
import time

from lab import image
from lab.lab import Lab
from lab.master import LabMaster

# qmail's own build on a host, outside the formula: the accounts exist by
# then (the formula made them); a home of its own (/opt/bare).
BARE_COMPILE = ("set -e; rm -rf /root/bare && mkdir /root/bare && cd /root/bare && "
                "tar xf /root/src.tar && cd */ && echo /opt/bare > conf-qmail && "
                "make setup check >/dev/null 2>&1")


def timed(fn, *args, **kwargs):
    """(seconds, result) of one call."""
    t0 = time.monotonic()
    result = fn(*args, **kwargs)
    return time.monotonic() - t0, result


def bare_compile(host, tarball, what="bare make setup check") -> float:
    """Seconds of a bare ``make setup check`` of ``tarball`` on ``host``."""
    host.put_file("/root/src.tar", tarball.read_bytes())
    seconds, proc = timed(host.run, BARE_COMPILE)
    if proc.returncode:
        raise RuntimeError(f"{what} failed: {proc.stderr}")
    return seconds


@contextlib.contextmanager
def synced_fleet(source, fqdns, pillars, image_name="sendmail"):
    """A lab with ``fqdns`` up, ``pillars(hosts, qmail_source_pillar)`` set
    and the formula's modules synced: yields (master, {fqdn: host}, the
    source's pillar)."""
    image.build_all()
    with Lab() as lab, LabMaster(lab) as master:
        qsource = master.put_source(source)
        hosts = {h.fqdn: h for h in master.start_hosts(list(fqdns), image=image_name)}
        master.set_pillar(pillars(hosts, qsource))
        master.salt("*", "saltutil.sync_all")
        yield master, hosts, qsource
