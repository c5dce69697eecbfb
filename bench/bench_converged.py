"""
The issue-10 table, in one lab run on one fresh spool host (``base`` image,
qmail from lab.source): the converged cost of the formula against Salt's
floor.

| row | what |
|---|---|
| one-state trivial apply | ``test.nop``: the salt CLI + minion floor |
| built-ins anchor | the spool's control step written with ``file.managed`` / ``file.absent`` |
| ``qmail.control`` | converged |
| ``qmail`` | converged, the whole formula |
| rendering ``qmail`` | ``state.show_sls qmail``: the same SLS tree rendered, no state run |
| first apply | ``state.apply qmail`` on the fresh host (users, build, ..., service) |
| bare compile | ``make setup check`` of the same tarball on that host |

Each converged row is the median of BENCH_ROUNDS (default 9) rounds, taken in
turn; "minion time" is the sum of the states' ``duration``. The slowest states
of the converged whole formula are listed after the table. Printed, never
asserted.
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

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "9"))
SPOOL = "ccs.cla.kobe-u.ac.jp"


def _apply(master, sls, timeout=300):
    seconds, ret = timed(master.salt, SPOOL, "state.apply", sls, check=False,
                          timeout=timeout)
    states = ret.get(SPOOL)
    if not isinstance(states, dict):
        raise RuntimeError(f"{sls}: {states}")
    bad = {k: v["comment"] for k, v in states.items() if v["result"] is not True}
    if bad:
        raise RuntimeError(f"{sls}: {bad}")
    changed = [v["__id__"] for v in states.values() if v["changes"]]
    minion_ms = sum(v.get("duration", 0) for v in states.values())
    return seconds, states, changed, minion_ms


def _render(master, sls):
    """``state.show_sls``: the wall time of rendering ``sls``, no state run."""
    seconds, ret = timed(master.salt, SPOOL, "state.show_sls", sls, check=False, timeout=300)
    if not isinstance(ret.get(SPOOL), dict):
        raise RuntimeError(f"{sls}: {ret.get(SPOOL)}")
    return seconds, 0.0, len(ret[SPOOL])


def _builtins_sls(settings):
    """The spool's control files as Salt's own file states would write them
    (into a folder of their own, so that the two never undo each other)."""
    home = "/var/tmp/bench-builtins"
    lines = []
    for name, value in sorted(settings["control_managed"].items()):
        text = "".join(f"{v}\n" for v in value) if isinstance(value, list) else f"{value}\n"
        lines += [f"bench-builtin-{name}:", "  file.managed:",
                  f"    - name: {home}/control/{name}", f"    - contents: {text!r}",
                  "    - contents_newline: false", "    - user: root", "    - group: root",
                  "    - mode: '0644'", "    - makedirs: true"]
    for name in settings["control_absent"]:
        lines += [f"bench-builtin-absent-{name}:", "  file.absent:",
                  f"    - name: {home}/control/{name}"]
    return "\n".join(lines) + "\n"


def main():
    """Print the table (needs a qmail source, see lab.source)."""
    source = lab_source.locate_or_none()
    if source is None:
        return
    image.build_all()
    with Lab() as lab, LabMaster(lab) as master:
        pillar = {SPOOL: {"qmail": {"role": "spool", "source": master.put_source(source)}}}
        (host,) = master.start_hosts([SPOOL], image="base", pillars=pillar)
        master.salt(SPOOL, "saltutil.sync_all")
        master.put_file("bench_trivial.sls", "bench-trivial:\n  test.nop: []\n")
        master.salt(SPOOL, "state.apply", "bench_trivial")  # warm the file client

        first, states, _, _ = _apply(master, "qmail", timeout=1800)
        n_states = len(states)
        bare = bare_compile(host, source.path)

        settings = master.salt(SPOOL, "qmail_settings.show")[SPOOL]
        master.put_file("bench_builtins.sls", _builtins_sls(settings))
        master.salt(SPOOL, "state.apply", "bench_builtins")  # converge (same bytes)

        rows = {"trivial": "bench_trivial", "builtins": "bench_builtins",
                "control": "qmail.control", "qmail": "qmail", "render": "qmail"}
        runs = {key: [] for key in rows}
        slowest = {}
        for _ in range(ROUNDS):
            for key, sls in rows.items():
                if key == "render":
                    runs[key].append(_render(master, sls))
                    continue
                seconds, states, changed, minion_ms = _apply(master, sls)
                if changed:
                    raise RuntimeError(f"{sls} is not converged: {changed}")
                runs[key].append((seconds, minion_ms, len(states)))
                if key == "qmail":
                    for v in states.values():
                        slowest.setdefault(v["__id__"], []).append(v.get("duration", 0))

        def med(key, i):
            return statistics.median(r[i] for r in runs[key])

        floor = med("trivial", 0)
        labels = {"trivial": "one-state trivial apply",
                  "builtins": "the spool's control step with Salt built-ins",
                  "control": "`qmail.control`", "qmail": "**`qmail` (whole formula)**",
                  "render": "rendering `qmail` only (`state.show_sls`, no state run)"}
        print(f"  | converged apply on a spool, {ROUNDS} rounds, median | wall | x trivial "
              "| states | minion time |")
        print("  |---|---|---|---|---|")
        for key, label in labels.items():
            minion = "-" if key == "render" else f"{med(key, 1):.1f} ms"
            print(f"  | {label} | {med(key, 0):.2f} s | {med(key, 0) / floor:.2f} | "
                  f"{runs[key][0][2]} | {minion} |")
        print(f"  | first apply of `qmail` on a fresh host | {first:.1f} s | "
              f"x{first / (bare + floor):.2f} of bare + trivial | {n_states} | - |")
        print(f"  | a bare `make setup check` of the same tarball on that host | {bare:.1f} s "
              "| - | - | - |", flush=True)
        print("  slowest states of the converged `qmail` (median ms):")
        top = sorted(slowest.items(), key=lambda kv: -statistics.median(kv[1]))[:8]
        for sid, durations in top:
            print(f"    {statistics.median(durations):7.1f}  {sid}")
        master.remove_hosts([host])


if __name__ == "__main__":
    main()
