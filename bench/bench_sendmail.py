"""
qmail.sendmail's cost, against Salt's own states doing comparable work in
the same run:

- a converged ``state.apply qmail.sendmail`` (what every highstate pays once
  sendmail is neutralised) on an IRIX-style tree in a temporary folder,
  against a baseline SLS of built-ins for the same objects (two
  ``file.symlink``, one ``file.managed`` for /etc/config/sendmail, one
  ``file.absent`` for the binary), both through ``salt-call --local``;
- the process scan behind ``qmail_sendmail.stopped`` (every /proc entry's
  program and name, and who listens on 25/587), against ``pgrep sendmail``.
"""

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
SALT_CALL = pathlib.Path(sys.executable).with_name("salt-call")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))

BASELINE_SLS = """\
{%- set t = salt["pillar.get"]("bench:tree") %}
bench-symlink-sbin:
  file.symlink:
    - name: {{ t }}/usr/sbin/sendmail
    - target: {{ t }}/var/qmail/bin/sendmail
bench-symlink-lib:
  file.symlink:
    - name: {{ t }}/usr/lib/sendmail
    - target: {{ t }}/var/qmail/bin/sendmail
bench-config:
  file.managed:
    - name: {{ t }}/etc/config/sendmail
    - contents: "off"
bench-binary-absent:
  file.absent:
    - name: {{ t }}/usr/lib/sendmail.orig
"""


def _salt_call(root, *args):
    env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning")
    start = time.perf_counter()
    subprocess.run([str(SALT_CALL), "--local", "-c", str(root), "-l", "quiet", "--out=quiet",
                    *args], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _minion(root, tree):
    pillar_dir = root / "pillar"
    pillar_dir.mkdir(parents=True)
    (root / "states").mkdir()
    (root / "states" / "bench_baseline.sls").write_text(BASELINE_SLS)
    (pillar_dir / "top.sls").write_text("base:\n  '*':\n    - p\n")
    (pillar_dir / "p.sls").write_text(yaml.safe_dump({
        "bench": {"tree": str(tree)},
        "qmail": {"lookup": {
            "home": str(tree / "var/qmail"),
            "sendmail_boot": "irix",
            "sendmail_services": ["qmail-bench-no-such-sendmail"],
            "sendmail_paths": [str(tree / "usr/lib/sendmail")],
            "sendmail_links": [str(tree / "usr/sbin/sendmail"), str(tree / "usr/lib/sendmail")],
            "sendmail_irix_config": str(tree / "etc/config/sendmail"),
            "sendmail_mta_package": "",
            "sendmail_journal": str(tree / "var/lib/qmail-formula/sendmail.json"),
        }},
    }))
    (root / "minion").write_text(yaml.safe_dump({
        "id": "bench.cla.kobe-u.ac.jp", "root_dir": str(root), "file_client": "local",
        "file_roots": {"base": [str(REPO), str(root / "states")]},
        "pillar_roots": {"base": [str(pillar_dir)]},
    }))


def _tree(tree):
    for directory in ("usr/sbin", "usr/lib", "etc/config", "var/qmail/bin"):
        (tree / directory).mkdir(parents=True)
    (tree / "etc/config/sendmail").write_text("on\n")
    shutil.copy("/bin/true", tree / "usr/lib/sendmail")
    (tree / "var/qmail/bin/sendmail").write_text("#!/bin/sh\n")  # stands for qmail's


def bench_converged_apply():
    with tempfile.TemporaryDirectory() as tmp:
        root, tree = pathlib.Path(tmp) / "salt", pathlib.Path(tmp) / "os"
        _tree(tree)
        _minion(root, tree)
        _salt_call(root, "saltutil.sync_all")
        _salt_call(root, "state.apply", "qmail.sendmail")
        _salt_call(root, "state.apply", "bench_baseline")
        ours = [_salt_call(root, "state.apply", "qmail.sendmail") for _ in range(ROUNDS)]
        base = [_salt_call(root, "state.apply", "bench_baseline") for _ in range(ROUNDS)]
    ours, base = statistics.median(ours), statistics.median(base)
    print(f"converged apply: qmail.sendmail {ours:.2f} s, built-ins baseline {base:.2f} s, "
          f"ratio {ours / base:.2f}")


def bench_process_scan():
    import salt.config  # pylint: disable=import-outside-toplevel
    from saltfactories.utils.functional import Loaders  # pylint: disable=import-outside-toplevel

    with tempfile.TemporaryDirectory() as tmp:
        opts = salt.config.minion_config(None)
        opts.update(root_dir=tmp, cachedir=f"{tmp}/cache", file_client="local",
                    file_roots={"base": [str(REPO)]}, extension_modules=f"{tmp}/ext",
                    pki_dir=f"{tmp}/pki", sock_dir=f"{tmp}/sock", log_file=f"{tmp}/log")
        loaders = Loaders(opts)
        try:
            scan = loaders.modules.qmail_sendmail.processes
            paths = ["/usr/sbin/sendmail", "/usr/lib/sendmail"]
            count = len([p for p in os.listdir("/proc") if p.isdigit()])
            ours, base = [], []
            for _ in range(ROUNDS * 5):
                start = time.perf_counter()
                scan(paths, ports=[25, 587])
                ours.append(time.perf_counter() - start)
                start = time.perf_counter()
                subprocess.run(["pgrep", "sendmail"], stdout=subprocess.DEVNULL, check=False)
                base.append(time.perf_counter() - start)
        finally:
            loaders.reset_state()
    ours, base = statistics.median(ours), statistics.median(base)
    print(f"process scan ({count} processes): qmail_sendmail.processes {ours * 1000:.1f} ms, "
          f"pgrep {base * 1000:.1f} ms, ratio {ours / base:.2f}")


def main():
    bench_converged_apply()
    bench_process_scan()


if __name__ == "__main__":
    main()
