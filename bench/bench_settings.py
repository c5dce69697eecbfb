"""
What the one settings schema costs: the render time of ``qmail/map.jinja``
(merge and every check, through ``qmail_settings.merge``) for a normal
spool pillar and for one with 100,000 ``rcpthosts`` entries, against the
formula as it was before the schema (``BENCH_SETTINGS_BASE``, default the
last commit before issue 9), in the same run.

Each tree gets a masterless minion of its own in a worker process (its
modules synced once, then warmed); the workers render a one-state SLS that
imports ``map.jinja``, ``ROUNDS`` times each, old and new alternately
``ALTERNATIONS`` times; the median and the fastest render are reported with
their ratios new/old (on a shared machine single runs vary by +-30%: the
fastest render is the steadier figure for code that only computes).

Apart, for a tree with the ownership checks (``_utils/qmail_owner.py``,
issue 19): the time of the checks that read the host, called directly on
the normal spool's settings (``check`` whole; its accounts, files and
sendmail parts; ``package_of`` (dpkg-query -S) and ``package_known``
(dpkg-query -W, then apt-cache show), which the checks run per existing
sendmail path and for a dummy package name not the default nor listed).
"""

import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
BASE = os.environ.get("BENCH_SETTINGS_BASE", "0177413")
ENTRIES = int(os.environ.get("BENCH_ENTRIES", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
ALTERNATIONS = int(os.environ.get("BENCH_ALTERNATIONS", "4"))
SLS = """\
{%- from "qmail/map.jinja" import qmail with context %}
bench-settings-test-nop:
  test.nop:
    - name: {{ qmail.lookup.home | json }}
"""
DUMP_SLS = """\
{%- from "qmail/map.jinja" import qmail with context %}
bench-settings-dump:
  test.nop:
    - settings: {{ qmail | json }}
"""


def pillars(home):
    normal = {"role": "spool", "me": "ccs.cla.kobe-u.ac.jp", "lookup": {"home": home},
              "control": {"rcpthosts": ["cla.kobe-u.ac.jp", ".cla.kobe-u.ac.jp"],
                          "concurrencyremote": 40},
              "relay_clients": ["10.213.0.0/24"]}
    large = dict(normal, control={"rcpthosts": [f"h{i}.example.com" for i in range(ENTRIES)]})
    return {"normal": {"qmail": normal}, "rcpthosts_100k": {"qmail": large}}


def worker(root, rounds):
    """In a worker: render the bench SLS per pillar, ``rounds`` times."""
    import salt.client  # pylint: disable=import-outside-toplevel
    import salt.config  # pylint: disable=import-outside-toplevel

    opts = salt.config.minion_config(f"{root}/minion")
    caller = salt.client.Caller(mopts=opts)
    caller.cmd("saltutil.sync_all")
    cases = pillars(f"{root}/home/qmail")
    times = {}
    for name, pillar in cases.items():
        caller.cmd("state.show_sls", "bench_settings", pillar=pillar)  # warm
        times[name] = []
        for _ in range(rounds):
            start = time.perf_counter()
            ret = caller.cmd("state.show_sls", "bench_settings", pillar=pillar)
            times[name].append(time.perf_counter() - start)
            assert isinstance(ret, dict), ret
    owner = pathlib.Path(opts["file_roots"]["base"][0]) / "_utils" / "qmail_owner.py"
    if owner.is_file():
        times.update(owner_times(caller, owner, cases["normal"]["qmail"], rounds))
    print(json.dumps(times))


def owner_times(caller, path, pillar, rounds):
    """{"owner:<part>": [s, ...]} of qmail_owner's host lookups, alone."""
    import importlib.util  # pylint: disable=import-outside-toplevel

    spec = importlib.util.spec_from_file_location("bench_qmail_owner", path)
    owner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(owner)
    # The settings as map.jinja gives them (the loader's context of a render).
    dumped = caller.cmd("state.show_sls", "bench_settings_dump", pillar={"qmail": pillar})
    assert isinstance(dumped, dict), dumped
    settings = next(arg["settings"] for arg in dumped["bench-settings-dump"]["test"]
                    if isinstance(arg, dict) and "settings" in arg)
    lookup, owns = settings["lookup"], settings["owns"]
    default = {"sendmail_mta_package": lookup["sendmail_mta_package"]}
    ledger = owner._ledger(lookup["ledger"])  # pylint: disable=protected-access
    parts = {
        "check": lambda: owner.check(settings, owns, default),
        "accounts": lambda: owner.accounts(lookup, owns, ledger),
        "files": lambda: owner.files(settings, owns, []),
        "sendmail_paths": lambda: [owner.sendmail_place(p, "k", owns, lookup["home"])
                                   for p in lookup["sendmail_paths"] + lookup["sendmail_links"]],
        # One package manager query each (per existing sendmail path; per
        # dummy package name that is not the default nor listed).
        "package_of": lambda: owner.package_of(os.path.realpath("/bin/sh")),
        "package_known": lambda: owner.package_known("qmail-formula-bench-none"),
    }
    times = {}
    for name, call in parts.items():
        call()  # warm
        times[f"owner:{name}"] = []
        for _ in range(rounds if name.startswith("package") else rounds * 20):
            start = time.perf_counter()
            call()
            times[f"owner:{name}"].append(time.perf_counter() - start)
    return times


def make_minion(root, tree):
    (root / "states").mkdir(parents=True)
    (root / "states" / "bench_settings.sls").write_text(SLS)
    (root / "states" / "bench_settings_dump.sls").write_text(DUMP_SLS)
    (root / "minion").write_text(yaml.safe_dump({
        "id": "ccs.cla.kobe-u.ac.jp", "root_dir": str(root), "file_client": "local",
        "file_roots": {"base": [str(tree), str(root / "states")]},
        "log_level_logfile": "warning",
    }))


def run_worker(root, rounds):
    env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
    proc = subprocess.run([sys.executable, "-m", "bench.bench_settings", "--worker", str(root),
                           str(rounds)], cwd=REPO, capture_output=True, text=True, env=env,
                          check=False)
    if proc.returncode:
        raise RuntimeError(f"worker {root}: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        old_tree = tmp / "old-tree"
        old_tree.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", BASE, "_modules", "_utils",
                                  "qmail"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive, check=True)
        # The working tree's own files, copied alike: no .venv or other
        # clutter in file_roots that only one side would pay for listing.
        new_tree = tmp / "new-tree"
        for part in ("_modules", "_utils", "qmail"):
            shutil.copytree(REPO / part, new_tree / part,
                            ignore=shutil.ignore_patterns("__pycache__"))
        trees = {"old": old_tree, "new": new_tree}
        for name, tree in trees.items():
            make_minion(tmp / name, tree)
        times = {"old": {}, "new": {}}
        # Alternate the trees (a worker process each time, ROUNDS renders
        # after a warm-up), so both see the same load.
        for _ in range(ALTERNATIONS):
            for name in trees:
                for case, values in run_worker(tmp / name, ROUNDS).items():
                    times[name].setdefault(case, []).extend(values)
    print(f"map.jinja render (state.show_sls of one state importing it), "
          f"{ALTERNATIONS * ROUNDS} renders each; old = {BASE}")
    for case in times["new"]:
        if case.startswith("owner:"):
            continue
        old, new = times["old"][case], times["new"][case]
        med_old, med_new = statistics.median(old), statistics.median(new)
        print(f"  {case:16s} median old {med_old:6.3f} s new {med_new:6.3f} s "
              f"x{med_new / med_old:.2f} | fastest old {min(old):6.3f} s "
              f"new {min(new):6.3f} s x{min(new) / min(old):.2f}")
    owner = {case[6:]: values for case, values in times["new"].items()
             if case.startswith("owner:")}
    if owner:
        print("qmail_owner's host lookups alone (normal spool, this machine), median:")
        for part, values in owner.items():
            print(f"  {part:16s} {statistics.median(values) * 1000:8.3f} ms "
                  f"(fastest {min(values) * 1000:.3f} ms, {len(values)} calls)")

if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2], int(sys.argv[3]))
    else:
        main()
