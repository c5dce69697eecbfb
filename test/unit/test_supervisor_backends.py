"""
One contract for every supervisor backend of ``_utils/qmail_supervisors.py``
(through Salt's loader), run against real processes: a stand-in service
(a Python script whose command name is the service's) that notes each HUP
it catches.

- ``bootscript``: the real thing, ``<home>/supervise/<service>/run &``, the
  service found by name in the process table;
- ``daemontools``: stand-ins for svc, svok and svstat that start, signal
  and stop the process as supervise would;
- ``systemd``: a fake ``cmd.run_all`` answering ``systemctl`` with a real
  child process (no systemd runs here; the lab tests drive the real one);
- ``inetd``: a stand-in inetd started by the test (the system's to start:
  the backend only finds and signals it).
"""

import os
import shlex
import signal
import subprocess
import sys
import time
import uuid

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

BACKENDS = ("systemd", "daemontools", "bootscript", "inetd")
SERVICE_SCRIPT = """#!{python}
import os, signal, sys, time
signals = {signals!r}
def hup(*_):
    with open(signals, "a") as handle:
        handle.write(f"hup {{os.getpid()}}\\n")
signal.signal(signal.SIGHUP, hup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
open({ready!r} + str(os.getpid()), "w").close()
while True:
    time.sleep(1)
"""
# daemontools as supervise answers: <folder>'s process in <state>/<name>.pid.
SVC = """#!/bin/sh
flag=$1; name=$(basename "$2"); pidfile={state}/$name.pid
up() {{ [ -f "$pidfile" ] && ! grep -q '^State:.*Z' /proc/$(cat "$pidfile")/status 2>/dev/null \
        && [ -d /proc/$(cat "$pidfile") ]; }}
start() {{ setsid /bin/sh {service_dir}/$name/run </dev/null >/dev/null 2>&1 &
          echo $! > "$pidfile"; }}
term() {{ pid=$(cat "$pidfile"); kill -TERM "$pid"
         while [ -d /proc/$pid ] && ! grep -q '^State:.*Z' /proc/$pid/status; do
           sleep 0.05; done; }}
case $flag in
  -u) rm -f {state}/$name.exited; up || start ;;
  -d) up && term; rm -f "$pidfile" ;;
  -dx) up && term; rm -f "$pidfile"; : > {state}/$name.exited ;;
  -t) up && term; start ;;
  -h) kill -HUP $(cat "$pidfile") ;;
  -a) kill -ALRM $(cat "$pidfile") ;;
  *) exit 100 ;;
esac
"""
# supervise runs for every folder until svc -dx makes it exit.
SVOK = """#!/bin/sh
[ -d "$1" ] && [ ! -f {state}/$(basename "$1").exited ]
"""
SVSTAT = """#!/bin/sh
name=$(basename "$1"); pidfile={state}/$name.pid
if [ -f "$pidfile" ] && [ -d /proc/$(cat "$pidfile") ] \
   && ! grep -q '^State:.*Z' /proc/$(cat "$pidfile")/status; then
  echo "$1: up (pid $(cat "$pidfile")) 1 seconds"
else
  echo "$1: down 1 seconds"
fi
"""


def wait_for(check, timeout=60, what="it"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout} s")


class FakeSystemctl:
    """``cmd.run_all`` for ``systemctl``: each unit a real child process."""

    def __init__(self, program):
        self.program = program
        self.procs = {}
        self.enabled = set()
        self.calls = []

    def _running(self, unit):
        proc = self.procs.get(unit)
        return proc if proc and proc.poll() is None else None

    def _stop(self, unit):
        proc = self._running(unit)
        if proc:
            proc.terminate()
            proc.wait(10)

    def __call__(self, argv, python_shell=False, ignore_retcode=False, **kwargs):
        assert argv[0] == "systemctl" and python_shell is False
        self.calls.append(argv[1:])
        verb, unit = argv[1], (argv[2] if len(argv) > 2 else None)
        out = ""
        if verb == "show":  # a block per unit, in the order asked, as systemctl
            out = "\n".join(self._show(name) for name in argv[2:]
                            if not name.startswith("--"))
        elif verb in ("start", "restart"):
            if verb == "restart":
                self._stop(unit)
            if not self._running(unit):
                self.procs[unit] = subprocess.Popen([self.program], start_new_session=True)
        elif verb == "stop":
            self._stop(unit)
        elif verb == "enable":
            self.enabled.add(unit)
        elif verb == "disable":
            self.enabled.discard(unit)
        elif verb != "daemon-reload":
            return {"retcode": 1, "stdout": "", "stderr": f"unknown verb {verb}"}
        return {"retcode": 0, "stdout": out, "stderr": ""}

    def _show(self, unit):
        proc = self._running(unit)
        known = unit in self.procs or unit in self.enabled
        return (f"MainPID={proc.pid if proc else 0}\nId={unit}\n"
                f"LoadState={'loaded' if known else 'not-found'}\n"
                f"ActiveState={'active' if proc else 'inactive'}\n"
                f"UnitFileState={'enabled' if unit in self.enabled else 'disabled'}\n"
                "NeedDaemonReload=no\n")

    def close(self):
        for unit in list(self.procs):
            self._stop(unit)


#: The contract, by who it binds: every backend, or those that start and
#: stop their services (inetd is the system's).
EVERY = pytest.mark.parametrize("harness", BACKENDS, indirect=True)
MANAGING = pytest.mark.parametrize("harness", [b for b in BACKENDS if b != "inetd"],
                                   indirect=True)


@pytest.fixture
def harness(request, loaders, tmp_path):
    """A backend and its service: ``launch()`` starts the service the way
    its supervisor is started (for inetd, by the test: the system's job)."""
    kind = request.param
    utils = loaders.utils
    service = f"qs{uuid.uuid4().hex[:8]}"  # a command name no other process has
    home, service_dir, state = tmp_path / "home", tmp_path / "service", tmp_path / "state"
    for folder in (home / "supervise" / service, service_dir, state, tmp_path / "bin"):
        folder.mkdir(parents=True)
    program = tmp_path / "bin" / service
    program.write_text(SERVICE_SCRIPT.format(python=sys.executable,
                                             signals=str(tmp_path / "signals"),
                                             ready=str(tmp_path / "ready-")))
    program.chmod(0o755)
    (home / "supervise" / service / "run").write_text(f"#!/bin/sh\nexec {program}\n")
    (service_dir / service).symlink_to(home / "supervise" / service)
    bindir = tmp_path / "daemontools"
    bindir.mkdir()
    for name, text in (("svc", SVC), ("svstat", SVSTAT), ("svok", SVOK)):
        (bindir / name).write_text(text.format(state=shlex.quote(str(state)),
                                               service_dir=shlex.quote(str(service_dir))))
        (bindir / name).chmod(0o755)
    paths = {"home": str(home), "service_dir": str(service_dir),
             "daemontools_bin": str(bindir), "log_dir": str(tmp_path / "log")}
    run_all = FakeSystemctl(str(program)) if kind == "systemd" else loaders.modules[
        "cmd.run_all"]
    # inetd's processes are found by the name "inetd": here, the stand-in's.
    pids_named = utils["qmail_procs.pids_named"]

    def found(name):
        return pids_named(service if name == "inetd" else name)

    backend = utils["qmail_supervisors.backend"](
        kind, run_all=run_all, pids_named=found, alive=utils["qmail_procs.alive"],
        booted=True, path=paths.__getitem__)
    spawned = []

    def launch():
        if kind != "inetd":
            return backend.start(service, timeout=60)
        spawned.append(subprocess.Popen([str(program)], start_new_session=True))
        return wait_for(lambda: backend.pid(service), what="inetd up")

    def ready(pid):
        wait_for(lambda: (tmp_path / f"ready-{pid}").exists(), what=f"{pid} ready")

    yield {"kind": kind, "backend": backend, "service": service, "launch": launch,
           "ready": ready, "signals": tmp_path / "signals",
           "alive": utils["qmail_procs.alive"], "run_all": run_all}
    # Whatever still runs goes, by its PID.
    for proc in spawned:
        proc.kill()
        proc.wait()
    if kind == "systemd":
        run_all.close()
    for pid in pids_named(service):
        os.kill(pid, signal.SIGKILL)


@EVERY
def test_no_pid_when_not_running(harness):
    assert harness["backend"].pid(harness["service"]) is None
    assert harness["backend"].pids(harness["service"]) == []


@MANAGING
def test_start_makes_it_run_and_gives_its_pid(harness):
    backend, service = harness["backend"], harness["service"]
    pid = backend.start(service, timeout=60)
    assert harness["alive"](pid)
    assert backend.pid(service) == pid
    assert backend.start(service) == pid  # running: left alone


@MANAGING
def test_stop_makes_it_stop(harness):
    backend, service = harness["backend"], harness["service"]
    pid = harness["launch"]()
    assert backend.stop(service, timeout=60) is True
    wait_for(lambda: not harness["alive"](pid), what=f"{pid} gone")
    assert backend.pid(service) is None
    assert backend.stop(service, timeout=60) is False


@MANAGING
def test_restart_gives_a_new_pid(harness):
    backend, service = harness["backend"], harness["service"]
    old = harness["launch"]()
    new = backend.restart(service, timeout=60)
    assert new not in (None, old)
    assert backend.pid(service) == new
    wait_for(lambda: not harness["alive"](old), what=f"{old} gone")


@MANAGING
def test_restart_of_a_stopped_service_starts_it(harness):
    pid = harness["backend"].restart(harness["service"], timeout=60)
    assert pid and harness["backend"].pid(harness["service"]) == pid


@EVERY
def test_a_signal_reaches_the_process(harness):
    backend, service = harness["backend"], harness["service"]
    pid = harness["launch"]()
    harness["ready"](pid)
    assert backend.signal(service, signal.SIGHUP) == [pid]
    wait_for(lambda: harness["signals"].exists()
             and f"hup {pid}\n" in harness["signals"].read_text(), what="HUP caught")
    assert backend.pid(service) == pid  # a HUP is no restart


@EVERY
def test_a_signal_to_nothing_running_is_an_error(harness):
    with pytest.raises(CommandExecutionError, match="is not running"):
        harness["backend"].signal(harness["service"], signal.SIGHUP)


@EVERY
def test_enable_and_enabled(harness):
    backend, service = harness["backend"], harness["service"]
    if harness["kind"] != "systemd":  # boot is the SLS's files there
        assert backend.enabled(service) is None
        assert backend.enable(service) is False
        return
    assert backend.enabled(service) is False
    assert backend.enable(service) is True
    assert backend.enabled(service) is True
    assert backend.enable(service) is False  # already


@MANAGING
def test_dead_stops_what_runs_and_then_finds_nothing(harness):
    backend, service = harness["backend"], harness["service"]
    pid = harness["launch"]()
    changes, note = backend.dead_changes(service)
    assert note is None and changes["running"] == {"old": True, "new": False}
    backend.make_dead(service, changes)
    wait_for(lambda: not harness["alive"](pid), what=f"{pid} gone")
    assert backend.pid(service) is None
    assert backend.dead_changes(service)[0] == {}  # daemontools: the link went too


@pytest.mark.parametrize("harness", ["daemontools"], indirect=True)
def test_daemontools_dead_stops_the_log_service_too(harness, tmp_path):
    """daemontools' removal recipe (``svc -dx . log``): the log's supervise
    exits too, so nothing of the service is left running under svscan."""
    backend, service = harness["backend"], harness["service"]
    log_folder = tmp_path / "home" / "supervise" / service / "log"
    log_folder.mkdir()
    harness["launch"]()
    changes, _ = backend.dead_changes(service)
    assert changes["log_running"] == {"old": True, "new": False}
    backend.make_dead(service, changes)
    svok = str(tmp_path / "daemontools" / "svok")
    assert subprocess.run([svok, str(log_folder)], check=False).returncode != 0
    assert backend.dead_changes(service)[0] == {}


@pytest.mark.parametrize("harness", ["inetd"], indirect=True)
def test_inetd_is_not_the_formula_s_to_start(harness):
    for action in ("start", "stop", "restart"):
        with pytest.raises(CommandExecutionError, match="the system starts and stops"):
            getattr(harness["backend"], action)(harness["service"])


def test_chosen_once_by_name(loaders):
    choose = loaders.utils["qmail_supervisors.backend"]
    for kind in BACKENDS:
        got = choose(kind, run_all=None, pids_named=None, alive=None, booted=False,
                     path=None)
        assert got.name == kind
    with pytest.raises(SaltInvocationError, match="'runit' is not one of"):
        choose("runit", run_all=None, pids_named=None, alive=None, booted=False, path=None)


def test_only_qmail_send_runs_under_the_boot_script(loaders):
    got = loaders.utils["qmail_supervisors.backend"](
        "bootscript", run_all=None, pids_named=None, alive=None, booted=False, path=None)
    assert got.refusal("qmail-send") is None
    assert "inetd runs it" in got.refusal("qmail-smtpd")


SYSTEMD_ONLY = pytest.mark.parametrize("harness", ["systemd"], indirect=True)


def _in_run(loaders, harness, units):
    """Another state of the same run: a backend on the run's snapshot."""
    utils = loaders.utils
    return utils["qmail_supervisors.backend"](
        "systemd", run_all=harness["run_all"], pids_named=utils["qmail_procs.pids_named"],
        alive=utils["qmail_procs.alive"], booted=True, path={}.__getitem__, units=units)


def _shows(harness):
    return [call for call in harness["run_all"].calls if call[0] == "show"]


@SYSTEMD_ONLY
def test_a_state_runs_states_ask_systemctl_show_once(loaders, harness):
    """Issue 21's converged cost: the run's snapshot of qmail's units, taken
    by the first state that asks, serves the others' decisions."""
    service, units = harness["service"], {}
    first = _in_run(loaders, harness, units)
    assert first.enabled(service) is False and first.pid(service) is None
    second = _in_run(loaders, harness, units)
    assert second.dead_changes(service)[0] == {}  # nothing runs, nothing enabled
    assert second.unit("qmail-send")["LoadState"] == "not-found"
    (show,) = _shows(harness)
    assert sorted(show[1:-1]) == sorted(f"{s}.service" for s in {
        "qmail-send", "qmail-smtpd", "qmail-smtpsd", "qmail-filterd", service})


@SYSTEMD_ONLY
def test_what_a_state_does_is_seen_by_the_states_after_it(loaders, harness):
    """An action reads afresh and empties the snapshot: a later state of the
    run sees the service it started, then the one it stopped."""
    service, units = harness["service"], {}
    assert _in_run(loaders, harness, units).pid(service) is None  # snapshot: down
    pid = _in_run(loaders, harness, units).start(service, timeout=60)
    assert pid and _in_run(loaders, harness, units).pid(service) == pid
    assert _in_run(loaders, harness, units).enable(service) is True
    assert _in_run(loaders, harness, units).enabled(service) is True
    assert _in_run(loaders, harness, units).stop(service) is True
    assert _in_run(loaders, harness, units).pid(service) is None
