"""
The formula per Debian release, side by side: on a fresh host of each
release (11 bullseye, 12 bookworm, 13 trixie; ``base`` image), the first
``state.apply qmail`` (role spool: accounts, build, control, service,
sendmail), against a bare ``tar x && make setup check`` of the same tarball
on the same host afterwards (the formula's accounts exist by then).

Printed as a table with ratios, each against the same host's bare compile,
and the releases against Debian 12; never asserted.
Env: QMAIL_SOURCE (else lab.source's order), BENCH_RELEASES (default
"11,12,13").
"""

import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.labbench import bare_compile, timed  # noqa: E402
from lab import config, image  # noqa: E402
from lab import source as lab_source  # noqa: E402
from lab.lab import Lab  # noqa: E402
from lab.master import LabMaster  # noqa: E402

RELEASES = os.environ.get("BENCH_RELEASES", "11,12,13").split(",")

def bench_release(master, release, pillar, tarball):
    """(first apply, bare compile, gcc version) on a fresh host of ``release``."""
    fqdn = f"bench{release}.cla.kobe-u.ac.jp"
    (host,) = master.start_hosts([fqdn], pillars={fqdn: pillar}, release=release)
    try:
        master.salt(fqdn, "saltutil.sync_all")
        first, _ = timed(master.apply_ok, fqdn, "qmail", timeout=1800)
        bare = bare_compile(host, tarball, what=f"Debian {release}: bare make setup check")
        gcc = host.run("gcc -dumpfullversion").stdout.strip()
        return first, bare, gcc
    finally:
        master.remove_hosts([host])


def main():
    """Run the per-release benchmark (needs a qmail source, see lab.source)."""
    source = lab_source.locate_or_none()
    if source is None:
        return
    for release in RELEASES:
        image.build("base", release=config.check_release(release))
    rows = {}
    with Lab() as lab, LabMaster(lab) as master:
        pillar = {"qmail": {"role": "spool", "source": master.put_source(source)}}
        for release in RELEASES:
            rows[release] = bench_release(master, release, pillar, source.path)
            first, bare, gcc = rows[release]
            print(f"  Debian {release} (gcc {gcc}): first apply of qmail {first:.1f} s, "
                  f"bare make setup check {bare:.1f} s, x{first / bare:.2f}", flush=True)
    ref = rows.get(config.DEFAULT_RELEASE)
    print("  release | gcc | first apply | bare compile | apply/compile | apply vs Debian 12")
    for release, (first, bare, gcc) in rows.items():
        versus = f"x{first / ref[0]:.2f}" if ref else "-"
        print(f"  {release} | {gcc} | {first:.1f} s | {bare:.1f} s | x{first / bare:.2f} "
              f"| {versus}")


if __name__ == "__main__":
    main()
