"""
Where the test suite's time goes: per test folder and the ten slowest
modules, from ``test/durations.json`` (``make test-times`` writes it), beside
the figures of the same file in an earlier commit (``BENCH_SUITE_BASE``,
default ``HEAD~1``; a module it did not know shows ``-``).

The figures are each module's summed test time (setup, call, teardown,
module fixtures included) on the machine that ran ``make test-times``:
several modules run at once under ``-n``, so the folders add up to more
than the run's wall time. Nothing is timed here; it only reads.
"""

import collections
import json
import os
import pathlib
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[1]
FILE = "test/durations.json"
BASE = os.environ.get("BENCH_SUITE_BASE", "HEAD~1")


def _base() -> dict:
    proc = subprocess.run(["git", "-C", str(REPO), "show", f"{BASE}:{FILE}"],
                          capture_output=True, text=True, check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def _folder(module: str) -> str:
    return "/".join(module.split("/")[:2])


def _row(name: str, now: float, then: float | None) -> str:
    if then is None:
        return f"{name:<52} {now:8.1f} {'-':>8} {'-':>7}"
    ratio = f"x{now / then:.2f}" if then else "-"
    return f"{name:<52} {now:8.1f} {then:8.1f} {ratio:>7}"


def main():
    now = json.loads((REPO / FILE).read_text())
    then = _base()
    folders, base_folders = collections.defaultdict(float), collections.defaultdict(float)
    for module, seconds in now.items():
        folders[_folder(module)] += seconds
    for module, seconds in then.items():
        base_folders[_folder(module)] += seconds
    print(f"{'folder (s, summed over modules)':<52} {'now':>8} {BASE:>8} {'ratio':>7}")
    for folder in sorted(folders):
        print(_row(folder, folders[folder], base_folders.get(folder)))
    print(f"\n{'ten slowest modules (s)':<52} {'now':>8} {BASE:>8} {'ratio':>7}")
    for module in sorted(now, key=now.get, reverse=True)[:10]:
        print(_row(module.removeprefix("test/"), now[module], then.get(module)))


if __name__ == "__main__":
    main()
