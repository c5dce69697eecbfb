"""
Large sites: ``state.apply qmail.control`` with 100,000 entries in
``rcpthosts`` and in ``virtualdomains``, against Salt's own ``file.managed``
writing the same two files from the same pillar, in the same run. Both go
through ``salt-call --local`` (render, pillar, state run), first apply on an
empty tree and converged re-apply.
"""

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
SALT_CALL = pathlib.Path(sys.executable).with_name("salt-call")
ENTRIES = int(os.environ.get("BENCH_ENTRIES", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))

# The baseline: the same two files with Salt's own file.managed, the content
# rendered from the same pillar lists the way the formula renders its own.
BASELINE_SLS = """\
{%- set control = salt["pillar.get"]("qmail:control") %}
{%- set home = salt["pillar.get"]("qmail:lookup:home") %}
{%- for name in ["rcpthosts", "virtualdomains"] %}
bench-file-managed-{{ name }}:
  file.managed:
    - name: {{ home }}/control/{{ name }}
    - makedirs: true
    - mode: "0644"
    - contents: {{ control[name] | json }}
{%- endfor %}
"""


class Minion:
    def __init__(self, root):
        self.root = root
        (root / "pillar").mkdir()
        (root / "states").mkdir()
        (root / "states" / "bench_baseline.sls").write_text(BASELINE_SLS)
        (root / "pillar" / "top.sls").write_text("base:\n  '*':\n    - qmail\n")
        (root / "minion").write_text(yaml.safe_dump({
            "id": "ccs.cla.kobe-u.ac.jp",
            "root_dir": str(root),
            "file_client": "local",
            "file_roots": {"base": [str(REPO), str(root / "states")]},
            "pillar_roots": {"base": [str(root / "pillar")]},
        }))

    def pillar(self, home):
        hosts = [f"h{i}.example.com" for i in range(ENTRIES)]
        domains = [f"d{i}.example.org:d{i}" for i in range(ENTRIES)]
        pillar = {"qmail": {"role": "spool", "me": "ccs.cla.kobe-u.ac.jp",
                            "lookup": {"home": str(home)},
                            "control": {"rcpthosts": hosts, "virtualdomains": domains}}}
        # JSON is valid YAML and far quicker to write and to read back.
        (self.root / "pillar" / "qmail.sls").write_text(json.dumps(pillar))

    def call(self, *args):
        env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
        start = time.perf_counter()
        proc = subprocess.run(
            [str(SALT_CALL), "--local", "-c", str(self.root), "--out=json", "-l", "quiet", *args],
            capture_output=True, text=True, env=env, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode:
            raise SystemExit(f"{args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        return elapsed


def _measure(minion, sls, home):
    first, again = [], []
    for _ in range(ROUNDS):
        subprocess.run(["rm", "-rf", str(home)], check=True)
        first.append(minion.call("state.apply", sls))
        again.append(minion.call("state.apply", sls))
    return statistics.median(first), statistics.median(again)


def main():
    with tempfile.TemporaryDirectory(prefix="bench-control-") as tmp:
        root = pathlib.Path(tmp)
        minion = Minion(root)
        home = root / "qmail"
        minion.pillar(home)
        minion.call("saltutil.sync_all")
        floor = statistics.median(minion.call("test.ping") for _ in range(ROUNDS))
        base_first, base_again = _measure(minion, "bench_baseline", home)
        ours_first, ours_again = _measure(minion, "qmail.control", home)
        print(f"entries per file: {ENTRIES:,} (rcpthosts and virtualdomains), "
              f"median of {ROUNDS}")
        print(f"salt-call floor (test.ping):          {floor:6.2f} s")
        print(f"file.managed   first / converged:     {base_first:6.2f} s / {base_again:6.2f} s")
        print(f"qmail.control  first / converged:     {ours_first:6.2f} s / {ours_again:6.2f} s")
        print(f"ratio qmail.control : file.managed    first {ours_first / base_first:.2f}, "
              f"converged {ours_again / base_again:.2f}")


if __name__ == "__main__":
    main()
