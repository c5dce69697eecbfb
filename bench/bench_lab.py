"""
The lab: time from nothing to N ready minions (N = 1, 3, 8; images cached)
and memory per idle host; converged ``state.apply qmail.control`` on a lab
host against a one-state ``test.nop`` apply on the same minion in the same
run. Printed, never asserted; ratios are against the baselines measured here.

Env: BENCH_LAB_SIZES (default "1,3,8"), BENCH_ROUNDS (default 3).
"""

import os
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.labbench import timed  # noqa: E402
from lab import image  # noqa: E402
from lab.lab import Lab  # noqa: E402
from lab.master import LabMaster  # noqa: E402

SIZES = [int(n) for n in os.environ.get("BENCH_LAB_SIZES", "1,3,8").split(",")]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SPOOL = "ccs.cla.kobe-u.ac.jp"


def bench_start(master: LabMaster) -> None:
    """Hosts from nothing to answering test.ping, and their memory."""
    base = None
    for n in SIZES:
        names = [f"b{n}h{i}.cla.kobe-u.ac.jp" for i in range(n)]
        seconds, hosts = timed(master.start_hosts, names, image="base")
        for host in hosts:
            host.stop_runner()  # the lab's command runner is no part of an idle host
        time.sleep(3)  # let the minions settle before measuring memory
        mem = statistics.mean(h.memory_bytes() for h in hosts) / 2**20
        rss = statistics.mean(h.memory_rss_bytes() for h in hosts) / 2**20
        base = base or seconds
        print(f"  {n} host(s) to ready minions: {seconds:6.1f} s "
              f"(x{seconds / base:.2f} of 1 host, {seconds / n:.1f} s per host); "
              f"memory per idle host {mem:.0f} MiB ({rss:.0f} MiB resident, rest page cache)",
              flush=True)
        master.remove_hosts(hosts)


def bench_apply(master: LabMaster) -> None:
    """Converged qmail.control vs a one-state test.nop apply, same minion."""
    master.put_file("lab_bench_nop.sls", "lab-bench-nop:\n  test.nop: []\n")
    pillar = {SPOOL: {"qmail": {"role": "spool", "me": SPOOL}}}
    (host,) = master.start_hosts([SPOOL], pillars=pillar)
    master.salt(SPOOL, "saltutil.sync_all")
    master.salt(SPOOL, "state.apply", "qmail.control")  # converge
    master.salt(SPOOL, "state.apply", "lab_bench_nop")  # warm the file client
    control, nop = [], []
    for _ in range(ROUNDS):
        control.append(timed(master.salt, SPOOL, "state.apply", "qmail.control")[0])
        nop.append(timed(master.salt, SPOOL, "state.apply", "lab_bench_nop")[0])
    c, b = statistics.median(control), statistics.median(nop)
    print(f"  converged state.apply qmail.control: {c:.2f} s; test.nop apply: {b:.2f} s; "
          f"ratio x{c / b:.2f} (median of {ROUNDS}, wall time through the salt CLI)",
          flush=True)
    master.remove_hosts([host])


def main() -> None:
    """Run the lab benchmarks."""
    image.build_all()
    with Lab() as lab, LabMaster(lab) as master:
        bench_start(master)
        bench_apply(master)


if __name__ == "__main__":
    main()
