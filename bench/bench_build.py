"""
qmail.build on lab hosts, with the qmail source of lab.source ($QMAIL_SOURCE):

1. the first ``state.apply qmail.aliases`` (accounts, verify, make setup,
   install, make check, rc, aliases) on a fresh host, against a bare
   ``tar x && make setup check`` of the same tarball on the same host;
2. the converged re-apply against Salt's floor, a one-state ``test.nop``
   apply on the same minion;
3. fleets of N fresh hosts (N = 1, 3, 8) applying at once: compiles and wall
   time with one builder (cp.push + minionfs), and with every host compiling.

Printed as ratios against baselines measured in the same run; never asserted.
Env: QMAIL_SOURCE (else the official tarball, see lab.source), BENCH_BUILD_SIZES (default "1,3,8"),
BENCH_ROUNDS (default 3), BENCH_BUILD_UNSHARED (default 1: also time fleets
without a builder).
"""

import os
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.labbench import bare_compile, timed  # noqa: E402
from lab import image  # noqa: E402
from lab import source as lab_source  # noqa: E402
from lab.lab import Lab  # noqa: E402
from lab.master import LabMaster  # noqa: E402

SIZES = [int(n) for n in os.environ.get("BENCH_BUILD_SIZES", "1,3,8").split(",")]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
UNSHARED = os.environ.get("BENCH_BUILD_UNSHARED", "1") == "1"
SLS = "qmail.aliases"  # includes qmail.build and qmail.users
BUILD = "qmail_build_|-qmail-build-tree-qmail_build-installed_|-/var/qmail_|-installed"


def _master(lab):
    master = LabMaster(lab)
    extra = pathlib.Path(master.config_dir) / "master.d"
    extra.mkdir(exist_ok=True)
    (extra / "qmail-build-share.conf").write_text(
        "file_recv: true\nfileserver_backend: [roots, minionfs]\n")
    return master.start()


def _apply(master, minions):
    seconds, ret = timed(master.salt, list(minions), "state.apply", SLS, tgt_type="list",
                          check=False)
    for minion in minions:
        results = ret.get(minion)
        bad = [k for k, r in results.items() if r["result"] is not True] \
            if isinstance(results, dict) else [results]
        if bad:
            raise RuntimeError(f"{minion}: {bad}")
    return seconds, ret


def bench_first_and_converged(master, pillar, tarball):
    """1 and 2 on one fresh host."""
    fqdn = "bbfirst.cla.kobe-u.ac.jp"
    (host,) = master.start_hosts([fqdn], pillars={fqdn: pillar})
    master.salt(fqdn, "saltutil.sync_all")
    first, ret = _apply(master, [fqdn])
    state = ret[fqdn][BUILD]
    bare = bare_compile(host, tarball)
    print(f"  first apply of {SLS} on a fresh host: {first:.1f} s (salt CLI wall; "
          f"the build state {state['duration'] / 1000:.1f} s); bare make setup check of "
          f"the same tarball: {bare:.1f} s; ratio x{first / bare:.2f}", flush=True)
    master.put_file("bench_build_nop.sls", "bench-build-nop:\n  test.nop: []\n")
    master.salt(fqdn, "state.apply", "bench_build_nop")  # warm the file client
    converged, nop = [], []
    for _ in range(ROUNDS):
        converged.append(_apply(master, [fqdn])[0])
        nop.append(timed(master.salt, fqdn, "state.apply", "bench_build_nop")[0])
    c, b = statistics.median(converged), statistics.median(nop)
    print(f"  converged re-apply: {c:.2f} s; test.nop apply: {b:.2f} s; ratio x{c / b:.2f} "
          f"(median of {ROUNDS}); first apply / converged: x{first / c:.1f}", flush=True)
    master.remove_hosts([host])


def bench_fleet(master, pillar, shared):
    """3: N fresh hosts apply at once, with or without a builder."""
    base = None
    label = "one builder" if shared else "every host compiles"
    for n in SIZES:
        names = [f"bb{'s' if shared else 'u'}{n}h{i}.cla.kobe-u.ac.jp" for i in range(n)]
        build = {"share": {"builder": names[0] if shared else "", "wait": 900}}
        pillars = {name: {"qmail": dict(pillar["qmail"], build=build)} for name in names}
        hosts = master.start_hosts(names, pillars=pillars)
        master.salt(names, "saltutil.sync_all", tgt_type="list")
        seconds, ret = _apply(master, names)
        compiles = sum(1 for m in names if ret[m][BUILD]["changes"].get("compiled"))
        base = base or seconds
        print(f"  fleet of {n} ({label}): {compiles} compile(s), {seconds:.1f} s wall "
              f"(x{seconds / base:.2f} of 1 host, {seconds / n:.1f} s per host)", flush=True)
        master.remove_hosts(hosts)


def main():
    """Run the build benchmarks (needs a qmail source, see lab.source)."""
    source = lab_source.locate_or_none()
    if source is None:
        return
    tarball = source.path
    image.build_all()
    with Lab() as lab:
        master = _master(lab)
        try:
            pillar = {"qmail": {"source": master.put_source(source)}}
            bench_first_and_converged(master, pillar, tarball)
            bench_fleet(master, pillar, shared=True)
            if UNSHARED:
                bench_fleet(master, pillar, shared=False)
        finally:
            master.stop()


if __name__ == "__main__":
    main()
