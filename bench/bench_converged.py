"""
The issue-10 table, with the peer beside it (issue 21), in one lab run: a
fresh spool host (``base`` image, qmail from lab.source) and, on a host of
its own, saltstack-formulas/postfix-formula's ``postfix`` state for a null
client (postfix from the image's local apt archive).

| row | what |
|---|---|
| one-state trivial apply | ``test.nop``: the salt CLI + minion floor (on each host) |
| built-ins anchor | the spool's control step written with ``file.managed`` / ``file.absent`` |
| ``qmail.control`` | converged |
| ``qmail`` | converged, the whole formula |
| rendering ``qmail`` | ``state.show_sls qmail``: the same SLS tree rendered, no state run |
| no rendering | ``qmail``'s tree as one plain ``#!json`` SLS (the floor of any render) |
| ``postfix`` | the peer's state, converged (package, service) |
| ``postfix.config`` | the peer with its ``main.cf``/``master.cf`` (includes ``postfix``) |
| first apply | ``state.apply qmail`` on the fresh host (users, build, ..., service) |
| bare compile | ``make setup check`` of the same tarball on that host |

Ratios are to the trivial apply on the same host. Each converged row is the
median of BENCH_ROUNDS (default 9) rounds, the rows taken in turn.

Minion time, measured two ways:

- **states**: the sum of the states' ``duration`` in the return;
- **job**: on the minion, from its log line ``Executing command state.apply
  with jid J`` (the job received) to ``Returning information for job: J``
  (the return ready to send): all the minion does for the job (job process,
  loader, render, states); **job - trivial** is that less the trivial apply's
  job on the same host: what the SLS tree costs the minion. The job splits
  into *before states* (received -> first state starts: loaders, render,
  compile), *states* (first start -> last end, with the gaps between them)
  and *after* (last end -> return ready).

The peer formula: ``BENCH_PEER_FORMULA`` names a git directory of
saltstack-formulas/postfix-formula (default: this machine's snapshot,
see PEER_FORMULA), ``BENCH_PEER_REF`` its commit (default HEAD); its
``postfix/`` is ``git archive``d into the master's file root for the run,
never into the repository. Without it the peer rows are left out.

The slowest states of the converged whole formula follow the table, then
(``BENCH_PROFILE=1``) a ``salt-call -l profile`` render time per SLS file
of each formula. Printed, never asserted.
"""

import datetime
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.labbench import bare_compile, timed  # noqa: E402
from lab import image  # noqa: E402
from lab import source as lab_source  # noqa: E402
from lab.lab import Lab  # noqa: E402
from lab.master import LabMaster  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "9"))
SPOOL = "ccs.cla.kobe-u.ac.jp"
PEER = "satellite.cla.kobe-u.ac.jp"
PEER_FORMULA = os.environ.get(
    "BENCH_PEER_FORMULA", "/work/.mirror/saltstack-formulas+postfix-formula/repo")
PEER_REF = os.environ.get("BENCH_PEER_REF", "HEAD")
# A null client, as postfix-formula's pillar.example writes its keys: mail
# from the host goes to the spool, nothing is received or delivered locally.
PEER_PILLAR = {"postfix": {
    "enable_service": True,
    "reload_service": True,
    "manage_master_config": True,
    "config": {
        "myhostname": PEER,
        "myorigin": "$myhostname",
        "mydestination": "",
        "relayhost": f"[{SPOOL}]",
        "inet_interfaces": "loopback-only",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "local_transport": "error:local delivery is disabled",
        "alias_maps": "",
        "biff": "no",
        "append_dot_mydomain": "no",
        "smtpd_banner": "$myhostname ESMTP $mail_name",
    },
}}
LOG = "/var/log/salt/minion"
_STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"


def _stamp(text):
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f")


def _job_phases(host, states):
    """(job, before states, states, after) in ms of the last state.apply
    job in ``host``'s minion log (see the module docstring)."""
    log = host.run(["tail", "-n", "400", LOG], check=True).stdout
    jids = re.findall(_STAMP + r" .*Executing command state\.apply with jid (\d+)", log)
    if not jids:
        raise RuntimeError(f"{host.fqdn}: no state.apply in {LOG}")
    received, jid = jids[-1]
    done = re.findall(_STAMP + rf" .*Returning information for job: {jid}\b", log)
    if not done:
        raise RuntimeError(f"{host.fqdn}: job {jid} has no return in {LOG}")
    t0, t3 = _stamp(received), _stamp(done[-1])
    day = t0.date()
    spans = []
    for v in states.values():
        start = datetime.datetime.combine(
            day, datetime.datetime.strptime(v["start_time"], "%H:%M:%S.%f").time())
        if start < t0 - datetime.timedelta(hours=12):  # the run crossed midnight
            start += datetime.timedelta(days=1)
        spans.append((start, start + datetime.timedelta(milliseconds=v.get("duration", 0))))
    t1, t2 = min(s for s, _ in spans), max(e for _, e in spans)

    def ms(a, b):
        return (b - a).total_seconds() * 1000

    return ms(t0, t3), ms(t0, t1), ms(t1, t2), ms(t2, t3)


def _apply(master, host, sls, timeout=300):
    seconds, ret = timed(master.salt, host.fqdn, "state.apply", sls, check=False,
                          timeout=timeout)
    states = ret.get(host.fqdn)
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
    return seconds, 0.0, len(ret[SPOOL]), (0.0, 0.0, 0.0, 0.0)


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


def _unrendered_sls(master):
    """The converged spool's ``qmail`` tree as Salt renders it
    (``state.show_sls``), written back as one ``#!json`` SLS: the same 64
    states with their arguments, no Jinja, no settings, one file. What an
    apply of those states costs with no rendering at all."""
    high = master.salt(SPOOL, "state.show_sls", "qmail")[SPOOL]
    if not isinstance(high, dict):
        raise RuntimeError(f"state.show_sls qmail: {high}")
    plain = {sid: {fun: [arg for arg in args if not (isinstance(arg, dict) and "order" in arg)]
                   for fun, args in body.items() if not fun.startswith("__")}
             for sid, body in high.items()}
    return "#!json\n" + json.dumps(plain, indent=1) + "\n"


def _peer_formula(master):
    """``git archive`` the peer's ``postfix/`` into the master's file root;
    return its commit, or None (said why) when there is no snapshot."""
    git = ["git", f"--git-dir={PEER_FORMULA}"]
    if not os.path.isdir(PEER_FORMULA):
        git = ["git", "-C", PEER_FORMULA]
    rev = subprocess.run([*git, "rev-parse", PEER_REF], capture_output=True, text=True)
    if rev.returncode:
        print(f"  peer rows left out: no postfix-formula at {PEER_FORMULA} "
              f"(BENCH_PEER_FORMULA): {rev.stderr.strip()}", flush=True)
        return None
    commit = rev.stdout.strip()
    tar = subprocess.run([*git, "archive", "--format=tar", commit, "postfix"],
                         capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(master.file_root)], input=tar, check=True)
    return commit


def _profile(master, host, sls, runs=3):
    """{sls file: median render ms} of ``runs`` converged ``salt-call -l
    profile state.apply sls`` on ``host`` (through the master, as the
    minion does): Salt's own timing of each file's jinja and yaml passes,
    ``import_yaml`` included."""
    seen = []
    for _ in range(runs):
        proc = host.run(["/opt/salt/bin/salt-call", "--out=quiet", "-l", "profile",
                         "state.apply", sls], check=True)
        times = {}
        for what, secs in re.findall(r"Time \(in seconds\) to render (.+?)(?: using '\w+' "
                                     r"renderer)?: ([0-9.e-]+)$", proc.stderr, re.M):
            key = what.split("/files/base/", 1)[-1].replace("'", "")
            times[key] = times.get(key, 0) + float(secs) * 1000
        seen.append(times)
    return {key: statistics.median(t.get(key, 0) for t in seen) for key in seen[0]}


def main():
    """Print the table (needs a qmail source, see lab.source)."""
    source = lab_source.locate_or_none()
    if source is None:
        return
    image.build_all()
    with Lab() as lab, LabMaster(lab) as master:
        peer_commit = _peer_formula(master)
        pillar = {SPOOL: {"qmail": {"role": "spool", "source": master.put_source(source)}}}
        fqdns = [SPOOL]
        if peer_commit:
            pillar[PEER] = PEER_PILLAR
            fqdns.append(PEER)
        hosts = {h.fqdn: h for h in master.start_hosts(fqdns, image="base", pillars=pillar)}
        host = hosts[SPOOL]
        master.salt(SPOOL, "saltutil.sync_all")
        master.put_file("bench_trivial.sls", "bench-trivial:\n  test.nop: []\n")
        master.salt(fqdns, "state.apply", "bench_trivial")  # warm the file client

        first, states, _, _ = _apply(master, host, "qmail", timeout=1800)
        n_states = len(states)
        bare = bare_compile(host, source.path)
        if peer_commit:
            _apply(master, hosts[PEER], "postfix.config", timeout=900)  # install

        settings = master.salt(SPOOL, "qmail_settings.show")[SPOOL]
        master.put_file("bench_builtins.sls", _builtins_sls(settings))
        master.salt(SPOOL, "state.apply", "bench_builtins")  # converge (same bytes)
        master.put_file("bench_unrendered.sls", _unrendered_sls(master))

        rows = {"trivial": (SPOOL, "bench_trivial"), "builtins": (SPOOL, "bench_builtins"),
                "control": (SPOOL, "qmail.control"), "qmail": (SPOOL, "qmail"),
                "unrendered": (SPOOL, "bench_unrendered"), "render": (SPOOL, "qmail")}
        if peer_commit:
            rows.update({"peer_trivial": (PEER, "bench_trivial"),
                         "postfix": (PEER, "postfix"),
                         "postfix_config": (PEER, "postfix.config")})
        runs = {key: [] for key in rows}
        slowest = {}
        loads = [os.getloadavg()[0]]
        for _ in range(ROUNDS):
            for key, (fqdn, sls) in rows.items():
                if key == "render":
                    runs[key].append(_render(master, sls))
                    continue
                seconds, states, changed, minion_ms = _apply(master, hosts[fqdn], sls)
                if changed:
                    raise RuntimeError(f"{sls} is not converged: {changed}")
                phases = _job_phases(hosts[fqdn], states)
                runs[key].append((seconds, minion_ms, len(states), phases))
                if key in ("qmail", "postfix_config"):
                    for v in states.values():
                        slowest.setdefault(key, {}).setdefault(v["__id__"], []).append(
                            v.get("duration", 0))
            loads.append(os.getloadavg()[0])

        def med(key, i):
            return statistics.median(r[i] for r in runs[key])

        def phase(key, i):
            return statistics.median(r[3][i] for r in runs[key])

        floors = {SPOOL: "trivial", PEER: "peer_trivial"}
        labels = {"trivial": "one-state trivial apply (spool host)",
                  "builtins": "the spool's control step with Salt built-ins",
                  "control": "`qmail.control`", "qmail": "**`qmail` (whole formula)**",
                  "unrendered": "the same states, no rendering (one plain JSON SLS)",
                  "render": "rendering `qmail` only (`state.show_sls`, no state run)",
                  "peer_trivial": "one-state trivial apply (peer host)",
                  "postfix": "**peer: postfix-formula `postfix`**",
                  "postfix_config": "peer: postfix-formula `postfix.config`"}
        print(f"  load average (1 min) during the rounds: {min(loads):.1f}-{max(loads):.1f}; "
              f"peer: saltstack-formulas/postfix-formula {peer_commit or '-'}")
        print(f"  | converged apply, {ROUNDS} rounds, median | wall | x trivial | states "
              "| minion: states | minion: job | job - trivial |")
        print("  |---|---|---|---|---|---|---|")
        for key, label in labels.items():
            if key not in rows:
                continue
            floor = floors[rows[key][0]]
            if key == "render":
                minion = "- | - | -"
            else:
                minion = (f"{med(key, 1):.1f} ms | {phase(key, 0):.0f} ms | "
                          f"{phase(key, 0) - phase(floor, 0):.0f} ms")
            print(f"  | {label} | {med(key, 0):.2f} s | {med(key, 0) / med(floor, 0):.2f} | "
                  f"{runs[key][0][2]} | {minion} |")
        trivial = med("trivial", 0)
        print(f"  | first apply of `qmail` on a fresh host | {first:.1f} s | "
              f"x{first / (bare + trivial):.2f} of bare + trivial | {n_states} | - | - | - |")
        print(f"  | a bare `make setup check` of the same tarball on that host | {bare:.1f} s "
              "| - | - | - | - | - |", flush=True)
        print("  the minion's job, median ms: | before states | states | after |")
        for key in ("trivial", "qmail", "unrendered", "peer_trivial", "postfix",
                    "postfix_config"):
            if key in rows:
                print(f"    {rows[key][1]:<16} on {rows[key][0]:<28} | {phase(key, 1):6.0f} | "
                      f"{phase(key, 2):6.0f} | {phase(key, 3):6.0f}")
        for key, count in [(k, n) for k, n in (("qmail", 12), ("postfix_config", 6)) if k in rows]:
            print(f"  slowest states of the converged `{rows[key][1]}` (median ms):")
            top = sorted(slowest.get(key, {}).items(), key=lambda kv: -statistics.median(kv[1]))
            for sid, durations in top[:count]:
                print(f"    {statistics.median(durations):7.1f}  {sid}")
        if os.environ.get("BENCH_PROFILE") == "1":
            for fqdn, sls in [(SPOOL, "qmail")] + ([(PEER, "postfix.config")] * bool(peer_commit)):
                times = _profile(master, hosts[fqdn], sls)
                print(f"  render per file, `salt-call -l profile state.apply {sls}` "
                      f"(ms, {len(times)} files, {sum(times.values()):.0f} ms in all):")
                for path, msec in sorted(times.items(), key=lambda kv: -kv[1]):
                    print(f"    {msec:7.1f}  {path}")
        master.remove_hosts(hosts.values())


if __name__ == "__main__":
    main()
